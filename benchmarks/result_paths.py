"""Paths as a committed benchmark result records them: never a machine's temporary directory.

A raw result under ``benchmarks/results/`` is read on other machines, so a path in it says where
the file is relative to something the reader also has: the repository (``benchmarks/results/x.json``),
or, for a file outside it (a scratch checkpoint, a ``--out`` in a temporary directory),
``<outside repo>/`` and the path below the temporary or home directory it was in
(``/tmp/cpuquick/01_pretraining/checkpoint`` -> ``<outside repo>/cpuquick/01_pretraining/checkpoint``).
Relative paths and names that are not paths (``"auto"``) are kept as given.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
OUTSIDE = "<outside repo>"
#: the deepest path kept below an unknown directory outside the repository
_KEEP_PARTS = 3


def _bases() -> list[Path]:
    """Directories whose own location says nothing to another machine, most specific first."""
    bases = [Path(tempfile.gettempdir()), Path("/tmp"), Path("/var/tmp"), Path.home()]
    for var in ("JETLAB_CACHE", "JETLAB_OUTPUT", "OUT"):
        if os.environ.get(var):
            bases.insert(0, Path(os.environ[var]))
    return [b.resolve() for b in bases]


def portable_path(value: Any, named: dict[str, Path] | None = None) -> Any:
    """``value`` as a result file should hold it: a :class:`~pathlib.Path` or absolute path string
    becomes ``<name>/...`` below one of the ``named`` folders (e.g. ``{"<out>": outdir}``: the run's
    own output, which its archive holds), repo-relative inside the repository and
    ``<outside repo>/...`` outside it; anything else is returned unchanged (``None``, numbers,
    ``"auto"``, relative paths)."""
    if not isinstance(value, (str, os.PathLike)):
        return value
    text = os.fspath(value)
    if not os.path.isabs(text):
        return text if isinstance(value, str) else Path(text).as_posix()
    path = Path(text).resolve()
    for name, folder in (named or {}).items():
        if path == folder.resolve():
            return name
        if path.is_relative_to(folder.resolve()):
            return f"{name}/{path.relative_to(folder.resolve()).as_posix()}"
    if path.is_relative_to(REPO):
        return path.relative_to(REPO).as_posix() or "."
    for base in _bases():
        if path.is_relative_to(base) and path != base:
            return f"{OUTSIDE}/{path.relative_to(base).as_posix()}"
    return f"{OUTSIDE}/{'/'.join(path.parts[-_KEEP_PARTS:])}"


def portable_args(args: Any) -> dict[str, Any]:
    """An ``argparse.Namespace`` (or dict) with every path in it made :func:`portable_path`; lists
    are converted item by item."""
    items = vars(args) if not isinstance(args, dict) else args
    return {
        k: [portable_path(x) for x in v] if isinstance(v, (list, tuple)) else portable_path(v) for k, v in items.items()
    }
