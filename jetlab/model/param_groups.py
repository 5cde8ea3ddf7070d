"""Optimizer parameter groups of a pretrained body and its heads: the one place the OmniLearn
fine-tuning split (body at ``lr / lr_factor``, everything else at ``lr``) is written. Used by
``PET.param_groups``, ``OmniLearnedModel.param_groups`` and the anomaly task's dijet classifier and
background generator (through ``jetlab.model.factory``, which re-exports it)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from torch import nn

__all__ = ["FreezableParts", "body_head_groups"]

_Model = TypeVar("_Model", bound="FreezableParts")


class FreezableParts:
    """``freeze`` / ``unfreeze`` and parameter counts by part name, written once for jetlab's PET and
    the OmniLearned wrapper; a model provides ``parts`` ({name: module}) and ``_parts(names) ->
    [modules]`` (all parts for no names)."""

    @property
    def parts(self) -> dict[str, nn.Module]:
        raise NotImplementedError

    def _parts(self, names: Sequence[str]) -> list[nn.Module]:
        raise NotImplementedError

    def num_parameters(self) -> dict[str, int]:
        """Parameters per part and in total."""
        counts = {n: sum(p.numel() for p in m.parameters()) for n, m in self.parts.items()}
        counts["total"] = sum(counts.values())
        return counts

    def freeze(self: _Model, *parts: str) -> _Model:
        """Stop gradients for the named parts (all parts if none given)."""
        for m in self._parts(parts):
            m.requires_grad_(False)
        return self

    def unfreeze(self: _Model, *parts: str) -> _Model:
        """Train the named parts again (all parts if none given)."""
        for m in self._parts(parts):
            m.requires_grad_(True)
        return self


def body_head_groups(
    module: nn.Module, body: nn.Module, lr_head: float, lr_factor: float = 5.0, weight_decay: float | None = None
) -> list[dict]:
    """Two optimizer groups of ``module``: the parameters of ``body`` ("body", at ``lr_head /
    lr_factor``) and all others ("heads", at ``lr_head``); frozen parameters are left out."""
    if lr_factor <= 0:
        raise ValueError(f"param_groups: lr_factor must be > 0, got {lr_factor}")
    body_params = [p for p in body.parameters() if p.requires_grad]
    ids = {id(p) for p in body_params}
    heads = [p for p in module.parameters() if p.requires_grad and id(p) not in ids]
    groups = []
    for name, params, lr in (("body", body_params, lr_head / lr_factor), ("heads", heads, lr_head)):
        if params:
            g: dict[str, Any] = {"params": params, "lr": lr, "name": name}
            if weight_decay is not None:
                g["weight_decay"] = weight_decay
            groups.append(g)
    return groups
