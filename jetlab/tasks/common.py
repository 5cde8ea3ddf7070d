"""Helpers shared by the tasks (tagging, OmniFold, anomaly detection) and notebooks 02-04.

* :func:`resolve_checkpoint` - find the pretrained foundation model (or pretrain a tiny one once,
  cached and file-locked, so every notebook runs offline on a fresh clone);
* :func:`load_task_data` - a ``dataset`` parameter (generator name, manifest name or file path)
  to in-memory schema data with the dataset's own train/test split when it has one;
* :func:`build_finetune_model` / :func:`build_scratch_model` - the same architecture, either
  initialised from the checkpoint (and using the *pretraining* standardizer, so inputs mean what
  they meant in pretraining) or from scratch (fitting its own standardizer on its training data);
* :class:`GroupedModel` - binds the feature groups a dataset really has (toptag-mini has no PID)
  so every forward pass drops the same groups in training and evaluation.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from jetlab._io import atomic_write_text
from jetlab.data.preprocess import Standardizer, available_groups
from jetlab.data.schema import JetSet
from jetlab.data.sources import resolve

__all__ = [
    "atomic_write_text",
    "CHECKPOINT_ENV",
    "DEFAULT_PRETRAIN_EPOCHS",
    "DEFAULT_PRETRAIN_JETS",
    "GroupedModel",
    "TaskData",
    "TrimmedDataset",
    "build_finetune_model",
    "build_scratch_model",
    "cached_checkpoint_dir",
    "find_checkpoint",
    "load_task_data",
    "resolve_checkpoint",
]

#: Environment variable that points every notebook at one pretrained checkpoint.
CHECKPOINT_ENV = "JETLAB_CHECKPOINT"
#: Size of the fallback pretraining (jetclass-mini jets) and its epochs: a few minutes on 2 CPU cores, once.
DEFAULT_PRETRAIN_JETS = 4000
DEFAULT_PRETRAIN_EPOCHS = 8
#: bumped when the fallback pretraining recipe changes, so an older cached model is not reused
PRETRAIN_RECIPE_VERSION = 2
PRETRAIN_DATASET = "jetclass-mini"
_NONE = ("none",)
_AUTO = ("auto", "")


# --------------------------------------------------------------------------- checkpoints
def _as_checkpoint_dir(path: Path) -> Path | None:
    """``path`` itself or its ``model/`` sub-directory (``pretrain`` output), if it is a checkpoint."""
    from jetlab.model.checkpoint import CARD_FILE, WEIGHTS_FILE

    for cand in (path, path / "model"):
        if (cand / CARD_FILE).is_file() and (cand / WEIGHTS_FILE).is_file():
            return cand
    return None


def cached_checkpoint_dir(n_jets: int = DEFAULT_PRETRAIN_JETS, seed: int = 0, cache_dir: str | os.PathLike | None = None) -> Path:
    """Where :func:`resolve_checkpoint` keeps its own tiny pretrained model."""
    from jetlab.data.cache import resolve_cache_dir

    return resolve_cache_dir(cache_dir) / "checkpoints" / (f"pet-tiny-{PRETRAIN_DATASET}-n{int(n_jets)}-s{int(seed)}"
                                                             f"-r{PRETRAIN_RECIPE_VERSION}")


def find_checkpoint(output_root: str | os.PathLike = "jetlab_output", *, n_jets: int = DEFAULT_PRETRAIN_JETS,
                    seed: int = 0, cache_dir: str | os.PathLike | None = None) -> Path | None:
    """The first existing checkpoint of ``$JETLAB_CHECKPOINT``, notebook 01's output, the cache."""
    env = os.environ.get(CHECKPOINT_ENV)
    if env:
        found = _as_checkpoint_dir(Path(env).expanduser())
        if found is None:
            raise FileNotFoundError(f"${CHECKPOINT_ENV}={env!r} is not a jetlab checkpoint directory "
                                    "(expected model_card.json and model.safetensors in it or in its model/)")
        return found
    for cand in (Path(output_root).expanduser() / "01_pretraining" / "checkpoint", cached_checkpoint_dir(n_jets, seed, cache_dir)):
        found = _as_checkpoint_dir(cand)
        if found is not None:
            return found
    return None


def resolve_checkpoint(
    checkpoint: str | os.PathLike | None = "auto",
    *,
    output_root: str | os.PathLike = "jetlab_output",
    pretrain_if_missing: bool = True,
    n_jets: int = DEFAULT_PRETRAIN_JETS,
    epochs: int = DEFAULT_PRETRAIN_EPOCHS,
    seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
    device: str | torch.device = "auto",
    progress: bool = True,
) -> Path | None:
    """Path of the pretrained PET checkpoint directory to fine-tune.

    * an explicit path must be a checkpoint directory (or contain ``model/``), else
      :class:`FileNotFoundError` naming it;
    * ``"omnilearned:small|medium|large"``: the published OmniLearned checkpoint, converted once
      (:func:`jetlab.model.omnilearned_convert.resolve_omnilearned`; FileNotFoundError with the
      ``jetlab data fetch`` command when it has not been downloaded);
    * ``"none"`` / None: no checkpoint (returns None; tasks then train from scratch only);
    * ``"auto"``: ``$JETLAB_CHECKPOINT``, then ``<output_root>/01_pretraining/checkpoint``, then the
      cache ``~/.cache/jetlab/checkpoints/pet-tiny-jetclass-mini-n{n_jets}-s{seed}-r{recipe}``. If none
      exists and ``pretrain_if_missing``, a tiny PET is pretrained on ``n_jets`` jetclass-mini jets
      for ``epochs`` epochs with :data:`jetlab.train.CPU_RECIPE` into the cache (under a file lock, so concurrent notebooks pretrain
      once); otherwise returns None.
    """
    if checkpoint is None or str(checkpoint).strip().lower() in _NONE:
        return None
    if isinstance(checkpoint, str) and checkpoint.strip().lower().startswith("omnilearned:"):
        from jetlab.model.omnilearned_convert import resolve_omnilearned

        return resolve_omnilearned(checkpoint, cache_dir=cache_dir)  # fetched + converted once, else says how
    if str(checkpoint).strip().lower() not in _AUTO:
        path = Path(checkpoint).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"checkpoint {os.fspath(checkpoint)!r} does not exist; pass an existing "
                                    "checkpoint directory, 'auto' or 'none'")
        found = _as_checkpoint_dir(path)
        if found is None:
            raise FileNotFoundError(f"checkpoint {os.fspath(checkpoint)!r} is not a jetlab checkpoint: expected "
                                    "model_card.json and model.safetensors in it (or in its model/ directory)")
        return found
    found = find_checkpoint(output_root, n_jets=n_jets, seed=seed, cache_dir=cache_dir)
    if found is not None or not pretrain_if_missing:
        return found
    target = cached_checkpoint_dir(n_jets, seed, cache_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / (target.name + ".lock"), "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            found = _as_checkpoint_dir(target)
            if found is not None:  # another process pretrained it while we waited
                return found
            print(f"jetlab: no pretrained checkpoint found; pretraining a tiny PET on {n_jets} {PRETRAIN_DATASET} "
                  f"jets for {epochs} epochs into {target} (once; later runs reuse it)", flush=True)
            from jetlab.train import CPU_RECIPE, pretrain

            work = target.parent / (target.name + ".work")
            pretrain(PRETRAIN_DATASET, work, model_config="tiny", epochs=int(epochs), n_jets=int(n_jets), seed=int(seed),
                     device=device, progress=progress, max_particles=64,
                     **CPU_RECIPE)
            os.replace(work / "model", target)
            shutil.rmtree(work, ignore_errors=True)
            print(f"jetlab: pretrained checkpoint written to {target}", flush=True)
            return target
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


# --------------------------------------------------------------------------- data
@dataclass
class TaskData:
    """A task's jets: ``jets`` (train + validation pool) and, when the dataset ships its own test
    set (ATLAS top tagging), ``test``; otherwise tasks split ``jets`` by seed."""

    name: str
    jets: JetSet
    test: JetSet | None = None
    label_names: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    info: dict = field(default_factory=dict)

    @property
    def groups(self) -> tuple[str, ...]:
        """Feature groups the data really carries (``("kinematics",)`` without PID)."""
        return available_groups(self.jets)

    def __len__(self) -> int:
        return len(self.jets) + (len(self.test) if self.test is not None else 0)


def load_task_data(
    dataset: str | os.PathLike | Sequence[str | os.PathLike] | JetSet,
    n_jets: int | None = None,
    seed: int = 0,
    *,
    n_test: int | None = None,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> TaskData:
    """Load the jets a task runs on, through the one resolver (:func:`jetlab.data.sources.resolve`).

    ``dataset`` is

    * a generator name (``"toptag-mini"``, ...): ``n_jets`` jets from the cache (generated with
      ``seed`` if missing); the task splits them into train/val/test;
    * a published dataset name (``"atlas_toptag"``): the fetched files, converted once; the
      publisher's train/test split is kept, ``n_jets`` caps the training rows and ``n_test`` the
      test rows (None / -1: all);
    * a schema file or directory, a pair ``(train_file, test_file)``, or a mapping ``{split: files}``
      (a ``"train"`` and a ``"test"`` split are used as such);
    * a :class:`JetSet` (used as is).
    """
    if isinstance(dataset, JetSet):
        return TaskData("in-memory", dataset)
    if isinstance(dataset, (list, tuple)):
        if len(dataset) != 2:
            raise ValueError(f"load_task_data: a sequence dataset must be (train_file, test_file), got {dataset!r}")
        dataset = {"train": dataset[0], "test": dataset[1]}
    source = resolve(dataset, n_jets=n_jets, seed=seed, cache_dir=cache_dir, progress=progress)
    cap = None if source.kind == "generated" else n_jets
    if source.has_split("train"):
        test = source.read(split="test", stop=n_test) if source.has_split("test") else None
        jets = source.read(split="train", stop=cap)
    else:
        jets, test = source.read(stop=cap), None
    info = dict(source.info) if source.kind == "generated" else {}
    return TaskData(source.name, jets, test, source.label_names, source.sources, info)


class TrimmedDataset(Dataset):
    """A map-style jet dataset whose batches are cut to the longest jet in the batch.

    Padding never changes PET's or a PFN's output (masked everywhere), but it costs compute:
    toptag-mini pads to 120 slots for ~20 real particles. ``__getitems__`` is what the trainer's
    DataLoader calls for a batch, so trimming happens once per batch.
    """

    def __init__(self, base: Dataset) -> None:
        self.base = base

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i):
        return self.base[i]

    def __getitems__(self, indices):
        batch = self.base.__getitems__(indices) if hasattr(self.base, "__getitems__") else \
            torch.utils.data.default_collate([self.base[i] for i in indices])
        mask = batch["mask"]
        if mask.ndim == 2 and mask.shape[1] > 1:
            n = int(mask.sum(1).max()) if mask.numel() else 1
            n = max(n, 2)
            if n < mask.shape[1]:
                batch = dict(batch)
                batch["x"] = batch["x"][:, :n].contiguous()
                batch["mask"] = mask[:, :n].contiguous()
        return batch

    def __getattr__(self, name: str) -> Any:  # tensors, standardizer, label_names ... of the base
        if name == "base":
            raise AttributeError(name)
        return getattr(self.base, name)


# --------------------------------------------------------------------------- models
class GroupedModel(nn.Module):
    """Wraps a PET so every ``classify``/``forward`` uses the same feature ``groups``.

    ``fit_classifier`` and ``predict`` call ``model.classify(x, mask, jets)``; binding the groups
    here means a dataset without PID (toptag-mini, ATLAS) drops the ``"pid"`` inputs in training
    *and* in evaluation. ``param_groups`` and ``card`` pass through to the wrapped model.
    """

    def __init__(self, model: nn.Module, groups: Sequence[str] | None = None) -> None:
        super().__init__()
        self.model = model
        self.groups = tuple(groups) if groups is not None else None

    def classify(self, x, mask, jets, groups=None):
        return self.model.classify(x, mask, jets, groups=self.groups if groups is None else groups)

    def forward(self, x, mask, jets, groups=None):
        return self.classify(x, mask, jets, groups)[0]

    def param_groups(self, lr_head: float, lr_factor: float = 5.0, weight_decay: float | None = None) -> list[dict]:
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

    def num_parameters(self) -> dict[str, int]:
        return self.model.num_parameters()


def build_finetune_model(checkpoint: str | os.PathLike, num_classes: int = 1, groups: Sequence[str] | None = None,
                         *, seed: int = 0) -> GroupedModel:
    """The pretrained PET with a fresh ``num_classes`` output layer, ready for fine-tuning.

    ``model.standardizer`` is the *pretraining* standardizer from the checkpoint's model card:
    fine-tuning data must be standardised with it so every input means what it meant in
    pretraining. ``seed`` seeds the new output layer's initialisation.
    """
    from jetlab.model import load

    model = load(checkpoint, map_location="cpu")
    card = model.card
    std = card.get_standardizer()
    if std is None:
        raise ValueError(f"checkpoint {checkpoint}: its model card has no standardizer; fine-tuning needs the "
                         "pretraining normalisation (re-save it with jetlab.train.pretrain)")
    torch.manual_seed(int(seed))
    model.reset_classifier(int(num_classes))
    model.standardizer = std
    model.train()
    return GroupedModel(model, groups)


def build_scratch_model(config: Any, num_classes: int = 1, groups: Sequence[str] | None = None,
                        *, seed: int = 0) -> GroupedModel:
    """A randomly initialised PET with the same architecture as ``config`` (a PETConfig, a dict,
    a preset name or a checkpoint directory whose config is copied). It has no standardizer: the
    training code fits one on the scratch model's own training data. An OmniLearned checkpoint gives
    a randomly initialised OmniLearned PET2 of the same settings, which keeps the identity
    standardizer (it builds its own inputs from jetlab's raw ones)."""
    from jetlab.model import PET, PETConfig, read_card

    if isinstance(config, (str, os.PathLike)) and str(config) in ("tiny", "small", "paper"):
        cfg = getattr(PETConfig, str(config))()
    elif isinstance(config, (str, os.PathLike)):
        card = read_card(_as_checkpoint_dir(Path(config)) or Path(config))
        if card.architecture == "omnilearned-pet2":  # same OmniLearned PET2, random init from seed
            from jetlab.model.omnilearned import OmniLearnedModel, OmniLearnedSettings

            settings = OmniLearnedSettings.from_dict(card.config).replace(num_classes=int(num_classes))
            return GroupedModel(OmniLearnedModel(settings, seed=int(seed)), groups)
        cfg = PETConfig.from_dict(card.config)
    elif isinstance(config, PETConfig):
        cfg = config
    elif isinstance(config, dict):
        cfg = PETConfig.from_dict(config)
    else:
        raise TypeError(f"build_scratch_model: config must be a PETConfig, dict, preset name or checkpoint path, "
                        f"got {type(config).__name__}")
    torch.manual_seed(int(seed))
    model = PET(cfg.replace(num_classes=int(num_classes)))
    model.standardizer = None
    return GroupedModel(model, groups)


def fit_standardizer(jets: JetSet) -> Standardizer:
    """The standardizer a from-scratch model fits on its own training jets."""
    return Standardizer.fit_jetset(jets)


def max_multiplicity(*sets: JetSet) -> int:
    """Largest number of real particles in any jet of ``sets`` (at least 2)."""
    return max([2] + [int(np.max(s.mask.sum(1))) for s in sets if len(s)])
