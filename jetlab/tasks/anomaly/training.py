"""Training of the search's event classifier (:class:`jetlab.model.dijet_classifier.DijetClassifier`):
data vs template with class-balanced BCE, k-fold so every event is scored out of fold; the training
settings shared by the search's PETs (:class:`TrainingSettings`)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from jetlab.data.preprocess import Standardizer, model_inputs
from jetlab.model.diffusion import complete_particle_inputs
from jetlab.model.dijet_classifier import DijetClassifier
from jetlab.model.factory import DEFAULT_LR_FACTOR, DEFAULT_OPTIMIZER, finetune_groups
from jetlab.train import Trainer
from jetlab.train.ddp import resolve_device

from ..common import ArrayDataset
from ..settings import TrainingRecipe, closest_hint
from .events import DijetEvents

__all__ = [
    "KFoldResult",
    "TrainingSettings",
    "concat_inputs",
    "dijet_inputs",
    "kfold_indices",
    "kfold_scores",
    "predict_dijet",
    "restandardize",
    "supervised_scores",
    "take_inputs",
    "train_dijet_classifier",
]

_DIJET_KEYS = ("x1", "mask1", "jets1", "x2", "mask2", "jets2")


@dataclass(frozen=True, kw_only=True)
class TrainingSettings(TrainingRecipe):
    """How the search's PETs train, said once for the three detectors and the background generator.

    The :class:`~jetlab.tasks.settings.TrainingRecipe` (``epochs`` with ``optimizer`` at ``lr``, the
    pretrained body at ``lr / lr_factor``, ``batch_size``, inputs scaled per ``input_scaling``) on
    ``device``. :func:`~jetlab.tasks.anomaly.run_cathode`, :func:`~jetlab.tasks.anomaly.run_idealised`,
    :func:`~jetlab.tasks.anomaly.run_supervised` and :func:`~jetlab.tasks.anomaly.fit_background_generator`
    take these fields as keyword arguments (:meth:`from_keywords`).
    """

    epochs: int = 5
    lr: float = 1e-3
    device: str | torch.device = "auto"
    progress: bool = False

    @classmethod
    def from_keywords(cls, where: str, keywords: Mapping[str, Any]) -> TrainingSettings:
        """The settings of a call's training ``keywords``; a TypeError names any keyword that is not
        a field (and the closest field), with ``where`` the function that was called."""
        names = cls.names()
        for key in keywords:
            if key not in names:
                raise TypeError(
                    f"{where}: unexpected keyword argument {key!r}{closest_hint(key, names)}; "
                    f"its training keywords are {', '.join(names)}"
                )
        return cls(**keywords)

    def keywords(self, **changes: Any) -> dict[str, Any]:
        """The settings as keyword arguments (with ``changes``), for a function that takes them."""
        new = replace(self, **changes)
        return {f.name: getattr(new, f.name) for f in fields(new)}

    def classifier_keywords(self, pretrained: bool) -> dict[str, Any]:
        """Keywords of :func:`train_dijet_classifier` (through :func:`kfold_scores` /
        :func:`supervised_scores`): a classifier trained from scratch has no pretrained body, so
        the whole model trains at ``lr`` (``lr_factor`` 1)."""
        return dict(
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            lr_factor=self.lr_factor if pretrained else 1.0,
            optimizer=self.optimizer,
            device=self.device,
            progress=self.progress,
        )


def dijet_inputs(events: DijetEvents, standardizer: Standardizer) -> dict[str, np.ndarray]:
    """Standardised PET inputs of both jets: ``x1, mask1, jets1, x2, mask2, jets2``.

    The 13 particle inputs are rebuilt from (deta, dphi, log_1m_ptrel) and the jet features, as
    for generated particles (:func:`jetlab.model.complete_particle_inputs`), so real and
    synthetic events differ only in what the generator got wrong, never in derived features.
    """
    out: dict[str, np.ndarray] = {}
    for k, js in ((1, events.jet1), (2, events.jet2)):
        x, mask, jets, _ = model_inputs(js, standardizer)
        out[f"x{k}"] = complete_particle_inputs(x[..., :3], mask, jets, standardizer)
        out[f"mask{k}"] = mask
        out[f"jets{k}"] = jets
    return out


def restandardize(
    inputs: Mapping[str, np.ndarray], source: Standardizer, target: Standardizer
) -> dict[str, np.ndarray]:
    """:func:`dijet_inputs`-style arrays scaled with ``source`` rebuilt with ``target`` scaling.

    The raw (deta, dphi, log_1m_ptrel) and jet features are recovered and completed again
    (:func:`complete_particle_inputs`), so the result is built exactly as :func:`dijet_inputs` builds
    real events with ``target``; used when the background generator and the classifier scale their
    inputs differently (a jetlab generator with an OmniLearned classifier, which takes raw inputs).
    """
    out = dict(inputs)
    for k in (1, 2):
        mask = np.asarray(inputs[f"mask{k}"]).astype(bool)
        raw_x = source.inverse_particles(np.asarray(inputs[f"x{k}"]), mask)
        jets = target.transform_jets(source.inverse_jets(np.asarray(inputs[f"jets{k}"])))
        three = (raw_x[..., :3] - target.particle_mean[:3]) / target.particle_std[:3] * mask[..., None]
        out[f"x{k}"] = complete_particle_inputs(three.astype(np.float32), mask, jets.astype(np.float32), target)
        out[f"jets{k}"] = jets.astype(np.float32)
    return out


def take_inputs(inputs: Mapping[str, np.ndarray], index) -> dict[str, np.ndarray]:
    return {k: v[index] for k, v in inputs.items()}


def concat_inputs(*parts: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    keys = parts[0].keys()
    return {k: np.concatenate([p[k] for p in parts]) for k in keys}


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
    lr_factor: float = DEFAULT_LR_FACTOR,
    optimizer: str = DEFAULT_OPTIMIZER,
    val_fraction: float = 0.2,
    seed: int = 0,
    device: str | torch.device = "auto",
    progress: bool = False,
):
    """Fit ``model`` (in place) with class-balanced BCE; the best-validation-loss weights are kept.

    ``val_fraction`` of the events (stratified by label) is held out for that model selection. The
    body trains at ``lr / lr_factor`` with ``optimizer`` (:func:`jetlab.model.factory.finetune_groups`).
    Returns the :class:`~jetlab.train.History`.
    """
    labels = np.asarray(labels, dtype=np.int64)
    n = len(labels)
    if n < 4 or len(np.unique(labels)) < 2:
        raise ValueError(
            f"train_dijet_classifier: need >= 4 events of both classes, got {n} events with labels "
            f"{np.unique(labels).tolist()}"
        )
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 17]))
    val = np.zeros(n, dtype=bool)
    if val_fraction > 0:
        for c in (0, 1):
            idx = rng.permutation(np.nonzero(labels == c)[0])
            val[idx[: max(1, int(round(val_fraction * len(idx))))]] = True
    w = _balanced_weights(labels)

    def ds(sel):
        return ArrayDataset(**take_inputs(inputs, sel), label=labels[sel], weight=w[sel])

    val_ds = ds(val) if val.any() else None
    groups = finetune_groups(model, lr, lr_factor=lr_factor, optimizer=optimizer, pretrained=True)
    trainer = Trainer(
        model,
        _bce_loss,
        ds(~val),
        val_ds,
        optimizer=optimizer,
        lr=lr,
        param_groups=groups,
        epochs=epochs,
        batch_size=batch_size,
        device=device,
        seed=seed,
        progress=progress,
        checkpoint_every=None,
        amp="off",
        restore_best=val_ds is not None,
    )
    history = trainer.fit()
    model.eval()
    return history


@torch.no_grad()
def predict_dijet(
    model: nn.Module, inputs: Mapping[str, np.ndarray], batch_size: int = 512, device: str | torch.device = "auto"
) -> np.ndarray:
    """Sigmoid scores ``(N,)`` of a :class:`DijetClassifier`, in input order."""
    dev = resolve_device(device)
    model.to(dev).eval()
    n = len(next(iter(inputs.values())))
    out = np.empty(n, dtype=np.float32)
    for a in range(0, n, batch_size):
        batch = {k: torch.as_tensor(v[a : a + batch_size]).to(dev) for k, v in inputs.items() if k in _DIJET_KEYS}
        out[a : a + batch_size] = torch.sigmoid(model(batch).float()).cpu().numpy()
    return out


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
        tr, held_out = fold != i, fold == i
        x = concat_inputs(take_inputs(data, tr), take_inputs(template, tfold != i))
        y = np.concatenate([np.ones(int(tr.sum()), np.int64), np.zeros(int((tfold != i).sum()), np.int64)])
        model = make_model()
        histories.append(train_dijet_classifier(model, x, y, seed=seed * 1000 + i, **train_kwargs))
        dev = train_kwargs.get("device", "auto")
        scores[held_out] = predict_dijet(model, take_inputs(data, held_out), device=dev)
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
    train_dijet_classifier(model, concat_inputs(signal, background), y, seed=seed, **train_kwargs)
    return [predict_dijet(model, e, device=train_kwargs.get("device", "auto")) for e in evaluate]
