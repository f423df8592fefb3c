"""One interface for every text encoder: prompts in; padded tokens, a mask and a pooled vector out.

Two encoders implement it: :class:`~conditioning.byte_encoder.ByteTextEncoder` (a small
transformer over UTF-8 bytes, trained with the DiT) and
:class:`~conditioning.hf_encoder.HFTextEncoder` (a frozen Hugging Face encoder from a local
folder). ``conditioning.encoders.load_text_encoder`` picks the right one for a folder.

Shared rules, so a pipeline never needs to know which encoder it holds:

* Rows are padded to the longest prompt in the batch; ``mask`` is False on padding and the
  padded token vectors are zero.
* The empty prompt ``""`` is the *unconditional* prompt: every encoder returns one fixed
  encoding for it (deterministic, identical on every call), which classifier-free guidance uses
  as the negative branch. What that encoding is depends on the encoder; see each class.
* A prompt longer than ``max_length`` is cut to fit, with a ``UserWarning`` saying how much was
  dropped and what the limit is.
"""

from __future__ import annotations

import os
import sys
import warnings
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


@dataclass
class TextEmbeddings:
    """What the DiT's text stream consumes.

    tokens: (B, L, D) per-token features, zero at padded positions.
    mask: (B, L) bool, True for real tokens, False for padding.
    pooled: (B, P) one vector per prompt (for the modulation / ``pooled`` input).
    """

    tokens: torch.Tensor
    mask: torch.Tensor
    pooled: torch.Tensor

    def __post_init__(self) -> None:
        if self.tokens.shape[:2] != self.mask.shape or self.pooled.shape[0] != self.mask.shape[0]:
            raise ValueError(
                f"inconsistent shapes: tokens {tuple(self.tokens.shape)}, mask "
                f"{tuple(self.mask.shape)}, pooled {tuple(self.pooled.shape)}"
            )

    def to(
        self, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> TextEmbeddings:
        """Move tokens and pooled (and the mask, without changing its dtype)."""
        return TextEmbeddings(
            self.tokens.to(device=device, dtype=dtype),
            self.mask.to(device=device),
            self.pooled.to(device=device, dtype=dtype),
        )


@runtime_checkable
class TextEncoder(Protocol):
    """Anything with ``encode``; ``width`` is D, ``pooled_dim`` is P, ``max_length`` the cut-off
    (bytes for the byte encoder, tokenizer tokens for Hugging Face ones)."""

    width: int
    pooled_dim: int
    max_length: int

    def encode(self, prompts: list[str]) -> TextEmbeddings: ...


def check_prompts(prompts: list[str]) -> list[str]:
    """Refuse a bare string (it would be encoded one character per prompt) or an empty list."""
    if isinstance(prompts, str):
        raise TypeError("encode takes a list of prompts; wrap a single prompt as [prompt]")
    prompts = list(prompts)
    if not prompts:
        raise ValueError("encode needs at least one prompt; use [''] for the unconditional one")
    bad = [type(p).__name__ for p in prompts if not isinstance(p, str)]
    if bad:
        raise TypeError(f"prompts must be str, got {bad}")
    return prompts


def warn_truncated(index: int, length: int, kept: int, limit: int, unit: str) -> None:
    """The one truncation warning, so every encoder words it the same way.

    It points at the first caller outside this package (the caller of ``encode``), however
    deep the encoder's own calls go.
    """
    level, frame = 2, sys._getframe(1)  # level 2 = our caller, as warnings.warn counts
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame, level = frame.f_back, level + 1
    warnings.warn(
        f"prompt {index} is {length} {unit} long; dropped the last {length - kept} {unit} to fit "
        f"max_length={limit} {unit}",
        UserWarning,
        stacklevel=level,
    )
