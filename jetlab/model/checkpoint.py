"""Model checkpoints by architecture and by name: :func:`load` rebuilds a PET or an OmniLearned model
from a checkpoint directory (the file format is :mod:`jetlab.model.card`), named checkpoints are
looked up in the models shipped with jetlab, ``$JETLAB_CHECKPOINTS`` and the cache, and
:func:`load_body_into` copies pretrained weights into a model for fine-tuning.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

import torch

from .card import (
    CARD_FILE,
    WEIGHTS_FILE,
    CheckpointError,
    ConfigMismatchError,
    ModelCard,
    _check_state,
    _load_weights,
    file_sha256,
    load_weights_into,
    read_card,
    save,
    state_problems,
    verify_weights,
)
from .config import PETConfig
from .pet import PET, zero_init_output

if TYPE_CHECKING:
    from .omnilearned import OmniLearnedModel, OmniLearnedSettings

__all__ = [
    "CARD_FILE",
    "FOUNDATION_MODEL",
    "SHIPPED_DIR",
    "WEIGHTS_FILE",
    "CheckpointError",
    "ConfigMismatchError",
    "ModelCard",
    "available_checkpoints",
    "checkpoint_search_dirs",
    "file_sha256",
    "load",
    "load_body_into",
    "load_weights_into",
    "read_card",
    "resolve_checkpoint_path",
    "save",
    "shipped_checkpoints",
    "state_problems",
    "verify_weights",
]

#: Where the pretrained models that ship with jetlab live (package data): one checkpoint directory each.
SHIPPED_DIR = Path(__file__).resolve().parent.parent / "weights"
#: The shipped foundation model that ``checkpoint="auto"`` resolves to (recipe ``jetlab-foundation``).
FOUNDATION_MODEL = "jetlab-foundation"


def shipped_checkpoints() -> dict[str, Path]:
    """The checkpoints shipped inside the installed jetlab (name -> directory); empty when none is."""
    if not SHIPPED_DIR.is_dir():
        return {}
    return {
        d.name: d for d in sorted(SHIPPED_DIR.iterdir()) if (d / CARD_FILE).is_file() and (d / WEIGHTS_FILE).is_file()
    }


def checkpoint_search_dirs() -> list[Path]:
    """Where checkpoints named without a path are looked up: ``$JETLAB_CHECKPOINTS``, then the cache."""
    dirs = []
    if os.environ.get("JETLAB_CHECKPOINTS"):
        dirs.append(Path(os.environ["JETLAB_CHECKPOINTS"]).expanduser())
    cache = os.environ.get("JETLAB_CACHE") or Path.home() / ".cache" / "jetlab"
    dirs.append(Path(cache).expanduser() / "checkpoints")
    return dirs


def available_checkpoints() -> dict[str, Path]:
    """Named checkpoints (name -> directory): the models shipped inside jetlab (``jetlab/weights/``),
    then those found in :func:`checkpoint_search_dirs`."""
    found: dict[str, Path] = dict(shipped_checkpoints())
    for d in checkpoint_search_dirs():
        if not d.is_dir():
            continue
        for cand in sorted(d.iterdir()):
            for sub in (cand, cand / "model"):
                if (sub / CARD_FILE).is_file() and cand.name not in found:
                    found[cand.name] = sub
    return found


def resolve_checkpoint_path(path_or_name: str | os.PathLike) -> Path:
    """A checkpoint directory from a path (or its ``model/`` sub-directory), a bare name, or
    ``"omnilearned:small|medium|large"`` (the published OmniLearned checkpoints, converted once)."""
    if isinstance(path_or_name, str) and path_or_name.strip().lower().startswith("omnilearned:"):
        from .omnilearned_convert import resolve_omnilearned

        return resolve_omnilearned(path_or_name)
    path = Path(path_or_name).expanduser()
    for cand in (path, path / "model"):
        if (cand / CARD_FILE).is_file():
            return cand
    if path.exists():
        return path  # read_card names what is missing
    if len(path.parts) == 1:
        named = available_checkpoints()
        if path.name in named:
            return named[path.name]
        known = ", ".join(sorted(named)) or "none"
        raise FileNotFoundError(
            f"load: no checkpoint directory or named checkpoint {str(path_or_name)!r} "
            f"(named checkpoints in {[str(d) for d in checkpoint_search_dirs()]}: {known})"
        )
    raise FileNotFoundError(f"load: checkpoint directory {path} does not exist")


def load(
    path: str | os.PathLike,
    map_location: str | torch.device = "cpu",
    config: PETConfig | OmniLearnedSettings | None = None,
) -> PET | OmniLearnedModel:
    """Rebuild the model from a checkpoint directory or name; the card is attached as ``model.card``.

    A card with architecture ``"omnilearned-pet2"`` gives a
    :class:`jetlab.model.omnilearned.OmniLearnedModel` (needs ``jetlab[omnilearned]``).

    ``path`` may be a checkpoint directory, a directory holding ``model/`` (what ``jetlab
    pretrain`` writes) or a bare name looked up in :func:`checkpoint_search_dirs`.

    If ``config`` is given, every field must equal the stored one, otherwise
    :class:`ConfigMismatchError` names the differing fields with both values.
    """
    path = resolve_checkpoint_path(path)
    card = read_card(path)
    if card.architecture == "omnilearned-pet2":
        from .omnilearned import OmniLearnedSettings, load_omnilearned

        if config is not None and not isinstance(config, OmniLearnedSettings):
            raise TypeError(
                f"load: {path} is an OmniLearned checkpoint; config must be an OmniLearnedSettings, "
                f"got {type(config).__name__}"
            )
        return load_omnilearned(path, card, map_location, config)
    if card.architecture != "pet":
        raise CheckpointError(
            f"{path / CARD_FILE}: unknown architecture {card.architecture!r} "
            "(this jetlab knows 'pet' and 'omnilearned-pet2')"
        )
    try:
        stored = PETConfig.from_dict(card.config)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path / CARD_FILE}: invalid config: {exc}") from exc
    if config is not None:
        if not isinstance(config, PETConfig):
            raise TypeError(
                f"load: {path} is a PET checkpoint; config must be a PETConfig, got {type(config).__name__}"
            )
        diffs = stored.diff(config)
        if diffs:
            raise ConfigMismatchError(diffs, path)
    return load_weights_into(PET(stored), path, card, map_location)


def load_body_into(
    model: PET, checkpoint: str | os.PathLike | PET | Mapping[str, torch.Tensor]
) -> dict[str, list[str]]:
    """Copy pretrained weights into ``model`` for fine-tuning with a different head size.

    All body tensors must match (else :class:`CheckpointError` naming the tensor); head tensors
    are copied where names and shapes match (the class output layer of a new class count is
    skipped, and zeroed: see :func:`jetlab.model.pet.zero_init_output`). Returns
    ``{"loaded": [...], "skipped": [...]}``.
    """
    if isinstance(checkpoint, PET):
        src = checkpoint.state_dict()
        where = "source model"
    elif isinstance(checkpoint, Mapping):
        src = dict(checkpoint)
        where = "state dict"
    else:
        p = Path(checkpoint)
        where = str(p / WEIGHTS_FILE)
        if not (p / WEIGHTS_FILE).is_file():
            raise CheckpointError(f"load_body_into: {p} has no {WEIGHTS_FILE}")
        if (p / CARD_FILE).is_file():
            verify_weights(p, read_card(p))
        src = _load_weights(p / WEIGHTS_FILE)
    dst = model.state_dict()
    body_keys = [k for k in dst if k.startswith("body.")]
    body_dst = {k: dst[k] for k in body_keys}
    body_src = {k: v for k, v in src.items() if k.startswith("body.")}
    _check_state(body_src, body_dst, where)
    new_state, loaded, skipped = {}, [], []
    for k, v in dst.items():
        s = src.get(k)
        if s is not None and tuple(s.shape) == tuple(v.shape):
            new_state[k] = s.to(v.device, v.dtype)
            loaded.append(k)
        else:
            skipped.append(k)
    model.load_state_dict(new_state, strict=False)
    if any(k.startswith("classifier.out.") for k in skipped):
        zero_init_output(model)
    return {"loaded": loaded, "skipped": skipped}
