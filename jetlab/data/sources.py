"""One dataset resolver: a ``dataset`` parameter to the schema files a task reads.

Every task, the quickstart, ``jetlab pretrain`` and ``jetlab data prepare`` go through
:func:`resolve`, so a name means the same thing everywhere:

* a **generator** name (``"toptag-mini"``, ...): generated once with ``n_jets`` jets and cached
  (:func:`jetlab.data.cache.dataset_file`);
* a **published dataset** name (a manifest, ``"atlas_toptag"``, ...): the files ``jetlab data fetch``
  put under ``$JETLAB_DATA/<name>``, converted once per raw file to the schema
  (``<data dir>/schema/<split>/<raw file>.h5``, atomic, redone only when the raw file is newer),
  with the publisher's own splits (train/val/test, one per generator for Z+jets, ...);
* a **schema file**, a **directory** of schema files, a **list** of schema files, or a mapping
  ``{split: file(s)}``.

The result, :class:`DataSource`, reads every file of a split in order (``read``), or streams it
in bounded memory (``stream``) when a dataset does not fit in memory (JetClass: 100M jets).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jetlab.data.cache import dataset_file
from jetlab.data.download import data_dir
from jetlab.data.manifests import list_datasets
from jetlab.data.readers import convert, raw_files
from jetlab.data.readers.files import RAW_FILE_DATASETS
from jetlab.data.schema import JetSet, SchemaError, inspect_file, read_jetset
from jetlab.simulator.detector import JetAcceptance, get_detector
from jetlab.simulator.generate import GENERATORS

__all__ = ["DataSource", "DatasetNotReadyError", "acceptance_of", "dataset_names", "resolve", "schema_dir"]

log = logging.getLogger(__name__)

PathLike = str | os.PathLike
#: the split name of a source that has no split of its own (a generated sample, a single file)
ALL = "all"


class DatasetNotReadyError(FileNotFoundError):
    """A published dataset is named but its files are not on disk yet (the message says what to run)."""


@dataclass(frozen=True)
class DataSource:
    """Schema files of one dataset, by split, and how to read them.

    ``splits`` maps a split name to its schema files in reading order; ``kind`` is
    ``"generated"``, ``"published"`` or ``"files"``.
    """

    name: str
    kind: str
    splits: dict[str, tuple[Path, ...]]
    label_names: tuple[str, ...]
    collections: tuple[str, ...]
    info: dict[str, Any] = field(default_factory=dict)

    # ------------------------------------------------------------------ structure
    def files(self, split: str | None = None) -> tuple[Path, ...]:
        """The files of ``split`` (None: the only split, or all splits in order)."""
        if split is None:
            return tuple(p for files in self.splits.values() for p in files)
        if split not in self.splits:
            raise KeyError(f"dataset {self.name!r} has no split {split!r} (splits: {list(self.splits)})")
        return self.splits[split]

    def has_split(self, split: str) -> bool:
        return split in self.splits

    def n_rows(self, split: str | None = None) -> int:
        """Rows (jets or events) in ``split``, from the file headers."""
        return sum(inspect_file(p).n_rows for p in self.files(split))

    @property
    def sources(self) -> tuple[str, ...]:
        return tuple(str(p) for p in self.files())

    def _collection(self, collection: str | None) -> str:
        if collection is not None:
            if collection not in self.collections:
                raise SchemaError(f"dataset {self.name!r} has collections {list(self.collections)}, not {collection!r}")
            return collection
        if "jets" in self.collections:
            return "jets"
        if len(self.collections) == 1:
            return self.collections[0]
        raise SchemaError(f"dataset {self.name!r} holds collections {list(self.collections)}; pass collection=...")

    # ------------------------------------------------------------------ reading
    def read(
        self, collection: str | None = None, *, split: str | None = None, start: int = 0, stop: int | None = None
    ) -> JetSet:
        """Rows ``[start, stop)`` of ``collection`` over all files of ``split``, in file order."""
        coll = self._collection(collection)
        parts, offset = [], 0
        stop = None if stop is None or stop < 0 else int(stop)
        for path in self.files(split):
            n = inspect_file(path).n_rows
            a, b = max(start - offset, 0), n if stop is None else min(stop - offset, n)
            if b > a:
                parts.append(read_jetset(path, coll, a, b))
            offset += n
            if stop is not None and offset >= stop:
                break
        if not parts:
            raise SchemaError(
                f"dataset {self.name!r}: rows [{start}, {stop}) of split {split!r} are empty "
                f"({offset} rows in {len(self.files(split))} files)"
            )
        return parts[0] if len(parts) == 1 else JetSet.concatenate(parts)

    def sample(self, n: int, collection: str | None = None, *, split: str | None = None) -> JetSet:
        """About ``n`` rows taken evenly from the start of every file of ``split``.

        Published datasets often hold one class per file (JetClass): the first ``n`` rows would be
        one class, a sample across files is not. Used for standardizers, validation and jet-feature
        samples of datasets too large to read whole.
        """
        files = self.files(split)
        per_file = max(1, -(-int(n) // len(files)))
        coll = self._collection(collection)
        parts = []
        for path in files:
            m = min(per_file, inspect_file(path).n_rows)
            if m > 0:
                parts.append(read_jetset(path, coll, 0, m))
        if not parts:
            raise SchemaError(f"dataset {self.name!r}: split {split!r} has no rows")
        return parts[0] if len(parts) == 1 else JetSet.concatenate(parts)

    def read_all(self, *, split: str | None = None, start: int = 0, stop: int | None = None) -> dict[str, JetSet]:
        """Every collection of ``split``, row-aligned."""
        return {c: self.read(c, split=split, start=start, stop=stop) for c in self.collections}

    def acceptance(self) -> JetAcceptance:
        """Where this dataset's particles can lie (its detector model and jet radius); see :func:`acceptance_of`."""
        return _acceptance(self.name, self.info)

    def stream(self, collection: str | None = None, *, split: str | None = None, **kwargs: Any):
        """A :class:`jetlab.data.torchdata.StreamingJetDataset` over the files of ``split``."""
        from jetlab.data.torchdata import StreamingJetDataset  # torch: only where streaming is asked for

        return StreamingJetDataset(list(self.files(split)), self._collection(collection), **kwargs)


# ---------------------------------------------------------------------- resolution
def schema_dir(name: str, root: PathLike | None = None) -> Path:
    """Where the converted schema files of published dataset ``name`` live."""
    return data_dir(name, root) / "schema"


def _from_files(
    splits: Mapping[str, Sequence[Path]],
    kind: str = "files",
    name: str | None = None,
    info: Mapping[str, Any] | None = None,
) -> DataSource:
    headers = {}
    for files in splits.values():
        for p in files:
            if not p.is_file():
                raise FileNotFoundError(f"dataset file {p} does not exist")
            headers[p] = inspect_file(p)  # SchemaError names a foreign file
    first = next(iter(headers.values()))
    for p, h in headers.items():
        if h.collections != first.collections:
            raise SchemaError(
                f"{p}: collections {list(h.collections)} differ from {first.path}'s {list(first.collections)}"
            )
    return DataSource(
        name or first.dataset,
        kind,
        {s: tuple(f) for s, f in splits.items()},
        tuple(first.label_names),
        tuple(first.collections),
        dict(info or first.info or {}),
    )


def _schema_files_in(directory: Path) -> list[Path]:
    files = sorted(p for p in directory.iterdir() if p.suffix in (".h5", ".hdf5") and p.is_file())
    if not files:
        raise FileNotFoundError(f"dataset directory {directory} holds no .h5 schema files")
    return files


def _as_paths(value: PathLike | Sequence[PathLike]) -> list[Path]:
    if isinstance(value, (str, os.PathLike)):
        p = Path(value).expanduser()
        return _schema_files_in(p) if p.is_dir() else [p]
    return [q for v in value for q in _as_paths(v)]


#: splits that hold per-jet summary features rather than particles (LHCO's ``.features.h5``): read
#: with :func:`jetlab.data.readers.read_lhco_features`, not converted to the particle schema
FEATURE_SPLIT_SUFFIX = "features"


def _convert_one(name: str, src: Path, dest: Path) -> Path:
    return convert(name, [src], dest)


def _convert_published(
    name: str, root: PathLike | None, progress: bool, workers: int | None
) -> dict[str, tuple[Path, ...]]:
    """Convert every fetched raw file of ``name`` that has no up-to-date schema file; return the splits.

    One schema file per raw file: conversion resumes file by file after an interruption, runs on
    ``workers`` processes, and a streamed split reads many files in any order.
    """
    raw_dir = data_dir(name, root)
    try:
        raw = raw_files(name, raw_dir)
    except FileNotFoundError:
        raw = {}
    raw = {s: list(f) for s, f in raw.items() if f and not s.endswith(FEATURE_SPLIT_SUFFIX)}
    if not raw:
        raise DatasetNotReadyError(
            f"dataset {name!r} is not on disk: no raw files in {raw_dir}. Run\n"
            f"  jetlab data fetch {name} --yes     (`jetlab data list` shows the size first)\n"
            f"and read it again: each raw file is converted to jetlab's schema once, the first time a task reads "
            f"it (or ahead of time: jetlab data convert {name} {raw_dir}/<files> --out "
            f"{schema_dir(name, root)}/<split>/<file>.h5). Set JETLAB_DATA to use another data directory."
        )
    plan = [
        (split, src, schema_dir(name, root) / split / (src.name.split(".")[0] + ".h5"))
        for split, files in raw.items()
        for src in files
    ]
    by_dest: dict[Path, Path] = {}
    for _, src, dest in plan:  # one schema file per raw file: two raw files may not share one
        if by_dest.setdefault(dest, src) != src:
            raise ValueError(
                f"dataset {name!r}: raw files {by_dest[dest]} and {src} would both convert to {dest}; "
                f"a file listed twice is read twice (remove the stray copy)"
            )
    todo = [(src, dest) for _, src, dest in plan if not dest.is_file() or dest.stat().st_mtime < src.stat().st_mtime]
    if todo and progress:
        log.info(
            "jetlab: converting %d raw file(s) of %s to jetlab's schema under %s (once; %d process(es))",
            len(todo),
            name,
            schema_dir(name, root),
            workers or 1,
        )
    if workers and workers > 1 and len(todo) > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(min(workers, len(todo))) as pool:
            for i, dest in enumerate(pool.map(_convert_one, [name] * len(todo), *zip(*todo)), 1):
                if progress:
                    log.info("jetlab: converted %d/%d: %s", i, len(todo), dest.name)
    else:
        for i, (src, dest) in enumerate(todo, 1):
            if progress:
                log.info("jetlab: converting %d/%d: %s", i, len(todo), src.name)
            _convert_one(name, src, dest)
    out: dict[str, tuple[Path, ...]] = {}
    for split, _, dest in plan:
        out[split] = out.get(split, ()) + (dest,)
    return out


def _acceptance(name: str, info: Mapping[str, Any]) -> JetAcceptance:
    spec = GENERATORS.get(name)
    detector = info.get("detector", spec.detector.name if spec else None)
    radius = info.get("jet_radius", spec.jet_radius if spec else None)  # files written before 0.1 lack it
    if detector is None or radius is None:
        raise ValueError(
            f"dataset {name!r}: no detector model is known for it (only jetlab's generated datasets "
            f"{sorted(GENERATORS)} name theirs); pass a jetlab.simulator.detector.JetAcceptance yourself"
        )
    return JetAcceptance(get_detector(detector), float(radius))


def acceptance_of(dataset: PathLike) -> JetAcceptance:
    """The :class:`~jetlab.simulator.detector.JetAcceptance` of a generator name or a generated schema file.

    Why: generated particles must stay where the dataset's detector can put them, and a
    checkpoint remembers only the name of the data it was trained on. Published datasets come
    from detectors jetlab does not model: a ``ValueError`` says so.
    """
    name = os.fspath(dataset)
    if name in GENERATORS:
        return _acceptance(name, {})
    path = Path(name).expanduser()
    if path.is_file():
        header = inspect_file(path)
        return _acceptance(header.dataset, header.info)
    return _acceptance(name, {})


def dataset_names() -> tuple[list[str], list[str]]:
    """(generator names, published dataset names): the names :func:`resolve` knows."""
    return sorted(GENERATORS), sorted(n for n in list_datasets() if n in RAW_FILE_DATASETS)


def resolve(
    dataset: PathLike | Sequence[PathLike] | Mapping[str, PathLike | Sequence[PathLike]],
    *,
    n_jets: int | None = None,
    seed: int = 0,
    cache_dir: PathLike | None = None,
    data_root: PathLike | None = None,
    workers: int | None = None,
    progress: bool = True,
    **generator_options: Any,
) -> DataSource:
    """Resolve a ``dataset`` parameter (see the module docstring) to a :class:`DataSource`.

    ``n_jets`` is the sample size to generate for a generator name (required there); readers cap
    rows themselves (``DataSource.read(stop=...)``). ``generator_options`` go to the generator
    (e.g. ``signal_fraction`` for ``lhco-mini``) and are ignored for data that is not generated.
    ``data_root`` overrides ``$JETLAB_DATA``; ``workers`` processes generate a sample or convert
    the raw files of a published dataset (one file per process).
    """
    if isinstance(dataset, Mapping):
        return _from_files({str(s): _as_paths(v) for s, v in dataset.items()})
    if not isinstance(dataset, (str, os.PathLike)):
        return _from_files({ALL: _as_paths(dataset)})
    name = os.fspath(dataset)
    if name in GENERATORS:
        if n_jets is None or int(n_jets) <= 0:
            raise ValueError(f"dataset {name!r} is generated: pass n_jets > 0 (how many to generate), got {n_jets}")
        path = dataset_file(
            name, int(n_jets), seed=seed, cache_dir=cache_dir, workers=workers, progress=progress, **generator_options
        )
        return _from_files({ALL: [Path(path)]}, kind="generated", name=name)
    path = Path(name).expanduser()
    if path.exists():
        return _from_files({ALL: _as_paths(path)})
    published = dataset_names()[1]
    if name in published:
        splits = _convert_published(name, data_root, progress, workers)
        return _from_files(splits, kind="published", name=name)
    if os.sep in name or path.suffix in (".h5", ".hdf5"):
        raise FileNotFoundError(f"dataset file {path} does not exist")
    raise ValueError(
        f"dataset {name!r} is neither a generator ({', '.join(sorted(GENERATORS))}), a published dataset "
        f"({', '.join(published)}) nor an existing schema file or directory"
    )
