"""Aspen Open Jets (UHH record 16505): unlabelled CMS 2016 AK8 jets with PF candidates."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from ..schema import ALL_PARTICLE_FEATURES, JetSet
from ._common import (
    PathLike,
    as_file_list,
    check_finite,
    check_shape,
    damaged_file_errors,
    fail,
    finish_particles,
    four_vector_features,
    open_hdf5,
    pid_flags,
    ptetaphi,
    read_across,
    read_dataset,
    resolve_range,
    unknown_pdg,
)

ASPEN_LABELS: tuple[str, ...] = ("unlabelled",)
#: PFCands columns, in file order.
PFCANDS_COLUMNS: tuple[str, ...] = (
    "px",
    "py",
    "pz",
    "E",
    "d0",
    "d0Err",
    "dz",
    "dzErr",
    "charge",
    "pdgId",
    "puppi_weight",
)
CM_TO_MM = 10.0  # CMS stores impact parameters in cm; the schema follows JetClass (mm)
#: What the producer writes in d0, d0Err, dz and dzErr (cm) for a candidate without a track
#: (CMS PFNano's default); read as the schema's "no track" (all four 0, see jetlab.data.schema).
NO_TRACK_SENTINEL_CM = -1.0


def _layout(path, f) -> int:
    for key in ("PFCands", "jet_kinematics"):
        if key not in f:
            raise fail(
                path, key, f"missing (Aspen Open Jets files have 'PFCands' and 'jet_kinematics'; has {list(f.keys())})"
            )
    n = int(f["jet_kinematics"].shape[0]) if f["jet_kinematics"].ndim else -1
    check_shape(path, "jet_kinematics", f["jet_kinematics"].shape, (n, 4), "pT, eta, phi, soft-drop mass")
    check_shape(path, "PFCands", f["PFCands"].shape, (n, None, len(PFCANDS_COLUMNS)), ", ".join(PFCANDS_COLUMNS))
    return n


def aspen_num_jets(path: PathLike) -> int:
    with open_hdf5(path) as f, damaged_file_errors(path, "the layout", "HDF5 file"):
        return _layout(path, f)


def aspen_files(paths: PathLike | Sequence[PathLike]) -> list[Path]:
    """A file, a list of files (in that order) or a directory (``Run*_batch*.h5``, numeric order)."""
    return as_file_list(paths, ("Run*_batch*.h5",), "Aspen Open Jets HDF5")


def read_aspen(
    paths: PathLike | Sequence[PathLike], max_particles: int = 150, start: int = 0, stop: int | None = None
) -> JetSet:
    """Read jets ``[start, stop)`` of Aspen Open Jets files (``RunG_batch*.h5``).

    ``paths`` is a file, a list of files or a directory; ``start``/``stop`` index the jets of all
    files concatenated in that order (a directory: Run G then Run H, batches in numeric order).

    Particles: (pT, eta, phi) from px/py/pz, E, charge, PID flags from |pdgId| (211 charged
    hadron, 130 neutral hadron, 22 photon, 11 electron, 13 muon; HF cells 1/2 as neutral
    hadron/photon) and d0/d0err/dz/dzerr converted cm -> mm (a candidate without a track, the
    producer's -1 cm in any of the four, gets the schema's "no track": all four 0). The PUPPI weight of each kept
    candidate is ``extra["puppi_weight"]`` (N, max_particles), aligned with the particle slots.
    Jets: pT, eta, phi from ``jet_kinematics``; mass of the sum of all candidates (ungroomed,
    as the other datasets; the soft-drop mass is ``extra["sdmass"]``); candidate count.
    Labels are all 0 (unlabelled data).
    """
    files = aspen_files(paths)
    if len(files) == 1:
        return _read_one(files[0], max_particles, start, stop)
    sizes = [aspen_num_jets(p) for p in files]
    sets = read_across(
        files,
        sizes,
        start,
        stop,
        lambda f, lo, hi: _read_one(f, max_particles, lo, hi),
        f"read_aspen({len(files)} files)",
    )
    return JetSet.concatenate(sets) if len(sets) > 1 else sets[0]


def impact_parameters_mm(d0_d0err_dz_dzerr_cm: np.ndarray) -> np.ndarray:
    """(..., 4) d0, d0Err, dz, dzErr in cm -> mm, with the schema's "no track" convention.

    A candidate with the producer's sentinel (-1 cm) in any of the four has no track: all four
    become 0, as JetClass stores them, instead of -10 mm lengths and negative errors.
    """
    ip = np.asarray(d0_d0err_dz_dzerr_cm, np.float64)
    no_track = (ip == NO_TRACK_SENTINEL_CM).any(axis=-1, keepdims=True)
    return np.where(no_track, 0.0, ip * CM_TO_MM)


def _read_one(path: PathLike, max_particles: int, start: int, stop: int | None) -> JetSet:
    with open_hdf5(path) as f:
        with damaged_file_errors(path, "the layout", "HDF5 file"):
            n = _layout(path, f)
        start, stop = resolve_range(path, n, start, stop)
        pf = read_dataset(path, "PFCands", f["PFCands"], slice(start, stop)).astype(np.float64)
        kin = read_dataset(path, "jet_kinematics", f["jet_kinematics"], slice(start, stop)).astype(np.float64)
    check_finite(path, "PFCands", pf, start)
    check_finite(path, "jet_kinematics", kin, start)

    px, py, pz, energy = (pf[..., i] for i in range(4))
    pt, eta, phi = ptetaphi(px, py, pz)
    mask = pt > 0
    pdg = pf[..., 9]
    unknown = unknown_pdg(pdg, mask)
    if len(unknown):
        raise fail(path, "PFCands", f"unknown pdgId values {unknown[:5].tolist()} in column 9")
    cols = [pt, eta, phi, energy, pf[..., 8], *pid_flags(pdg)]
    cols += list(np.moveaxis(impact_parameters_mm(pf[..., 4:8]), -1, 0))
    cols.append(pf[..., 10])  # carried through the sort, split off below
    particles, pmask = finish_particles(cols, mask, max_particles)
    puppi = particles[..., -1].copy()
    particles = np.ascontiguousarray(particles[..., :-1])

    m = np.where(mask, 1.0, 0.0)
    jmass = four_vector_features((px * m).sum(1), (py * m).sum(1), (pz * m).sum(1), (energy * m).sum(1))[3]
    jets = np.stack([kin[:, 0], kin[:, 1], kin[:, 2], jmass, mask.sum(1)], axis=1)
    extra = {"sdmass": kin[:, 3].astype(np.float32), "puppi_weight": puppi}
    js = JetSet(particles, pmask, jets, np.zeros(len(jets), np.int64), None, ALL_PARTICLE_FEATURES, extra)
    return js.validate(where=str(path))


def iter_aspen(
    paths: PathLike | Sequence[PathLike], max_particles: int = 150, chunk_size: int = 100_000
) -> Iterator[JetSet]:
    """Chunks of at most ``chunk_size`` jets, file after file (bounded memory)."""
    for path in aspen_files(paths):
        n = aspen_num_jets(path)
        for lo in range(0, n, chunk_size):
            yield _read_one(path, max_particles, lo, min(lo + chunk_size, n))
