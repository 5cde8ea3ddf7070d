"""Named, reproducible pretraining recipes: ``jetlab pretrain --recipe NAME --out DIR``.

A recipe fixes everything that makes a pretrained model: the generated data (dataset, classes,
jets, seed), the model size, the particle count and the optimisation. Running one generates its
training and test jets (seeded, with every core: the generator's output does not depend on the
number of workers), pretrains PET with both heads (resumable from ``DIR/trainer/last.pt``: rerun
the same command after an interruption), evaluates the classifier on the test jets and writes
``DIR/model`` whose card names the command, the data and the validation curve.

``fraction`` shortens a recipe (fewer jets, the same everything else) to check that it is
deterministic and resumable without paying for the whole run.

Bit for bit: Intel MKL (PyTorch's CPU BLAS) picks kernels by memory alignment, so two runs of the
same seeded training differ in the last bit of a few weights unless MKL runs in its conditional
numerical reproducibility mode; :data:`REPRODUCIBLE_ENV` asks for it, and ``jetlab pretrain --recipe``
runs the recipe in a process started with it (MKL reads it once, when it loads).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shlex
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # run_recipe imports these lazily, so importing the recipes stays cheap
    from jetlab.data.sources import DataSource
    from jetlab.model import PET

    from .callbacks import History

log = logging.getLogger(__name__)

__all__ = ["PretrainingRecipe", "RECIPES", "REPRODUCIBLE_ENV", "recipe", "run_recipe"]

#: Environment a recipe runs in so that its weights do not depend on memory alignment (see above):
#: MKL's best code path for this CPU, in strict reproducibility mode.
REPRODUCIBLE_ENV: dict[str, str] = {"MKL_CBWR": "AUTO,STRICT"}


def in_reproducible_environment() -> bool:
    """Whether this process was started with :data:`REPRODUCIBLE_ENV`."""
    return all(os.environ.get(k) == v for k, v in REPRODUCIBLE_ENV.items())


@dataclass(frozen=True)
class PretrainingRecipe:
    """One pretraining run, fully specified (see the module docstring)."""

    name: str
    description: str
    n_jets: int  # training + validation jets generated (split equally over the classes)
    n_test: int  # test jets, generated with seed + 1 (independent of the training jets)
    epochs: int
    model: str = "tiny"
    max_particles: int = 64
    dataset: str = "jetclass-mini"
    classes: tuple[str, ...] | str = "all"
    seed: int = 0
    batch_size: int = 32
    lr: float = 1e-3
    optimizer: str = "adamw"
    diffusion_weight: float = 3.0
    ema_decay: float | None = 0.99
    n_val: int | None = None
    checkpoint_every: int = 200  # optimiser steps between resumable checkpoints (and at every epoch end)
    #: torch threads while training: fixed, because the thread count changes results in the last bits,
    #: and 1 because two threads on two busy cores stall every step (benchmarks/bench_pretrain_step.py)
    threads: int = 1

    def scaled(self, fraction: float) -> "PretrainingRecipe":
        """The same recipe on ``fraction`` of its jets (at least 20 per class for training, 10 for test)."""
        if not 0 < float(fraction) <= 1:
            raise ValueError(f"recipe {self.name!r}: fraction must be in (0, 1], got {fraction!r}")
        if float(fraction) == 1:
            return self
        n_classes = 10 if self.classes == "all" else len(self.classes)
        return dataclasses.replace(
            self,
            n_jets=max(20 * n_classes, round(self.n_jets * float(fraction))),
            n_test=max(10 * n_classes, round(self.n_test * float(fraction))),
            n_val=None if self.n_val is None else max(n_classes, round(self.n_val * float(fraction))),
        )

    def command(self, out: str | os.PathLike = "DIR", fraction: float = 1.0) -> str:
        """The shell command that runs this recipe (what the model card records)."""
        cmd = ["jetlab", "pretrain", "--recipe", self.name, "--out", os.fspath(out)]
        if float(fraction) != 1:
            cmd += ["--fraction", f"{float(fraction):g}"]
        return shlex.join(cmd)

    def generator_options(self) -> dict[str, Any]:
        return {"classes": self.classes}

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["classes"] = list(self.classes) if not isinstance(self.classes, str) else self.classes
        return d


#: The recipes by name. ``jetlab-foundation`` is the model jetlab ships (jetlab/weights/); its size
#: and epochs were chosen from the measured 2-core throughput (benchmarks/README.md, "Foundation recipe").
RECIPES: dict[str, PretrainingRecipe] = {
    r.name: r
    for r in (
        PretrainingRecipe(
            name="jetlab-foundation",
            description="all ten JetClass classes, 100,000 training jets: about 25x a notebook task's training set",
            n_jets=100_000,
            n_test=10_000,
            n_val=5_000,
            # tiny PET at 96 particles (cuts 0.4% of the particles of 2.3% of the jets): 183 jets/s on one
            # core (benchmarks/results/pretrain_step.json), so 4 epochs of 95,000 jets train in about 35 min
            model="tiny",
            max_particles=96,
            epochs=4,
            checkpoint_every=500,
        ),
    )
}


def recipe(name: str) -> PretrainingRecipe:
    """The recipe called ``name``, or a ValueError listing the known ones."""
    if name not in RECIPES:
        raise ValueError(f"unknown pretraining recipe {name!r}; known recipes: {sorted(RECIPES)}")
    return RECIPES[name]


def run_recipe(
    chosen: PretrainingRecipe | str,
    out_dir: str | os.PathLike,
    *,
    fraction: float = 1.0,
    workers: int | None = None,
    device: str = "auto",
    progress: bool = True,
    callbacks: tuple = (),
) -> Path:
    """Run a recipe into ``out_dir`` (resumable) and return ``out_dir/model``; see the module docstring."""
    import torch

    from jetlab.model import save

    from .pretrain import pretrain

    base = recipe(chosen) if isinstance(chosen, str) else chosen
    r = base.scaled(fraction)
    if not in_reproducible_environment():
        log.warning(
            "recipe %s: %s is not set, so the weights may differ from another run in the last bits "
            "(jetlab pretrain --recipe sets it)",
            r.name,
            " ".join(f"{k}={v}" for k, v in REPRODUCIBLE_ENV.items()),
        )
    out_dir = Path(out_dir)
    workers = (os.cpu_count() or 1) if workers is None else int(workers)
    start = time.perf_counter()
    train, test = _recipe_jets(r, workers, progress)
    generation_s = time.perf_counter() - start
    torch.set_num_threads(r.threads)
    model, history = pretrain(
        train,
        out_dir,
        model_config=r.model,
        epochs=r.epochs,
        batch_size=r.batch_size,
        lr=r.lr,
        optimizer=r.optimizer,
        max_particles=r.max_particles,
        n_val=r.n_val,
        seed=r.seed,
        device=device,
        loss_weights={"diffusion": r.diffusion_weight},
        ema_decay=r.ema_decay,
        checkpoint_every=r.checkpoint_every,
        callbacks=callbacks,
        progress=progress,
    )
    model_dir = out_dir / "model"
    card = model.card
    accuracy, n_test = _record_metrics(model, history, test, r.max_particles)
    card.recipe = {
        **r.to_dict(),
        "command": base.command(out_dir, fraction),
        "fraction": float(fraction),
        "generator": _versions("pythia8mc", "fastjet", "jetlab"),
        "hardware": _hardware(device),
        "generation_s": round(generation_s, 1),  # this run's (0 when the jets were cached)
        "total_s": round(time.perf_counter() - start, 1),
    }
    save(model, model_dir, card)
    log.info("recipe %s: test accuracy %.4f on %d jets; model in %s", r.name, accuracy, n_test, model_dir)
    return model_dir


def _recipe_jets(r: PretrainingRecipe, workers: int, progress: bool) -> tuple[DataSource, DataSource]:
    """The recipe's training and test jets (seeds ``seed`` and ``seed + 1``), generated or from the cache."""
    from jetlab.data.sources import resolve

    opts = r.generator_options()
    log.info(
        "recipe %s: generating %d training and %d test jets (%s) with %d workers",
        r.name,
        r.n_jets,
        r.n_test,
        r.classes,
        workers,
    )
    train = resolve(r.dataset, n_jets=r.n_jets, seed=r.seed, workers=workers, progress=progress, **opts)
    test = resolve(r.dataset, n_jets=r.n_test, seed=r.seed + 1, workers=workers, progress=progress, **opts)
    return train, test


def _record_metrics(model: PET, history: History, test: DataSource, max_particles: int) -> tuple[float, int]:
    """Test accuracy and the loss curves into the model card's metrics; (accuracy, test jets)."""
    from jetlab.data.torchdata import JetDataset

    from .finetune import predict

    card = model.card
    test_jets = test.read()
    std = card.get_standardizer()
    probs = predict(model, JetDataset(test_jets, standardizer=std, max_particles=max_particles), device="cpu")
    accuracy = float((np.argmax(probs, axis=-1) == test_jets.labels).mean())
    card.metrics["test_accuracy"] = accuracy
    card.metrics["test_jets"] = int(len(test_jets))
    card.metrics["val_loss_curve"] = [float(e["val_loss"]) for e in history.epochs if "val_loss" in e]
    card.metrics["train_loss_curve"] = [float(e["train_loss"]) for e in history.epochs if "train_loss" in e]
    return accuracy, int(len(test_jets))


def _versions(*packages: str) -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in packages:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def _hardware(device: str) -> str:
    import platform

    import torch

    if device != "cpu" and torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)} + {os.cpu_count()} CPU cores"
    return f"{platform.machine()} CPU, {os.cpu_count()} cores, torch {torch.__version__}"
