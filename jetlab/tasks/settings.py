"""One frozen settings object per task, its defaults said once.

Every task run is ``run_<task>(data, settings)``: the data (a dataset name, files or jets) and one
frozen dataclass of everything that shapes the result. The settings are built from three parts:

* :class:`TaskSettings` - where and how reproducibly: ``seed`` (the one seed of the data: generation,
  split, signal injection; training seeds are ``seeds``), ``device`` and ``output_dir``;
* :class:`TrainingRecipe` - how a network trains: ``epochs``, ``batch_size``, the optimiser
  (``optimizer``, ``lr``, ``lr_factor`` for a pretrained body) and ``input_scaling``; CATHODE's
  per-detector :class:`~jetlab.tasks.anomaly.training.TrainingSettings` is one too;
* :class:`FineTuningSettings` - both, plus what the downstream tasks share: which pretrained model
  (``checkpoint``, ``model`` without one), the training ``seeds`` and the one-off fallback
  pretraining (``pretrain_jets``, ``pretrain_epochs``).

Values are checked against the field types when the object is made (a notebook's ``[1.0, 0.1]``
becomes the tuple ``(1.0, 0.1)``, an int is accepted for a float); an unknown name or a wrong type
is a :class:`TypeError` naming the settings class, the field and what it expected.
:meth:`Settings.from_parameters` builds the settings from a notebook's parameters (what
:func:`jetlab.notebook.setup` does), :meth:`Settings.replace` makes a changed copy.
"""

from __future__ import annotations

import dataclasses
import difflib
import numbers
import os
import types
import typing
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Mapping, TypeVar, Union

import numpy as np

from jetlab.model.factory import DEFAULT_INPUT_SCALING, DEFAULT_LR_FACTOR, DEFAULT_OPTIMIZER, check_recipe

from .checkpoint_resolver import DEFAULT_PRETRAIN_EPOCHS, DEFAULT_PRETRAIN_JETS, resolve_checkpoint

__all__ = ["FineTuningSettings", "Settings", "TaskSettings", "TrainingRecipe", "closest_hint"]

S = TypeVar("S", bound="Settings")


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(tp))
    if origin is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {_describe(args[0])}"
        return f"a list of {len(args)} ({', '.join(_describe(a) for a in args)})"
    if tp is type(None):
        return "None"
    return getattr(tp, "__name__", str(tp))


class _Mismatch(Exception):
    pass


def _coerce(value: Any, tp: Any) -> Any:
    """``value`` as type ``tp`` (a list as a tuple, an int as a float), else :class:`_Mismatch`."""
    if tp is Any:
        return value
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        for arg in typing.get_args(tp):
            try:
                return _coerce(value, arg)
            except _Mismatch:
                pass
        raise _Mismatch
    if tp is type(None):
        if value is None:
            return None
        raise _Mismatch
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise _Mismatch
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0]) for v in value)
        if len(value) != len(args):
            raise _Mismatch
        return tuple(_coerce(v, a) for v, a in zip(value, args))
    if origin in (dict, Mapping) or tp in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise _Mismatch
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise _Mismatch
    if tp is int:
        if isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_)):
            return int(value)
        raise _Mismatch
    if tp is float:
        if isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)):
            return float(value)
        raise _Mismatch
    if tp is str:
        if isinstance(value, str):
            return value
        raise _Mismatch
    if isinstance(tp, type):
        if isinstance(value, tp):
            return value
        raise _Mismatch
    return value


def closest_hint(name: str, known: typing.Sequence[str]) -> str:
    """`` (did you mean 'x'?)`` for the known name closest to a misspelt one (empty if none is close)."""
    close = difflib.get_close_matches(name, known, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


@dataclass(frozen=True, kw_only=True)
class Settings:
    """A frozen dataclass whose values are checked against the field types when it is made."""

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, os.PathLike):
                value = os.fspath(value)  # a Path given for a string field
            elif f.name == "device" and hints[f.name] is str and value is not None and not isinstance(value, str):
                value = str(value)  # a torch.device
            try:
                object.__setattr__(self, f.name, _coerce(value, hints[f.name]))
            except _Mismatch:
                raise TypeError(
                    f"{type(self).__name__}: {f.name} must be {_describe(hints[f.name])}, "
                    f"got {type(value).__name__} ({value!r})"
                ) from None

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The field names, in declaration order."""
        return tuple(f.name for f in fields(cls))

    @classmethod
    def check_names(cls, given: typing.Iterable[str], where: str | None = None) -> None:
        """A TypeError naming the first name that is not a field (and the closest field)."""
        known = cls.names()
        for key in given:
            if key not in known:
                raise TypeError(
                    f"{where or cls.__name__}: unknown setting {key!r}{closest_hint(key, known)}; "
                    f"{cls.__name__} has {', '.join(known)}"
                )

    @classmethod
    def from_parameters(cls: type[S], parameters: Mapping[str, Any], *, strict: bool = True, **changes: Any) -> S:
        """The settings named in ``parameters`` (e.g. a notebook's parameters), then ``changes``.

        ``strict``: a name that is not a field is a TypeError; otherwise it is left out (a
        notebook's other parameters, like ``dataset``)."""
        if strict:
            cls.check_names(parameters)
        cls.check_names(changes)
        known = set(cls.names())
        values = {k: v for k, v in parameters.items() if k in known}
        return cls(**{**values, **changes})

    def replace(self: S, **changes: Any) -> S:
        """A copy with ``changes`` (checked like the constructor's values)."""
        self.check_names(changes, f"{type(self).__name__}.replace")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The fields as plain JSON-able values (tuples as lists)."""

        def plain(v: Any) -> Any:
            if isinstance(v, tuple):
                return [plain(x) for x in v]
            if isinstance(v, dict):
                return {k: plain(x) for k, x in v.items()}
            return v

        return {f.name: plain(getattr(self, f.name)) for f in fields(self)}


@dataclass(frozen=True, kw_only=True)
class TaskSettings(Settings):
    """Where a task runs and the seed of its data."""

    #: the data's seed: generation, the train/val/test split, the signal injection
    seed: int = 0
    #: "auto" (CUDA when available), "cpu", "cuda", "cuda:1", ...
    device: str = "auto"
    #: where checkpoints and results go (None: nowhere beyond what the caller saves)
    output_dir: str | None = None


@dataclass(frozen=True, kw_only=True)
class TrainingRecipe(Settings):
    """How a network trains: the budget and the optimiser, with the pretrained body at
    ``lr / lr_factor`` and inputs scaled per ``input_scaling`` (:mod:`jetlab.model.factory`)."""

    epochs: int = 4
    batch_size: int = 128
    #: learning rate of the fresh head and of every model trained from scratch
    lr: float | None = 1e-3
    #: the pretrained body trains at lr / lr_factor
    lr_factor: float = DEFAULT_LR_FACTOR
    #: "adamw" or "lion" (the OmniLearn reference recipe)
    optimizer: str = DEFAULT_OPTIMIZER
    #: fine-tuned inputs scaled to the task's training jets ("task") or to the pretraining ("pretraining")
    input_scaling: str = DEFAULT_INPUT_SCALING

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(
                f"{type(self).__name__}: epochs and batch_size must be >= 1, got {self.epochs}, {self.batch_size}"
            )
        # optimizer and input_scaling among the known ones (lower-cased), lr_factor > 0
        recipe = check_recipe(self.optimizer, self.input_scaling, self.lr_factor, type(self).__name__)
        for name, value in zip(("optimizer", "input_scaling", "lr_factor"), recipe):
            object.__setattr__(self, name, value)

    def recipe(self) -> dict[str, Any]:
        """The :class:`TrainingRecipe` fields and their values, as keywords."""
        return {f.name: getattr(self, f.name) for f in fields(TrainingRecipe)}


@dataclass(frozen=True, kw_only=True)
class FineTuningSettings(TaskSettings, TrainingRecipe):
    """The OmniLearn fine-tuning recipe shared by top tagging, OmniFold and anomaly detection: which
    pretrained model, the :class:`TrainingRecipe`, the training seeds."""

    #: the pretrained model: a checkpoint directory, "auto" ($JETLAB_CHECKPOINT, else the shipped
    #: foundation model) or "none"/None (no pretrained model)
    checkpoint: str | None = "auto"
    #: PET preset (tiny, small, paper) of models trained from scratch when no checkpoint fixes it
    model: Any = "tiny"
    #: training seeds: every comparison is repeated once per seed (mean and spread over them)
    seeds: tuple[int, ...] = (0, 1, 2)
    #: only when "auto" finds no model: jets and epochs of a one-off fallback pretraining
    pretrain_jets: int = DEFAULT_PRETRAIN_JETS
    pretrain_epochs: int = DEFAULT_PRETRAIN_EPOCHS

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.seeds:
            raise ValueError(f"{type(self).__name__}: seeds must name at least one seed")

    def resolve_pretrained(self, *, train_if_missing: bool, progress: bool = True) -> Path | None:
        """The pretrained model these settings name (:func:`~jetlab.tasks.checkpoint_resolver.resolve_checkpoint`
        of ``checkpoint`` next to ``output_dir``); with ``train_if_missing`` and nothing found, the
        one-off fallback pretraining on ``pretrain_jets`` jets for ``pretrain_epochs`` epochs."""
        return resolve_checkpoint(
            self.checkpoint,
            self.output_dir,
            train_if_missing=train_if_missing,
            n_jets=self.pretrain_jets,
            epochs=self.pretrain_epochs,
            seed=self.seed,
            device=self.device,
            progress=progress,
        )
