"""Pretraining the PET foundation model on a schema file (OmniLearn: CE + jet regression + diffusion).

``pretrain(...)`` builds the datasets (in memory, or streamed from HDF5 for big files), fits the
standardizer on the training rows, trains with :func:`jetlab.model.pretraining_loss` and writes a
versioned checkpoint (``out_dir/model``, via :func:`jetlab.model.save`) whose model card records
the training data, standardizer, class names and validation metrics. Training state for resuming
lives in ``out_dir/trainer/last.pt``. Works the same under ``torchrun`` (rank 0 writes).
"""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any, Iterable, Mapping, NamedTuple

import numpy as np
import torch

from jetlab.data.schema import JetSet
from jetlab.data.sources import DataSource, resolve
from jetlab.data.torchdata import JetDataset, split_indices
from jetlab.model import PET, LossWeights, ModelCard, PETConfig, pretraining_loss, save

from . import ddp
from .callbacks import Callback, History
from .finetune import predict
from .trainer import Trainer

__all__ = ["CPU_RECIPE", "MAX_VALIDATION_ROWS", "STREAMING_THRESHOLD", "pretrain", "warn_if_oversubscribed"]

log = logging.getLogger(__name__)

#: files with more rows than this are streamed from disk by default (``streaming="auto"``)
STREAMING_THRESHOLD = 2_000_000
#: validation rows held in memory when a dataset is streamed (a sample across its validation files)
MAX_VALIDATION_ROWS = 50_000

#: Pretraining settings for small CPU budgets (a few thousand jets, minutes). The diffusion head
#: needs optimizer *steps* far more than big batches, and a larger share of the loss while the
#: budget is small: batch 32 and diffusion weight 3 (with EMA 0.99) give generated jet masses
#: closer to the real ones than batch 128 with every loss weighted 1, at equal or lower wall time
#: (no script in benchmarks/ re-measures this yet). The published GPU recipe (weights 1, batch 250/GPU) is
#: what the ``paper`` and ``gpu-hour`` profiles use.
CPU_RECIPE: dict[str, Any] = {"batch_size": 32, "lr": 1e-3, "loss_weights": {"diffusion": 3.0}, "ema_decay": 0.99}


def _other_runnable(samples: int = 5, interval: float = 0.02) -> float | None:
    """Mean number of runnable threads other than the caller, from ``/proc/loadavg`` sampled now.

    Not the 1-minute load average: that still counts this process's own data generation, which
    ``pretrain`` often runs just before training.
    """
    import time

    counts = []
    for i in range(samples):
        try:
            with open("/proc/loadavg") as f:
                running = int(f.read().split()[3].split("/")[0])
        except (OSError, ValueError, IndexError):
            return None
        counts.append(running - 1)
        if i + 1 < samples:
            time.sleep(interval)
    return sum(counts) / len(counts)


def warn_if_oversubscribed(threads: int | None = None, load: float | None = None, cores: int | None = None) -> bool:
    """Log a warning (and return True) when torch's intra-op threads exceed the cores other work leaves free.

    Every PET op waits for all its threads, so one descheduled thread stalls the whole step: on 2
    cores busy with two other processes, a tiny-PET step (128 particles, batch 32) took 4.2-8.6 s
    with 2 threads and 0.50-0.68 s with 1 (``benchmarks/results/pretrain_step.json``,
    ``under_load``; this is how ``jetlab pretrain`` once took 2.3 s a step). The thread count is not changed automatically: it changes
    results in the last float bits, and a seeded run must give the same weights.
    """
    threads = torch.get_num_threads() if threads is None else int(threads)
    cores = (os.cpu_count() or 1) if cores is None else int(cores)
    if load is None:
        load = _other_runnable()
        if load is None:  # pragma: no cover - no /proc (not Linux)
            return False
    free = cores - load
    if threads <= 1 or threads <= free + 0.5:
        return False
    log.warning(
        "pretrain: %d torch threads on %d cores with %.1f other threads runnable: each step waits for "
        "descheduled threads (measured 8-13x slower); torch.set_num_threads(%d) trains faster here",
        threads,
        cores,
        load,
        max(1, int(free + 0.5)),
    )
    return True


def _in_memory(
    js: JetSet, n_val: int | None, seed: int, max_particles: int | None
) -> tuple[JetDataset, JetDataset, int]:
    n_rows = len(js)
    if n_rows < 2:
        raise ValueError(f"pretrain: need at least 2 jets, got {n_rows}")
    n_val = max(1, min(n_rows // 10, MAX_VALIDATION_ROWS)) if n_val is None else int(n_val)
    if not 0 < n_val < n_rows:
        raise ValueError(f"pretrain: n_val must be in [1, {n_rows - 1}], got {n_val}")
    tr_idx, va_idx = split_indices(n_rows, (n_rows - n_val, n_val), seed=seed)
    train_ds = JetDataset(js, indices=tr_idx, max_particles=max_particles)
    val_ds = JetDataset(js, indices=va_idx, standardizer=train_ds.standardizer, max_particles=max_particles)
    return train_ds, val_ds, n_rows - n_val


def _from_source(
    source: DataSource,
    n_jets: int | None,
    n_val: int | None,
    collection: str | None,
    streaming: bool | str,
    seed: int,
    batch_size: int,
    max_particles: int | None,
):
    """(train dataset, validation dataset, training rows) for a resolved dataset."""
    train_split = "train" if source.has_split("train") else None
    cap = None if source.kind == "generated" or n_jets is None or n_jets <= 0 else int(n_jets)
    n_rows = source.n_rows(train_split)
    n_rows = n_rows if cap is None else min(cap, n_rows)
    big = n_rows > STREAMING_THRESHOLD
    use_stream = streaming is True or (streaming == "auto" and big)
    if not source.has_split("val"):
        if not use_stream:
            return _in_memory(source.read(collection, split=train_split, stop=cap), n_val, seed, max_particles)
        if len(source.files(train_split)) != 1:
            raise ValueError(
                f"pretrain: streaming {source.name!r} ({n_rows} rows in {len(source.files(train_split))} "
                f"files) needs a 'val' split to validate on (it has {list(source.splits)})"
            )
        # one big file: its last n_val rows validate, the rest is streamed
        n_val = max(1, min(n_rows // 10, MAX_VALIDATION_ROWS)) if n_val is None else int(n_val)
        if not 0 < n_val < n_rows:
            raise ValueError(f"pretrain: n_val must be in [1, {n_rows - 1}], got {n_val}")
        train_ds = source.stream(
            collection,
            split=train_split,
            seed=seed,
            batch_size=batch_size,
            stop=n_rows - n_val,
            max_particles=max_particles,
        )
        val_ds = JetDataset(
            source.read(collection, split=train_split, start=n_rows - n_val, stop=n_rows),
            standardizer=train_ds.standardizer,
            max_particles=max_particles,
        )
        return train_ds, val_ds, n_rows - n_val
    n_val = MAX_VALIDATION_ROWS if n_val is None else int(n_val)
    if use_stream:
        std_sample = source.sample(min(n_rows, 100_000), collection, split=train_split)
        from jetlab.data.preprocess import model_inputs

        train_ds = source.stream(
            collection,
            split=train_split,
            standardizer=model_inputs(std_sample)[3],
            seed=seed,
            batch_size=batch_size,
            stop=_per_file_stop(source, train_split, cap),
            max_particles=max_particles,
        )
    else:
        # published files often hold one class each: a capped read samples every file
        rows = (
            source.read(collection, split=train_split)
            if cap is None
            else source.sample(cap, collection, split=train_split)
        )
        train_ds = JetDataset(rows, max_particles=max_particles)
    val_ds = JetDataset(
        source.sample(n_val, collection, split="val"), standardizer=train_ds.standardizer, max_particles=max_particles
    )
    return train_ds, val_ds, len(train_ds)


def _per_file_stop(source: DataSource, split: str | None, cap: int | None) -> int | None:
    """Rows per file so that about ``cap`` rows are streamed, spread over every file (every class)."""
    if cap is None:
        return None
    return max(1, -(-cap // len(source.files(split))))


def pretrain(
    data: str | os.PathLike | JetSet | DataSource,
    out_dir: str | os.PathLike,
    *,
    model_config: Any = "tiny",
    epochs: int = 1,
    batch_size: int = 128,
    lr: float = 3e-4,
    optimizer: str = "adamw",
    max_particles: int | None = None,
    n_val: int | None = None,
    n_jets: int | None = None,
    collection: str | None = None,
    label_names: Iterable[str] | None = None,
    seed: int = 0,
    device: str | torch.device = "auto",
    resume: bool = True,
    loss_weights: Mapping[str, Any] | None = None,
    callbacks: Iterable[Callback] = (),
    ema_decay: float | None = None,
    max_steps: int | None = None,
    warmup_steps: int | None = None,
    checkpoint_every: int | None = 200,
    streaming: bool | str = "auto",
    num_workers: int = 0,
    progress: bool = True,
) -> tuple[PET, History]:
    """Pretrain a PET on ``data`` and save it to ``out_dir/model``; returns ``(model, history)``.

    ``data`` is anything :func:`jetlab.data.sources.resolve` takes (a generator name with ``n_jets``,
    a published dataset name, schema files), a :class:`DataSource`, or a :class:`JetSet` (then pass
    ``label_names``). A dataset with its own ``train``/``val`` splits (JetClass) keeps them: the
    training files are streamed when they hold more than :data:`STREAMING_THRESHOLD` rows, and
    ``n_val`` rows (default :data:`MAX_VALIDATION_ROWS`) sampled across the validation files are
    held in memory. Otherwise ``n_val`` rows (default 10%, at most 50k) of a random split are held out.
    """
    out_dir = Path(out_dir)
    torch.manual_seed(seed)  # model initialisation
    td = _training_data(
        data, label_names, n_jets, n_val, collection, streaming, seed, batch_size, max_particles, progress
    )
    n_classes = max(len(td.names), 1)
    model = PET(PETConfig.preset(model_config, num_classes=n_classes))
    weights = LossWeights(**dict(loss_weights)) if loss_weights else LossWeights()
    trainer = Trainer(
        model,
        functools.partial(pretraining_loss, weights=weights),
        td.train,
        td.val,
        optimizer=optimizer,
        lr=lr,
        epochs=epochs,
        max_steps=max_steps,
        batch_size=batch_size,
        warmup_steps=warmup_steps,
        ema_decay=ema_decay,
        checkpoint_dir=out_dir / "trainer",
        checkpoint_every=checkpoint_every,
        resume=resume,
        device=device,
        seed=seed,
        callbacks=callbacks,
        progress=progress,
        num_workers=num_workers,
    )
    if trainer.device.type == "cpu":
        warn_if_oversubscribed()
    history = trainer.fit()
    model.eval()
    if trainer.is_main:
        notes = (
            f"jetlab.train.pretrain: optimizer={optimizer}, lr={lr}, batch_size={batch_size}, "
            f"world_size={trainer.world_size}, seed={seed}, loss_weights={asdict(weights)}, "
            f"max_particles={max_particles}"
        )
        model.card = _save_with_card(model, history, td, max(batch_size, 256), trainer.device, out_dir / "model", notes)
    ddp.barrier(trainer.ctx)
    ddp.cleanup(trainer.ctx)
    return model, history


class _TrainingData(NamedTuple):
    """What :func:`pretrain` trains on, and what the model card records of it."""

    names: tuple[str, ...]  # class names
    dataset_name: str
    train: Any  # a JetDataset, or a streamed dataset
    val: JetDataset
    n_train: int  # training rows
    standardizer: Any  # the training data's, as the datasets were made


def _training_data(
    data: str | os.PathLike | JetSet | DataSource,
    label_names: Iterable[str] | None,
    n_jets: int | None,
    n_val: int | None,
    collection: str | None,
    streaming: bool | str,
    seed: int,
    batch_size: int,
    max_particles: int | None,
    progress: bool,
) -> _TrainingData:
    """Training and validation datasets of :func:`pretrain`'s ``data`` (see its docstring)."""
    if isinstance(data, JetSet):
        names = (
            tuple(label_names) if label_names is not None else tuple(str(i) for i in range(int(data.labels.max()) + 1))
        )
        dataset_name, (train_ds, val_ds, n_train) = "in-memory", _in_memory(data, n_val, seed, max_particles)
    else:
        source = data if isinstance(data, DataSource) else resolve(data, n_jets=n_jets, seed=seed, progress=progress)
        names = tuple(label_names) if label_names is not None else source.label_names
        dataset_name = source.name
        train_ds, val_ds, n_train = _from_source(
            source, n_jets, n_val, collection, streaming, seed, batch_size, max_particles
        )
    return _TrainingData(names, dataset_name, train_ds, val_ds, n_train, train_ds.standardizer)


def _save_with_card(
    model: PET, history: History, td: _TrainingData, batch_size: int, device: torch.device, path: Path, notes: str
) -> ModelCard:
    """Validation metrics into a model card, saved with the model at ``path``; returns the card."""
    n_classes = max(len(td.names), 1)
    metrics: dict[str, Any] = {
        "best_val_loss": history.best_val_loss,
        "best_epoch": history.best_epoch,
        "epochs": len(history.epochs),
        "steps": len(history.steps),
        "wall_time_s": round(history.wall_time, 2),
    }
    if history.epochs:
        metrics.update({k: v for k, v in history.epochs[-1].items() if k.startswith("val_")})
    probs = predict(model, td.val, batch_size=batch_size, device=device)
    labels = td.val.tensors["label"].numpy()
    if n_classes > 1:
        metrics["val_accuracy"] = float((np.argmax(probs, axis=-1) == labels).mean())
    card = ModelCard(
        training_data=td.dataset_name,
        training_size=td.n_train,
        standardizer=td.standardizer.to_dict(),
        class_names=list(td.names) if n_classes > 1 else None,
        metrics=metrics,
        notes=notes,
    )
    save(model, path, card)
    return card
