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
from typing import Iterator, Sequence

import numpy as np

from ..preprocess import wrap_phi
from ..schema import KINEMATIC_FEATURES, PID_FEATURES, JetSet, SchemaError
from ._common import (
    PathLike,
    as_file_list,
    check_finite,
    check_shape,
    existing_file,
    fail,
    finish_particles,
    natural_key,
    pdg_lookup,
    pid_flags,
    read_across,
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
        raise fail(
            path,
            key,
            f"unknown PID float code(s) {np.unique(codes[bad])[:5].tolist()} (expected 0.0..1.3 in steps of 0.1)",
        )
    k = np.clip(k, 0, len(PID_CODES) - 1).astype(np.int64)
    return np.where(mask, np.asarray(PID_CODES)[k], 0)


def _level(
    path, npz, prefix: str, max_particles: int, start: int, stop: int, n: int, label: int, row_offset: int = 0
) -> JetSet:
    jkey, pkey = f"{prefix}_jets", f"{prefix}_particles"
    jets_in = np.asarray(npz[jkey], dtype=np.float64)[start:stop]
    parts_in = np.asarray(npz[pkey], dtype=np.float64)[start:stop]
    check_finite(path, jkey, jets_in, row_offset + start)
    check_finite(path, pkey, parts_in, row_offset + start)

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
            v = np.asarray(npz[key])[start:stop].astype(np.float32)
            check_finite(path, key, v, row_offset + start)
            extra[obs] = v
    if prefix == "gen" and "gen_Zs" in npz.files:
        extra["Zs"] = np.asarray(npz["gen_Zs"], dtype=np.float64)[start:stop].astype(np.float32)
        check_finite(path, "gen_Zs", extra["Zs"], row_offset + start)
    labels = np.full(len(jets), label, dtype=np.int64)
    js = JetSet(particles, pmask, jets, labels, None, OMNIFOLD_FEATURES, extra)
    return js.validate(where=f"{path}:{prefix}")


class NpzRows:
    """Row slices of the arrays in one ``.npz`` without loading whole arrays.

    ``np.load`` decompresses a member entirely (a 100k-jet file's ``*_particles`` is hundreds of
    MB); here each member is read as a stream: the ``.npy`` header, then only the bytes of the
    rows asked for (C order, so rows are contiguous), skipping earlier rows. Works for
    ``np.savez`` (stored) and ``np.savez_compressed`` (deflated) archives alike.
    """

    def __init__(self, path: PathLike) -> None:
        self.path = existing_file(path)
        try:
            self._zip = zipfile.ZipFile(self.path)
            members = [n for n in self._zip.namelist() if n.endswith(".npy")]
            self.headers = {n[:-4]: self._header(n) for n in members}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
            raise SchemaError(f"{self.path}: not a readable .npz file ({exc})") from None

    def _header(self, member: str) -> tuple[tuple[int, ...], np.dtype]:
        with self._zip.open(member) as fp:
            return self._read_header(fp, member)

    def _read_header(self, fp, member: str) -> tuple[tuple[int, ...], np.dtype]:
        fmt = np.lib.format
        version = fmt.read_magic(fp)
        shape, fortran, dtype = fmt.read_array_header_1_0(fp) if version == (1, 0) else fmt.read_array_header_2_0(fp)
        if dtype.hasobject:
            raise fail(self.path, member[:-4], "holds Python objects (pickles are not read); expected numeric arrays")
        if fortran and len(shape) > 1:
            raise fail(self.path, member[:-4], "is stored in Fortran order; expected C order (as numpy.savez writes)")
        return tuple(shape), dtype

    @property
    def files(self) -> list[str]:
        return list(self.headers)

    def __contains__(self, key: str) -> bool:
        return key in self.headers

    def shape(self, key: str) -> tuple[int, ...]:
        return self.headers[key][0]

    def iter_rows(self, key: str, chunk: int, start: int = 0, stop: int | None = None) -> Iterator[np.ndarray]:
        """Rows ``[start, stop)`` of array ``key`` in blocks of at most ``chunk`` rows."""
        shape, dtype = self.headers[key]
        n = shape[0] if shape else 0
        stop = n if stop is None else min(stop, n)
        row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
        try:
            with self._zip.open(key + ".npy") as fp:
                self._read_header(fp, key + ".npy")
                skip = start * row_bytes
                while skip > 0:
                    got = len(fp.read(min(skip, 1 << 26)))
                    if not got:
                        break
                    skip -= got
                for lo in range(start, stop, max(chunk, 1)):
                    hi = min(lo + chunk, stop)
                    buf = fp.read((hi - lo) * row_bytes)
                    if len(buf) != (hi - lo) * row_bytes:
                        raise EOFError(f"array ended at row {lo + len(buf) // max(row_bytes, 1)} of {n}")
                    yield np.frombuffer(buf, dtype=dtype).reshape((hi - lo,) + shape[1:])
        except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
            raise SchemaError(f"{self.path}: key {key!r}: truncated or corrupt ({exc})") from None

    def rows(self, key: str, start: int = 0, stop: int | None = None) -> np.ndarray:
        shape, dtype = self.headers[key]
        parts = list(self.iter_rows(key, 1 << 62, start, stop))
        return parts[0] if parts else np.zeros((0,) + shape[1:], dtype)

    def close(self) -> None:
        self._zip.close()

    def __enter__(self) -> "NpzRows":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _keys(npz: NpzRows) -> list[str]:
    """The per-row arrays the reader uses, after checking the required ones and their lengths."""
    for prefix in LEVELS:
        for what in ("jets", "particles"):
            if f"{prefix}_{what}" not in npz:
                raise fail(npz.path, f"{prefix}_{what}", f"missing (file has {sorted(npz.files)})")
    n = npz.shape("gen_jets")[0] if npz.shape("gen_jets") else -1
    keys = []
    for prefix in LEVELS:
        jkey, pkey = f"{prefix}_jets", f"{prefix}_particles"
        check_shape(npz.path, jkey, npz.shape(jkey), (n, 4), "jet (pT, y, phi, m)")
        check_shape(
            npz.path, pkey, npz.shape(pkey), (n, None, 4), "(pT/100, y - y_jet, phi - phi_jet, PID code), zero-padded"
        )
        keys += [jkey, pkey]
        for obs in OBSERVABLES:
            if f"{prefix}_{obs}" in npz:
                check_shape(npz.path, f"{prefix}_{obs}", npz.shape(f"{prefix}_{obs}"), (n,), "one value per jet")
                keys.append(f"{prefix}_{obs}")
    if "gen_Zs" in npz:
        check_shape(npz.path, "gen_Zs", npz.shape("gen_Zs"), (n, 3), "Z boson (pT, y, phi)")
        keys.append("gen_Zs")
    return keys


def _chunk(path, arrays: dict[str, np.ndarray], max_particles: int, start: int, label: int) -> dict[str, JetSet]:
    n = len(arrays["gen_jets"])
    arrays = _Arrays(arrays)
    return {
        coll: _level(path, arrays, prefix, max_particles, 0, n, n, label, row_offset=start)
        for prefix, coll in LEVELS.items()
    }


class _Arrays(dict):
    @property
    def files(self) -> list[str]:
        return list(self)


def omnifold_num_jets(path: PathLike) -> int:
    with NpzRows(path) as npz:
        _keys(npz)
        return int(npz.shape("gen_jets")[0])


def _read_one(path, max_particles: int, start: int, stop: int | None, label: int) -> dict[str, JetSet]:
    with NpzRows(path) as npz:
        keys = _keys(npz)
        n = int(npz.shape("gen_jets")[0])
        start, stop = resolve_range(npz.path, n, start, stop)
        arrays = {k: npz.rows(k, start, stop) for k in keys}
        return _chunk(npz.path, arrays, max_particles, start, label)


def omnifold_files(paths: PathLike | Sequence[PathLike]) -> list[Path]:
    """The ``.npz`` files of ``paths`` (file, list or directory) in energyflow's order.

    Files of one generator are put in numeric order (``_2`` before ``_10``, whatever order a
    shell glob gave); generators keep the order in which they first appear (a directory:
    alphabetical).
    """
    files = as_file_list(paths, ("*.npz",), "OmniFold .npz")
    groups: dict[str, list[Path]] = {}
    for f in files:
        groups.setdefault(generator_name(f), []).append(f)
    return [f for g in groups.values() for f in sorted(dict.fromkeys(g), key=natural_key)]


def read_omnifold(
    paths: PathLike | Sequence[PathLike],
    max_particles: int = 101,
    start: int = 0,
    stop: int | None = None,
    label: int | None = 0,
) -> dict[str, JetSet]:
    """Read OmniFold Z+jets ``.npz`` files into row-aligned ``{"gen": JetSet, "reco": JetSet}``.

    ``paths``: one file, a list, or a directory (all 17 files per generator, see
    :func:`omnifold_files` for the order); ``start``/``stop`` index the jets of all files
    concatenated. Only the rows asked for are decompressed (:class:`NpzRows`).
    Particles become absolute (pT [GeV], eta, phi, E): pT = 100 x column 0, y and phi shifted
    by the jet axis, and the four-vector built with the PDG mass of the particle's id (pions,
    kaons, protons, neutrons, leptons; photons and Delphes ECAL cells massless, HCAL cells as
    K0_L), so eta differs slightly from y for massive hadrons. Charge and the five PID flags
    come from the PDG id. Jets: (pT, eta from the jet (pT, y, m), phi, m, particle count).
    ``extra`` keeps the precomputed observables (``mults``, ``lhas``, ``widths``, ``ang2s``,
    ``tau2s``, ``sdms``, ``zgs``; gen also ``Zs``). Every row gets ``label``; ``label=None``
    labels rows by generator (index in order of first appearance).
    """
    files = omnifold_files(paths)
    gens = list(dict.fromkeys(generator_name(f) for f in files))
    lab = (lambda f: gens.index(generator_name(f))) if label is None else (lambda f: int(label))
    if len(files) == 1:
        return _read_one(files[0], max_particles, start, stop, lab(files[0]))
    sizes = [omnifold_num_jets(f) for f in files]
    parts = read_across(
        files,
        sizes,
        start,
        stop,
        lambda f, lo, hi: _read_one(f, max_particles, lo, hi, lab(f)),
        f"read_omnifold({len(files)} files)",
    )
    if len(parts) == 1:
        return parts[0]
    return {c: JetSet.concatenate([p[c] for p in parts]) for c in LEVELS.values()}


def iter_omnifold(
    paths: PathLike | Sequence[PathLike], max_particles: int = 101, chunk_size: int = 100_000, label: int = 0
) -> Iterator[dict[str, JetSet]]:
    """Chunks of at most ``chunk_size`` rows, file after file, each member streamed once
    (memory: one chunk, not one file)."""
    for path in omnifold_files(paths):
        with NpzRows(path) as npz:
            keys = _keys(npz)
            n = int(npz.shape("gen_jets")[0])
            streams = [npz.iter_rows(k, chunk_size) for k in keys]
            if n == 0:
                yield _chunk(npz.path, {k: npz.rows(k, 0, 0) for k in keys}, max_particles, 0, label)
                continue
            lo = 0
            for blocks in zip(*streams):
                yield _chunk(npz.path, dict(zip(keys, blocks)), max_particles, lo, label)
                lo += len(blocks[0])
