"""Notebook 03 as one call: unfold with each classifier, study step-1 convergence over seeds,
compare with binned IBU against the truth (:func:`run_omnifold` -> :class:`OmniFoldResults`)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import torch
from matplotlib.figure import Figure

from jetlab.data.schema import JetSet
from jetlab.model.factory import DEFAULT_INPUT_SCALING, DEFAULT_LR_FACTOR, DEFAULT_OPTIMIZER
from jetlab.physics import DEFAULT_OBSERVABLES, OBSERVABLES, compute_observables
from jetlab.plot import compare_hist, loss_curves, results_table

from ..checkpoints import DEFAULT_PRETRAIN_EPOCHS, DEFAULT_PRETRAIN_JETS, resolve_checkpoint
from ..common import TaskResults
from .algorithm import OmniFoldResult, omnifold
from .classifiers import ClassifierSpec, make_classifier
from .convergence import ConvergenceStudy, step1_curves
from .data import load_omnifold_data
from .evaluation import UnfoldingSummary, unfold_observables

__all__ = ["CLASSIFIERS", "OmniFoldResults", "run_omnifold"]

#: the classifiers notebook 03 compares ("pfn": the original OmniFold's Particle Flow Network)
CLASSIFIERS: tuple[str, ...] = ("pretrained", "scratch", "pfn", "mlp")
log = logging.getLogger(__name__)

_PETS = ("pretrained", "scratch")


@dataclass
class OmniFoldResults(TaskResults):
    """Everything :func:`run_omnifold` produced: one :class:`OmniFoldResult` per classifier
    (``runs``), the triangular-discriminator ``summary`` and the step-1 convergence ``study``."""

    runs: dict[str, OmniFoldResult]
    summary: UnfoldingSummary
    study: ConvergenceStudy | None
    observables: dict[str, dict[str, Any]] = field(repr=False)
    dataset: str = ""
    settings: dict[str, Any] = field(default_factory=dict)

    def convergence(self) -> dict[str, Any] | None:
        """:meth:`ConvergenceStudy.ratio` (pretrained vs scratch, seed-averaged); None without both."""
        return self.study.ratio() if self.study is not None and all(n in self.study.curves for n in _PETS) else None

    def convergence_report(self) -> str:
        """The convergence numbers in two lines (empty without both PETs)."""
        c = self.convergence()
        if c is None:
            return ""
        reach = "never" if c["pretrained_epochs"] is None else f"{c['pretrained_epochs']:.2f} epochs"
        return (
            f"scratch (mean of {c['n_seeds']}) reaches its best val loss {c['target_val_loss']:.5f} after "
            f"{c['scratch_epochs']:.2f} epochs; pretrained reaches it after {reach} -> ratio {c['ratio']:.2f}; "
            f"best val loss pretrained {c['pretrained_best_val_loss']:.5f}\n"
            "per seed: " + ", ".join(f"{r:.2f}" for r in c["per_seed"])
        )

    def explorer_results(self) -> dict[str, dict[str, Any]]:
        """:class:`jetlab.widgets.IterationExplorer` input for the first of pretrained, scratch, mlp."""
        best = next(f"OmniFold-{n}" for n in CLASSIFIERS + tuple(self.runs) if n in self.runs)
        return self.summary.explorer_results(best)

    def table(self):
        """Triangular discriminator x 10^3 per observable (rows) and method (columns). Bold: the
        method closest to the truth for each observable (lowest TD), where it beats the prior."""
        s = self.summary
        methods = [m for m in s.methods if m != "prior"]
        return results_table(
            s.rows(),
            formats={m: ".2f" for m in s.methods},
            row_best="min",
            row_columns=methods,
            row_reference="prior" if "prior" in s.methods else None,
            title="Triangular discriminator x 10^3 (unfolded vs truth; bold: best method per observable, if below the prior)",
        )

    def plots(self) -> dict[str, Figure]:
        """The seed-averaged step-1 validation loss of each PET and every unfolded observable against
        the truth and the prior: ``{file name: Figure}``."""
        figs: dict[str, Figure] = {}
        if self.study is not None:
            curves = {}
            for n, cs in self.study.curves.items():
                mean = self.study.mean_curve(n)
                curves[f"{n} (mean of {len(cs)})"] = {
                    "epoch": [p[0] for p in mean],
                    "val_loss": [p[1] for p in mean],
                    "val_loss_std": self.study.spread(n),
                }
            fig = loss_curves(curves, train=False, ylabel="Step-1 validation loss (iteration 1)")
            fig.axes[0].set_xlabel("Epoch")
            figs["val_loss_step1.png"] = fig
        obs = self.observables
        for o in self.summary.observables:
            samples = {"truth": obs["data_gen"][o], "prior (sim)": obs["sim_gen"][o]}
            weights = {}
            for name, r in self.runs.items():
                samples[f"OmniFold-{name}"] = obs["sim_gen"][o]
                weights[f"OmniFold-{name}"] = r.weights()
            figs[f"unfolded_{o}.png"] = compare_hist(
                samples,
                bins=self.summary.bins[o],
                weights=weights,
                xlabel=OBSERVABLES[o].label if o in OBSERVABLES else o,
                reference="truth",
                rlabel=None,
                ratio_range=(0.6, 1.4),
            )
        return figs

    def to_dict(self) -> dict[str, Any]:
        s = self.summary
        return {
            "dataset": self.dataset,
            "settings": self.settings,
            "triangular_discriminator": {
                m: {o: {"value": v[0], "std": v[1]} for o, v in s.td[m].items()} for m in s.methods
            },
            "per_iteration": {m: {o: v.tolist() for o, v in d.items()} for m, d in s.per_iteration.items()},
            "convergence": self.convergence(),
            "convergence_curves": None if self.study is None else self.study.curves,
            "runs": {n: r.summary() for n, r in self.runs.items()},
        }


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
