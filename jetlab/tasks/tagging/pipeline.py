"""Top tagging: fine-tune the foundation model across a detector shift, compare with scratch.

:func:`run_tagging` reproduces, at any scale, the OmniLearn top-tagging study (Table I of the
paper): the pretrained PET fine-tuned on a top-vs-QCD sample simulated with a *different*
detector (toptag-mini: ATLAS-like clusters with pileup, no PID; or the real ATLAS data), against
the *same architecture* trained from scratch and a Particle Flow Network, for several fractions
of the training set and several seeds.

Fair comparison: every model of a (fraction, seed) cell trains on the same jets, validates on the
same jets and is tested on one fixed test set, with the same epochs, batch size, optimiser,
warm-up + cosine schedule and early stopping. The only differences are the initialisation, the
input normalisation (fine-tuning keeps the pretraining standardizer, scratch fits its own) and
the OmniLearn fine-tuning recipe of a smaller body learning rate (``lr_head / lr_factor``; scratch
and PFN train every parameter at ``lr_head``). Per-jet weights (ATLAS ``training_weights``) enter
the loss and every test metric.

Metrics per run: AUC, accuracy at score 0.5, background rejection 1/eps_B at eps_S = 0.5 and 0.8.
eps_B at a working point is *interpolated linearly in eps_S between the two neighbouring ROC
points* (:func:`jetlab.physics.inverse_background_efficiency`, ``method="interp"``). The OmniLearn
evaluation code instead takes the first ROC point with tpr above eps_S; those values are kept
too (``rej_first_above_0.5`` ...) - the two agree to within the ROC's granularity.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch.utils.data import Subset

from jetlab.data.preprocess import Standardizer
from jetlab.data.schema import JetSet
from jetlab.data.torchdata import JetDataset, split_indices
from jetlab.model import read_card
from jetlab.model.factory import build_pet
from jetlab.model.pfn import ParticleFlowNetwork
from jetlab.physics.metrics import inverse_background_efficiency, roc_metrics
from jetlab.simulator.generate import GENERATORS
from jetlab.train import fit_classifier, predict

from ..common import TaskData, TrimmedDataset, load_task_data, max_multiplicity
from ..settings import FineTuningSettings
from .results import MODEL_LABELS, TaggingResults, TaggingRun

__all__ = ["ATLAS_RELEASES", "TaggingSettings", "data_release", "run_tagging"]

log = logging.getLogger(__name__)

_EPS_S = (0.5, 0.8)
_MIN_VAL = 100


# --------------------------------------------------------------------------- helpers
#: which ATLAS release a run read, told from its converted files' names (``schema/<split>/<raw file>.h5``)
ATLAS_RELEASES = {
    "2022": "ATLAS top tagging, CERN Open Data record 15013 (2022, ATL-PHYS-PUB-2022-039): the release of "
    "the OmniLearn paper's Table I",
    "2024": "ATLAS top tagging, CERN Open Data record 80030 (2024, nominal samples): not the release of the "
    "OmniLearn paper's Table I (record 15013, 2022), so its numbers compare only roughly",
}


def data_release(name: str, sources: Sequence[str]) -> str:
    """One line naming the data a tagging run used, for printing next to the paper's numbers."""
    stems = {Path(s).stem for s in sources}
    if name == "atlas_toptag" or any(s.startswith(("train_nominal", "test_nominal")) for s in stems):
        if any(s.startswith(("train_nominal", "test_nominal")) for s in stems):
            return ATLAS_RELEASES["2024"]
        if stems & {"train", "test"}:
            return ATLAS_RELEASES["2022"]
        return "ATLAS top tagging (release not recognised from the file names " + ", ".join(sorted(stems)) + ")"
    if name in GENERATORS:
        return f"{name}: jetlab's generated stand-in (Pythia 8 + parametric detector), not the ATLAS data"
    return f"{name} ({len(stems)} file(s)): not the ATLAS data of the OmniLearn paper"


def _check_binary(js: JetSet, where: str) -> None:
    u = np.unique(js.labels)
    if not np.all(np.isin(u, (0, 1))) or len(u) < 2:
        raise ValueError(f"run_tagging: {where} must have labels 0 (background) and 1 (signal), got {u.tolist()}")


def _subset_sizes(n: int, fraction: float, minimum: int) -> int:
    return int(min(n, max(minimum, round(fraction * n))))


def _test_metrics(labels: np.ndarray, scores: np.ndarray, weights: np.ndarray | None) -> dict[str, float]:
    m = roc_metrics(labels, scores, weights, eps_s=_EPS_S, method="interp")
    out = {k: float(m[k]) for k in ("auc", "accuracy", "rej_at_0.5", "rej_at_0.8")}
    first = inverse_background_efficiency(labels, scores, _EPS_S, weights, method="first_above")
    for e, v in zip(_EPS_S, np.atleast_1d(first)):
        out[f"rej_first_above_{e:g}"] = float(v)
    return out


def _history_dict(h) -> dict[str, Any]:
    return {
        "train_loss": list(h.train_loss),
        "val_loss": list(h.val_loss),
        "best_epoch": h.best_epoch,
        "epochs": len(h.epochs),
        "stopped_early": bool(h.stopped_early),
        "wall_time": float(h.wall_time),
    }


class _Datasets:
    """Model-input datasets of the train pool / val pool / test set for one standardizer."""

    def __init__(self, train: JetSet, val: JetSet, test: JetSet, std: Standardizer, pmax: int) -> None:
        self.train = JetDataset(train, standardizer=std, max_particles=pmax)
        self.val = JetDataset(val, standardizer=std, max_particles=pmax)
        self.test = JetDataset(test, standardizer=std, max_particles=pmax)


@dataclass(frozen=True, kw_only=True)
class TaggingSettings(FineTuningSettings):
    """Notebook 02's study: which models, on how many jets, how split, and how they train.

    Every model of a (fraction, seed) cell trains on the same jets with the fine-tuning recipe of
    :class:`~jetlab.tasks.settings.FineTuningSettings` (scratch and PFN at ``lr`` throughout).
    """

    #: jets to generate / read (None or -1: all of a published dataset)
    n_jets: int | None = None
    #: fractions of the training pool to train on (the learning curve), each in (0, 1]
    fractions: tuple[float, ...] = (1.0, 0.1)
    #: among "finetuned", "scratch", "pfn"
    models: tuple[str, ...] = ("finetuned", "scratch", "pfn")
    #: (train, val, test) fractions without a published test set; else (train, val) of the given jets
    split: tuple[float, ...] = (0.6, 0.2, 0.2)
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_steps: int | None = None
    early_stopping_patience: int | None = None
    #: per-jet weights (ATLAS ``training_weights``) in the training loss
    weights: bool = True
    #: test metrics weighted by the test set's per-jet weights (the paper's evaluation is unweighted)
    weighted_metrics: bool = False
    #: keyword arguments of :class:`~jetlab.model.pfn.ParticleFlowNetwork`
    pfn_kwargs: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        unknown = [m for m in self.models if m not in MODEL_LABELS]
        if unknown or not self.models:
            raise ValueError(f"TaggingSettings: unknown model(s) {unknown}; choose from {list(MODEL_LABELS)}")
        if not self.fractions or any(not 0.0 < f <= 1.0 for f in self.fractions):
            raise ValueError(f"TaggingSettings: fractions must lie in (0, 1], got {list(self.fractions)}")

    def budget(self) -> dict[str, Any]:
        """What every model of the comparison shares (recorded with each run)."""
        return dict(
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            weight_decay=self.weight_decay,
            warmup_steps=self.warmup_steps,
            early_stopping_patience=self.early_stopping_patience,
            optimizer=self.optimizer,
            schedule="warmup+cosine",
            weights=self.weights,
            input_scaling=self.input_scaling,
        )


def _resolve(s: TaggingSettings, progress: bool) -> Path | None:
    """The checkpoint to fine-tune (pretrained once if "auto" finds none and 'finetuned' is asked
    for); a given checkpoint without 'finetuned' still fixes the scratch architecture."""
    ckpt = s.resolve_pretrained(train_if_missing="finetuned" in s.models, progress=progress)
    if ckpt is None and "finetuned" in s.models:
        raise ValueError(
            "run_tagging: model 'finetuned' needs a pretrained checkpoint but checkpoint="
            f"{s.checkpoint!r} gave none; pass a checkpoint path or 'auto', or drop 'finetuned'"
        )
    if ckpt is not None and progress:
        card = read_card(ckpt)
        log.info(
            "checkpoint: %s\npretrained on %s (%s jets), classes: %s",
            ckpt,
            card.training_data,
            card.training_size,
            card.class_names,
        )
    return ckpt


@dataclass
class _Split:
    """The train and validation pools and the one test set of every run."""

    train: JetSet
    val: JetSet
    test: JetSet
    max_particles: int


def _split(task: TaskData, s: TaggingSettings, progress: bool) -> _Split:
    pool = task.jets
    _check_binary(pool, f"dataset {task.name!r}")
    if progress:
        counts = np.bincount(pool.labels, minlength=2)
        log.info(
            "%s: %d jets (%d signal, %d background), test set: %s; feature groups %s",
            task.name,
            len(pool),
            counts[1],
            counts[0],
            "published" if task.test is not None else "split from these jets",
            task.groups,
        )
    if task.test is None:
        if len(s.split) != 3:
            raise ValueError(f"run_tagging: split must be (train, val, test) fractions, got {list(s.split)}")
        tr_idx, va_idx, te_idx = split_indices(len(pool), s.split, seed=s.seed)
        test_js = pool.subset(te_idx)
    else:
        tr_idx, va_idx = split_indices(len(pool), tuple(s.split[:2]), seed=s.seed)
        test_js = task.test
    _check_binary(test_js, "the test set")
    train_js, val_js = pool.subset(tr_idx), pool.subset(va_idx)
    if len(train_js) < 10 or len(val_js) < 2:
        raise ValueError(f"run_tagging: too few jets ({len(pool)}) for a train/val/test split {tuple(s.split)}")
    return _Split(train_js, val_js, test_js, max_multiplicity(train_js, val_js, test_js))


def _network(model_name: str, s: TaggingSettings, ckpt: Path | None, seed: int, groups) -> Any:
    if model_name == "pfn":
        torch.manual_seed(seed)
        return ParticleFlowNetwork(num_classes=1, **dict(s.pfn_kwargs or {}))
    return build_pet(
        ckpt,
        preset=s.model,
        num_classes=1,
        pretrained=model_name == "finetuned",
        seed=seed,
        input_scaling=s.input_scaling,
        groups=groups,
    )


def _run_datasets(net, data: _Split, cache: dict[Any, _Datasets], key, sel_tr, sel_va):
    """(train, val, test) model inputs of one run: the checkpoint's scaling (one per checkpoint:
    datasets of every jet, runs take subsets) or standardised on this run's own training jets."""
    std = getattr(net, "standardizer", None)
    if std is not None:
        if "pre" not in cache:
            cache["pre"] = _Datasets(data.train, data.val, data.test, std, data.max_particles)
        sets = cache["pre"]
        train_ds = TrimmedDataset(Subset(sets.train, sel_tr.tolist()))
        val_ds = TrimmedDataset(Subset(sets.val, sel_va.tolist()))
    else:
        if key not in cache:
            own = Standardizer.fit_jetset(data.train.subset(sel_tr))
            cache[key] = _Datasets(
                data.train.subset(sel_tr), data.val.subset(sel_va), data.test, own, data.max_particles
            )
        sets = cache[key]
        train_ds, val_ds = TrimmedDataset(sets.train), TrimmedDataset(sets.val)
    return train_ds, val_ds, TrimmedDataset(sets.test)


def _train_and_test(model_name, net, datasets, s: TaggingSettings, seed: int, test_labels, metric_weights):
    """Fit one model, score the test jets: (metrics, history, scores, seconds)."""
    train_ds, val_ds, test_ds = datasets
    factor = float(s.lr_factor) if model_name == "finetuned" else 1.0
    t0 = time.perf_counter()
    hist = fit_classifier(
        net,
        train_ds,
        val_ds,
        lr_head=s.lr,
        lr_factor=factor,
        epochs=s.epochs,
        batch_size=s.batch_size,
        weights=s.weights,
        early_stopping_patience=s.early_stopping_patience,
        seed=seed,
        device=s.device,
        weight_decay=s.weight_decay,
        warmup_steps=s.warmup_steps,
        optimizer=s.optimizer,
        progress=False,
    )
    scores = predict(net, test_ds, batch_size=512, device=s.device)
    seconds = time.perf_counter() - t0
    return _test_metrics(test_labels, scores, metric_weights), hist, scores, seconds


def _log_run(model_name: str, frac: float, n_tr: int, seed: int, metrics: Mapping[str, float], seconds: float) -> None:
    log.info(
        "%9s  %s (%6d jets)  seed %s:  AUC %.4f  acc %.4f  1/eps_B@0.5 %7.1f  @0.8 %6.1f  [%.0f s]",
        model_name,
        f"{frac:6.1%}",
        n_tr,
        seed,
        metrics["auc"],
        metrics["accuracy"],
        metrics["rej_at_0.5"],
        metrics["rej_at_0.8"],
        seconds,
    )


def _record(s: TaggingSettings, ckpt: Path | None, task: TaskData, split: _Split) -> dict[str, Any]:
    """The settings the results record (JSON): the shared budget, the study's shape, the data."""
    return dict(
        s.budget(),
        lr_factor=float(s.lr_factor),
        fractions=list(s.fractions),
        seeds=list(s.seeds),
        models=list(s.models),
        split=list(s.split),
        seed=s.seed,
        checkpoint=str(ckpt) if ckpt else None,
        groups=list(task.groups),
        n_train_pool=len(split.train),
        n_val_pool=len(split.val),
        n_test=len(split.test),
        max_particles=split.max_particles,
        dataset_sources=list(task.sources),
        weighted_metrics=s.weighted_metrics,
        data_release=data_release(task.name, task.sources),
    )


def run_tagging(
    data: TaskData | str | os.PathLike | JetSet | Sequence[str | os.PathLike],
    settings: TaggingSettings | None = None,
    *,
    progress: bool = True,
    **changes: Any,
) -> TaggingResults:
    """Train every model of ``settings.models`` for every training fraction and seed; test them all.

    ``data``: a :class:`TaskData`, or anything :func:`load_task_data` accepts (``settings.n_jets``
    jets). ``settings`` (default :class:`TaggingSettings`), with ``changes`` applied
    (:meth:`TaggingSettings.replace`: ``run_tagging(data, epochs=1)`` works too). Without a
    dataset test set the jets are split ``split`` = (train, val, test) by ``seed`` (the same test
    set for every run); with one (ATLAS) the given jets are split into train/val by ``split[:2]``.
    A run with fraction f and training seed s trains on the first f of the training pool in an
    order drawn from s, validates on the same fraction of the validation pool (at least 100 jets),
    and initialises its network from s.

    ``checkpoint`` goes through :func:`resolve_checkpoint` with ``output_dir`` (``"auto"`` pretrains
    a tiny PET once on ``pretrain_jets`` jets for ``pretrain_epochs`` epochs if none is found and
    ``"finetuned"`` is asked for); the scratch PET copies the checkpoint's architecture (``model``,
    a :meth:`PETConfig.preset`, is used only without one). Fine-tuning trains the body at ``lr /
    lr_factor`` with ``optimizer`` and scales its inputs per ``input_scaling``
    (:mod:`jetlab.model.factory`); scratch and PFN train every parameter at ``lr`` on inputs
    standardised on their own training jets. With ``weights`` the per-jet weights (ATLAS
    ``training_weights``) enter the training loss. Test metrics are unweighted, as in the reference
    evaluation (OmniLearn: ``roc_curve(y, p)`` on the ATLAS test set); ``weighted_metrics=True``
    weights them by the test set's per-jet weights, and the table title and JSON say so.
    """
    s = (settings or TaggingSettings()).replace(**changes)
    ckpt = _resolve(s, progress)
    task = data if isinstance(data, TaskData) else load_task_data(data, s.n_jets, seed=s.seed, progress=progress)
    split = _split(task, s, progress)
    test_labels = split.test.labels.astype(np.int64)
    test_weights = split.test.weights.astype(np.float64) if s.weighted_metrics else np.ones(len(split.test))
    metric_weights = test_weights if s.weighted_metrics else None
    cache: dict[Any, _Datasets] = {}  # model-input datasets per standardizer (pretraining's: shared by every run)
    runs: list[TaggingRun] = []
    for frac in s.fractions:
        n_tr = _subset_sizes(len(split.train), frac, 10)
        n_va = _subset_sizes(len(split.val), frac, min(_MIN_VAL, len(split.val)))
        for seed in s.seeds:
            rng = np.random.default_rng(np.random.SeedSequence([seed, 1234]))
            sel_tr = np.sort(rng.permutation(len(split.train))[:n_tr])
            sel_va = np.sort(rng.permutation(len(split.val))[:n_va])
            for model_name in s.models:
                net = _network(model_name, s, ckpt, seed, task.groups)
                datasets = _run_datasets(net, split, cache, (frac, seed), sel_tr, sel_va)
                metrics, hist, scores, seconds = _train_and_test(
                    model_name, net, datasets, s, seed, test_labels, metric_weights
                )
                factor = float(s.lr_factor) if model_name == "finetuned" else 1.0
                budget = dict(s.budget(), lr_factor=factor)
                scores = np.asarray(scores, dtype=np.float32)
                runs.append(
                    TaggingRun(
                        model_name, frac, seed, n_tr, n_va, metrics, budget, _history_dict(hist), seconds, scores
                    )
                )
                if progress:
                    _log_run(model_name, frac, n_tr, seed, metrics, seconds)
                del net
            for key in [k for k in cache if k != "pre"]:
                del cache[key]
    return TaggingResults(runs, test_labels, test_weights, task.name, _record(s, ckpt, task, split))
