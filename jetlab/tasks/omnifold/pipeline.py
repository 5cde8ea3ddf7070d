"""Notebook 03 as one call: unfold with each classifier, study step-1 convergence over seeds,
compare with binned IBU against the truth (:func:`run_omnifold` -> :class:`~.results.OmniFoldResults`)."""

from __future__ import annotations

import logging
import os
from typing import Any, Mapping, Sequence

import torch

from jetlab.data.schema import JetSet
from jetlab.model.factory import DEFAULT_INPUT_SCALING, DEFAULT_LR_FACTOR, DEFAULT_OPTIMIZER
from jetlab.physics import DEFAULT_OBSERVABLES, compute_observables

from ..checkpoint_resolver import DEFAULT_PRETRAIN_EPOCHS, DEFAULT_PRETRAIN_JETS, resolve_checkpoint
from .algorithm import OmniFoldResult, omnifold
from .classifiers import ClassifierSpec, make_classifier
from .convergence import ConvergenceStudy, step1_curves
from .data import load_omnifold_data
from .evaluation import unfold_observables
from .results import _PETS, CLASSIFIERS, OmniFoldResults

__all__ = ["run_omnifold"]

log = logging.getLogger(__name__)


def _specs(
    classifiers: Sequence[str], ckpt, model, observables: Sequence[str], pet_options: Mapping[str, Any]
) -> dict[str, ClassifierSpec]:
    unknown = [c for c in classifiers if c not in CLASSIFIERS]
    if unknown or not classifiers:
        raise ValueError(f"run_omnifold: unknown classifier(s) {unknown}; choose from {list(CLASSIFIERS)}")
    if "pretrained" in classifiers and ckpt is None:
        raise ValueError("run_omnifold: classifiers contains 'pretrained' but no checkpoint was found; set checkpoint")
    specs: dict[str, ClassifierSpec] = {}
    for n in classifiers:
        if n == "mlp":
            specs[n] = make_classifier(n, observables=observables)
        elif n == "pfn":
            specs[n] = make_classifier(n, max_particles=pet_options.get("max_particles"))
        else:
            specs[n] = make_classifier(n, checkpoint=ckpt, config=model, **pet_options)
    return specs


def run_omnifold(
    data: str | os.PathLike | Mapping[str, JetSet] = "zjets-mini",
    *,
    checkpoint: str | os.PathLike | None = "auto",
    model: Any = "tiny",
    seeds: Sequence[int] = (0, 1, 2),
    lr: float | None = None,
    epochs: int = 4,
    output_dir: str | os.PathLike | None = None,
    device: str | torch.device = "auto",
    classifiers: Sequence[str] = CLASSIFIERS,
    n_jets: int = 4000,
    data_seed: int = 0,
    n_iterations: int = 3,
    batch_size: int = 128,
    early_stopping_patience: int | None = 2,
    max_particles: int | None = 48,
    lr_factor: float = DEFAULT_LR_FACTOR,
    optimizer: str = DEFAULT_OPTIMIZER,
    input_scaling: str = DEFAULT_INPUT_SCALING,
    observables: Sequence[str] = DEFAULT_OBSERVABLES,
    bins: int | Mapping[str, Any] = 30,
    n_bootstrap: int = 20,
    pretrain_jets: int = DEFAULT_PRETRAIN_JETS,
    pretrain_epochs: int = DEFAULT_PRETRAIN_EPOCHS,
    step2_init: str = "step1",
    progress: bool = True,
) -> OmniFoldResults:
    """Unfold ``data`` with each of ``classifiers`` and compare with IBU and the truth.

    ``data``: the four event sets of :func:`load_omnifold_data` or anything it reads (``n_jets``
    events per set, generated with ``data_seed``). Each classifier runs :func:`omnifold` with
    ``seeds[0]`` (``n_iterations``, ``epochs`` per step, ``lr`` default: the classifier's own); the
    PETs' first step-1 training is repeated for every other seed (:func:`step1_curves`) and the
    convergence ratio is taken on the seed-averaged curves (:class:`ConvergenceStudy`). The MLP reads
    ``observables``, the PETs and the PFN the leading ``max_particles`` particles. ``checkpoint`` goes through
    :func:`resolve_checkpoint` (``"auto"`` pretrains a tiny PET once when "pretrained" is asked for
    and none is found); "scratch" copies its architecture (``model``, a preset, only without one).
    Fine-tuning uses ``optimizer``, ``lr_factor`` and ``input_scaling`` (:mod:`jetlab.model.factory`);
    ``step2_init`` says where each step 2 starts (:func:`omnifold`).
    The table is :func:`unfold_observables` with ``bins`` and ``n_bootstrap`` resamplings.
    """
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("run_omnifold: seeds must name at least one seed")
    ckpt = None
    if "pretrained" in classifiers or "scratch" in classifiers:
        ckpt = resolve_checkpoint(
            checkpoint,
            output_dir,
            train_if_missing="pretrained" in classifiers,
            n_jets=pretrain_jets,
            epochs=pretrain_epochs,
            seed=data_seed,
            device=device,
            progress=progress,
        )
    if progress:
        log.info("checkpoint: %s", ckpt)
    specs = _specs(
        classifiers,
        ckpt,
        model,
        tuple(observables),
        {
            "max_particles": max_particles,
            "lr_factor": lr_factor,
            "optimizer": optimizer,
            "input_scaling": input_scaling,
        },
    )
    sets = (
        dict(data) if isinstance(data, Mapping) else load_omnifold_data(data, n_jets, seed=data_seed, progress=progress)
    )
    obs = {k: compute_observables(v, list(observables)) for k, v in sets.items()}
    if progress:
        for k, v in sets.items():
            log.info(
                "%-9s: %d jets, <pT> = %.0f GeV, <multiplicity> = %.1f",
                k,
                len(v),
                v.jets[:, 0].mean(),
                v.mask.sum(1).mean(),
            )
    train_kw: dict[str, Any] = dict(
        epochs=epochs,
        batch_size=batch_size,
        early_stopping_patience=early_stopping_patience,
        lr=lr,
        device=device,
        progress=False,
    )
    runs: dict[str, OmniFoldResult] = {}
    for name, spec in specs.items():
        level = ("sim_gen", "sim_reco", "data_reco")
        inputs = [obs[k] for k in level] if name == "mlp" else [sets[k] for k in level]
        runs[name] = omnifold(
            *inputs,
            classifier_factory=spec,
            n_iterations=n_iterations,
            seed=seeds[0],
            step2_init=step2_init,
            **train_kw,
        )
        if progress:
            log.info(
                "%s: %.0f s, epochs to best per iteration: %s", name, runs[name].wall_time, runs[name].epochs_to_best
            )
    pets = [n for n in _PETS if n in runs]
    study = (
        ConvergenceStudy(
            {
                n: [runs[n].histories[0]["step1"]["curve"]]
                + (
                    step1_curves(
                        sets["sim_reco"], sets["data_reco"], classifier_factory=specs[n], seeds=seeds[1:], **train_kw
                    )
                    if len(seeds) > 1
                    else []
                )
                for n in pets
            }
        )
        if pets
        else None
    )
    summary = unfold_observables(
        runs,
        obs["sim_gen"],
        obs["data_gen"],
        tuple(observables),
        bins=bins,
        sim_reco=obs["sim_reco"],
        data_reco=obs["data_reco"],
        n_bootstrap=n_bootstrap,
        seed=data_seed,
    )
    settings = dict(
        classifiers=list(classifiers),
        seeds=seeds,
        n_iterations=n_iterations,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        lr_factor=lr_factor,
        optimizer=optimizer,
        input_scaling=input_scaling,
        max_particles=max_particles,
        step2_init=step2_init,
        checkpoint=str(ckpt) if ckpt else None,
        n_bootstrap=n_bootstrap,
    )
    data_name = os.fspath(data) if isinstance(data, (str, os.PathLike)) else "in-memory"
    return OmniFoldResults(runs, summary, study, obs, str(data_name), settings)
