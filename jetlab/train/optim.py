"""Optimisers the :class:`jetlab.train.Trainer` builds by name: AdamW, Adam, SGD and Lion (the
OmniLearn recipe's, not in torch). Split from :mod:`jetlab.train.trainer`, which re-exports them."""

from __future__ import annotations

import torch

__all__ = ["Lion", "build_optimizer"]


class Lion(torch.optim.Optimizer):
    """Lion (Chen et al. 2023, "Symbolic discovery of optimization algorithms"), used by OmniLearn.

    ``update = sign(beta1 m + (1 - beta1) g)``; ``p -= lr (update + wd p)``;
    ``m = beta2 m + (1 - beta2) g``. Use a ~3-10x smaller lr than AdamW.
    """

    def __init__(self, params, lr: float = 1e-4, betas: tuple[float, float] = (0.9, 0.99), weight_decay: float = 0.0):
        if lr <= 0:
            raise ValueError(f"Lion: lr must be > 0, got {lr}")
        if not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"Lion: betas must be in [0, 1), got {betas}")
        super().__init__(params, dict(lr=lr, betas=betas, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            b1, b2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["exp_avg"] = torch.zeros_like(p)
                m = state["exp_avg"]
                if group["weight_decay"]:
                    p.mul_(1 - group["lr"] * group["weight_decay"])
                update = (m * b1 + p.grad * (1 - b1)).sign_()
                p.add_(update, alpha=-group["lr"])
                m.mul_(b2).add_(p.grad, alpha=1 - b2)
        return loss


def build_optimizer(name: str | torch.optim.Optimizer, params, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """``"adamw"``, ``"lion"``, ``"adam"`` or ``"sgd"`` over ``params`` (tensors or param-group dicts)."""
    if isinstance(name, torch.optim.Optimizer):
        return name
    key = str(name).lower()
    if key == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if key == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if key == "lion":
        return Lion(params, lr=lr, weight_decay=weight_decay)
    if key == "sgd":
        return torch.optim.SGD(params, lr=lr, weight_decay=weight_decay, momentum=0.9)
    raise ValueError(f"optimizer must be one of 'adamw', 'lion', 'adam', 'sgd' or a torch Optimizer, got {name!r}")
