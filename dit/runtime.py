"""Process-wide CPU runtime settings: keep freed tensor memory instead of unmapping it.

glibc serves every allocation above its mmap threshold (128 KiB, growing to at most 32 MiB)
with a fresh ``mmap`` and returns it with ``munmap`` when freed. A DiT forward allocates and
frees activations of several MB per layer, so each one is page-faulted in again on every
call: on a 2-core VM that costs a third of a forward pass (measured in ``benchmarks``).
Allocators such as jemalloc or tcmalloc avoid it but must be preloaded before Python starts
(what Intel's PyTorch launcher does with ``LD_PRELOAD``); glibc's own ``mallopt`` reaches the
same effect from inside the process, so the studio's entry points call it at start.
"""

from __future__ import annotations

import ctypes
import ctypes.util

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameter numbers
_HEAP_ONLY_BELOW = 1 << 30  # allocations under 1 GiB come from the heap and are reused


def keep_freed_memory() -> bool:
    """Make glibc reuse freed memory for allocations under 1 GiB rather than unmap it.

    Returns True when applied, False where the C library is not glibc (macOS, musl,
    Windows): there it changes nothing and the studio still runs, only slower on CPU.
    Idempotent. The resident size stays at the process's high-water mark instead of
    shrinking between calls, the usual trade of a caching allocator.
    """
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # mallopt returns 1 on success. Setting both also stops glibc's dynamic adjustment.
    return bool(mallopt(_M_MMAP_THRESHOLD, _HEAP_ONLY_BELOW)) and bool(
        mallopt(_M_TRIM_THRESHOLD, 2 * _HEAP_ONLY_BELOW - 1)
    )
