"""Float32 matmul precision for inference on CUDA.

On an H200, PET's inference forward ran 1.25x (small) and 1.35x (paper) faster with TF32 tensor
cores for float32 matmuls than without, and faster than bf16 autocast (``benchmarks/README.md``,
"GPU check"); training did not gain (paper 0.84x), so only inference asks for it. The setting is
process-global in PyTorch, so it is switched on for the inference call alone and put back after.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

__all__ = ["tf32_inference"]


@contextlib.contextmanager
def tf32_inference(device: torch.device | str) -> Iterator[None]:
    """TF32 matmuls while the block runs, on CUDA only (a CPU's float32 matmuls are left exact)."""
    if torch.device(device).type != "cuda":
        yield
        return
    saved = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("high")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(saved)
