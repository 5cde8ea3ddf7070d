"""OmniFold Z+jets (Zenodo 3548091, energyflow's ``zjets_delphes``): one ``.npz`` per chunk.

Each file holds ``gen_*`` (particle level) and ``sim_*`` (Delphes detector level) arrays for
the same events. ``*_particles`` rows are (pT/100, y - y_jet, phi - phi_jet, PID float code)
with energyflow's code table (22 -> 0.0, 211 -> 0.1, ..., -2112 -> 1.3), zero-padded.
"""

from __future__ import annotations

import re
import zipfile
import zlib
from pathlib import Path
from typing import Iterator

import numpy as np

from ..schema import KINEMATIC_FEATURES, PID_FEATURES, JetSet, SchemaError
from ..preprocess import wrap_phi
from ._common import (
    PathLike,
    check_finite,
    check_shape,
    existing_file,
    fail,
    finish_particles,
    pdg_lookup,
    pid_flags,
    resolve_range,
)

#: energyflow's PID float codes: code k/10 stands for PID_CODES[k].
PID_CODES: tuple[int, ...] = (22, 211, -211, 130, 11, -11, 13, -13, 321, -321, 2212, -2212, 2112, -2112)
OBSERVABLES: tuple[str, ...] = ("mults", "lhas", "widths", "ang2s", "tau2s", "sdms", "zgs")
LEVELS: dict[str, str] = {"gen": "gen", "sim": "reco"}  # file prefix -> schema collection
OMNIFOLD_FEATURES: tuple[str, ...] = KINEMATIC_FEATURES + PID_FEATURES
GENERATOR_RE = re.compile(r"^(?P<gen>[A-Za-z]+\d*)_Zjet")


def generator_name(path: PathLike) -> str:
    """``Herwig`` / ``Pythia21`` / ... from a file name like ``Herwig_Zjet_pTZ-200GeV_0.npz``."""
    m = GENERATOR_RE.match(Path(path).name)
    return m.group("gen") if m else Path(path).stem


def _pdg_from_codes(path, key: str, codes: np.ndarray, mask: np.ndarray) -> np.ndarray:
    k = np.rint(codes * 10.0)
    bad = mask & ((np.abs(codes * 10.0 - k) > 1e-3) | (k < 0) | (k >= len(PID_CODES)))
    if bad.any():
        raise fail(path, key, f"unknown PID float code(s) {np.unique(codes[bad])[:5].tolist()} (expected 0.0..1.3 in steps of 0.1)")
    k = np.clip(k, 0, len(PID_CODES) - 1).astype(np.int64)
    return np.where(mask, np.asarray(PID_CODES)[k], 0)


def _level(path, npz, prefix: str, max_particles: int, start: int, stop: int, n: int, label: int) -> JetSet:
    jkey, pkey = f"{prefix}_jets", f"{prefix}_particles"
    jets_in = np.asarray(npz[jkey], dtype=np.float64)
    parts_in = np.asarray(npz[pkey], dtype=np.float64)
    check_shape(path, jkey, jets_in.shape, (n, 4), "jet (pT, y, phi, m)")
    check_shape(path, pkey, parts_in.shape, (n, None, 4), "(pT/100, y - y_jet, phi - phi_jet, PID code), zero-padded")
    jets_in, parts_in = jets_in[start:stop], parts_in[start:stop]
    check_finite(path, jkey, jets_in, start)
    check_finite(path, pkey, parts_in, start)

    jpt, jy, jphi, jm = jets_in.T
    mask = parts_in[..., 0] > 0
    pdg = _pdg_from_codes(path, pkey, parts_in[..., 3], mask)
    pt = 100.0 * parts_in[..., 0]
    y = parts_in[..., 1] + jy[:, None]
    phi = wrap_phi(parts_in[..., 2] + jphi[:, None])
    # massive four-vectors from the PDG mass (as energyflow's p4s_from_ptyphipids), then eta
    mass = pdg_lookup(pdg, 1)
    mt = np.sqrt(pt**2 + mass**2)
    pz, energy = mt * np.sinh(y), mt * np.cosh(y)
    eta = np.where(mask, np.arcsinh(pz / np.where(mask, pt, 1.0)), 0.0)
    charge = pdg_lookup(pdg, 0)
    particles, pmask = finish_particles([pt, eta, phi, energy, charge, *pid_flags(pdg)], mask, max_particles)

    jmt = np.sqrt(jpt**2 + jm**2)
    jeta = np.arcsinh(jmt * np.sinh(jy) / np.where(jpt > 0, jpt, 1.0))
    jets = np.stack([jpt, jeta, wrap_phi(jphi), jm, mask.sum(1)], axis=1)

    extra = {}
    for obs in OBSERVABLES:
        key = f"{prefix}_{obs}"
        if key in npz.files:
            v = np.asarray(npz[key])
            check_shape(path, key, v.shape, (n,), "one value per jet")
            v = v[start:stop].astype(np.float32)
            check_finite(path, key, v, start)
            extra[obs] = v
    if prefix == "gen" and "gen_Zs" in npz.files:
        z = np.asarray(npz["gen_Zs"], dtype=np.float64)
        check_shape(path, "gen_Zs", z.shape, (n, 3), "Z boson (pT, y, phi)")
        extra["Zs"] = z[start:stop].astype(np.float32)
        check_finite(path, "gen_Zs", extra["Zs"], start)
    labels = np.full(len(jets), label, dtype=np.int64)
    js = JetSet(particles, pmask, jets, labels, None, OMNIFOLD_FEATURES, extra)
    return js.validate(where=f"{path}:{prefix}")


class _Arrays(dict):
    """The arrays of one ``.npz`` (decompressed once), with ``.files`` like ``NpzFile``."""

    @property
    def files(self) -> list[str]:
        return list(self)


def _load(path: PathLike) -> _Arrays:
    path = existing_file(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            wanted = [k for k in npz.files if k.split("_", 1)[0] in LEVELS]
            arrays = _Arrays((k, npz[k]) for k in wanted)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise SchemaError(f"{path}: not a readable .npz file ({exc})") from None
    for prefix in LEVELS:
        for what in ("jets", "particles"):
            if f"{prefix}_{what}" not in arrays:
                raise fail(path, f"{prefix}_{what}", f"missing (file has {sorted(arrays)})")
    return arrays


def _read(path, arrays: _Arrays, max_particles: int, start: int, stop: int | None, label: int) -> dict[str, JetSet]:
    n = int(arrays["gen_jets"].shape[0])
    start, stop = resolve_range(path, n, start, stop)
    return {coll: _level(path, arrays, prefix, max_particles, start, stop, n, label) for prefix, coll in LEVELS.items()}


def read_omnifold(
    path: PathLike, max_particles: int = 101, start: int = 0, stop: int | None = None, label: int = 0
) -> dict[str, JetSet]:
    """Read one OmniFold Z+jets ``.npz`` into row-aligned ``{"gen": JetSet, "reco": JetSet}``.

    Particles become absolute (pT [GeV], eta, phi, E): pT = 100 x column 0, y and phi shifted
    by the jet axis, and the four-vector built with the PDG mass of the particle's id (pions,
    kaons, protons, neutrons, leptons; photons and Delphes ECAL cells massless, HCAL cells as
    K0_L), so eta differs slightly from y for massive hadrons. Charge and the five PID flags
    come from the PDG id. Jets: (pT, eta from the jet (pT, y, m), phi, m, particle count).
    ``extra`` keeps the precomputed observables (``mults``, ``lhas``, ``widths``, ``ang2s``,
    ``tau2s``, ``sdms``, ``zgs``; gen also ``Zs``). All rows get ``label`` (the generator index
    when several generators are converted together).
    """
    return _read(path, _load(path), max_particles, start, stop, label)


def iter_omnifold(
    path: PathLike, max_particles: int = 101, chunk_size: int = 100_000, label: int = 0
) -> Iterator[dict[str, JetSet]]:
    """Chunks of one file (the ``.npz`` is decompressed once, then sliced)."""
    arrays = _load(path)
    n = int(arrays["gen_jets"].shape[0])
    for lo in range(0, max(n, 1), chunk_size):
        yield _read(path, arrays, max_particles, lo, min(lo + chunk_size, n), label)
