"""Notebook 03 as one call: unfold with each classifier, study step-1 convergence over seeds,
compare with binned IBU against the truth (:func:`run_omnifold` -> :class:`~.results.OmniFoldResults`)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any, Mapping

from jetlab.data.schema import JetSet
from jetlab.physics import DEFAULT_OBSERVABLES, compute_observables

from ..settings import FineTuningSettings
from .algorithm import OmniFoldResult, omnifold
from .classifiers import ClassifierSpec, make_classifier
from .convergence import ConvergenceStudy, step1_curves
from .data import load_omnifold_data
from .evaluation import unfold_observables
from .results import _PETS, CLASSIFIERS, OmniFoldResults

__all__ = ["OmniFoldSettings", "run_omnifold"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class OmniFoldSettings(FineTuningSettings):
    """Notebook 03's unfolding: which classifiers, how many iterations, how the table is made.

    The fine-tuning recipe (:class:`~jetlab.tasks.settings.FineTuningSettings`) trains every
    classifier; ``lr`` None leaves each classifier its own learning rate.
    """

    #: events per generator setup (sim and data, gen and reco)
    n_jets: int = 4000
    #: among "pretrained", "scratch", "pfn", "mlp"
    classifiers: tuple[str, ...] = CLASSIFIERS
    n_iterations: int = 3
    lr: float | None = None
    early_stopping_patience: int | None = 2
    #: PET and PFN see the leading particles only (None: all)
    max_particles: int | None = 48
    #: where each step 2 starts: "step1" (the step-1 model just trained) or "previous"
    step2_init: str = "step1"
    #: the observables the MLP reads and the table unfolds
    observables: tuple[str, ...] = tuple(DEFAULT_OBSERVABLES)
    #: histogram bins of the table: a count, or per observable
    bins: Any = 30
    #: bootstrap resamplings of the table's uncertainties
    n_bootstrap: int = 20

    def __post_init__(self) -> None:
        super().__post_init__()
        unknown = [c for c in self.classifiers if c not in CLASSIFIERS]
        if unknown or not self.classifiers:
            raise ValueError(f"OmniFoldSettings: unknown classifier(s) {unknown}; choose from {list(CLASSIFIERS)}")

    def training(self) -> dict[str, Any]:
        """The keywords every OmniFold training takes (:func:`omnifold`, :func:`step1_curves`)."""
        return dict(
            epochs=self.epochs,
            batch_size=self.batch_size,
            early_stopping_patience=self.early_stopping_patience,
            lr=self.lr,
            device=self.device,
            progress=False,
        )


def _specs(s: OmniFoldSettings, ckpt) -> dict[str, ClassifierSpec]:
    if "pretrained" in s.classifiers and ckpt is None:
        raise ValueError("run_omnifold: classifiers contains 'pretrained' but no checkpoint was found; set checkpoint")
    pet_options: dict[str, Any] = {
        "max_particles": s.max_particles,
        "lr_factor": s.lr_factor,
        "optimizer": s.optimizer,
        "input_scaling": s.input_scaling,
    }
    specs: dict[str, ClassifierSpec] = {}
    for n in s.classifiers:
        if n == "mlp":
            specs[n] = make_classifier(n, observables=s.observables)
        elif n == "pfn":
            specs[n] = make_classifier(n, max_particles=s.max_particles)
        else:
            specs[n] = make_classifier(n, checkpoint=ckpt, config=s.model, **pet_options)
    return specs


def _checkpoint(s: OmniFoldSettings, progress: bool):
    ckpt = None
    if "pretrained" in s.classifiers or "scratch" in s.classifiers:
        ckpt = s.resolve_pretrained(train_if_missing="pretrained" in s.classifiers, progress=progress)
    if progress:
        log.info("checkpoint: %s", ckpt)
    return ckpt


def _convergence(runs: Mapping[str, OmniFoldResult], sets, specs, s: OmniFoldSettings) -> ConvergenceStudy | None:
    """Step-1 curves of every PET over the seeds: the first seed's from the unfolding itself."""
    pets = [n for n in _PETS if n in runs]
    if not pets:
        return None
    return ConvergenceStudy(
        {
            n: [runs[n].histories[0]["step1"]["curve"]]
            + (
                step1_curves(
                    sets["sim_reco"], sets["data_reco"], classifier_factory=specs[n], seeds=s.seeds[1:], **s.training()
                )
                if len(s.seeds) > 1
                else []
            )
            for n in pets
        }
    )


def _log_sets(sets: Mapping[str, JetSet]) -> None:
    for k, v in sets.items():
        log.info(
            "%-9s: %d jets, <pT> = %.0f GeV, <multiplicity> = %.1f",
            k,
            len(v),
            v.jets[:, 0].mean(),
            v.mask.sum(1).mean(),
        )


def _record(s: OmniFoldSettings, ckpt) -> dict[str, Any]:
    """The settings the results record (JSON)."""
    return dict(
        classifiers=list(s.classifiers),
        seeds=list(s.seeds),
        n_iterations=s.n_iterations,
        epochs=s.epochs,
        batch_size=s.batch_size,
        lr=s.lr,
        lr_factor=s.lr_factor,
        optimizer=s.optimizer,
        input_scaling=s.input_scaling,
        max_particles=s.max_particles,
        step2_init=s.step2_init,
        checkpoint=str(ckpt) if ckpt else None,
        n_bootstrap=s.n_bootstrap,
    )


def run_omnifold(
    data: str | os.PathLike | Mapping[str, JetSet] = "zjets-mini",
    settings: OmniFoldSettings | None = None,
    *,
    progress: bool = True,
    **changes: Any,
) -> OmniFoldResults:
    """Unfold ``data`` with each classifier of ``settings`` and compare with IBU and the truth.

    ``data``: the four event sets of :func:`load_omnifold_data` or anything it reads (``n_jets``
    events per set, generated with ``seed``). ``settings`` (default :class:`OmniFoldSettings`), with
    ``changes`` applied (:meth:`OmniFoldSettings.replace`). Each classifier runs :func:`omnifold` with
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
    s = (settings or OmniFoldSettings()).replace(**changes)
    ckpt = _checkpoint(s, progress)
    specs = _specs(s, ckpt)
    sets = (
        dict(data) if isinstance(data, Mapping) else load_omnifold_data(data, s.n_jets, seed=s.seed, progress=progress)
    )
    obs = {k: compute_observables(v, list(s.observables)) for k, v in sets.items()}
    if progress:
        _log_sets(sets)
    runs: dict[str, OmniFoldResult] = {}
    for name, spec in specs.items():
        level = ("sim_gen", "sim_reco", "data_reco")
        inputs = [obs[k] for k in level] if name == "mlp" else [sets[k] for k in level]
        runs[name] = omnifold(
            *inputs,
            classifier_factory=spec,
            n_iterations=s.n_iterations,
            seed=s.seeds[0],
            step2_init=s.step2_init,
            **s.training(),
        )
        if progress:
            log.info(
                "%s: %.0f s, epochs to best per iteration: %s", name, runs[name].wall_time, runs[name].epochs_to_best
            )
    study = _convergence(runs, sets, specs, s)
    summary = unfold_observables(
        runs,
        obs["sim_gen"],
        obs["data_gen"],
        s.observables,
        bins=s.bins,
        sim_reco=obs["sim_reco"],
        data_reco=obs["data_reco"],
        n_bootstrap=s.n_bootstrap,
        seed=s.seed,
    )
    data_name = os.fspath(data) if isinstance(data, (str, os.PathLike)) else "in-memory"
    return OmniFoldResults(runs, summary, study, obs, str(data_name), _record(s, ckpt))
