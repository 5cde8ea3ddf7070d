"""The one checkpoint resolver of notebooks, tasks, ``jetlab demo`` and ``jetlab data prepare``.

A ``checkpoint`` parameter is a path, a published name (``"omnilearned:small"``), ``"none"`` or
``"auto"`` (:mod:`jetlab.options`). ``"auto"`` searches ``$JETLAB_CHECKPOINT``, the foundation model
shipped inside jetlab (``jetlab/weights/jetlab-foundation``), notebook 01's output next to the
current run, then jetlab's cache; with ``train_if_missing=True`` it pretrains
a tiny PET once into the cache (file-locked, so concurrent notebooks pretrain once) so every
notebook runs offline on a fresh clone.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
from pathlib import Path

import torch

from jetlab.data.cache import resolve_cache_dir
from jetlab.model.checkpoint import CARD_FILE, FOUNDATION_MODEL, WEIGHTS_FILE, shipped_checkpoints
from jetlab.model.omnilearned_convert import resolve_omnilearned
from jetlab.options import DEFAULT_OUTPUT_ROOT, is_auto, is_none
from jetlab.train import CPU_RECIPE, pretrain

__all__ = [
    "CHECKPOINT_ENV",
    "DEFAULT_PRETRAIN_EPOCHS",
    "DEFAULT_PRETRAIN_JETS",
    "cached_checkpoint_dir",
    "find_checkpoint",
    "pretraining_notice",
    "resolve_checkpoint",
]

#: Environment variable that points every notebook at one pretrained checkpoint.
log = logging.getLogger(__name__)

CHECKPOINT_ENV = "JETLAB_CHECKPOINT"
#: Size of the fallback pretraining (jetclass-mini jets) and its epochs: a few minutes on 2 CPU cores, once.
DEFAULT_PRETRAIN_JETS = 4000
DEFAULT_PRETRAIN_EPOCHS = 8
#: bumped when the fallback pretraining recipe changes, so an older cached model is not reused
PRETRAIN_RECIPE_VERSION = 2
PRETRAIN_DATASET = "jetclass-mini"
#: Wall seconds per jet and epoch of the fallback pretraining (tiny PET, CPU recipe, 64 particles,
#: data already cached): 0.0105 from ``benchmarks/bench_first_run.py --json`` on the 2-core development
#: machine under load 3-5 (``benchmarks/results/first_run_pretraining.json``), an upper estimate since
#: PET got faster. Only for the "about N minutes" notice.
PRETRAIN_SECONDS_PER_JET_EPOCH = 0.0105
#: the notebook whose ``<output_dir>/checkpoint`` the others fine-tune
PRETRAINING_NOTEBOOK = "01_pretraining"


def _as_checkpoint_dir(path: Path) -> Path | None:
    """``path`` itself or its ``model/`` sub-directory (``pretrain`` output), if it is a checkpoint."""
    for cand in (path, path / "model"):
        if (cand / CARD_FILE).is_file() and (cand / WEIGHTS_FILE).is_file():
            return cand
    return None


def cached_checkpoint_dir(
    n_jets: int = DEFAULT_PRETRAIN_JETS, seed: int = 0, cache_dir: str | os.PathLike | None = None
) -> Path:
    """Where :func:`resolve_checkpoint` keeps its own tiny pretrained model."""
    name = f"pet-tiny-{PRETRAIN_DATASET}-n{int(n_jets)}-s{int(seed)}-r{PRETRAIN_RECIPE_VERSION}"
    return resolve_cache_dir(cache_dir) / "checkpoints" / name


def _search_roots(output_dir: str | os.PathLike | None) -> list[Path]:
    """Output roots whose ``01_pretraining/checkpoint`` is searched: the current run's parent (the
    run's siblings only, so a result never depends on the working directory), else ``jetlab_output/``
    in the working directory and in its parent."""
    if output_dir is not None:
        return [Path(output_dir).expanduser().resolve().parent]
    cwd = Path.cwd()
    return [cwd / DEFAULT_OUTPUT_ROOT, cwd.parent / DEFAULT_OUTPUT_ROOT]


def find_checkpoint(
    output_dir: str | os.PathLike | None = None,
    *,
    n_jets: int = DEFAULT_PRETRAIN_JETS,
    seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
) -> Path | None:
    """The first existing checkpoint of ``$JETLAB_CHECKPOINT``, the foundation model shipped inside
    jetlab (:data:`jetlab.model.FOUNDATION_MODEL`), notebook 01's output next to ``output_dir``
    (without one: under ``./jetlab_output`` or ``../jetlab_output``), the cached fallback model; else None."""
    env = os.environ.get(CHECKPOINT_ENV)
    if env:
        found = _as_checkpoint_dir(Path(env).expanduser())
        if found is None:
            raise FileNotFoundError(
                f"${CHECKPOINT_ENV}={env!r} is not a jetlab checkpoint directory "
                "(expected model_card.json and model.safetensors in it or in its model/)"
            )
        return found
    shipped = shipped_checkpoints().get(FOUNDATION_MODEL)
    if shipped is not None:
        return shipped
    cands = [root / PRETRAINING_NOTEBOOK / "checkpoint" for root in _search_roots(output_dir)]
    for cand in cands + [cached_checkpoint_dir(n_jets, seed, cache_dir)]:
        found = _as_checkpoint_dir(cand)
        if found is not None:
            return found
    return None


def pretraining_notice(n_jets: int, epochs: int, path: Path | None = None) -> str:
    """The line printed before the fallback pretraining starts (once; it is cached afterwards)."""
    from jetlab.data.cache import format_duration

    where = f" in {path}" if path is not None else ""
    seconds = PRETRAIN_SECONDS_PER_JET_EPOCH * int(n_jets) * int(epochs)
    return (
        f"jetlab: no pretrained checkpoint found; pretraining the fallback tiny PET once ({int(n_jets)} "
        f"{PRETRAIN_DATASET} jets x {int(epochs)} epochs), about {format_duration(seconds)} on this machine; "
        f"cached afterwards{where}"
    )


def _pretrain_fallback(n_jets: int, epochs: int, seed: int, cache_dir, device, progress: bool) -> Path:
    """Pretrain the tiny fallback PET into the cache once, under a file lock."""
    target = cached_checkpoint_dir(n_jets, seed, cache_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / (target.name + ".lock"), "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            found = _as_checkpoint_dir(target)
            if found is not None:  # another process pretrained it while we waited
                return found
            log.info(pretraining_notice(n_jets, epochs, target))
            work = target.parent / (target.name + ".work")
            pretrain(
                PRETRAIN_DATASET,
                work,
                model_config="tiny",
                epochs=int(epochs),
                n_jets=int(n_jets),
                seed=int(seed),
                device=device,
                progress=progress,
                max_particles=64,
                **CPU_RECIPE,
            )
            os.replace(work / "model", target)
            shutil.rmtree(work, ignore_errors=True)
            log.info("jetlab: pretrained checkpoint written to %s", target)
            return target
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def resolve_checkpoint(
    value: str | os.PathLike | None = "auto",
    output_dir: str | os.PathLike | None = None,
    *,
    train_if_missing: bool = False,
    n_jets: int = DEFAULT_PRETRAIN_JETS,
    epochs: int = DEFAULT_PRETRAIN_EPOCHS,
    seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
    device: str | torch.device = "auto",
    progress: bool = True,
) -> Path | None:
    """A ``checkpoint`` parameter as a checkpoint directory, or None for no checkpoint.

    * ``"none"`` / None: None (tasks then train from scratch only);
    * ``"omnilearned:small|medium|large"``: the published OmniLearned checkpoint, converted once
      (FileNotFoundError with the ``jetlab data fetch`` command when it has not been downloaded);
    * a path: a checkpoint directory (or one containing ``model/``), else FileNotFoundError naming it;
    * ``"auto"`` / ``""``: :func:`find_checkpoint` with ``output_dir`` (the current run's output
      directory: notebook 01's ``<output_dir>/../01_pretraining/checkpoint`` is found). If nothing is
      found: None, or with ``train_if_missing`` a tiny PET pretrained once on ``n_jets`` jetclass-mini
      jets for ``epochs`` epochs (:data:`jetlab.train.CPU_RECIPE`) into
      ``<cache>/checkpoints/pet-tiny-jetclass-mini-n{n_jets}-s{seed}-r{recipe}``.
    """
    if value is None or is_none(value):
        return None
    if isinstance(value, str) and value.strip().lower().startswith("omnilearned:"):
        return resolve_omnilearned(value, cache_dir=cache_dir)  # fetched + converted once, else says how
    if not is_auto(value):
        path = Path(value).expanduser()
        if not path.exists():
            raise FileNotFoundError(
                f"checkpoint {os.fspath(value)!r} does not exist; pass an existing "
                "checkpoint directory, 'auto' or 'none'"
            )
        found = _as_checkpoint_dir(path)
        if found is None:
            raise FileNotFoundError(
                f"checkpoint {os.fspath(value)!r} is not a jetlab checkpoint: expected "
                "model_card.json and model.safetensors in it (or in its model/ directory)"
            )
        return found
    found = find_checkpoint(output_dir, n_jets=n_jets, seed=seed, cache_dir=cache_dir)
    if found is not None or not train_if_missing:
        return found
    return _pretrain_fallback(n_jets, epochs, seed, cache_dir, device, progress)
