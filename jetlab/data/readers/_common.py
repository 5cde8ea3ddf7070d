"""Shared helpers for the public-dataset readers: checks, kinematics and PDG-id lookups."""

from __future__ import annotations

import os
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
        raise SchemaError(f"{path}: is gzip-compressed; gunzip it first (h5py cannot read .gz files)")
    return path


def open_hdf5(path: PathLike):
    """Open an existing HDF5 file for reading; a file h5py cannot open is a SchemaError naming it."""
    import h5py

    path = existing_file(path)
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise SchemaError(f"{path}: not a readable HDF5 file ({exc})") from None


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
    m2 = np.asarray(e, np.float64) ** 2 - np.asarray(px, np.float64) ** 2 - np.asarray(py, np.float64) ** 2 - np.asarray(pz, np.float64) ** 2
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
