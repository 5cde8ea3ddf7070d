"""Notebook 04 as one call: inject signal, run every detector for every seed, measure SIC, the
background model's closeness and sculpting (:func:`run_anomaly` -> :class:`~.results.AnomalyResults`)."""

from __future__ import annotations

import logging
import os
from typing import Any, Sequence

import torch

from jetlab.model.factory import DEFAULT_INPUT_SCALING, DEFAULT_LR_FACTOR, DEFAULT_OPTIMIZER

from ..checkpoint_resolver import DEFAULT_PRETRAIN_EPOCHS, DEFAULT_PRETRAIN_JETS, resolve_checkpoint
from .detectors import SAME, AnomalyRun, run_cathode, run_idealised, run_supervised
from .events import DEFAULT_SB, DEFAULT_SR, MassWindows, inject_signal, load_dijets
from .results import AnomalyResults

__all__ = ["run_anomaly"]

log = logging.getLogger(__name__)


def run_anomaly(
    data: str | os.PathLike = "lhco-mini",
    *,
    checkpoint: str | os.PathLike | None = "auto",
    model: Any = "tiny",
    seeds: Sequence[int] = (0, 1),
    lr: float = 1e-3,
    epochs: int = 3,
    output_dir: str | os.PathLike | None = None,
    device: str | torch.device = "auto",
    n_events: int = 6000,
    data_seed: int = 0,
    file_signal_fraction: float = 0.15,
    n_signal: int = 300,
    sr: tuple[float, float] = DEFAULT_SR,
    sb: tuple[tuple[float, float], tuple[float, float]] = DEFAULT_SB,
    max_particles: int | None = 24,
    gen_epochs: int = 3,
    jet_gen_epochs: int = 100,
    gen_steps: int = 10,
    oversample: int = 2,
    kfolds: int = 2,
    batch_size: int = 128,
    lr_factor: float = DEFAULT_LR_FACTOR,
    optimizer: str = DEFAULT_OPTIMIZER,
    input_scaling: str = DEFAULT_INPUT_SCALING,
    min_background_events: int = 10,
    pretrain_jets: int = DEFAULT_PRETRAIN_JETS,
    pretrain_epochs: int = DEFAULT_PRETRAIN_EPOCHS,
    generator_checkpoint: Any = SAME,
    progress: bool = True,
) -> AnomalyResults:
    """The weakly supervised search of notebook 04 for every seed.

    ``data`` (a generator name, ``"lhco_rnd"`` or a schema file; ``n_events`` events with
    ``file_signal_fraction`` signal, made with ``data_seed``) becomes pseudo-data with ``n_signal``
    injected signal events (:func:`inject_signal`, ``data_seed``). Per seed: CATHODE fine-tuned from
    the checkpoint (when ``checkpoint`` resolves to one; ``"auto"`` pretrains a tiny PET once if none
    is found) and from scratch (``model`` preset without a checkpoint), then the idealised and the
    supervised detector with the best available model. Classifiers train ``epochs`` with
    ``optimizer`` at ``lr`` (the pretrained body at ``lr / lr_factor``), on inputs scaled per
    ``input_scaling``; ``min_background_events`` sets the SIC's trusted range (:func:`anomaly_metrics`).
    CATHODE's background generator fine-tunes ``generator_checkpoint`` (default: the same checkpoint;
    for an OmniLearned checkpoint, whose generator is not jet-conditioned, jetlab's generator from
    scratch, with a printed notice also kept in ``settings["background_generator"]``).
    """
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("run_anomaly: seeds must name at least one seed")
    windows = MassWindows(sr=sr, sb=sb)  # it converts to float tuples and validates
    events = load_dijets(
        data, n_events, seed=data_seed, signal_fraction=file_signal_fraction, max_particles=max_particles
    )
    split = inject_signal(events, n_signal, seed=data_seed)
    ckpt = resolve_checkpoint(
        checkpoint,
        output_dir,
        train_if_missing=True,
        n_jets=pretrain_jets,
        epochs=pretrain_epochs,
        seed=data_seed,
        device=device,
        progress=progress,
    )
    if progress:
        summary = split.summary(windows)
        log.info("%s", {k: round(v, 3) if isinstance(v, float) else v for k, v in summary.items()})
        log.info("pretrained checkpoint: %s", ckpt)
    common: dict[str, Any] = dict(
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        lr_factor=lr_factor,
        optimizer=optimizer,
        input_scaling=input_scaling,
        min_background_events=min_background_events,
        device=device,
    )
    variants = {"CATHODE pretrained": ckpt, "CATHODE scratch": None} if ckpt is not None else {"CATHODE scratch": None}
    runs: dict[tuple[str, int], AnomalyRun] = {}
    for s in seeds:
        for name, c in variants.items():
            runs[(name, s)] = run_cathode(
                split,
                windows,
                checkpoint=c,
                config=model,
                seed=s,
                oversample=oversample,
                kfolds=kfolds,
                gen_epochs=gen_epochs,
                jet_epochs=jet_gen_epochs,
                gen_steps=gen_steps,
                generator_checkpoint=generator_checkpoint if c else SAME,
                **common,
            )
        runs[("idealised", s)] = run_idealised(
            split, windows, checkpoint=ckpt, config=model, seed=s, kfolds=kfolds, **common
        )
        runs[("supervised", s)] = run_supervised(split, windows, checkpoint=ckpt, config=model, seed=s, **common)
        if progress:
            log.info("seed %s: %s", s, {m: round(r.metrics["max_sic"], 2) for (m, ss), r in runs.items() if ss == s})
    settings = dict(
        seeds=seeds,
        epochs=epochs,
        gen_epochs=gen_epochs,
        jet_gen_epochs=jet_gen_epochs,
        lr=lr,
        lr_factor=lr_factor,
        optimizer=optimizer,
        input_scaling=input_scaling,
        kfolds=kfolds,
        oversample=oversample,
        n_signal=n_signal,
        max_particles=max_particles,
        checkpoint=str(ckpt) if ckpt else None,
        background_generator={
            m: r.extras["background_generator"] or "same start as the classifiers"
            for (m, s), r in runs.items()
            if s == seeds[0] and "background_generator" in r.extras
        },
    )
    return AnomalyResults(runs, split, windows, str(data), settings)
