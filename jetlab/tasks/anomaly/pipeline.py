"""Notebook 04 as one call: inject signal, run every detector for every seed, measure SIC, the
background model's closeness and sculpting (:func:`run_anomaly` -> :class:`~.results.AnomalyResults`)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

from ..settings import FineTuningSettings
from .detectors import SAME, AnomalyRun, run_cathode, run_idealised, run_supervised
from .events import DEFAULT_SB, DEFAULT_SR, MassWindows, inject_signal, load_dijets
from .results import AnomalyResults

__all__ = ["AnomalySettings", "run_anomaly"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class AnomalySettings(FineTuningSettings):
    """Notebook 04's search: the pseudo-data, the mass windows, CATHODE's background model, the
    classifiers' fine-tuning recipe (:class:`~jetlab.tasks.settings.FineTuningSettings`)."""

    seeds: tuple[int, ...] = (0, 1)
    epochs: int = 3
    lr: float = 1e-3
    #: events to generate / read, with this signal fraction in the file (a reservoir)
    n_events: int = 6000
    file_signal_fraction: float = 0.15
    #: signal events injected into the pseudo-data
    n_signal: int = 300
    #: signal region and sidebands in mjj [TeV]
    sr: tuple[float, float] = DEFAULT_SR
    sb: tuple[tuple[float, float], tuple[float, float]] = DEFAULT_SB
    #: leading particles per jet given to the models (None: all)
    max_particles: int | None = 24
    #: epochs of CATHODE's particle generator (PET) and of its jet-feature generator
    gen_epochs: int = 3
    jet_gen_epochs: int = 100
    #: DDIM steps when sampling particles
    gen_steps: int = 10
    #: synthetic background events per SR data event
    oversample: int = 2
    #: every SR event is scored by a model that did not see it
    kfolds: int = 2
    #: the SIC is trusted where at least this many background events survive the cut
    min_background_events: int = 10
    #: what CATHODE's background generator fine-tunes (default: the same checkpoint)
    generator_checkpoint: Any = SAME

    def windows(self) -> MassWindows:
        return MassWindows(sr=self.sr, sb=self.sb)

    def training(self) -> dict[str, Any]:
        """The keywords every detector trains with (:class:`~.training.TrainingSettings` fields) and
        the SIC's trusted range."""
        return dict(self.recipe(), min_background_events=self.min_background_events, device=self.device)


def _detectors(split, windows: MassWindows, ckpt, s: AnomalySettings, seed: int) -> dict[str, AnomalyRun]:
    """CATHODE (pretrained and scratch, or scratch alone), the idealised and the supervised detector."""
    common = s.training()
    variants = {"CATHODE pretrained": ckpt, "CATHODE scratch": None} if ckpt is not None else {"CATHODE scratch": None}
    runs: dict[str, AnomalyRun] = {}
    for name, c in variants.items():
        runs[name] = run_cathode(
            split,
            windows,
            checkpoint=c,
            config=s.model,
            seed=seed,
            oversample=s.oversample,
            kfolds=s.kfolds,
            gen_epochs=s.gen_epochs,
            jet_epochs=s.jet_gen_epochs,
            gen_steps=s.gen_steps,
            generator_checkpoint=s.generator_checkpoint if c else SAME,
            **common,
        )
    runs["idealised"] = run_idealised(
        split, windows, checkpoint=ckpt, config=s.model, seed=seed, kfolds=s.kfolds, **common
    )
    runs["supervised"] = run_supervised(split, windows, checkpoint=ckpt, config=s.model, seed=seed, **common)
    return runs


def run_anomaly(
    data: str | os.PathLike = "lhco-mini",
    settings: AnomalySettings | None = None,
    *,
    progress: bool = True,
    **changes: Any,
) -> AnomalyResults:
    """The weakly supervised search of notebook 04 for every seed.

    ``settings`` (default :class:`AnomalySettings`), with ``changes`` applied
    (:meth:`AnomalySettings.replace`). ``data`` (a generator name, ``"lhco_rnd"`` or a schema file;
    ``n_events`` events with ``file_signal_fraction`` signal, made with ``seed``) becomes pseudo-data
    with ``n_signal`` injected signal events (:func:`inject_signal`, ``seed``). Per training seed:
    CATHODE fine-tuned from the checkpoint (when ``checkpoint`` resolves to one; ``"auto"`` pretrains
    a tiny PET once if none is found) and from scratch (``model`` preset without a checkpoint), then
    the idealised and the supervised detector with the best available model. Classifiers train
    ``epochs`` with ``optimizer`` at ``lr`` (the pretrained body at ``lr / lr_factor``), on inputs
    scaled per ``input_scaling``; ``min_background_events`` sets the SIC's trusted range
    (:func:`anomaly_metrics`). CATHODE's background generator fine-tunes ``generator_checkpoint``
    (default: the same checkpoint; for an OmniLearned checkpoint, whose generator is not
    jet-conditioned, jetlab's generator from scratch, with a printed notice also kept in
    ``settings["background_generator"]``).
    """
    s = (settings or AnomalySettings()).replace(**changes)
    windows = s.windows()
    events = load_dijets(
        data, s.n_events, seed=s.seed, signal_fraction=s.file_signal_fraction, max_particles=s.max_particles
    )
    split = inject_signal(events, s.n_signal, seed=s.seed)
    ckpt = s.resolve_pretrained(train_if_missing=True, progress=progress)
    if progress:
        summary = split.summary(windows)
        log.info("%s", {k: round(v, 3) if isinstance(v, float) else v for k, v in summary.items()})
        log.info("pretrained checkpoint: %s", ckpt)
    runs: dict[tuple[str, int], AnomalyRun] = {}
    for seed in s.seeds:
        for name, r in _detectors(split, windows, ckpt, s, seed).items():
            runs[(name, seed)] = r
        if progress:
            log.info(
                "seed %s: %s", seed, {m: round(r.metrics["max_sic"], 2) for (m, ss), r in runs.items() if ss == seed}
            )
    recorded = dict(
        seeds=list(s.seeds),
        epochs=s.epochs,
        gen_epochs=s.gen_epochs,
        jet_gen_epochs=s.jet_gen_epochs,
        lr=s.lr,
        lr_factor=s.lr_factor,
        optimizer=s.optimizer,
        input_scaling=s.input_scaling,
        kfolds=s.kfolds,
        oversample=s.oversample,
        n_signal=s.n_signal,
        max_particles=s.max_particles,
        checkpoint=str(ckpt) if ckpt else None,
        background_generator={
            m: r.extras["background_generator"] or "same start as the classifiers"
            for (m, seed), r in runs.items()
            if seed == s.seeds[0] and "background_generator" in r.extras
        },
    )
    return AnomalyResults(runs, split, windows, str(data), recorded)
