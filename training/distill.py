"""Re-captioning a working model: its text understanding distilled into a new text encoder.

The teacher is a model that follows its world's canonical captions (``recipe.init``). The
student is the same transformer with a new text encoder (``recipe.text_encoder``, a word-level
one by default), shown the same scene in any training phrasing of the world's grammar. The loss
is the squared distance between the student's velocity and the teacher's at the same noisy
input and time, the teacher reading the canonical caption:

    L = || v_S(x_t, t, E_S(paraphrase)) - v_T(x_t, t, E_T(canonical)) ||^2

The target is the teacher's deterministic answer rather than the flow loss's noisy one
(x_1 - x_0 for one draw of noise), so the encoder learns from far fewer samples, and the image
generation the teacher learnt from millions of images is kept: the transformer stays frozen
unless ``distill.transformer_lr`` is above 0, and then only its text side (``is_text_side``)
unless ``distill.train`` is "all". Empty captions (``caption_dropout``) are paired on
both sides, so the student's unconditional prompt matches the teacher's and guidance still works.

Resumable: a checkpoint (safetensors weights, optimiser state loaded with
``torch.load(weights_only=True)``, the step in JSON) every ``checkpoint_every`` steps; every
random draw comes from (seed, step), so a resumed run is the uninterrupted one.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from conditioning.byte_encoder import ByteTextEncoder
from conditioning.word_encoder import UNK, WordTextEncoder
from dit.flow import interpolate, logit_normal_t
from pipelines.registry import load_pipeline

from . import checkpoint
from .objective import FlowObjective, step_generator
from .recipe import Recipe

CHECKPOINT = "distill-checkpoint"
UNK_INSERT = 0.05  # per caption: one <unk> at a random place, so unknown words are read past


class Pairs:
    """index -> (media (3, H, W) in [-1, 1], the scene or label); captions are drawn per step."""

    def __init__(self, recipe: Recipe) -> None:
        self.world = recipe.data
        if self.world == "shapes":
            from .world.shapes import ShapesDataset

            self.ds = ShapesDataset(recipe.data_size, seed=recipe.seed, size=recipe.size)
            self.n = recipe.data_size
        elif self.world == "digits":
            from .data import DigitsSource

            self.src = DigitsSource(recipe.size, recipe.seed)
            self.n = len(self.src)
        else:
            raise ValueError(
                f"recipe data={self.world!r}: text distillation knows the image "
                "worlds 'shapes' and 'digits'"
            )
        self.cache: dict[int, tuple[torch.Tensor, object]] = {}

    def item(self, i: int) -> tuple[torch.Tensor, object]:
        if i not in self.cache:
            if self.world == "shapes":
                d = self.ds[i]
                self.cache[i] = (d["image"], d["scene"])
            else:
                self.cache[i] = (self.src.images[i], int(self.src.labels[i]))
        return self.cache[i]

    def legacy(self, truth, rng: np.random.Generator) -> str:
        """A caption in one of the templates the teacher was trained on."""
        if self.world == "shapes":
            from .world.shapes import legacy_caption

            return legacy_caption(truth, rng)
        from .world.digits import legacy_caption

        return legacy_caption(truth, rng)

    def captions(self, truth, rng: np.random.Generator) -> tuple[str, str]:
        """(a training phrasing for the student, the canonical caption for the teacher)."""
        if self.world == "shapes":
            from .world.shapes import caption
        else:
            from .world.digits import caption
        return caption(truth, rng, "train"), caption(truth)


def build_student_encoder(recipe: Recipe) -> torch.nn.Module:
    """The recipe's text encoder: ``kind`` "word" (vocabulary from the world's grammar) or
    "byte"; the other keys are the encoder's config."""
    config = dict(recipe.text_encoder)
    kind = config.pop("kind", "word")
    if kind == "byte":
        return ByteTextEncoder(**config)
    if kind != "word":
        raise ValueError(f"recipe text_encoder kind={kind!r}: use 'word' or 'byte'")
    if recipe.data == "shapes":
        from .world.shapes import text_vocabulary
    else:
        from .world.digits import text_vocabulary
    return WordTextEncoder(vocab=text_vocabulary(), **config)


@torch.no_grad()
def init_from_teacher(encoder: WordTextEncoder, teacher: ByteTextEncoder, captions: list[str]):
    """Start the word encoder as a bag of the teacher's words: each token's embedding is the
    mean of the teacher's final hidden states (before its last norm) over the bytes of that
    word in canonical captions, the blocks start as the identity (their output projections at
    zero) and the last norm and the pooling are the teacher's. Step 0 then hands the frozen
    transformer features it already reads; tokens no canonical caption holds start at the mean.
    """
    width = teacher.width
    sums = torch.zeros(encoder.embed.num_embeddings, width)
    counts = torch.zeros(encoder.embed.num_embeddings)
    for k in range(0, len(captions), 64):
        chunk = captions[k : k + 64]
        ids, mask = teacher.tokenize(chunk)
        x = teacher.embed(ids) + teacher.pos[: ids.shape[1]]  # (B, L, D)
        for block in teacher.blocks:
            x = block(x, mask)
        for row, text in zip(x, chunk, strict=True):  # byte offsets = character offsets (ASCII)
            for token, start, end in encoder.spans(text):
                sums[token] += row[start:end].mean(0)
                counts[token] += 1
    seen = counts > 0
    weight = sums.sum(0, keepdim=True).expand_as(sums) / counts.sum()
    weight = torch.where(seen[:, None], sums / counts.clamp_min(1)[:, None], weight)
    encoder.embed.weight.copy_(weight)
    encoder.pos.zero_()
    for block in encoder.blocks:
        for layer in (block.proj, block.mlp.fc2):
            layer.weight.zero_()
            layer.bias.zero_()
    encoder.norm.load_state_dict(teacher.norm.state_dict())
    encoder.pool.load_state_dict(teacher.pool.state_dict())


def insert_unknown(rows: list[list[int]], rng: np.random.Generator) -> list[list[int]]:
    """One <unk> at a random place in a share UNK_INSERT of the (non-empty) captions."""
    out = []
    for r in rows:
        if len(r) > 1 and rng.random() < UNK_INSERT:
            k = int(rng.integers(len(r) + 1))
            r = [*r[:k], UNK, *r[k:]]
        out.append(r)
    return out


def encode(encoder, captions: list[str], rng: np.random.Generator, train: bool):
    from conditioning.text import TextEmbeddings

    if isinstance(encoder, WordTextEncoder):
        rows = [encoder.ids(c) for c in captions]
        ids, mask = encoder.pad(insert_unknown(rows, rng) if train else rows)
    else:
        ids, mask = encoder.tokenize(captions)
    tokens, pooled = encoder(ids, mask)
    return TextEmbeddings(tokens, mask, pooled)


def _student_transformer(
    teacher_dit, recipe: Recipe, transformer_lr: float
) -> tuple[torch.nn.Module, list[torch.nn.Parameter]]:
    """The transformer the student runs (the teacher's, frozen, or a copy whose text side or
    all of it trains) and the parameters that train."""
    if transformer_lr <= 0:
        return teacher_dit, []
    student_dit = copy.deepcopy(teacher_dit).train()
    trained = [
        p
        for n, p in student_dit.named_parameters()
        if recipe.distill.get("train", "text") == "all" or is_text_side(n)
    ]
    student_dit.requires_grad_(False)
    for p in trained:
        p.requires_grad_(True)
    return student_dit, trained


def _loss(
    recipe: Recipe, step: int, rng, pairs, teacher, student, encoder
) -> tuple[torch.Tensor, int]:
    """One step's distillation loss: the student's velocity on a training phrasing against the
    teacher's on the canonical caption of the same item, at the same noisy point; and the
    batch size."""
    idx = rng.integers(pairs.n, size=recipe.batch_size)
    media, truths = zip(*(pairs.item(int(i)) for i in idx), strict=True)
    texts = [pairs.captions(t, rng) for t in truths]
    drop = rng.random(recipe.batch_size) < recipe.caption_dropout
    student_captions = ["" if d else s for (s, _), d in zip(texts, drop, strict=True)]
    teacher_captions = ["" if d else c for (_, c), d in zip(texts, drop, strict=True)]
    g = step_generator(recipe, step)
    x, positions = patchify_batch(torch.stack(media), recipe.patch)
    noise, t = torch.randn(x.shape, generator=g), logit_normal_t(len(x), generator=g)
    x_t = interpolate(noise, x, t)
    with torch.no_grad():
        target = teacher.velocity(x_t, positions, teacher.text_encoder.encode(teacher_captions), t)
    pred = student.velocity(x_t, positions, encode(encoder, student_captions, rng, True), t)
    return (pred - target).pow(2).mean(), len(x)


def distill(
    recipe: Recipe,
    out_dir: str | os.PathLike,
    resume: bool = False,
    max_minutes: float | None = None,
) -> Path:
    """Train ``recipe`` (objective "distill") into ``out_dir``; returns the exported folder."""
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    deadline = None if max_minutes is None else time.monotonic() + 60 * max_minutes
    teacher_pipe = load_pipeline(recipe.init)
    teacher = FlowObjective(
        teacher_pipe.transformer.requires_grad_(False),
        teacher_pipe.text_encoder.requires_grad_(False),
        ("image",),
    )
    transformer_lr = float(recipe.distill.get("transformer_lr", 0.0))
    student_dit, trained = _student_transformer(teacher_pipe.transformer, recipe, transformer_lr)
    torch.manual_seed(recipe.seed)
    encoder = build_student_encoder(recipe).train()
    student = FlowObjective(student_dit, encoder, ("image",))
    groups = [{"params": list(encoder.parameters()), "scale": 1.0}]
    if trained:
        groups.append({"params": trained, "scale": transformer_lr / recipe.lr})
    checkpointed = {"text_encoder": encoder, "transformer": student_dit if trained else None}
    opt = torch.optim.AdamW(
        groups, lr=recipe.lr, betas=(0.9, 0.99), weight_decay=recipe.weight_decay
    )
    step = load_checkpoint(out / CHECKPOINT, checkpointed, opt) if resume else 0
    pairs = Pairs(recipe)
    if (
        step == 0
        and recipe.distill.get("init_from_teacher")
        and isinstance(encoder, WordTextEncoder)
    ):
        rng = np.random.default_rng([recipe.seed, 99])
        idx = rng.integers(pairs.n, size=2000)
        legacy = [pairs.legacy(pairs.item(int(i))[1], rng) for i in idx]
        init_from_teacher(encoder, teacher.text_encoder, legacy)
    log = (out / "loss.jsonl").open("a")
    tic, seen, start = time.perf_counter(), 0, step
    while step < recipe.steps:
        lr = recipe.lr_at(step)
        for group in opt.param_groups:
            group["lr"] = lr * group["scale"]
        rng = np.random.default_rng([recipe.seed, step, 7])
        loss, n = _loss(recipe, step, rng, pairs, teacher, student, encoder)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([q for gr in groups for q in gr["params"]], 1.0)
        opt.step()
        step += 1
        seen += n
        log.write(json.dumps({"step": step, "loss": loss.item(), "lr": lr}) + "\n")
        if step % 10 == 0:
            log.flush()
            rate = seen / (time.perf_counter() - tic)
            print(
                f"step {step}/{recipe.steps} loss {loss.item():.5f} {rate:.1f} img/s "
                f"(from {start})",
                flush=True,
            )
        out_of_time = deadline is not None and time.monotonic() > deadline
        if step % recipe.checkpoint_every == 0 or step == recipe.steps or out_of_time:
            save_checkpoint(out / CHECKPOINT, step, checkpointed, opt)
            export(teacher_pipe, student_dit, encoder, recipe, out / "model")
            # every export kept: the score-against-samples curve is measured on them
            shutil.copytree(out / "model", out / "exports" / f"step_{step:07d}", dirs_exist_ok=True)
        if out_of_time:
            print(f"--max-minutes {max_minutes} reached: stopping at step {step}")
            break
    log.close()
    return out / "model"


def is_text_side(name: str) -> bool:
    """Transformer weights that only read text: the text stream of every block, its input
    projection and the pooled-text path into the modulation. The image stream stays the
    teacher's, so what it learnt to draw is kept."""
    return ".streams.text." in name or name.startswith(("embed.text.", "t_embed.pooled."))


def patchify_batch(images: torch.Tensor, p: int) -> tuple[torch.Tensor, torch.Tensor]:
    from dit.tokens import image_positions, patchify

    return patchify(images, p), image_positions(images.shape[-2] // p, images.shape[-1] // p)


def export(teacher_pipe, transformer, encoder, recipe: Recipe, folder: Path) -> None:
    """The student as a model folder (atomically: a temporary folder, then renamed)."""
    spec = replace(
        teacher_pipe.spec,
        name=recipe.name,
        defaults={**teacher_pipe.spec.defaults, **recipe.defaults},
    )
    pipe = type(teacher_pipe)(transformer, encoder, spec)
    tmp = folder.with_name(f".tmp-{folder.name}")
    if tmp.exists():
        shutil.rmtree(tmp)
    pipe.save_pretrained(tmp, half=recipe.export_half)
    if folder.exists():
        shutil.rmtree(folder)
    os.replace(tmp, folder)
    encoder.train()


def save_checkpoint(root: Path, step: int, modules: dict, opt) -> None:
    """``modules`` (None: skipped), the optimiser and the step into ``root``, atomically and
    without pickles (training/checkpoint.py)."""
    checkpoint.write(root, step, modules, opt)


def load_checkpoint(root: Path, modules: dict, opt) -> int:
    """What :func:`save_checkpoint` wrote, into ``modules`` and ``opt``; returns the step
    (0 with a message when there is no checkpoint)."""
    if not (root / checkpoint.STATE).is_file():
        print(f"--resume: no checkpoint in {root}, starting from step 0")
        return 0
    step = checkpoint.read(root, modules, opt)
    print(f"resumed from {root} at step {step}")
    return step
