"""The classifiers OmniFold can train: PET (fine-tuned or from scratch), the original OmniFold's
Particle Flow Network, an MLP on jet observables, or anything implementing :class:`ClassifierSpec`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Protocol, Sequence, runtime_checkable

import numpy as np
import torch
from torch import nn

from jetlab.data.preprocess import PARTICLE_INPUTS, model_inputs
from jetlab.data.schema import JetSet
from jetlab.model import ParticleFlowNetwork, read_card
from jetlab.model.factory import (
    DEFAULT_INPUT_SCALING,
    DEFAULT_LR_FACTOR,
    DEFAULT_OPTIMIZER,
    build_pet,
    check_recipe,
    finetune_groups,
    scaling_standardizer,
)
from jetlab.model.mlp import ObservableMLP
from jetlab.model.pfn import OMNIFOLD_F_SIZES, OMNIFOLD_PHI_SIZES
from jetlab.physics import compute_observables

__all__ = [
    "ClassifierSpec",
    "Features",
    "LevelData",
    "ObservableClassifier",
    "PETClassifier",
    "PFNClassifier",
    "make_classifier",
    "observable_arrays",
    "particle_features",
]

Features = dict[str, torch.Tensor]
LevelData = JetSet | Mapping[str, np.ndarray]


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


def observable_arrays(data: LevelData, names: Sequence[str], where: str) -> dict[str, np.ndarray]:
    """``{name: (N,) float64}`` from a JetSet (computed with :func:`jetlab.physics.compute_observables`)
    or a dict of precomputed arrays (KeyError naming what is missing)."""
    if isinstance(data, JetSet):
        return {n: np.asarray(v, dtype=np.float64) for n, v in compute_observables(data, list(names)).items()}
    if not isinstance(data, Mapping):
        raise TypeError(f"{where}: expected a JetSet or a dict of observable arrays, got {type(data).__name__}")
    missing = [n for n in names if n not in data]
    if missing:
        raise KeyError(f"{where}: observables {missing} missing; the dict has {sorted(data)}")
    return {n: np.asarray(data[n], dtype=np.float64).ravel() for n in names}


def _observable_matrix(data: LevelData, names: Sequence[str], where: str) -> np.ndarray:
    """(N, len(names)) float32 observables; non-finite entries (e.g. log 0) are replaced by the
    column's finite minimum so the row stays usable."""
    arrays = observable_arrays(data, names, where)
    cols = [arrays[n] for n in names]
    if len({len(c) for c in cols}) != 1:
        raise ValueError(f"{where}: observable arrays have different lengths {[len(c) for c in cols]}")
    m = np.stack(cols, axis=1)
    bad = ~np.isfinite(m)
    if bad.any():
        for j in np.nonzero(bad.any(0))[0]:
            finite = m[~bad[:, j], j]
            m[bad[:, j], j] = finite.min() if finite.size else 0.0
    return m.astype(np.float32)


def particle_features(
    sources: Sequence[LevelData], standardizer: Any, max_particles: int | None, where: str
) -> tuple[list[Features], Any]:
    """PET's inputs (:func:`jetlab.data.preprocess.model_inputs`) of each JetSet, as tensors
    ``{"x", "mask", "jets"}``, keeping the leading ``max_particles``; ``standardizer`` None: fitted on
    the first (simulated) source and applied to all. Returns the features and the standardizer."""
    out = []
    for s in sources:
        if not isinstance(s, JetSet):
            raise TypeError(f"{where}: needs JetSets (particles), got {type(s).__name__}")
        if max_particles is not None and max_particles < s.max_particles:
            s = JetSet(
                s.particles[:, :max_particles],
                s.mask[:, :max_particles],
                s.jets,
                s.labels,
                s.weights,
                s.particle_features,
                s.extra,
            )
        x, mask, jets, standardizer = model_inputs(s, standardizer)
        out.append(
            {
                "x": torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)),
                "mask": torch.from_numpy(np.ascontiguousarray(mask)),
                "jets": torch.from_numpy(np.ascontiguousarray(jets, dtype=np.float32)),
            }
        )
    return out, standardizer


@dataclass
class ObservableClassifier:
    """Fast baseline: :class:`jetlab.model.mlp.ObservableMLP` on jet observables.

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

    The network comes from :func:`jetlab.model.factory.build_pet`: ``checkpoint`` with
    ``pretrained=True`` gives the pretrained body and heads (fresh zero output layer) trained with
    ``optimizer`` (the body at ``lr / lr_factor``); ``pretrained=False`` the checkpoint's architecture
    from scratch (fair comparison) or, without a checkpoint, :meth:`PETConfig.preset` ``(config)``.

    ``input_scaling`` says where a fine-tuned model's input scaling comes from: ``"pretraining"``
    (the checkpoint's, as the OmniLearn code does) or ``"task"`` (fitted on each level's simulated
    events, as for the scratch model). The R = 0.8, 500-1000 GeV pretraining jets put the R = 0.4,
    200 GeV Z+jets jets several widths off in jet pT and mass, which is why ``"task"`` is the default
    (:data:`~jetlab.model.factory.DEFAULT_INPUT_SCALING`, chosen by ``benchmarks/bench_finetune_recipe.py``;
    ``benchmarks/bench_omnifold_convergence.py`` compares the two scalings' step-1 convergence).
    """

    checkpoint: str | None = None
    pretrained: bool = True
    config: Any = "tiny"
    lr: float = 3e-4
    lr_factor: float = DEFAULT_LR_FACTOR
    max_particles: int | None = None
    input_scaling: str = DEFAULT_INPUT_SCALING
    optimizer: str = DEFAULT_OPTIMIZER
    weight_decay: float = 0.01
    name: str = ""
    _standardizers: dict[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.pretrained and self.checkpoint is None:
            raise ValueError(
                "PETClassifier(pretrained=True) needs checkpoint=<pretrained model directory>; "
                "pass pretrained=False to train from scratch"
            )
        self.optimizer, self.input_scaling, self.lr_factor = check_recipe(
            self.optimizer, self.input_scaling, self.lr_factor, "PETClassifier"
        )
        if not self.name:
            self.name = "pretrained" if self.pretrained else "scratch"

    def build(self, level: str) -> nn.Module:
        """A fresh network; its weights come from the global RNG, which omnifold seeds per step."""
        return build_pet(
            self.checkpoint,
            preset=self.config,
            num_classes=1,
            pretrained=self.pretrained,
            seed=None,
            input_scaling=self.input_scaling,
        )

    def prepare(self, level: str, sources: Sequence[LevelData]) -> list[Features]:
        card = read_card(self.checkpoint) if self.checkpoint is not None else None
        # the checkpoint's scaling, or None: fitted on the first (simulated) source
        std = scaling_standardizer(card, pretrained=self.pretrained, input_scaling=self.input_scaling)
        out, self._standardizers[level] = particle_features(
            sources, std, self.max_particles, f"PETClassifier.prepare({level!r})"
        )
        return out

    def logits(self, model: Any, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """``model`` is what :func:`build_pet` made (a PET-like model with ``classify``)."""
        return model.classify(batch["x"], batch["mask"], batch["jets"])[0][:, 0]

    def param_groups(self, model: nn.Module, lr: float) -> list[dict] | None:
        return finetune_groups(
            model, lr, lr_factor=self.lr_factor, weight_decay=self.weight_decay, optimizer=self.optimizer
        )


@dataclass
class PFNClassifier:
    """The original OmniFold's classifier: a Particle Flow Network (Deep Sets) on the particles.

    :class:`jetlab.model.ParticleFlowNetwork` with the OmniFold paper's sizes (``Phi`` 100-100-256,
    ``F`` 100-100-100; ``ericmetodiev/OmniFold`` ``train.py``) on PET's standardised particle inputs
    (fitted on each level's simulated events), the leading ``max_particles``; jet-level inputs are
    not used, as in the original. Adam's rate 1e-3 is Keras' default, which EnergyFlow's PFN used.
    """

    phi_sizes: tuple[int, ...] = OMNIFOLD_PHI_SIZES
    f_sizes: tuple[int, ...] = OMNIFOLD_F_SIZES
    lr: float = 1e-3
    max_particles: int | None = None
    name: str = "pfn"
    _standardizers: dict[str, Any] = field(default_factory=dict, repr=False)

    def prepare(self, level: str, sources: Sequence[LevelData]) -> list[Features]:
        out, self._standardizers[level] = particle_features(
            sources, None, self.max_particles, f"PFNClassifier.prepare({level!r})"
        )
        return out

    def build(self, level: str) -> nn.Module:
        """A fresh network; its weights come from the global RNG, which omnifold seeds per step."""
        return ParticleFlowNetwork(
            num_feat=len(PARTICLE_INPUTS), num_classes=1, phi_sizes=self.phi_sizes, f_sizes=self.f_sizes
        )

    def logits(self, model: nn.Module, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return model(batch["x"], batch["mask"])[:, 0]

    def param_groups(self, model: nn.Module, lr: float) -> list[dict] | None:
        return None


def make_classifier(
    kind: str,
    *,
    checkpoint: str | None = None,
    config: Any = "tiny",
    lr: float | None = None,
    observables: Sequence[str] | None = None,
    **pet_options: Any,
) -> ClassifierSpec:
    """Classifier spec by name: ``"pretrained"`` (needs ``checkpoint``), ``"scratch"``, ``"pfn"`` or
    ``"mlp"``; ``pet_options`` (``max_particles``, ``input_scaling``, ``optimizer``, ``lr_factor``) go to
    :class:`PETClassifier` (``max_particles`` also to :class:`PFNClassifier`)."""
    kind = str(kind).lower()
    if kind == "pretrained":
        if checkpoint is None:
            raise ValueError(
                "make_classifier('pretrained') needs a checkpoint: train one with notebook 01 / "
                "`jetlab pretrain`, or use 'scratch' / 'mlp'"
            )
        return PETClassifier(checkpoint=str(checkpoint), pretrained=True, lr=lr or 3e-4, **pet_options)
    if kind == "scratch":
        return PETClassifier(
            checkpoint=None if checkpoint is None else str(checkpoint),
            pretrained=False,
            config=config,
            lr=lr or 3e-4,
            **pet_options,
        )
    if kind in ("pfn", "deepsets"):
        return PFNClassifier(lr=lr or 1e-3, max_particles=pet_options.get("max_particles"))
    if kind in ("mlp", "observables", "multifold"):
        spec = ObservableClassifier(lr=lr or 1e-3)
        if observables is not None:
            spec.observables = tuple(observables)
        return spec
    raise ValueError(f"unknown classifier {kind!r}; choose 'pretrained', 'scratch', 'pfn' or 'mlp'")
