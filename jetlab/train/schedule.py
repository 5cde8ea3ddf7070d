"""Learning-rate schedule: linear warm-up then cosine decay (the PET/OmniLearn recipe)."""

from __future__ import annotations

import math

import torch

__all__ = ["WarmupCosine", "warmup_cosine_factor", "make_scheduler"]


def warmup_cosine_factor(step: int, total_steps: int, warmup_steps: int = 0, min_factor: float = 0.0) -> float:
    """Multiplier of the base lr at optimiser step ``step`` (0-based).

    Rises linearly from ``1/(warmup+1)`` to 1 over ``warmup_steps``, then follows a half cosine
    down to ``min_factor`` at ``total_steps``; stays at ``min_factor`` afterwards.
    """
    if step < warmup_steps:
        return (step + 1) / (warmup_steps + 1)
    decay = max(total_steps - warmup_steps, 1)
    progress = min(max(step - warmup_steps, 0) / decay, 1.0)
    return min_factor + (1.0 - min_factor) * 0.5 * (1.0 + math.cos(math.pi * progress))


class WarmupCosine:
    """Picklable lr lambda (so ``LambdaLR.state_dict`` round-trips through checkpoints)."""

    def __init__(self, total_steps: int, warmup_steps: int = 0, min_factor: float = 0.0) -> None:
        if total_steps < 1:
            raise ValueError(f"total_steps must be >= 1, got {total_steps}")
        if warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps}")
        self.total_steps, self.warmup_steps, self.min_factor = int(total_steps), int(warmup_steps), float(min_factor)

    def __call__(self, step: int) -> float:
        return warmup_cosine_factor(step, self.total_steps, self.warmup_steps, self.min_factor)


def make_scheduler(
    optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int = 0, min_factor: float = 0.0
) -> torch.optim.lr_scheduler.LambdaLR:
    """LambdaLR applying :class:`WarmupCosine` to every parameter group's own base lr."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, WarmupCosine(total_steps, warmup_steps, min_factor))
