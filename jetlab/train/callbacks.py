"""Training callbacks and the :class:`History` record returned by ``Trainer.fit``.

A callback receives the trainer and a small info dict; it may set ``trainer.stop_training = True``.
Callbacks with state (e.g. :class:`EarlyStopping`) implement ``state_dict``/``load_state_dict`` so
it is saved in checkpoints and a resumed run behaves like an uninterrupted one.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Protocol

__all__ = ["Callback", "EarlyStopping", "History", "LiveLossPlot", "ProgressBar", "TimeLimit"]


@dataclass
class History:
    """Per-step and per-epoch record of a training run.

    ``steps``: dicts ``{step, epoch, loss, lr, <loss parts>}``; ``epochs``: dicts
    ``{epoch, train_loss, val_loss, lr, time, <val_ parts>}``; ``best_epoch``/``best_val_loss``
    refer to the validation loss; ``wall_time`` is seconds spent in ``fit`` (over all resumes).
    """

    steps: list[dict] = field(default_factory=list)
    epochs: list[dict] = field(default_factory=list)
    best_epoch: int | None = None
    best_val_loss: float | None = None
    stopped_early: bool = False
    wall_time: float = 0.0

    @property
    def train_loss(self) -> list[float]:
        return [e["train_loss"] for e in self.epochs]

    @property
    def val_loss(self) -> list[float | None]:
        return [e.get("val_loss") for e in self.epochs]

    @property
    def step_loss(self) -> list[float]:
        return [s["loss"] for s in self.steps]

    @property
    def lr(self) -> list[float]:
        return [s["lr"] for s in self.steps]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "History":
        return cls(**d)

    def __repr__(self) -> str:
        last = self.epochs[-1] if self.epochs else {}
        return (
            f"History(epochs={len(self.epochs)}, steps={len(self.steps)}, "
            f"train_loss={last.get('train_loss')}, val_loss={last.get('val_loss')}, best_epoch={self.best_epoch})"
        )


class Trainer(Protocol):
    """What a callback may read and set on the training loop (:class:`jetlab.train.Trainer` is one).

    A protocol, not an import of the trainer: the trainer imports its callbacks, so callbacks
    name only what they use and the two modules do not import each other."""

    history: History
    stop_training: bool
    global_step: int
    total_steps: int

    @property
    def world_size(self) -> int: ...


class Callback:
    """Base class: override any hook. ``info`` is the history row just recorded.

    Set ``main_process_only = True`` for callbacks that only display or log (rank 0 under DDP).
    """

    main_process_only: bool = False

    def on_train_start(self, trainer: Trainer) -> None: ...

    def on_step_end(self, trainer: Trainer, info: dict) -> None: ...

    def on_epoch_end(self, trainer: Trainer, info: dict) -> None: ...

    def on_train_end(self, trainer: Trainer) -> None: ...

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None: ...


class ProgressBar(Callback):
    """tqdm progress bar (``tqdm.auto`` picks the Jupyter widget in notebooks); rank 0 only."""

    main_process_only = True

    def __init__(self, every: int = 1) -> None:
        self.every, self.bar = max(1, int(every)), None

    def on_train_start(self, trainer: Trainer) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(
            total=trainer.total_steps,
            initial=trainer.global_step,
            desc="train",
            unit="step",
            dynamic_ncols=True,
            leave=True,
        )

    def on_step_end(self, trainer: Trainer, info: dict) -> None:
        if self.bar is None:
            return
        self.bar.update(1)
        if info["step"] % self.every == 0:
            self.bar.set_postfix(epoch=info["epoch"], loss=f"{info['loss']:.4g}", lr=f"{info['lr']:.2e}", refresh=False)

    def on_epoch_end(self, trainer: Trainer, info: dict) -> None:
        if self.bar is not None and info.get("val_loss") is not None:
            self.bar.set_postfix(epoch=info["epoch"], train=f"{info['train_loss']:.4g}", val=f"{info['val_loss']:.4g}")

    def on_train_end(self, trainer: Trainer) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class LiveLossPlot(Callback):
    """Forwards history updates to ``fn(update)`` - the hook a live plot widget plugs into.

    ``update`` is ``{"kind": "step"|"epoch"|"end", "info": row, "history": History}``; step updates
    are throttled to every ``every`` steps so a widget is not redrawn on every batch.
    """

    main_process_only = True

    def __init__(self, fn: Callable[[dict], Any], every: int = 10) -> None:
        if not callable(fn):
            raise TypeError(f"LiveLossPlot needs a callable, got {type(fn).__name__}")
        self.fn, self.every = fn, max(1, int(every))

    def on_step_end(self, trainer: Trainer, info: dict) -> None:
        if info["step"] % self.every == 0:
            self.fn({"kind": "step", "info": info, "history": trainer.history})

    def on_epoch_end(self, trainer: Trainer, info: dict) -> None:
        self.fn({"kind": "epoch", "info": info, "history": trainer.history})

    def on_train_end(self, trainer: Trainer) -> None:
        self.fn({"kind": "end", "info": {}, "history": trainer.history})


class EarlyStopping(Callback):
    """Stop when ``monitor`` (default ``val_loss``) has not improved by ``min_delta`` for
    ``patience`` epochs. The trainer restores the best weights when it stops (``restore_best``)."""

    def __init__(self, patience: int = 5, min_delta: float = 0.0, monitor: str = "val_loss") -> None:
        if patience < 1:
            raise ValueError(f"EarlyStopping patience must be >= 1, got {patience}")
        self.patience, self.min_delta, self.monitor = int(patience), float(min_delta), monitor
        self.best, self.bad_epochs = math.inf, 0

    def on_epoch_end(self, trainer: Trainer, info: dict) -> None:
        value = info.get(self.monitor)
        if value is None:
            raise KeyError(
                f"EarlyStopping monitors {self.monitor!r} but the epoch record has {sorted(info)}; "
                "pass val_data to the Trainer"
            )
        if value < self.best - self.min_delta:
            self.best, self.bad_epochs = float(value), 0
        else:
            self.bad_epochs += 1
            if self.bad_epochs >= self.patience:
                trainer.stop_training = True
                trainer.history.stopped_early = True

    def state_dict(self) -> dict:
        return {"best": self.best, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.bad_epochs = state["best"], state["bad_epochs"]


class TimeLimit(Callback):
    """Stop training after ``seconds`` of wall-clock time (checked after every optimiser step).

    Why: benchmarks compare recipes at equal compute ("what does 5 minutes of training buy"), and
    a user on a shared machine may want "train for 20 minutes". One process only: under DDP the
    ranks' clocks would stop them at different steps and the collective calls would hang.
    """

    def __init__(self, seconds: float) -> None:
        if not seconds > 0:
            raise ValueError(f"TimeLimit: seconds must be > 0, got {seconds}")
        self.seconds, self.t0, self.stopped = float(seconds), 0.0, False

    def on_train_start(self, trainer: Trainer) -> None:
        world = trainer.world_size
        if world > 1:
            raise ValueError(f"TimeLimit: one process only (this run has {world} DDP ranks)")
        self.t0, self.stopped = time.monotonic(), False

    def on_step_end(self, trainer: Trainer, info: dict) -> None:
        if time.monotonic() - self.t0 > self.seconds:
            trainer.stop_training, self.stopped = True, True
