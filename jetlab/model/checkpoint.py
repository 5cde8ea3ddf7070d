"""Model checkpoints: a directory with ``model.safetensors`` and a human-readable ``model_card.json``.

The card carries everything needed to use the weights correctly later: the full
:class:`PETConfig`, the standardizer the model was trained with, input names, training data
and metrics. Directories are written atomically (temp directory + ``os.replace``), so a crash
never leaves a half-written checkpoint where a good one was.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, TypeVar

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from .config import PETConfig, strict_from_dict
from .pet import PET, zero_init_output

if TYPE_CHECKING:
    from .omnilearned import OmniLearnedModel, OmniLearnedSettings

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


def _as_card(model: PET | OmniLearnedModel, card: ModelCard | Mapping[str, Any] | None) -> ModelCard:
    if card is None:
        card = ModelCard()
    elif not isinstance(card, ModelCard):
        d = dict(card)
        if "standardizer" in d and d["standardizer"] is not None and not isinstance(d["standardizer"], Mapping):
            d["standardizer"] = d["standardizer"].to_dict()
        card = ModelCard.from_dict(d)
    card.config = model.config.to_dict()  # the model's config is authoritative
    card.architecture = getattr(model, "architecture", "pet")
    if card.standardizer is not None and not isinstance(card.standardizer, Mapping):
        card.standardizer = card.standardizer.to_dict()
    if (
        card.class_names is not None
        and len(card.class_names) != model.config.num_classes
        and model.config.num_classes > 1
    ):
        raise ValueError(
            f"ModelCard.class_names has {len(card.class_names)} names but the model has "
            f"num_classes={model.config.num_classes}"
        )
    return card


def save(
    model: PET | OmniLearnedModel, path: str | os.PathLike, card: ModelCard | Mapping[str, Any] | None = None
) -> Path:
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


def _load_weights(weights: Path, device: str = "cpu") -> dict[str, torch.Tensor]:
    """``safetensors`` load with damaged files (truncated, empty, not safetensors) named."""
    from safetensors import SafetensorError

    try:
        return load_file(str(weights), device=device)
    except (SafetensorError, OSError, EOFError) as exc:
        raise CheckpointError(
            f"{weights}: truncated or corrupt {WEIGHTS_FILE} ({exc}); re-save or re-download the checkpoint"
        ) from exc


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
