"""Helpers that every jetlab notebook calls at its top and bottom.

A notebook run must be reproducible and self-describing: :func:`setup` seeds every RNG, picks
the device, applies the plot style, and records the parameters together with the jetlab/torch
versions both as a visible cell output and in ``run_info.json`` of the run's output directory.
:func:`save_metrics` and :func:`save_figure` write results there atomically, so ``jetlab run``
(papermill) and interactive Jupyter sessions leave the same artefacts behind.

Typical use, right after the ``parameters`` cell (each parameter is written once, there)::

    import jetlab.notebook as jnb
    from jetlab.tasks.tagging import TaggingSettings, run_tagging
    run, settings = jnb.setup(globals(), TaggingSettings)
    results = run_tagging(dataset, settings)
    ...
    jnb.save_figure(fig, "roc")
    jnb.save_metrics({"auc": auc}, "metrics")
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, TypeVar, overload

import numpy as np
import torch

from jetlab import __version__
from jetlab._io import atomic_write_text, to_jsonable
from jetlab._logging import show_messages
from jetlab.options import DEFAULT_OUTPUT_ROOT
from jetlab.tasks.settings import TaskSettings
from jetlab.train.ddp import resolve_device

__all__ = [
    "RunInfo",
    "current",
    "notebook_parameters",
    "output_dir",
    "resolve_device",
    "save_figure",
    "save_metrics",
    "seed_everything",
    "setup",
    "to_jsonable",
]

#: Output directory used when neither ``setup`` nor ``output_dir`` was given one.
DEFAULT_OUTPUT_DIR = DEFAULT_OUTPUT_ROOT


@dataclass
class RunInfo:
    """What :func:`setup` decided for this run; ``to_dict`` is what lands in run_info.json."""

    parameters: dict[str, Any]
    seed: int
    device: torch.device
    output_dir: Path
    versions: dict[str, str] = field(default_factory=dict)
    started: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "parameters": to_jsonable(self.parameters),
            "seed": self.seed,
            "device": str(self.device),
            "output_dir": str(self.output_dir),
            "versions": dict(self.versions),
            "started": self.started,
        }


_CURRENT: RunInfo | None = None
_OUTPUT_DIR: Path | None = None


# --------------------------------------------------------------------------- primitives
def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) so a rerun gives the same numbers."""
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    os.environ["PYTHONHASHSEED"] = str(seed)  # inherited by worker subprocesses
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def _apply_style() -> None:
    from jetlab.plot import use_style  # matplotlib + mplhep: loaded when a run starts, not on import

    use_style()


def _versions(device) -> dict[str, str]:
    out = {
        "jetlab": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch.__version__,
    }
    if device is not None and getattr(device, "type", "") == "cuda":
        out["cuda"] = str(torch.version.cuda)
        out["gpu"] = torch.cuda.get_device_name(device)
    return out


# --------------------------------------------------------------------------- public API
def output_dir(path: str | os.PathLike | None = None) -> Path:
    """The run's output directory (created). With ``path``, make it the current one.

    Without a path: the directory set by :func:`setup` or a previous call, else ``jetlab_output``."""
    global _OUTPUT_DIR
    if path is not None:
        _OUTPUT_DIR = Path(path).expanduser()
    elif _OUTPUT_DIR is None:
        _OUTPUT_DIR = Path(DEFAULT_OUTPUT_DIR)
    _OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
    return _OUTPUT_DIR


#: names IPython puts in a notebook's namespace that are not parameters
_IPYTHON_NAMES = frozenset({"In", "Out", "exit", "quit", "get_ipython"})
_PLAIN = (type(None), bool, int, float, str, list, tuple, dict)

S = TypeVar("S", bound=TaskSettings)


def notebook_parameters(namespace: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters in a notebook's ``globals()`` when :func:`setup` runs: every public name bound to
    plain data (None, bool, numbers, strings, lists, tuples, dicts); modules, functions and IPython's
    own names are left out. A mapping that is not a module namespace is taken as it is."""
    if "__name__" not in namespace:
        return dict(namespace)
    return {
        k: v
        for k, v in namespace.items()
        if not k.startswith("_") and k not in _IPYTHON_NAMES and isinstance(v, _PLAIN)
    }


@overload
def setup(
    parameters: Mapping[str, Any],
    settings: None = None,
    seed: int | None = None,
    *,
    style: bool = ...,
    quiet: bool = ...,
) -> RunInfo: ...
@overload
def setup(
    parameters: Mapping[str, Any], settings: type[S], seed: int | None = None, *, style: bool = ..., quiet: bool = ...
) -> tuple[RunInfo, S]: ...
def setup(
    parameters: Mapping[str, Any],
    settings: type[TaskSettings] | None = None,
    seed: int | None = None,
    *,
    style: bool = True,
    quiet: bool = False,
) -> RunInfo | tuple[RunInfo, TaskSettings]:
    """Start a notebook run: seed, pick the device, style plots, record parameters + versions.

    ``parameters``: the notebook's ``globals()`` right after its ``parameters`` cell (the parameters
    are its plain-data names, :func:`notebook_parameters`) or a dict of them. ``seed`` defaults to
    ``parameters["seed"]`` (else 0), the device to ``parameters["device"]`` (else ``"auto"``) and the
    output directory to ``parameters["output_dir"]``. The record is printed (so it is kept in the
    executed notebook) and written to ``<output_dir>/run_info.json``.

    With a task's ``settings`` class (e.g. :class:`~jetlab.tasks.tagging.TaggingSettings`) it returns
    ``(run, settings)``: the settings made from the parameters that name its fields (checked for
    type), with the resolved device and output directory, so the next cell calls
    ``run_tagging(dataset, settings)`` without repeating a parameter.
    """
    global _CURRENT
    show_messages()  # the library's INFO messages (stages, results) appear in the cell output
    params = notebook_parameters(parameters)
    if seed is None:
        seed = params.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"setup: seed must be an int, got {type(seed).__name__} ({seed!r})")
    seed = int(seed)
    task_settings = settings.from_parameters(params, strict=False) if settings is not None else None
    seed_everything(seed)
    device = resolve_device(params.get("device", "auto"))
    if style:
        _apply_style()
    out = output_dir(params.get("output_dir") or None)
    info = RunInfo(
        parameters=params,
        seed=seed,
        device=device,
        output_dir=out.resolve(),
        versions=_versions(device),
        started=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    )
    atomic_write_text(out / "run_info.json", json.dumps(info.to_dict(), indent=2, sort_keys=True) + "\n")
    _CURRENT = info
    if not quiet:
        v = info.versions
        print(
            f"jetlab {v['jetlab']} | torch {v.get('torch', 'n/a')} | python {v['python']} | device {device} | seed {seed}"
        )
        print("parameters:")
        width = max((len(k) for k in params), default=0)
        for key, value in params.items():
            print(f"  {key:<{width}} = {value!r}")
        print(f"run info written to {out / 'run_info.json'}")
    if task_settings is None:
        return info
    return info, task_settings.replace(device=str(device), output_dir=str(info.output_dir))


def current() -> RunInfo | None:
    """The :class:`RunInfo` of the last :func:`setup` call in this process (None before)."""
    return _CURRENT


def save_metrics(metrics: Mapping[str, Any], name: str = "metrics") -> Path:
    """Write ``metrics`` as ``<output_dir>/<name>.json`` atomically and return the path.

    numpy/torch scalars are converted; non-finite numbers are stored as null."""
    if not isinstance(metrics, Mapping):
        raise TypeError(f"save_metrics: expected a dict of metrics, got {type(metrics).__name__}")
    path = output_dir() / (name if name.endswith(".json") else f"{name}.json")
    return atomic_write_text(path, json.dumps(to_jsonable(metrics), indent=2, sort_keys=True, allow_nan=False) + "\n")


def save_figure(fig, name: str, *, display: bool = True, dpi: int | None = None) -> Path:
    """Write ``fig`` as ``<output_dir>/<name>.png`` atomically and show it once in the notebook
    (:func:`jetlab.plot.save_figure`, relative to the run's output directory)."""
    from jetlab.plot import save_figure as _plot_save  # heavy (mplhep, hist): first figure only

    return _plot_save(fig, output_dir() / name, dpi=dpi, display=display)
