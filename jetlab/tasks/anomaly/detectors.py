"""The three detectors of one seed: CATHODE, the idealised detector and the supervised bound."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np
import torch

from jetlab.data.preprocess import Standardizer
from jetlab.data.schema import JetSet
from jetlab.model import read_card
from jetlab.model.dijet_classifier import DijetClassifier
from jetlab.model.factory import build_pet, scaling_standardizer
from jetlab.model.omnilearned import is_omnilearned_card

from .background import OMNILEARNED_GENERATOR_NOTE, fit_background_generator
from .events import AnomalySplit, DijetEvents, MassWindows
from .metrics import anomaly_metrics, closeness_metrics
from .training import (
    TrainingSettings,
    dijet_inputs,
    kfold_scores,
    restandardize,
    supervised_scores,
)

__all__ = ["AnomalyRun", "background_generator_source", "run_cathode", "run_idealised", "run_supervised"]

#: ``generator_checkpoint`` default: the classifier's checkpoint, when it can generate (a jetlab one)
log = logging.getLogger(__name__)

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


@dataclass(frozen=True)
class _Detector:
    """What the three detectors of one seed share: the pseudo-data ``split`` in its ``windows``,
    the classifiers' start (``checkpoint`` or the ``config`` preset from scratch), the ``seed``,
    the :class:`TrainingSettings` and the SIC's trusted range."""

    split: AnomalySplit
    windows: MassWindows
    checkpoint: str | os.PathLike | None
    config: Any
    seed: int
    training: TrainingSettings
    min_background_events: int

    @classmethod
    def of(
        cls,
        where: str,
        split: AnomalySplit,
        windows: MassWindows,
        checkpoint: str | os.PathLike | None,
        config: Any,
        seed: int,
        training: Mapping[str, Any],
        min_background_events: int,
    ) -> _Detector:
        """The detector of a call to ``where``: its ``training`` keywords through
        :meth:`TrainingSettings.from_keywords` (a TypeError names an unknown one)."""
        settings = TrainingSettings.from_keywords(where, training)
        return cls(split, windows, checkpoint, config, seed, settings, min_background_events)

    def standardizer(self) -> Standardizer:
        return _standardizer_for(self.checkpoint, self.split, self.windows, self.training.input_scaling)

    def in_sr(self, events: DijetEvents, std: Standardizer) -> dict[str, np.ndarray]:
        """Dijet inputs of the SR events of ``events``."""
        return dijet_inputs(events.subset(self.windows.in_sr(events.mjj)), std)

    def data_inputs(self, std: Standardizer) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Dijet inputs of the SR and of the SB data."""
        data = self.split.data
        return self.in_sr(data, std), dijet_inputs(data.subset(self.windows.in_sb(data.mjj)), std)

    def classifier_keywords(self) -> dict[str, Any]:
        """:func:`kfold_scores` / :func:`supervised_scores` keywords after the inputs."""
        return dict(
            make_model=_classifier_factory(self.checkpoint, self.config, self.seed),
            seed=self.seed,
            **self.training.classifier_keywords(pretrained=self.checkpoint is not None),
        )

    def kfold(
        self, method: str, std: Standardizer, template: dict[str, np.ndarray], kfolds: int, **extras: Any
    ) -> AnomalyRun:
        """k-fold "SR data vs ``template``" classification (out-of-fold SR scores, fold-average SB scores)."""
        sr_in, sb_in = self.data_inputs(std)
        res = kfold_scores(sr_in, template, k=kfolds, extra=sb_in, **self.classifier_keywords())
        return self.result(method, res.scores, res.extra_scores, extras | {"fold": res.fold})

    def result(
        self, method: str, scores: np.ndarray, sb_scores: np.ndarray | None, extras: Mapping[str, Any] | None = None
    ) -> AnomalyRun:
        """The :class:`AnomalyRun` of SR ``scores`` (and SB ``sb_scores``) with :func:`anomaly_metrics`."""
        data = self.split.data
        labels = data.labels[self.windows.in_sr(data.mjj)]
        metrics = anomaly_metrics(labels, scores, min_background_events=self.min_background_events)
        return AnomalyRun(method, self.seed, scores, labels, sb_scores, metrics, dict(extras or {}))


def run_cathode(
    split: AnomalySplit,
    windows: MassWindows,
    *,
    checkpoint: str | os.PathLike | None = None,
    config: Any = "tiny",
    seed: int = 0,
    oversample: int = 4,
    kfolds: int = 3,
    gen_epochs: int = 5,
    jet_epochs: int = 100,
    gen_steps: int = 16,
    generator_checkpoint: Any = SAME,
    min_background_events: int = 10,
    **training: Any,
) -> AnomalyRun:
    """The full CATHODE chain for one seed: fit the background model on the SB data, sample
    ``oversample`` x the SR data into the SR (``mjj`` drawn from the SR data), k-fold classify
    SR data vs synthetic. The classifiers fine-tune ``checkpoint`` for ``epochs``; the generator
    fine-tunes ``generator_checkpoint`` (:func:`background_generator_source`, which prints a notice
    when it differs, e.g. for an OmniLearned ``checkpoint``) for ``gen_epochs`` with the same
    training settings. ``extras`` hold the generator, the synthetic inputs and their physical jet
    features, the true-background reference inputs (both in the generator's scaling),
    :func:`closeness_metrics` and the ``background_generator`` notice.

    ``training``: the :class:`TrainingSettings` fields as keywords (``epochs``, ``lr``, ...), for the
    classifiers and, with ``epochs=gen_epochs``, the generator; another keyword is a TypeError naming it.
    """
    if oversample < 1:
        raise ValueError(f"run_cathode: oversample must be >= 1, got {oversample}")
    d = _Detector.of("run_cathode", split, windows, checkpoint, config, seed, training, min_background_events)
    gen_ckpt, notice = background_generator_source(checkpoint, generator_checkpoint, config)
    if notice:
        log.info(notice)
    data = split.data
    sr, sb = windows.in_sr(data.mjj), windows.in_sb(data.mjj)
    gen = fit_background_generator(
        data.subset(sb),
        windows,
        checkpoint=gen_ckpt,
        config=config,
        jet_epochs=jet_epochs,
        seed=seed,
        **d.training.keywords(epochs=gen_epochs),
    )
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 51]))
    mjj_syn = rng.choice(data.mjj[sr], size=oversample * int(sr.sum()), replace=True)
    synthetic, syn_features = gen.sample(mjj_syn, seed=seed + 1, steps=gen_steps, device=d.training.device)
    std = gen.standardizer
    ref_in = d.in_sr(split.background, std)
    closeness = closeness_metrics(ref_in, synthetic, std, seed=seed)
    # the classifiers' scaling: the generator's, unless they start from another checkpoint (OmniLearned: raw inputs)
    cls_std = std if gen_ckpt == checkpoint else d.standardizer()
    return d.kfold(
        "cathode",
        cls_std,
        synthetic if cls_std is std else restandardize(synthetic, std, cls_std),
        kfolds,
        generator=gen,
        synthetic=synthetic,
        synthetic_features=syn_features,
        synthetic_mjj=mjj_syn,
        reference=ref_in,
        closeness=closeness,
        background_generator=notice,
    )


def run_idealised(
    split: AnomalySplit,
    windows: MassWindows,
    *,
    checkpoint: str | os.PathLike | None = None,
    config: Any = "tiny",
    seed: int = 0,
    kfolds: int = 3,
    min_background_events: int = 10,
    **training: Any,
) -> AnomalyRun:
    """Idealised anomaly detector: the same k-fold classifier, but against held-out TRUE SR
    background (a perfect background template) - the ceiling CATHODE can reach. ``training``: as
    for :func:`run_cathode`."""
    d = _Detector.of("run_idealised", split, windows, checkpoint, config, seed, training, min_background_events)
    std = d.standardizer()
    return d.kfold("idealised", std, d.in_sr(split.background, std), kfolds)


def run_supervised(
    split: AnomalySplit,
    windows: MassWindows,
    *,
    checkpoint: str | os.PathLike | None = None,
    config: Any = "tiny",
    seed: int = 0,
    min_background_events: int = 10,
    **training: Any,
) -> AnomalyRun:
    """Fully supervised upper bound: signal vs background trained on the labelled references
    (SR events of ``split.signal`` and ``split.background``), evaluated on the SR data.
    ``training``: as for :func:`run_cathode`."""
    d = _Detector.of("run_supervised", split, windows, checkpoint, config, seed, training, min_background_events)
    std = d.standardizer()
    sig = split.signal.subset(windows.in_sr(split.signal.mjj))
    if len(sig) < 2:
        raise ValueError(
            f"run_supervised: only {len(sig)} reference signal events in the SR; inject fewer signal "
            "events or generate a file with a larger signal_fraction"
        )
    sr_scores, sb_scores = supervised_scores(
        dijet_inputs(sig, std), d.in_sr(split.background, std), list(d.data_inputs(std)), **d.classifier_keywords()
    )
    return d.result("supervised", sr_scores, sb_scores)
