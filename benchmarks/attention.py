"""Time and peak memory of every available attention backend, 256 to 16k tokens.

On the CPU the memory column is the growth of the process's resident high-water mark during
one call: exact for large new allocations (the math backend's N x N scores), but memory the
allocator already holds from earlier calls is not counted again.
"""

from __future__ import annotations

import torch

from dit import cpu_flash
from dit.attention import attention, available_backends

from .timing import peak_memory, time_call

SEQ_LENS = (256, 1024, 4096, 16384)
HEADS, HEAD_DIM = 4, 64


def one_call(backend: str, n: int, device: torch.device, dtype: torch.dtype) -> None:
    """One attention call on fresh inputs (the unit whose peak memory is measured)."""
    q, k, v = (torch.randn(1, HEADS, n, HEAD_DIM, device=device, dtype=dtype) for _ in range(3))
    attention(q, k, v, backend=backend)


def attention_rows(device: torch.device, dtype: torch.dtype, seq_lens=SEQ_LENS) -> list[list[str]]:
    rows = []
    for n in seq_lens:
        g = torch.Generator(device="cpu").manual_seed(n)
        q, k, v = (
            torch.randn(1, HEADS, n, HEAD_DIM, generator=g).to(device, dtype) for _ in range(3)
        )
        flops = 4 * HEADS * n * n * HEAD_DIM  # QK^T and AV
        for backend in available_backends():
            if backend == "onednn" and n > cpu_flash.MAX_KEYS:
                continue  # it hands longer sequences to SDPA: the sdpa row is that call
            reps = 3 if n >= 4096 else 7
            median = time_call(lambda b=backend: attention(q, k, v, backend=b), device, 1, reps)
            mem = peak_memory(one_call, (backend, n, device, dtype), device)
            mem_s = f"{mem / 2**20:.0f}" if isinstance(mem, int) else f"failed: {mem[:40]}"
            rows.append(
                [str(n), backend, f"{median * 1e3:.1f}", f"{flops / median / 1e9:.1f}", mem_s]
            )
    return rows


ATTN_HEADER = ["tokens", "backend", "ms", "GFLOP/s", "RSS growth MiB"]
