"""JetClass (Zenodo 6619768): ROOT files with one TTree ``tree`` of jagged particle branches."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from ..schema import ALL_PARTICLE_FEATURES, DAMAGED_FILE_ERRORS, JetSet, SchemaError
from ._common import (
    PathLike,
    check_finite,
    damaged_file_errors,
    existing_file,
    fail,
    finish_particles,
    ptetaphi,
    resolve_range,
)

#: Class order of the ``labels`` column (the ParT / OmniLearn order of the one-hot branches).
JETCLASS_LABELS: tuple[str, ...] = ("QCD", "Hbb", "Hcc", "Hgg", "H4q", "Hqql", "Zqq", "Wqq", "Tbqq", "Tbl")
LABEL_BRANCHES: tuple[str, ...] = tuple(f"label_{name}" for name in JETCLASS_LABELS)
KINEMATIC_BRANCHES: tuple[str, ...] = ("part_px", "part_py", "part_pz", "part_energy")
#: Branches for the optional schema columns, in schema order (charge, 5 PID flags, d0, d0err, dz, dzerr).
FEATURE_BRANCHES: tuple[str, ...] = (
    "part_charge",
    "part_isChargedHadron",
    "part_isNeutralHadron",
    "part_isPhoton",
    "part_isElectron",
    "part_isMuon",
    "part_d0val",
    "part_d0err",
    "part_dzval",
    "part_dzerr",
)
JET_BRANCHES: tuple[str, ...] = ("jet_pt", "jet_eta", "jet_phi", "jet_energy", "jet_nparticles")
#: Jet observables kept in ``extra`` when the file has them.
EXTRA_BRANCHES: dict[str, str] = {
    "jet_sdmass": "sdmass",
    "jet_tau1": "tau1",
    "jet_tau2": "tau2",
    "jet_tau3": "tau3",
    "jet_tau4": "tau4",
}
TREE = "tree"

log = logging.getLogger(__name__)


def _root_errors() -> tuple[type[BaseException], ...]:
    """What uproot raises on damaged baskets: short reads, bad zlib/lz4/zstd data, garbled streamers."""
    import zlib

    from uproot.deserialization import DeserializationError
    from uproot.interpretation.identify import UnknownInterpretation

    return DAMAGED_FILE_ERRORS + (ValueError, zlib.error, DeserializationError, UnknownInterpretation)


def _as_paths(paths: PathLike | Sequence[PathLike], extract_to: PathLike | None = None) -> list[Path]:
    """A ROOT file, a ``.tar`` of them (extracted once), a list of these, or a directory of ``*.root``.

    A tarball is unpacked with :func:`jetlab.data.archives.extract_tar` (safe ``data`` filter,
    completion marker: a second call does not unpack again) into ``extract_to``, by default
    where ``jetlab data fetch`` unpacks it (:func:`~jetlab.data.readers.files.jetclass_extract_dir`:
    a train part into ``train_100M/`` beside it, ``val_5M/...`` beside ``JetClass_Pythia_val_5M.tar``),
    so a fetched tarball is not extracted a second time.
    Files from a tarball or a directory are in :func:`~jetlab.data.readers.files.jetclass_order`.
    """
    from ..archives import ArchiveError, extract_tar
    from .files import jetclass_extract_dir, jetclass_order

    if isinstance(paths, (str, Path)) or hasattr(paths, "__fspath__"):
        paths = [paths]
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(p.glob("*.root"), key=jetclass_order)
            if not found:
                hint = (
                    " (a fetched JetClass directory? list its splits with jetlab.data.readers.raw_files('jetclass', dir))"
                    if any(p.glob("*.tar")) or any((p / sub).is_dir() for sub in ("train_100M", "val_5M", "test_20M"))
                    else ""
                )
                raise FileNotFoundError(f"{p}: directory holds no *.root files{hint}")
            out.extend(found)
        elif p.suffix == ".tar":
            try:
                members = extract_tar(p, Path(extract_to) if extract_to is not None else jetclass_extract_dir(p))
            except ArchiveError as exc:
                raise SchemaError(str(exc)) from None
            roots = sorted((m for m in members if m.suffix == ".root"), key=jetclass_order)
            if not roots:
                raise SchemaError(
                    f"{p}: archive holds no .root files (JetClass tarballs hold <Process>_<index>.root files)"
                )
            out.extend(roots)
        else:
            out.append(p)
    if not out:
        raise ValueError("read_jetclass: no input files given")
    first: dict[Path, Path] = {}
    for p in out:  # each file once, where it first appears
        first.setdefault(p.resolve(), p)
    unique = list(first.values())
    if len(unique) < len(out):
        log.info(
            "read_jetclass: %d file(s) named twice (e.g. a tarball and its folder) are read once",
            len(out) - len(unique),
        )
    return unique


def _open(path: Path):
    import uproot

    path = existing_file(path)
    try:
        f = uproot.open(path)
    except Exception as exc:  # uproot raises several types for foreign files
        raise SchemaError(f"{path}: not a readable ROOT file ({exc})") from None
    try:
        with damaged_file_errors(path, "the directory of keys", "ROOT file", _root_errors()):
            if TREE not in f:
                raise fail(path, TREE, f"no TTree named {TREE!r} (JetClass files have one); found {list(f.keys())}")
    except BaseException:
        f.close()
        raise
    return f


def jetclass_num_entries(path: PathLike) -> int:
    """Number of jets in one JetClass ROOT file (reads only the header)."""
    with _open(Path(path)) as f, damaged_file_errors(path, f"TTree {TREE!r}", "ROOT file", _root_errors()):
        return int(f[TREE].num_entries)


def _read_file(path: Path, max_particles: int, start: int, stop: int) -> JetSet:
    import awkward as ak

    reading = damaged_file_errors(path, f"TTree {TREE!r} entries [{start}:{stop}]", "ROOT file", _root_errors())
    with _open(path) as f, reading:
        tree = f[TREE]
        names = set(tree.keys())
        required = KINEMATIC_BRANCHES + FEATURE_BRANCHES + JET_BRANCHES + LABEL_BRANCHES
        missing = [b for b in required if b not in names]
        if missing:
            raise fail(path, missing[0], f"branch missing from TTree {TREE!r} (missing: {missing})")
        extras = [b for b in EXTRA_BRANCHES if b in names]
        arrs = tree.arrays(list(required) + extras, entry_start=start, entry_stop=stop, library="ak")

    n = len(arrs)
    counts = None
    for b in KINEMATIC_BRANCHES + FEATURE_BRANCHES:
        a = arrs[b]
        if a.ndim != 2:
            raise fail(path, b, f"expected a jagged per-jet particle array (N, var), got type {a.type}")
        c = ak.to_numpy(ak.num(a, axis=1))
        if counts is None:
            counts = c
        elif not np.array_equal(c, counts):
            row = int(np.nonzero(c != counts)[0][0]) + start
            raise fail(path, b, f"particle count differs from 'part_px' (first at entry {row})")
        flat = ak.to_numpy(ak.flatten(a)).astype(np.float64)
        if not np.isfinite(flat).all():  # report jet entries, not flat particle positions
            bad_jets = ak.to_numpy(ak.any(~np.isfinite(a), axis=1))
            check_finite(path, b, np.where(bad_jets, np.nan, 0.0), row_offset=start)
    for b in JET_BRANCHES + LABEL_BRANCHES + tuple(extras):
        if arrs[b].ndim != 1:
            raise fail(path, b, f"expected one value per jet (N,), got type {arrs[b].type}")
        check_finite(path, b, ak.to_numpy(arrs[b]).astype(np.float64), row_offset=start)

    # pT-order inside awkward first so truncation keeps the hardest particles
    pt_jag = np.hypot(arrs["part_px"], arrs["part_py"])
    order = ak.argsort(pt_jag, axis=1, ascending=False, stable=True)

    def padded(branch: str) -> np.ndarray:
        a = ak.pad_none(arrs[branch][order], max_particles, axis=1, clip=True)
        return ak.to_numpy(ak.fill_none(a, 0.0)).astype(np.float64).reshape(n, max_particles)

    px, py, pz, energy = (padded(b) for b in KINEMATIC_BRANCHES)
    pt, eta, phi = ptetaphi(px, py, pz)
    mask = pt > 0
    particles, mask = finish_particles(
        [pt, eta, phi, energy] + [padded(b) for b in FEATURE_BRANCHES], mask, max_particles
    )

    onehot = np.stack([ak.to_numpy(arrs[b]).astype(np.float64) for b in LABEL_BRANCHES], axis=1)
    bad = (onehot.sum(1) != 1) | ~np.isin(onehot, (0.0, 1.0)).all(1)
    if bad.any():
        rows = (np.nonzero(bad)[0][:5] + start).tolist()
        raise fail(path, "label_*", f"labels are not one-hot over {list(LABEL_BRANCHES)} (entries {rows})")
    labels = onehot.argmax(1)

    jpt, jeta, jphi, jen, jn = (ak.to_numpy(arrs[b]).astype(np.float64) for b in JET_BRANCHES)
    # mass of the jet four-vector (pT, eta, phi, E); sdmass is kept in extra
    jmass = np.sqrt(np.clip(jen**2 - (jpt * np.cosh(jeta)) ** 2, 0.0, None))
    jets = np.stack([jpt, jeta, jphi, jmass, jn], axis=1)
    extra = {EXTRA_BRANCHES[b]: ak.to_numpy(arrs[b]).astype(np.float32) for b in extras}
    js = JetSet(particles, mask, jets, labels, None, ALL_PARTICLE_FEATURES, extra)
    return js.validate(where=str(path))


def iter_jetclass(
    paths: PathLike | Sequence[PathLike],
    max_particles: int = 150,
    chunk_size: int = 100_000,
    *,
    extract_to: PathLike | None = None,
) -> Iterator[JetSet]:
    """Yield JetSets of at most ``chunk_size`` jets, file by file (bounded memory)."""
    for path in _as_paths(paths, extract_to):
        n = jetclass_num_entries(path)
        for lo in range(0, n, chunk_size):
            yield _read_file(path, max_particles, lo, min(lo + chunk_size, n))


def read_jetclass(
    paths: PathLike | Sequence[PathLike],
    max_particles: int = 150,
    start: int = 0,
    stop: int | None = None,
    *,
    extract_to: PathLike | None = None,
) -> JetSet:
    """Read JetClass ROOT files into one JetSet.

    ``paths`` is a ROOT file, a published ``.tar`` of them (extracted once, into
    ``extract_to`` or where ``jetlab data fetch`` unpacks it), a list of these, or a directory of ``*.root`` files;
    ``start``/``stop`` index the jets of all files concatenated in that order (tarballs and
    directories: by file index, then class, see :func:`~jetlab.data.readers.files.jetclass_order`). Particle (pT, eta, phi) come from
    ``part_px/py/pz``; charge, the five PID flags and d0/d0err/dz/dzerr (``part_d0val`` ...)
    follow. ``labels`` index :data:`JETCLASS_LABELS`. Jet features: ``jet_pt/eta/phi``, the
    mass of the jet four-vector built from ``jet_pt/eta/energy`` (the ungroomed mass, like the
    other datasets; ``jet_sdmass`` is kept as ``extra["sdmass"]`` with ``tau1..tau4``), and
    ``jet_nparticles`` (all constituents, before truncation).
    """
    files = _as_paths(paths, extract_to)
    sizes = [jetclass_num_entries(p) for p in files]
    total = int(sum(sizes))
    start, stop = resolve_range(
        files[0] if len(files) == 1 else f"read_jetclass({len(files)} files)", total, start, stop
    )
    sets, offset = [], 0
    for path, size in zip(files, sizes):
        lo, hi = max(start - offset, 0), min(stop - offset, size)
        if hi > lo:
            sets.append(_read_file(path, max_particles, lo, hi))
        offset += size
    if not sets:  # empty range: an empty JetSet with the right columns
        sets = [_read_file(files[0], max_particles, 0, 0)]
    keys = set.intersection(*(set(s.extra) for s in sets))
    for s in sets:
        if set(s.extra) != keys:
            raise SchemaError(
                f"read_jetclass: files differ in jet observables {sorted(set(s.extra) ^ keys)}; convert them separately"
            )
    return JetSet.concatenate(sets) if len(sets) > 1 else sets[0]
