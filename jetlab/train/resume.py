"""Resumable trainer state: the Trainer's checkpoint files (atomic save, checked load with
``weights_only=True``) and the RNG states a bit-identical resume restores. The loop that writes and
reads them is :mod:`jetlab.train.trainer`; a model's own checkpoint (weights + card) is
:mod:`jetlab.model.checkpoint`."""

from __future__ import annotations

import os
import pickle
import random
import zipfile
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from jetlab._io import atomic_path

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_VERSION",
    "load_checkpoint",
    "rng_state",
    "save_checkpoint",
    "set_rng_state",
]

CHECKPOINT_FORMAT = "jetlab-trainer-checkpoint"
CHECKPOINT_VERSION = 1


def save_checkpoint(state: Mapping[str, Any], path: str | os.PathLike) -> Path:
    """``torch.save`` to a temp file in the same directory, then ``os.replace`` (never half-written)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(dict(state), tmp)
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Load a trainer checkpoint, checking its format marker.

    A truncated, empty or otherwise damaged file is a ``ValueError`` naming it (torch.load alone
    raises a bare ``OSError``/``EOFError``/``UnpicklingError`` that does not say which file).
    Loaded with ``weights_only=True``: a checkpoint holds tensors, numbers, strings and containers
    only, so a file someone else wrote cannot run code when a run resumes from it.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such trainer checkpoint")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except (PermissionError, IsADirectoryError):
        raise
    except pickle.UnpicklingError as exc:
        if "weights_only" not in str(exc) and "Weights only load failed" not in str(exc):
            raise ValueError(
                f"{path}: truncated or corrupt trainer checkpoint (UnpicklingError: {exc}); "
                "delete it to start over, or resume from another checkpoint"
            ) from exc
        raise ValueError(
            f"{path}: refused to load: the trainer checkpoint holds objects other than tensors, "
            f"numbers, strings and containers, which could run code ({str(exc).splitlines()[0]})"
        ) from exc
    except (OSError, EOFError, RuntimeError, zipfile.BadZipFile) as exc:
        raise ValueError(
            f"{path}: truncated or corrupt trainer checkpoint ({type(exc).__name__}: {exc}); "
            "delete it to start over, or resume from another checkpoint"
        ) from exc
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not a jetlab trainer checkpoint (missing format={CHECKPOINT_FORMAT!r})")
    if state.get("version", 0) > CHECKPOINT_VERSION:
        raise ValueError(
            f"{path}: checkpoint version {state['version']} is newer than this jetlab reads ({CHECKPOINT_VERSION})"
        )
    return state


def rng_state() -> dict:
    """Python, numpy, torch (and initialised CUDA) RNG states, loadable with ``weights_only=True``."""
    # numpy's state as a tensor + plain numbers, so the checkpoint loads with weights_only=True
    state = np.random.get_state(legacy=True)
    assert isinstance(state, tuple)  # legacy=True: (kind, keys, pos, has_gauss, cached_gaussian)
    kind, keys, pos, has_gauss, cached = state
    numpy_state = {
        "kind": kind,
        "keys": torch.from_numpy(keys.astype(np.int64)),
        "pos": int(pos),
        "has_gauss": int(has_gauss),
        "cached_gaussian": float(cached),
    }
    s = {"python": random.getstate(), "numpy": numpy_state, "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        s["cuda"] = torch.cuda.get_rng_state_all()
    return s


def set_rng_state(s: Mapping) -> None:
    """Restore what :func:`rng_state` captured."""
    random.setstate(s["python"])
    n = s["numpy"]
    np.random.set_state(
        (n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
    )
    torch.set_rng_state(s["torch"])
    if "cuda" in s and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(s["cuda"])
