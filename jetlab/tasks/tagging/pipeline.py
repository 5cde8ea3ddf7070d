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
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch.utils.data import Subset

from jetlab.data.preprocess import Standardizer
from jetlab.data.schema import JetSet
from jetlab.data.torchdata import JetDataset, split_indices
from jetlab.model import read_card
from jetlab.model.factory import (
    DEFAULT_INPUT_SCALING,
    DEFAULT_LR_FACTOR,
    DEFAULT_OPTIMIZER,
    build_pet,
    check_recipe,
)
from jetlab.model.pfn import ParticleFlowNetwork
from jetlab.physics.metrics import inverse_background_efficiency, roc_metrics
from jetlab.simulator.generate import GENERATORS
from jetlab.train import fit_classifier, predict

from ..checkpoint_resolver import DEFAULT_PRETRAIN_EPOCHS, DEFAULT_PRETRAIN_JETS, resolve_checkpoint
from ..common import TaskData, TrimmedDataset, load_task_data, max_multiplicity
from .results import MODEL_LABELS, TaggingResults, TaggingRun

__all__ = ["ATLAS_RELEASES", "data_release", "run_tagging"]

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


def _resolve(
    checkpoint,
    models: Sequence[str],
    output_dir,
    pretrain_jets: int,
    pretrain_epochs: int,
    seed: int,
    device,
    progress: bool,
) -> Path | None:
    """The checkpoint to fine-tune (pretrained once if "auto" finds none and 'finetuned' is asked
    for); a given checkpoint without 'finetuned' still fixes the scratch architecture."""
    ckpt = resolve_checkpoint(
        checkpoint,
        output_dir,
        train_if_missing="finetuned" in models,
        n_jets=pretrain_jets,
        epochs=pretrain_epochs,
        seed=seed,
        device=device,
        progress=progress,
    )
    if ckpt is None and "finetuned" in models:
        raise ValueError(
            "run_tagging: model 'finetuned' needs a pretrained checkpoint but checkpoint="
            f"{checkpoint!r} gave none; pass a checkpoint path or 'auto', or drop 'finetuned'"
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


def run_tagging(
    data: TaskData | str | os.PathLike | JetSet | Sequence[str | os.PathLike],
    *,
    checkpoint: str | os.PathLike | None = "auto",
    model: Any = "tiny",
    seeds: Sequence[int] = (0, 1, 2),
    lr: float = 1e-3,
    epochs: int = 4,
    output_dir: str | os.PathLike | None = None,
    device: str | torch.device = "auto",
    fractions: Sequence[float] = (1.0, 0.1),
    batch_size: int = 128,
    lr_factor: float = DEFAULT_LR_FACTOR,
    optimizer: str = DEFAULT_OPTIMIZER,
    input_scaling: str = DEFAULT_INPUT_SCALING,
    weight_decay: float = 0.01,
    warmup_steps: int | None = None,
    early_stopping_patience: int | None = None,
    models: Sequence[str] = ("finetuned", "scratch", "pfn"),
    n_jets: int | None = None,
    split: Sequence[float] = (0.6, 0.2, 0.2),
    split_seed: int = 0,
    weights: bool = True,
    weighted_metrics: bool = False,
    pfn_kwargs: Mapping[str, Any] | None = None,
    pretrain_jets: int = DEFAULT_PRETRAIN_JETS,
    pretrain_epochs: int = DEFAULT_PRETRAIN_EPOCHS,
    progress: bool = True,
) -> TaggingResults:
    """Train every model in ``models`` for every training ``fraction`` and ``seed``; test them all.

    ``data``: a :class:`TaskData`, or anything :func:`load_task_data` accepts (with ``n_jets``).
    Without a dataset test set the jets are split ``split`` = (train, val, test) by ``split_seed``
    (the same test set for every run); with one (ATLAS) the given jets are split into train/val
    by ``split[:2]``. A run with ``fraction`` f and ``seed`` s trains on the first f of the
    training pool in an order drawn from s, validates on the same fraction of the validation
    pool (at least 100 jets), and initialises its network from s.

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
    unknown = [m for m in models if m not in MODEL_LABELS]
    if unknown or not models:
        raise ValueError(f"run_tagging: unknown model(s) {unknown}; choose from {list(MODEL_LABELS)}")
    optimizer, input_scaling, lr_factor = check_recipe(optimizer, input_scaling, lr_factor, "run_tagging")
    fractions = [float(f) for f in fractions]
    if not fractions or any(not 0.0 < f <= 1.0 for f in fractions):
        raise ValueError(f"run_tagging: fractions must lie in (0, 1], got {fractions}")
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("run_tagging: need at least one seed")
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"run_tagging: epochs and batch_size must be >= 1, got {epochs}, {batch_size}")
    ckpt = _resolve(checkpoint, models, output_dir, pretrain_jets, pretrain_epochs, split_seed, device, progress)
    task = data if isinstance(data, TaskData) else load_task_data(data, n_jets, seed=split_seed, progress=progress)
    groups = task.groups
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
            groups,
        )
    if task.test is None:
        if len(split) != 3:
            raise ValueError(f"run_tagging: split must be (train, val, test) fractions, got {split}")
        tr_idx, va_idx, te_idx = split_indices(len(pool), split, seed=split_seed)
        test_js = pool.subset(te_idx)
    else:
        tr_idx, va_idx = split_indices(len(pool), tuple(split[:2]), seed=split_seed)
        test_js = task.test
    _check_binary(test_js, "the test set")
    train_js, val_js = pool.subset(tr_idx), pool.subset(va_idx)
    if len(train_js) < 10 or len(val_js) < 2:
        raise ValueError(f"run_tagging: too few jets ({len(pool)}) for a train/val/test split {tuple(split)}")
    pmax = max_multiplicity(train_js, val_js, test_js)
    test_labels = test_js.labels.astype(np.int64)
    test_weights = test_js.weights.astype(np.float64) if weighted_metrics else np.ones(len(test_js))
    metric_weights = test_weights if weighted_metrics else None

    budget = dict(
        epochs=int(epochs),
        batch_size=int(batch_size),
        lr=float(lr),
        weight_decay=float(weight_decay),
        warmup_steps=warmup_steps,
        early_stopping_patience=early_stopping_patience,
        optimizer=optimizer,
        schedule="warmup+cosine",
        weights=bool(weights),
        input_scaling=input_scaling,
    )
    cache: dict[Any, _Datasets] = {}  # model-input datasets per standardizer (pretraining's: shared by every run)
    runs: list[TaggingRun] = []
    for frac in fractions:
        n_tr = _subset_sizes(len(train_js), frac, 10)
        n_va = _subset_sizes(len(val_js), frac, min(_MIN_VAL, len(val_js)))
        for seed in seeds:
            rng = np.random.default_rng(np.random.SeedSequence([seed, 1234]))
            sel_tr = np.sort(rng.permutation(len(train_js))[:n_tr])
            sel_va = np.sort(rng.permutation(len(val_js))[:n_va])
            for model_name in models:
                if model_name == "pfn":
                    torch.manual_seed(seed)
                    net: Any = ParticleFlowNetwork(num_classes=1, **dict(pfn_kwargs or {}))
                else:
                    net = build_pet(
                        ckpt,
                        preset=model,
                        num_classes=1,
                        pretrained=model_name == "finetuned",
                        seed=seed,
                        input_scaling=input_scaling,
                        groups=groups,
                    )
                std = getattr(net, "standardizer", None)
                if (
                    std is not None
                ):  # the checkpoint's scaling (one per checkpoint): datasets of every jet, runs take subsets
                    if "pre" not in cache:
                        cache["pre"] = _Datasets(train_js, val_js, test_js, std, pmax)
                    sets = cache["pre"]
                    train_ds = TrimmedDataset(Subset(sets.train, sel_tr.tolist()))
                    val_ds = TrimmedDataset(Subset(sets.val, sel_va.tolist()))
                else:  # standardised on this run's own training jets
                    key = (frac, seed)
                    if key not in cache:
                        own = Standardizer.fit_jetset(train_js.subset(sel_tr))
                        cache[key] = _Datasets(train_js.subset(sel_tr), val_js.subset(sel_va), test_js, own, pmax)
                    sets = cache[key]
                    train_ds, val_ds = TrimmedDataset(sets.train), TrimmedDataset(sets.val)
                factor = float(lr_factor) if model_name == "finetuned" else 1.0
                t0 = time.perf_counter()
                hist = fit_classifier(
                    net,
                    train_ds,
                    val_ds,
                    lr_head=lr,
                    lr_factor=factor,
                    epochs=epochs,
                    batch_size=batch_size,
                    weights=weights,
                    early_stopping_patience=early_stopping_patience,
                    seed=seed,
                    device=device,
                    weight_decay=weight_decay,
                    warmup_steps=warmup_steps,
                    optimizer=optimizer,
                    progress=False,
                )
                scores = predict(net, TrimmedDataset(sets.test), batch_size=512, device=device)
                seconds = time.perf_counter() - t0
                metrics = _test_metrics(test_labels, scores, metric_weights)
                runs.append(
                    TaggingRun(
                        model_name,
                        frac,
                        seed,
                        n_tr,
                        n_va,
                        metrics,
                        dict(budget, lr_factor=factor),
                        _history_dict(hist),
                        seconds,
                        np.asarray(scores, dtype=np.float32),
                    )
                )
                if progress:
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
                del net
            for key in [k for k in cache if k != "pre"]:
                del cache[key]
    settings = dict(
        budget,
        lr_factor=float(lr_factor),
        fractions=fractions,
        seeds=seeds,
        models=list(models),
        split=list(split),
        split_seed=int(split_seed),
        checkpoint=str(ckpt) if ckpt else None,
        groups=list(groups),
        n_train_pool=len(train_js),
        n_val_pool=len(val_js),
        n_test=len(test_js),
        max_particles=pmax,
        dataset_sources=list(task.sources),
        weighted_metrics=bool(weighted_metrics),
        data_release=data_release(task.name, task.sources),
    )
    return TaggingResults(runs, test_labels, test_weights, task.name, settings)
