"""A small transformer over UTF-8 bytes: any text in any script, no vocabulary file.

It is trained jointly with the diffusion model (an ordinary ``nn.Module`` with gradients), so
it only has to be big enough to tell prompts apart, not to understand language on its own.

Unconditional prompt: ``""`` becomes one learned ``NULL`` token (mask ``[True]``) run through
the same transformer. It is learned rather than all-zero so that prompt dropout during training
can shape it; with no dropout or randomness in the model it is identical on every call, which
classifier-free guidance needs.
"""

from __future__ import annotations

import torch
from torch import nn

from dit.attention import attention
from dit.layers import MLP
from dit.pretrained import Pretrained, register_to_config
from dit.rope import apply_rope

from .text import TextEmbeddings, check_prompts, warn_truncated

PAD = 256  # after the 256 byte values
NULL = 257  # the whole of the unconditional prompt
VOCAB = 258


def utf8_ids(prompt: str, max_length: int, index: int = 0) -> list[int]:
    """Token ids of one prompt: its UTF-8 bytes, or ``[NULL]`` for ``""``.

    Over-long prompts are cut at a character boundary (never inside a multi-byte character),
    so the kept bytes are exactly the encoding of a shorter string.
    """
    data = prompt.encode("utf-8")
    if not data:
        return [NULL]
    if len(data) > max_length:
        cut = max_length
        while data[cut] & 0xC0 == 0x80:  # a continuation byte: back up to the character start
            cut -= 1
        warn_truncated(index, len(data), cut, max_length, "bytes")
        data = data[:cut]
    return list(data)


class TokenEncoder:
    """What the byte and word encoders share once a prompt is token ids: embeddings plus
    positions, pre-norm blocks, a final norm, and a mean-pooled vector. A subclass sets
    ``embed``, ``pos``, ``blocks``, ``norm``, ``pool`` and ``tokenize``."""

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """ids: (B, L) long; mask: (B, L) bool. Returns tokens (B, L, D), pooled (B, P)."""
        x = self.embed(ids) + self.pos[: ids.shape[1]]  # (B, L, D)
        for block in self.blocks:
            x = block(x, mask)
        m = mask[..., None].to(x.dtype)  # (B, L, 1)
        x = self.norm(x) * m  # (B, L, D), zero at padding
        pooled = self.pool(x.sum(1) / m.sum(1))  # (B, P), mean over real tokens
        return x, pooled

    def encode(self, prompts: list[str]) -> TextEmbeddings:
        """Encode prompts (with gradients: this encoder trains with the DiT)."""
        ids, mask = self.tokenize(prompts)
        tokens, pooled = self(ids, mask)
        return TextEmbeddings(tokens, mask, pooled)


class ByteBlock(nn.Module):
    """Pre-norm transformer block; attention goes through the studio's one seam."""

    def __init__(self, width: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.norm2 = nn.LayerNorm(width)
        self.mlp = MLP(width, int(width * mlp_ratio))

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """x: (B, L, D); mask: (B, L) bool, True = real byte. ``rope``: (cos, sin) tables
        (B or 1, L, 1, R/2) that rotate the first R dims of every head's q and k (partial
        rotary positions, GPT-NeoX style); None = no rotation."""
        b, n, d = x.shape
        qkv = self.qkv(self.norm1(x))  # (B, L, 3D)
        q, k, v = qkv.view(b, n, 3, self.heads, d // self.heads).unbind(2)  # (B, L, H, Dh)
        if rope is not None:
            r = 2 * rope[0].shape[-1]
            q, k = (torch.cat([apply_rope(y[..., :r], *rope), y[..., r:]], -1) for y in (q, k))
        q, k, v = (y.transpose(1, 2) for y in (q, k, v))  # (B, H, L, Dh)
        a = attention(q, k, v, mask)  # (B, H, L, Dh)
        x = x + self.proj(a.transpose(1, 2).reshape(b, n, d))  # (B, L, D)
        return x + self.mlp(self.norm2(x))


class ByteTextEncoder(TokenEncoder, Pretrained):
    """Bytes -> (tokens (B, L, width), mask (B, L), pooled (B, pooled_dim)).

    max_length counts bytes (UTF-8), so a CJK character costs 3 and most emoji 4.
    pooled_dim: ``None`` means ``width``.
    """

    @register_to_config
    def __init__(
        self,
        width: int = 128,
        depth: int = 2,
        heads: int = 4,
        max_length: int = 96,
        pooled_dim: int | None = None,
        mlp_ratio: float = 4.0,
    ) -> None:
        super().__init__()
        if width % heads:
            raise ValueError(f"width {width} must be divisible by heads {heads}")
        if max_length < 4:
            raise ValueError(f"max_length={max_length} must be >= 4 bytes (one UTF-8 character)")
        self.width = width
        self.pooled_dim = pooled_dim or width
        self.max_length = max_length
        self.embed = nn.Embedding(VOCAB, width)
        self.pos = nn.Parameter(torch.zeros(max_length, width))
        nn.init.normal_(self.embed.weight, std=0.02)
        nn.init.normal_(self.pos, std=0.02)
        self.blocks = nn.ModuleList(ByteBlock(width, heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(width)
        self.pool = nn.Linear(width, self.pooled_dim)

    def tokenize(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Prompts -> ids (B, L) long, padded with PAD, and mask (B, L) bool, on this device."""
        rows = [utf8_ids(p, self.max_length, i) for i, p in enumerate(check_prompts(prompts))]
        longest = max(len(r) for r in rows)
        ids = torch.full((len(rows), longest), PAD, dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r)
        return ids.to(self.device), (ids != PAD).to(self.device)
