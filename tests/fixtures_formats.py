"""Write tiny files in each public dataset's REAL on-disk format, for reader and pipeline tests.

Each ``write_*`` takes explicit arrays (so tests can check known values); each ``make_*``
fills a small file with seeded random but physically shaped content. No network, no big files.
"""

from __future__ import annotations

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
) -> Path:
    """A JetClass-style ROOT file: TTree ``tree`` with jagged ``part_*`` and one-hot ``label_*``.

    ``particles[i]`` is an (n_i, 4) array of (px, py, pz, E) for jet i. Jet branches are the
    four-vector sums; ``omit`` leaves branches out (to test missing keys).
    """
    import awkward as ak
    import uproot

    path = Path(path)
    n = len(particles)
    if isinstance(labels, str):
        labels = [labels] * n
    rng = np.random.default_rng(0)
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
        "deta": jag([np.zeros(c) for c in counts]),
        "dphi": jag([np.zeros(c) for c in counts]),
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
    with uproot.recreate(path) as f:
        f.mktree("tree", types, field_name=lambda outer, inner: f"{outer}_{inner}", counter_name=lambda c: "n" + c)
        f["tree"].extend(data)
    return path


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
