"""Training losses: OmniLearn pretraining (CE + jet regression + diffusion) and fine-tuning CE/BCE.

A batch is a dict of tensors ``x (B,P,F)``, ``mask (B,P)``, ``jets (B,J)``, ``label (B,)`` and
``weight (B,)`` (as returned by :class:`jetlab.data.torchdata.JetDataset`); every loss is a
per-jet-weighted mean ``sum(w l) / sum(w)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor

from .diffusion import _weighted_mean, diffusion_step

if TYPE_CHECKING:  # pragma: no cover
    from .pet import PET


@dataclass
class LossWeights:
    """Weights of the pretraining loss terms.

    Defaults follow OmniLearn: every term weighted 1. ``noised`` adds the classifier (CE and
    jet regression) evaluated on the *noisy* diffusion inputs, weighted per jet by alpha^2
    (so nearly-pure noise costs nothing). It reuses the body pass of the diffusion loss, so it
    costs only one extra class-attention head pass.
    """

    ce: float = 1.0  #: classification cross entropy on clean inputs
    mse: float = 1.0  #: regression of the (standardised) jet inputs
    diffusion: float = 1.0  #: v-prediction MSE of the generator head
    noised: bool = True  #: also classify noisy inputs with alpha^2-weighted CE / MSE


def _per_jet_ce(logits: Tensor, label: Tensor) -> Tensor:
    logits = logits.float()
    if logits.shape[-1] == 1:
        return F.binary_cross_entropy_with_logits(logits[:, 0], label.float(), reduction="none")
    return F.cross_entropy(logits, label.long(), reduction="none")


def _per_jet_mse(pred: Tensor, target: Tensor) -> Tensor:
    return ((pred.float() - target.float()) ** 2).mean(-1)


def classification_loss(model: "PET", batch: Mapping[str, Any], groups=None) -> Tensor:
    """Weighted cross entropy (binary cross entropy if the model has one output)."""
    logits, _ = model.classify(batch["x"], batch["mask"], batch["jets"], groups=groups)
    return _weighted_mean(_per_jet_ce(logits, batch["label"]), batch.get("weight"))


def pretraining_loss(
    model: "PET", batch: Mapping[str, Any], weights: LossWeights | None = None, generator: torch.Generator | None = None
) -> tuple[Tensor, dict[str, Tensor]]:
    """``(loss, {"ce", "mse", "diff"})``: total OmniLearn pretraining loss and its detached parts."""
    w = weights if weights is not None else LossWeights()
    x, mask, jets, label = batch["x"], batch["mask"].bool(), batch["jets"], batch["label"]
    jw = batch.get("weight")
    logits, jet_pred = model.classify(x, mask, jets)
    ce_jet = _per_jet_ce(logits, label)
    mse_jet = _per_jet_mse(jet_pred, jets)
    zero = logits.new_zeros((), dtype=torch.float32)
    diff = zero
    if w.diffusion != 0.0 or w.noised:
        step = diffusion_step(model, batch, generator)
        diff = _weighted_mean(step["v_loss_per_jet"], jw)
        if w.noised:
            nl, nj = model.classifier(step["hidden"], mask, jets)
            a2 = step["alpha"].float() ** 2
            ce_jet = ce_jet + a2 * _per_jet_ce(nl, label)
            mse_jet = mse_jet + a2 * _per_jet_mse(nj, jets)
    ce = _weighted_mean(ce_jet, jw)
    mse = _weighted_mean(mse_jet, jw)
    loss = w.ce * ce + w.mse * mse + w.diffusion * diff
    return loss, {"ce": ce.detach(), "mse": mse.detach(), "diff": diff.detach()}
