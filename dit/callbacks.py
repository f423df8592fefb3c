"""The one per-step callback protocol shared by every sampler, pipeline and modality.

After each step a sampler calls ``callback(StepState(...))``. A callback reports progress,
renders a preview from ``state.preview``, or stops the run by raising :class:`Cancelled`
(``CancelToken.check`` does that when another thread asked for cancellation).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


class Cancelled(Exception):
    """Raised (by a callback) to stop sampling at the end of the current step."""


@dataclass(frozen=True)
class StepState:
    step: int  # 1-based: the number of steps finished
    total: int
    t: float  # time reached; flow: t in [0, 1], masked: share of tokens committed
    state: Any  # the sampler's current state (tensor or dict of tensors)
    preview: Any  # its best guess of the final result (x1 estimate / tokens filled in)


StepCallback = Callable[[StepState], None]


class CancelToken:
    """Thread-safe cancellation: the UI calls ``cancel()``, the sampling loop ``check()``s."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self, _state: StepState | None = None) -> None:
        if self._event.is_set():
            raise Cancelled("cancelled by request")
