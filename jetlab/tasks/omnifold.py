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
* **Warm start**: iteration ``i > 1`` continues from iteration ``i - 1``'s model of the same step at
  a small *fixed* learning rate (``warm_lr``); the first iteration dominates the cost.
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

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Protocol, Sequence, runtime_checkable

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from jetlab.data.schema import JetSet
from jetlab.data.sources import resolve

__all__ = [
    "ClassifierSpec",
    "ConvergenceStudy",
    "ObservableClassifier",
    "OmniFoldResult",
    "PETClassifier",
    "UnfoldingSummary",
    "convergence_ratio",
    "epochs_to_reach",
    "load_omnifold_data",
    "make_classifier",
    "omnifold",
    "step1_curves",
    "unfold_observables",
    "weighted_histogram",
]

Features = dict[str, torch.Tensor]
LevelData = JetSet | Mapping[str, np.ndarray]


# ============================================================================ classifiers
@runtime_checkable
class ClassifierSpec(Protocol):
    """What :func:`omnifold` needs from a classifier family.

    ``prepare(level, sources)`` turns the event sets of one level (``"reco"``: ``[sim_reco,
    data_reco]``; ``"gen"``: ``[sim_gen]``) into feature tensors (one dict per source, same rows);
    normalisations are fitted on the first (simulated) source. ``build(level)`` returns a fresh
    model with one output logit, ``logits(model, batch)`` evaluates it on a batch of features,
    ``param_groups(model, lr)`` may give per-part learning rates (None: one group).
    """

    name: str
    lr: float

    def prepare(self, level: str, sources: Sequence[LevelData]) -> list[Features]: ...

    def build(self, level: str) -> nn.Module: ...

    def logits(self, model: nn.Module, batch: Mapping[str, torch.Tensor]) -> torch.Tensor: ...

    def param_groups(self, model: nn.Module, lr: float) -> list[dict] | None: ...


def _observable_matrix(data: LevelData, names: Sequence[str], where: str) -> np.ndarray:
    """(N, len(names)) float32 observables from a JetSet (computed) or a dict of arrays."""
    if isinstance(data, JetSet):
        from jetlab.physics import compute_observables

        data = compute_observables(data, names)
    if not isinstance(data, Mapping):
        raise TypeError(f"{where}: expected a JetSet or a dict of observable arrays, got {type(data).__name__}")
    missing = [n for n in names if n not in data]
    if missing:
        raise KeyError(f"{where}: observables {missing} missing; the dict has {sorted(data)}")
    cols = [np.asarray(data[n], dtype=np.float64).ravel() for n in names]
    if len({len(c) for c in cols}) != 1:
        raise ValueError(f"{where}: observable arrays have different lengths {[len(c) for c in cols]}")
    m = np.stack(cols, axis=1)
    bad = ~np.isfinite(m)
    if bad.any():  # e.g. log(0): replace by the column's finite minimum so the row stays usable
        for j in np.nonzero(bad.any(0))[0]:
            finite = m[~bad[:, j], j]
            m[bad[:, j], j] = finite.min() if finite.size else 0.0
    return m.astype(np.float32)


@dataclass
class ObservableClassifier:
    """Fast baseline: :class:`jetlab.tasks.baselines.ObservableMLP` on jet observables.

    This is the "MultiFold" variant of OmniFold (unfolds exactly the listed observables). Inputs
    may be JetSets (observables computed with :func:`jetlab.physics.compute_observables`) or
    dicts ``{name: (N,) array}`` to reuse observables computed once.
    """

    observables: tuple[str, ...] = ("mass", "multiplicity", "width", "log_rho", "tau21", "zg")
    hidden: tuple[int, ...] = (64, 64, 64)
    lr: float = 1e-3
    name: str = "mlp"
    _stats: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def prepare(self, level: str, sources: Sequence[LevelData]) -> list[Features]:
        mats = [_observable_matrix(s, self.observables, f"ObservableClassifier.prepare({level!r})") for s in sources]
        self._stats[level] = mats[0]
        return [{"features": torch.from_numpy(m)} for m in mats]

    def build(self, level: str) -> nn.Module:
        from jetlab.tasks.baselines import ObservableMLP

        model = ObservableMLP(len(self.observables), 1, hidden=tuple(self.hidden))
        if level in self._stats:
            model.fit_standardization(self._stats[level])
        return model

    def logits(self, model: nn.Module, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return model(batch["features"])[:, 0]

    def param_groups(self, model: nn.Module, lr: float) -> list[dict] | None:
        return None


@dataclass
class PETClassifier:
    """PET on the particles: fine-tuned from a pretrained checkpoint, or trained from scratch.

    ``checkpoint`` (a :func:`jetlab.model.save` directory) with ``pretrained=True`` loads the
    body (and head); the body trains at ``lr / lr_factor`` (OmniLearn recipe). ``pretrained=False``
    builds a fresh model with the checkpoint's architecture (fair comparison) or, without a
    checkpoint, ``PETConfig.<config>()``.

    ``standardization`` says where the input scaling comes from: ``"simulation"`` (default) fits
    each level's per-feature mean and width on the simulated events, as for the scratch model;
    ``"pretraining"`` reuses the checkpoint's (the pretraining sample's, as the OmniLearn code
    does). The default is measured: the R = 0.8, 500-1000 GeV pretraining jets put the R = 0.4,
    200 GeV Z+jets jets several widths off (jet pT at -3.3 sigma, mass at -2.1 sigma), and on
    ``zjets-mini`` fine-tuning then trails scratch (best step-1 validation loss, mean of 3 seeds:
    0.6807 vs 0.6788). Refitted, the pretrained weights see inputs with the moments they were
    trained on, and fine-tuning leads (0.6772 vs 0.6785, lower in each seed).
    """

    checkpoint: str | None = None
    pretrained: bool = True
    config: Any = "tiny"
    lr: float = 3e-4
    lr_factor: float = 5.0
    max_particles: int | None = None
    standardization: str = "simulation"
    name: str = ""
    _standardizers: dict[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.pretrained and self.checkpoint is None:
            raise ValueError("PETClassifier(pretrained=True) needs checkpoint=<pretrained model directory>; "
                             "pass pretrained=False to train from scratch")
        if self.standardization not in ("simulation", "pretraining"):
            raise ValueError(f"PETClassifier: standardization must be 'simulation' or 'pretraining', got {self.standardization!r}")
        if self.standardization == "pretraining" and not (self.pretrained and self.checkpoint is not None):
            raise ValueError("PETClassifier(standardization='pretraining') needs pretrained=True and a checkpoint "
                             "(a scratch model has no pretraining sample to take the scaling from)")
        if not self.name:
            self.name = "pretrained" if self.pretrained else "scratch"

    def _card_standardizer(self):
        from jetlab.model import read_card

        card = read_card(self.checkpoint)
        return card.get_standardizer() if getattr(card, "standardizer", None) else None

    def _config(self):
        from jetlab.model import PETConfig, read_card

        if self.checkpoint is not None:
            return PETConfig.from_dict(read_card(self.checkpoint).config).replace(num_classes=1)
        if isinstance(self.config, PETConfig):
            return self.config.replace(num_classes=1)
        preset = getattr(PETConfig, str(self.config), None)
        if preset is None or str(self.config).startswith("_"):
            raise ValueError(f"PETClassifier: config must be a PETConfig or one of 'tiny', 'small', 'paper', got {self.config!r}")
        return preset(num_classes=1)

    def prepare(self, level: str, sources: Sequence[LevelData]) -> list[Features]:
        from jetlab.data.preprocess import model_inputs

        std = self._card_standardizer() if self.standardization == "pretraining" else None
        out = []
        for s in sources:
            if not isinstance(s, JetSet):
                raise TypeError(f"PETClassifier.prepare({level!r}): PET needs JetSets (particles), got {type(s).__name__}")
            if self.max_particles is not None and self.max_particles < s.max_particles:
                s = JetSet(s.particles[:, : self.max_particles], s.mask[:, : self.max_particles], s.jets, s.labels,
                           s.weights, s.particle_features, s.extra)
            x, mask, jets, std = model_inputs(s, std)
            out.append({"x": torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)),
                        "mask": torch.from_numpy(np.ascontiguousarray(mask)),
                        "jets": torch.from_numpy(np.ascontiguousarray(jets, dtype=np.float32))})
        self._standardizers[level] = std
        return out

    def build(self, level: str) -> nn.Module:
        from jetlab.model import PET

        cfg = self._config()
        model = PET(cfg)
        if self.pretrained:
            from jetlab.model import load_body_into

            load_body_into(model, self.checkpoint)
        return model

    def logits(self, model: nn.Module, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return model.classify(batch["x"], batch["mask"], batch["jets"])[0][:, 0]

    def param_groups(self, model: nn.Module, lr: float) -> list[dict] | None:
        return model.param_groups(lr, self.lr_factor if self.pretrained else 1.0)


def make_classifier(kind: str, *, checkpoint: str | None = None, config: Any = "tiny", lr: float | None = None,
                    observables: Sequence[str] | None = None) -> ClassifierSpec:
    """Classifier spec by name: ``"pretrained"`` (needs ``checkpoint``), ``"scratch"`` or ``"mlp"``."""
    kind = str(kind).lower()
    if kind == "pretrained":
        if checkpoint is None:
            raise ValueError("make_classifier('pretrained') needs a checkpoint: train one with notebook 01 / "
                             "`jetlab pretrain`, or use 'scratch' / 'mlp'")
        return PETClassifier(checkpoint=str(checkpoint), pretrained=True, lr=lr or 3e-4)
    if kind == "scratch":
        return PETClassifier(checkpoint=None if checkpoint is None else str(checkpoint), pretrained=False,
                             config=config, lr=lr or 3e-4)
    if kind in ("mlp", "observables", "multifold"):
        spec = ObservableClassifier(lr=lr or 1e-3)
        if observables is not None:
            spec.observables = tuple(observables)
        return spec
    raise ValueError(f"unknown classifier {kind!r}; choose 'pretrained', 'scratch' or 'mlp'")


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


def _balanced(w0: np.ndarray, w1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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
def _predict_logits(spec: ClassifierSpec, model: nn.Module, features: Features, batch_size: int,
                    device: torch.device) -> np.ndarray:
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


class _ValCurve:
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


def _check_weights(w, n: int, name: str) -> np.ndarray:
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


def _length(x: LevelData, name: str) -> int:
    if isinstance(x, JetSet):
        return len(x)
    if isinstance(x, Mapping) and x:
        return len(np.asarray(next(iter(x.values()))))
    raise TypeError(f"omnifold: {name} must be a JetSet or a non-empty dict of observable arrays, got {type(x).__name__}")


def _resolve_spec(classifier_factory) -> ClassifierSpec:
    if isinstance(classifier_factory, str):
        return make_classifier(classifier_factory)
    spec = classifier_factory
    if not isinstance(spec, ClassifierSpec) and callable(spec):
        spec = spec()
    if not isinstance(spec, ClassifierSpec):
        raise TypeError("omnifold: classifier_factory must be 'pretrained'/'scratch'/'mlp', a ClassifierSpec "
                        f"(prepare/build/logits/param_groups) or a callable returning one, got {type(spec).__name__}")
    return spec


# ============================================================================ the algorithm
def _event_splits(n_sim: int, n_data: int, validation_fraction: float, seed: int, where: str) -> dict[str, np.ndarray]:
    """The disjoint train / validation event indices of a run with ``seed`` (simulated events: gen
    and reco rows together; data events separately)."""
    from jetlab.data.torchdata import split_indices

    if not 0.0 < validation_fraction < 1.0:
        raise ValueError(f"{where}: validation_fraction must be in (0, 1), got {validation_fraction}")
    fractions = (1 - validation_fraction, validation_fraction)
    sim_tr, sim_va = split_indices(n_sim, fractions, seed=seed)
    dat_tr, dat_va = split_indices(n_data, fractions, seed=seed + 1)
    if min(len(sim_va), len(dat_va), len(sim_tr), len(dat_tr)) == 0:
        raise ValueError(f"{where}: too few events ({n_sim} sim, {n_data} data) for validation_fraction={validation_fraction}")
    return {"sim_train": sim_tr, "sim_val": sim_va, "data_train": dat_tr, "data_val": dat_va}


def _step1_parts(w_sim: np.ndarray, w_data: np.ndarray, splits: Mapping[str, np.ndarray], part: str) -> list:
    """Step 1's rows for ``part`` ("train"/"val"): simulation (source 0, label 0), data (source 1, label 1)."""
    s, d = splits[f"sim_{part}"], splits[f"data_{part}"]
    return [(0, s, 0, w_sim[s]), (1, d, 1, w_data[d])]


def _seeded_build(spec: ClassifierSpec, level: str, seed: int) -> nn.Module:
    """``spec.build(level)`` with its random initialisation drawn from ``seed`` alone (not from
    whatever the global generator went through before), leaving the global state untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return spec.build(level)


def _fit_step(spec: ClassifierSpec, model: nn.Module, sources, parts_tr, parts_va, *, lr: float, warm: bool,
              epochs: int, batch_size: int, early_stopping_patience: int | None, evals_per_epoch: int,
              device: torch.device, seed: int, progress: bool) -> tuple[nn.Module, dict]:
    """Train one OmniFold step's classifier; returns the (best) model and its history record.

    A warm-started step runs at a fixed ``lr`` without warm-up; a fresh one gets the Trainer's
    warm-up and cosine decay."""
    from jetlab.train import Trainer

    curve = _ValCurve(evals_per_epoch)
    trainer = Trainer(
        model, _loss_fn(spec), _WeightedRows(sources, parts_tr), _WeightedRows(sources, parts_va),
        lr=lr, param_groups=spec.param_groups(model, lr), epochs=epochs, batch_size=batch_size,
        warmup_steps=0 if warm else None, min_lr_factor=1.0 if warm else 0.0,
        early_stopping_patience=early_stopping_patience, restore_best=True, device=device,
        seed=seed, progress=progress, checkpoint_dir=None, callbacks=[curve],
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
) -> OmniFoldResult:
    """Run ``n_iterations`` of OmniFold; see the module docstring for the algorithm and choices.

    ``sim_gen``/``sim_reco`` must be row-aligned (same events). ``lr`` defaults to the spec's;
    ``warm_lr`` (later iterations, fixed, no warm-up) defaults to ``lr / 5``. ``evals_per_epoch``
    sets how often the validation loss is sampled for the convergence curves.
    """
    from jetlab.train.ddp import resolve_device

    t_start = time.perf_counter()
    spec = _resolve_spec(classifier_factory)
    if n_iterations < 1:
        raise ValueError(f"omnifold: n_iterations must be >= 1, got {n_iterations}")
    if epochs < 1:
        raise ValueError(f"omnifold: epochs must be >= 1, got {epochs}")
    if max_weight <= 1.0:
        raise ValueError(f"omnifold: max_weight must be > 1, got {max_weight}")
    n_sim, n_data = _length(sim_gen, "sim_gen"), _length(data_reco, "data_reco")
    if _length(sim_reco, "sim_reco") != n_sim:
        raise ValueError(f"omnifold: sim_gen ({n_sim}) and sim_reco ({_length(sim_reco, 'sim_reco')}) must be "
                         "row-aligned (the same events at particle and detector level)")
    sim_w = _check_weights(sim_weights, n_sim, "sim_weights")
    data_w = _check_weights(data_weights, n_data, "data_weights")
    lr = float(lr if lr is not None else spec.lr)
    warm_lr = float(warm_lr if warm_lr is not None else lr / 5.0)
    dev = resolve_device(device)

    splits = _event_splits(n_sim, n_data, validation_fraction, seed, "omnifold")
    sim_tr, sim_va = splits["sim_train"], splits["sim_val"]

    feats_reco = spec.prepare("reco", [sim_reco, data_reco])  # [sim, data]
    (feats_gen,) = spec.prepare("gen", [sim_gen])
    models: dict[str, nn.Module | None] = {"step1": None, "step2": None}
    push = sim_w.copy()
    pushes, pulls, histories = [], [], []

    def train(step: str, it: int, sources, parts_tr, parts_va) -> tuple[nn.Module, dict]:
        warm = warm_start and it > 0 and models[step] is not None
        step_seed = seed + 1000 * it + (0 if step == "step1" else 500)
        model = models[step] if warm else _seeded_build(spec, "reco" if step == "step1" else "gen", step_seed)
        return _fit_step(spec, model, sources, parts_tr, parts_va, lr=warm_lr if warm else lr, warm=warm,
                         epochs=epochs, batch_size=batch_size, early_stopping_patience=early_stopping_patience,
                         evals_per_epoch=evals_per_epoch, device=dev, seed=step_seed, progress=progress)

    for it in range(n_iterations):
        # ---- step 1: data_reco (1) vs sim_reco weighted by push (0) -> pull weights
        w0, w1 = _balanced(push, data_w)
        model1, rec1 = train("step1", it, feats_reco, _step1_parts(w0, w1, splits, "train"),
                             _step1_parts(w0, w1, splits, "val"))
        models["step1"] = model1
        pull = push * _ratio(_predict_logits(spec, model1, feats_reco[0], 4 * batch_size, dev), max_weight)
        # ---- step 2: sim_gen weighted by pull (1) vs sim_gen weighted by push (0) -> new push
        v0, v1 = _balanced(push, pull)
        parts2 = lambda idx: [(0, idx, 0, v0[idx]), (0, idx, 1, v1[idx])]  # noqa: E731
        model2, rec2 = train("step2", it, [feats_gen], parts2(sim_tr), parts2(sim_va))
        models["step2"] = model2
        push = push * _ratio(_predict_logits(spec, model2, feats_gen, 4 * batch_size, dev), max_weight)
        pulls.append(pull)
        pushes.append(push.copy())
        histories.append({"step1": rec1, "step2": rec2})
        if progress:
            print(f"[omnifold:{spec.name}] iteration {it + 1}/{n_iterations}: "
                  f"step1 best val {rec1['best_val_loss']:.5f} (epoch {rec1['epochs_to_best']}), "
                  f"step2 best val {rec2['best_val_loss']:.5f} (epoch {rec2['epochs_to_best']}), "
                  f"{rec1['wall_time'] + rec2['wall_time']:.0f} s", flush=True)
    config = {"n_iterations": n_iterations, "epochs": epochs, "batch_size": batch_size, "lr": lr, "warm_lr": warm_lr,
              "early_stopping_patience": early_stopping_patience, "warm_start": warm_start,
              "validation_fraction": validation_fraction, "max_weight": max_weight, "seed": seed, "device": str(dev),
              "n_sim": n_sim, "n_data": n_data}
    return OmniFoldResult(classifier=spec.name, push_weights=pushes, pull_weights=pulls, histories=histories,
                          splits=splits, sim_weights=sim_w, data_weights=data_w, config=config,
                          wall_time=time.perf_counter() - t_start)


# ============================================================================ convergence
def epochs_to_reach(curve: Sequence[tuple[float, float]], target: float) -> float | None:
    """First training time (in epochs) at which a ``(epochs, val_loss)`` curve is ``<= target``,
    linearly interpolated between samples; None if it never gets there."""
    pts = sorted((float(x), float(y)) for x, y in curve)
    for j, (x, y) in enumerate(pts):
        if y <= target:
            if j == 0:
                return x
            x0, y0 = pts[j - 1]
            return x0 + (x - x0) * (y0 - target) / (y0 - y) if y0 != y else x
    return None


def _reach_ratio(cs: Sequence[tuple[float, float]], cp: Sequence[tuple[float, float]]) -> dict[str, float | None]:
    target = min(y for _, y in cs)
    t_s = epochs_to_reach(cs, target)
    t_p = epochs_to_reach(cp, target)
    ratio = float("nan") if t_p is None else (float("inf") if t_p == 0 else t_s / t_p)
    return {"target_val_loss": target, "scratch_epochs": t_s, "pretrained_epochs": t_p, "ratio": ratio,
            "pretrained_best_val_loss": min(y for _, y in cp)}


def convergence_ratio(scratch: OmniFoldResult, pretrained: OmniFoldResult, *, iteration: int = 0,
                      step: str = "step1") -> dict[str, float | None]:
    """How much faster the pretrained model reaches the scratch model's best validation loss.

    ``ratio = (epochs scratch needs to reach its best val loss) / (epochs pretrained needs to reach
    that same value)``; > 1 means pretrained converges faster. ``pretrained_epochs`` is None (ratio
    NaN) if the pretrained model never reaches it within its training. One training each: on a
    small sample the curves' noise can decide this, see :class:`ConvergenceStudy` for seeds.
    """
    return _reach_ratio(scratch.histories[iteration][step]["curve"], pretrained.histories[iteration][step]["curve"])


def step1_curves(sim_reco: LevelData, data_reco: LevelData, *, classifier_factory, seeds: Sequence[int] = (0, 1, 2),
                 epochs: int = 4, batch_size: int = 256, lr: float | None = None,
                 early_stopping_patience: int | None = None, evals_per_epoch: int = 2,
                 validation_fraction: float = 0.2, sim_weights=None, data_weights=None,
                 device: str | torch.device = "auto", progress: bool = True) -> list[list[tuple[float, float]]]:
    """Validation-loss curves of OmniFold's first step-1 training (data vs simulation at detector
    level), once per seed: the training the paper's convergence figure compares.

    Seed ``s`` uses the same train/validation split and training seed as ``omnifold(seed=s)``, so
    with equal settings its curve equals that run's ``histories[0]["step1"]["curve"]``.
    """
    from jetlab.train.ddp import resolve_device

    spec = _resolve_spec(classifier_factory)
    if not seeds:
        raise ValueError("step1_curves: seeds must name at least one seed")
    n_sim, n_data = _length(sim_reco, "sim_reco"), _length(data_reco, "data_reco")
    w0, w1 = _balanced(_check_weights(sim_weights, n_sim, "sim_weights"), _check_weights(data_weights, n_data, "data_weights"))
    feats = spec.prepare("reco", [sim_reco, data_reco])
    lr = float(lr if lr is not None else spec.lr)
    dev = resolve_device(device)
    curves = []
    for seed in seeds:
        splits = _event_splits(n_sim, n_data, validation_fraction, seed, "step1_curves")
        _, rec = _fit_step(spec, _seeded_build(spec, "reco", seed), feats, _step1_parts(w0, w1, splits, "train"),
                           _step1_parts(w0, w1, splits, "val"), lr=lr, warm=False, epochs=epochs, batch_size=batch_size,
                           early_stopping_patience=early_stopping_patience, evals_per_epoch=evals_per_epoch,
                           device=dev, seed=seed, progress=progress)
        curves.append(rec["curve"])
    return curves


@dataclass
class ConvergenceStudy:
    """Step-1 validation-loss curves of several trainings (seeds) per classifier.

    On a small sample one curve's ups and downs are as large as the gap between pretrained and
    scratch, so a single pair can point either way. Averaging the seeds' curves point by point
    (:meth:`mean_curve`) removes most of that noise before :meth:`ratio` asks how much sooner
    the pretrained mean reaches the scratch mean's best value; ``per_seed`` repeats the question
    for each seed pair, to show how stable the answer is.
    """

    curves: dict[str, list[list[tuple[float, float]]]]

    def __post_init__(self) -> None:
        for name, cs in self.curves.items():
            if not cs or any(len(c) < 2 for c in cs):
                raise ValueError(f"ConvergenceStudy: {name!r} needs at least one curve of >= 2 points")

    def _aligned(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(x, curves interpolated at x): the first curve's evaluation points up to where all end
        (early stopping can end some sooner)."""
        if name not in self.curves:
            raise KeyError(f"ConvergenceStudy: no curves for {name!r}; have {sorted(self.curves)}")
        cs = [np.asarray(sorted(c), dtype=np.float64) for c in self.curves[name]]
        end = min(c[-1, 0] for c in cs)
        x = cs[0][:, 0][cs[0][:, 0] <= end + 1e-9]
        return x, np.array([np.interp(x, c[:, 0], c[:, 1]) for c in cs])

    def mean_curve(self, name: str) -> list[tuple[float, float]]:
        """The seeds' curves averaged point by point (over their common range)."""
        x, ys = self._aligned(name)
        return [(float(a), float(b)) for a, b in zip(x, ys.mean(axis=0))]

    def spread(self, name: str) -> list[float]:
        """Standard deviation of the seeds' curves at the :meth:`mean_curve` points."""
        return [float(v) for v in self._aligned(name)[1].std(axis=0)]

    def ratio(self, scratch: str = "scratch", pretrained: str = "pretrained") -> dict[str, Any]:
        """:func:`convergence_ratio`'s numbers on the mean curves, plus the same per seed pair."""
        out: dict[str, Any] = _reach_ratio(self.mean_curve(scratch), self.mean_curve(pretrained))
        out["n_seeds"] = min(len(self.curves[scratch]), len(self.curves[pretrained]))
        out["per_seed"] = [_reach_ratio(cs, cp)["ratio"] for cs, cp in zip(self.curves[scratch], self.curves[pretrained])]
        return out


# ============================================================================ evaluation
def weighted_histogram(values, bins, weights=None) -> tuple[np.ndarray, np.ndarray]:
    """(sum of weights, statistical error sqrt(sum of weights^2)) per bin; non-finite values dropped."""
    v = np.asarray(values, dtype=np.float64).ravel()
    w = np.ones_like(v) if weights is None else np.asarray(weights, dtype=np.float64).ravel()
    if w.shape != v.shape:
        raise ValueError(f"weighted_histogram: weights ({w.size}) must match values ({v.size})")
    ok = np.isfinite(v) & np.isfinite(w)
    h, _ = np.histogram(v[ok], bins=bins, weights=w[ok])
    h2, _ = np.histogram(v[ok], bins=bins, weights=w[ok] ** 2)
    return h, np.sqrt(h2)


def _obs_dict(data: LevelData | None, names: Sequence[str], where: str) -> dict[str, np.ndarray] | None:
    if data is None:
        return None
    if isinstance(data, JetSet):
        from jetlab.physics import compute_observables

        return compute_observables(data, list(names))
    if isinstance(data, Mapping):
        missing = [n for n in names if n not in data]
        if missing:
            raise KeyError(f"unfold_observables: {where} lacks observables {missing} (has {sorted(data)})")
        return {n: np.asarray(data[n], dtype=np.float64) for n in names}
    raise TypeError(f"unfold_observables: {where} must be a JetSet or a dict of observable arrays, got {type(data).__name__}")


def _td(x, wx, y, wy, edges) -> float:
    from jetlab.physics import triangular_discriminator

    hx, _ = weighted_histogram(x, edges, wx)
    hy, _ = weighted_histogram(y, edges, wy)
    return triangular_discriminator(hx, hy, np.diff(edges))


@dataclass
class UnfoldingSummary:
    """Triangular discriminators (x 10^3) of unfolded vs truth per observable and method.

    ``td[method][observable] = (value, std)``: the value on the full samples and the spread over
    ``n_bootstrap`` resamplings of the events (the bootstrap *mean* is biased upwards, since
    resampling adds noise to both histograms, so it is not used as the central value);
    ``nominal`` the values alone; ``per_iteration[method][observable]`` the nominal
    value after each OmniFold / IBU iteration; ``hists`` the per-observable histograms in the
    layout :class:`jetlab.widgets.IterationExplorer` takes (``explorer_results``).
    """

    observables: tuple[str, ...]
    bins: dict[str, np.ndarray]
    methods: list[str]
    td: dict[str, dict[str, tuple[float, float]]]
    nominal: dict[str, dict[str, float]]
    per_iteration: dict[str, dict[str, np.ndarray]]
    hists: dict[str, dict[str, Any]]

    def rows(self, precision: int = 2) -> list[dict[str, Any]]:
        """One dict per observable: ``{"observable", <method>: (mean, std), ...}``."""
        return [{"observable": o, **{m: self.td[m][o] for m in self.methods}} for o in self.observables]

    def table(self):
        """pandas DataFrame, rows = observables, columns = methods, cells = 'mean ± std'."""
        import pandas as pd

        return pd.DataFrame(
            {m: [f"{self.td[m][o][0]:.2f} ± {self.td[m][o][1]:.2f}" for o in self.observables] for m in self.methods},
            index=list(self.observables),
        )

    def moved_toward_truth(self, method: str) -> dict[str, bool]:
        """Per observable: is the unfolded result closer to the truth than the prior (nominal TD)?"""
        return {o: self.nominal[method][o] < self.nominal["prior"][o] for o in self.observables}

    def explorer_results(self, method: str) -> dict[str, dict[str, Any]]:
        """Input for :class:`jetlab.widgets.IterationExplorer` (one OmniFold method, IBU overlay)."""
        if method not in self.per_iteration:
            raise KeyError(f"explorer_results: no per-iteration histograms for {method!r}; have {sorted(self.per_iteration)}")
        out = {}
        for o in self.observables:
            h = self.hists[o]
            r = {"bins": self.bins[o], "truth": h["truth"], "prior": h["prior"], "iterations": h["iterations"][method]}
            if "IBU" in h:
                r["ibu"] = h["IBU"]
            from jetlab.physics import OBSERVABLES

            if o in OBSERVABLES:
                r["xlabel"] = OBSERVABLES[o].label
            out[o] = r
        return out


def unfold_observables(
    results: OmniFoldResult | Mapping[str, OmniFoldResult],
    sim_gen: LevelData,
    truth_gen: LevelData,
    observables: Sequence[str] = ("mass", "multiplicity", "width", "log_rho", "tau21", "zg"),
    bins: Mapping[str, Any] | int | None = None,
    *,
    sim_reco: LevelData | None = None,
    data_reco: LevelData | None = None,
    ibu_iterations: int | None = None,
    n_bootstrap: int = 20,
    truth_weights=None,
    data_weights=None,
    seed: int = 0,
) -> UnfoldingSummary:
    """The Table II analogue: triangular discriminators (x 10^3) vs the particle-level truth.

    Methods (columns): ``"IBU"`` (binned iterative Bayesian unfolding of each observable, needs
    ``sim_reco`` and ``data_reco``; ``ibu_iterations`` defaults to the OmniFold iteration count),
    ``"OmniFold-<name>"`` per result, and ``"prior"`` (the simulation before unfolding).
    ``bins``: ``{observable: edges}``, a bin count, or None (:func:`jetlab.physics.observable_bins`).
    Uncertainties: std over ``n_bootstrap`` resamplings (with replacement) of the simulated, truth
    and measured events - the statistical part; training variations need an ensemble
    (:mod:`jetlab.tasks.parallel`).
    """
    from jetlab.physics import ibu_unfold_samples, observable_bins

    res = {results.classifier: results} if isinstance(results, OmniFoldResult) else dict(results)
    if not res:
        raise ValueError("unfold_observables: no OmniFold results given")
    observables = tuple(observables)
    sg = _obs_dict(sim_gen, observables, "sim_gen")
    tg = _obs_dict(truth_gen, observables, "truth_gen")
    sr = _obs_dict(sim_reco, observables, "sim_reco")
    dr = _obs_dict(data_reco, observables, "data_reco")
    n_sim = len(sg[observables[0]])
    for name, r in res.items():
        if len(r.sim_weights) != n_sim:
            raise ValueError(f"unfold_observables: result {name!r} has weights for {len(r.sim_weights)} events, "
                             f"sim_gen has {n_sim}")
    do_ibu = sr is not None and dr is not None
    n_truth = len(tg[observables[0]])
    tw = None if truth_weights is None else np.asarray(truth_weights, dtype=np.float64)
    n_it = ibu_iterations or max(r.n_iterations for r in res.values())
    prior_w = next(iter(res.values())).sim_weights
    methods = (["IBU"] if do_ibu else []) + [f"OmniFold-{k}" for k in res] + ["prior"]
    edges_for: dict[str, np.ndarray] = {}
    for o in observables:
        if isinstance(bins, Mapping) and o in bins:
            e = np.asarray(bins[o], dtype=np.float64)
        elif isinstance(bins, (int, np.integer)):
            e = observable_bins(o, int(bins))
        else:
            e = observable_bins(o)
        edges_for[o] = e

    def ibu_density(o, sim_idx=None, data_idx=None):
        gi = slice(None) if sim_idx is None else sim_idx
        di = slice(None) if data_idx is None else data_idx
        dwi = None if data_weights is None else np.asarray(data_weights)[di]
        return ibu_unfold_samples(sg[o][gi], sr[o][gi], dr[o][di], edges_for[o], n_it, weights=prior_w[gi],
                                  data_weights=dwi)

    def all_td(sim_idx, truth_idx, data_idx) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {m: {} for m in methods}
        for o in observables:
            e = edges_for[o]
            t, twi = tg[o][truth_idx], None if tw is None else tw[truth_idx]
            s = sg[o][sim_idx]
            for k, r in res.items():
                out[f"OmniFold-{k}"][o] = _td(s, r.weights()[sim_idx], t, twi, e)
            out["prior"][o] = _td(s, prior_w[sim_idx], t, twi, e)
            if do_ibu:
                u = ibu_density(o, sim_idx, data_idx)
                ht, _ = weighted_histogram(t, e, twi)
                from jetlab.physics import triangular_discriminator

                out["IBU"][o] = triangular_discriminator(u.unfolded, ht, np.diff(e))
        return out

    n_data = len(dr[observables[0]]) if do_ibu else 0
    full = (np.arange(n_sim), np.arange(n_truth), np.arange(n_data))
    nominal = all_td(*full)
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(int(n_bootstrap)):
        boots.append(all_td(rng.integers(0, n_sim, n_sim), rng.integers(0, n_truth, n_truth),
                            rng.integers(0, n_data, n_data) if do_ibu else full[2]))
    td = {}
    for m in methods:
        td[m] = {}
        for o in observables:
            vals = np.array([b[m][o] for b in boots])
            td[m][o] = (float(nominal[m][o]), float(vals.std(ddof=1)) if len(vals) > 1 else 0.0)

    # per-iteration values and histograms (for the widget and the plots)
    from jetlab.physics import triangular_discriminator

    per_iteration: dict[str, dict[str, np.ndarray]] = {}
    hists: dict[str, dict[str, Any]] = {}
    for o in observables:
        e = edges_for[o]
        ht, et = weighted_histogram(tg[o], e, tw)
        hp, ep = weighted_histogram(sg[o], e, prior_w)
        h: dict[str, Any] = {"truth": {"values": ht, "errors": et}, "prior": {"values": hp, "errors": ep}, "iterations": {}}
        for k, r in res.items():
            its = [weighted_histogram(sg[o], e, w) for w in r.push_weights]
            h["iterations"][f"OmniFold-{k}"] = [{"values": v, "errors": s} for v, s in its]
            per_iteration.setdefault(f"OmniFold-{k}", {})[o] = np.array(
                [triangular_discriminator(v, ht, np.diff(e)) for v, _ in its])
        if do_ibu:
            u = ibu_density(o)
            scale = float(np.sum(ht))  # IBU densities scaled to the truth's event count for plotting
            widths = np.diff(e)
            h["IBU"] = {"values": u.unfolded * widths * scale, "errors": None}
            h["iterations"]["IBU"] = [{"values": d * widths * scale, "errors": None} for d in u.history]
            per_iteration.setdefault("IBU", {})[o] = np.array([triangular_discriminator(d, ht, widths) for d in u.history])
        hists[o] = h
    return UnfoldingSummary(observables=observables, bins=edges_for, methods=methods, td=td, nominal=nominal,
                            per_iteration=per_iteration, hists=hists)


# ============================================================================ data
#: the published Z+jets generators OmniFold and OmniLearn unfold: Pythia 8.2 tune 21 as simulation,
#: Herwig 7 as pseudo-data
OMNIFOLD_SIM, OMNIFOLD_DATA = "Pythia21", "Herwig"


def load_omnifold_data(dataset: str, n_jets: int, seed: int = 0, *, progress: bool = True) -> dict[str, JetSet]:
    """``{"sim_gen", "sim_reco", "data_gen", "data_reco"}`` JetSets for notebook 03.

    ``dataset`` goes through :func:`jetlab.data.sources.resolve`: a generator name (``"zjets-mini"``), a
    schema file with those four collections, or ``"omnifold_zjets"`` (all npz files of each generator
    from ``jetlab data fetch omnifold_zjets``, :data:`OMNIFOLD_SIM` as simulation and
    :data:`OMNIFOLD_DATA` as pseudo-data, as in the OmniFold and OmniLearn papers). ``n_jets`` rows
    per collection (-1: all).
    """
    names = ("sim_gen", "sim_reco", "data_gen", "data_reco")
    stop = None if n_jets is None or int(n_jets) < 0 else int(n_jets)
    source = resolve(dataset, n_jets=stop, seed=seed, progress=progress)
    if source.has_split(OMNIFOLD_SIM) or source.has_split(OMNIFOLD_DATA):
        missing = [s for s in (OMNIFOLD_SIM, OMNIFOLD_DATA) if not source.has_split(s)]
        if missing:
            raise FileNotFoundError(f"load_omnifold_data: {dataset!r} has no {', '.join(missing)} files (has "
                                    f"{list(source.splits)}); run `jetlab data fetch omnifold_zjets --subset "
                                    f"{' --subset '.join(missing)}`")
        sets = {f"{role}_{level}": source.read(level, split=split, stop=stop)
                for role, split in (("sim", OMNIFOLD_SIM), ("data", OMNIFOLD_DATA)) for level in ("gen", "reco")}
    else:
        sets = source.read_all(stop=None if source.kind == "generated" else stop)
    lacking = [n for n in names if n not in sets]
    if lacking:
        raise KeyError(f"load_omnifold_data: {dataset!r} lacks collections {lacking} (has {sorted(sets)}); "
                       "OmniFold needs sim_gen, sim_reco, data_gen, data_reco")
    return {n: sets[n] for n in names}
