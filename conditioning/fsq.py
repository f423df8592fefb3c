"""Finite scalar quantization (FSQ) autoencoders: images or mel frames <-> grids of codes.

FSQ (Mentzer et al. 2023) bounds each of d latent channels to L_i levels and rounds it; the
code of a position is the mixed-radix number of its d digits, so the codebook has prod(L_i)
entries, needs no codebook loss or commitment term, and every code is used. The masked
models of the studio (Meissonic / MAGNeT style) predict these codes.

One class serves both kinds: ``kind="image"`` is a 2-D conv autoencoder on (B, 3, H, W) in
[-1, 1]; ``kind="mel"`` a 1-D conv autoencoder along time on normalised log-mel frames
(B, F, n_mels). Each of ``down`` stride-2 stages halves the grid: an image code covers
2**down x 2**down pixels, a mel code 2**down frames (the flow model's patch / token).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from dit.codes import mixed_radix_basis
from dit.pretrained import Pretrained, register_to_config


class FSQ(nn.Module):
    """(…, d) unbounded latents -> (…, d) values on a grid of ``levels[i]`` points in [-1, 1]."""

    def __init__(self, levels: list[int]) -> None:
        super().__init__()
        if not levels or any(int(n) < 2 for n in levels):
            raise ValueError(f"levels={levels}: give at least one level count, each >= 2")
        lv = torch.tensor(levels, dtype=torch.float32)
        self.register_buffer("levels", lv, persistent=False)
        self.register_buffer("basis", mixed_radix_basis(tuple(levels)), persistent=False)
        self.codebook_size = math.prod(levels)

    def bound(self, z: torch.Tensor) -> torch.Tensor:
        """Squash to (-(L-1)/2, (L-1)/2), shifted by 1/2 for even L so rounding gives L values."""
        half = (self.levels - 1) * (1 - 1e-3) / 2
        offset = torch.where(self.levels % 2 == 0, 0.5, 0.0)
        shift = torch.atanh(offset / half)
        return torch.tanh(z + shift) * half - offset

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Quantize with a straight-through gradient; output in [-1, 1]."""
        b = self.bound(z)
        q = b + (torch.round(b) - b).detach()
        return q / (self.levels // 2)

    def codes(self, q: torch.Tensor) -> torch.Tensor:
        """(…, d) quantized values -> (…,) long codes in [0, codebook_size)."""
        digits = torch.round(q * (self.levels // 2) + self.levels // 2)  # 0 … L-1 per channel
        return (digits * self.basis).sum(-1).long()

    def values(self, codes: torch.Tensor) -> torch.Tensor:
        """(…,) codes -> (…, d) quantized values (the inverse of :meth:`codes`)."""
        digits = (codes[..., None] // self.basis) % self.levels.long()
        return (digits - self.levels // 2) / (self.levels // 2)


class Residual(nn.Module):
    """x + conv(silu(conv(silu(x)))): the residual unit of the VQGAN / SD VAE coders, without
    their norms (the batches here are small and the media plain)."""

    def __init__(self, conv: type, hidden: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.SiLU(), conv(hidden, hidden, 3, 1, 1), nn.SiLU(), conv(hidden, hidden, 3, 1, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def _stages(conv: type, deconv: type, hidden: int, down: int, blocks: int) -> tuple[list, list]:
    """Stride-2 stages; ``blocks`` residual units at the code grid on each side."""
    enc = [m for _ in range(down) for m in (nn.SiLU(), conv(hidden, hidden, 4, 2, 1))]
    dec = [m for _ in range(down) for m in (nn.SiLU(), deconv(hidden, hidden, 4, 2, 1))]
    enc += [Residual(conv, hidden) for _ in range(blocks)]
    dec[:0] = [Residual(conv, hidden) for _ in range(blocks)]
    return enc, dec


class FSQAutoencoder(Pretrained):
    """Conv encoder -> FSQ -> conv decoder. ``encode`` gives codes, ``decode`` media."""

    @register_to_config
    def __init__(
        self,
        kind: str = "image",
        channels: int = 3,  # image: colour channels; mel: n_mels
        hidden: int = 64,
        down: int = 2,
        levels: list[int] = (8, 5, 5, 5),
        codec: dict | None = None,  # mel: the MelCodec settings of the frames it codes
        blocks: int = 0,  # residual units at the code grid, in the encoder and in the decoder
    ) -> None:
        super().__init__()
        if kind not in ("image", "mel"):
            raise ValueError(f"kind={kind!r}: use 'image' or 'mel'")
        conv, deconv = (
            (nn.Conv2d, nn.ConvTranspose2d) if kind == "image" else (nn.Conv1d, nn.ConvTranspose1d)
        )
        self.kind = kind
        self.fsq = FSQ(list(levels))
        d = len(levels)
        enc, dec = _stages(conv, deconv, hidden, down, blocks)
        self.encoder = nn.Sequential(
            conv(channels, hidden, 3, 1, 1),
            *enc,
            nn.SiLU(),
            conv(hidden, hidden, 3, 1, 1),
            nn.SiLU(),
            conv(hidden, d, 1),
        )
        self.decoder = nn.Sequential(
            conv(d, hidden, 3, 1, 1),
            *dec,
            nn.SiLU(),
            conv(hidden, hidden, 3, 1, 1),
            nn.SiLU(),
            conv(hidden, channels, 3, 1, 1),
        )

    @property
    def codebook_size(self) -> int:
        return self.fsq.codebook_size

    @property
    def factor(self) -> int:
        """Pixels (per side) or frames one code covers."""
        return 2**self.config.down

    def _to_channels_first(self, x: torch.Tensor) -> torch.Tensor:
        return x.transpose(1, 2) if self.kind == "mel" else x  # mel: (B, F, M) -> (B, M, F)

    def quantized(self, x: torch.Tensor) -> torch.Tensor:
        """Media -> (B, d, *grid) quantized latents (straight-through; used in training)."""
        z = self.encoder(self._to_channels_first(x))
        return self.fsq(z.movedim(1, -1)).movedim(-1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruction through the quantizer (what training fits to ``x``)."""
        return self._from_latents(self.quantized(x))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Image (B, 3, H, W) -> codes (B, H/f, W/f); mel (B, F, M) -> codes (B, F/f)."""
        return self.fsq.codes(self.quantized(x).movedim(1, -1))

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes -> media: the inverse layout of :meth:`encode`."""
        q = self.fsq.values(codes).movedim(-1, 1).to(self.dtype)  # (B, d, *grid)
        return self._from_latents(q)

    def _from_latents(self, q: torch.Tensor) -> torch.Tensor:
        x = self.decoder(q)
        return x.transpose(1, 2) if self.kind == "mel" else x
