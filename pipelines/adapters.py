"""Adapters fixed for the length of a request, whatever runs beside it.

A pipeline is cached and shared: the app runs ``--concurrency`` jobs at once and the batch
runner several requests per model. Adapters are merged into (or injected in) the one cached
transformer, so two requests with different adapters must not overlap. ``AdapterGate`` lets
requests asking for the same adapters (the common case: none) sample together, and makes a
request asking for others wait until those in flight finish, then switches the adapters and
goes (a readers-writer gate; the switch is the writer). LTX-2 fixes adapters when a pipeline
is built; a gate keeps one cached model per folder (RAM) and costs nothing when adapters agree.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

Loras = tuple[tuple[str, float], ...]


class AdapterGate:
    """``with gate.hold(loras):`` the transformer carries exactly ``loras`` until the block ends.

    ``apply(loras)`` switches the adapters (idempotent; raises ValueError for a bad one, and
    then nothing is held)."""

    def __init__(self, apply: Callable[[Loras], None]) -> None:
        self._apply = apply
        self._cond = threading.Condition()
        self._active = 0  # requests inside hold()
        self._current: Loras = ()

    @contextmanager
    def hold(self, loras: Loras) -> Iterator[None]:
        loras = tuple((str(p), float(s)) for p, s in loras)
        with self._cond:
            while self._active and loras != self._current:
                self._cond.wait()
            self._apply(loras)  # a no-op when they are already on
            self._current = loras
            self._active += 1
        try:
            yield
        finally:
            with self._cond:
                self._active -= 1
                self._cond.notify_all()
