"""The training objective: flow matching through text encoder + DiT in one module (what DDP
wraps), with the optional prior-preservation term of LoRA fine-tunes, and the per-step random
draws both use."""

from __future__ import annotations

import numpy as np
import torch

from conditioning.byte_encoder import ByteTextEncoder
from dit import DiT
from dit.flow import flow_loss, interpolate, logit_normal_t
from dit.masked import masked_loss
from dit.tokens import text_positions
from dit.tree import State, tree_map
from pipelines.lora import adapters_off

from .data import batch_indices
from .recipe import Recipe


class FlowObjective(torch.nn.Module):
    """Text encoder + DiT trained together on the flow-matching loss (one module for DDP).
    ``streams`` names the generated streams (image; audio; video and audio); their tokens come
    from the modality's adapter (training/media.py). One stream's data, noise and t are
    tensors; several streams' are dicts, and an item whose stream has t = 1 gives that stream
    clean (as a condition: video-to-audio, audio-to-video) and takes no loss on it."""

    def __init__(
        self,
        transformer: DiT,
        text_encoder: ByteTextEncoder,
        streams: tuple[str, ...],
        contrastive: float = 0.0,
        aux: dict | None = None,
        aux_classes: tuple[int, ...] = (),
    ):
        super().__init__()
        self.transformer = transformer
        self.text_encoder = text_encoder
        self.streams = tuple(streams)
        self.contrastive = contrastive  # weight of contrastive flow matching (0: off)
        self.aux_weight, self.aux_classes, self._hidden = 0.0, tuple(aux_classes), None
        if aux:  # ground-truth classifier on one block's hidden states (training/ground_truth.py)
            depth = len(transformer.blocks)
            if not 0 <= aux["block"] < depth:
                raise ValueError(f"recipe aux block={aux['block']}: choose 0..{depth - 1}")
            self.aux_weight = float(aux["weight"])
            self.aux_head = torch.nn.Linear(transformer.cfg.width, sum(self.aux_classes))
            transformer.blocks[aux["block"]].register_forward_hook(self._keep_hidden)

    def _keep_hidden(self, module, args, out) -> None:
        self._hidden = out[self.streams[0]]  # (B, N, D) of the generated stream

    def aux_loss(self, labels: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy of each label kind (labels (B, N, K) long) from the kept hidden
        states (B, N, D) of the last forward pass."""
        logits = self.aux_head(self._hidden.float()).split(self.aux_classes, dim=-1)
        return sum(
            torch.nn.functional.cross_entropy(z.flatten(0, 1), labels[..., k].flatten())
            for k, z in enumerate(logits)
        ) / len(logits)

    def velocity(self, x_t: State, positions, emb, t: State) -> State:
        """The model's velocity at x_t: (B, N, D) and t (B,) for one stream, or dicts of them
        (each stream at its own time); ``positions`` (N, 4), or a dict; text ``emb``."""
        one = not isinstance(x_t, dict)
        name = self.streams[0]
        xs, pos, ts = ({name: x_t}, {name: positions}, {name: t}) if one else (x_t, positions, t)
        pos = {"text": text_positions(emb.tokens.shape[1], emb.tokens.device), **pos}
        out = self.transformer(
            {"text": emb.tokens, **xs},
            pos,
            next(iter(ts.values())),
            pooled=emb.pooled,
            masks={"text": emb.mask},
            stream_t=None if one else ts,
        )
        return out[self.streams[0]] if one else {k: out[k] for k in xs}

    def forward(self, data, positions, captions, noise, t, prior=None, labels=None) -> torch.Tensor:
        """data, noise: (B, N, D) tokens, or dicts; positions: (N, 4) of the stream, or a dict;
        t: (B,), or a dict; labels: (B, N, K) ground truth for the ``aux`` classifier.

        ``prior`` (LoRA only): (x_t, captions, t, weight) of ordinary items; adds ``weight`` x
        the squared distance between the adapted model's velocity there and the base model's
        (the adapters switched off): prior preservation against the base model itself.
        """
        emb = self.text_encoder.encode(captions)
        x_t = tree_map(interpolate, noise, data, t)
        pred = self.velocity(x_t, positions, emb, t)
        if isinstance(data, dict):
            loss = joint_flow_loss(pred, noise, data, t)
        else:
            loss = flow_loss(pred, noise, data)
            if self.contrastive:  # push away from another item's target (Delta FM)
                loss = loss - self.contrastive * flow_loss(pred, noise.roll(1, 0), data.roll(1, 0))
        if self.aux_weight:
            loss = loss + self.aux_weight * self.aux_loss(labels)
        if prior is not None:
            x_p, captions_p, t_p, weight = prior
            emb_p = self.text_encoder.encode(captions_p)  # frozen under a LoRA: encode once
            with torch.no_grad(), adapters_off(self.transformer):
                base = self.velocity(x_p, positions, emb_p, t_p)
            adapted = self.velocity(x_p, positions, emb_p, t_p)
            loss = loss + weight * (adapted.float() - base.float()).pow(2).mean()
        return loss


class MaskedObjective(torch.nn.Module):
    """Text encoder + DiT trained on the masked-token cross-entropy (MaskGIT / MAGNeT): the
    masked codes become [MASK], the model sees t = the share visible, and the loss counts the
    masked positions only."""

    def __init__(self, transformer: DiT, text_encoder: ByteTextEncoder, stream: str):
        super().__init__()
        self.transformer = transformer
        self.text_encoder = text_encoder
        self.stream = stream

    def forward(self, codes, positions, captions, mask, prior=None) -> torch.Tensor:
        """codes: (B, N) long; positions: (N, 4); mask: (B, N) bool, True = masked."""
        if prior is not None:
            raise ValueError("prior preservation is a flow-recipe option: remove lora prior")
        emb = self.text_encoder.encode(captions)
        inputs = codes.masked_fill(mask, self.transformer.mask_id(self.stream))
        t = 1 - mask.float().mean(1)  # (B,) share visible: the masked family's time
        pos = {
            "text": text_positions(emb.tokens.shape[1], emb.tokens.device),
            self.stream: positions,
        }
        out = self.transformer(
            {"text": emb.tokens, self.stream: inputs},
            pos,
            t,
            pooled=emb.pooled,
            masks={"text": emb.mask},
        )
        return masked_loss(out[self.stream], codes, mask)


def joint_flow_loss(pred, noise, data, t) -> torch.Tensor:
    """Mean squared velocity error over every (item, stream) that was noised (t < 1): a stream
    given clean as a condition is not a target. Each (item, stream) counts once, whatever its
    token count, so a short audio stream weighs as much as a long video one."""
    total, count = 0.0, 0.0
    for k in pred:
        err = (pred[k].float() - (data[k] - noise[k]).float()).pow(2).mean(dim=(1, 2))  # (B,)
        w = (t[k] < 1).float()
        total, count = total + (err * w).sum(), count + w.sum()
    return total / torch.as_tensor(count).clamp_min(1.0)


def prior_items(
    source, media, recipe: Recipe, step: int, pos: np.ndarray, shape: torch.Size
) -> tuple[torch.Tensor, list[str], torch.Tensor]:
    """(x_t (B, N, D), captions, t (B,)) of ordinary items for prior preservation: like the
    main batch, drawn for the whole global batch from (seed, step) and sliced by ``pos``."""
    b = recipe.batch_size
    idx = batch_indices(source, recipe.seed + 1, step, b)[pos]
    items, captions = zip(*(source.item(int(i)) for i in idx), strict=True)
    data, _ = media.tokens(torch.stack(items))  # (B, N, D)
    if data.shape != shape:
        raise ValueError(
            f"prior_data items make tokens {tuple(data.shape)}, the recipe's data "
            f"{tuple(shape)}: use prior data of the same size"
        )
    g = step_generator(recipe, step, stream=2)
    noise, t = torch.randn((b, *shape[1:]), generator=g)[pos], logit_normal_t(b, generator=g)[pos]
    return interpolate(noise, data, t), list(captions), t


def step_generator(recipe: Recipe, step: int, stream: int = 1) -> torch.Generator:
    """The generator of one step's draws (``stream`` 1: the batch's, 2: the prior's)."""
    seed = int(np.random.default_rng([recipe.seed, step, 0, stream]).integers(2**62))
    return torch.Generator().manual_seed(seed)
