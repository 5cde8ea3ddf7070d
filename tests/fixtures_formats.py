"""Write tiny files in each public dataset's REAL on-disk format, for reader and pipeline tests.

Each ``write_*`` takes explicit arrays (so tests can check known values); each ``make_*``
fills a small file with seeded random but physically shaped content. No network, no big files.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

JETCLASS_LABELS = ("QCD", "Hbb", "Hcc", "Hgg", "H4q", "Hqql", "Zqq", "Wqq", "Tbqq", "Tbl")
_FLAG_BRANCHES = ("isChargedHadron", "isNeutralHadron", "isPhoton", "isElectron", "isMuon")


# ---------------------------------------------------------------- JetClass (ROOT)
def write_jetclass_root(
    path: str | Path,
    particles: Sequence[np.ndarray],
    labels: Sequence[str] | str,
    *,
    charge: Sequence[np.ndarray] | None = None,
    flags: Sequence[np.ndarray] | None = None,
    d0: Sequence[np.ndarray] | None = None,
    omit: Sequence[str] = (),
    jet_nparticles: Sequence[int] | None = None,
    compression=None,
    rng: np.random.Generator | None = None,
) -> Path:
    """A JetClass-style ROOT file: TTree ``tree`` with jagged ``part_*`` and one-hot ``label_*``.

    ``particles[i]`` is an (n_i, 4) array of (px, py, pz, E) for jet i. Jet branches are the
    four-vector sums; ``omit`` leaves branches out (to test missing keys). ``compression`` is
    an uproot compression (``uproot.LZ4(4)`` ...; default uproot's ZLIB).
    """
    import awkward as ak
    import uproot

    path = Path(path)
    n = len(particles)
    if isinstance(labels, str):
        labels = [labels] * n
    rng = rng if rng is not None else np.random.default_rng(0)
    parts = [np.asarray(p, dtype=np.float64).reshape(-1, 4) for p in particles]
    counts = [len(p) for p in parts]

    def jag(values: Sequence[np.ndarray]):
        return ak.unflatten(np.concatenate([np.asarray(v, np.float32) for v in values]) if n else np.zeros(0, np.float32), counts)

    if charge is None:
        charge = [rng.choice([-1.0, 0.0, 1.0], size=c) for c in counts]
    if flags is None:
        flags = []
        for q in charge:
            f = np.zeros((len(q), 5))
            f[np.asarray(q) != 0, 0] = 1  # charged hadron
            f[np.asarray(q) == 0, 2] = 1  # photon
            flags.append(f)
    if d0 is None:
        d0 = [rng.normal(0, 0.05, size=c) for c in counts]
    psum = np.array([p.sum(0) for p in parts]) if n else np.zeros((0, 4))
    jpt = np.hypot(psum[:, 0], psum[:, 1])
    jeta = np.arcsinh(psum[:, 2] / np.where(jpt > 0, jpt, 1))
    jphi = np.arctan2(psum[:, 1], psum[:, 0])
    part = {
        "px": jag([p[:, 0] for p in parts]),
        "py": jag([p[:, 1] for p in parts]),
        "pz": jag([p[:, 2] for p in parts]),
        "energy": jag([p[:, 3] for p in parts]),
        "deta": jag([_eta(p) - jeta[i] for i, p in enumerate(parts)]),
        "dphi": jag([_wrap(np.arctan2(p[:, 1], p[:, 0]) - jphi[i]) for i, p in enumerate(parts)]),
        "d0val": jag(d0),
        "d0err": jag([np.full(c, 0.01) for c in counts]),
        "dzval": jag([2 * np.asarray(x) for x in d0]),
        "dzerr": jag([np.full(c, 0.02) for c in counts]),
        "charge": jag(charge),
    }
    for k, name in enumerate(_FLAG_BRANCHES):
        part[name] = jag([np.asarray(f)[:, k] for f in flags])
    part = {k: v for k, v in part.items() if f"part_{k}" not in omit}
    data = {
        "part": ak.zip(part),
        "jet_pt": jpt.astype(np.float32),
        "jet_eta": jeta.astype(np.float32),
        "jet_phi": jphi.astype(np.float32),
        "jet_energy": psum[:, 3].astype(np.float32),
        "jet_nparticles": np.asarray(jet_nparticles if jet_nparticles is not None else counts, np.float32),
        "jet_sdmass": (0.8 * np.sqrt(np.clip(psum[:, 3] ** 2 - (psum[:, :3] ** 2).sum(1), 0, None))).astype(np.float32),
    }
    for t in range(1, 5):
        data[f"jet_tau{t}"] = np.full(n, 0.5 / t, np.float32)
    for name in JETCLASS_LABELS:
        data[f"label_{name}"] = np.array([lab == name for lab in labels], dtype=bool)
    data = {k: v for k, v in data.items() if k not in omit}
    types = {k: (v.type.content if k == "part" else v.dtype) for k, v in data.items()}
    kw = {} if compression is None else {"compression": compression}
    with uproot.recreate(path, **kw) as f:
        f.mktree("tree", types, field_name=lambda outer, inner: f"{outer}_{inner}", counter_name=lambda c: "n" + c)
        f["tree"].extend(data)
    return path


def _wrap(phi):
    return (np.asarray(phi) + np.pi) % (2 * np.pi) - np.pi


def _eta(p4: np.ndarray) -> np.ndarray:
    pt = np.hypot(p4[:, 0], p4[:, 1])
    return np.arcsinh(p4[:, 2] / np.where(pt > 0, pt, 1.0))


def random_jet_particles(n_jets: int, rng: np.random.Generator, n_min: int = 5, n_max: int = 40, pt_jet: float = 500.0) -> list[np.ndarray]:
    """(n_i, 4) massless (px, py, pz, E) constituents collimated around a random axis."""
    out = []
    for _ in range(n_jets):
        n = int(rng.integers(n_min, n_max + 1))
        z = rng.dirichlet(np.ones(n)) * pt_jet
        eta0, phi0 = rng.uniform(-2, 2), rng.uniform(-np.pi, np.pi)
        eta = eta0 + rng.normal(0, 0.2, n)
        phi = phi0 + rng.normal(0, 0.2, n)
        out.append(np.stack([z * np.cos(phi), z * np.sin(phi), z * np.sinh(eta), z * np.cosh(eta)], 1))
    return out


def make_jetclass_root(path: str | Path, n_jets: int, label: str = "QCD", seed: int = 0, **kw) -> Path:
    rng = np.random.default_rng(seed)
    return write_jetclass_root(path, random_jet_particles(n_jets, rng), label, **kw)


# ------------------------------------------------------------- ATLAS top tagging
def write_atlas_h5(
    path: str | Path,
    clus: np.ndarray,
    jets: np.ndarray,
    labels: np.ndarray,
    weights: np.ndarray | None = None,
    weight_key: str = "training_weights",
    omit: Sequence[str] = (),
) -> Path:
    """ATLAS layout: ``clus`` (N, P, 4) = (pT, eta, phi, E) in MeV, ``jets`` (N, 4) = (pT, eta, phi, m) MeV."""
    import h5py

    path = Path(path)
    keys = {
        "fjet_clus_pt": clus[..., 0],
        "fjet_clus_eta": clus[..., 1],
        "fjet_clus_phi": clus[..., 2],
        "fjet_clus_E": clus[..., 3],
        "fjet_pt": jets[:, 0],
        "fjet_eta": jets[:, 1],
        "fjet_phi": jets[:, 2],
        "fjet_m": jets[:, 3],
        "labels": np.asarray(labels),
        "fjet_Tau1_wta": np.full(len(jets), 0.3),  # one of the high-level variables
    }
    if weights is not None:
        keys[weight_key] = np.asarray(weights)
    with h5py.File(path, "w") as f:
        for k, v in keys.items():
            if k not in omit:
                f.create_dataset(k, data=np.asarray(v, dtype=np.float32 if k != "labels" else np.int32))
    return path


def make_atlas_h5(path: str | Path, n_jets: int, max_clus: int = 200, seed: int = 0, **kw) -> Path:
    rng = np.random.default_rng(seed)
    clus = np.zeros((n_jets, max_clus, 4))
    jets = np.zeros((n_jets, 4))
    for i, p in enumerate(random_jet_particles(n_jets, rng, 5, min(60, max_clus), 600.0)):
        pt = np.hypot(p[:, 0], p[:, 1])
        order = np.argsort(-pt)
        p, pt = p[order], pt[order]
        k = len(p)
        clus[i, :k] = np.stack([pt, np.arcsinh(p[:, 2] / pt), np.arctan2(p[:, 1], p[:, 0]), p[:, 3]], 1) * [1e3, 1, 1, 1e3]
        s = p.sum(0)
        spt = np.hypot(s[0], s[1])
        jets[i] = [spt * 1e3, np.arcsinh(s[2] / spt), np.arctan2(s[1], s[0]), np.sqrt(max(s[3] ** 2 - (s[:3] ** 2).sum(), 0)) * 1e3]
    labels = rng.integers(0, 2, n_jets)
    return write_atlas_h5(path, clus, jets, labels, kw.pop("weights", rng.uniform(0.5, 2.0, n_jets)), **kw)


# ---------------------------------------------------------------- OmniFold Z+jets
PID_CODE = {22: 0.0, 211: 0.1, -211: 0.2, 130: 0.3, 11: 0.4, -11: 0.5, 13: 0.6, -13: 0.7, 321: 0.8, -321: 0.9, 2212: 1.0, -2212: 1.1, 2112: 1.2, -2112: 1.3}


def write_omnifold_npz(path: str | Path, levels: dict, *, observables: bool = True, omit: Sequence[str] = ()) -> Path:
    """energyflow zjets_delphes layout; ``levels = {"gen": (jets (N,4), particles (N,M,4)), "sim": ...}``.

    ``jets`` rows are (pT, y, phi, m) and particle rows (pT/100, y - y_jet, phi - phi_jet, PID code).
    """
    path = Path(path)
    arrays = {}
    for lvl, (jets, parts) in levels.items():
        arrays[f"{lvl}_jets"] = np.asarray(jets, np.float64)
        arrays[f"{lvl}_particles"] = np.asarray(parts, np.float64)
        n = len(jets)
        if observables:
            arrays[f"{lvl}_mults"] = (np.asarray(parts)[..., 0] > 0).sum(1).astype(np.float64)
            for k, obs in enumerate(("lhas", "widths", "ang2s", "tau2s", "sdms", "zgs")):
                arrays[f"{lvl}_{obs}"] = np.linspace(0.1, 0.2, n) * (k + 1)
    if "gen" in levels:
        arrays["gen_Zs"] = np.tile([250.0, 0.3, 1.0], (len(levels["gen"][0]), 1))
    arrays = {k: v for k, v in arrays.items() if k not in omit}
    with open(path, "wb") as fh:
        np.savez_compressed(fh, **arrays)
    return path


def make_omnifold_npz(path: str | Path, n_jets: int, seed: int = 0, pad_to: int = 120, **kw) -> Path:
    rng = np.random.default_rng(seed)
    levels = {}
    codes = np.array(list(PID_CODE.values()))
    for lvl in ("gen", "sim"):
        jets = np.stack([rng.uniform(200, 400, n_jets), rng.uniform(-2, 2, n_jets), rng.uniform(0, 2 * np.pi, n_jets), rng.uniform(5, 60, n_jets)], 1)
        parts = np.zeros((n_jets, pad_to, 4))
        for i in range(n_jets):
            k = int(rng.integers(3, pad_to))
            z = np.sort(rng.dirichlet(np.ones(k)))[::-1] * jets[i, 0] / 100
            parts[i, :k] = np.stack([z, rng.normal(0, 0.1, k), rng.normal(0, 0.1, k), rng.choice(codes, k)], 1)
        levels[lvl] = (jets, parts)
    return write_omnifold_npz(path, levels, **kw)


# ------------------------------------------------------------------ LHC Olympics
def write_lhco_h5(path: str | Path, events: np.ndarray, labels: np.ndarray | None) -> Path:
    """The R&D layout: pandas DataFrame, key ``df``, 'fixed' format, 2100 (+1 label) columns.

    ``events`` is (N, n <= 700, 3) of (pT, eta, phi); zero-padded to 700 particles.
    """
    import pandas as pd

    path = Path(path)
    n = len(events)
    full = np.zeros((n, 700, 3))
    full[:, : events.shape[1]] = events
    data = full.reshape(n, 2100)
    if labels is not None:
        data = np.concatenate([data, np.asarray(labels, np.float64)[:, None]], 1)
    pd.DataFrame(data).to_hdf(path, key="df", format="fixed", mode="w")
    return path


def dijet_event(rng: np.random.Generator, pt: float, mass_a: float, mass_b: float, n_each: int = 30, eta: float = 0.0) -> np.ndarray:
    """Two back-to-back collimated sprays (phi 0 and pi) of massless particles, (2 n_each, 3)."""
    out = []
    for phi0, m in ((0.0, mass_a), (np.pi, mass_b)):
        # spread chosen so the spray mass is roughly m: m^2 ~ pT^2 * <dR^2>
        spread = max(m / pt, 1e-3) / np.sqrt(2)
        z = rng.dirichlet(np.ones(n_each)) * pt
        out.append(np.stack([z, eta + rng.normal(0, spread, n_each), phi0 + rng.normal(0, spread, n_each)], 1))
    ev = np.concatenate(out)
    ev[:, 2] = (ev[:, 2] + np.pi) % (2 * np.pi) - np.pi
    return ev


def make_lhco_h5(path: str | Path, n_events: int, seed: int = 0, with_labels: bool = True) -> Path:
    rng = np.random.default_rng(seed)
    evs = np.stack([dijet_event(rng, rng.uniform(1300, 1800), rng.uniform(20, 500), rng.uniform(20, 500)) for _ in range(n_events)])
    labels = rng.integers(0, 2, n_events) if with_labels else None
    return write_lhco_h5(path, evs, labels)


def write_lhco_features_h5(path: str | Path, j1: np.ndarray, j2: np.ndarray, labels: np.ndarray) -> Path:
    """``.features.h5``: columns pxj1, pyj1, pzj1, mj1, tau1j1..3, ...j2, label (pandas, key ``df``)."""
    import pandas as pd

    names = ("px", "py", "pz", "m", "tau1", "tau2", "tau3")
    cols = {}
    for tag, j in (("j1", j1), ("j2", j2)):
        for k, nm in enumerate(names):
            cols[f"{nm}{tag}"] = np.asarray(j[:, k], np.float64)
    cols["label"] = np.asarray(labels, np.float64)
    pd.DataFrame(cols).to_hdf(path, key="df", format="fixed", mode="w")
    return Path(path)


# -------------------------------------------------------------- Aspen Open Jets
def write_aspen_h5(path: str | Path, pfcands: np.ndarray, jet_kinematics: np.ndarray, omit: Sequence[str] = ()) -> Path:
    """``PFCands`` (N, 150, 11) and ``jet_kinematics`` (N, 4) plus ``event_info``/``jet_tagging``."""
    import h5py

    path = Path(path)
    n = len(jet_kinematics)
    keys = {
        "PFCands": np.asarray(pfcands, np.float32),
        "jet_kinematics": np.asarray(jet_kinematics, np.float32),
        "event_info": np.zeros((n, 6), np.int64),
        "jet_tagging": np.zeros((n, 13), np.float32),
    }
    with h5py.File(path, "w") as f:
        for k, v in keys.items():
            if k not in omit:
                f.create_dataset(k, data=v, compression="gzip")
    return path


def make_aspen_h5(path: str | Path, n_jets: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    pf = np.zeros((n_jets, 150, 11))
    kin = np.zeros((n_jets, 4))
    pdgs = np.array([211, -211, 130, 22, 11, -13, 1, 2])
    charges = {211: 1, -211: -1, 130: 0, 22: 0, 11: -1, -13: 1, 1: 0, 2: 0}
    for i, p in enumerate(random_jet_particles(n_jets, rng, 5, 80, 400.0)):
        k = len(p)
        ids = rng.choice(pdgs, k)
        pf[i, :k, :4] = p
        pf[i, :k, 4] = rng.normal(0, 0.01, k)
        pf[i, :k, 5] = 0.002
        pf[i, :k, 6] = rng.normal(0, 0.02, k)
        pf[i, :k, 7] = 0.003
        pf[i, :k, 8] = [charges[int(x)] for x in ids]
        pf[i, :k, 9] = ids
        pf[i, :k, 10] = rng.uniform(0, 1, k)
        s = p.sum(0)
        spt = np.hypot(s[0], s[1])
        kin[i] = [spt, np.arcsinh(s[2] / spt), np.arctan2(s[1], s[0]), 30.0]
    return write_aspen_h5(path, pf, kin)


# =====================================================================================
# Whole-dataset replicas: the files `jetlab data fetch NAME` puts under $JETLAB_DATA/NAME/,
# written with each publisher's own tool, tiny, with physically shaped content.
# =====================================================================================
#: JetClass file prefixes, in label order (data_manifests/jetclass.yaml `labels`).
JETCLASS_PREFIXES = ("ZJetsToNuNu", "HToBB", "HToCC", "HToGG", "HToWW4Q", "HToWW2Q1L", "ZToQQ", "WToQQ", "TTBar", "TTBarLep")
#: (number of prongs, jet mass target [GeV]) per JetClass class: the decay each class stands for.
_JETCLASS_SHAPES = {"QCD": (1, 0), "Hbb": (2, 125), "Hcc": (2, 125), "Hgg": (2, 125), "H4q": (4, 125),
                    "Hqql": (3, 125), "Zqq": (2, 91), "Wqq": (2, 80), "Tbqq": (3, 173), "Tbl": (2, 140)}  # fmt: skip
ATLAS_HL_KEYS = ("fjet_Tau1_wta", "fjet_Tau2_wta", "fjet_Tau3_wta", "fjet_Tau4_wta", "fjet_Split12", "fjet_Split23",
                 "fjet_ECF1", "fjet_ECF2", "fjet_ECF3", "fjet_C2", "fjet_D2", "fjet_Qw", "fjet_L2", "fjet_L3",
                 "fjet_ThrustMaj")  # fmt: skip
OMNIFOLD_GENERATORS = ("Herwig", "Pythia21", "Pythia25", "Pythia26")
LHCO_EVENTS = "events_anomalydetection_v2.h5"
LHCO_FEATURES = "events_anomalydetection_v2.features.h5"
#: PDG id -> (charge, mass [GeV]) of what the replicas put in jets.
_PDG = {22: (0, 0.0), 211: (1, 0.13957039), -211: (-1, 0.13957039), 130: (0, 0.497611), 321: (1, 0.493677),
        -321: (-1, 0.493677), 2212: (1, 0.93827208816), -2212: (-1, 0.93827208816), 2112: (0, 0.93956542052),
        -2112: (0, 0.93956542052), 11: (-1, 0.00051099895), -11: (1, 0.00051099895), 13: (-1, 0.1056583755),
        -13: (1, 0.1056583755), 1: (0, 0.0), 2: (0, 0.0)}  # fmt: skip
_PID_MIX = (22, 211, -211, 130, 321, -321, 2212, -2212, 2112, -2112, 11, -11, 13, -13)
_PID_P = np.array([28, 22, 22, 9, 4, 4, 2, 2, 2, 2, 1, 1, 0.5, 0.5])


def spray(rng: np.random.Generator, n: int, pt: float, eta: float, phi: float, mass: float, *, prongs: int = 1,
          radius: float = 0.7, pdg: np.ndarray | None = None) -> np.ndarray:
    """(n, 4) (px, py, pz, E) of a jet of ``n`` particles inside ``radius`` of (eta, phi).

    ``prongs`` hard sub-axes at an angle ~ 2 mass / pT from the axis give two/three/four-prong
    jets with a mass near ``mass`` (QCD: one prong, mass from the spread); momentum fractions
    are Dirichlet; particles with a PDG id get that mass (massless otherwise).
    """
    n = max(int(n), prongs)
    d = min(2.0 * mass / pt, 2 * (radius - 0.1)) if prongs > 1 else 0.0  # prong separation ~ 2 m / pT
    angles = rng.uniform(0, 2 * np.pi) + 2 * np.pi * np.arange(prongs) / prongs
    centres = np.stack([d / 2 * np.cos(angles), d / 2 * np.sin(angles)], 1)
    which = np.arange(n) % prongs
    sigma = 0.03 if prongs > 1 else rng.uniform(0.03, 0.12)
    off = centres[which] + rng.normal(0, sigma, (n, 2))
    r = np.hypot(off[:, 0], off[:, 1])
    off *= np.where(r > radius * 0.95, radius * 0.95 / np.where(r > 0, r, 1), 1.0)[:, None]  # stay inside the cone
    z = rng.dirichlet(np.full(n, 0.7)) * pt
    z = np.maximum(z, 1e-3 * pt / n)
    eta_i, phi_i = eta + off[:, 0], phi + off[:, 1]
    m = np.zeros(n) if pdg is None else np.array([_PDG[int(x)][1] for x in pdg])
    mt = np.sqrt(z**2 + m**2)
    return np.stack([z * np.cos(phi_i), z * np.sin(phi_i), mt * np.sinh(eta_i), mt * np.cosh(eta_i)], 1)


def four_vector_sum(p4: np.ndarray) -> tuple[float, float, float, float]:
    """(pT, eta, phi, m) of the sum of (n, 4) (px, py, pz, E) rows (numpy, independent of jetlab)."""
    s = np.asarray(p4, np.float64).sum(0)
    pt = float(np.hypot(s[0], s[1]))
    m2 = s[3] ** 2 - s[0] ** 2 - s[1] ** 2 - s[2] ** 2
    return pt, float(np.arcsinh(s[2] / pt)) if pt > 0 else 0.0, float(np.arctan2(s[1], s[0])), float(np.sqrt(max(m2, 0.0)))


@dataclass
class Replica:
    """What :func:`write_replica` wrote.

    ``files[split]``: the raw files in reading order, as fetch leaves them (tarballs, ``.h5.gz``
    shards, ``.npz``, ``.h5``). ``truth[split]``: per-jet (per-event for LHCO) arrays in that same
    order, computed here with numpy from the values written (in GeV, after the file's own
    rounding to float32 where the format stores float32): see each writer for the keys.
    ``rows[split]``: jets (events) per file.
    """

    name: str
    directory: Path
    files: dict[str, list[Path]] = field(default_factory=dict)
    truth: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    rows: dict[str, list[int]] = field(default_factory=dict)

    def n(self, split: str) -> int:
        return int(sum(self.rows[split]))


def _split_sizes(n: int, k: int) -> list[int]:
    """``n`` rows over ``k`` files, unequal like real shards (the last ones smaller), none empty."""
    n = max(n, k)
    w = np.linspace(1.5, 0.5, k)
    sizes = np.floor(n * w / w.sum()).astype(int)
    sizes = np.maximum(sizes, 1)
    sizes[0] += n - sizes.sum()
    return sizes.tolist()


def _truth(rows: list[dict]) -> dict[str, np.ndarray]:
    return {k: np.array([r[k] for r in rows]) for k in rows[0]} if rows else {}


# ------------------------------------------------------------------------- JetClass
def _jetclass_file(path: Path, label: str, n: int, rng: np.random.Generator, compression) -> list[dict]:
    prongs, mass = _JETCLASS_SHAPES[label]
    parts, charges, flags, d0s, truth = [], [], [], [], []
    for _ in range(n):
        k = int(rng.integers(20, 90))
        pdg = rng.choice(_PID_MIX, size=k, p=_PID_P / _PID_P.sum())
        if label == "Tbl":  # a lepton from the W
            pdg[0] = rng.choice([11, -13])
        p4 = spray(rng, k, rng.uniform(500, 1000), rng.uniform(-2, 2), rng.uniform(-np.pi, np.pi), mass,
                   prongs=prongs, radius=0.7, pdg=pdg)
        q = np.array([_PDG[int(x)][0] for x in pdg], float)
        a = np.abs(pdg)
        f = np.stack([np.isin(a, (211, 321, 2212)), np.isin(a, (130, 2112)), a == 22, a == 11, a == 13], 1).astype(float)
        parts.append(p4)
        charges.append(q)
        flags.append(f)
        d0s.append(np.where(q != 0, rng.normal(0, 0.05, k), 0.0))
        p32 = p4.astype(np.float32).astype(np.float64)  # ROOT stores float32
        pt, eta, phi, m = four_vector_sum(p32)
        truth.append({"labels": JETCLASS_LABELS.index(label), "n_particles": k, "pt": pt, "mass": m,
                      "max_particle_pt": float(np.hypot(p32[:, 0], p32[:, 1]).max())})
    write_jetclass_root(path, parts, label, charge=charges, flags=flags, d0=d0s, compression=compression, rng=rng)
    return truth


def _write_jetclass(rep: Replica, n_jets: int, rng, files_per_split: int | None) -> None:
    import tarfile

    import uproot

    d = rep.directory
    n_parts = files_per_split or 2
    # The publisher's layout (jet-universe/particle_transformer, get_datasets.py and train_JetClass.sh):
    # get_datasets.py extracts each train part into `Pythia/train_100M/` and the val/test tarballs into
    # `Pythia/`, and train_JetClass.sh then reads `train_100M/*.root`, `val_5M/*.root`, `test_20M/*.root`:
    # the train tarballs hold their ROOT files at the top level, val/test hold a `val_5M/` / `test_20M/` folder.
    splits = {"train": [(f"JetClass_Pythia_train_100M_part{k}.tar", "train_100M", 10 * k) for k in range(n_parts)],
              "val": [("JetClass_Pythia_val_5M.tar", "val_5M", 120)],
              "test": [("JetClass_Pythia_test_20M.tar", "test_20M", 100)]}  # fmt: skip
    folder_in_tar = {"train": False, "val": True, "test": True}
    # val with LZ4 baskets, the rest uproot's default ZLIB: both codecs a ROOT reader meets
    codec = {"train": None, "val": uproot.LZ4(4), "test": None}
    for split, tars in splits.items():
        per_file = _split_sizes(n_jets, 10 * len(tars))
        members: list[tuple[str, int, list[dict]]] = []
        with tempfile.TemporaryDirectory(dir=d) as tmp:
            for t, (tar_name, sub, index) in enumerate(tars):
                (Path(tmp) / sub).mkdir(exist_ok=True)
                names = []
                for c, (prefix, label) in enumerate(zip(JETCLASS_PREFIXES, JETCLASS_LABELS)):
                    name = f"{sub}/{prefix}_{index:03d}.root"
                    n = per_file[10 * t + c]
                    members.append((name, n, _jetclass_file(Path(tmp) / name, label, n, rng, codec[split])))
                    names.append(name)
                with tarfile.open(d / tar_name, "w") as tar:  # plain tar, as published
                    for name in names:
                        tar.add(Path(tmp) / name, arcname=name if folder_in_tar[split] else Path(name).name)
        rep.files[split] = [d / t[0] for t in tars]
        members.sort(key=lambda m: _root_order(m[0]))  # the order raw_files lists the extracted files
        rep.rows[split] = [m[1] for m in members]
        rep.truth[split] = _truth([r for m in members for r in m[2]])
        rep.truth[split]["files"] = np.array([m[0] for m in members])


def _root_order(name: str) -> tuple:
    """Extracted ROOT files: by file index, then class (label) order: HToBB_000 < ... < HToBB_010."""
    stem = Path(name).stem
    prefix, _, index = stem.rpartition("_")
    return (int(index), JETCLASS_PREFIXES.index(prefix))


# ------------------------------------------------------------------ ATLAS top tagging
def _atlas_arrays(n: int, rng, max_clus: int = 200) -> tuple[dict[str, np.ndarray], list[dict]]:
    """One shard's arrays as published (MeV, float32, pT-ordered, zero-padded to 200)."""
    clus = np.zeros((n, max_clus, 4), np.float32)
    jets = np.zeros((n, 4), np.float32)
    labels = rng.integers(0, 2, n)
    truth = []
    for i in range(n):
        k = int(rng.integers(15, 110))
        pt0 = 350 + rng.exponential(300) if labels[i] == 0 else rng.uniform(350, 1500)
        prongs, mass = (3, 173.0) if labels[i] else (1, 0.0)
        p4 = spray(rng, k, pt0, rng.uniform(-2, 2), rng.uniform(-np.pi, np.pi), mass, prongs=prongs, radius=0.9)
        p4 *= max(1.0, 355.0 / np.hypot(*p4[:, :2].sum(0)))  # the release's jet pT > 350 GeV (massless: scales)
        pt = np.hypot(p4[:, 0], p4[:, 1])
        order = np.argsort(-pt, kind="stable")
        p4, pt = p4[order], pt[order]
        row = np.stack([pt * 1e3, np.arcsinh(p4[:, 2] / pt), np.arctan2(p4[:, 1], p4[:, 0]), p4[:, 3] * 1e3], 1)
        clus[i, :k] = row
        c = clus[i, :k].astype(np.float64)
        back = np.stack([c[:, 0] * np.cos(c[:, 2]), c[:, 0] * np.sin(c[:, 2]), c[:, 0] * np.sinh(c[:, 1]), c[:, 3]], 1) / 1e3
        jpt, jeta, jphi, jm = four_vector_sum(back)
        jets[i] = [jpt * 1e3, jeta, jphi, jm * 1e3]
        truth.append({"labels": int(labels[i]), "n_particles": k, "pt": float(jets[i, 0]) / 1e3,
                      "mass": float(jets[i, 3]) / 1e3, "constituent_mass": jm})
    arrays = {"fjet_clus_pt": clus[..., 0], "fjet_clus_eta": clus[..., 1], "fjet_clus_phi": clus[..., 2],
              "fjet_clus_E": clus[..., 3], "fjet_pt": jets[:, 0], "fjet_eta": jets[:, 1], "fjet_phi": jets[:, 2],
              "fjet_m": jets[:, 3], "labels": labels.astype(np.float32)}  # fmt: skip
    for key in ATLAS_HL_KEYS:
        arrays[key] = rng.uniform(0.05, 1.0, n).astype(np.float32)
    weights = rng.uniform(0.2, 3.0, n).astype(np.float32)
    arrays["training_weights"] = weights
    for t, w in zip(truth, weights):
        t["weights"] = float(w)
    return arrays, truth


def write_atlas_shard(path: str | Path, arrays: dict[str, np.ndarray], *, gzip_file: bool = True, compression=None) -> Path:
    """h5py datasets as in the ATLAS release; ``x.h5.gz`` = the HDF5 file through gzip."""
    import gzip
    import shutil

    import h5py

    path = Path(path)
    h5 = path.with_suffix("") if gzip_file else path
    with h5py.File(h5, "w") as f:
        for k, v in arrays.items():
            f.create_dataset(k, data=v, compression=compression)
    if gzip_file:
        with open(h5, "rb") as fin, gzip.open(path, "wb", compresslevel=6) as fout:
            shutil.copyfileobj(fin, fout)
        h5.unlink()
    return path


def _write_atlas(rep: Replica, n_jets: int, rng, files_per_split: int | None, legacy: bool = False) -> None:
    d = rep.directory
    if legacy:  # record 15013: one plain HDF5 file per split
        plan = {"train": ["train.h5"], "test": ["test.h5"]}
    else:
        k = files_per_split or 3
        plan = {"train": [f"train_nominal_{i:03d}.h5.gz" for i in range(k)],
                "test": [f"test_nominal_{i:03d}.h5.gz" for i in range(max(k - 1, 1))]}  # fmt: skip
    for split, names in plan.items():
        sizes = _split_sizes(n_jets, len(names))
        truth = []
        for name, n in zip(names, sizes):
            arrays, t = _atlas_arrays(n, rng)
            write_atlas_shard(d / name, arrays, gzip_file=name.endswith(".gz"), compression=None if name.endswith(".gz") else "lzf")
            truth += t
        rep.files[split] = [d / n for n in names]
        rep.rows[split] = sizes
        rep.truth[split] = _truth(truth)


# ------------------------------------------------------------------- OmniFold Z+jets
_CODE = {22: 0.0, 211: 0.1, -211: 0.2, 130: 0.3, 11: 0.4, -11: 0.5, 13: 0.6, -13: 0.7, 321: 0.8, -321: 0.9, 2212: 1.0,
         -2212: 1.1, 2112: 1.2, -2112: 1.3}  # fmt: skip


def _ptyphi_p4(pt, y, phi, pdg) -> np.ndarray:
    """energyflow's p4s_from_ptyphipids: massive four-vectors from (pT, y, phi, PDG id)."""
    m = np.array([_PDG[int(x)][1] for x in pdg])
    mt = np.sqrt(pt**2 + m**2)
    return np.stack([pt * np.cos(phi), pt * np.sin(phi), mt * np.sinh(y), mt * np.cosh(y)], 1)


def _omnifold_level(rng, n: int, axes: np.ndarray, gen_parts=None) -> list[np.ndarray]:
    """Per jet an (k, 4) (pT, y, phi, PDG) particle list: gen = Z+jet recoil jet (R = 0.4); sim =
    gen smeared in pT, some particles lost, charged/neutral hadrons seen as tracks/HCAL cells."""
    out = []
    for i in range(n):
        if gen_parts is None:
            k = int(rng.integers(8, 70))
            pdg = rng.choice(_PID_MIX, size=k, p=_PID_P / _PID_P.sum())
            z = rng.dirichlet(np.full(k, 0.7)) * axes[i, 0]
            off = rng.normal(0, rng.uniform(0.03, 0.09), (k, 2))
            off *= np.minimum(1.0, 0.38 / np.maximum(np.hypot(off[:, 0], off[:, 1]), 1e-9))[:, None]
            out.append(np.stack([np.maximum(z, 0.05), axes[i, 1] + off[:, 0], axes[i, 2] + off[:, 1], pdg], 1))
        else:
            g = gen_parts[i]
            keep = rng.uniform(size=len(g)) > 0.15
            keep[np.argmax(g[:, 0])] = True
            g = g[keep].copy()
            g[:, 0] *= rng.normal(1.0, 0.08, len(g)).clip(0.5, 1.5)
            g[np.isin(g[:, 3], (130, 2112, -2112)), 3] = 130  # Delphes: neutral hadrons are HCAL cells (K0_L)
            out.append(g)
    return out


def _omnifold_file(path: Path, n: int, rng, compressed: bool) -> dict[str, list[dict]]:
    zpt = rng.uniform(200, 500, n)
    axes = np.stack([zpt * rng.normal(1.0, 0.1, n).clip(0.7, 1.3), rng.uniform(-2.0, 2.0, n), rng.uniform(-np.pi, np.pi, n)], 1)
    gen = _omnifold_level(rng, n, axes)
    sim = _omnifold_level(rng, n, axes, gen_parts=gen)
    arrays: dict[str, np.ndarray] = {}
    truth: dict[str, list[dict]] = {"gen": [], "reco": []}
    for level, coll, parts in (("gen", "gen", gen), ("sim", "reco", sim)):
        width = max(len(p) for p in parts)  # each file is padded to its own longest jet
        jets = np.zeros((n, 4))
        rel = np.zeros((n, width, 4))
        obs = {k: np.zeros(n) for k in ("mults", "lhas", "widths", "ang2s", "tau2s", "sdms", "zgs")}
        for i, p in enumerate(parts):
            p = p[np.argsort(-p[:, 0], kind="stable")]
            p4 = _ptyphi_p4(p[:, 0], p[:, 1], p[:, 2], p[:, 3])
            s = p4.sum(0)
            jpt = np.hypot(s[0], s[1])
            jm = np.sqrt(max(s[3] ** 2 - (s[:3] ** 2).sum(), 0.0))
            jy = 0.5 * np.log((s[3] + s[2]) / (s[3] - s[2]))
            jphi = np.arctan2(s[1], s[0])
            jets[i] = [jpt, jy, jphi, jm]
            dphi = _wrap(p[:, 2] - jphi)
            rel[i, : len(p)] = np.stack([p[:, 0] / 100.0, p[:, 1] - jy, dphi, [_CODE[int(x)] for x in p[:, 3]]], 1)
            dr = np.hypot(p[:, 1] - jy, dphi)
            zf = p[:, 0] / p[:, 0].sum()
            obs["mults"][i] = len(p)
            obs["widths"][i] = (zf * dr).sum() / 0.4
            obs["lhas"][i] = (zf * (dr / 0.4) ** 0.5).sum()
            obs["ang2s"][i] = (zf * (dr / 0.4) ** 2).sum()
            obs["tau2s"][i] = obs["widths"][i] * rng.uniform(0.3, 0.8)
            obs["sdms"][i] = jm * rng.uniform(0.5, 1.0)
            obs["zgs"][i] = rng.uniform(0.1, 0.5)
            truth[coll].append({"n_particles": len(p), "pt": jpt, "mass": jm, "y": jy, "width": obs["widths"][i]})
        arrays[f"{level}_jets"] = jets
        arrays[f"{level}_particles"] = rel
        for k, v in obs.items():
            arrays[f"{level}_{k}"] = v
    arrays["gen_Zs"] = np.stack([zpt, rng.normal(0, 1, n), _wrap(axes[:, 2] + np.pi)], 1)
    with open(path, "wb") as fh:  # energyflow's files are numpy .npz archives
        (np.savez_compressed if compressed else np.savez)(fh, **arrays)
    return truth


def _write_omnifold(rep: Replica, n_jets: int, rng, generators: Sequence[str] | None) -> None:
    for gen in generators or ("Herwig", "Pythia21"):
        sizes = _split_sizes(n_jets, 17)
        truth: dict[str, list[dict]] = {"gen": [], "reco": []}
        files = []
        for i, n in enumerate(sizes):
            path = rep.directory / f"{gen}_Zjet_pTZ-200GeV_{i}.npz"
            t = _omnifold_file(path, n, rng, compressed=bool(i % 2))
            truth["gen"] += t["gen"]
            truth["reco"] += t["reco"]
            files.append(path)
        rep.files[gen] = files  # numeric order: _2 before _10
        rep.rows[gen] = sizes
        rep.truth[gen] = {f"{c}_{k}": v for c in ("gen", "reco") for k, v in _truth(truth[c]).items()}


# ---------------------------------------------------------------------- LHC Olympics
def lhco_event(rng: np.random.Generator, signal: bool) -> tuple[np.ndarray, list[np.ndarray]]:
    """One R&D-like event: two hard R = 1 jets back to back plus soft forward particles.

    Signal: W' (3.5 TeV) -> X (500 GeV) Y (100 GeV), two-prong jets; QCD: one-prong jets with
    pT above the 1.2 TeV trigger. Every particle of a hard jet lies within 0.45 of its axis and
    the soft particles > 1.1 away from both, so anti-kT R = 1 finds exactly these two leading
    jets. Returns (k, 3) massless (pT, eta, phi) rows in no particular order and the two jets'
    (pT, eta, phi) rows (for the truth).
    """
    if signal:
        pt = rng.normal(1700, 60)
        specs = [(pt, 500.0, 2), (pt, 100.0, 2)]
        deta = rng.normal(0, 0.4)
    else:
        pt = 1200 + rng.exponential(250)
        specs = [(pt, rng.uniform(20, 200), 1), (pt * rng.uniform(0.85, 1.0), rng.uniform(20, 200), 1)]
        deta = rng.normal(0, 1.0)
    phi0 = rng.uniform(-np.pi, np.pi)
    eta_c = rng.uniform(-0.6, 0.6)
    jets = []
    for j, (jpt, m, prongs) in enumerate(specs):
        eta = eta_c + (deta / 2 if j == 0 else -deta / 2)
        p4 = spray(rng, int(rng.integers(40, 110)), jpt, eta, phi0 + j * np.pi, m, prongs=prongs, radius=0.45)
        pt_i = np.hypot(p4[:, 0], p4[:, 1])
        jets.append(np.stack([pt_i, np.arcsinh(p4[:, 2] / pt_i), _wrap(np.arctan2(p4[:, 1], p4[:, 0]))], 1))
    n_soft = int(rng.integers(20, 100))  # R&D events hold ~100-300 particles of the 700 slots
    soft = np.stack([rng.exponential(2.0, n_soft) + 0.5, rng.choice([-1, 1], n_soft) * rng.uniform(2.6, 3.5, n_soft),
                     _wrap(phi0 + np.pi / 2 + rng.choice([0, np.pi], n_soft) + rng.uniform(-0.3, 0.3, n_soft))], 1)  # fmt: skip
    ev = np.concatenate(jets + [soft])
    return ev[rng.permutation(len(ev))], jets


def _massless_p4(rows: np.ndarray) -> np.ndarray:
    pt, eta, phi = rows[:, 0], rows[:, 1], rows[:, 2]
    return np.stack([pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta), pt * np.cosh(eta)], 1)


def write_pandas_h5(path: str | Path, frame, *, format: str = "fixed", complib: str | None = None, complevel: int = 5) -> Path:
    """``DataFrame.to_hdf`` as the LHCO organisers wrote their files (key ``df``)."""
    kw = {"complib": complib, "complevel": complevel} if complib else {}
    frame.to_hdf(path, key="df", format=format, mode="w", **kw)
    return Path(path)


def _write_lhco(rep: Replica, n_events: int, rng, *, format: str, complib: str | None, labelled: bool = True) -> None:
    import pandas as pd

    n = max(n_events, 2)
    labels = (rng.uniform(size=n) < 0.1).astype(int)  # R&D: 1M QCD + 100k signal
    labels[:2] = [0, 1]
    data = np.zeros((n, 2100))
    feats = np.zeros((n, 15))
    rows = []
    for i in range(n):
        ev, jets = lhco_event(rng, bool(labels[i]))
        data[i, : 3 * len(ev)] = ev.reshape(-1)
        p4s = [_massless_p4(j) for j in jets]
        ms = [four_vector_sum(p)[3] for p in p4s]
        pts = [four_vector_sum(p)[0] for p in p4s]
        heavy = int(np.argmax(ms))
        mjj = four_vector_sum(np.concatenate(p4s))[3]
        rows.append({"labels": int(labels[i]), "mjj": mjj, "jet1_mass": ms[heavy], "jet2_mass": ms[1 - heavy],
                     "jet1_n_particles": len(jets[heavy]), "jet2_n_particles": len(jets[1 - heavy]),
                     "jet1_pt": pts[heavy], "jet2_pt": pts[1 - heavy], "n_particles": len(ev)})  # fmt: skip
        lead = int(np.argmax(pts))  # features file: j1/j2 = the two leading jets by pT
        for j, idx in enumerate((lead, 1 - lead)):
            s = p4s[idx].sum(0)
            tau1 = rng.uniform(0.2, 0.6) * ms[idx]
            feats[i, 7 * j : 7 * j + 7] = [s[0], s[1], s[2], ms[idx], tau1, tau1 * rng.uniform(0.2, 0.9), tau1 * rng.uniform(0.1, 0.5)]
        feats[i, 14] = labels[i]
    frame = pd.DataFrame(np.concatenate([data, labels[:, None].astype(float)], 1) if labelled else data)
    cols = [f"{a}{j}" for j in ("j1", "j2") for a in ("px", "py", "pz", "m", "tau1", "tau2", "tau3")] + ["label"]
    d = rep.directory
    write_pandas_h5(d / LHCO_EVENTS, frame, format=format, complib=complib)
    write_pandas_h5(d / LHCO_FEATURES, pd.DataFrame(feats, columns=cols), format=format, complib=complib)
    rep.files["events"] = [d / LHCO_EVENTS]
    rep.files["features"] = [d / LHCO_FEATURES]
    rep.rows["events"] = rep.rows["features"] = [n]
    rep.truth["events"] = _truth(rows)
    rep.truth["features"] = {c: feats[:, k] for k, c in enumerate(cols)}


# ------------------------------------------------------------------- Aspen Open Jets
_ASPEN_PDG = (211, -211, 130, 22, 11, -11, 13, -13, 1, 2)
_ASPEN_P = np.array([30, 30, 10, 25, 0.7, 0.7, 0.5, 0.5, 1.3, 1.3])


def _aspen_arrays(n: int, rng) -> tuple[dict[str, np.ndarray], list[dict]]:
    pf = np.zeros((n, 150, 11), np.float32)
    kin = np.zeros((n, 4), np.float32)
    truth = []
    for i in range(n):
        k = int(rng.integers(15, 140))
        pdg = rng.choice(_ASPEN_PDG, size=k, p=_ASPEN_P / _ASPEN_P.sum())
        prongs, mass = (3, 173.0) if rng.uniform() < 0.15 else (1, 0.0)
        p4 = spray(rng, k, 300 + rng.exponential(200), rng.uniform(-2.4, 2.4), rng.uniform(-np.pi, np.pi), mass,
                   prongs=prongs, radius=0.75, pdg=pdg)
        q = np.array([_PDG[int(x)][0] for x in pdg], float)
        pf[i, :k, :4] = p4
        # cm; a candidate without a track carries the producer's -1 in all four (PFNano's default)
        pf[i, :k, 4] = np.where(q != 0, rng.normal(0, 0.002, k), -1)
        pf[i, :k, 5] = np.where(q != 0, 0.001, -1)
        pf[i, :k, 6] = np.where(q != 0, rng.normal(0, 0.005, k), -1)
        pf[i, :k, 7] = np.where(q != 0, 0.002, -1)
        pf[i, :k, 8] = q
        pf[i, :k, 9] = pdg
        pf[i, :k, 10] = np.where(q != 0, 1.0, rng.uniform(0, 1, k))
        c = pf[i, :k, :4].astype(np.float64)
        jpt, jeta, jphi, jm = four_vector_sum(c)
        kin[i] = [jpt, jeta, jphi, jm * rng.uniform(0.6, 1.0)]  # soft-drop mass <= mass
        truth.append({"labels": 0, "n_particles": k, "pt": float(kin[i, 0]), "mass": jm, "sdmass": float(kin[i, 3])})
    arrays = {"PFCands": pf, "jet_kinematics": kin,
              "event_info": np.stack([np.full(n, 279_000 + rng.integers(0, 5000)), rng.integers(1, 2000, n),
                                      rng.integers(1, 10**9, n), rng.integers(1, 60, n)], 1).astype(np.int64),
              "jet_tagging": rng.uniform(0, 1, (n, 8)).astype(np.float32)}  # fmt: skip
    return arrays, truth


def _write_aspen(rep: Replica, n_jets: int, rng, files_per_split: int | None) -> None:
    import h5py

    k = files_per_split or 2
    names = [f"RunG_batch{i}.h5" for i in range(k)]
    sizes = _split_sizes(n_jets, k)
    truth = []
    for i, (name, n) in enumerate(zip(names, sizes)):
        arrays, t = _aspen_arrays(n, rng)
        with h5py.File(rep.directory / name, "w") as f:  # h5py datasets; gzip and lzf both occur in the field
            for key, v in arrays.items():
                f.create_dataset(key, data=v, compression="gzip" if i % 2 == 0 else "lzf", chunks=True)
        truth += t
    rep.files["jets"] = [rep.directory / n for n in names]
    rep.rows["jets"] = sizes
    rep.truth["jets"] = _truth(truth)


REPLICA_NAMES = ("jetclass", "atlas_toptag", "omnifold_zjets", "lhco_rnd", "aspen_open_jets")


def write_replica(
    name: str,
    directory: str | Path,
    n_jets: int = 200,
    seed: int = 0,
    *,
    files_per_split: int | None = None,
    generators: Sequence[str] | None = None,
    lhco_format: str = "fixed",
    complib: str | None = "blosc",
    legacy: bool = False,
) -> Replica:
    """Lay out a tiny replica of public dataset ``name`` in ``directory`` as ``jetlab data fetch``
    would leave it (``directory`` = ``$JETLAB_DATA/<name>``; file names from data_manifests/).

    ``n_jets`` is per split (per generator for Z+jets; events for LHCO). What is written:

    * ``jetclass``: ``JetClass_Pythia_train_100M_part{0..files_per_split-1}.tar`` (default 2),
      ``JetClass_Pythia_val_5M.tar``, ``JetClass_Pythia_test_20M.tar``; each holds one uproot
      ROOT file per class, laid out as published: the train parts at the top level
      (``HToBB_000.root``, extracted into ``train_100M/``), val and test in their folder
      (``val_5M/HToBB_120.root``, ``test_20M/HToBB_100.root`` ...); ``truth[split]["files"]`` are
      the paths after extraction; splits train/val/test; val uses LZ4 baskets.
    * ``atlas_toptag``: ``train_nominal_000.h5.gz`` ... (default 3) and ``test_nominal_*`` (one
      fewer): h5py files in MeV, gzipped; ``legacy=True`` writes 2022's plain ``train.h5`` /
      ``test.h5`` (lzf-compressed datasets) instead.
    * ``omnifold_zjets``: all 17 ``{gen}_Zjet_pTZ-200GeV_{i}.npz`` per generator (default
      Herwig and Pythia21, the manifest's default subsets; odd files ``savez_compressed``).
    * ``lhco_rnd``: ``events_anomalydetection_v2.h5`` (700 x 3 columns + label) and its
      ``.features.h5``, pandas ``to_hdf`` in ``lhco_format`` with ``complib`` (default blosc,
      as the organisers' example files); splits ``events`` and ``features``.
    * ``aspen_open_jets``: ``RunG_batch{0..}.h5`` (default 2; gzip, then lzf datasets); split ``jets``.
    """
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rep = Replica(name, d)
    if name == "jetclass":
        _write_jetclass(rep, n_jets, rng, files_per_split)
    elif name == "atlas_toptag":
        _write_atlas(rep, n_jets, rng, files_per_split, legacy=legacy)
    elif name == "omnifold_zjets":
        _write_omnifold(rep, n_jets, rng, generators)
    elif name == "lhco_rnd":
        _write_lhco(rep, n_jets, rng, format=lhco_format, complib=complib)
    elif name == "aspen_open_jets":
        _write_aspen(rep, n_jets, rng, files_per_split)
    else:
        raise ValueError(f"write_replica: unknown dataset {name!r}; known: {REPLICA_NAMES}")
    return rep
