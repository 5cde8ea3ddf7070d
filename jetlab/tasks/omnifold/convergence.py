"""Convergence of OmniFold's first step: how much sooner does the pretrained PET reach scratch's
best validation loss? One training's curve is as noisy as the gap, so curves are averaged over seeds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from jetlab.train.ddp import resolve_device

from .algorithm import (
    OmniFoldResult,
    balanced,
    check_weights,
    event_splits,
    fit_step,
    length,
    resolve_spec,
    seeded_build,
    step1_parts,
)
from .classifiers import LevelData

__all__ = ["ConvergenceStudy", "convergence_ratio", "epochs_to_reach", "step1_curves"]


def epochs_to_reach(curve: Sequence[tuple[float, float]], target: float) -> float | None:
    """First training time (in epochs) at which a ``(epochs, val_loss)`` curve is ``<= target``,
    linearly interpolated between samples; None if it never gets there."""
    pts = sorted((float(x), float(y)) for x, y in curve)
    for j, (x, y) in enumerate(pts):
        if y <= target:
            if j == 0:
                return x
            x0, y0 = pts[j - 1]
            return x0 + (x - x0) * (y0 - target) / (y0 - y) if y0 != y else x
    return None


def _reach_ratio(cs: Sequence[tuple[float, float]], cp: Sequence[tuple[float, float]]) -> dict[str, float | None]:
    target = min(y for _, y in cs)
    t_s = epochs_to_reach(cs, target)
    t_p = epochs_to_reach(cp, target)
    # t_s is never None in practice (target is the scratch curve's own minimum)
    ratio = float("nan") if t_p is None or t_s is None else (float("inf") if t_p == 0 else t_s / t_p)
    return {
        "target_val_loss": target,
        "scratch_epochs": t_s,
        "pretrained_epochs": t_p,
        "ratio": ratio,
        "pretrained_best_val_loss": min(y for _, y in cp),
    }


def convergence_ratio(
    scratch: OmniFoldResult, pretrained: OmniFoldResult, *, iteration: int = 0, step: str = "step1"
) -> dict[str, float | None]:
    """How much faster the pretrained model reaches the scratch model's best validation loss.

    ``ratio = (epochs scratch needs to reach its best val loss) / (epochs pretrained needs to reach
    that same value)``; > 1 means pretrained converges faster. ``pretrained_epochs`` is None (ratio
    NaN) if the pretrained model never reaches it within its training. One training each: on a
    small sample the curves' noise can decide this, see :class:`ConvergenceStudy` for seeds.
    """
    return _reach_ratio(scratch.histories[iteration][step]["curve"], pretrained.histories[iteration][step]["curve"])


def step1_curves(
    sim_reco: LevelData,
    data_reco: LevelData,
    *,
    classifier_factory,
    seeds: Sequence[int] = (0, 1, 2),
    epochs: int = 4,
    batch_size: int = 256,
    lr: float | None = None,
    early_stopping_patience: int | None = None,
    evals_per_epoch: int = 2,
    validation_fraction: float = 0.2,
    sim_weights=None,
    data_weights=None,
    device: str | torch.device = "auto",
    progress: bool = True,
) -> list[list[tuple[float, float]]]:
    """Validation-loss curves of OmniFold's first step-1 training (data vs simulation at detector
    level), once per seed: the training the paper's convergence figure compares.

    Seed ``s`` uses the same train/validation split and training seed as ``omnifold(seed=s)``, so
    with equal settings its curve equals that run's ``histories[0]["step1"]["curve"]``.
    """
    spec = resolve_spec(classifier_factory)
    if not seeds:
        raise ValueError("step1_curves: seeds must name at least one seed")
    n_sim, n_data = length(sim_reco, "sim_reco"), length(data_reco, "data_reco")
    w0, w1 = balanced(
        check_weights(sim_weights, n_sim, "sim_weights"), check_weights(data_weights, n_data, "data_weights")
    )
    feats = spec.prepare("reco", [sim_reco, data_reco])
    lr = float(lr if lr is not None else spec.lr)
    dev = resolve_device(device)
    curves = []
    for seed in seeds:
        splits = event_splits(n_sim, n_data, validation_fraction, seed, "step1_curves")
        _, rec = fit_step(
            spec,
            seeded_build(spec, "reco", seed),
            feats,
            step1_parts(w0, w1, splits, "train"),
            step1_parts(w0, w1, splits, "val"),
            lr=lr,
            warm=False,
            epochs=epochs,
            batch_size=batch_size,
            early_stopping_patience=early_stopping_patience,
            evals_per_epoch=evals_per_epoch,
            device=dev,
            seed=seed,
            progress=progress,
        )
        curves.append(rec["curve"])
    return curves


@dataclass
class ConvergenceStudy:
    """Step-1 validation-loss curves of several trainings (seeds) per classifier.

    On a small sample one curve's ups and downs are as large as the gap between pretrained and
    scratch, so a single pair can point either way. Averaging the seeds' curves point by point
    (:meth:`mean_curve`) removes most of that noise before :meth:`ratio` asks how much sooner
    the pretrained mean reaches the scratch mean's best value; ``per_seed`` repeats the question
    for each seed pair, to show how stable the answer is.
    """

    curves: dict[str, list[list[tuple[float, float]]]]

    def __post_init__(self) -> None:
        for name, cs in self.curves.items():
            if not cs or any(len(c) < 2 for c in cs):
                raise ValueError(f"ConvergenceStudy: {name!r} needs at least one curve of >= 2 points")

    def _aligned(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(x, curves interpolated at x): the first curve's evaluation points up to where all end
        (early stopping can end some sooner)."""
        if name not in self.curves:
            raise KeyError(f"ConvergenceStudy: no curves for {name!r}; have {sorted(self.curves)}")
        cs = [np.asarray(sorted(c), dtype=np.float64) for c in self.curves[name]]
        end = min(c[-1, 0] for c in cs)
        x = cs[0][:, 0][cs[0][:, 0] <= end + 1e-9]
        return x, np.array([np.interp(x, c[:, 0], c[:, 1]) for c in cs])

    def mean_curve(self, name: str) -> list[tuple[float, float]]:
        """The seeds' curves averaged point by point (over their common range)."""
        x, ys = self._aligned(name)
        return [(float(a), float(b)) for a, b in zip(x, ys.mean(axis=0))]

    def spread(self, name: str) -> list[float]:
        """Standard deviation of the seeds' curves at the :meth:`mean_curve` points."""
        return [float(v) for v in self._aligned(name)[1].std(axis=0)]

    def ratio(self, scratch: str = "scratch", pretrained: str = "pretrained") -> dict[str, Any]:
        """:func:`convergence_ratio`'s numbers on the mean curves, plus the same per seed pair."""
        out: dict[str, Any] = _reach_ratio(self.mean_curve(scratch), self.mean_curve(pretrained))
        out["n_seeds"] = min(len(self.curves[scratch]), len(self.curves[pretrained]))
        out["per_seed"] = [
            _reach_ratio(cs, cp)["ratio"] for cs, cp in zip(self.curves[scratch], self.curves[pretrained])
        ]
        return out
