"""Shared helpers for the public-dataset readers: checks, kinematics and PDG-id lookups."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Sequence

import numpy as np

from ..schema import SchemaError, damaged_file_errors, pad_particles

__all__ = ["damaged_file_errors"]  # re-exported: the readers wrap their low-level reads in it

PathLike = str | os.PathLike


class DroppedEventsWarning(UserWarning):
    """A reader had to leave events out (e.g. fewer than two jets); ``n_dropped`` says how many."""

    def __init__(self, message: str, n_dropped: int = 0) -> None:
        super().__init__(message)
        self.n_dropped = int(n_dropped)


def fail(path: PathLike, key: str, message: str) -> SchemaError:
    """A SchemaError that names the file and the key (returned so callers ``raise fail(...)``)."""
    return SchemaError(f"{path}: key {key!r}: {message}")


def check_finite(path: PathLike, key: str, arr: np.ndarray, row_offset: int = 0) -> None:
    """Raise a SchemaError naming file, key and the first bad rows if ``arr`` has NaN/inf."""
    arr = np.asarray(arr)
    if arr.dtype.kind not in "fc":
        return
    bad = ~np.isfinite(arr)
    if bad.any():
        rows = (np.unique(np.nonzero(bad)[0])[:5] + row_offset).tolist()
        raise fail(path, key, f"has NaN/inf values (first bad rows {rows})")


def check_shape(path: PathLike, key: str, arr_shape: tuple, expected: Sequence[int | None], what: str) -> None:
    """Compare a shape with ``expected`` (None = any size); the message says what was expected."""
    ok = len(arr_shape) == len(expected) and all(e is None or int(s) == e for s, e in zip(arr_shape, expected))
    if not ok:
        exp = "(" + ", ".join("any" if e is None else str(e) for e in expected) + ")"
        raise fail(path, key, f"expected shape {exp} ({what}), got {tuple(arr_shape)}")


def resolve_range(path: PathLike, n: int, start: int, stop: int | None) -> tuple[int, int]:
    """Validate ``[start, stop)`` against ``n`` rows; ``stop`` past the end is clipped."""
    if start < 0:
        raise ValueError(f"{path}: start must be >= 0, got {start}")
    stop = n if stop is None else min(int(stop), n)
    if stop < start:
        raise ValueError(f"{path}: stop ({stop}) must be >= start ({start})")
    return int(start), int(stop)


def existing_file(path: PathLike) -> Path:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if path.suffix == ".gz":
        raise SchemaError(f"{path}: is gzip-compressed; this reader expects the decompressed file")
    return path


def h5py_with_filters():
    """h5py with the compression filters of the field registered (``import hdf5plugin``:
    blosc, blosc2, bzip2, lz4, zstd, ...), so PyTables-compressed files read with h5py."""
    import h5py

    try:
        import hdf5plugin  # noqa: F401  (registers the filters on import)
    except ImportError:  # optional at runtime: unreadable filters are reported by check_filters
        pass
    return h5py


def hdf5_path(path: PathLike) -> Path:
    """An existing HDF5 file; ``x.h5.gz`` (ATLAS 2024 shards) is decompressed once beside it."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if path.suffix == ".gz":
        from ..archives import ArchiveError, gunzip_once

        try:
            return gunzip_once(path)
        except ArchiveError as exc:
            raise SchemaError(str(exc)) from None
    return path


def open_hdf5(path: PathLike):
    """Open an existing HDF5 (or ``.h5.gz``) file for reading; a file h5py cannot open is a
    SchemaError naming it."""
    h5py = h5py_with_filters()
    path = hdf5_path(path)
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise SchemaError(f"{path}: not a readable HDF5 file ({exc})") from None


#: HDF5 filter ids of common compressors, to name a missing one in messages.
FILTER_NAMES = {1: "gzip/zlib", 2: "shuffle", 3: "fletcher32", 4: "szip", 305: "lzo", 307: "bzip2",
                32000: "lzf", 32001: "blosc", 32004: "lz4", 32008: "bitshuffle", 32015: "zstd",
                32026: "blosc2"}  # fmt: skip


def check_filters(path: PathLike, key: str, dset) -> None:
    """Raise a SchemaError naming file, key and filter if ``dset`` needs an HDF5 filter this
    process does not have (instead of h5py's "can't open directory (<plugin dir>)" OSError)."""
    h5py = h5py_with_filters()
    plist = dset.id.get_create_plist()
    for i in range(plist.get_nfilters()):
        code, _flags, _values, name = plist.get_filter(i)
        if not h5py.h5z.filter_avail(code):
            label = FILTER_NAMES.get(code) or (name.decode(errors="replace") if isinstance(name, bytes) else str(name))
            raise fail(
                path,
                key,
                f"compressed with HDF5 filter {code} ({label}), which is not available here; expected a filter "
                "h5py or hdf5plugin provides (gzip, lzf, szip, blosc, blosc2, bzip2, lz4, zstd): "
                "`pip install hdf5plugin`, or rewrite the file with one of those (e.g. `ptrepack --complib blosc`)",
            )


def read_dataset(path: PathLike, key: str, dset, selection=slice(None)) -> np.ndarray:
    """``dset[selection]`` with filter and damage errors turned into SchemaErrors naming file and key."""
    check_filters(path, key, dset)
    with damaged_file_errors(path, f"key {key!r}", "HDF5 file"):
        return np.asarray(dset[selection])


def read_across(files: Sequence, sizes: Sequence[int], start: int, stop: int | None, read_one, where: str):
    """Read rows ``[start, stop)`` of files concatenated in order: ``read_one(file, lo, hi)`` per file
    that overlaps the range (at least one call, on the first file, when the range is empty)."""
    total = int(sum(sizes))
    start, stop = resolve_range(where, total, start, stop)
    out, offset = [], 0
    for f, size in zip(files, sizes):
        lo, hi = max(start - offset, 0), min(stop - offset, size)
        if hi > lo:
            out.append(read_one(f, lo, hi))
        offset += size
    if not out:
        out.append(read_one(files[0], 0, 0))
    return out


_INDEX = re.compile(r"(\d+)")


def natural_key(path: PathLike) -> tuple:
    """Sort key that orders numbers by value: ``x_2.npz`` before ``x_10.npz``."""
    parts = _INDEX.split(Path(path).name)
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in parts)


def as_file_list(paths, patterns: Sequence[str], what: str) -> list[Path]:
    """A path, a list of paths, or a directory (files matching ``patterns``, in natural order)."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    out: list[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            found = sorted({f for pat in patterns for f in p.glob(pat)}, key=natural_key)
            if not found:
                raise FileNotFoundError(f"{p}: directory holds no {what} files ({', '.join(patterns)})")
            out.extend(found)
        else:
            out.append(p)
    if not out:
        raise ValueError(f"no {what} files given")
    return out


def ptetaphi(px: np.ndarray, py: np.ndarray, pz: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pT, eta, phi) from Cartesian momenta; eta = 0 where pT = 0 (padding)."""
    px, py, pz = (np.asarray(a, dtype=np.float64) for a in (px, py, pz))
    pt = np.hypot(px, py)
    safe = np.where(pt > 0, pt, 1.0)
    eta = np.where(pt > 0, np.arcsinh(pz / safe), 0.0)
    phi = np.where(pt > 0, np.arctan2(py, px), 0.0)
    return pt, eta, phi


def four_vector_features(px, py, pz, e) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(pT, eta, phi, m) of four-vectors; m^2 < 0 from rounding is clipped to 0."""
    pt, eta, phi = ptetaphi(px, py, pz)
    m2 = (
        np.asarray(e, np.float64) ** 2
        - np.asarray(px, np.float64) ** 2
        - np.asarray(py, np.float64) ** 2
        - np.asarray(pz, np.float64) ** 2
    )
    return pt, eta, phi, np.sqrt(np.clip(m2, 0.0, None))


def _gather(a: np.ndarray, flat_index: np.ndarray) -> np.ndarray:
    """``a[i, order[i, j]]`` via one flat take (much faster than take_along_axis here)."""
    return np.asarray(a).reshape(-1)[flat_index]


def finish_particles(columns: Sequence[np.ndarray], mask: np.ndarray, max_particles: int):
    """Stack (N, P) columns into (N, max_particles, F) pT-ordered, front-packed, zero-padded.

    Same result as :func:`~jetlab.data.schema.sort_and_truncate` on the stacked columns (the
    tests check this), but the leading slots are picked on the (N, P) pT column (column 0)
    first, so only the kept particles are gathered: several times faster on 200-wide files.
    """
    if max_particles < 1:
        raise ValueError(f"max_particles must be >= 1, got {max_particles}")
    mask = np.asarray(mask, dtype=bool)
    n, p = mask.shape
    pt = np.where(mask, np.asarray(columns[0]), -np.inf)
    order = np.argsort(-pt, axis=1, kind="stable")[:, :max_particles]
    flat = order + (np.arange(n, dtype=np.int64) * p)[:, None]
    kept = _gather(mask, flat)
    parts = np.empty((n, order.shape[1], len(columns)), dtype=np.float32)
    for i, c in enumerate(columns):
        parts[..., i] = np.where(kept, _gather(c, flat), 0)
    if parts.shape[1] < max_particles:
        parts = pad_particles(parts, max_particles)
        kept = pad_particles(kept, max_particles)
    return parts, kept


# ------------------------------------------------------------------------ PDG ids
#: PDG id -> (charge, mass [GeV]) for the particles found in the public datasets.
PDG_TABLE: dict[int, tuple[float, float]] = {
    22: (0.0, 0.0),
    11: (-1.0, 0.00051099895),
    -11: (1.0, 0.00051099895),
    13: (-1.0, 0.1056583755),
    -13: (1.0, 0.1056583755),
    211: (1.0, 0.13957039),
    -211: (-1.0, 0.13957039),
    321: (1.0, 0.493677),
    -321: (-1.0, 0.493677),
    2212: (1.0, 0.93827208816),
    -2212: (-1.0, 0.93827208816),
    130: (0.0, 0.497611),
    310: (0.0, 0.497611),
    2112: (0.0, 0.93956542052),
    -2112: (0.0, 0.93956542052),
    1: (0.0, 0.0),  # CMS PF: HF hadronic cell
    2: (0.0, 0.0),  # CMS PF: HF electromagnetic cell
}
_CHARGED_HADRONS = (211, 321, 2212)
_NEUTRAL_HADRONS = (130, 310, 2112, 1)
_PHOTONS = (22, 2)


def pid_flags(pdg: np.ndarray) -> list[np.ndarray]:
    """The five schema PID flags (charged hadron, neutral hadron, photon, electron, muon)."""
    a = np.abs(np.asarray(pdg)).astype(np.int64)
    return [
        np.isin(a, _CHARGED_HADRONS).astype(np.float32),
        np.isin(a, _NEUTRAL_HADRONS).astype(np.float32),
        np.isin(a, _PHOTONS).astype(np.float32),
        (a == 11).astype(np.float32),
        (a == 13).astype(np.float32),
    ]


def pdg_lookup(pdg: np.ndarray, column: int) -> np.ndarray:
    """Charge (column 0) or mass (column 1) per PDG id; unknown ids give 0."""
    pdg = np.asarray(pdg).astype(np.int64)
    keys = np.array(sorted(PDG_TABLE), dtype=np.int64)
    vals = np.array([PDG_TABLE[k][column] for k in keys], dtype=np.float64)
    pos = np.clip(np.searchsorted(keys, pdg), 0, len(keys) - 1)
    return np.where(keys[pos] == pdg, vals[pos], 0.0)


def unknown_pdg(pdg: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The distinct PDG ids among real particles that are not in :data:`PDG_TABLE`."""
    ids = np.unique(np.asarray(pdg)[mask].astype(np.int64))
    return ids[~np.isin(ids, list(PDG_TABLE))]
