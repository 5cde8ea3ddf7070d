"""Weakly supervised resonant anomaly detection on LHCO dijets, CATHODE-style, with PET.

The search looks for a localised excess in the dijet mass ``mjj``. A *signal region* (SR)
window is compared with the *sidebands* (SB) around it:

1. a conditional generative model of the background is fitted on sideband events, conditioned
   on the (scaled) ``mjj``: first the jet-level features of both jets
   (:class:`jetlab.model.jet_generator.JetFeatureGenerator`), then the particles of each jet
   (PET's diffusion generator head, conditioned on the jet features, the jet index and ``mjj``);
2. it is *interpolated* into the SR by sampling ``mjj`` from the SR data, giving an
   (oversampled) synthetic background set;
3. a classifier learns SR data vs synthetic background. Without signal both are the same
   distribution and the classifier learns nothing; with signal the score approximates the
   likelihood ratio ``p_data / p_bkg``, i.e. it finds the anomaly without ever seeing a label.
   k-fold training scores every SR event with a model that did not train on it.

Baselines: the *idealised* detector (same classifier, but the template is held-out TRUE
background in the SR) and the *fully supervised* classifier (signal vs background labels).
``mjj`` is never a classifier input, so cuts on the score do not sculpt a bump by construction
(checked by :func:`sculpting_check`).

Units: ``mjj`` in TeV everywhere in this module (files store GeV; :func:`load_dijets` converts).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset

from jetlab.data.preprocess import Standardizer, model_inputs, jet_inputs
from jetlab.data.schema import JetSet, SchemaError, sort_and_truncate
from jetlab.data.sources import resolve

__all__ = [
    "DEFAULT_SB",
    "DEFAULT_SR",
    "JET_FEATURE_NAMES",
    "PARTICLE_FEATURE_NAMES",
    "AnomalySplit",
    "ArrayDataset",
    "BackgroundGenerator",
    "DijetClassifier",
    "DijetEvents",
    "KFoldResult",
    "MassWindows",
    "MjjConditionedGenerator",
    "AnomalyRun",
    "anomaly_metrics",
    "run_cathode",
    "run_idealised",
    "run_supervised",
    "build_pet",
    "closeness_metrics",
    "dijet_inputs",
    "fit_background_generator",
    "inject_signal",
    "kfold_indices",
    "kfold_scores",
    "load_dijets",
    "predict_dijet",
    "sculpting_check",
    "supervised_scores",
    "train_dijet_classifier",
]

DEFAULT_SR: tuple[float, float] = (3.3, 3.7)
DEFAULT_SB: tuple[tuple[float, float], tuple[float, float]] = ((2.3, 3.3), (3.7, 5.0))
#: the 8 jet-level features of an event modelled by the jet-level generator (GeV)
JET_FEATURE_NAMES: tuple[str, ...] = ("pt1", "eta1", "m1", "n1", "pt2", "eta2", "m2", "n2")
#: the particle inputs PET's generator head produces (raw units: rad, rad, log)
PARTICLE_FEATURE_NAMES: tuple[str, ...] = ("deta", "dphi", "log_1m_ptrel")
_DIJET_KEYS = ("x1", "mask1", "jets1", "x2", "mask2", "jets2")


# =============================================================================== mass windows
@dataclass(frozen=True)
class MassWindows:
    """Signal region and sidebands in ``mjj`` [TeV]; ``scale`` maps the full window to [-1, 1]."""

    sr: tuple[float, float] = DEFAULT_SR
    sb: tuple[tuple[float, float], tuple[float, float]] = DEFAULT_SB

    def __post_init__(self) -> None:
        sr = tuple(float(v) for v in self.sr)
        sb = tuple(tuple(float(v) for v in s) for s in self.sb)
        if len(sr) != 2 or len(sb) != 2 or any(len(s) != 2 for s in sb):
            raise ValueError(f"MassWindows: sr must be (lo, hi) and sb ((lo, hi), (lo, hi)), got sr={self.sr}, sb={self.sb}")
        if not (sb[0][0] < sb[0][1] <= sr[0] < sr[1] <= sb[1][0] < sb[1][1]):
            raise ValueError(f"MassWindows: need sb_low < sr < sb_high without overlap, got sr={sr}, sb={sb} (TeV)")
        object.__setattr__(self, "sr", sr)
        object.__setattr__(self, "sb", sb)

    @property
    def lo(self) -> float:
        return self.sb[0][0]

    @property
    def hi(self) -> float:
        return self.sb[1][1]

    def scale(self, mjj) -> np.ndarray:
        """``mjj`` [TeV] -> [-1, 1] over the full window (the generator's condition)."""
        return (2.0 * (np.asarray(mjj, dtype=np.float64) - self.lo) / (self.hi - self.lo) - 1.0).astype(np.float32)

    def unscale(self, x) -> np.ndarray:
        return (self.lo + 0.5 * (np.asarray(x, dtype=np.float64) + 1.0) * (self.hi - self.lo)).astype(np.float32)

    def in_sr(self, mjj) -> np.ndarray:
        m = np.asarray(mjj)
        return (m >= self.sr[0]) & (m < self.sr[1])

    def in_sb(self, mjj) -> np.ndarray:
        m = np.asarray(mjj)
        return ((m >= self.sb[0][0]) & (m < self.sb[0][1])) | ((m >= self.sb[1][0]) & (m < self.sb[1][1]))

    def in_window(self, mjj) -> np.ndarray:
        m = np.asarray(mjj)
        return (m >= self.lo) & (m < self.hi)


# =============================================================================== events
@dataclass
class DijetEvents:
    """Row-aligned dijet events: ``jet1`` (heavier), ``jet2``, ``mjj`` [TeV], ``labels`` (1 = signal)."""

    jet1: JetSet
    jet2: JetSet
    mjj: np.ndarray
    labels: np.ndarray

    def __post_init__(self) -> None:
        self.mjj = np.asarray(self.mjj, dtype=np.float32)
        self.labels = np.asarray(self.labels, dtype=np.int64)
        n = len(self.mjj)
        if not (len(self.jet1) == len(self.jet2) == len(self.labels) == n):
            raise ValueError(f"DijetEvents: jet1 ({len(self.jet1)}), jet2 ({len(self.jet2)}), mjj ({n}) and "
                             f"labels ({len(self.labels)}) must have the same length")

    def __len__(self) -> int:
        return len(self.mjj)

    def subset(self, index) -> "DijetEvents":
        return DijetEvents(self.jet1.subset(index), self.jet2.subset(index), self.mjj[index], self.labels[index])

    @staticmethod
    def concatenate(parts: Sequence["DijetEvents"]) -> "DijetEvents":
        parts = list(parts)
        if not parts:
            raise ValueError("DijetEvents.concatenate needs at least one part")
        return DijetEvents(JetSet.concatenate([p.jet1 for p in parts]), JetSet.concatenate([p.jet2 for p in parts]),
                           np.concatenate([p.mjj for p in parts]), np.concatenate([p.labels for p in parts]))

    def jet_features(self) -> np.ndarray:
        """``(N, 8)`` physical jet features, :data:`JET_FEATURE_NAMES` (GeV)."""
        return np.concatenate([jet_inputs(self.jet1), jet_inputs(self.jet2)], axis=1)


def _truncate(js: JetSet, max_particles: int | None) -> JetSet:
    if max_particles is None or max_particles >= js.max_particles:
        return js
    p, m = sort_and_truncate(js.particles, js.mask, int(max_particles))
    return JetSet(p, m, js.jets, js.labels, js.weights, js.particle_features, dict(js.extra))


def load_dijets(
    source: str | os.PathLike = "lhco-mini",
    n_events: int | None = None,
    *,
    seed: int = 0,
    signal_fraction: float = 0.15,
    max_particles: int | None = None,
    order: str = "mass",
    cache_dir: str | os.PathLike | None = None,
    progress: bool = False,
) -> DijetEvents:
    """Dijet events from the one resolver (:func:`jetlab.data.sources.resolve`): a generator name
    (``"lhco-mini"``, cached), ``"lhco_rnd"`` (the LHC Olympics R&D data from ``jetlab data fetch``,
    clustered once on first use) or a schema file / directory.

    ``max_particles`` keeps the leading-pT particles of each jet (the jet features keep the full
    multiplicity). ``order="mass"`` makes ``jet1`` the heavier jet (LHCO convention), ``"pt"``
    keeps the file's order. ``mjj`` is returned in TeV.
    """
    if order not in ("mass", "pt"):
        raise ValueError(f"load_dijets: order must be 'mass' or 'pt', got {order!r}")
    stop = None if n_events is None or n_events < 0 else int(n_events)
    data = resolve(source, n_jets=stop, seed=seed, cache_dir=cache_dir, progress=progress,
                   signal_fraction=float(signal_fraction))
    path = data.sources[0] if len(data.sources) == 1 else f"{data.name} ({len(data.sources)} files)"
    sets = {c: data.read(c, stop=None if data.kind == "generated" else stop) for c in data.collections}
    missing = [c for c in ("jet1", "jet2") if c not in sets]
    if missing:
        raise SchemaError(f"{path}: dijet file needs collections 'jet1' and 'jet2', missing {missing} (has {sorted(sets)})")
    j1, j2 = (_truncate(sets[c], max_particles) for c in ("jet1", "jet2"))
    if "mjj" not in j1.extra:
        raise SchemaError(f"{path}: collection 'jet1' has no extra['mjj'] (the dijet mass)")
    mjj = np.asarray(j1.extra["mjj"], dtype=np.float64) / 1000.0
    if order == "mass":
        swap = j2.jets[:, 3] > j1.jets[:, 3]
        if swap.any():
            a, b = j1.subset(slice(None)), j2.subset(slice(None))
            for name in ("particles", "mask", "jets"):
                getattr(a, name)[swap] = getattr(j2, name)[swap]
                getattr(b, name)[swap] = getattr(j1, name)[swap]
            j1, j2 = a, b
    return DijetEvents(j1, j2, mjj, j1.labels)


@dataclass
class AnomalySplit:
    """``data``: background + injected signal (what an analysis sees); ``background``: held-out true
    background (idealised template, supervised training, closeness tests); ``signal``: the signal
    not injected (supervised training only)."""

    data: DijetEvents
    background: DijetEvents
    signal: DijetEvents
    n_injected: int

    def summary(self, windows: MassWindows) -> dict[str, Any]:
        d = self.data
        sr = windows.in_sr(d.mjj)
        n_s, n_b = int((d.labels[sr] == 1).sum()), int((d.labels[sr] == 0).sum())
        return {"n_data": len(d), "n_injected": self.n_injected, "sr_signal": n_s, "sr_background": n_b,
                "sr_s_over_b": n_s / max(n_b, 1), "sr_s_over_sqrt_b": n_s / math.sqrt(max(n_b, 1)),
                "n_background_reference": len(self.background), "n_signal_reference": len(self.signal)}


def inject_signal(events: DijetEvents, n_signal: int, *, data_background_fraction: float = 0.5, seed: int = 0) -> AnomalySplit:
    """Build the pseudo-data: ``data_background_fraction`` of the background plus ``n_signal``
    randomly chosen signal events; the rest are kept apart as labelled references."""
    if not 0.0 < data_background_fraction < 1.0:
        raise ValueError(f"inject_signal: data_background_fraction must be in (0, 1), got {data_background_fraction}")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 404]))
    bkg = np.nonzero(events.labels == 0)[0]
    sig = np.nonzero(events.labels == 1)[0]
    if n_signal < 0 or n_signal > len(sig):
        raise ValueError(f"inject_signal: n_signal={n_signal} but the events hold {len(sig)} signal events (labels == 1)")
    if len(bkg) < 2:
        raise ValueError(f"inject_signal: need background events (labels == 0), got {len(bkg)}")
    bkg, sig = rng.permutation(bkg), rng.permutation(sig)
    n_data_bkg = int(round(data_background_fraction * len(bkg)))
    data_idx = np.sort(np.concatenate([bkg[:n_data_bkg], sig[:n_signal]]))
    return AnomalySplit(events.subset(data_idx), events.subset(np.sort(bkg[n_data_bkg:])),
                        events.subset(np.sort(sig[n_signal:])), int(n_signal))


# =============================================================================== model inputs
def dijet_inputs(events: DijetEvents, standardizer: Standardizer) -> dict[str, np.ndarray]:
    """Standardised PET inputs of both jets: ``x1, mask1, jets1, x2, mask2, jets2``.

    The 13 particle inputs are rebuilt from (deta, dphi, log_1m_ptrel) and the jet features, as
    for generated particles (:func:`jetlab.model.complete_particle_inputs`), so real and
    synthetic events differ only in what the generator got wrong, never in derived features.
    """
    from jetlab.model.diffusion import complete_particle_inputs

    out: dict[str, np.ndarray] = {}
    for k, js in ((1, events.jet1), (2, events.jet2)):
        x, mask, jets, _ = model_inputs(js, standardizer)
        out[f"x{k}"] = complete_particle_inputs(x[..., :3], mask, jets, standardizer)
        out[f"mask{k}"] = mask
        out[f"jets{k}"] = jets
    return out


def _take(inputs: Mapping[str, np.ndarray], index) -> dict[str, np.ndarray]:
    return {k: v[index] for k, v in inputs.items()}


def _concat(*parts: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    keys = parts[0].keys()
    return {k: np.concatenate([p[k] for p in parts]) for k in keys}


class ArrayDataset(Dataset):
    """A map-style dataset of equally long arrays; batches are dicts of tensors (jetlab batch format)."""

    def __init__(self, **arrays: np.ndarray | Tensor) -> None:
        if not arrays:
            raise ValueError("ArrayDataset needs at least one array")
        self.tensors = {k: torch.as_tensor(np.asarray(v)) if not isinstance(v, Tensor) else v for k, v in arrays.items()}
        lengths = {k: len(v) for k, v in self.tensors.items()}
        if len(set(lengths.values())) != 1:
            raise ValueError(f"ArrayDataset: arrays differ in length: {lengths}")
        self.n = next(iter(lengths.values()))

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i) -> dict[str, Tensor]:
        return {k: v[i] for k, v in self.tensors.items()}

    def __getitems__(self, indices) -> dict[str, Tensor]:
        idx = torch.as_tensor(indices, dtype=torch.long)
        return {k: v.index_select(0, idx) for k, v in self.tensors.items()}


# =============================================================================== models
def build_pet(checkpoint: str | os.PathLike | None, config: Any = "tiny", *, num_classes: int = 1):
    """``(PET, standardizer or None)``: loaded from ``checkpoint`` (fine-tuning) or fresh (scratch).

    ``config`` is a :class:`~jetlab.model.PETConfig` or a preset name, used only without a checkpoint.
    """
    from jetlab.model import PET, PETConfig
    from jetlab.train.finetune import model_standardizer

    if checkpoint is not None:
        from jetlab.model import load

        model = load(checkpoint)
        std = model_standardizer(model)
    else:
        if isinstance(config, str):
            if config not in ("tiny", "small", "paper"):
                raise ValueError(f"build_pet: config must be 'tiny', 'small', 'paper' or a PETConfig, got {config!r}")
            config = getattr(PETConfig, config)()
        model, std = PET(config), None
    model.reset_classifier(num_classes)
    return model, std


def _jet_embedding(pet, x: Tensor, mask: Tensor, jets: Tensor) -> Tensor:
    """PET's per-jet summary: body, then the classifier head up to its final norm (class token)."""
    mask = mask.bool()
    return pet.classifier.summary(pet.body(x, mask), mask, jets)


class DijetClassifier(nn.Module):
    """Event classifier on both jets: one shared PET embeds each jet, an MLP combines the two.

    The body is shared (and pretrained when PET comes from a checkpoint); the combination sees the
    class-token summaries of the heavier and the lighter jet side by side, so correlations between
    the two jets (the signal's two resonances) are learnable.
    """

    def __init__(self, pet: nn.Module) -> None:
        super().__init__()
        self.pet = pet
        d = pet.config.projection_dim
        self.combine = nn.Sequential(nn.Linear(2 * d, d), nn.GELU(), nn.Linear(d, 1))

    def forward(self, batch: Mapping[str, Tensor]) -> Tensor:
        c1 = _jet_embedding(self.pet, batch["x1"], batch["mask1"], batch["jets1"])
        c2 = _jet_embedding(self.pet, batch["x2"], batch["mask2"], batch["jets2"])
        return self.combine(torch.cat([c1, c2], dim=-1))[:, 0]

    def param_groups(self, lr_head: float, lr_factor: float = 5.0) -> list[dict]:
        """Body at ``lr_head / lr_factor`` (the OmniLearn fine-tuning recipe), everything else at ``lr_head``."""
        body = [p for p in self.pet.body.parameters() if p.requires_grad]
        ids = {id(p) for p in body}
        rest = [p for p in self.parameters() if p.requires_grad and id(p) not in ids]
        return [{"params": body, "lr": lr_head / lr_factor, "name": "body"}, {"params": rest, "lr": lr_head, "name": "heads"}]


def _bce_loss(model: nn.Module, batch: dict) -> tuple[Tensor, dict]:
    logits = model(batch).float()
    y = batch["label"].float()
    w = batch["weight"].float()
    per = F.binary_cross_entropy_with_logits(logits, y, reduction="none")
    wsum = w.sum().clamp_min(1e-12)
    acc = (((logits > 0).float() == y).float() * w).sum() / wsum
    return (per * w).sum() / wsum, {"acc": float(acc)}


def _balanced_weights(labels: np.ndarray) -> np.ndarray:
    """Per-event weights so both classes carry the same total weight (mean weight 1)."""
    w = np.ones(len(labels), dtype=np.float32)
    n1, n0 = int((labels == 1).sum()), int((labels == 0).sum())
    if n1 and n0:
        w[labels == 1] = len(labels) / (2.0 * n1)
        w[labels == 0] = len(labels) / (2.0 * n0)
    return w


def train_dijet_classifier(
    model: DijetClassifier,
    inputs: Mapping[str, np.ndarray],
    labels: np.ndarray,
    *,
    epochs: int = 5,
    batch_size: int = 128,
    lr: float = 1e-3,
    lr_factor: float = 5.0,
    val_fraction: float = 0.2,
    seed: int = 0,
    device: str | torch.device = "auto",
    progress: bool = False,
):
    """Fit ``model`` (in place) with class-balanced BCE; the best-validation-loss weights are kept.

    ``val_fraction`` of the events (stratified by label) is held out for that model selection.
    Returns the :class:`~jetlab.train.History`.
    """
    from jetlab.train import Trainer

    labels = np.asarray(labels, dtype=np.int64)
    n = len(labels)
    if n < 4 or len(np.unique(labels)) < 2:
        raise ValueError(f"train_dijet_classifier: need >= 4 events of both classes, got {n} events with labels "
                         f"{np.unique(labels).tolist()}")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 17]))
    val = np.zeros(n, dtype=bool)
    if val_fraction > 0:
        for c in (0, 1):
            idx = rng.permutation(np.nonzero(labels == c)[0])
            val[idx[: max(1, int(round(val_fraction * len(idx))))]] = True
    w = _balanced_weights(labels)

    def ds(sel):
        return ArrayDataset(**_take(inputs, sel), label=labels[sel], weight=w[sel])

    val_ds = ds(val) if val.any() else None
    trainer = Trainer(model, _bce_loss, ds(~val), val_ds, optimizer="adamw", lr=lr,
                      param_groups=model.param_groups(lr, lr_factor), epochs=epochs, batch_size=batch_size,
                      device=device, seed=seed, progress=progress, checkpoint_every=None, amp="off",
                      restore_best=val_ds is not None)
    history = trainer.fit()
    model.eval()
    return history


@torch.no_grad()
def predict_dijet(model: nn.Module, inputs: Mapping[str, np.ndarray], batch_size: int = 512,
                  device: str | torch.device = "auto") -> np.ndarray:
    """Sigmoid scores ``(N,)`` of a :class:`DijetClassifier`, in input order."""
    from jetlab.train.ddp import resolve_device

    dev = resolve_device(device)
    model.to(dev).eval()
    n = len(next(iter(inputs.values())))
    out = np.empty(n, dtype=np.float32)
    for a in range(0, n, batch_size):
        batch = {k: torch.as_tensor(v[a:a + batch_size]).to(dev) for k, v in inputs.items() if k in _DIJET_KEYS}
        out[a:a + batch_size] = torch.sigmoid(model(batch).float()).cpu().numpy()
    return out


# =============================================================================== k-fold
def kfold_indices(n: int, k: int, seed: int = 0) -> np.ndarray:
    """Fold id in ``[0, k)`` for each of ``n`` events (random, fold sizes differ by at most 1)."""
    if k < 2:
        raise ValueError(f"kfold_indices: k must be >= 2, got {k}")
    if n < k:
        raise ValueError(f"kfold_indices: need at least k={k} events, got {n}")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 23]))
    fold = np.empty(n, dtype=np.int64)
    fold[rng.permutation(n)] = np.arange(n) % k
    return fold


@dataclass
class KFoldResult:
    """``scores[i]`` comes from the model of fold ``fold[i]``, which never trained on event ``i``;
    ``extra_scores`` (e.g. sideband events) average all fold models."""

    scores: np.ndarray
    fold: np.ndarray
    extra_scores: np.ndarray | None = None
    histories: list = field(default_factory=list)


def kfold_scores(
    data: Mapping[str, np.ndarray],
    template: Mapping[str, np.ndarray],
    make_model: Callable[[], DijetClassifier],
    *,
    k: int = 3,
    seed: int = 0,
    extra: Mapping[str, np.ndarray] | None = None,
    **train_kwargs: Any,
) -> KFoldResult:
    """Train ``k`` classifiers "data (1) vs template (0)" and score every data event out-of-fold.

    The template is split into the same number of folds and fold ``i`` of the template is left out
    of model ``i`` too, so each model sees the same data/template proportion.
    """
    n_d = len(next(iter(data.values())))
    n_t = len(next(iter(template.values())))
    fold = kfold_indices(n_d, k, seed)
    tfold = kfold_indices(n_t, k, seed + 1)
    scores = np.full(n_d, np.nan, dtype=np.float32)
    extra_sum = None
    histories = []
    for i in range(k):
        tr, te = fold != i, fold == i
        x = _concat(_take(data, tr), _take(template, tfold != i))
        y = np.concatenate([np.ones(int(tr.sum()), np.int64), np.zeros(int((tfold != i).sum()), np.int64)])
        model = make_model()
        histories.append(train_dijet_classifier(model, x, y, seed=seed * 1000 + i, **train_kwargs))
        dev = train_kwargs.get("device", "auto")
        scores[te] = predict_dijet(model, _take(data, te), device=dev)
        if extra is not None:
            s = predict_dijet(model, extra, device=dev)
            extra_sum = s if extra_sum is None else extra_sum + s
    return KFoldResult(scores, fold, None if extra_sum is None else extra_sum / k, histories)


def supervised_scores(
    signal: Mapping[str, np.ndarray],
    background: Mapping[str, np.ndarray],
    evaluate: Sequence[Mapping[str, np.ndarray]],
    make_model: Callable[[], DijetClassifier],
    *,
    seed: int = 0,
    **train_kwargs: Any,
) -> list[np.ndarray]:
    """Fully supervised upper bound: one classifier signal (1) vs background (0) on labelled
    references; returns its scores for each input set in ``evaluate`` (never trained on)."""
    n_s = len(next(iter(signal.values())))
    n_b = len(next(iter(background.values())))
    y = np.concatenate([np.ones(n_s, np.int64), np.zeros(n_b, np.int64)])
    model = make_model()
    train_dijet_classifier(model, _concat(signal, background), y, seed=seed, **train_kwargs)
    return [predict_dijet(model, e, device=train_kwargs.get("device", "auto")) for e in evaluate]


# =============================================================================== generator
def _jet_latent(features: np.ndarray) -> np.ndarray:
    """Physical jet features -> generator space: log pT, eta, log m, multiplicity (per jet)."""
    f = np.asarray(features, dtype=np.float64).copy()
    for j in (0, 4):
        f[:, j] = np.log(np.maximum(f[:, j], 1e-3))
        f[:, j + 2] = np.log(np.maximum(f[:, j + 2], 1.0))
    return f.astype(np.float32)


def _jet_physical(latent: np.ndarray) -> np.ndarray:
    f = np.asarray(latent, dtype=np.float64).copy()
    for j in (0, 4):
        f[:, j] = np.exp(np.clip(f[:, j], -10, 12))
        f[:, j + 2] = np.exp(np.clip(f[:, j + 2], 0, 12))
    return f.astype(np.float32)


class MjjConditionedGenerator(nn.Module):
    """PET's particle generator with ``mjj`` as an extra condition, without touching PET.

    The generator head conditions on the standardised jet features through an MLP; the scaled
    ``mjj`` enters as a learned shift of that jet-feature vector, ``jets + W mjj`` (``W`` starts
    at zero, so a pretrained head starts exactly where pretraining left it). The jet index
    (heavier = 0, lighter = 1) is passed as PET's class label.
    """

    def __init__(self, pet: nn.Module) -> None:
        super().__init__()
        self.pet = pet
        self.mjj_proj = nn.Linear(1, pet.config.num_jet)
        nn.init.zeros_(self.mjj_proj.weight)
        nn.init.zeros_(self.mjj_proj.bias)

    def condition(self, jets: Tensor, mjj_scaled: Tensor) -> Tensor:
        return jets + self.mjj_proj(mjj_scaled.reshape(-1, 1).to(jets.dtype))

    def loss(self, batch: Mapping[str, Tensor]) -> Tensor:
        from jetlab.model.diffusion import v_loss

        b = dict(batch)
        b["jets"] = self.condition(batch["jets"], batch["mjj"])
        return v_loss(self.pet, b)

    def param_groups(self, lr_head: float, lr_factor: float = 5.0) -> list[dict]:
        body = [p for p in self.pet.body.parameters() if p.requires_grad]
        ids = {id(p) for p in body}
        rest = [p for p in self.parameters() if p.requires_grad and id(p) not in ids]
        return [{"params": body, "lr": lr_head / lr_factor, "name": "body"}, {"params": rest, "lr": lr_head, "name": "heads"}]


@dataclass
class BackgroundGenerator:
    """The fitted two-stage background model: jet features | mjj, then particles | jet features, mjj."""

    jet_model: Any  # JetFeatureGenerator
    particle_model: MjjConditionedGenerator
    standardizer: Standardizer
    windows: MassWindows
    max_particles: int
    history: dict = field(default_factory=dict)

    @torch.no_grad()
    def sample(self, mjj, *, seed: int = 0, steps: int = 16, jet_steps: int = 32, batch_size: int = 1024,
               device: str | torch.device = "auto") -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Synthetic events at the given ``mjj`` [TeV]: ``(dijet inputs, physical jet features (N, 8))``."""
        from jetlab.model.diffusion import complete_particle_inputs, sample as ddim
        from jetlab.train.ddp import resolve_device

        dev = resolve_device(device)
        mjj = np.asarray(mjj, dtype=np.float32).reshape(-1)
        n = len(mjj)
        cond = self.windows.scale(mjj)
        self.jet_model.to(dev).eval()
        self.particle_model.to(dev).eval()
        g = torch.Generator(device=dev).manual_seed(int(seed))
        latent = self.jet_model.sample(n, torch.as_tensor(cond[:, None], device=dev), steps=jet_steps, generator=g)
        feats = _jet_physical(latent.cpu().numpy())
        out: dict[str, np.ndarray] = {}
        P = self.max_particles
        for k in (1, 2):
            raw = feats[:, 4 * (k - 1): 4 * k]
            jets = self.standardizer.transform_jets(raw)
            mult = np.clip(np.round(raw[:, 3]), 1, P).astype(np.int64)
            mask = np.arange(P)[None, :] < mult[:, None]
            xs = np.zeros((n, P, len(self.standardizer.particle_mean)), dtype=np.float32)
            for a in range(0, n, batch_size):
                m = torch.as_tensor(mask[a:a + batch_size], device=dev)
                j = torch.as_tensor(jets[a:a + batch_size], device=dev)
                mj = torch.as_tensor(cond[a:a + batch_size], device=dev)
                lab = torch.full((len(m),), k - 1, dtype=torch.long, device=dev)
                z = ddim(self.particle_model.pet, m, self.particle_model.condition(j, mj), lab, steps=steps, generator=g)
                xs[a:a + batch_size] = complete_particle_inputs(z, m, j, self.standardizer).cpu().numpy()
            out[f"x{k}"], out[f"mask{k}"], out[f"jets{k}"] = xs, mask, jets
        return out, feats


def _train_jet_model(features: np.ndarray, cond: np.ndarray, *, epochs: int, batch_size: int, lr: float, seed: int,
                     device: torch.device, n_max: int, hidden: int = 128, layers: int = 3):
    from jetlab.model.jet_generator import JetFeatureGenerator

    gen = JetFeatureGenerator(8, cond_dim=1, hidden=hidden, layers=layers, integer_features={3: (1, n_max), 7: (1, n_max)})
    latent = _jet_latent(features)
    gen.fit_normalization(latent)
    gen.to(device).train()
    x = torch.as_tensor(latent, device=device)
    c = torch.as_tensor(cond.reshape(-1, 1), device=device)
    g = torch.Generator(device=device).manual_seed(int(seed))
    opt = torch.optim.AdamW(gen.parameters(), lr=lr, weight_decay=1e-4)
    n = len(x)
    steps = max(1, epochs * math.ceil(n / batch_size))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.05)
    losses = []
    for _ in range(epochs):
        perm = torch.randperm(n, generator=g, device=device)
        tot = 0.0
        for a in range(0, n, batch_size):
            idx = perm[a:a + batch_size]
            loss = gen.loss(x[idx], c[idx], generator=g)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(gen.parameters(), 1.0)
            opt.step()
            sched.step()
            tot += float(loss.detach()) * len(idx)
        losses.append(tot / n)
    gen.eval()
    return gen, losses


def fit_background_generator(
    sideband: DijetEvents,
    windows: MassWindows,
    *,
    checkpoint: str | os.PathLike | None = None,
    config: Any = "tiny",
    standardizer: Standardizer | None = None,
    epochs: int = 5,
    jet_epochs: int = 100,
    batch_size: int = 128,
    lr: float = 1e-3,
    lr_factor: float = 5.0,
    seed: int = 0,
    device: str | torch.device = "auto",
    progress: bool = False,
) -> BackgroundGenerator:
    """Fit the background model on sideband events (fine-tuning PET from ``checkpoint``, or from scratch).

    Both stages condition on ``windows.scale(mjj)``, so sampling at SR masses interpolates
    between the two sidebands. ``standardizer`` defaults to the checkpoint's, else it is fitted
    on the sideband jets.
    """
    from jetlab.train import Trainer
    from jetlab.train.ddp import resolve_device

    if len(sideband) < 10:
        raise ValueError(f"fit_background_generator: need at least 10 sideband events, got {len(sideband)}")
    out_of_sb = ~windows.in_sb(sideband.mjj)
    if out_of_sb.any():
        raise ValueError(f"fit_background_generator: {int(out_of_sb.sum())} events lie outside the sidebands "
                         f"{windows.sb} TeV; pass sideband events only")
    dev = resolve_device(device)
    torch.manual_seed(seed)
    pet, std = build_pet(checkpoint, config, num_classes=1)  # label slots 0/1 = jet1/jet2, 2 = null
    if standardizer is None:
        standardizer = std or Standardizer.fit_jetset(JetSet.concatenate([sideband.jet1, sideband.jet2]))
    feats = sideband.jet_features()
    cond = windows.scale(sideband.mjj)
    n_max = int(max(feats[:, 3].max(), feats[:, 7].max()))
    jet_model, jet_losses = _train_jet_model(feats, cond, epochs=jet_epochs, batch_size=256, lr=2e-3, seed=seed,
                                             device=dev, n_max=n_max)
    x1, m1, j1, _ = model_inputs(sideband.jet1, standardizer)
    x2, m2, j2, _ = model_inputs(sideband.jet2, standardizer)
    n = len(sideband)
    ds = ArrayDataset(x=np.concatenate([x1, x2]), mask=np.concatenate([m1, m2]), jets=np.concatenate([j1, j2]),
                      label=np.concatenate([np.zeros(n, np.int64), np.ones(n, np.int64)]),
                      mjj=np.concatenate([cond, cond]), weight=np.ones(2 * n, np.float32))
    wrapper = MjjConditionedGenerator(pet)
    trainer = Trainer(wrapper, lambda m, b: m.loss(b), ds, None, optimizer="adamw", lr=lr,
                      param_groups=wrapper.param_groups(lr, lr_factor if checkpoint is not None else 1.0),
                      epochs=epochs, batch_size=batch_size, device=dev, seed=seed, progress=progress,
                      checkpoint_every=None, amp="off")
    hist = trainer.fit()
    wrapper.eval()
    history = {"jet_loss": jet_losses, "particle_loss": [e.get("train_loss") for e in hist.epochs]}
    return BackgroundGenerator(jet_model, wrapper, standardizer, windows, int(sideband.jet1.max_particles), history)


# =============================================================================== metrics
def anomaly_metrics(labels, scores, *, min_background_events: int = 10, min_fpr: float = 1e-4) -> dict[str, Any]:
    """ROC AUC, SIC curve and max SIC of ``scores`` for truth ``labels`` (1 = signal).

    The SIC is only trusted where at least ``min_background_events`` background events survive
    the cut: ``eps_B >= max(min_fpr, min_background_events / N_bkg)`` (with mini samples the
    usual ``1e-4`` alone would quote fluctuations of one or two events).
    """
    from sklearn.metrics import roc_curve

    from jetlab.physics.metrics import roc_metrics

    labels = np.asarray(labels)
    n_b = int((labels == 0).sum())
    floor = max(float(min_fpr), min_background_events / max(n_b, 1))
    roc = roc_metrics(labels, scores)
    # every threshold (no drop_intermediate): the SIC maximum sits on points a thinned ROC drops
    fpr, tpr, _ = roc_curve(labels, np.asarray(scores, dtype=np.float64), drop_intermediate=False)
    keep = fpr >= floor - 1e-12
    eps_s, sic = tpr[keep], tpr[keep] / np.sqrt(fpr[keep])
    return {"auc": float(roc["auc"]), "max_sic": float(np.max(sic)) if sic.size else float("nan"),
            "min_fpr": floor, "fpr": fpr, "tpr": tpr, "eps_s": eps_s, "sic": sic,
            "n_signal": int((labels == 1).sum()), "n_background": n_b}


def sculpting_check(mjj, scores, labels, windows: MassWindows, efficiencies: Sequence[float] = (0.5, 0.2, 0.05),
                    *, seed: int = 0) -> dict[float, dict[str, float]]:
    """Does a score cut sculpt the background ``mjj`` spectrum? Per cut efficiency: W1 between the
    normalised background ``mjj`` after vs before the cut, and the same for a random subset of the
    same size (the statistical floor). ``w1 / w1_random`` near 1 = no sculpting."""
    from jetlab.physics.metrics import wasserstein_1d

    mjj, scores, labels = (np.asarray(a) for a in (mjj, scores, labels))
    inw = windows.in_window(mjj)
    mjj, scores, labels = mjj[inw], scores[inw], labels[inw]
    rng = np.random.default_rng(seed)
    out = {}
    for eff in efficiencies:
        if not 0.0 < eff <= 1.0:
            raise ValueError(f"sculpting_check: efficiencies must be in (0, 1], got {eff}")
        cut = scores >= np.quantile(scores, 1.0 - eff)
        bkg_all = mjj[labels == 0]
        bkg_cut = mjj[cut & (labels == 0)]
        if len(bkg_cut) < 2:
            out[float(eff)] = {"n_background": len(bkg_cut), "w1": float("nan"), "w1_random": float("nan")}
            continue
        rand = rng.choice(bkg_all, size=len(bkg_cut), replace=False)
        out[float(eff)] = {"n_background": int(len(bkg_cut)), "w1": wasserstein_1d(bkg_cut, bkg_all),
                           "w1_random": wasserstein_1d(rand, bkg_all)}
    return out


def _raw_particles(inputs: Mapping[str, np.ndarray], standardizer: Standardizer, k: int) -> np.ndarray:
    """Real particles' (deta, dphi, log_1m_ptrel) of jet ``k``, flattened to ``(n_particles, 3)``."""
    x, mask = inputs[f"x{k}"], inputs[f"mask{k}"]
    raw = x[..., :3] * standardizer.particle_std[:3] + standardizer.particle_mean[:3]
    return raw[mask]


def _summary_features(inputs: Mapping[str, np.ndarray], standardizer: Standardizer) -> np.ndarray:
    """Per-event high-level summary for the true-vs-generated classifier test."""
    cols = []
    for k in (1, 2):
        x, mask = inputs[f"x{k}"], inputs[f"mask{k}"].astype(bool)
        jets = standardizer.inverse_jets(inputs[f"jets{k}"])
        raw = x[..., :3] * standardizer.particle_std[:3] + standardizer.particle_mean[:3]
        m = mask[..., None]
        cnt = np.maximum(mask.sum(1, keepdims=True), 1)
        mean = (raw * m).sum(1) / cnt
        sd = np.sqrt(np.maximum(((raw - mean[:, None]) ** 2 * m).sum(1) / cnt, 0.0))
        ptrel = -np.expm1(np.minimum(raw[..., 2], 0.0)) * mask
        dr = np.hypot(raw[..., 0], raw[..., 1])
        width = (ptrel * dr).sum(1) / np.maximum(ptrel.sum(1), 1e-9)
        lead = ptrel.max(1)
        cols += [jets, mean, sd, width[:, None], lead[:, None], mask.sum(1, keepdims=True).astype(np.float32)]
    return np.concatenate(cols, axis=1)


def closeness_metrics(
    reference: Mapping[str, np.ndarray],
    generated: Mapping[str, np.ndarray],
    standardizer: Standardizer,
    *,
    seed: int = 0,
    folds: int = 5,
) -> dict[str, Any]:
    """How close is the generated SR background to the TRUE SR background?

    * ``w1_jet``: 1-Wasserstein per jet feature (:data:`JET_FEATURE_NAMES`, GeV);
    * ``w1_particle``: per particle feature of jet 1 and jet 2 (:data:`PARTICLE_FEATURE_NAMES`);
    * ``w1_*_floor``: the same between two halves of the reference (finite-sample floor);
    * ``auc``: out-of-fold ROC AUC of a gradient-boosted classifier true vs generated on per-event
      summaries (jet features, particle-feature means/widths): 0.5 = indistinguishable.
    """
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    from jetlab.physics.metrics import wasserstein_1d

    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 31]))
    n_r = len(reference["x1"])
    half = rng.permutation(n_r)
    ha, hb = _take(reference, half[: n_r // 2]), _take(reference, half[n_r // 2:])

    def jet_feats(inp):
        return np.concatenate([standardizer.inverse_jets(inp["jets1"]), standardizer.inverse_jets(inp["jets2"])], axis=1)

    def w1_jets(a, b):
        fa, fb = jet_feats(a), jet_feats(b)
        return {name: wasserstein_1d(fa[:, i], fb[:, i]) for i, name in enumerate(JET_FEATURE_NAMES)}

    def w1_parts(a, b):
        res = {}
        for k in (1, 2):
            pa, pb = _raw_particles(a, standardizer, k), _raw_particles(b, standardizer, k)
            for i, name in enumerate(PARTICLE_FEATURE_NAMES):
                res[f"{name}_j{k}"] = wasserstein_1d(pa[:, i], pb[:, i])
        return res

    out: dict[str, Any] = {
        "w1_jet": w1_jets(reference, generated), "w1_jet_floor": w1_jets(ha, hb),
        "w1_particle": w1_parts(reference, generated), "w1_particle_floor": w1_parts(ha, hb),
    }
    n_g = len(generated["x1"])
    sel = rng.choice(n_g, size=min(n_g, n_r), replace=False)
    X = np.concatenate([_summary_features(reference, standardizer), _summary_features(_take(generated, sel), standardizer)])
    y = np.concatenate([np.zeros(n_r, np.int64), np.ones(len(sel), np.int64)])
    k = int(min(folds, np.bincount(y).min()))
    if k >= 2:
        clf = HistGradientBoostingClassifier(max_iter=100, learning_rate=0.1, random_state=int(seed))
        from threadpoolctl import threadpool_limits

        # one OpenMP thread: on a small sample a busy-waiting thread pool costs far more than it gains
        with threadpool_limits(limits=1):
            p = cross_val_predict(clf, X, y, cv=StratifiedKFold(k, shuffle=True, random_state=int(seed)),
                                  method="predict_proba")[:, 1]
        out["auc"] = float(roc_auc_score(y, p))
    else:
        out["auc"] = float("nan")
    out["n_reference"], out["n_generated"] = int(n_r), int(len(sel))
    return out


# =============================================================================== pipelines
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
        return {"method": self.method, "seed": self.seed, "auc": self.metrics["auc"], "max_sic": self.metrics["max_sic"]}


def _standardizer_for(checkpoint, split: AnomalySplit, windows: MassWindows) -> Standardizer:
    if checkpoint is not None:
        from jetlab.model import read_card

        card = read_card(checkpoint)
        if getattr(card, "standardizer", None):
            return card.get_standardizer()
    sb = split.data.subset(windows.in_sb(split.data.mjj))
    return Standardizer.fit_jetset(JetSet.concatenate([sb.jet1, sb.jet2]))


def _classifier_factory(checkpoint, config, seed: int) -> Callable[[], DijetClassifier]:
    counter = [0]

    def make() -> DijetClassifier:
        torch.manual_seed(seed * 7919 + counter[0])
        counter[0] += 1
        return DijetClassifier(build_pet(checkpoint, config, num_classes=1)[0])

    return make


def run_cathode(
    split: AnomalySplit,
    windows: MassWindows,
    *,
    checkpoint: str | os.PathLike | None = None,
    config: Any = "tiny",
    seed: int = 0,
    oversample: int = 4,
    kfolds: int = 3,
    epochs: int = 5,
    gen_epochs: int = 5,
    jet_epochs: int = 100,
    gen_steps: int = 16,
    batch_size: int = 128,
    lr: float = 1e-3,
    lr_factor: float = 5.0,
    min_background_events: int = 10,
    device: str | torch.device = "auto",
    progress: bool = False,
) -> AnomalyRun:
    """The full CATHODE chain for one seed: fit the background model on the SB data, sample
    ``oversample`` x the SR data into the SR (``mjj`` drawn from the SR data), k-fold classify
    SR data vs synthetic. ``extras`` hold the generator, the synthetic inputs and their physical
    jet features, the true-background reference inputs and :func:`closeness_metrics`."""
    if oversample < 1:
        raise ValueError(f"run_cathode: oversample must be >= 1, got {oversample}")
    data = split.data
    sr, sb = windows.in_sr(data.mjj), windows.in_sb(data.mjj)
    gen = fit_background_generator(data.subset(sb), windows, checkpoint=checkpoint, config=config, epochs=gen_epochs,
                                   jet_epochs=jet_epochs, batch_size=batch_size, lr=lr, lr_factor=lr_factor, seed=seed,
                                   device=device, progress=progress)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 51]))
    mjj_syn = rng.choice(data.mjj[sr], size=oversample * int(sr.sum()), replace=True)
    synthetic, syn_features = gen.sample(mjj_syn, seed=seed + 1, steps=gen_steps, device=device)
    std = gen.standardizer
    sr_in, sb_in = dijet_inputs(data.subset(sr), std), dijet_inputs(data.subset(sb), std)
    ref_in = dijet_inputs(split.background.subset(windows.in_sr(split.background.mjj)), std)
    closeness = closeness_metrics(ref_in, synthetic, std, seed=seed)
    res = kfold_scores(sr_in, synthetic, _classifier_factory(checkpoint, config, seed), k=kfolds, seed=seed, extra=sb_in,
                       epochs=epochs, batch_size=batch_size, lr=lr, lr_factor=lr_factor if checkpoint is not None else 1.0,
                       device=device, progress=progress)
    labels = data.labels[sr]
    metrics = anomaly_metrics(labels, res.scores, min_background_events=min_background_events)
    return AnomalyRun("cathode", seed, res.scores, labels, res.extra_scores, metrics,
                      {"generator": gen, "synthetic": synthetic, "synthetic_features": syn_features,
                       "synthetic_mjj": mjj_syn, "reference": ref_in, "closeness": closeness, "fold": res.fold})


def run_idealised(
    split: AnomalySplit,
    windows: MassWindows,
    *,
    checkpoint: str | os.PathLike | None = None,
    config: Any = "tiny",
    seed: int = 0,
    kfolds: int = 3,
    epochs: int = 5,
    batch_size: int = 128,
    lr: float = 1e-3,
    lr_factor: float = 5.0,
    min_background_events: int = 10,
    device: str | torch.device = "auto",
    progress: bool = False,
) -> AnomalyRun:
    """Idealised anomaly detector: the same k-fold classifier, but against held-out TRUE SR
    background (a perfect background template) - the ceiling CATHODE can reach."""
    std = _standardizer_for(checkpoint, split, windows)
    data = split.data
    sr, sb = windows.in_sr(data.mjj), windows.in_sb(data.mjj)
    ref_in = dijet_inputs(split.background.subset(windows.in_sr(split.background.mjj)), std)
    res = kfold_scores(dijet_inputs(data.subset(sr), std), ref_in, _classifier_factory(checkpoint, config, seed),
                       k=kfolds, seed=seed, extra=dijet_inputs(data.subset(sb), std), epochs=epochs,
                       batch_size=batch_size, lr=lr, lr_factor=lr_factor if checkpoint is not None else 1.0,
                       device=device, progress=progress)
    labels = data.labels[sr]
    return AnomalyRun("idealised", seed, res.scores, labels, res.extra_scores,
                      anomaly_metrics(labels, res.scores, min_background_events=min_background_events), {"fold": res.fold})


def run_supervised(
    split: AnomalySplit,
    windows: MassWindows,
    *,
    checkpoint: str | os.PathLike | None = None,
    config: Any = "tiny",
    seed: int = 0,
    epochs: int = 5,
    batch_size: int = 128,
    lr: float = 1e-3,
    lr_factor: float = 5.0,
    min_background_events: int = 10,
    device: str | torch.device = "auto",
    progress: bool = False,
) -> AnomalyRun:
    """Fully supervised upper bound: signal vs background trained on the labelled references
    (SR events of ``split.signal`` and ``split.background``), evaluated on the SR data."""
    std = _standardizer_for(checkpoint, split, windows)
    data = split.data
    sr, sb = windows.in_sr(data.mjj), windows.in_sb(data.mjj)
    sig = split.signal.subset(windows.in_sr(split.signal.mjj))
    if len(sig) < 2:
        raise ValueError(f"run_supervised: only {len(sig)} reference signal events in the SR; inject fewer signal "
                         "events or generate a file with a larger signal_fraction")
    bkg = split.background.subset(windows.in_sr(split.background.mjj))
    sr_scores, sb_scores = supervised_scores(
        dijet_inputs(sig, std), dijet_inputs(bkg, std), [dijet_inputs(data.subset(sr), std), dijet_inputs(data.subset(sb), std)],
        _classifier_factory(checkpoint, config, seed), seed=seed, epochs=epochs, batch_size=batch_size, lr=lr,
        lr_factor=lr_factor if checkpoint is not None else 1.0, device=device, progress=progress)
    labels = data.labels[sr]
    return AnomalyRun("supervised", seed, sr_scores, labels, sb_scores,
                      anomaly_metrics(labels, sr_scores, min_background_events=min_background_events))
