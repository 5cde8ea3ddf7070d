"""The three detectors of one seed: CATHODE, the idealised detector and the supervised bound."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from jetlab.data.preprocess import Standardizer
from jetlab.data.schema import JetSet
from jetlab.model import read_card
from jetlab.model.factory import (
    DEFAULT_INPUT_SCALING,
    DEFAULT_LR_FACTOR,
    DEFAULT_OPTIMIZER,
    build_pet,
    scaling_standardizer,
)
from jetlab.model.omnilearned import is_omnilearned_card

from .events import AnomalySplit, MassWindows
from .generator import OMNILEARNED_GENERATOR_NOTE, fit_background_generator
from .metrics import anomaly_metrics, closeness_metrics
from .models import DijetClassifier, dijet_inputs, kfold_scores, restandardize, supervised_scores

__all__ = ["AnomalyRun", "background_generator_source", "run_cathode", "run_idealised", "run_supervised"]

#: ``generator_checkpoint`` default: the classifier's checkpoint, when it can generate (a jetlab one)
SAME = "same"


def background_generator_source(
    checkpoint, generator_checkpoint: Any = SAME, config: Any = "tiny"
) -> tuple[str | os.PathLike | None, str]:
    """``(checkpoint the background generator fine-tunes or None = from scratch, notice)``.

    ``generator_checkpoint="same"`` uses the classifier's ``checkpoint``, except for an OmniLearned one
    (its generator is not jet-conditioned, :data:`OMNILEARNED_GENERATOR_NOTE`): then jetlab's PET
    generator trains from scratch with the ``config`` preset and the notice says so. The notice is
    empty when generator and classifiers start from the same checkpoint.
    """
    if isinstance(generator_checkpoint, str) and generator_checkpoint.strip().lower() == SAME:
        if checkpoint is None or not is_omnilearned_card(read_card(checkpoint)):
            return checkpoint, ""
        return None, (
            f"notice: CATHODE's classifiers fine-tune the OmniLearned checkpoint, but its background "
            f"generator is jetlab's PET generator trained from scratch ({config!r} preset) on the "
            f"sideband: {OMNILEARNED_GENERATOR_NOTE}. Pass generator_checkpoint=<a jetlab checkpoint> "
            "to fine-tune jetlab's pretrained generator instead"
        )
    gen = (
        None
        if generator_checkpoint is None or str(generator_checkpoint).strip().lower() == "none"
        else generator_checkpoint
    )
    if gen == checkpoint:
        return gen, ""
    what = f"fine-tuned from {gen}" if gen is not None else f"trained from scratch ({config!r} preset)"
    return gen, f"notice: CATHODE's background generator is jetlab's PET generator {what}"


@dataclass
class AnomalyRun:
    """One method's outcome on the SR data: out-of-fold ``scores`` for the SR events, ``sb_scores``
    for the sideband events (fold-model average), truth ``labels`` and :func:`anomaly_metrics`."""

    method: str
    seed: int
    scores: np.ndarray
    labels: np.ndarray
    sb_scores: np.ndarray | None
    metrics: dict[str, Any]
    extras: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "seed": self.seed,
            "auc": self.metrics["auc"],
            "max_sic": self.metrics["max_sic"],
        }


def _standardizer_for(checkpoint, split: AnomalySplit, windows: MassWindows, input_scaling: str) -> Standardizer:
    """The checkpoint's scaling (``input_scaling="pretraining"``), else one fitted on the SB data."""
    card = read_card(checkpoint) if checkpoint is not None else None
    std = scaling_standardizer(card, input_scaling=input_scaling, where=str(checkpoint))
    if std is not None:
        return std
    sb = split.data.subset(windows.in_sb(split.data.mjj))
    return Standardizer.fit_jetset(JetSet.concatenate([sb.jet1, sb.jet2]))


def _classifier_factory(checkpoint, config, seed: int) -> Callable[[], DijetClassifier]:
    """Fresh classifiers for the k folds, each initialised from its own seed."""
    counter = [0]

    def make() -> DijetClassifier:
        s = seed * 7919 + counter[0]
        counter[0] += 1
        pet = build_pet(checkpoint, preset=config, num_classes=1, seed=s)
        torch.manual_seed(s)  # the combining MLP
        return DijetClassifier(pet)

    return make


def run_cathode(
    split: AnomalySplit,
    windows: MassWindows,
    *,
    checkpoint: str | os.PathLike | None = None,
    config: Any = "tiny",
    seed: int = 0,
    oversample: int = 4,
    kfolds: int = 3,
    epochs: int = 5,
    gen_epochs: int = 5,
    jet_epochs: int = 100,
    gen_steps: int = 16,
    batch_size: int = 128,
    lr: float = 1e-3,
    lr_factor: float = DEFAULT_LR_FACTOR,
    optimizer: str = DEFAULT_OPTIMIZER,
    input_scaling: str = DEFAULT_INPUT_SCALING,
    min_background_events: int = 10,
    generator_checkpoint: Any = SAME,
    device: str | torch.device = "auto",
    progress: bool = False,
) -> AnomalyRun:
    """The full CATHODE chain for one seed: fit the background model on the SB data, sample
    ``oversample`` x the SR data into the SR (``mjj`` drawn from the SR data), k-fold classify
    SR data vs synthetic. The classifiers fine-tune ``checkpoint``; the generator fine-tunes
    ``generator_checkpoint`` (:func:`background_generator_source`, which prints a notice when it
    differs, e.g. for an OmniLearned ``checkpoint``). ``extras`` hold the generator, the synthetic
    inputs and their physical jet features, the true-background reference inputs (both in the
    generator's scaling), :func:`closeness_metrics` and the ``background_generator`` notice."""
    if oversample < 1:
        raise ValueError(f"run_cathode: oversample must be >= 1, got {oversample}")
    gen_ckpt, notice = background_generator_source(checkpoint, generator_checkpoint, config)
    if notice:
        print(notice, flush=True)
    data = split.data
    sr, sb = windows.in_sr(data.mjj), windows.in_sb(data.mjj)
    gen = fit_background_generator(
        data.subset(sb),
        windows,
        checkpoint=gen_ckpt,
        config=config,
        epochs=gen_epochs,
        jet_epochs=jet_epochs,
        batch_size=batch_size,
        lr=lr,
        lr_factor=lr_factor,
        optimizer=optimizer,
        input_scaling=input_scaling,
        seed=seed,
        device=device,
        progress=progress,
    )
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 51]))
    mjj_syn = rng.choice(data.mjj[sr], size=oversample * int(sr.sum()), replace=True)
    synthetic, syn_features = gen.sample(mjj_syn, seed=seed + 1, steps=gen_steps, device=device)
    std = gen.standardizer
    ref_in = dijet_inputs(split.background.subset(windows.in_sr(split.background.mjj)), std)
    closeness = closeness_metrics(ref_in, synthetic, std, seed=seed)
    # the classifiers' scaling: the generator's, unless they start from another checkpoint (OmniLearned: raw inputs)
    cls_std = std if gen_ckpt == checkpoint else _standardizer_for(checkpoint, split, windows, input_scaling)
    sr_in, sb_in = dijet_inputs(data.subset(sr), cls_std), dijet_inputs(data.subset(sb), cls_std)
    template = synthetic if cls_std is std else restandardize(synthetic, std, cls_std)
    res = kfold_scores(
        sr_in,
        template,
        _classifier_factory(checkpoint, config, seed),
        k=kfolds,
        seed=seed,
        extra=sb_in,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        lr_factor=lr_factor if checkpoint is not None else 1.0,
        optimizer=optimizer,
        device=device,
        progress=progress,
    )
    labels = data.labels[sr]
    metrics = anomaly_metrics(labels, res.scores, min_background_events=min_background_events)
    return AnomalyRun(
        "cathode",
        seed,
        res.scores,
        labels,
        res.extra_scores,
        metrics,
        {
            "generator": gen,
            "synthetic": synthetic,
            "synthetic_features": syn_features,
            "synthetic_mjj": mjj_syn,
            "reference": ref_in,
            "closeness": closeness,
            "fold": res.fold,
            "background_generator": notice,
        },
    )


def run_idealised(
    split: AnomalySplit,
    windows: MassWindows,
    *,
    checkpoint: str | os.PathLike | None = None,
    config: Any = "tiny",
    seed: int = 0,
    kfolds: int = 3,
    epochs: int = 5,
    batch_size: int = 128,
    lr: float = 1e-3,
    lr_factor: float = DEFAULT_LR_FACTOR,
    optimizer: str = DEFAULT_OPTIMIZER,
    input_scaling: str = DEFAULT_INPUT_SCALING,
    min_background_events: int = 10,
    device: str | torch.device = "auto",
    progress: bool = False,
) -> AnomalyRun:
    """Idealised anomaly detector: the same k-fold classifier, but against held-out TRUE SR
    background (a perfect background template) - the ceiling CATHODE can reach."""
    std = _standardizer_for(checkpoint, split, windows, input_scaling)
    data = split.data
    sr, sb = windows.in_sr(data.mjj), windows.in_sb(data.mjj)
    ref_in = dijet_inputs(split.background.subset(windows.in_sr(split.background.mjj)), std)
    res = kfold_scores(
        dijet_inputs(data.subset(sr), std),
        ref_in,
        _classifier_factory(checkpoint, config, seed),
        k=kfolds,
        seed=seed,
        extra=dijet_inputs(data.subset(sb), std),
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        lr_factor=lr_factor if checkpoint is not None else 1.0,
        optimizer=optimizer,
        device=device,
        progress=progress,
    )
    labels = data.labels[sr]
    return AnomalyRun(
        "idealised",
        seed,
        res.scores,
        labels,
        res.extra_scores,
        anomaly_metrics(labels, res.scores, min_background_events=min_background_events),
        {"fold": res.fold},
    )


def run_supervised(
    split: AnomalySplit,
    windows: MassWindows,
    *,
    checkpoint: str | os.PathLike | None = None,
    config: Any = "tiny",
    seed: int = 0,
    epochs: int = 5,
    batch_size: int = 128,
    lr: float = 1e-3,
    lr_factor: float = DEFAULT_LR_FACTOR,
    optimizer: str = DEFAULT_OPTIMIZER,
    input_scaling: str = DEFAULT_INPUT_SCALING,
    min_background_events: int = 10,
    device: str | torch.device = "auto",
    progress: bool = False,
) -> AnomalyRun:
    """Fully supervised upper bound: signal vs background trained on the labelled references
    (SR events of ``split.signal`` and ``split.background``), evaluated on the SR data."""
    std = _standardizer_for(checkpoint, split, windows, input_scaling)
    data = split.data
    sr, sb = windows.in_sr(data.mjj), windows.in_sb(data.mjj)
    sig = split.signal.subset(windows.in_sr(split.signal.mjj))
    if len(sig) < 2:
        raise ValueError(
            f"run_supervised: only {len(sig)} reference signal events in the SR; inject fewer signal "
            "events or generate a file with a larger signal_fraction"
        )
    bkg = split.background.subset(windows.in_sr(split.background.mjj))
    sr_scores, sb_scores = supervised_scores(
        dijet_inputs(sig, std),
        dijet_inputs(bkg, std),
        [dijet_inputs(data.subset(sr), std), dijet_inputs(data.subset(sb), std)],
        _classifier_factory(checkpoint, config, seed),
        seed=seed,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        lr_factor=lr_factor if checkpoint is not None else 1.0,
        optimizer=optimizer,
        device=device,
        progress=progress,
    )
    labels = data.labels[sr]
    return AnomalyRun(
        "supervised",
        seed,
        sr_scores,
        labels,
        sb_scores,
        anomaly_metrics(labels, sr_scores, min_background_events=min_background_events),
    )
