"""PET's particle generator with the dijet mass ``mjj`` as an extra condition: the particle stage of
CATHODE's background model (:mod:`jetlab.tasks.anomaly.background`)."""

from __future__ import annotations

from typing import Mapping

from torch import Tensor, nn

from jetlab.model.diffusion import v_loss
from jetlab.model.factory import DEFAULT_LR_FACTOR, body_head_groups
from jetlab.model.pet import PET

__all__ = ["MjjConditionedGenerator"]


class MjjConditionedGenerator(nn.Module):
    """PET's particle generator with ``mjj`` as an extra condition, without touching PET.

    The generator head conditions on the standardised jet features through an MLP; the scaled
    ``mjj`` enters as a learned shift of that jet-feature vector, ``jets + W mjj`` (``W`` starts
    at zero, so a pretrained head starts exactly where pretraining left it). The jet index
    (heavier = 0, lighter = 1) is passed as PET's class label.
    """

    def __init__(self, pet: PET) -> None:
        super().__init__()
        self.pet = pet
        self.mjj_proj = nn.Linear(1, pet.config.num_jet)
        nn.init.zeros_(self.mjj_proj.weight)
        nn.init.zeros_(self.mjj_proj.bias)

    def condition(self, jets: Tensor, mjj_scaled: Tensor) -> Tensor:
        return jets + self.mjj_proj(mjj_scaled.reshape(-1, 1).to(jets.dtype))

    def loss(self, batch: Mapping[str, Tensor]) -> Tensor:
        b = dict(batch)
        b["jets"] = self.condition(batch["jets"], batch["mjj"])
        return v_loss(self.pet, b)

    def param_groups(
        self, lr_head: float, lr_factor: float = DEFAULT_LR_FACTOR, weight_decay: float | None = None
    ) -> list[dict]:
        return body_head_groups(self, self.pet.body, lr_head, lr_factor, weight_decay)
