"""Reuse of unchanged tokens' keys and values across masked-decoding calls (after ENAT).

In MaskGIT-style decoding a committed code never changes again, and its representation
changes little from one step to the next (ENAT, Ni et al. 2024). ``KVReuse`` computes each
visible token once, at the first call that sees it, keeps its per-block keys and values,
and from then on runs the transformer only on the text, the masked tokens and the newly
committed ones, which attend to the kept keys and values as well. The first calls see
nothing kept and compute everything, exactly as the plain path does; later calls differ
from it only through the kept tokens' stale context (they saw an earlier step's masks and
time). ``pipelines`` state the measured tolerance; ``tests/test_reuse.py`` checks it.
"""

from __future__ import annotations

from typing import Any

import torch


def _take(x: torch.Tensor, idx: torch.Tensor, dim: int) -> torch.Tensor:
    """x gathered along ``dim`` by per-row indices idx (B, M): rows of x are the batch."""
    shape = list(x.shape)
    view = [idx.shape[0]] + [1] * (x.dim() - 1)
    view[dim] = idx.shape[1]
    shape[dim] = idx.shape[1]
    return x.gather(dim, idx.view(view).expand(shape))


class KVReuse:
    """Call it as the model, once per decoding step (a new one per decode)."""

    def __init__(self, stream: str, mask_id: int) -> None:
        self.stream, self.mask_id = stream, mask_id
        self.visible: torch.Tensor | None = None  # (B, N) bool at the last call
        self.kv: list[tuple[torch.Tensor, torch.Tensor]] | None = None  # (B, H, N, Dh) each
        self.computed = 0  # stream tokens run through the model, over all calls (for stats)

    def __call__(self, model, tokens: dict[str, torch.Tensor], positions, t, **kw: Any):
        codes = tokens[self.stream]  # (B, N) long
        b, n = codes.shape
        visible = codes != self.mask_id
        if self.visible is not None and self.visible.shape != visible.shape:
            self.kv = None  # a new batch (e.g. guidance switched off): start afresh
        stable = torch.zeros_like(visible)
        if self.kv is not None:
            stable = visible & self.visible
            counts = stable.sum(1)
            if bool(counts.min() != counts.max()):  # ragged rows: compute everything
                stable = torch.zeros_like(visible)
        m = int(stable[0].sum()) if b else 0
        order = torch.argsort(stable.to(torch.int8), dim=1, stable=True)  # fresh first
        fresh, kept = order[:, : n - m], order[:, n - m :]  # (B, N - m), (B, m)

        pos = positions[self.stream]
        pos = pos.expand(b, -1, -1) if pos.dim() == 2 else pos  # (B, N, 4)
        extra = None
        if m:
            extra = [(_take(k, kept, 2), _take(v, kept, 2)) for k, v in self.kv]
        kv_out: list = []
        out = model(
            {**tokens, self.stream: _take(codes, fresh, 1)},
            {**positions, self.stream: _take(pos, fresh, 1)},
            t,
            extra_kv=extra,
            kv_out=kv_out,
            **kw,
        )
        self.computed += b * (n - m)

        # The stream's slice of each block's keys: streams enter in the config's order.
        names = [s.name for s in model.cfg.streams if s.name in tokens]
        start = sum(tokens[k].shape[1] for k in names[: names.index(self.stream)])
        new = []
        for i, (k, v) in enumerate(kv_out):
            k_s, v_s = k[:, :, start : start + n - m], v[:, :, start : start + n - m]
            if self.kv is None:
                full_k = k.new_zeros(b, k.shape[1], n, k.shape[3])
                full_v = torch.zeros_like(full_k)
            else:
                full_k, full_v = self.kv[i]
            idx = fresh[:, None, :, None].expand_as(k_s)
            new.append((full_k.scatter(2, idx, k_s), full_v.scatter(2, idx, v_s)))
        self.kv, self.visible = new, visible

        logits = out[self.stream]  # (B, N - m, K): masked positions are all among these
        full = logits.new_zeros(b, n, logits.shape[-1])
        full.scatter_(1, fresh[..., None].expand_as(logits), logits)
        return {**out, self.stream: full}
