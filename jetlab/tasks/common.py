"""What every task shares: its data, its results object and the names of the shared toolkit.

* :func:`load_task_data` - a ``dataset`` parameter (generator name, published dataset, files) to
  in-memory schema data with the dataset's own train/test split when it has one;
* :class:`TaskResults` - the one shape of a task's results: ``.table()``, ``.plots()``,
  ``.to_dict()``, ``.to_json()`` and ``.save(output_dir)``;
* :class:`TrimmedDataset` - batches cut to their longest jet (padding costs compute, never changes
  an output); :class:`ArrayDataset` - named arrays as a dataset of dict batches;
* :func:`fit_jet_generator` - the jet-feature generator's training (pretraining and CATHODE) on the
  :class:`~jetlab.train.Trainer`;
* re-exported toolkit: :func:`jetlab.model.factory.build_pet` and :class:`~jetlab.model.factory.GroupedModel`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence, Sized

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from jetlab._io import atomic_write_text, to_jsonable
from jetlab.data.preprocess import available_groups
from jetlab.data.schema import JetSet
from jetlab.data.sources import resolve
from jetlab.model.factory import DEFAULT_INPUT_SCALING, GroupedModel, build_pet
from jetlab.model.jet_generator import JetFeatureGenerator
from jetlab.train import Trainer

__all__ = [
    "ArrayDataset",
    "atomic_write_text",
    "GroupedModel",
    "TaskData",
    "TaskResults",
    "TrimmedDataset",
    "build_finetune_model",
    "build_pet",
    "build_scratch_model",
    "fit_jet_generator",
    "load_task_data",
    "max_multiplicity",
]


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
    dataset: str | os.PathLike | Sequence[str | os.PathLike] | Mapping[str, str | os.PathLike] | JetSet,
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
        if not isinstance(base, Sized):
            raise TypeError(f"TrimmedDataset: needs a map-style dataset with __len__, got {type(base).__name__}")
        self.base, self._len = base, len(base)

    def __len__(self) -> int:
        return self._len

    def __getitem__(self, i):
        return self.base[i]

    def __getitems__(self, indices):
        batch = (
            self.base.__getitems__(indices)
            if hasattr(self.base, "__getitems__")
            else torch.utils.data.default_collate([self.base[i] for i in indices])
        )
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


class ArrayDataset(Dataset):
    """A map-style dataset of equally long arrays; batches are dicts of tensors (jetlab batch format)."""

    def __init__(self, **arrays: np.ndarray | Tensor) -> None:
        if not arrays:
            raise ValueError("ArrayDataset needs at least one array")
        self.tensors = {k: v if isinstance(v, Tensor) else torch.as_tensor(np.asarray(v)) for k, v in arrays.items()}
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


def _jet_generator_loss(model: JetFeatureGenerator, batch: dict[str, Tensor]) -> Tensor:
    return model.loss(batch["x"], batch.get("cond"), batch.get("label"))


def fit_jet_generator(
    generator: JetFeatureGenerator,
    features: np.ndarray,
    *,
    cond: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    epochs: int = 100,
    batch_size: int = 256,
    lr: float = 2e-3,
    seed: int = 0,
    device: str | torch.device = "cpu",
    max_steps: int | None = None,
) -> list[float]:
    """Train a :class:`JetFeatureGenerator` (normalisation already set) with the :class:`Trainer`:
    AdamW (weight decay 1e-4), 5% warm-up then cosine decay, gradients clipped at 1, no validation.
    It is a few-thousand-parameter MLP, so on a CPU it runs on one thread (intra-op threading only
    adds contention). Returns the mean training loss of each epoch; the generator is left in eval mode."""
    arrays: dict[str, np.ndarray] = {"x": np.asarray(features, dtype=np.float32)}
    if cond is not None:
        arrays["cond"] = np.asarray(cond, dtype=np.float32).reshape(len(features), -1)
    if labels is not None:
        arrays["label"] = np.asarray(labels, dtype=np.int64)
    trainer = Trainer(
        generator,
        _jet_generator_loss,
        ArrayDataset(**arrays),
        None,
        optimizer="adamw",
        lr=lr,
        weight_decay=1e-4,
        epochs=max(1, int(epochs)),
        max_steps=max_steps,
        batch_size=batch_size,
        device=device,
        seed=seed,
        progress=False,
        checkpoint_every=None,
        amp="off",
    )
    threads = torch.get_num_threads()
    if trainer.device.type == "cpu":
        torch.set_num_threads(1)
    try:
        history = trainer.fit()
    finally:
        torch.set_num_threads(threads)
    generator.eval()
    return [float(e["train_loss"]) for e in history.epochs]


def max_multiplicity(*sets: JetSet) -> int:
    """Largest number of real particles in any jet of ``sets`` (at least 2)."""
    return max([2] + [int(np.max(s.mask.sum(1))) for s in sets if len(s)])


# --------------------------------------------------------------------------- models
def build_finetune_model(
    checkpoint: str | os.PathLike,
    num_classes: int = 1,
    groups: Sequence[str] | None = None,
    *,
    seed: int = 0,
    input_scaling: str = DEFAULT_INPUT_SCALING,
) -> GroupedModel:
    """:func:`build_pet` of a pretrained model, bound to ``groups`` (named for readability)."""
    return GroupedModel(build_pet(checkpoint, num_classes=num_classes, seed=seed, input_scaling=input_scaling), groups)


def build_scratch_model(
    architecture: Any, num_classes: int = 1, groups: Sequence[str] | None = None, *, seed: int = 0
) -> GroupedModel:
    """:func:`build_pet` from scratch with the architecture of a checkpoint directory, or a preset
    name / PETConfig / dict, bound to ``groups``."""
    if isinstance(architecture, (str, os.PathLike)) and Path(architecture).is_dir():
        model = build_pet(architecture, pretrained=False, num_classes=num_classes, seed=seed)
    else:
        model = build_pet(None, preset=architecture, num_classes=num_classes, seed=seed)
    return GroupedModel(model, groups)


# --------------------------------------------------------------------------- results
class TaskResults:
    """The shape every task's results share (``run_pretraining``, ``run_tagging``, ``run_omnifold``,
    ``run_anomaly`` return one).

    Subclasses implement :meth:`to_dict` (JSON-ready numbers), :meth:`table` (the headline table)
    and :meth:`plots` (``{file name: Figure}``); :meth:`to_json` and :meth:`save` are shared, so
    every notebook ends the same way: ``results.save(output_dir)``.
    """

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def table(self):
        raise NotImplementedError

    def plots(self) -> dict[str, Any]:
        raise NotImplementedError

    def to_json(self, path: str | os.PathLike | None = None, **to_dict_kwargs: Any) -> str:
        """JSON text of :meth:`to_dict` (non-finite numbers become null), written atomically to
        ``path`` if given."""
        text = json.dumps(to_jsonable(self.to_dict(**to_dict_kwargs)), indent=2, allow_nan=False) + "\n"
        if path is not None:
            atomic_write_text(path, text)
        return text

    def save(self, output_dir: str | os.PathLike, *, name: str = "metrics", figures: bool = True) -> dict[str, Path]:
        """Write ``<output_dir>/<name>.json`` and every figure of :meth:`plots` as PNG (shown once
        in a notebook; a notebook passes its run's ``run.output_dir``). Returns ``{name: path}``."""
        out = Path(output_dir)
        out.mkdir(parents=True, exist_ok=True)
        written = {name: Path(atomic_write_text(out / f"{name}.json", self.to_json()))}
        if figures:
            from jetlab.plot import save_figure  # matplotlib + mplhep: loaded with the first figure

            for fig_name, fig in self.plots().items():
                written[fig_name] = save_figure(fig, out / fig_name, display=True)
        return written
