"""A model-agnostic training loop with exact resume, EMA, AMP and DDP.

``Trainer(model, loss_fn, train_data, ...)`` works with any ``nn.Module`` and any
``loss_fn(model, batch) -> loss`` or ``-> (loss, {name: float})`` where ``batch`` is a dict of
tensors. Checkpoints (``checkpoint_dir/last.pt``, written atomically) hold everything a resumed run
needs to continue *bit-identically*: weights, optimiser, scheduler, EMA, AMP scaler, every rank's
RNG states, epoch, batch position within the epoch, history and callback state. The data order is
a pure function of ``(seed, epoch)`` (:class:`jetlab.data.torchdata.EpochBatchSampler`), so a
resumed run sees exactly the batches the interrupted one would have seen.
"""

from __future__ import annotations

import math
import os
import random
import time
import warnings
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence, Sized

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, IterableDataset

from jetlab.data.torchdata import EpochBatchSampler, collate_batches, make_loader

from . import ddp
from .callbacks import Callback, EarlyStopping, History, ProgressBar
from .ema import ModelEMA
from .optim import Lion, build_optimizer
from .resume import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_VERSION,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from .schedule import make_scheduler
from .trainer_inputs import LossFn, LossModule, check_trainer_arguments, split_loss

__all__ = ["Lion", "Trainer", "build_optimizer"]


def _cpu_state(module: nn.Module) -> dict:
    return {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}


# --------------------------------------------------------------------------- trainer
class Trainer:
    """Train ``model`` by minimising ``loss_fn(model, batch)``; see the module docstring.

    ``batch_size`` is per process (under ``torchrun`` the global batch is ``batch_size * world``).
    ``param_groups`` (list of dicts with ``params`` and an absolute ``lr``) lets fine-tuning give the
    body and the head different learning rates; the warm-up + cosine schedule scales every group.
    ``warmup_steps=None`` uses 5% of the total steps. ``amp="auto"`` means full precision on CUDA as
    on CPU: on an H200, bf16 autocast trained PET at 0.77-0.98x its float32 jets/s in both GPU checks
    (``benchmarks/README.md``, "GPU check"); ``"bf16"`` or ``"fp16"`` ask for autocast anyway, for
    the halved activation memory. With ``ema_decay`` the
    averaged weights are used for validation, best-model tracking and the final model.
    ``restore_best`` (default: when ``val_data`` is given) loads the best-validation-loss weights
    at the end. ``early_stopping_patience`` adds an :class:`EarlyStopping` on ``val_loss``.
    Under DDP, ``find_unused_parameters="auto"`` probes the first batch (one extra forward and
    backward) and sets DDP's flag only if the loss leaves a trainable parameter without gradient.
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: LossFn,
        train_data: Dataset,
        val_data: Dataset | None = None,
        *,
        optimizer: str | torch.optim.Optimizer = "adamw",
        lr: float = 3e-4,
        param_groups: Sequence[Mapping] | None = None,
        weight_decay: float = 0.01,
        epochs: int = 1,
        max_steps: int | None = None,
        batch_size: int = 128,
        val_batch_size: int | None = None,
        warmup_steps: int | None = None,
        min_lr_factor: float = 0.0,
        clip_grad: float | None = 1.0,
        ema_decay: float | None = None,
        checkpoint_dir: str | os.PathLike | None = None,
        checkpoint_every: int | None = 200,
        resume: bool = True,
        device: str | torch.device = "auto",
        amp: str | bool = "auto",
        seed: int = 0,
        callbacks: Iterable[Callback] = (),
        early_stopping_patience: int | None = None,
        restore_best: bool | None = None,
        progress: bool = True,
        num_workers: int = 0,
        shuffle: bool = True,
        drop_last: bool = False,
        find_unused_parameters: bool | str = "auto",
    ) -> None:
        check_trainer_arguments(
            model, loss_fn, epochs, max_steps, batch_size, checkpoint_every, amp, find_unused_parameters
        )
        self.model, self.loss_fn = model, loss_fn
        self.train_data, self.val_data = train_data, val_data
        self.optimizer_spec, self.lr, self.param_groups_spec = optimizer, float(lr), param_groups
        self.weight_decay, self.epochs, self.max_steps = float(weight_decay), int(epochs), max_steps
        self.batch_size = int(batch_size)
        self.val_batch_size = int(val_batch_size or max(batch_size, 256))
        self.warmup_steps, self.min_lr_factor, self.clip_grad = warmup_steps, float(min_lr_factor), clip_grad
        self.ema_decay = ema_decay
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.checkpoint_every, self.resume = checkpoint_every, resume
        self.device_spec, self.amp_spec, self.seed = device, amp, int(seed)
        self.callbacks: list[Callback] = list(callbacks)
        if early_stopping_patience is not None:
            if val_data is None:
                raise ValueError("Trainer: early_stopping_patience needs val_data")
            self.callbacks.append(EarlyStopping(patience=early_stopping_patience))
        self.restore_best = (val_data is not None) if restore_best is None else bool(restore_best)
        if progress:
            self.callbacks.insert(0, ProgressBar())
        self.num_workers, self.shuffle, self.drop_last = int(num_workers), shuffle, drop_last
        self.find_unused_parameters = find_unused_parameters
        #: trainable parameters the loss left without gradient (set by the DDP probe of find_unused_parameters="auto")
        self.unused_parameters: list[str] | None = None
        self._init_training_state()

    def _init_training_state(self) -> None:
        """The state :meth:`fit` advances and a checkpoint stores, empty: history, counters, optimizer, EMA, best weights."""
        self.history = History()
        self.stop_training = False
        self.global_step, self.epoch, self.batch_in_epoch = 0, 0, 0
        self.total_steps = 0
        self.ctx: ddp.DistContext | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.scheduler: torch.optim.lr_scheduler.LambdaLR | None = None
        self.ema: ModelEMA | None = None
        self.scaler: torch.amp.GradScaler | None = None
        self.best_state: dict | None = None
        self._accum = [0.0, 0.0]  # (sum of loss * batch, number of jets) in the current epoch
        self._finished = False

    # ------------------------------------------------------------------ helpers
    @property
    def device(self) -> torch.device:
        return self.ctx.device if self.ctx is not None else ddp.resolve_device(self.device_spec)

    @property
    def is_main(self) -> bool:
        return self.ctx is None or self.ctx.is_main

    @property
    def checkpoint_path(self) -> Path | None:
        return None if self.checkpoint_dir is None else self.checkpoint_dir / "last.pt"

    def _amp_dtype(self) -> torch.dtype | None:
        a = self.amp_spec
        if a in ("off", False, None):
            return None
        if a == "auto":  # measured, not assumed: PET at jetlab's sizes is not matmul-bound (see the docstring)
            return None
        if a == "fp16":
            return torch.float16
        return torch.bfloat16

    @property
    def rank(self) -> int:
        """This process's rank (0 outside DDP, and before :meth:`fit` sets up the process group)."""
        return self.ctx.rank if self.ctx else 0

    @property
    def world_size(self) -> int:
        """Processes training together (1 outside DDP, and before :meth:`fit` sets up the process group)."""
        return self.ctx.world_size if self.ctx else 1

    def _context(self) -> ddp.DistContext:
        if self.ctx is None:
            raise RuntimeError("Trainer: no process context yet; fit() sets it up")
        return self.ctx

    def _optimization(self) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR, torch.amp.GradScaler]:
        """Optimizer, scheduler and grad scaler, which exist once fit() has set them up."""
        if self.optimizer is None or self.scheduler is None or self.scaler is None:
            raise RuntimeError("Trainer: the optimizer state exists only once fit() has set it up")
        return self.optimizer, self.scheduler, self.scaler

    def steps_per_epoch(self) -> int | None:
        rank, world = self.rank, self.world_size
        data = self.train_data
        if isinstance(data, IterableDataset):
            if not isinstance(data, Sized):
                return None
            try:
                n = len(data)
            except TypeError:
                return None
            per_rank = math.ceil(n / world)
            return per_rank // self.batch_size if self.drop_last else math.ceil(per_rank / self.batch_size)
        if not isinstance(data, Sized):
            raise TypeError(f"Trainer: a map-style train_data needs __len__, got {type(data).__name__}")
        s = EpochBatchSampler(len(data), self.batch_size, drop_last=self.drop_last, rank=rank, world_size=world)
        return len(s)

    def _to_device(self, batch: Mapping) -> dict:
        dev = self.device
        nb = dev.type == "cuda"
        return {k: (v.to(dev, non_blocking=nb) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}

    def _callbacks(self, hook: str, *args) -> None:
        for cb in self.callbacks:
            if getattr(cb, "main_process_only", False) and not self.is_main:
                continue
            getattr(cb, hook)(self, *args)

    def _setup(self) -> None:
        self.ctx = ddp.setup(self.device_spec)
        self.model.to(self.device)
        self._loss_module = LossModule(self.model, self.loss_fn)
        self._wrapped: nn.Module | None
        if self.ctx.distributed and self.find_unused_parameters == "auto":
            self._wrapped = None  # wrapped at the first batch by _wrap_ddp, once the loss's unused parameters are known
        else:
            self._wrapped = ddp.wrap_model(self._loss_module, self.ctx, self.find_unused_parameters is True)
        if self.param_groups_spec is not None:
            groups = [dict(g) for g in self.param_groups_spec]
            for i, g in enumerate(groups):
                if "params" not in g:
                    raise ValueError(f"Trainer: param_groups[{i}] has no 'params' entry")
                g["params"] = list(g["params"])
                g.setdefault("lr", self.lr)
            params: list[dict[str, Any]] | list[nn.Parameter] = groups
        else:
            params = [p for p in self.model.parameters() if p.requires_grad]
            if not params:
                raise ValueError("Trainer: the model has no trainable parameters (all frozen?)")
        self.optimizer = build_optimizer(self.optimizer_spec, params, self.lr, self.weight_decay)
        spe = self.steps_per_epoch()
        if self.max_steps is not None:
            self.total_steps = int(self.max_steps)
        elif spe is None:
            raise ValueError("Trainer: train_data has no length; pass max_steps")
        else:
            self.total_steps = max(1, self.epochs * spe)
        warm = self.warmup_steps if self.warmup_steps is not None else int(0.05 * self.total_steps)
        self.scheduler = make_scheduler(self.optimizer, self.total_steps, warm, self.min_lr_factor)
        self.ema = ModelEMA(self.model, self.ema_decay) if self.ema_decay else None
        amp = self._amp_dtype()
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=(amp == torch.float16))

    # ------------------------------------------------------------------ checkpointing
    def state_dict(self) -> dict:
        optimizer, scheduler, scaler = self._optimization()
        rngs: list[Any] = [rng_state()]
        if self.ctx is not None and self.ctx.distributed:
            rngs = [None] * self.ctx.world_size
            torch.distributed.all_gather_object(rngs, rng_state())
        return {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "model": _cpu_state(self.model),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "ema": self.ema.state_dict() if self.ema else None,
            "scaler": scaler.state_dict(),
            "rng": rngs,
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "global_step": self.global_step,
            "accum": list(self._accum),
            "history": self.history.to_dict(),
            "best_state": self.best_state,
            "callbacks": [cb.state_dict() for cb in self.callbacks],
            "finished": self._finished,
            "config": {
                "batch_size": self.batch_size,
                "world_size": self.world_size,
                "seed": self.seed,
                "total_steps": self.total_steps,
                "lr": self.lr,
            },
        }

    def save(self, path: str | os.PathLike | None = None) -> Path | None:
        """Write a checkpoint (rank 0 only; every rank must call it under DDP for the RNG gather)."""
        path = Path(path) if path is not None else self.checkpoint_path
        if path is None:
            return None
        state = self.state_dict()
        if not self.is_main:
            return None
        return save_checkpoint(state, path)

    def load_state_dict(self, state: Mapping) -> None:
        optimizer, scheduler, scaler = self._optimization()
        self.model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if self.ema is not None:
            if state.get("ema") is None:
                raise ValueError("checkpoint has no EMA state but the Trainer has ema_decay set")
            self.ema.load_state_dict(state["ema"])
        if state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        self.history = History.from_dict(state["history"])
        self.best_state = state.get("best_state")
        self.global_step, self.epoch = int(state["global_step"]), int(state["epoch"])
        self.batch_in_epoch, self._accum = int(state["batch_in_epoch"]), list(state["accum"])
        self._finished = bool(state.get("finished", False))
        cb_states = state.get("callbacks", [])
        if len(cb_states) == len(self.callbacks):
            for cb, s in zip(self.callbacks, cb_states):
                cb.load_state_dict(s)
        cfg = state.get("config", {})
        rank, world = self.rank, self.world_size
        if self.batch_in_epoch and (cfg.get("batch_size") != self.batch_size or cfg.get("world_size") != world):
            warnings.warn(
                f"resuming with batch_size={self.batch_size}, world_size={world} but the checkpoint used "
                f"batch_size={cfg.get('batch_size')}, world_size={cfg.get('world_size')}: restarting epoch "
                f"{self.epoch} from its first batch",
                stacklevel=3,
            )
            self.batch_in_epoch, self._accum = 0, [0.0, 0.0]
        rngs = state["rng"]
        set_rng_state(rngs[rank] if rank < len(rngs) else rngs[0])

    def _maybe_resume(self) -> bool:
        path = self.checkpoint_path
        if not self.resume or path is None or not path.exists():
            return False
        self.load_state_dict(load_checkpoint(path, map_location="cpu"))
        return True

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def evaluate(self, data: Dataset | None = None) -> dict[str, float]:
        """Mean loss (and parts) over ``data`` (default ``val_data``), jet-weighted, all-reduced.

        Runs under a forked RNG seeded from ``seed`` so stochastic losses (diffusion time sampling)
        give comparable numbers across epochs and do not disturb the training RNG stream.
        """
        data = self.val_data if data is None else data
        if data is None:
            raise ValueError("evaluate: no data given and the Trainer has no val_data")
        if self.ctx is None:
            self.ctx = ddp.setup(self.device_spec)
            self.model.to(self.device)
        ctx = self.ctx
        rank, world = self.rank, self.world_size
        if isinstance(data, IterableDataset):
            loader = make_loader(data, self.val_batch_size, shuffle=False, seed=self.seed, num_workers=self.num_workers)
        else:
            if not isinstance(data, Sized):
                raise TypeError(f"evaluate: a map-style dataset needs __len__, got {type(data).__name__}")
            sampler = EpochBatchSampler(
                len(data), self.val_batch_size, shuffle=False, rank=rank, world_size=world, pad=False
            )
            loader = DataLoader(data, batch_sampler=sampler, collate_fn=collate_batches, num_workers=self.num_workers)
        devices = [self.device] if self.device.type == "cuda" else []
        sums: dict[str, float] = {}
        n_total = 0.0
        was_training = self.model.training
        self.model.eval()
        amp = self._amp_dtype()
        try:
            with torch.random.fork_rng(devices=devices, device_type=self.device.type):
                torch.manual_seed(self.seed + 7919 * (rank + 1))
                for batch in loader:
                    batch = self._to_device(batch)
                    n = float(next(iter(batch.values())).shape[0])
                    with torch.autocast(self.device.type, dtype=amp or torch.bfloat16, enabled=amp is not None):
                        loss, parts = split_loss(self.loss_fn(self.model, batch))
                    sums["loss"] = sums.get("loss", 0.0) + float(loss) * n
                    for k, v in parts.items():
                        sums[k] = sums.get(k, 0.0) + v * n
                    n_total += n
        finally:
            self.model.train(was_training)
        keys = sorted(sums) if sums else ["loss"]
        vals = ddp.all_reduce_sum([sums.get(k, 0.0) for k in keys] + [n_total], ctx)
        total = vals[-1]
        if total == 0:
            raise ValueError("evaluate: the dataset is empty")
        return {k: v / total for k, v in zip(keys, vals[:-1])}

    def _evaluate_model(self) -> dict[str, float]:
        if self.ema is not None:
            with self.ema.swapped(self.model):
                return self.evaluate()
        return self.evaluate()

    # ------------------------------------------------------------------ training
    def _wrap_ddp(self, batch: dict, amp: torch.dtype | None) -> nn.Module:
        """DDP with ``find_unused_parameters`` only if the loss leaves a trainable parameter without
        gradient on this batch on some rank (fine-tuning leaves PET's generator unused; pretraining
        uses every head); the flag costs an extra autograd traversal per step."""

        def loss() -> torch.Tensor:
            with torch.autocast(self.device.type, dtype=amp or torch.bfloat16, enabled=amp is not None):
                return split_loss(self._loss_module(batch))[0]

        self.unused_parameters = ddp.unused_parameters(self.model, loss, self.device)
        ctx = self._context()
        anywhere = ddp.all_reduce_sum([float(len(self.unused_parameters))], ctx)[0] > 0
        self._wrapped = ddp.wrap_model(self._loss_module, ctx, anywhere)
        return self._wrapped

    def _train_step(self, batch: dict) -> tuple[float, dict[str, float], int]:
        amp = self._amp_dtype()
        batch = self._to_device(batch)
        n = int(next(iter(batch.values())).shape[0])
        wrapped = self._wrapped if self._wrapped is not None else self._wrap_ddp(batch, amp)
        with torch.autocast(self.device.type, dtype=amp or torch.bfloat16, enabled=amp is not None):
            loss, parts = split_loss(wrapped(batch))
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"non-finite training loss {float(loss.detach())} at step {self.global_step + 1} (epoch {self.epoch}); "
                f"parts={parts}. Lower the lr or check the inputs."
            )
        optimizer, scheduler, scaler = self._optimization()
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if self.clip_grad:
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_([p for p in self.model.parameters() if p.grad is not None], self.clip_grad)
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        if self.ema is not None:
            self.ema.update(self.model)
        return float(loss.detach()), parts, n

    def _end_epoch(self) -> None:
        s, n = ddp.all_reduce_sum(self._accum, self._context())
        info: dict[str, Any] = {
            "epoch": self.epoch,
            "step": self.global_step,
            "train_loss": s / n if n else float("nan"),
            "lr": self._optimization()[0].param_groups[0]["lr"],
        }
        if self.val_data is not None:
            val = self._evaluate_model()
            info["val_loss"] = val.pop("loss")
            info.update({f"val_{k}": v for k, v in val.items()})
            if self.history.best_val_loss is None or info["val_loss"] < self.history.best_val_loss:
                self.history.best_val_loss, self.history.best_epoch = info["val_loss"], self.epoch
                if self.restore_best:
                    self.best_state = (
                        _cpu_state(self.model)
                        if self.ema is None
                        else {k: v.detach().to("cpu", copy=True) for k, v in self.ema.shadow.items()}
                    )
        info["time"] = self.history.wall_time
        self.history.epochs.append(info)
        self.epoch += 1
        self.batch_in_epoch, self._accum = 0, [0.0, 0.0]
        self._callbacks("on_epoch_end", info)

    def _batches(self, loader: DataLoader) -> Iterable[dict]:
        """Iterate ``loader``; under DDP with an iterable dataset stop when any rank runs dry."""
        ctx = self._context()
        if not (ctx.distributed and isinstance(self.train_data, IterableDataset)):
            yield from loader
            return
        it = iter(loader)
        while True:
            batch = next(it, None)
            flag = ddp.all_reduce_sum([0.0 if batch is None else 1.0], ctx)[0]
            if batch is None or flag < ctx.world_size:  # some rank ran dry (this one if batch is None)
                return
            yield batch

    def fit(self) -> History:
        """Train until ``epochs`` (or ``max_steps``) are done or a callback stops; return the History."""
        self._setup()
        resumed = self._maybe_resume()
        if not resumed:
            random.seed(self.seed)
            np.random.seed(self.seed)
            torch.manual_seed(self.seed + self._context().rank)
        if self._finished:
            return self.history
        t0 = time.perf_counter()
        wall0 = self.history.wall_time
        self.stop_training = False
        self.model.train()
        self._callbacks("on_train_start")
        completed = False
        try:
            while not self.stop_training and (self.epoch < self.epochs or self.max_steps is not None):
                if self.max_steps is not None and self.global_step >= self.max_steps:
                    break
                loader = make_loader(
                    self.train_data,
                    self.batch_size,
                    shuffle=self.shuffle,
                    seed=self.seed,
                    num_workers=self.num_workers,
                    drop_last=self.drop_last,
                    epoch=self.epoch,
                    start_batch=self.batch_in_epoch,
                    pin_memory=self.device.type == "cuda",
                )
                for batch in self._batches(loader):
                    loss, parts, n = self._train_step(batch)
                    self.global_step += 1
                    self.batch_in_epoch += 1
                    self._accum[0] += loss * n
                    self._accum[1] += n
                    info = {
                        "step": self.global_step,
                        "epoch": self.epoch,
                        "loss": loss,
                        "lr": self._optimization()[0].param_groups[0]["lr"],
                        **parts,
                    }
                    self.history.steps.append(info)
                    if self.checkpoint_every and self.global_step % self.checkpoint_every == 0:
                        self.history.wall_time = wall0 + time.perf_counter() - t0
                        self.save()
                    self._callbacks("on_step_end", info)
                    if self.stop_training or (self.max_steps is not None and self.global_step >= self.max_steps):
                        break
                self.history.wall_time = wall0 + time.perf_counter() - t0
                if self.batch_in_epoch == 0:
                    raise ValueError(f"Trainer: train_data yielded no batches in epoch {self.epoch}")
                self._end_epoch()
                self.history.wall_time = wall0 + time.perf_counter() - t0
                if self.max_steps is not None and self.global_step >= self.max_steps:
                    self.stop_training = True
                self.save()
            completed = True
        except KeyboardInterrupt:
            if self.is_main and self.checkpoint_path is not None and self.checkpoint_path.exists():
                warnings.warn(
                    f"training interrupted at step {self.global_step}; resume from {self.checkpoint_path}", stacklevel=2
                )
            raise
        finally:
            for cb in self.callbacks:
                if isinstance(cb, ProgressBar):
                    cb.on_train_end(self)
        if completed:
            if self.ema is not None:
                self.ema.copy_to(self.model)
            if self.restore_best and self.best_state is not None:
                self.model.load_state_dict(self.best_state)
            self.history.wall_time = wall0 + time.perf_counter() - t0
            self._finished = True
            self.save()
            self._callbacks("on_train_end")
        return self.history
