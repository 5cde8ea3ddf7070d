"""The checkpoint file format: ``model.safetensors`` + a human-readable ``model_card.json``.

The card carries everything needed to use the weights correctly later: the full config, the
standardizer the model was trained with, input names, training data, the recipe and metrics, and
the weights' SHA-256. Directories are written atomically (temp directory + ``os.replace``), so a
crash never leaves a half-written checkpoint where a good one was.

This module knows no architecture: :mod:`jetlab.model.checkpoint` (loading by architecture, named
and shipped checkpoints) and the architectures themselves build on it, so no two of them import
each other.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, TypeVar

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from .config import strict_from_dict

M = TypeVar("M", bound=nn.Module)
WEIGHTS_FILE = "model.safetensors"
CARD_FILE = "model_card.json"


class ConfigMismatchError(ValueError):
    """The checkpoint's config differs from the expected one; the message names each field."""

    def __init__(self, diffs: Mapping[str, tuple[Any, Any]], path: str | os.PathLike = "") -> None:
        self.diffs = dict(diffs)
        items = ", ".join(f"{k}: checkpoint={a!r} expected={b!r}" for k, (a, b) in self.diffs.items())
        super().__init__(f"checkpoint {path} config differs in {len(self.diffs)} field(s): {items}")


class CheckpointError(ValueError):
    """A checkpoint directory is missing files or its weights do not fit the model."""


def _jetlab_version() -> str:
    from jetlab import __version__

    return __version__


def _default_inputs(kind: str) -> list[str]:
    from jetlab.data.preprocess import JET_INPUTS, PARTICLE_INPUTS

    return list(PARTICLE_INPUTS if kind == "particle" else JET_INPUTS)


@dataclass
class ModelCard:
    """What a checkpoint is: config, provenance, inputs, normalisation and results."""

    config: dict = field(default_factory=dict)
    jetlab_version: str = field(default_factory=_jetlab_version)
    created: str = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    training_data: str | None = None
    training_size: int | None = None
    particle_inputs: list[str] = field(default_factory=lambda: _default_inputs("particle"))
    jet_inputs: list[str] = field(default_factory=lambda: _default_inputs("jet"))
    standardizer: dict | None = None
    metrics: dict = field(default_factory=dict)
    class_names: list[str] | None = None
    notes: str = ""
    #: "pet" (jetlab.model.PET) or "omnilearned-pet2" (jetlab.model.omnilearned; config = its settings)
    architecture: str = "pet"
    #: the pretraining recipe that made the weights (:mod:`jetlab.train.recipes`: settings, command,
    #: generator versions, hardware), None for checkpoints made otherwise
    recipe: dict | None = None
    #: SHA-256 of ``model.safetensors`` written by :func:`save`; :func:`load` refuses a file that differs
    weights_sha256: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ModelCard":
        return strict_from_dict(cls, d)

    def get_standardizer(self):
        """The :class:`jetlab.data.preprocess.Standardizer` stored with the model (or None)."""
        if self.standardizer is None:
            return None
        from jetlab.data.preprocess import Standardizer

        return Standardizer.from_dict(self.standardizer)


def _as_card(model: nn.Module, card: ModelCard | Mapping[str, Any] | None) -> ModelCard:
    if card is None:
        card = ModelCard()
    elif not isinstance(card, ModelCard):
        d = dict(card)
        if "standardizer" in d and d["standardizer"] is not None and not isinstance(d["standardizer"], Mapping):
            d["standardizer"] = d["standardizer"].to_dict()
        card = ModelCard.from_dict(d)
    config: Any = getattr(model, "config")  # noqa: B009 - every jetlab model carries its config
    card.config = config.to_dict()  # the model's config is authoritative
    card.architecture = getattr(model, "architecture", "pet")
    if card.standardizer is not None and not isinstance(card.standardizer, Mapping):
        card.standardizer = card.standardizer.to_dict()
    if card.class_names is not None and len(card.class_names) != config.num_classes and config.num_classes > 1:
        raise ValueError(
            f"ModelCard.class_names has {len(card.class_names)} names but the model has "
            f"num_classes={config.num_classes}"
        )
    return card


def save(model: nn.Module, path: str | os.PathLike, card: ModelCard | Mapping[str, Any] | None = None) -> Path:
    """Write ``path/model.safetensors`` and ``path/model_card.json`` atomically; returns ``path``."""
    path = Path(path)
    card = _as_card(model, card)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        save_file(state, str(tmp / WEIGHTS_FILE), metadata={"format": "pt", "jetlab_version": card.jetlab_version})
        card.weights_sha256 = file_sha256(tmp / WEIGHTS_FILE)
        with open(tmp / CARD_FILE, "w") as f:
            json.dump(card.to_dict(), f, indent=2, sort_keys=False)
            f.write("\n")
        old = None
        if path.exists():
            if not (path / CARD_FILE).exists() and any(path.iterdir()):
                raise FileExistsError(f"save: {path} exists and is not a jetlab checkpoint; refusing to overwrite it")
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
            os.replace(path, old / "ckpt")
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def read_card(path: str | os.PathLike) -> ModelCard:
    path = Path(path)
    card_file = path / CARD_FILE
    if not card_file.is_file():
        raise CheckpointError(f"{path}: not a jetlab checkpoint (missing {CARD_FILE})")
    try:
        with open(card_file) as f:
            return ModelCard.from_dict(json.load(f))
    except (json.JSONDecodeError, ValueError) as exc:
        raise CheckpointError(f"{card_file}: invalid model card: {exc}") from exc


def state_problems(state: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor]) -> list[str]:
    """Why the tensors ``state`` (a file's) would not load strictly into a model whose state dict is
    ``expected``: tensors the model needs but the file lacks, tensors that would be left unloaded,
    shape mismatches (ten of each at most). Empty when they fit."""

    def few(names: list[str]) -> str:
        return f"{names[:10]}{' ...' if len(names) > 10 else ''}"

    missing = sorted(set(expected) - set(state))
    unloaded = sorted(set(state) - set(expected))
    shapes = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in expected
        if k in state and tuple(state[k].shape) != tuple(expected[k].shape)
    ]
    problems = []
    if missing:
        problems.append(f"tensors the model needs but the file lacks {few(missing)}")
    if unloaded:
        problems.append(f"tensors that would be left unloaded {few(unloaded)}")
    if shapes:
        problems.append("shape mismatch " + "; ".join(shapes[:10]))
    return problems


def _check_state(state: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor], where: str) -> None:
    problems = state_problems(state, expected)
    if problems:
        raise CheckpointError(f"{where}: weights do not fit the model: " + "; ".join(problems))


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_weights(path: Path, card: ModelCard) -> None:
    """A CheckpointError when ``path``'s weights are not the ones its card names (modified or corrupt);
    cards written before checksums were recorded carry none and are not checked."""
    if card.weights_sha256 is None:
        return
    got = file_sha256(path / WEIGHTS_FILE)
    if got != card.weights_sha256:
        raise CheckpointError(
            f"{path / WEIGHTS_FILE}: SHA-256 {got} differs from {card.weights_sha256} in {CARD_FILE}: "
            "the weights were modified or damaged after they were saved; reinstall jetlab (shipped models) "
            "or re-save the checkpoint"
        )


def load_weights_into(model: M, path: Path, card: ModelCard, map_location: str | torch.device = "cpu") -> M:
    """``path``'s weights loaded strictly into ``model`` (a CheckpointError names every tensor that
    does not fit), moved to ``map_location``, with ``model.card = card``, in eval mode: the end of
    loading a PET and an OmniLearned checkpoint alike."""
    weights = path / WEIGHTS_FILE
    if not weights.is_file():
        raise CheckpointError(f"{path}: missing {WEIGHTS_FILE}")
    verify_weights(path, card)
    device = torch.device(map_location)
    state = _load_weights(weights, device=str(device))
    _check_state(state, model.state_dict(), str(weights))
    model.load_state_dict(state, strict=True)
    model.to(device)
    setattr(model, "card", card)  # noqa: B010 - nn.Module types setattr for tensors and modules only
    return model.eval()


def _load_weights(weights: Path, device: str = "cpu") -> dict[str, torch.Tensor]:
    """``safetensors`` load with damaged files (truncated, empty, not safetensors) named."""
    from safetensors import SafetensorError

    try:
        return load_file(str(weights), device=device)
    except (SafetensorError, OSError, EOFError) as exc:
        raise CheckpointError(
            f"{weights}: truncated or corrupt {WEIGHTS_FILE} ({exc}); re-save or re-download the checkpoint"
        ) from exc
