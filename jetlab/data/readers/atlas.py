"""ATLAS top tagging open data (CERN Open Data 15013 / 80030): flat HDF5 files in MeV.

The 2024 release (80030) ships gzip-compressed shards ``train_nominal_000.h5.gz`` ...; each is
decompressed once beside itself (:func:`jetlab.data.archives.gunzip_once`, the verified ``.gz``
is kept) and read with h5py. The 2022 release (15013) is plain ``train.h5`` / ``test.h5``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from ..schema import KINEMATIC_FEATURES, JetSet
from ._common import (
    PathLike,
    check_finite,
    check_shape,
    damaged_file_errors,
    fail,
    finish_particles,
    hdf5_path,
    open_hdf5,
    read_across,
    read_dataset,
    resolve_range,
)

ATLAS_LABELS: tuple[str, ...] = ("QCD", "top")
CONSTITUENT_KEYS: tuple[str, ...] = ("fjet_clus_pt", "fjet_clus_eta", "fjet_clus_phi", "fjet_clus_E")
JET_KEYS: tuple[str, ...] = ("fjet_pt", "fjet_eta", "fjet_phi", "fjet_m")
LABEL_KEY = "labels"
#: Weight keys in order of preference: the 2022/2024 releases store ``training_weights``,
#: some preprocessed copies ``weights``; test files may have neither (weights = 1).
WEIGHT_KEYS: tuple[str, ...] = ("training_weights", "weights")
MEV = 1e-3  # MeV -> GeV
#: Jet-pT scale that separates the units: ATLAS top-tagging jets have pT > 350 GeV, i.e.
#: > 3.5e5 in MeV, while in GeV they stay below ~5e3. A median below this is GeV.
GEV_SCALE_LIMIT = 1e4
UNITS = ("MeV", "GeV")


def _layout(path, f) -> tuple[int, int, str | None]:
    """Check keys and shapes; return (n_jets, stored constituents, weight key or None)."""
    for key in CONSTITUENT_KEYS + JET_KEYS + (LABEL_KEY,):
        if key not in f:
            raise fail(
                path,
                key,
                f"missing (ATLAS top tagging files have {list(CONSTITUENT_KEYS + JET_KEYS)} and {LABEL_KEY!r})",
            )
    n = int(f[LABEL_KEY].shape[0]) if f[LABEL_KEY].ndim else -1
    check_shape(path, LABEL_KEY, f[LABEL_KEY].shape, (n,), "one label per jet")
    p = f[CONSTITUENT_KEYS[0]].shape[1] if f[CONSTITUENT_KEYS[0]].ndim == 2 else -1
    for key in CONSTITUENT_KEYS:
        check_shape(path, key, f[key].shape, (n, p if p > 0 else None), "jets x constituents, zero-padded")
    for key in JET_KEYS:
        check_shape(path, key, f[key].shape, (n,), "one value per jet")
    wkey = next((k for k in WEIGHT_KEYS if k in f), None)
    if wkey is not None:
        check_shape(path, wkey, f[wkey].shape, (n,), "one weight per jet")
    return n, p, wkey


def atlas_files(paths: PathLike | Sequence[PathLike]) -> list[Path]:
    """A file, a list of files (kept in the given order), or a directory holding one split.

    A directory is listed with :func:`jetlab.data.readers.raw_files`; one holding both training
    and test shards is refused (reading both together would mix the splits).
    """
    if isinstance(paths, (str, Path)) or hasattr(paths, "__fspath__"):
        paths = [paths]
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            from .files import raw_files

            splits = raw_files("atlas_toptag", p)
            if len(splits) > 1:
                raise ValueError(
                    f"{p}: holds several ATLAS splits {sorted(splits)}; pass one, e.g. "
                    f"raw_files('atlas_toptag', {str(p)!r})['train']"
                )
            out.extend(next(iter(splits.values())))
        else:
            out.append(p)
    if not out:
        raise ValueError("read_atlas_toptag: no input files given")
    return out


def atlas_num_jets(path: PathLike) -> int:
    with open_hdf5(path) as f, damaged_file_errors(path, "the layout", "HDF5 file"):
        return _layout(path, f)[0]


def _check_units(path, cols: dict[str, np.ndarray], units: str) -> None:
    """Refuse a file whose momentum scale is not ``units`` (e.g. already divided by 1000)."""

    def scale(values: np.ndarray) -> tuple[str, float] | None:
        values = values[values > 0]
        if not len(values):
            return None
        med = float(np.median(values))
        return ("GeV" if med < GEV_SCALE_LIMIT else "MeV"), med

    jet = scale(np.asarray(cols["fjet_pt"], np.float64))
    if jet is not None and jet[0] != units:
        raise fail(
            path,
            "fjet_pt",
            f"median jet pT {jet[1]:.4g} looks like {jet[0]}, but units={units!r} was expected (ATLAS top-tagging jets "
            f"have pT > 350 GeV = 3.5e5 MeV; the published files are in MeV). "
            + (
                "This file was already converted to GeV: pass units='GeV' to read it as is."
                if jet[0] == "GeV"
                else "Pass units='MeV' for the published files."
            ),
        )
    clus = scale(np.asarray(cols["fjet_clus_pt"], np.float64).sum(1))
    if clus is not None and clus[0] != units:
        raise fail(
            path,
            "fjet_clus_pt",
            f"units mismatch: the constituents' summed pT per jet (median {clus[1]:.4g}) looks like {clus[0]} "
            f"while the jets ('fjet_pt') are in {units}; expected both in the same units",
        )


def _read_one(path: PathLike, max_particles: int, start: int, stop: int | None, units: str) -> JetSet:
    if units not in UNITS:
        raise ValueError(f"units must be one of {UNITS}, got {units!r}")
    scale_to_gev = MEV if units == "MeV" else 1.0
    path = hdf5_path(path)
    with open_hdf5(path) as f:
        with damaged_file_errors(path, "the layout", "HDF5 file"):
            n, _, wkey = _layout(path, f)
        start, stop = resolve_range(path, n, start, stop)
        sl = slice(start, stop)
        cols = {}
        for key in CONSTITUENT_KEYS + JET_KEYS + (LABEL_KEY,) + ((wkey,) if wkey else ()):
            cols[key] = read_dataset(path, key, f[key], sl)  # native dtype (float32): no large float64 copies
            check_finite(path, key, cols[key], row_offset=start)
    _check_units(path, cols, units)

    pt = cols["fjet_clus_pt"] * scale_to_gev
    energy = cols["fjet_clus_E"] * scale_to_gev
    mask = pt > 0
    particles, mask = finish_particles([pt, cols["fjet_clus_eta"], cols["fjet_clus_phi"], energy], mask, max_particles)
    labels = cols[LABEL_KEY].astype(np.float64)
    bad = ~np.isin(labels, (0.0, 1.0))
    if bad.any():
        raise fail(path, LABEL_KEY, f"labels must be 0 (QCD) or 1 (top); got {np.unique(labels[bad])[:5].tolist()}")
    jets = np.stack(
        [
            cols["fjet_pt"].astype(np.float64) * scale_to_gev,
            cols["fjet_eta"].astype(np.float64),
            cols["fjet_phi"].astype(np.float64),
            cols["fjet_m"].astype(np.float64) * scale_to_gev,
            (cols["fjet_clus_pt"] > 0).sum(1),
        ],
        axis=1,
    )
    weights = cols[wkey] if wkey else None
    js = JetSet(particles, mask, jets, labels.astype(np.int64), weights, KINEMATIC_FEATURES)
    return js.validate(where=str(path))


def read_atlas_toptag(
    paths: PathLike | Sequence[PathLike],
    max_particles: int = 120,
    start: int = 0,
    stop: int | None = None,
    *,
    units: str = "MeV",
) -> JetSet:
    """Read jets ``[start, stop)`` of ATLAS top tagging files (only those rows are loaded).

    ``paths``: one file, a list of files (read in that order; ``start``/``stop`` index the jets
    of all of them concatenated), or a directory holding one split. ``.h5.gz`` shards are
    decompressed once beside themselves. Constituent and jet momenta/masses are converted from
    MeV to GeV (``units="GeV"`` reads an already converted copy as is); a file whose jet pT
    scale contradicts ``units`` is refused with a SchemaError naming file and key, never
    divided by 1000 twice. ``jets[:, 4]`` counts all stored constituents (before truncation to
    ``max_particles``). Labels: 0 QCD, 1 top. Weights: ``training_weights`` (else ``weights``,
    else 1).
    """
    files = atlas_files(paths)
    if len(files) == 1:
        return _read_one(files[0], max_particles, start, stop, units)
    sizes = [atlas_num_jets(p) for p in files]
    sets = read_across(
        files,
        sizes,
        start,
        stop,
        lambda f, lo, hi: _read_one(f, max_particles, lo, hi, units),
        f"read_atlas_toptag({len(files)} files)",
    )
    return JetSet.concatenate(sets) if len(sets) > 1 else sets[0]


def iter_atlas_toptag(
    paths: PathLike | Sequence[PathLike], max_particles: int = 120, chunk_size: int = 100_000, *, units: str = "MeV"
) -> Iterator[JetSet]:
    """Chunks of at most ``chunk_size`` jets, file after file (bounded memory)."""
    for path in atlas_files(paths):
        n = atlas_num_jets(path)
        for lo in range(0, n, chunk_size):
            yield _read_one(path, max_particles, lo, min(lo + chunk_size, n), units)
