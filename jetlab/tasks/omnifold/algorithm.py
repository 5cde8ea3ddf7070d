"""OmniFold: unbinned, multi-dimensional unfolding by iterative classifier reweighting.

Andreassen, Komiske, Metodiev, Nachman, Thaler, PRL 124 (2020) 182001. With simulation pairs
``(sim_gen, sim_reco)`` (row-aligned: row i is the same event at particle and detector level)
and measured ``data_reco``, each iteration ``i`` does

* **step 1 (pull)**: a classifier separates ``data_reco`` (label 1) from ``sim_reco`` weighted by
  the current push weights ``nu_{i-1}`` (label 0); its likelihood ratio ``f / (1 - f)`` gives the
  pull weights ``omega_i = nu_{i-1} * f/(1-f)`` on the simulated events at detector level.
* **step 2 (push)**: a classifier separates ``sim_gen`` weighted by ``omega_i`` (label 1) from
  ``sim_gen`` weighted by ``nu_{i-1}`` (label 0); ``nu_i = nu_{i-1} * f/(1-f)`` is a proper
  function of the particle-level event, i.e. the unfolded result.

Choices made here (each a documented parameter):

* **Pluggable classifiers** (:class:`PETClassifier` pretrained or from scratch,
  :class:`ObservableClassifier` = an MLP on jet observables, or anything implementing
  :class:`ClassifierSpec`).
* **Warm start**: iteration ``i > 1`` continues from iteration ``i - 1``'s step-1 model at a small
  *fixed* learning rate (``warm_lr``); the first iteration dominates the cost.
* **Step 2 starts from step 1** (``step2_init="step1"``, the default): both steps learn the same log
  ratio ``log(omega_i / nu_{i-1})``, step 1 as a function of the detector-level event, step 2 of the
  particle-level one. Step 2 therefore starts from a copy of the step-1 model just trained and
  fine-tunes it at ``warm_lr``. Step 2's signal is weak: the same events twice, with two sets of
  weights. From a fresh model a few epochs learn only what mass and multiplicity carry, and the
  substructure that step 1 found is lost (``benchmarks/bench_omnifold_classifiers.py --step1``).
  ``step2_init="previous"`` starts from a fresh model in the first iteration, and from the previous
  iteration's step-2 model after that (with ``warm_start``).
* **Held-out validation**: simulated *events* (gen and reco rows together) and data events are
  split once into disjoint train / validation sets (``validation_fraction``) used by every step
  and iteration; early stopping and best-model selection look only at validation events.
  (The reference implementation evaluated on events that overlapped its training set.)
* **Weights everywhere**: weighted BCE, each class normalised to the same total weight (so the
  learned ratio is a ratio of *densities*), weighted validation loss and histograms.
* **Weight clipping**: the per-step likelihood ratio ``exp(logit)`` is clipped to
  ``[1/max_weight, max_weight]`` (default 10), which bounds the damage of a classifier that is
  over-confident in a sparsely populated corner of phase space.

The learned weights are inferred for *all* simulated events (as OmniFold prescribes); events whose
reconstruction failed are not modelled (``zjets-mini`` and the OmniFold Z+jets files have none).
"""

from __future__ import annotations

import copy
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from jetlab.data.schema import JetSet
from jetlab.data.torchdata import split_indices
from jetlab.model.factory import check_choice
from jetlab.train import Callback, Trainer
from jetlab.train.ddp import resolve_device

from .classifiers import ClassifierSpec, Features, LevelData, make_classifier

log = logging.getLogger(__name__)

__all__ = [
    "STEP2_INITS",
    "OmniFoldResult",
    "event_splits",
    "fit_step",
    "omnifold",
    "seeded_build",
    "step1_parts",
    "balanced",
    "check_weights",
    "length",
    "resolve_spec",
]

STEP2_INITS = ("step1", "previous")
"""Where :func:`omnifold`'s step 2 starts: a copy of the iteration's step-1 model, or the previous step-2 model."""


# ============================================================================ data plumbing
class _WeightedRows(Dataset):
    """Rows of one or more feature sources, each with a label and a weight (no copies)."""

    def __init__(self, sources: Sequence[Features], parts: Sequence[tuple[int, np.ndarray, int, np.ndarray]]):
        self.sources = list(sources)
        self.src = torch.from_numpy(np.concatenate([np.full(len(r), s, dtype=np.int64) for s, r, _, _ in parts]))
        self.row = torch.from_numpy(np.concatenate([np.asarray(r, dtype=np.int64) for _, r, _, _ in parts]))
        self.label = torch.from_numpy(np.concatenate([np.full(len(r), y, dtype=np.int64) for _, r, y, _ in parts]))
        self.weight = torch.from_numpy(np.concatenate([np.asarray(w, dtype=np.float32) for _, _, _, w in parts]))

    def __len__(self) -> int:
        return int(self.row.shape[0])

    def __getitems__(self, indices) -> dict[str, torch.Tensor]:
        idx = torch.as_tensor(indices, dtype=torch.long)
        src, row = self.src[idx], self.row[idx]
        out: dict[str, torch.Tensor] = {}
        keys = self.sources[0].keys()
        if len(self.sources) == 1 or bool((src == src[0]).all()):
            s = int(src[0]) if len(src) else 0
            out = {k: self.sources[s][k].index_select(0, row) for k in keys}
        else:
            for k in keys:
                ref = self.sources[0][k]
                t = torch.empty((len(idx),) + tuple(ref.shape[1:]), dtype=ref.dtype)
                for s in range(len(self.sources)):
                    sel = (src == s).nonzero(as_tuple=True)[0]
                    if len(sel):
                        t[sel] = self.sources[s][k].index_select(0, row[sel])
                out[k] = t
        out["label"] = self.label[idx]
        out["weight"] = self.weight[idx]
        return out

    def __getitem__(self, i):
        return {k: v[0] for k, v in self.__getitems__([i]).items()}


def balanced(w0: np.ndarray, w1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scale two classes' weights to equal totals (mean weight 1 overall): the classifier then
    learns the ratio of the normalised densities, independent of sample sizes."""
    n = len(w0) + len(w1)
    s0, s1 = float(np.sum(w0)), float(np.sum(w1))
    if s0 <= 0 or s1 <= 0:
        raise ValueError(f"omnifold: a class has no positive total weight (sums {s0:.3g}, {s1:.3g})")
    return w0 * (0.5 * n / s0), w1 * (0.5 * n / s1)


def _loss_fn(spec: ClassifierSpec):
    def loss_fn(model: nn.Module, batch: dict) -> tuple[torch.Tensor, dict]:
        z = spec.logits(model, batch).float()
        per = nn.functional.binary_cross_entropy_with_logits(z, batch["label"].float(), reduction="none")
        w = batch["weight"].float()
        loss = (per * w).sum() / w.sum().clamp_min(1e-12)
        return loss, {}

    return loss_fn


@torch.no_grad()
def _predict_logits(
    spec: ClassifierSpec, model: nn.Module, features: Features, batch_size: int, device: torch.device
) -> np.ndarray:
    model.to(device).eval()
    n = len(next(iter(features.values())))
    out = []
    for a in range(0, n, batch_size):
        batch = {k: v[a : a + batch_size].to(device) for k, v in features.items()}
        out.append(spec.logits(model, batch).float().cpu())
    return torch.cat(out).numpy().astype(np.float64) if out else np.zeros(0)


def _ratio(logits: np.ndarray, max_weight: float) -> np.ndarray:
    """Likelihood ratio f/(1-f) = exp(logit), clipped to [1/max_weight, max_weight]."""
    lim = math.log(max_weight)
    return np.exp(np.clip(logits, -lim, lim))


class _ValCurve(Callback):
    """Trainer callback: validation loss at ``evals_per_epoch`` points per epoch (and at 0).

    Gives the convergence comparison a resolution finer than whole epochs."""

    main_process_only = False

    def __init__(self, evals_per_epoch: int, epoch_offset: float = 0.0) -> None:
        self.k = max(1, int(evals_per_epoch))
        self.points: list[tuple[float, float]] = []

    def on_train_start(self, trainer) -> None:
        spe = max(1, int(trainer.steps_per_epoch() or 1))
        self.spe = spe
        self.every = {int(round(spe * j / self.k)) for j in range(1, self.k)} - {0, spe}
        self.points.append((0.0, float(trainer.evaluate()["loss"])))

    def on_step_end(self, trainer, info) -> None:
        if trainer.batch_in_epoch in self.every:
            self.points.append((trainer.global_step / self.spe, float(trainer.evaluate()["loss"])))

    def on_epoch_end(self, trainer, info) -> None:
        self.points.append((trainer.global_step / self.spe, float(info["val_loss"])))

    def on_train_end(self, trainer) -> None: ...

    def state_dict(self) -> dict:
        return {"points": list(self.points)}

    def load_state_dict(self, state: dict) -> None:
        self.points = [tuple(p) for p in state["points"]]


# ============================================================================ result
@dataclass
class OmniFoldResult:
    """Everything an OmniFold run produced.

    ``push_weights[i]`` are the particle-level event weights of ``sim_gen`` after iteration
    ``i + 1`` (the unfolded result; they include ``sim_weights``), ``pull_weights[i]`` the
    detector-level weights of step 1 of that iteration. ``histories[i]["step1"|"step2"]`` hold
    ``epoch``, ``train_loss``, ``val_loss`` (per epoch, after it), ``curve`` (``(epochs, val_loss)``
    pairs, starting with the untrained model at 0), ``best_epoch``, ``epochs_to_best`` (epochs
    trained until the best validation loss, 1-based), ``wall_time`` (s). ``splits`` holds the
    disjoint event indices ``sim_train``, ``sim_val``, ``data_train``, ``data_val``.
    """

    classifier: str
    push_weights: list[np.ndarray]
    pull_weights: list[np.ndarray]
    histories: list[dict[str, dict[str, Any]]]
    splits: dict[str, np.ndarray]
    sim_weights: np.ndarray
    data_weights: np.ndarray
    config: dict[str, Any] = field(default_factory=dict)
    wall_time: float = 0.0

    @property
    def n_iterations(self) -> int:
        return len(self.push_weights)

    def weights(self, iteration: int = -1) -> np.ndarray:
        """Unfolded particle-level weights after ``iteration`` (0-based; -1 = last; the prior is
        ``sim_weights``)."""
        return self.push_weights[iteration]

    @property
    def epochs_to_best(self) -> list[dict[str, int]]:
        return [{s: h[s]["epochs_to_best"] for s in ("step1", "step2")} for h in self.histories]

    def loss_history(self, iteration: int = 0, step: str = "step1") -> dict[str, list[float]]:
        """``{"epoch", "train_loss", "val_loss"}`` of one step, ready for :func:`jetlab.plot.loss_curves`."""
        h = self.histories[iteration][step]
        return {"epoch": list(h["epoch"]), "train_loss": list(h["train_loss"]), "val_loss": list(h["val_loss"])}

    def summary(self) -> dict[str, Any]:
        """JSON-friendly summary (no per-event arrays)."""
        return {
            "classifier": self.classifier,
            "n_iterations": self.n_iterations,
            "wall_time": self.wall_time,
            "epochs_to_best": self.epochs_to_best,
            "best_val_loss": [{s: h[s]["best_val_loss"] for s in ("step1", "step2")} for h in self.histories],
            "split_sizes": {k: int(len(v)) for k, v in self.splits.items()},
            "config": self.config,
        }


def check_weights(w, n: int, name: str) -> np.ndarray:
    if w is None:
        return np.ones(n, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64).ravel()
    if w.shape != (n,):
        raise ValueError(f"omnifold: {name} has {w.size} entries, expected {n} (one per event)")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError(f"omnifold: {name} must be finite and non-negative")
    if w.sum() <= 0:
        raise ValueError(f"omnifold: {name} sum to zero")
    return w


def length(x: LevelData, name: str) -> int:
    if isinstance(x, JetSet):
        return len(x)
    if isinstance(x, Mapping) and x:
        return len(np.asarray(next(iter(x.values()))))
    raise TypeError(
        f"omnifold: {name} must be a JetSet or a non-empty dict of observable arrays, got {type(x).__name__}"
    )


def resolve_spec(classifier_factory) -> ClassifierSpec:
    if isinstance(classifier_factory, str):
        return make_classifier(classifier_factory)
    spec = classifier_factory
    if not isinstance(spec, ClassifierSpec) and callable(spec):
        spec = spec()
    if not isinstance(spec, ClassifierSpec):
        raise TypeError(
            "omnifold: classifier_factory must be 'pretrained'/'scratch'/'mlp', a ClassifierSpec "
            f"(prepare/build/logits/param_groups) or a callable returning one, got {type(spec).__name__}"
        )
    return spec


# ============================================================================ the algorithm
def event_splits(n_sim: int, n_data: int, validation_fraction: float, seed: int, where: str) -> dict[str, np.ndarray]:
    """The disjoint train / validation event indices of a run with ``seed`` (simulated events: gen
    and reco rows together; data events separately)."""
    if not 0.0 < validation_fraction < 1.0:
        raise ValueError(f"{where}: validation_fraction must be in (0, 1), got {validation_fraction}")
    fractions = (1 - validation_fraction, validation_fraction)
    sim_tr, sim_va = split_indices(n_sim, fractions, seed=seed)
    dat_tr, dat_va = split_indices(n_data, fractions, seed=seed + 1)
    if min(len(sim_va), len(dat_va), len(sim_tr), len(dat_tr)) == 0:
        raise ValueError(
            f"{where}: too few events ({n_sim} sim, {n_data} data) for validation_fraction={validation_fraction}"
        )
    return {"sim_train": sim_tr, "sim_val": sim_va, "data_train": dat_tr, "data_val": dat_va}


def step1_parts(w_sim: np.ndarray, w_data: np.ndarray, splits: Mapping[str, np.ndarray], part: str) -> list:
    """Step 1's rows for ``part`` ("train"/"val"): simulation (source 0, label 0), data (source 1, label 1)."""
    s, d = splits[f"sim_{part}"], splits[f"data_{part}"]
    return [(0, s, 0, w_sim[s]), (1, d, 1, w_data[d])]


def seeded_build(spec: ClassifierSpec, level: str, seed: int) -> nn.Module:
    """``spec.build(level)`` with its random initialisation drawn from ``seed`` alone (not from
    whatever the global generator went through before), leaving the global state untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return spec.build(level)


def fit_step(
    spec: ClassifierSpec,
    model: nn.Module,
    sources,
    parts_tr,
    parts_va,
    *,
    lr: float,
    warm: bool,
    epochs: int,
    batch_size: int,
    early_stopping_patience: int | None,
    evals_per_epoch: int,
    device: torch.device,
    seed: int,
    progress: bool,
) -> tuple[nn.Module, dict]:
    """Train one OmniFold step's classifier; returns the (best) model and its history record.

    A warm-started step runs at a fixed ``lr`` without warm-up; a fresh one gets the Trainer's
    warm-up and cosine decay."""
    curve = _ValCurve(evals_per_epoch)
    trainer = Trainer(
        model,
        _loss_fn(spec),
        _WeightedRows(sources, parts_tr),
        _WeightedRows(sources, parts_va),
        lr=lr,
        param_groups=spec.param_groups(model, lr),
        epochs=epochs,
        batch_size=batch_size,
        warmup_steps=0 if warm else None,
        min_lr_factor=1.0 if warm else 0.0,
        early_stopping_patience=early_stopping_patience,
        restore_best=True,
        device=device,
        seed=seed,
        progress=progress,
        checkpoint_dir=None,
        callbacks=[curve],
    )
    hist = trainer.fit()
    ep = hist.epochs
    best = int(hist.best_epoch) if hist.best_epoch is not None else len(ep) - 1
    record = {
        "epoch": [e["epoch"] + 1 for e in ep],
        "train_loss": [float(e["train_loss"]) for e in ep],
        "val_loss": [float(e["val_loss"]) for e in ep],
        "curve": [(float(x), float(y)) for x, y in curve.points],
        "best_epoch": best,
        "epochs_to_best": best + 1,
        "best_val_loss": float(hist.best_val_loss) if hist.best_val_loss is not None else float("nan"),
        "stopped_early": bool(hist.stopped_early),
        "lr": lr,
        "warm_start": bool(warm),
        "wall_time": float(hist.wall_time),
    }
    return model, record


def _check_run_settings(n_iterations: int, epochs: int, max_weight: float, step2_init: str) -> str:
    """Refuse settings :func:`omnifold` cannot run; returns the checked ``step2_init``."""
    if n_iterations < 1:
        raise ValueError(f"omnifold: n_iterations must be >= 1, got {n_iterations}")
    if epochs < 1:
        raise ValueError(f"omnifold: epochs must be >= 1, got {epochs}")
    if max_weight <= 1.0:
        raise ValueError(f"omnifold: max_weight must be > 1, got {max_weight}")
    return check_choice("step2_init", step2_init, STEP2_INITS, "omnifold")


@dataclass
class _StepTrainer:
    """Trains :func:`omnifold`'s steps, each from where the run's settings (``run``) say it starts;
    holds the latest model of each step."""

    spec: ClassifierSpec
    run: Mapping[str, Any]  # the run's settings (OmniFoldResult.config)
    device: torch.device
    evals_per_epoch: int
    progress: bool
    models: dict[str, nn.Module | None] = field(default_factory=lambda: {"step1": None, "step2": None})

    def train(self, step: str, it: int, sources, parts_tr, parts_va) -> tuple[nn.Module, dict]:
        """Fit ``step`` of iteration ``it`` on the given rows and keep its model for the next start."""
        start: nn.Module | None
        if step == "step2" and self.run["step2_init"] == "step1":
            start = copy.deepcopy(self.models["step1"])  # the same log ratio, learned at detector level
        else:
            previous = self.models[step]
            start = previous if self.run["warm_start"] and it > 0 else None
        warm = start is not None
        step_seed = self.run["seed"] + 1000 * it + (0 if step == "step1" else 500)
        level = "reco" if step == "step1" else "gen"
        model = start if start is not None else seeded_build(self.spec, level, step_seed)
        model, record = fit_step(
            self.spec,
            model,
            sources,
            parts_tr,
            parts_va,
            lr=self.run["warm_lr"] if warm else self.run["lr"],
            warm=warm,
            epochs=self.run["epochs"],
            batch_size=self.run["batch_size"],
            early_stopping_patience=self.run["early_stopping_patience"],
            evals_per_epoch=self.evals_per_epoch,
            device=self.device,
            seed=step_seed,
            progress=self.progress,
        )
        self.models[step] = model
        return model, record


def _iterate(
    steps: _StepTrainer,
    it: int,
    push: np.ndarray,
    data_w: np.ndarray,
    feats_reco: list,
    feats_gen,
    splits: Mapping[str, np.ndarray],
    max_weight: float,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """One OmniFold iteration from the push weights ``push``: ``(pull weights, new push weights, records)``."""
    spec, batch_size, dev = steps.spec, steps.run["batch_size"], steps.device
    # ---- step 1: data_reco (1) vs sim_reco weighted by push (0) -> pull weights
    w0, w1 = balanced(push, data_w)
    model1, rec1 = steps.train(
        "step1", it, feats_reco, step1_parts(w0, w1, splits, "train"), step1_parts(w0, w1, splits, "val")
    )
    pull = push * _ratio(_predict_logits(spec, model1, feats_reco[0], 4 * batch_size, dev), max_weight)
    # ---- step 2: sim_gen weighted by pull (1) vs sim_gen weighted by push (0) -> new push
    v0, v1 = balanced(push, pull)
    sim_tr, sim_va = splits["sim_train"], splits["sim_val"]
    model2, rec2 = steps.train(
        "step2",
        it,
        [feats_gen],
        [(0, sim_tr, 0, v0[sim_tr]), (0, sim_tr, 1, v1[sim_tr])],
        [(0, sim_va, 0, v0[sim_va]), (0, sim_va, 1, v1[sim_va])],
    )
    push = push * _ratio(_predict_logits(spec, model2, feats_gen, 4 * batch_size, dev), max_weight)
    return pull, push, {"step1": rec1, "step2": rec2}


def _log_iteration(name: str, it: int, n_iterations: int, record: dict) -> None:
    rec1, rec2 = record["step1"], record["step2"]
    log.info(
        "[omnifold:%s] iteration %d/%d: step1 best val %.5f (epoch %s), step2 best val %.5f (epoch %s), %.0f s",
        name,
        it + 1,
        n_iterations,
        rec1["best_val_loss"],
        rec1["epochs_to_best"],
        rec2["best_val_loss"],
        rec2["epochs_to_best"],
        rec1["wall_time"] + rec2["wall_time"],
    )


def _event_counts(sim_gen: LevelData, sim_reco: LevelData, data_reco: LevelData) -> tuple[int, int]:
    """``(simulated events, measured events)``; the simulation's two levels must be row-aligned."""
    n_sim, n_data = length(sim_gen, "sim_gen"), length(data_reco, "data_reco")
    if length(sim_reco, "sim_reco") != n_sim:
        raise ValueError(
            f"omnifold: sim_gen ({n_sim}) and sim_reco ({length(sim_reco, 'sim_reco')}) must be "
            "row-aligned (the same events at particle and detector level)"
        )
    return n_sim, n_data


def _run_iterations(
    steps: _StepTrainer,
    sim_w: np.ndarray,
    data_w: np.ndarray,
    feats_reco: list,
    feats_gen,
    splits: Mapping[str, np.ndarray],
) -> tuple[list[np.ndarray], list[np.ndarray], list[dict]]:
    """Every iteration from the simulation's own weights: ``(push weights, pull weights, records)`` per iteration."""
    n_iterations, max_weight = steps.run["n_iterations"], steps.run["max_weight"]
    push = sim_w.copy()
    pushes, pulls, histories = [], [], []
    for it in range(n_iterations):
        pull, push, record = _iterate(steps, it, push, data_w, feats_reco, feats_gen, splits, max_weight)
        pulls.append(pull)
        pushes.append(push.copy())
        histories.append(record)
        if steps.progress:
            _log_iteration(steps.spec.name, it, n_iterations, record)
    return pushes, pulls, histories


def omnifold(
    sim_gen: LevelData,
    sim_reco: LevelData,
    data_reco: LevelData,
    *,
    classifier_factory: ClassifierSpec | str | Callable[[], ClassifierSpec] = "mlp",
    n_iterations: int = 4,
    epochs: int = 10,
    batch_size: int = 256,
    lr: float | None = None,
    warm_lr: float | None = None,
    early_stopping_patience: int | None = 3,
    data_weights=None,
    sim_weights=None,
    warm_start: bool = True,
    validation_fraction: float = 0.2,
    max_weight: float = 10.0,
    evals_per_epoch: int = 2,
    device: str | torch.device = "auto",
    seed: int = 0,
    progress: bool = True,
    step2_init: str = "step1",
) -> OmniFoldResult:
    """Run ``n_iterations`` of OmniFold; see the module docstring for the algorithm and choices.

    ``sim_gen``/``sim_reco`` must be row-aligned (same events). ``lr`` defaults to the spec's;
    ``warm_lr`` (later iterations, fixed, no warm-up) defaults to ``lr / 5``. ``evals_per_epoch``
    sets how often the validation loss is sampled for the convergence curves. ``step2_init``
    (:data:`STEP2_INITS`): step 2 starts from a copy of this iteration's step-1 model (``"step1"``)
    or from the previous iteration's step-2 model (``"previous"``; fresh in the first iteration).
    """
    t_start = time.perf_counter()
    spec = resolve_spec(classifier_factory)
    step2_init = _check_run_settings(n_iterations, epochs, max_weight, step2_init)
    n_sim, n_data = _event_counts(sim_gen, sim_reco, data_reco)
    sim_w = check_weights(sim_weights, n_sim, "sim_weights")
    data_w = check_weights(data_weights, n_data, "data_weights")
    lr = float(lr if lr is not None else spec.lr)
    warm_lr = float(warm_lr if warm_lr is not None else lr / 5.0)
    dev = resolve_device(device)

    splits = event_splits(n_sim, n_data, validation_fraction, seed, "omnifold")
    feats_reco = spec.prepare("reco", [sim_reco, data_reco])  # [sim, data]
    (feats_gen,) = spec.prepare("gen", [sim_gen])
    config = {
        "n_iterations": n_iterations,
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "warm_lr": warm_lr,
        "early_stopping_patience": early_stopping_patience,
        "warm_start": warm_start,
        "step2_init": step2_init,
        "validation_fraction": validation_fraction,
        "max_weight": max_weight,
        "seed": seed,
        "device": str(dev),
        "n_sim": n_sim,
        "n_data": n_data,
    }
    steps = _StepTrainer(spec, config, dev, evals_per_epoch, progress)
    pushes, pulls, histories = _run_iterations(steps, sim_w, data_w, feats_reco, feats_gen, splits)
    return OmniFoldResult(
        classifier=spec.name,
        push_weights=pushes,
        pull_weights=pulls,
        histories=histories,
        splits=splits,
        sim_weights=sim_w,
        data_weights=data_w,
        config=config,
        wall_time=time.perf_counter() - t_start,
    )
