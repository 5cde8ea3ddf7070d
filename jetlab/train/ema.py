"""Exponential moving average of model weights (PET uses EMA 0.999 for its generator)."""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from torch import nn

__all__ = ["ModelEMA"]


class ModelEMA:
    """Shadow copy of a model's floating-point parameters and buffers.

    ``update(model)`` after each optimiser step; ``swapped(model)`` temporarily loads the averaged
    weights (for evaluation/saving) and puts the live weights back afterwards. A warm-up
    (``decay_t = min(decay, (1+t)/(10+t))``) keeps early averages from being dominated by the
    random initialisation.
    """

    def __init__(self, model: nn.Module, decay: float = 0.999, warmup: bool = True) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"ema decay must be in [0, 1), got {decay}")
        self.decay, self.warmup, self.num_updates = float(decay), warmup, 0
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def current_decay(self) -> float:
        if not self.warmup:
            return self.decay
        return min(self.decay, (1 + self.num_updates) / (10 + self.num_updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        d = self.current_decay()
        self.num_updates += 1
        for k, v in model.state_dict().items():
            s = self.shadow[k]
            if v.dtype.is_floating_point:
                s.mul_(d).add_(v.detach(), alpha=1.0 - d)
            else:
                s.copy_(v)

    def copy_to(self, model: nn.Module) -> None:
        model.load_state_dict(self.shadow)

    @contextlib.contextmanager
    def swapped(self, model: nn.Module) -> Iterator[nn.Module]:
        live = {k: v.detach().clone() for k, v in model.state_dict().items()}
        model.load_state_dict(self.shadow)
        try:
            yield model
        finally:
            model.load_state_dict(live)

    def state_dict(self) -> dict:
        return {"decay": self.decay, "warmup": self.warmup, "num_updates": self.num_updates, "shadow": self.shadow}

    def load_state_dict(self, state: dict) -> None:
        self.decay, self.warmup, self.num_updates = state["decay"], state["warmup"], state["num_updates"]
        for k, v in state["shadow"].items():
            if k not in self.shadow:
                raise KeyError(f"EMA state has unknown tensor {k!r}")
            self.shadow[k].copy_(v)
