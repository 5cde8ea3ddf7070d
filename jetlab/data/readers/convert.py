"""Convert public datasets to one jetlab schema file, chunk by chunk (files larger than memory)."""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np

from jetlab._io import atomic_path

from ..schema import JET_FEATURES, JetSet, SchemaError, check_collections, write_header
from ._common import DroppedEventsWarning, PathLike, existing_file
from .aspen import ASPEN_LABELS, aspen_files, iter_aspen
from .atlas import ATLAS_LABELS, atlas_files, iter_atlas_toptag
from .jetclass import JETCLASS_LABELS, _as_paths, iter_jetclass
from .lhco import LHCO_LABELS, lhco_num_events, read_lhco
from .omnifold import generator_name, iter_omnifold, omnifold_files

_ROW_CHUNK = 1024  # HDF5 chunk rows for per-particle arrays (same as write_jetsets)


# --------------------------------------------------------------------- writer
def write_jetsets_chunked(
    path: PathLike,
    chunks: Iterable[Mapping[str, JetSet]],
    *,
    dataset: str,
    label_names: Iterable[str],
    info: Mapping | None = None,
    compression: str | None = "gzip",
) -> Path:
    """Append row-aligned ``{collection: JetSet}`` chunks into one schema file, atomically.

    Same layout as :func:`jetlab.data.schema.write_jetsets` but with resizable datasets, so
    only one chunk is in memory at a time. Every chunk must have the same collections,
    particle features, ``max_particles`` and ``extra`` keys. The file appears at ``path`` only
    after the last chunk (temp file + ``os.replace``). ``info`` and ``label_names`` are read
    after the last chunk, so a generator feeding ``chunks`` may still fill them in.
    """
    import h5py

    path = Path(path)
    kw = dict(compression=compression) if compression else {}
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        layout: dict[str, tuple] | None = None
        n_total = 0
        for i, chunk in enumerate(chunks):
            check_collections(chunk, f"{path} (chunk {i})")
            this = _chunk_layout(chunk)
            if layout is None:
                layout = this
                _create_resizable_groups(f, chunk, kw)
            elif this != layout:
                raise SchemaError(f"{path}: chunk {i} has a different layout {this} than the first chunk {layout}")
            n = len(next(iter(chunk.values())))
            if n == 0:
                continue
            _append_rows(f, chunk, n_total, n)
            n_total += n
        if layout is None:
            raise SchemaError(f"{path}: nothing to write (no chunks)")
        write_header(f, dataset=dataset, label_names=label_names, collections=list(layout), info=info)
    return path


def _chunk_layout(chunk: Mapping[str, JetSet]) -> dict[str, tuple]:
    """What every chunk must share with the first: per collection its particle features,
    ``max_particles`` and the names, row shapes and dtypes of its ``extra`` arrays."""
    return {
        c: (
            js.particle_features,
            js.max_particles,
            tuple(sorted((k, v.shape[1:], v.dtype.str) for k, v in js.extra.items())),
        )
        for c, js in chunk.items()
    }


def _create_resizable_groups(f, chunk: Mapping[str, JetSet], kw: dict) -> None:
    """One group per collection with empty datasets that grow along rows (the first chunk's layout)."""
    for c, js in chunk.items():
        g = f.create_group(c)
        g.attrs["particle_features"] = json.dumps(list(js.particle_features))
        g.attrs["jet_features"] = json.dumps(list(JET_FEATURES))
        p, fdim = js.max_particles, len(js.particle_features)
        g.create_dataset(
            "particles",
            shape=(0, p, fdim),
            maxshape=(None, p, fdim),
            dtype=np.float32,
            chunks=(_ROW_CHUNK, p, fdim),
            **kw,
        )
        g.create_dataset("mask", shape=(0, p), maxshape=(None, p), dtype=bool, chunks=(_ROW_CHUNK, p), **kw)
        g.create_dataset(
            "jets",
            shape=(0, len(JET_FEATURES)),
            maxshape=(None, len(JET_FEATURES)),
            dtype=np.float32,
            chunks=True,
        )
        g.create_dataset("labels", shape=(0,), maxshape=(None,), dtype=np.int64, chunks=True)
        g.create_dataset("weights", shape=(0,), maxshape=(None,), dtype=np.float32, chunks=True)
        if js.extra:
            e = g.create_group("extra")
            for k, v in js.extra.items():
                e.create_dataset(
                    k, shape=(0,) + v.shape[1:], maxshape=(None,) + v.shape[1:], dtype=v.dtype, chunks=True
                )


def _append_rows(f, chunk: Mapping[str, JetSet], n_total: int, n: int) -> None:
    """Grow every dataset by the chunk's ``n`` rows and write them after the ``n_total`` already there."""
    for c, js in chunk.items():
        g = f[c]
        arrays = {
            "particles": js.particles,
            "mask": js.mask,
            "jets": js.jets,
            "labels": js.labels,
            "weights": js.weights,
        }
        arrays.update({f"extra/{k}": v for k, v in js.extra.items()})
        for name, arr in arrays.items():
            d = g[name]
            d.resize(n_total + n, axis=0)
            d[n_total : n_total + n] = arr


# ------------------------------------------------------------------- datasets
@dataclass(frozen=True)
class DatasetSpec:
    """How to turn one public dataset's files into schema chunks."""

    name: str
    max_particles: int
    #: (sources, max_particles, chunk_size, info, kwargs) -> iterator of {collection: JetSet}
    chunks: Callable[..., Iterator[dict[str, JetSet]]]
    label_names: tuple[str, ...] | None  # None: decided by the sources (OmniFold generators)
    #: cap on rows per chunk: an LHCO row is 2101 float64 (17 kB) before clustering
    max_chunk: int = 100_000


def _single(it: Iterator[JetSet]) -> Iterator[dict[str, JetSet]]:
    for js in it:
        yield {"jets": js}


def _jetclass_chunks(sources, max_particles, chunk_size, info, kw):
    yield from _single(iter_jetclass(sources, max_particles, chunk_size, **kw))


def _atlas_chunks(sources, max_particles, chunk_size, info, kw):
    yield from _single(iter_atlas_toptag(sources, max_particles, chunk_size, **kw))


def _aspen_chunks(sources, max_particles, chunk_size, info, kw):
    yield from _single(iter_aspen(sources, max_particles, chunk_size, **kw))


def _omnifold_chunks(sources, max_particles, chunk_size, info, kw):
    generators: list[str] = info.setdefault("generators", [])
    for s in sources:
        gen = generator_name(s)
        if gen not in generators:
            generators.append(gen)
        yield from iter_omnifold(s, max_particles, chunk_size, label=generators.index(gen), **kw)


def _lhco_chunks(sources, max_particles, chunk_size, info, kw):
    info.setdefault("n_dropped_events", 0)
    for s in sources:
        n = lhco_num_events(s)
        for lo in range(0, n, chunk_size):
            hi = min(lo + chunk_size, n)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DroppedEventsWarning)
                out = read_lhco(s, max_particles, lo, hi, **kw)
            info["n_dropped_events"] += (hi - lo) - len(out["jet1"])
            yield out
    if info["n_dropped_events"]:
        warnings.warn(
            DroppedEventsWarning(
                f"lhco_rnd: dropped {info['n_dropped_events']} event(s) with fewer than two jets "
                "(recorded in the file's info['n_dropped_events']; extra['event_index'] lists the kept rows)",
                info["n_dropped_events"],
            ),
            stacklevel=3,
        )


DATASETS: dict[str, DatasetSpec] = {
    "jetclass": DatasetSpec("jetclass", 150, _jetclass_chunks, JETCLASS_LABELS),
    "atlas_toptag": DatasetSpec("atlas_toptag", 120, _atlas_chunks, ATLAS_LABELS),
    "omnifold_zjets": DatasetSpec("omnifold_zjets", 101, _omnifold_chunks, None),
    "lhco_rnd": DatasetSpec("lhco_rnd", 279, _lhco_chunks, LHCO_LABELS, max_chunk=20_000),
    # an Aspen row is 150 x 11 float64 (13 kB) while converted
    "aspen_open_jets": DatasetSpec("aspen_open_jets", 150, _aspen_chunks, ASPEN_LABELS, max_chunk=25_000),
}


def _sources(name: str, sources: PathLike | Sequence[PathLike]) -> list[Path]:
    """The files to read, in reading order: directories listed, JetClass tarballs extracted,
    OmniFold files in numeric order per generator; every file must exist."""
    if isinstance(sources, (str, Path)) or hasattr(sources, "__fspath__"):
        sources = [sources]
    paths = [Path(s) for s in sources]
    if not paths:
        raise ValueError(f"convert({name!r}): no source files given")
    for s in paths:
        if not s.exists():
            raise FileNotFoundError(f"{s}: no such file or directory")
    listers = {
        "jetclass": _as_paths,
        "atlas_toptag": atlas_files,
        "omnifold_zjets": omnifold_files,
        "aspen_open_jets": aspen_files,
    }
    if name in listers:
        return listers[name](paths)
    for s in paths:
        existing_file(s)
    return paths


def convert(
    name: str,
    sources: PathLike | Sequence[PathLike],
    out: PathLike,
    *,
    max_particles: int | None = None,
    chunk_size: int = 100_000,
    **kw,
) -> Path:
    """Read public dataset ``name`` from ``sources`` in chunks and write one schema file ``out``.

    ``name`` is one of :data:`DATASETS` (``jetclass``, ``atlas_toptag``, ``omnifold_zjets``,
    ``lhco_rnd``, ``aspen_open_jets``); ``sources`` are the files as published (JetClass
    ``.tar`` or ROOT files, ATLAS ``.h5.gz`` or ``.h5``, npz, pandas/h5py HDF5) or directories,
    e.g. one split of :func:`~jetlab.data.readers.raw_files`. Memory stays at one chunk
    (``chunk_size`` rows, capped per dataset) whatever the input size, and ``out`` appears
    only once complete. ``max_particles`` defaults to the PET/OmniLearn value
    for that dataset. Extra keyword arguments go to the reader (e.g. ``R`` for LHCO). OmniFold
    files give collections ``gen``/``reco`` with one label per generator (label names = the
    generators in the order first seen); LHCO gives ``jet1``/``jet2``; the rest ``jets``.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; convertible datasets: {sorted(DATASETS)}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    spec = DATASETS[name]
    files = _sources(name, sources)
    max_particles = int(max_particles or spec.max_particles)
    info: dict = {
        "converted_from": name,
        "sources": [p.name for p in files],
        "max_particles": max_particles,
        **{k: v for k, v in kw.items()},
    }
    chunks = spec.chunks(files, max_particles, min(chunk_size, spec.max_chunk), info, kw)
    labels = _LazyLabels(spec, info)
    return write_jetsets_chunked(out, chunks, dataset=name, label_names=labels, info=info)


class _LazyLabels:
    """Label names resolved when the writer reads them (after the last chunk)."""

    def __init__(self, spec: DatasetSpec, info: dict) -> None:
        self.spec, self.info = spec, info

    def __iter__(self):
        names = self.spec.label_names if self.spec.label_names is not None else self.info.get("generators", [])
        return iter(names)
