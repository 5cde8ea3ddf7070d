"""A classic peer for the tasks' results tables: :class:`ObservableMLP`, a dense network on a handful
of jet-level observables (the OmniFold "step 1/2" classifier on unbinned observables, and a
high-level-feature tagger). The other classic peer, the Particle Flow Network, is :mod:`jetlab.model.pfn`.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import Tensor, nn

__all__ = ["ObservableMLP", "mlp"]


def mlp(sizes: Sequence[int], dropout: float = 0.0, final_activation: bool = False) -> nn.Sequential:
    """Linear layers ``sizes[0] -> ... -> sizes[-1]`` with ReLU between them."""
    if len(sizes) < 2:
        raise ValueError(f"mlp: need at least an input and an output size, got {list(sizes)}")
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(int(a), int(b)))
        if i < len(sizes) - 2 or final_activation:
            layers.append(nn.ReLU())
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


class ObservableMLP(nn.Module):
    """Dense classifier on jet-level observables ``(B, num_inputs)``.

    The inputs are standardised inside the model with a mean/std stored as buffers (set them
    with :meth:`fit_standardization` on the training data), so a saved model carries its own
    normalisation and callers can pass raw observables (GeV, counts, ...).
    """

    mean: Tensor  # registered buffers
    std: Tensor

    def __init__(
        self,
        num_inputs: int,
        num_classes: int = 1,
        hidden: Sequence[int] = (64, 64, 64),
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if num_inputs < 1 or num_classes < 1:
            raise ValueError(f"ObservableMLP: num_inputs and num_classes must be >= 1, got {num_inputs}, {num_classes}")
        self.num_inputs, self.num_classes = int(num_inputs), int(num_classes)
        self.net = mlp([num_inputs, *hidden, num_classes], dropout=dropout)
        self.register_buffer("mean", torch.zeros(num_inputs))
        self.register_buffer("std", torch.ones(num_inputs))

    @torch.no_grad()
    def fit_standardization(self, features, weights=None) -> "ObservableMLP":
        """Set the input mean/std from (optionally weighted) training features ``(N, num_inputs)``."""
        f = np.asarray(features, dtype=np.float64)
        if f.ndim != 2 or f.shape[1] != self.num_inputs:
            raise ValueError(f"ObservableMLP.fit_standardization: expected shape (N, {self.num_inputs}), got {f.shape}")
        if not np.all(np.isfinite(f)):
            raise ValueError("ObservableMLP.fit_standardization: features contain NaN/inf")
        w = np.ones(len(f)) if weights is None else np.asarray(weights, dtype=np.float64)
        if w.shape != (len(f),) or w.sum() <= 0:
            raise ValueError("ObservableMLP.fit_standardization: weights must be (N,) with a positive sum")
        mean = np.average(f, axis=0, weights=w)
        std = np.sqrt(np.average((f - mean) ** 2, axis=0, weights=w))
        std = np.where(std < 1e-8, 1.0, std)
        self.mean.copy_(torch.as_tensor(mean, dtype=self.mean.dtype))
        self.std.copy_(torch.as_tensor(std, dtype=self.std.dtype))
        return self

    def forward(self, features: Tensor) -> Tensor:
        if features.shape[-1] != self.num_inputs:
            raise ValueError(f"ObservableMLP: expected {self.num_inputs} inputs, got {features.shape[-1]}")
        return self.net((features.to(self.mean.dtype) - self.mean) / self.std)
