"""ATLAS top tagging open data (CERN Open Data 15013 / 80030): flat HDF5 files in MeV."""

from __future__ import annotations

from typing import Iterator

import numpy as np

from ..schema import KINEMATIC_FEATURES, JetSet
from ._common import (
    PathLike,
    check_finite,
    check_shape,
    damaged_file_errors,
    fail,
    finish_particles,
    open_hdf5,
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


def _layout(path, f) -> tuple[int, int, str | None]:
    """Check keys and shapes; return (n_jets, stored constituents, weight key or None)."""
    for key in CONSTITUENT_KEYS + JET_KEYS + (LABEL_KEY,):
        if key not in f:
            raise fail(path, key, f"missing (ATLAS top tagging files have {list(CONSTITUENT_KEYS + JET_KEYS)} and {LABEL_KEY!r})")
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


def atlas_num_jets(path: PathLike) -> int:
    with open_hdf5(path) as f, damaged_file_errors(path, "the layout", "HDF5 file"):
        return _layout(path, f)[0]


def read_atlas_toptag(path: PathLike, max_particles: int = 120, start: int = 0, stop: int | None = None) -> JetSet:
    """Read jets ``[start, stop)`` of an ATLAS top tagging HDF5 file (only those rows are loaded).

    Constituent and jet momenta/masses are converted from MeV to GeV. ``jets[:, 4]`` counts all
    stored constituents (before truncation to ``max_particles``). Labels: 0 QCD, 1 top.
    Weights come from ``training_weights`` (else ``weights``, else 1).
    """
    with open_hdf5(path) as f:
        with damaged_file_errors(path, "the layout", "HDF5 file"):
            n, _, wkey = _layout(path, f)
        start, stop = resolve_range(path, n, start, stop)
        sl = slice(start, stop)
        cols = {}
        for key in CONSTITUENT_KEYS + JET_KEYS + (LABEL_KEY,) + ((wkey,) if wkey else ()):
            with damaged_file_errors(path, f"key {key!r} rows [{start}:{stop}]", "HDF5 file"):
                cols[key] = np.asarray(f[key][sl])  # native dtype (float32): no large float64 copies
            check_finite(path, key, cols[key], row_offset=start)

    pt = cols["fjet_clus_pt"] * MEV
    energy = cols["fjet_clus_E"] * MEV
    mask = pt > 0
    particles, mask = finish_particles([pt, cols["fjet_clus_eta"], cols["fjet_clus_phi"], energy], mask, max_particles)
    labels = cols[LABEL_KEY].astype(np.float64)
    bad = ~np.isin(labels, (0.0, 1.0))
    if bad.any():
        raise fail(path, LABEL_KEY, f"labels must be 0 (QCD) or 1 (top); got {np.unique(labels[bad])[:5].tolist()}")
    jets = np.stack(
        [
            cols["fjet_pt"].astype(np.float64) * MEV,
            cols["fjet_eta"].astype(np.float64),
            cols["fjet_phi"].astype(np.float64),
            cols["fjet_m"].astype(np.float64) * MEV,
            (cols["fjet_clus_pt"] > 0).sum(1),
        ],
        axis=1,
    )
    weights = cols[wkey] if wkey else None
    js = JetSet(particles, mask, jets, labels.astype(np.int64), weights, KINEMATIC_FEATURES)
    return js.validate(where=str(path))


def iter_atlas_toptag(path: PathLike, max_particles: int = 120, chunk_size: int = 100_000) -> Iterator[JetSet]:
    n = atlas_num_jets(path)
    for lo in range(0, n, chunk_size):
        yield read_atlas_toptag(path, max_particles, lo, min(lo + chunk_size, n))
