"""Particle Flow Network (Deep Sets), the particle-level classifier of the original OmniFold.

Komiske, Metodiev, Thaler, "Energy Flow Networks: Deep Sets for Particle Jets", JHEP 01 (2019)
121 (arXiv:1810.05165): a per-particle network ``Phi``, a sum over the jet's real particles (so
the output does not depend on particle order or on padding) and a network ``F`` on that sum.
Andreassen et al., "OmniFold" (arXiv:1911.09107) unfolded with EnergyFlow's PFN, ``Phi`` sizes
(100, 100, 256) and ``F`` sizes (100, 100, 100) (``ericmetodiev/OmniFold``, ``train.py``:
``--Phi-sizes`` / ``--F-sizes`` defaults): :data:`OMNIFOLD_PHI_SIZES`, :data:`OMNIFOLD_F_SIZES`.

The network reads PET's inputs (``x, mask, jets`` from :func:`jetlab.data.preprocess.model_inputs`),
so it trains and predicts through the same code as PET.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

__all__ = ["OMNIFOLD_F_SIZES", "OMNIFOLD_PHI_SIZES", "ParticleFlowNetwork"]

#: the OmniFold paper's PFN (ericmetodiev/OmniFold train.py defaults)
OMNIFOLD_PHI_SIZES: tuple[int, ...] = (100, 100, 256)
OMNIFOLD_F_SIZES: tuple[int, ...] = (100, 100, 100)


def _dense(sizes: Sequence[int], dropout: float = 0.0) -> nn.Sequential:
    """Linear layers ``sizes[0] -> ... -> sizes[-1]``, each followed by a ReLU (EnergyFlow's default
    activation, on every Phi and F layer)."""
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(int(a), int(b)), nn.ReLU()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


class ParticleFlowNetwork(nn.Module):
    """``F(sum_i Phi(x_i))`` over the real particles of a jet.

    ``phi_sizes`` are the widths of ``Phi`` (the last one is the latent dimension), ``f_sizes`` those
    of ``F``. With ``use_jet_features`` the 4 standardised jet inputs are concatenated to the latent
    sum (off by default, as in the original PFN). ``forward`` returns ``(B, num_classes)`` logits;
    one class means a single logit for binary cross entropy (as PET's binary heads). Padded slots
    contribute exactly nothing, whatever they hold (NaN included).
    """

    def __init__(
        self,
        num_feat: int = 13,
        num_classes: int = 1,
        phi_sizes: Sequence[int] = (100, 100, 128),
        f_sizes: Sequence[int] = (100, 100, 100),
        *,
        num_jet: int = 4,
        use_jet_features: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"ParticleFlowNetwork: num_classes must be >= 1, got {num_classes}")
        if not phi_sizes or not f_sizes:
            raise ValueError("ParticleFlowNetwork: phi_sizes and f_sizes need at least one layer each")
        self.num_feat, self.num_classes = int(num_feat), int(num_classes)
        self.use_jet_features = bool(use_jet_features)
        self.phi = _dense([num_feat, *phi_sizes])
        latent = int(phi_sizes[-1]) + (int(num_jet) if use_jet_features else 0)
        self.f = _dense([latent, *f_sizes], dropout=dropout)
        self.out = nn.Linear(int(f_sizes[-1]), num_classes)

    def latent(self, x: Tensor, mask: Tensor, jets: Tensor | None = None) -> Tensor:
        """The jet's latent vector ``sum_i Phi(x_i)`` over real particles (padding gives exactly 0)."""
        if x.shape[-1] != self.num_feat:
            raise ValueError(f"ParticleFlowNetwork: expected {self.num_feat} particle features, got {x.shape[-1]}")
        real = mask.bool().unsqueeze(-1)
        # zero the padded inputs before Phi and its outputs after: garbage (inf, NaN) there cannot leak
        per_particle = self.phi(torch.where(real, x, torch.zeros((), dtype=x.dtype, device=x.device)))
        z = torch.where(real, per_particle, torch.zeros((), dtype=per_particle.dtype, device=x.device)).sum(1)
        if self.use_jet_features:
            if jets is None:
                raise ValueError("ParticleFlowNetwork(use_jet_features=True) needs the jets tensor")
            z = torch.cat([z, jets.to(z.dtype)], dim=-1)
        return z

    def forward(self, x: Tensor, mask: Tensor, jets: Tensor | None = None) -> Tensor:
        return self.out(self.f(self.latent(x, mask, jets)))

    def classify(self, x: Tensor, mask: Tensor, jets: Tensor | None = None, groups=None) -> tuple[Tensor, None]:
        """PET-compatible ``(logits, None)`` (no jet regression); ``groups`` is accepted and ignored."""
        return self.forward(x, mask, jets), None

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
