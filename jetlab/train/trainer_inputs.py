"""What :class:`jetlab.train.trainer.Trainer` takes: the loss function's contract (:data:`LossFn`, its
``loss`` or ``(loss, parts)`` result, the module DDP wraps around it) and the checks of its arguments."""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

__all__ = ["LossFn", "LossModule", "check_trainer_arguments", "split_loss"]

#: ``loss_fn(model, batch)``; its first argument is the model given to the Trainer (typed Any so a
#: loss may name the concrete class it needs, e.g. ``PET``; Callable parameters are contravariant)
LossFn = Callable[[Any, dict], Any]


class LossModule(nn.Module):
    """Puts ``loss_fn(model, batch)`` inside ``forward`` so DDP's gradient hooks see the whole step
    even when the loss calls model methods other than ``forward`` (PET's body/classify/denoise)."""

    def __init__(self, model: nn.Module, loss_fn: LossFn) -> None:
        super().__init__()
        self.model, self.loss_fn = model, loss_fn

    def forward(self, batch: dict):
        return self.loss_fn(self.model, batch)


def split_loss(out) -> tuple[torch.Tensor, dict[str, float]]:
    """``loss_fn``'s result as (loss tensor, {part name: float}); TypeError for anything else."""
    if isinstance(out, torch.Tensor):
        return out, {}
    if isinstance(out, (tuple, list)) and len(out) == 2 and isinstance(out[0], torch.Tensor):
        parts = {k: float(v.detach() if isinstance(v, torch.Tensor) else v) for k, v in dict(out[1] or {}).items()}
        return out[0], parts
    raise TypeError(f"loss_fn must return a tensor or (tensor, dict of floats), got {type(out).__name__}")


def check_trainer_arguments(
    model: Any,
    loss_fn: Any,
    epochs: int,
    max_steps: int | None,
    batch_size: int,
    checkpoint_every: int | None,
    amp: Any,
    find_unused_parameters: Any,
) -> None:
    """:class:`~jetlab.train.trainer.Trainer`'s argument checks, before it stores anything (TypeError or ValueError naming the argument)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"Trainer: model must be a torch.nn.Module, got {type(model).__name__}")
    if not callable(loss_fn):
        raise TypeError("Trainer: loss_fn must be callable as loss_fn(model, batch)")
    if epochs < 1 and max_steps is None:
        raise ValueError(f"Trainer: epochs must be >= 1, got {epochs}")
    if max_steps is not None and max_steps < 1:
        raise ValueError(f"Trainer: max_steps must be >= 1, got {max_steps}")
    if batch_size < 1:
        raise ValueError(f"Trainer: batch_size must be >= 1, got {batch_size}")
    if checkpoint_every is not None and checkpoint_every < 1:
        raise ValueError(f"Trainer: checkpoint_every must be >= 1 or None, got {checkpoint_every}")
    if amp not in ("auto", "bf16", "fp16", "off", True, False, None):
        raise ValueError(f"Trainer: amp must be 'auto', 'bf16', 'fp16' or 'off', got {amp!r}")
    if find_unused_parameters not in ("auto", True, False):
        raise ValueError(
            f"Trainer: find_unused_parameters must be 'auto', True or False, got {find_unused_parameters!r}"
        )
