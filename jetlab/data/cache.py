"""A process-safe cache of generated mini datasets.

``dataset_file("jetclass-mini", 20_000)`` returns ``$JETLAB_CACHE/jetclass-mini-n20000-s0.h5``
(default cache dir ``~/.cache/jetlab``), generating it first if it is missing or unreadable.
An exclusive ``fcntl`` lock on a side file makes concurrent callers (notebooks, DDP ranks,
pytest workers) generate the file once; the file itself appears atomically (temp + rename in
:func:`jetlab.data.schema.write_jetsets`), so nobody ever sees a partial file.

A valid header is not enough: a damaged data chunk (disk error, a crash on a filesystem without
data journaling) only shows when the arrays are read. So after generating, the SHA-256 of the
file is written (atomically) to ``<file>.sha256`` in ``sha256sum`` format, and a cached file is
only handed out when that marker exists and matches; otherwise it is regenerated.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

from .._io import atomic_write_text
from .download import file_checksum
from .schema import SchemaError, inspect_file

__all__ = [
    "dataset_file",
    "resolve_cache_dir",
    "cached_name",
    "estimate_seconds",
    "format_duration",
    "generation_notice",
]

#: Wall seconds per row of each generator in one worker process, Pythia initialisation included:
#: the median of three ``python benchmarks/bench_first_run.py`` runs on the 2-core development
#: machine, shared and loaded (see benchmarks/README.md). Only for the "about N minutes" notice.
log = logging.getLogger(__name__)

SECONDS_PER_ROW = {"jetclass-mini": 0.052, "toptag-mini": 0.064, "zjets-mini": 0.037, "lhco-mini": 0.046}
# jetclass-mini's five extra classes (``classes="all"``), per jet against Hbb in one run (100 jets a
# class, one process, 2026-12-05, lightly loaded): Hbb 0.023 s, Hcc 0.024, Hgg 0.023, H4q 0.025,
# Hqql 0.032, Tbl 0.035 (Tbqq 0.030, Wqq 0.021, Zqq 0.023): the ten-class mix costs about 1.1x the
# five-class rate above. The leptonic two need the visible-pT process veto: without it 0.036 / 0.047 s.
# zjets-mini's z_g stress test keeps about 65% of the 'data' events: 'data' costs about 1.5x 'sim'
# (4000 events per setup: 183 s without it, 2 workers, loaded), so the mean row rate is about 1.25x.
#: what a row is, per generator (default: jets)
_ROW_NAMES = {"zjets-mini": "events per generator setup", "lhco-mini": "dijet events"}


def resolve_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """The cache directory: argument, else ``$JETLAB_CACHE``, else ``~/.cache/jetlab``."""
    if cache_dir is not None:
        return Path(cache_dir)
    env = os.environ.get("JETLAB_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "jetlab"


def cached_name(name: str, n_jets: int, seed: int = 0, **options: Any) -> str:
    """File name of a cached dataset; non-default options become part of the name."""
    extra = "".join(f"-{k}{_fmt(v)}" for k, v in sorted(options.items()) if v is not None)
    return f"{name}-n{int(n_jets)}-s{int(seed)}{extra}.h5"


def _fmt(v: Any) -> str:
    if isinstance(v, (list, tuple)):
        return "+".join(str(x) for x in v)
    return str(v)


def checksum_path(path: Path) -> Path:
    """The completion marker beside a cached file: its SHA-256, ``sha256sum`` format."""
    return path.with_name(path.name + ".sha256")


def _write_checksum(path: Path) -> None:
    atomic_write_text(checksum_path(path), f"{file_checksum(path, 'sha256')}  {path.name}\n")


def _header_ok(path: Path, name: str, n_jets: int) -> bool:
    """The file is a ``name`` file of ``n_jets`` rows made with today's Pythia settings.

    The settings check makes a change to a generator's samples (a new tune, say, or zjets-mini's
    z_g stress test) regenerate the cached file instead of silently serving the old physics under
    the same name; the expected record is the one today's generator writes for the file's options.
    """
    from jetlab.simulator.generate import samples_record

    try:
        meta = inspect_file(path)
    except (SchemaError, OSError, KeyError, ValueError):
        return False
    settings = samples_record(name, meta.info.get("options") or {})
    return meta.dataset == name and meta.n_rows == int(n_jets) and meta.info.get("samples") == settings


def _valid(path: Path, name: str, n_jets: int) -> bool:
    """Header matches the request and the file's SHA-256 matches its completion marker."""
    if not _header_ok(path, name, n_jets):
        return False
    try:
        expected = checksum_path(path).read_text(encoding="utf-8").split()[0]
        return file_checksum(path, "sha256") == expected
    except (OSError, UnicodeDecodeError, IndexError):  # marker missing, unreadable or empty
        return False


def estimate_seconds(name: str, n_jets: int, workers: int | None = None, **options: Any) -> float:
    """Expected wall time of generating ``n_jets`` rows of ``name``: the measured
    :data:`SECONDS_PER_ROW` times the rows, divided by the processes that can work at once
    (``workers``, default all cores, but at most one per chunk)."""
    from jetlab.simulator.generate import _check, _default_workers, plan_chunks

    opts = _check(name, int(n_jets), options)
    chunks = plan_chunks(name, int(n_jets), 0, opts)
    parallel = max(1, min(_default_workers() if workers is None else int(workers), len(chunks)))
    return SECONDS_PER_ROW.get(name, max(SECONDS_PER_ROW.values())) * int(n_jets) / parallel


def format_duration(seconds: float) -> str:
    """An estimate as the first-run notices print it: tens of seconds below 90 s, else whole minutes."""
    if seconds < 90:
        return f"{max(10, int(round(seconds, -1)))} s"
    return f"{int(round(seconds / 60))} minutes"


def generation_notice(
    name: str, n_jets: int, workers: int | None = None, path: Path | None = None, **options: Any
) -> str:
    """The line printed before a dataset is generated (once; it is cached afterwards)."""
    from jetlab.simulator.generate import _default_workers

    w = _default_workers() if workers is None else int(workers)
    where = f" in {path}" if path is not None else ""
    return (
        f"jetlab: generating {name}, {int(n_jets)} {_ROW_NAMES.get(name, 'jets')}, about "
        f"{format_duration(estimate_seconds(name, n_jets, workers, **options))} on this machine "
        f"({w} worker{'s' if w != 1 else ''}); cached afterwards{where}"
    )


def dataset_file(
    name: str,
    n_jets: int,
    seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
    workers: int | None = None,
    *,
    progress: bool = True,
    **options: Any,
) -> Path:
    """Path of the cached mini dataset ``name`` with ``n_jets`` rows, generated if needed.

    A present file that is not a valid jetlab file for this request (foreign, truncated, wrong
    size, or not matching its ``.sha256`` completion marker, e.g. a corrupt data chunk) is
    regenerated. The result does not depend on ``workers`` (see
    :func:`jetlab.simulator.generate.generate`), so it is not part of the file name.
    """
    import fcntl

    from jetlab.simulator.generate import GENERATORS, generate

    if name not in GENERATORS:
        raise ValueError(f"unknown generated dataset {name!r}; valid names: {sorted(GENERATORS)}")
    if isinstance(n_jets, bool) or int(n_jets) != n_jets or n_jets <= 0:
        raise ValueError(f"{name}: n_jets must be a positive integer, got {n_jets!r}")
    directory = resolve_cache_dir(cache_dir)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / cached_name(name, n_jets, seed, **options)
    if _valid(path, name, n_jets):
        return path
    lock = path.with_name(path.name + ".lock")
    with open(lock, "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            # somebody else may have produced it while we waited for the lock
            if _valid(path, name, n_jets):
                return path
            # marker first: a crash from here on leaves a file without one, which is regenerated
            checksum_path(path).unlink(missing_ok=True)
            path.unlink(missing_ok=True)
            log.info(generation_notice(name, n_jets, workers, path, **options))
            start = time.monotonic()
            generate(name, int(n_jets), path, workers=workers, seed=seed, progress=progress, **options)
            if not _header_ok(path, name, n_jets):  # pragma: no cover - defensive
                raise SchemaError(f"{path}: generated file is not a valid {name} file with {n_jets} rows")
            _write_checksum(path)
            took = int(time.monotonic() - start)
            log.info("jetlab: generated %s in %d:%02d", name, took // 60, took % 60)  # the next stage begins
            return path
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
