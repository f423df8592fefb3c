"""Recipes: small JSON files naming the model preset, data, codec, objective and optimiser."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

RECIPES = Path(__file__).parent / "recipes"


@dataclass(frozen=True)
class Recipe:
    name: str
    preset: str = "s"
    modality: str = "image"  # image | audio | video | audio+video
    data: str = "shapes"  # shapes | digits | sounds | motion | bounce | folder
    data_path: str = ""  # for data = folder
    data_size: int = 20_000  # procedural items (index -> item is deterministic)
    # train | heldout | all (half each). Autoencoders, which see no captions, train on "all": a
    # codec must represent every scene; the held-out test is of the text-to-media model.
    data_split: str = "train"
    # the world's captions: "train" (free phrasings of the grammar, read by the model itself) or
    # "canonical" (one caption per item; free phrasing then goes through a rewriter recipe)
    phrasing: str = "train"
    size: int = 32  # training image side
    seconds: float = 5.0  # audio, video: the longest training clip
    fps: float = 8.0  # video: training frame rate (frames = seconds x fps)
    tpatch: int = 2  # video: frames per tubelet
    # video: run the trunk on each frame with a zero-initialised temporal attention after
    # each block (dit/temporal.py), so `init` may be an image model of the same preset
    temporal: bool = False
    # video: share of the noise variance common to every frame (dit.flow.frame_noise), in
    # training and in sampling (the export records it); 0 = independent frames
    frame_noise_share: float = 0.0
    # flow: mean of the logit-normal training times (SD3: 0). t = 1 is clean, so a mean below
    # 0 spends more steps near noise, where layout, count and order are decided (issue 19).
    t_mean: float = 0.0
    # flow: contrastive flow matching (Stoica et al. 2025): minus this weight x the squared
    # distance to another item's velocity target (the batch rolled by one); ~0.05 in the paper
    contrastive: float = 0.0
    # flow: what the velocity heads output, "velocity" or "x" (the clean signal, turned into a
    # velocity inside the model: dit.config.StreamConfig.prediction; JiT, issue 19)
    prediction: str = "velocity"
    # flow, sounds: an auxiliary classifier of the world's per-token ground truth (timbre,
    # note, onset: training/ground_truth.py) on the hidden states of one trunk block,
    # {"weight": w, "block": i}; training-only (the export has no such head); {} = off
    aux: dict[str, Any] = field(default_factory=dict)
    codec: dict[str, Any] = field(default_factory=dict)  # audio: MelCodec settings
    patch: int = 4
    objective: str = "flow"  # flow | masked | autoencoder | distill | rewriter | mmdit-lora
    # objective "autoencoder": the FSQ autoencoder's settings {"hidden", "down", "levels"};
    # objective "masked": ``autoencoder`` names the trained autoencoder folder whose codes it models
    fsq: dict[str, Any] = field(default_factory=dict)
    # objective "autoencoder": weight of an edge term (MSE of neighbour differences) beside the
    # pixel MSE: thin arms (a small cross) blur into blobs under the plain MSE; 0 = off
    edge_loss: float = 0.0
    autoencoder: str = ""
    mask_schedule: str = "cosine"  # masked: the share masked at progress u (dit/masked.py)
    span: int = 1  # masked: tokens per masked span (MAGNeT: > 1 for audio)
    # masked: one embedding and one softmax per FSQ level (dit/codes.py), not one per code
    factorised_codes: bool = False
    text_encoder: dict[str, Any] = field(default_factory=lambda: {"width": 128, "depth": 2})
    batch_size: int = 32  # global batch, split over processes
    grad_accum: int = 1
    steps: int = 4000
    lr: float = 3e-4
    warmup: int = 200
    decay: float = 0.0  # share of the final steps over which the lr falls linearly to 0
    stop_at: int = 0  # end early at this step, schedule unchanged (a time-capped run, replayed)
    weight_decay: float = 0.0
    ema_decay: float = 0.999
    caption_dropout: float = 0.1  # empty prompt this often, for classifier-free guidance
    mixed_precision: str = "no"  # no | bf16 | fp16: used on a GPU, "no" on the CPU
    # Recompute each block's activations in the backward pass instead of keeping them: about
    # a third more compute for activation memory ~1/depth as large (the b / l / xl presets).
    gradient_checkpointing: bool = False
    checkpoint_every: int = 500
    sample_every: int = 500
    export_every: int = 0  # also export the EMA model to RUN/exports/step_N (training.curve)
    seed: int = 0
    init: str = ""  # fine-tune: start from this model folder's weights (fresh optimiser)
    init_lr_scale: float = 1.0  # the lr share of the weights `init` gave (new ones: 1)
    init_text_encoder: str = ""  # start only the text encoder from this model folder
    # start the transformer from this model folder wherever names and shapes agree: a masked
    # model from its world's flow model (same blocks; the input embedding and head differ)
    init_trunk: str = ""
    init_rewriter: str = ""  # objective rewriter: continue this model folder's rewriter/
    # the exported model carries this model folder's prompt rewriter (the same world's: it
    # rewrites free phrasing to the world's canonical captions, whatever model reads them)
    rewriter_from: str = ""
    sample_prompts: tuple[str, ...] = ()
    defaults: dict[str, Any] = field(default_factory=dict)  # request defaults of the export
    export_half: bool = False  # fp16 weights in the exported folder (bundled models: half size)
    # LoRA fine-tune of `init`: {"rank": 8, "alpha": 8, "targets": ["qkv", "proj", "fc1", "fc2"]}
    # freezes the base (text encoder too), trains only the adapter, exports only the adapter.
    # "prior": w, "prior_data": "shapes" adds w x |v_adapted - v_base|^2 on ordinary items.
    # "strength": s folds scale s into the exported adapter (loaded at 1, it acts at s).
    lora: dict[str, Any] = field(default_factory=dict)
    # objective "distill" (training/distill.py): a new text encoder learns the teacher `init`'s
    # velocities from paraphrases; {"transformer_lr": 0} keeps the transformer frozen, above 0
    # it trains its text side ({"train": "text"}) or all of it ({"train": "all"}).
    distill: dict[str, Any] = field(default_factory=dict)
    # objective "rewriter" (training/rewriter.py): {"position_jitter": true} shifts each prompt's
    # positions at random; {"unk_insert": k} inserts 1-k unknown words (default 3), each a run
    # of 1 to "unk_run" of them (default 1)
    rewriter: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._check_sizes()
        self._check_objective()
        self._check_data()
        if self.lora:
            self._check_lora()
        self._check_media_and_levers()
        if self.data == "folder" and not self.data_path:
            raise ValueError("recipe data=folder needs data_path: the folder of media + .txt")

    def _check_sizes(self) -> None:
        """Counts and the patch grid."""
        for name in (
            "batch_size",
            "steps",
            "size",
            "patch",
            "checkpoint_every",
            "grad_accum",
            "tpatch",
        ):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"recipe {name}={getattr(self, name)!r}: use an integer >= 1")
        if self.size % self.patch:
            raise ValueError(f"recipe size={self.size} must be a multiple of patch={self.patch}")
        if not 0.0 <= self.decay <= 1.0:
            raise ValueError(f"recipe decay={self.decay}: use a share of the steps, 0 to 1")
        if not (isinstance(self.edge_loss, int | float) and self.edge_loss >= 0):
            raise ValueError(f"recipe edge_loss={self.edge_loss!r}: a weight >= 0 (0: off)")

    def _check_objective(self) -> None:
        """The objective and the fields that only some objectives take."""
        if self.objective not in (
            "flow",
            "masked",
            "autoencoder",
            "distill",
            "rewriter",
            "mmdit-lora",
        ):
            raise ValueError(
                f"recipe objective={self.objective!r}: use 'flow', 'masked', "
                "'autoencoder', 'distill', 'rewriter' or 'mmdit-lora'"
            )
        if self.objective == "mmdit-lora" and (
            not self.lora or self.lora.get("prior") or self.data != "folder"
        ):
            raise ValueError(
                "recipe objective=mmdit-lora (a LoRA of an SD3 / FLUX.1 folder): give lora "
                "{rank, alpha, targets} without a prior, and data=folder with data_path "
                "(or --data-path) and init (or --init) the model folder"
            )
        if self.objective in ("distill", "rewriter") and not self.init:
            raise ValueError(
                f"recipe objective={self.objective} needs init: the model folder it serves"
            )
        if set(self.distill) - {"transformer_lr", "train", "init_from_teacher"} or self.distill.get(
            "train", "text"
        ) not in ("text", "all"):
            raise ValueError(
                f"recipe distill={self.distill!r}: give transformer_lr (>= 0) and "
                "train ('text' or 'all')"
            )
        if set(self.rewriter) - {"position_jitter", "unk_insert", "unk_run"}:
            raise ValueError(
                f"recipe rewriter={self.rewriter!r}: known keys are position_jitter "
                "(true/false), unk_insert and unk_run (counts >= 1)"
            )
        if self.objective == "masked" and not self.autoencoder:
            raise ValueError(
                "recipe objective=masked needs autoencoder: the FSQ autoencoder "
                "folder (made by a recipe with objective 'autoencoder')"
            )
        if self.phrasing not in ("train", "canonical"):
            raise ValueError(f"recipe phrasing={self.phrasing!r}: use 'train' or 'canonical'")
        if self.data_split not in ("train", "heldout", "all"):
            raise ValueError(f"recipe data_split={self.data_split!r}: use train, heldout or all")
        if self.data_split != "train" and self.objective != "autoencoder":
            raise ValueError(
                "recipe data_split: only autoencoders (no captions) may train on "
                "held-out scenes; text-to-media recipes use 'train'"
            )
        if not isinstance(self.factorised_codes, bool) or (
            self.factorised_codes and self.objective != "masked"
        ):
            raise ValueError(
                f"recipe factorised_codes={self.factorised_codes!r}: use true (only "
                "with objective 'masked') or false"
            )
        if self.prediction not in ("velocity", "x") or (
            self.prediction != "velocity" and self.objective not in ("flow", "distill")
        ):
            raise ValueError(
                f"recipe prediction={self.prediction!r}: use 'velocity' or 'x' "
                "(only with objective 'flow' or 'distill')"
            )
        if not isinstance(self.span, int) or self.span < 1:
            raise ValueError(f"recipe span={self.span!r}: use an integer >= 1")

    def _check_data(self) -> None:
        """The modality and a data source that gives it."""
        kinds = {
            "image": ("shapes", "digits", "folder"),
            "audio": ("sounds", "folder"),
            "video": ("motion",),
            "audio+video": ("bounce",),
        }
        if self.modality not in kinds:
            raise ValueError(f"recipe modality={self.modality!r}: use one of {list(kinds)}")
        if self.data not in kinds.get(self.modality, ()):
            raise ValueError(
                f"recipe data={self.data!r} does not give {self.modality} data: "
                f"use one of {kinds.get(self.modality)}"
            )

    def _check_lora(self) -> None:
        """The ``lora`` settings: known keys, a rank, a finite strength and prior weight."""
        unknown = set(self.lora) - {"rank", "alpha", "targets", "prior", "prior_data", "strength"}
        if unknown or "rank" not in self.lora:
            raise ValueError(
                f"recipe lora={self.lora!r}: give rank (and optionally alpha, "
                "targets, prior, prior_data, strength), nothing else"
            )
        strength = self.lora.get("strength", 1.0)
        if not (isinstance(strength, int | float) and 0 < strength < float("inf")):
            raise ValueError(
                f"recipe lora strength={strength!r}: a scale > 0 folded into "
                "the exported adapter (1: as trained)"
            )
        prior = self.lora.get("prior", 0.0)
        if not (isinstance(prior, int | float) and 0 <= prior < float("inf")):
            raise ValueError(f"recipe lora prior={prior!r}: a weight >= 0 (0: off)")
        if prior and self.lora.get("prior_data") not in ("shapes", "digits", "sounds"):
            raise ValueError(
                "recipe lora prior needs prior_data: shapes, digits or sounds "
                "(ordinary data of the base model's kind)"
            )
        if not self.init:
            raise ValueError("recipe lora needs init: the model folder the adapter adapts")

    def _check_media_and_levers(self) -> None:
        """Whole frames per temporal patch, and the objective levers' ranges and modalities."""
        if self.modality in ("video", "audio+video"):
            frames = self.seconds * self.fps
            if abs(frames - round(frames)) > 1e-6 or round(frames) % self.tpatch:
                raise ValueError(
                    f"recipe seconds x fps = {frames:g} frames: make it a whole "
                    f"multiple of tpatch={self.tpatch}"
                )
        if self.temporal and (self.modality != "video" or self.tpatch != 1):
            raise ValueError(
                "recipe temporal=true is for video recipes with tpatch 1 (each "
                "frame a token grid, as an image model's)"
            )
        share = self.frame_noise_share
        if not (isinstance(share, int | float) and 0 <= share < 1):
            raise ValueError(
                f"recipe frame_noise_share={self.frame_noise_share!r}: a share of "
                "the noise variance, 0 <= share < 1"
            )
        if not (isinstance(self.contrastive, int | float) and 0 <= self.contrastive < 1):
            raise ValueError(
                f"recipe contrastive={self.contrastive!r}: a weight in [0, 1) "
                "(0: off; the paper uses about 0.05)"
            )
        if not (isinstance(self.t_mean, int | float) and abs(self.t_mean) <= 3):
            raise ValueError(
                f"recipe t_mean={self.t_mean!r}: a logit-normal mean in [-3, 3] "
                "(0: SD3's; below 0: more steps near noise)"
            )
        if self.frame_noise_share and (self.modality != "video" or self.tpatch != 1):
            raise ValueError("recipe frame_noise_share is for video recipes with tpatch 1")
        self._check_aux()

    def _check_aux(self) -> None:
        if not self.aux:
            return
        weight, block = self.aux.get("weight"), self.aux.get("block")
        if set(self.aux) != {"weight", "block"} or not (
            isinstance(weight, int | float) and weight > 0 and isinstance(block, int) and block >= 0
        ):
            raise ValueError(
                f'recipe aux={self.aux!r}: give {{"weight": w > 0, "block": i >= 0}} '
                "(the trunk block whose hidden states the classifier reads), or {} for off"
            )
        if self.objective != "flow" or self.data != "sounds":
            raise ValueError(
                "recipe aux: the ground-truth classifier is for flow recipes on the sounds "
                "world (training/ground_truth.py); remove it"
            )

    def lr_at(self, step: int) -> float:
        """The learning rate of ``step`` (0-based): warm-up, flat, then optional linear decay;
        a pure function of the step, so a resumed run follows the same schedule."""
        lr = self.lr * min(1.0, (step + 1) / max(self.warmup, 1))
        if self.decay > 0:
            lr *= min(1.0, (self.steps - step) / (self.decay * self.steps))
        return lr

    @classmethod
    def load(cls, name_or_path: str, **overrides: Any) -> Recipe:
        path = Path(name_or_path)
        if not path.is_file():
            path = RECIPES / f"{name_or_path}.json"
        if not path.is_file():
            known = sorted(p.stem for p in RECIPES.glob("*.json"))
            raise ValueError(
                f"recipe {name_or_path!r} not found: give a .json file or one of {known}"
            )
        data = json.loads(path.read_text())
        if "tokenizer" in data or data.get("objective") == "tokenizer":
            raise ValueError(
                f"{path}: the FSQ codec is now called an autoencoder: rename the "
                "field 'tokenizer' to 'autoencoder' (and objective 'tokenizer' to "
                "'autoencoder')"
            )
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"{path}: unknown recipe fields {sorted(unknown)}")
        data["sample_prompts"] = tuple(data.get("sample_prompts", ()))
        return cls(**{**data, **overrides})
