"""The event classifier of the dijet anomaly search (CATHODE, :mod:`jetlab.tasks.anomaly`): both jets
through one (pretrained or scratch) PET body, their summaries combined by an MLP."""

from __future__ import annotations

from typing import Any, Mapping, cast

import torch
from torch import Tensor, nn

from jetlab.model.factory import DEFAULT_LR_FACTOR, body_head_groups

__all__ = ["DijetClassifier"]


def _jet_embedding(pet, x: Tensor, mask: Tensor, jets: Tensor) -> Tensor:
    """PET's per-jet summary: body, then the classifier head up to its final norm (class token);
    a backbone with its own ``jet_embedding`` (a converted OmniLearned PET2) gives that."""
    mask = mask.bool()
    if hasattr(pet, "jet_embedding"):
        return pet.jet_embedding(x, mask, jets)
    return pet.classifier.summary(pet.body(x, mask), mask, jets)


class DijetClassifier(nn.Module):
    """Event classifier on both jets: one shared PET embeds each jet, an MLP combines the two.

    The body is shared (and pretrained when PET comes from a checkpoint); the combination sees the
    class-token summaries of the heavier and the lighter jet side by side, so correlations between
    the two jets (the signal's two resonances) are learnable.
    """

    def __init__(self, pet: nn.Module) -> None:
        super().__init__()
        # a PET or an OmniLearnedModel, used duck-typed (body, config or embedding_dim, classify)
        duck = cast(Any, pet)
        self.pet: Any = duck
        d = int(getattr(duck, "embedding_dim", 0) or duck.config.projection_dim)
        self.combine = nn.Sequential(nn.Linear(2 * d, d), nn.GELU(), nn.Linear(d, 1))

    def forward(self, batch: Mapping[str, Tensor]) -> Tensor:
        c1 = _jet_embedding(self.pet, batch["x1"], batch["mask1"], batch["jets1"])
        c2 = _jet_embedding(self.pet, batch["x2"], batch["mask2"], batch["jets2"])
        return self.combine(torch.cat([c1, c2], dim=-1))[:, 0]

    def param_groups(
        self, lr_head: float, lr_factor: float = DEFAULT_LR_FACTOR, weight_decay: float | None = None
    ) -> list[dict]:
        """Body at ``lr_head / lr_factor`` (the OmniLearn fine-tuning recipe), everything else at ``lr_head``."""
        return body_head_groups(self, self.pet.body, lr_head, lr_factor, weight_decay)
