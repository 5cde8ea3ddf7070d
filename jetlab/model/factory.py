"""The one way every task builds the network it trains, and the fine-tuning recipe around it.

:func:`build_pet` makes a PET (or a converted OmniLearned PET2) either *fine-tuned* from a
checkpoint (pretrained body and heads, a fresh zero-initialised class output layer) or *from
scratch* with the checkpoint's architecture (the fair comparison) or a preset. Two choices every
fine-tuning task offers, with one name and one default each:

* ``input_scaling`` (:data:`INPUT_SCALINGS`): where the per-feature mean and width that
  standardise the inputs come from. ``"pretraining"`` reuses the checkpoint's standardizer (so every
  input means what it meant in pretraining; the OmniLearn code does this); ``"task"`` fits it on the
  task's own training data (a scratch model always does, having no pretraining sample). The default
  is :data:`DEFAULT_INPUT_SCALING`. A converted OmniLearned checkpoint builds its own inputs from
  jetlab's raw ones (identity standardizer): that is its input contract, not a choice, and holds
  for either value.
* ``optimizer`` (:data:`OPTIMIZERS`): ``"adamw"`` (default) trains the pretrained body at
  ``lr / lr_factor`` and the heads at ``lr``; ``"lion"`` is the OmniLearn reference recipe: Lion
  with the same two learning rates and the body's weight decay multiplied by ``lr_factor``, so
  Lion's decoupled decay per step (``lr * weight_decay``) is the same in body and heads.
  :func:`finetune_groups` returns the Trainer's parameter groups for either.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import torch
from torch import nn

from jetlab.data.preprocess import Standardizer

from .checkpoint import load, load_body_into, read_card
from .config import PETConfig
from .omnilearned import OmniLearnedModel, OmniLearnedSettings, is_omnilearned_card
from .param_groups import body_head_groups
from .pet import PET

__all__ = [
    "DEFAULT_INPUT_SCALING",
    "DEFAULT_LR_FACTOR",
    "DEFAULT_OPTIMIZER",
    "INPUT_SCALINGS",
    "OPTIMIZERS",
    "GroupedModel",
    "body_head_groups",
    "build_pet",
    "check_choice",
    "check_recipe",
    "finetune_groups",
    "input_standardizer",
    "scaling_standardizer",
]

#: where fine-tuning takes its input standardisation from (see the module docstring)
INPUT_SCALINGS: tuple[str, ...] = ("pretraining", "task")
#: the default of every task's ``input_scaling`` parameter, chosen with
#: ``benchmarks/bench_finetune_recipe.py`` over 6 seeds ("task" fitted zjets-mini OmniFold step 1 better
#: and tied on toptag-mini tagging), in a run whose raw output was not kept: ``--json`` records a new one
DEFAULT_INPUT_SCALING = "task"
#: fine-tuning optimizers: "adamw" (jetlab's default), "lion" (the OmniLearn reference recipe)
OPTIMIZERS: tuple[str, ...] = ("adamw", "lion")
DEFAULT_OPTIMIZER = "adamw"
#: the pretrained body trains at lr / lr_factor (OmniLearn fine-tuning)
DEFAULT_LR_FACTOR = 5.0


def check_choice(name: str, value: Any, choices: Sequence[str], where: str = "jetlab") -> str:
    """``value`` lower-cased if it is one of ``choices``, else a ValueError naming the parameter."""
    key = str(value).strip().lower()
    if key not in choices:
        raise ValueError(f"{where}: {name} must be one of {list(choices)}, got {value!r}")
    return key


def check_recipe(optimizer: Any, input_scaling: Any, lr_factor: Any, where: str) -> tuple[str, str, float]:
    """The fine-tuning recipe's knobs checked in one place for every task: ``optimizer`` one of
    :data:`OPTIMIZERS`, ``input_scaling`` one of :data:`INPUT_SCALINGS` (both lower-cased) and
    ``lr_factor > 0``; ValueErrors name ``where`` and the parameter."""
    factor = float(lr_factor)
    if not factor > 0:
        raise ValueError(f"{where}: lr_factor must be > 0, got {lr_factor!r}")
    return (
        check_choice("optimizer", optimizer, OPTIMIZERS, where),
        check_choice("input_scaling", input_scaling, INPUT_SCALINGS, where),
        factor,
    )


class GroupedModel(nn.Module):
    """Wraps a PET so every ``classify``/``forward`` uses the same feature ``groups``.

    ``fit_classifier`` and ``predict`` call ``model.classify(x, mask, jets)``; binding the groups
    here means a dataset without PID (toptag-mini, ATLAS) drops the ``"pid"`` inputs in training
    *and* in evaluation. ``param_groups``, ``standardizer`` and ``card`` pass through.
    """

    def __init__(self, model: nn.Module, groups: Sequence[str] | None = None) -> None:
        super().__init__()
        # a PET or an OmniLearnedModel, used duck-typed (classify, param_groups, config, card, ...)
        self.model: Any = model
        self.groups = tuple(groups) if groups is not None else None

    def classify(self, x, mask, jets, groups=None):
        return self.model.classify(x, mask, jets, groups=self.groups if groups is None else groups)

    def forward(self, x, mask, jets, groups=None):
        return self.classify(x, mask, jets, groups)[0]

    def param_groups(
        self, lr_head: float, lr_factor: float = DEFAULT_LR_FACTOR, weight_decay: float | None = None
    ) -> list[dict]:
        return self.model.param_groups(lr_head, lr_factor, weight_decay)

    @property
    def config(self):
        return self.model.config

    @property
    def card(self):
        return getattr(self.model, "card", None)

    @property
    def standardizer(self) -> Standardizer | None:
        return getattr(self.model, "standardizer", None)

    @property
    def pretrained(self) -> bool:
        return bool(getattr(self.model, "pretrained", False))

    def num_parameters(self) -> dict[str, int]:
        return self.model.num_parameters()


def build_pet(
    checkpoint: str | os.PathLike | None = None,
    *,
    preset: Any = "tiny",
    num_classes: int = 1,
    pretrained: bool = True,
    seed: int | None = 0,
    input_scaling: str = DEFAULT_INPUT_SCALING,
    groups: Sequence[str] | None = None,
) -> nn.Module:
    """The network a task trains, with ``model.standardizer`` saying how to scale its inputs.

    * ``checkpoint`` (a checkpoint directory, e.g. from :func:`jetlab.tasks.resolve_checkpoint`)
      with ``pretrained=True``: the pretrained body and heads with a fresh, zero-initialised
      ``num_classes`` output layer (fine-tuning starts at the uninformed loss);
      ``pretrained=False``: the checkpoint's architecture, randomly initialised (fair scratch);
    * no checkpoint: :meth:`PETConfig.preset` ``(preset)``, randomly initialised.

    New weights are drawn from ``seed`` alone (the global RNG is left untouched), so a model does
    not depend on what ran before it; ``seed=None`` draws them from the global RNG (for a caller
    that seeded it). ``model.standardizer`` is the checkpoint's standardizer for a
    pretrained model with ``input_scaling="pretraining"``, else None: fit one on the task's training
    jets (:func:`input_standardizer`). ``model.pretrained`` tells the recipe (:func:`finetune_groups`)
    whether the body is pretrained. With ``groups`` the model is a :class:`GroupedModel`.
    """
    n = int(num_classes)
    card = read_card(checkpoint) if checkpoint is not None else None
    use_weights = card is not None and bool(pretrained)
    std = scaling_standardizer(card, pretrained=use_weights, input_scaling=input_scaling, where=str(checkpoint))
    model: PET | OmniLearnedModel
    with torch.random.fork_rng(devices=[], enabled=seed is not None):
        if seed is not None:
            torch.manual_seed(int(seed))
        if card is not None and is_omnilearned_card(card):
            # OmniLearnedModel seeds its own init: with seed=None that seed comes from the global RNG,
            # so (as for PET) a caller that seeds the global stream per build gets distinct inits
            ol_seed = int(seed) if seed is not None else int(torch.randint(0, 2**31 - 1, ()))
            if use_weights:
                assert checkpoint is not None  # use_weights needs the card read from it
                loaded = load(checkpoint, map_location="cpu")
                assert isinstance(loaded, OmniLearnedModel)  # the card names the OmniLearned architecture
                model = loaded.reset_classifier(n, seed=ol_seed)
            else:
                settings = OmniLearnedSettings.from_dict(card.config).replace(num_classes=n)
                model = OmniLearnedModel(settings, seed=ol_seed)
        else:
            cfg = PETConfig.from_dict(card.config) if card is not None else PETConfig.preset(preset)
            model = PET(cfg.replace(num_classes=n))
            if use_weights:
                assert checkpoint is not None  # use_weights needs the card read from it
                load_body_into(model, checkpoint)
    model.standardizer = std
    model.pretrained = use_weights
    model.train()
    return GroupedModel(model, groups) if groups is not None else model


def scaling_standardizer(
    card: Any, *, pretrained: bool = True, input_scaling: str = DEFAULT_INPUT_SCALING, where: str = "checkpoint"
) -> Standardizer | None:
    """The standardizer a model built from a checkpoint's ``card`` expects, or None: fit one on the
    task's data. An OmniLearned card's identity always (its input contract); otherwise the card's for a
    pretrained model with ``input_scaling="pretraining"`` (ValueError if the card has none)."""
    scaling = check_choice("input_scaling", input_scaling, INPUT_SCALINGS, "build_pet")
    if card is None:
        return None
    if is_omnilearned_card(card):
        return card.get_standardizer()
    if not pretrained or scaling == "task":
        return None
    std = card.get_standardizer()
    if std is None:
        raise ValueError(
            f"build_pet: {where} has no standardizer in its model card; pass input_scaling='task' "
            "or re-save it with jetlab.train.pretrain"
        )
    return std


def input_standardizer(model: nn.Module, train_jets) -> Standardizer:
    """The model's own standardizer (pretraining scaling), else one fitted on ``train_jets``."""
    std = getattr(model, "standardizer", None)
    return std if std is not None else Standardizer.fit_jetset(train_jets)


def finetune_groups(
    model: nn.Module,
    lr: float,
    *,
    lr_factor: float = DEFAULT_LR_FACTOR,
    weight_decay: float = 0.01,
    optimizer: str = DEFAULT_OPTIMIZER,
    pretrained: bool | None = None,
) -> list[dict] | None:
    """The Trainer's ``param_groups`` for fine-tuning ``model`` with ``optimizer``.

    A pretrained body (``pretrained``, default ``model.pretrained``) trains at ``lr / lr_factor``;
    a scratch model trains every parameter at ``lr``. ``"lion"`` also multiplies the body's weight
    decay by ``lr_factor`` (see the module docstring). A model without ``param_groups`` (a PFN, an
    MLP) gives None: all its parameters at ``lr``."""
    param_groups = getattr(model, "param_groups", None)  # PET-like models define it
    if param_groups is None:
        return None
    is_pretrained = bool(getattr(model, "pretrained", False)) if pretrained is None else bool(pretrained)
    factor = float(lr_factor) if is_pretrained else 1.0
    groups = param_groups(float(lr), factor, float(weight_decay))
    if str(optimizer).strip().lower() == "lion":
        for g in groups:
            if g.get("name") == "body":
                g["weight_decay"] = float(weight_decay) * factor
    return groups
