"""Offline event generator: small Pythia 8 + FastJet stand-ins for every public dataset.

``generate(name, n_jets, out)`` writes one jetlab schema file (atomic) for

* ``jetclass-mini`` - QCD, t->bqq', W->qq', Z->qq, H->bb jets; anti-kT R=0.8, 500 < pT < 1000 GeV,
  |eta| < 2, CMS-like particle flow (:data:`~jetlab.data.detector.JETCLASS_LIKE`), charge + PID;
* ``toptag-mini`` - top vs QCD with an ATLAS-like cluster detector with pileup, anti-kT R=1.0
  trimmed (kT R=0.2 subjets, f_cut=0.05), 350 < pT < 1000 GeV, kinematics only (the domain shift);
* ``zjets-mini`` - Z(->nu nu)+jet, R=0.4 leading jets at particle (``gen``) and detector
  (``reco``) level paired per event, for two Pythia setups: ``sim`` (Monash) and ``data``, which differs
  the way Herwig differs from Pythia, in shower and hadronisation together (:data:`ZJETS_DATA_SETTINGS`);
* ``lhco-mini`` - QCD dijets and W'(3.5 TeV) -> X(500) Y(100) -> (qq)(qq), R=1.0, leading jet
  pT > 1.2 TeV, collections ``jet1``/``jet2`` (pT-ordered) with ``extra["mjj"]``.

Speed: events come from Pythia in batches as Awkward arrays (``Pythia.nextBatch``), detector
and selection are vectorised numpy, clustering runs over the whole batch in one FastJet call, and
a process-level ``UserHooks`` veto drops events whose hard partons cannot give a selected jet
before the (expensive) parton shower / MPI runs. Long-lived hadrons (c*tau > 10 mm) are stable,
as in CMS's standard Pythia 8 settings.

Reproducibility: work is split into fixed chunks (``chunk_size`` rows of one sample each); every
chunk has its own Pythia instance and its seeds derive only from (seed, dataset, sample, chunk
index). The output is therefore identical for any number of ``workers``.
"""

from __future__ import annotations

import math
import os
import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .detector import ATLAS_LIKE, JETCLASS_LIKE, DetectorModel, pid_flags_from_pdg
from .schema import KINEMATIC_FEATURES, PID_FEATURES, JetSet, write_jetsets

__all__ = ["generate", "GENERATORS", "GeneratorSpec", "PYTHIA_COMMON"]

PID_COLUMNS: tuple[str, ...] = KINEMATIC_FEATURES + PID_FEATURES

#: Settings every Pythia instance gets (quiet, 13 TeV, CMS-standard stable-particle definition).
PYTHIA_COMMON: tuple[str, ...] = (
    "Beams:eCM = 13000.",
    "Print:quiet = on",
    "Next:numberCount = 0",
    "ParticleDecays:limitTau0 = on",
    "ParticleDecays:tau0Max = 10",
)
_HADRONIC_W = ("24:onMode = off", "24:onIfAny = 1 2 3 4 5")
_HADRONIC_Z = ("23:onMode = off", "23:onIfAny = 1 2 3 4 5")


# ============================================================================ samples
@dataclass(frozen=True)
class Sample:
    """One Pythia configuration feeding one label (or one generator setup)."""

    name: str
    settings: tuple[str, ...]
    label: int
    parent: int = 0  # |PDG id| of the truth-matched parent (0: no matching, e.g. QCD)


@dataclass(frozen=True)
class GeneratorSpec:
    """A mini dataset: its label names, collections and samples."""

    name: str
    description: str
    label_names: tuple[str, ...]
    collections: tuple[str, ...]
    max_particles: int
    samples: tuple[Sample, ...]
    options: dict[str, Any] = field(default_factory=dict)  # accepted options and defaults


def _qcd(pthat: float) -> tuple[str, ...]:
    return ("HardQCD:all = on", f"PhaseSpace:pTHatMin = {pthat}")


def _ttbar(pthat: float) -> tuple[str, ...]:
    return ("Top:gg2ttbar = on", "Top:qqbar2ttbar = on", f"PhaseSpace:pTHatMin = {pthat}") + _HADRONIC_W


_JETCLASS = GeneratorSpec(
    name="jetclass-mini",
    description="JetClass-like: QCD, t->bqq', W->qq', Z->qq, H->bb; anti-kT R=0.8, 500<pT<1000 GeV, |eta|<2, CMS-like PF with PID",
    label_names=("QCD", "Tbqq", "Wqq", "Zqq", "Hbb"),
    collections=("jets",),
    max_particles=128,
    samples=(
        Sample("QCD", _qcd(450.0), 0),
        Sample("Tbqq", _ttbar(450.0), 1, parent=6),
        Sample("Wqq", ("WeakDoubleBoson:ffbar2WW = on", "PhaseSpace:pTHatMin = 450.") + _HADRONIC_W, 2, parent=24),
        Sample("Zqq", ("WeakDoubleBoson:ffbar2gmZgmZ = on", "WeakZ0:gmZmode = 2", "PhaseSpace:pTHatMin = 450.") + _HADRONIC_Z, 3, parent=23),
        Sample("Hbb", ("HiggsSM:ffbar2HZ = on", "PhaseSpace:pTHatMin = 450.", "25:onMode = off", "25:onIfMatch = 5 -5",
                       "23:onMode = off", "23:onIfAny = 12 14 16"), 4, parent=25),
    ),
    options={"max_particles": 128, "chunk_size": 500, "classes": None},
)

_TOPTAG = GeneratorSpec(
    name="toptag-mini",
    description="ATLAS-top-tagging-like: top vs QCD, calorimeter clusters with pileup, trimmed anti-kT R=1.0, 350<pT<1000 GeV, no PID",
    label_names=("QCD", "Top"),
    collections=("jets",),
    max_particles=120,
    samples=(Sample("QCD", _qcd(320.0), 0), Sample("Top", _ttbar(320.0), 1, parent=6)),
    options={"max_particles": 120, "chunk_size": 500, "classes": None},
)

_ZJETS_BASE = (
    "WeakBosonAndParton:qqbar2gmZg = on",
    "WeakBosonAndParton:qg2gmZq = on",
    "WeakZ0:gmZmode = 2",
    "23:onMode = off",
    "23:onIfAny = 12 14 16",
    "PhaseSpace:pTHatMin = 200.",
)
#: zjets-mini "data": Monash with a different final-state shower (alpha_s in the CMW scheme, as
#: Herwig's shower uses it) and a different string fragmentation (softer Lund z: a = 2.0, b = 0.3;
#: wider string pT: sigma = 0.5 GeV). Chosen by measurement among single changes and combinations
#: (benchmarks/README.md, "zjets-mini sim vs data"): with 4000 events per setup it separates mass,
#: N, width, log rho and tau21 from sim well beyond statistics; no Pythia setting tried moves z_g.
ZJETS_DATA_SETTINGS: tuple[str, ...] = (
    "Tune:pp = 14",
    "TimeShower:alphaSuseCMW = on",
    "StringZ:aLund = 2.0",
    "StringZ:bLund = 0.3",
    "StringPT:sigma = 0.5",
)
_ZJETS = GeneratorSpec(
    name="zjets-mini",
    description="OmniFold-Z+jets-like: Z(->nunu)+jet, leading R=0.4 jets at gen and reco level; 'sim' = Monash tune, "
                "'data' = Monash with CMW shower alphaS and softer, wider Lund string fragmentation (a Herwig-like difference)",
    label_names=("sim", "data"),
    collections=("sim_gen", "sim_reco", "data_gen", "data_reco"),
    max_particles=101,
    samples=(Sample("sim", _ZJETS_BASE + ("Tune:pp = 14",), 0), Sample("data", _ZJETS_BASE + ZJETS_DATA_SETTINGS, 1)),
    options={"max_particles": 101, "chunk_size": 500},
)

_LHCO = GeneratorSpec(
    name="lhco-mini",
    description="LHCO-R&D-like: QCD dijets + W'(3.5 TeV)->X(500)Y(100)->(qq)(qq); anti-kT R=1.0, leading jet pT>1.2 TeV",
    label_names=("background", "signal"),
    collections=("jet1", "jet2"),
    max_particles=279,
    samples=(
        Sample("background", _qcd(1100.0), 0),
        Sample(
            "signal",
            (
                "NewGaugeBoson:ffbar2Wprime = on",
                "Wprime:coup2WZ = 1.",
                "34:m0 = 3500.",
                "34:doForceWidth = on",
                "34:mWidth = 35.",
                "34:mMin = 3000.",
                "34:mMax = 4000.",
                "34:onMode = off",
                "34:onIfMatch = 23 24",
                "24:m0 = 500.",
                "23:m0 = 100.",
            )
            + _HADRONIC_W
            + _HADRONIC_Z,
            1,
        ),
    ),
    options={"max_particles": 279, "chunk_size": 500, "signal_fraction": 0.1},
)

#: Registry of the mini datasets, by name.
GENERATORS: dict[str, GeneratorSpec] = {s.name: s for s in (_JETCLASS, _TOPTAG, _ZJETS, _LHCO)}


# ============================================================================ Pythia source
def _stable_hash(text: str) -> int:
    return zlib.crc32(text.encode())


def chunk_seeds(seed: int, dataset: str, sample: str, index: int) -> tuple[int, np.random.Generator]:
    """(Pythia seed, numpy Generator) of one chunk; depends only on its identity."""
    ss = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, _stable_hash(dataset), _stable_hash(sample), int(index)])
    pythia_seed = int(ss.generate_state(1)[0]) % 900_000_000 + 1
    return pythia_seed, np.random.default_rng(ss)


def _eta(px, py, pz):
    pt = np.hypot(px, py)
    return np.arcsinh(pz / np.maximum(pt, 1e-12))


def _dphi(a, b):
    return (a - b + np.pi) % (2 * np.pi) - np.pi


def decay_groups(ids: np.ndarray, status: np.ndarray, mother1: np.ndarray, parent: int) -> list[tuple[int, np.ndarray]]:
    """Hadronic decays of |id| == ``parent`` in one event record: [(parent index, quark indices)].

    Decay quarks have |status| 23; for tops the W's quarks are followed up through the W's
    recoil copies to the top. Only complete decays (3 quarks for top, 2 otherwise) are returned.
    """
    a = np.abs(ids)
    cand = np.nonzero((np.abs(status) == 23) & (a >= 1) & (a <= 5))[0]
    groups: dict[int, list[int]] = {}
    for i in cand:
        mo = int(mother1[i])
        if mo <= 0:
            continue
        root = mo
        if parent == 6 and abs(ids[mo]) == 24:
            k = mo
            while mother1[k] > 0 and ids[mother1[k]] == ids[k]:
                k = int(mother1[k])
            root = int(mother1[k])
        if abs(ids[root]) == parent:
            groups.setdefault(root, []).append(int(i))
    need = 3 if parent == 6 else 2
    return [(r, np.asarray(q)) for r, q in groups.items() if len(q) == need]


class _ProcessVeto:
    """Builds a pythia8mc.UserHooks that vetoes events at process level (before showers/MPI)."""

    @staticmethod
    def make(accept: Callable[[np.ndarray], bool]):
        import pythia8mc

        class Hook(pythia8mc.UserHooks):
            def __init__(self):
                super().__init__()
                self.n_seen = 0
                self.n_vetoed = 0

            def canVetoProcessLevel(self):
                return True

            def doVetoProcessLevel(self, process):
                rec = np.array(
                    [(p.id(), p.status(), p.mother1(), p.px(), p.py(), p.pz(), p.e()) for p in process],
                    dtype=np.float64,
                )
                self.n_seen += 1
                ok = accept(rec)
                self.n_vetoed += not ok
                return not ok

        return Hook()


def _accept_qcd(eta_max: float):
    def accept(rec):
        out = np.abs(rec[:, 1]) == 23
        return bool((np.abs(_eta(rec[out, 3], rec[out, 4], rec[out, 5])) < eta_max).any())

    return accept


def _accept_parent(parent: int, pt_min: float, eta_max: float, dr_max: float):
    def accept(rec):
        ids = rec[:, 0].astype(np.int64)
        for root, q in decay_groups(ids, rec[:, 1].astype(np.int64), rec[:, 2].astype(np.int64), parent):
            px, py, pz = rec[root, 3], rec[root, 4], rec[root, 5]
            if np.hypot(px, py) < pt_min:
                continue
            eta, phi = _eta(px, py, pz), np.arctan2(py, px)
            if abs(eta) > eta_max:
                continue
            qeta = _eta(rec[q, 3], rec[q, 4], rec[q, 5])
            qphi = np.arctan2(rec[q, 4], rec[q, 3])
            if np.max(np.hypot(qeta - eta, _dphi(qphi, phi))) < dr_max:
                return True
        return False

    return accept


@dataclass
class Batch:
    """Flat arrays of one nextBatch call: stable particles and the full record (for truth)."""

    n_events: int
    # stable (status > 0) particles
    px: np.ndarray
    py: np.ndarray
    pz: np.ndarray
    e: np.ndarray
    pdg: np.ndarray
    charge: np.ndarray
    event: np.ndarray
    # full record (for truth matching), with per-event offsets
    rec_id: np.ndarray
    rec_status: np.ndarray
    rec_mother1: np.ndarray
    rec_p: np.ndarray  # (n, 3) px, py, pz
    rec_offsets: np.ndarray


class PythiaSource:
    """One seeded Pythia instance that returns events in vectorised batches."""

    def __init__(self, settings: Sequence[str], seed: int, veto: Callable | None = None) -> None:
        import pythia8mc

        self.pythia = pythia8mc.Pythia("", False)
        for s in (*PYTHIA_COMMON, *settings, "Random:setSeed = on", f"Random:seed = {int(seed)}"):
            if not self.pythia.readString(s):
                raise RuntimeError(f"Pythia rejected setting {s!r}")
        self.hook = _ProcessVeto.make(veto) if veto is not None else None
        if self.hook is not None:
            self.pythia.setUserHooksPtr(self.hook)
        if not self.pythia.init():
            raise RuntimeError(f"Pythia failed to initialise with settings {list(settings)}")
        self._charge: dict[int, float] = {}

    def charges(self, pdg: np.ndarray) -> np.ndarray:
        uniq, inv = np.unique(pdg, return_inverse=True)
        pd = self.pythia.particleData
        vals = np.empty(len(uniq))
        for k, i in enumerate(uniq.tolist()):
            if i not in self._charge:
                self._charge[i] = float(pd.charge(int(i)))
            vals[k] = self._charge[i]
        return vals[inv]

    def batch(self, n_events: int) -> Batch:
        import awkward as ak

        run = self.pythia.nextBatch(int(n_events), "skip")
        prt = run["prt"]
        counts = ak.to_numpy(ak.num(prt)).astype(np.int64)
        status = ak.to_numpy(ak.flatten(prt.status)).astype(np.int64)
        ids = ak.to_numpy(ak.flatten(prt.id)).astype(np.int64)
        mom = prt.p
        px = ak.to_numpy(ak.flatten(mom.px))
        py = ak.to_numpy(ak.flatten(mom.py))
        pz = ak.to_numpy(ak.flatten(mom.pz))
        e = ak.to_numpy(ak.flatten(mom.e))
        m1 = ak.to_numpy(ak.flatten(prt.mother1)).astype(np.int64)
        n = len(counts)
        event_all = np.repeat(np.arange(n), counts)
        fin = status > 0
        offsets = np.concatenate([[0], np.cumsum(counts)])
        return Batch(
            n_events=n,
            px=px[fin], py=py[fin], pz=pz[fin], e=e[fin], pdg=ids[fin],
            charge=self.charges(ids[fin]), event=event_all[fin],
            rec_id=ids, rec_status=status, rec_mother1=m1,
            rec_p=np.stack([px, py, pz], axis=1), rec_offsets=offsets,
        )


# ============================================================================ jets
@dataclass
class Jets:
    """Flat clustered jets of a batch (pT-ordered within each event) and their constituents."""

    pt: np.ndarray
    eta: np.ndarray
    phi: np.ndarray
    mass: np.ndarray
    event: np.ndarray
    rank: np.ndarray  # 0 = leading jet of its event
    const_jet: np.ndarray  # flat jet index of each constituent
    const_idx: np.ndarray  # global particle index of each constituent

    def index_of_rank(self, rank: int, n_events: int) -> np.ndarray:
        """Per event, the flat index of its ``rank``-th jet (0 = leading), -1 where it has none."""
        out = -np.ones(n_events, np.int64)
        idx = np.nonzero(self.rank == rank)[0]
        out[self.event[idx]] = idx
        return out


def _four(pt, eta, phi, e):
    return pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta), e


def cluster(pt, eta, phi, e, event, n_events, R: float, min_pt: float, algorithm: str = "antikt") -> Jets:
    """Cluster all events of a batch in one FastJet call."""
    import awkward as ak
    import fastjet

    counts = np.bincount(event, minlength=n_events)
    px, py, pz, en = _four(pt, eta, phi, e)
    arr = ak.unflatten(ak.zip({"px": px, "py": py, "pz": pz, "E": en}), counts)
    algo = {"antikt": fastjet.antikt_algorithm, "kt": fastjet.kt_algorithm}[algorithm]
    cs = fastjet.ClusterSequence(arr, fastjet.JetDefinition(algo, R))
    jets = cs.inclusive_jets(min_pt=min_pt)
    cidx = cs.constituent_index(min_pt=min_pt)
    njet = ak.to_numpy(ak.num(jets)).astype(np.int64)
    jpx = ak.to_numpy(ak.flatten(jets.px)).astype(np.float64)
    jpy = ak.to_numpy(ak.flatten(jets.py)).astype(np.float64)
    jpz = ak.to_numpy(ak.flatten(jets.pz)).astype(np.float64)
    je = ak.to_numpy(ak.flatten(jets.E)).astype(np.float64)
    jev = np.repeat(np.arange(n_events), njet)
    nconst = ak.to_numpy(ak.flatten(ak.num(cidx, axis=2))).astype(np.int64)
    local = ak.to_numpy(ak.flatten(cidx, axis=None)).astype(np.int64)
    const_jet = np.repeat(np.arange(len(jpx)), nconst)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    const_idx = local + offsets[jev[const_jet]]
    return _jets_from_sums(jpx, jpy, jpz, je, jev, const_jet, const_idx)


def _jets_from_sums(jpx, jpy, jpz, je, jev, const_jet, const_idx) -> Jets:
    jpt = np.hypot(jpx, jpy)
    jeta = _eta(jpx, jpy, jpz)
    jphi = np.arctan2(jpy, jpx)
    jm = np.sqrt(np.clip(je**2 - jpx**2 - jpy**2 - jpz**2, 0, None))
    # order jets by event, then decreasing pT; renumber constituents accordingly
    order = np.lexsort((-jpt, jev))
    new_of_old = np.empty_like(order)
    new_of_old[order] = np.arange(len(order))
    jev_s = jev[order]
    first = np.searchsorted(jev_s, jev_s, side="left")
    rank = np.arange(len(order)) - first
    return Jets(jpt[order], jeta[order], jphi[order], jm[order], jev_s, rank, new_of_old[const_jet], const_idx)


def trim(jets: Jets, sel: np.ndarray, pt, eta, phi, e, r_sub: float = 0.2, f_cut: float = 0.05) -> Jets:
    """Trim the jets ``sel``: recluster constituents with kT R=r_sub, drop subjets below f_cut*pT."""
    import awkward as ak
    import fastjet

    keep_c = np.isin(jets.const_jet, sel)
    cj, ci = jets.const_jet[keep_c], jets.const_idx[keep_c]
    order = np.argsort(cj, kind="stable")
    cj, ci = cj[order], ci[order]
    uj, counts = np.unique(cj, return_counts=True)
    px, py, pz, en = _four(pt[ci], eta[ci], phi[ci], e[ci])
    arr = ak.unflatten(ak.zip({"px": px, "py": py, "pz": pz, "E": en}), counts)
    cs = fastjet.ClusterSequence(arr, fastjet.JetDefinition(fastjet.kt_algorithm, r_sub))
    sub = cs.inclusive_jets()
    sidx = cs.constituent_index()
    nsub = ak.to_numpy(ak.num(sub)).astype(np.int64)
    spt = np.hypot(ak.to_numpy(ak.flatten(sub.px)), ak.to_numpy(ak.flatten(sub.py)))
    sjet = np.repeat(np.arange(len(uj)), nsub)  # position in uj
    good_sub = spt > f_cut * jets.pt[uj][sjet]
    nconst = ak.to_numpy(ak.flatten(ak.num(sidx, axis=2))).astype(np.int64)
    local = ak.to_numpy(ak.flatten(sidx, axis=None)).astype(np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)])
    sub_of_const = np.repeat(np.arange(len(sjet)), nconst)
    glob = local + starts[sjet[sub_of_const]]  # position in (cj, ci)
    kept = glob[good_sub[sub_of_const]]
    tj, ti = cj[kept], ci[kept]
    # recompute jet four-vectors from the surviving constituents
    n = len(jets.pt)
    qx, qy, qz, qe = _four(pt[ti], eta[ti], phi[ti], e[ti])
    jpx = np.bincount(tj, qx, n)
    jpy = np.bincount(tj, qy, n)
    jpz = np.bincount(tj, qz, n)
    je = np.bincount(tj, qe, n)
    alive = np.zeros(n, bool)
    alive[np.unique(tj)] = True
    idx = np.nonzero(alive)[0]
    remap = -np.ones(n, np.int64)
    remap[idx] = np.arange(len(idx))
    return _jets_from_sums(jpx[idx], jpy[idx], jpz[idx], je[idx], jets.event[idx], remap[tj], ti)


def fill_particles(jets: Jets, sel: np.ndarray, feats: np.ndarray, pt: np.ndarray, max_particles: int):
    """(len(sel), P, F) pT-ordered padded constituents of jets ``sel`` and the mask; multiplicities."""
    row_of = -np.ones(len(jets.pt), dtype=np.int64)
    row_of[sel] = np.arange(len(sel))
    r = row_of[jets.const_jet]
    ok = r >= 0
    r, ci = r[ok], jets.const_idx[ok]
    order = np.lexsort((-pt[ci], r))
    r, ci = r[order], ci[order]
    rank = np.arange(len(r)) - np.searchsorted(r, r, side="left")
    mult = np.bincount(r, minlength=len(sel))
    keep = rank < max_particles
    out = np.zeros((len(sel), max_particles, feats.shape[1]), dtype=np.float32)
    mask = np.zeros((len(sel), max_particles), dtype=bool)
    out[r[keep], rank[keep]] = feats[ci[keep]]
    mask[r[keep], rank[keep]] = True
    return out, mask, mult


def _jet_array(jets: Jets, sel: np.ndarray, mult: np.ndarray) -> np.ndarray:
    return np.stack([jets.pt[sel], jets.eta[sel], jets.phi[sel], jets.mass[sel], mult], axis=1).astype(np.float32)


def match_parents(batch: Batch, jets: Jets, cand: np.ndarray, parent: int, dr: float) -> np.ndarray:
    """Candidate jets (flat indices) truth-matched to a hadronically decaying ``parent``.

    A jet matches when the parent and all its decay quarks lie within ``dr`` of the jet axis;
    each parent matches at most one (the closest) jet.
    """
    a = np.abs(batch.rec_id)
    qmask = (np.abs(batch.rec_status) == 23) & (a >= 1) & (a <= 5)
    ev_of_q = np.repeat(np.arange(batch.n_events), np.diff(batch.rec_offsets))[qmask]
    events = np.unique(ev_of_q)
    by_event: dict[int, list[int]] = {}
    for j in cand.tolist():
        by_event.setdefault(int(jets.event[j]), []).append(j)
    matched = []
    for ev in events.tolist():
        if ev not in by_event:
            continue
        lo, hi = batch.rec_offsets[ev], batch.rec_offsets[ev + 1]
        groups = decay_groups(batch.rec_id[lo:hi], batch.rec_status[lo:hi], batch.rec_mother1[lo:hi], parent)
        js = np.asarray(by_event[ev])
        used: set[int] = set()
        for root, q in groups:
            p = batch.rec_p[lo:hi]
            idx = np.concatenate([[root], q])
            eta = _eta(p[idx, 0], p[idx, 1], p[idx, 2])
            phi = np.arctan2(p[idx, 1], p[idx, 0])
            d = np.hypot(eta[None, :] - jets.eta[js][:, None], _dphi(phi[None, :], jets.phi[js][:, None]))
            good = (d < dr).all(axis=1)
            if not good.any():
                continue
            best = js[good][np.argmin(d[good, 0])]
            if int(best) not in used:
                used.add(int(best))
                matched.append(int(best))
    return np.asarray(sorted(matched), dtype=np.int64)


# ============================================================================ chunk workers
@dataclass(frozen=True)
class Chunk:
    dataset: str
    sample: str
    index: int
    n: int
    seed: int
    options: tuple[tuple[str, Any], ...]


def _next_batch_size(need: int, rows: int, events: int) -> int:
    rate = rows / events if events else 0.5
    return int(np.clip(math.ceil(need / max(rate, 0.05) * 1.1) + 2, 5, 200))


def _reco_features(reco, with_pid: bool) -> np.ndarray:
    cols = [reco.pt, reco.eta, reco.phi, reco.energy]
    if with_pid:
        cols += [reco.charge] + [reco.flags[:, k] for k in range(5)]
    return np.stack(cols, axis=1).astype(np.float32)


def _gen_particles(b: Batch):
    """Visible stable generator-level particles with truth charge / PID."""
    vis = ~np.isin(np.abs(b.pdg), (12, 14, 16))
    pt = np.hypot(b.px[vis], b.py[vis])
    eta = _eta(b.px[vis], b.py[vis], b.pz[vis])
    phi = np.arctan2(b.py[vis], b.px[vis])
    e = b.e[vis]
    flags = pid_flags_from_pdg(b.pdg[vis], b.charge[vis])
    feats = np.column_stack([pt, eta, phi, e, b.charge[vis], flags]).astype(np.float32)
    return pt, eta, phi, e, b.event[vis], feats


def _single_jet_chunk(spec: GeneratorSpec, chunk: Chunk) -> dict[str, JetSet]:
    """jetclass-mini / toptag-mini: selected jets of one class."""
    opts = dict(chunk.options)
    sample = next(s for s in spec.samples if s.name == chunk.sample)
    atlas = spec.name == "toptag-mini"
    det: DetectorModel = ATLAS_LIKE if atlas else JETCLASS_LIKE
    R, pt_lo, pt_hi, eta_max = (1.0, 350.0, 1000.0, 2.0) if atlas else (0.8, 500.0, 1000.0, 2.0)
    match_dr = 0.75 if atlas else 0.8
    pmax = int(opts["max_particles"])
    pyseed, rng = chunk_seeds(chunk.seed, spec.name, sample.name, chunk.index)
    if sample.parent:
        veto = _accept_parent(sample.parent, 0.85 * pt_lo, eta_max + 0.4, match_dr + 0.25)
    else:
        veto = _accept_qcd(eta_max + R * 0.6)
    src = PythiaSource(sample.settings, pyseed, veto)
    with_pid = det.keeps_pid
    parts, masks, jet_rows = [], [], []
    rows = events = 0
    while rows < chunk.n:
        b = src.batch(_next_batch_size(chunk.n - rows, rows, events))
        events += b.n_events
        reco = det.apply(b.px, b.py, b.pz, b.e, b.pdg, b.charge, b.event, b.n_events, rng)
        jets = cluster(reco.pt, reco.eta, reco.phi, reco.energy, reco.event, b.n_events, R, 0.6 * pt_lo)
        if atlas:
            jets = trim(jets, np.nonzero(jets.pt > 0.8 * pt_lo)[0], reco.pt, reco.eta, reco.phi, reco.energy)
        cand = np.nonzero((jets.pt > pt_lo) & (jets.pt < pt_hi) & (np.abs(jets.eta) < eta_max) & (jets.rank < 2))[0]
        if sample.parent:
            sel = match_parents(b, jets, cand, sample.parent, match_dr)
        else:
            sel = cand
        if not len(sel):
            continue
        feats = _reco_features(reco, with_pid)
        p, m, mult = fill_particles(jets, sel, feats, reco.pt, pmax)
        parts.append(p)
        masks.append(m)
        jet_rows.append(_jet_array(jets, sel, mult))
        rows += len(sel)
    n = chunk.n
    js = JetSet(
        particles=np.concatenate(parts)[:n],
        mask=np.concatenate(masks)[:n],
        jets=np.concatenate(jet_rows)[:n],
        labels=np.full(n, sample.label),
        particle_features=PID_COLUMNS if with_pid else KINEMATIC_FEATURES,
    )
    return {"jets": js}


def _zjets_chunk(spec: GeneratorSpec, chunk: Chunk) -> dict[str, JetSet]:
    opts = dict(chunk.options)
    sample = next(s for s in spec.samples if s.name == chunk.sample)
    pmax = int(opts["max_particles"])
    pyseed, rng = chunk_seeds(chunk.seed, spec.name, sample.name, chunk.index)
    src = PythiaSource(sample.settings, pyseed, None)
    det = JETCLASS_LIKE
    out: dict[str, list] = {"gen": [], "reco": []}
    rows = events = 0
    pt_min, eta_max = 100.0, 2.5
    while rows < chunk.n:
        b = src.batch(_next_batch_size(chunk.n - rows, rows, events))
        events += b.n_events
        gpt, geta, gphi, ge, gev, gfeat = _gen_particles(b)
        gj = cluster(gpt, geta, gphi, ge, gev, b.n_events, 0.4, 20.0)
        reco = det.apply(b.px, b.py, b.pz, b.e, b.pdg, b.charge, b.event, b.n_events, rng)
        rj = cluster(reco.pt, reco.eta, reco.phi, reco.energy, reco.event, b.n_events, 0.4, 20.0)
        lead_g, lead_r = gj.index_of_rank(0, b.n_events), rj.index_of_rank(0, b.n_events)
        ok = (lead_g >= 0) & (lead_r >= 0)
        ok[ok] &= (gj.pt[lead_g[ok]] > pt_min) & (np.abs(gj.eta[lead_g[ok]]) < eta_max)
        ok[ok] &= (rj.pt[lead_r[ok]] > pt_min) & (np.abs(rj.eta[lead_r[ok]]) < eta_max)
        evs = np.nonzero(ok)[0]
        if not len(evs):
            continue
        sg, sr = lead_g[evs], lead_r[evs]
        p, m, mult = fill_particles(gj, sg, gfeat, gpt, pmax)
        out["gen"].append((p, m, _jet_array(gj, sg, mult)))
        p, m, mult = fill_particles(rj, sr, _reco_features(reco, True), reco.pt, pmax)
        out["reco"].append((p, m, _jet_array(rj, sr, mult)))
        rows += len(evs)
    n = chunk.n
    res = {}
    for level, items in out.items():
        res[f"{sample.name}_{level}"] = JetSet(
            particles=np.concatenate([i[0] for i in items])[:n],
            mask=np.concatenate([i[1] for i in items])[:n],
            jets=np.concatenate([i[2] for i in items])[:n],
            labels=np.full(n, sample.label),
            particle_features=PID_COLUMNS,
        )
    return res


def _lhco_chunk(spec: GeneratorSpec, chunk: Chunk) -> dict[str, JetSet]:
    opts = dict(chunk.options)
    sample = next(s for s in spec.samples if s.name == chunk.sample)
    pmax = int(opts["max_particles"])
    pyseed, rng = chunk_seeds(chunk.seed, spec.name, sample.name, chunk.index)
    veto = None if sample.label else _accept_qcd(3.0)
    src = PythiaSource(sample.settings, pyseed, veto)
    det = JETCLASS_LIKE
    items = []
    rows = events = 0
    while rows < chunk.n:
        b = src.batch(_next_batch_size(chunk.n - rows, rows, events))
        events += b.n_events
        reco = det.apply(b.px, b.py, b.pz, b.e, b.pdg, b.charge, b.event, b.n_events, rng)
        jets = cluster(reco.pt, reco.eta, reco.phi, reco.energy, reco.event, b.n_events, 1.0, 100.0)
        j1, j2 = jets.index_of_rank(0, b.n_events), jets.index_of_rank(1, b.n_events)
        ok = (j1 >= 0) & (j2 >= 0)
        ok[ok] &= jets.pt[j1[ok]] > 1200.0
        evs = np.nonzero(ok)[0]
        if not len(evs):
            continue
        s1, s2 = j1[evs], j2[evs]
        feats = _reco_features(reco, False)
        p1, m1, n1 = fill_particles(jets, s1, feats, reco.pt, pmax)
        p2, m2, n2 = fill_particles(jets, s2, feats, reco.pt, pmax)
        v = []
        for s in (s1, s2):
            px, py, pz = _four(jets.pt[s], jets.eta[s], jets.phi[s], 0)[:3]
            e = np.sqrt(px**2 + py**2 + pz**2 + jets.mass[s] ** 2)
            v.append(np.stack([px, py, pz, e]))
        t = v[0] + v[1]
        mjj = np.sqrt(np.clip(t[3] ** 2 - t[0] ** 2 - t[1] ** 2 - t[2] ** 2, 0, None))
        items.append((p1, m1, _jet_array(jets, s1, n1), p2, m2, _jet_array(jets, s2, n2), mjj))
        rows += len(evs)
    n = chunk.n
    cat = [np.concatenate([it[k] for it in items])[:n] for k in range(7)]
    mjj = cat[6].astype(np.float32)
    return {
        name: JetSet(particles=cat[3 * k], mask=cat[3 * k + 1], jets=cat[3 * k + 2], labels=np.full(n, sample.label),
                     particle_features=KINEMATIC_FEATURES, extra={"mjj": mjj})
        for k, name in enumerate(("jet1", "jet2"))
    }


_RUNNERS = {"jetclass-mini": _single_jet_chunk, "toptag-mini": _single_jet_chunk, "zjets-mini": _zjets_chunk, "lhco-mini": _lhco_chunk}


def run_chunk(chunk: Chunk) -> dict[str, JetSet]:
    """Generate one chunk (top-level so 'spawn' workers can import it)."""
    spec = GENERATORS[chunk.dataset]
    return _RUNNERS[chunk.dataset](spec, chunk)


# ============================================================================ planning
def _split(n: int, size: int) -> list[int]:
    k = max(1, math.ceil(n / size))
    base, rem = divmod(n, k)
    return [base + (i < rem) for i in range(k) if base + (i < rem) > 0]


def _even(n: int, k: int) -> list[int]:
    base, rem = divmod(n, k)
    return [base + (i < rem) for i in range(k)]


def plan_chunks(name: str, n_jets: int, seed: int, options: dict[str, Any]) -> list[Chunk]:
    """The fixed chunk list of a request (independent of the worker count)."""
    spec = GENERATORS[name]
    size = int(options["chunk_size"])
    opts = tuple(sorted((k, v) for k, v in options.items() if k not in ("classes",)))
    if name == "zjets-mini":
        per = {"sim": n_jets, "data": n_jets}
    elif name == "lhco-mini":
        n_sig = int(round(float(options["signal_fraction"]) * n_jets))
        per = {"background": n_jets - n_sig, "signal": n_sig}
    else:
        names = [s.name for s in spec.samples]
        classes = options.get("classes") or names
        per = dict(zip(classes, _even(n_jets, len(classes))))
    chunks = []
    for sample, n in per.items():
        for i, m in enumerate(_split(n, size) if n > 0 else []):
            chunks.append(Chunk(name, sample, i, m, int(seed), opts))
    return chunks


def _check(name: str, n_jets: int, options: dict[str, Any]) -> dict[str, Any]:
    if name not in GENERATORS:
        raise ValueError(f"unknown generator {name!r}; valid names: {sorted(GENERATORS)}")
    spec = GENERATORS[name]
    if isinstance(n_jets, bool) or not isinstance(n_jets, (int, np.integer)) or n_jets <= 0:
        raise ValueError(f"{name}: n_jets must be a positive integer, got {n_jets!r}")
    unknown = set(options) - set(spec.options)
    if unknown:
        raise TypeError(f"{name}: unknown option(s) {sorted(unknown)}; accepted: {sorted(spec.options)}")
    opts = {**spec.options, **{k: v for k, v in options.items() if v is not None}}
    if int(opts["chunk_size"]) <= 0:
        raise ValueError(f"{name}: chunk_size must be > 0, got {opts['chunk_size']}")
    if int(opts["max_particles"]) <= 0:
        raise ValueError(f"{name}: max_particles must be > 0, got {opts['max_particles']}")
    if "signal_fraction" in opts and not 0.0 <= float(opts["signal_fraction"]) <= 1.0:
        raise ValueError(f"{name}: signal_fraction must be in [0, 1], got {opts['signal_fraction']}")
    if opts.get("classes") is not None:
        classes = [opts["classes"]] if isinstance(opts["classes"], str) else list(opts["classes"])
        valid = [s.name for s in spec.samples]
        bad = [c for c in classes if c not in valid]
        if bad or not classes:
            raise ValueError(f"{name}: unknown classes {bad}; valid: {valid}")
        opts["classes"] = tuple(classes)
    return opts


def _default_workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        return os.cpu_count() or 1


def _run_all(chunks: list[Chunk], workers: int, progress: bool, desc: str) -> list[dict[str, JetSet]]:
    from tqdm.auto import tqdm

    results: list[dict[str, JetSet] | None] = [None] * len(chunks)
    bar = tqdm(total=len(chunks), desc=desc, unit="chunk", disable=not progress)
    try:
        if workers <= 1 or len(chunks) == 1:
            for i, c in enumerate(chunks):
                results[i] = run_chunk(c)
                bar.update()
        else:
            import multiprocessing as mp

            ctx = mp.get_context("spawn")
            with ctx.Pool(min(workers, len(chunks)), initializer=_consume_fastjet_banner) as pool:
                for i, res in pool.imap_unordered(_indexed, list(enumerate(chunks))):
                    results[i] = res
                    bar.update()
    finally:
        bar.close()
    return results  # type: ignore[return-value]


def _consume_fastjet_banner() -> None:
    """Pool initializer: FastJet prints its banner box on stdout at a process's first clustering, so
    every spawned worker would add one to a notebook's output; cluster one particle with the file
    descriptor pointed at /dev/null to use it up (C++ writes there, bypassing ``sys.stdout``)."""
    sys.stdout.flush()
    saved, devnull = os.dup(1), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    try:
        one = np.array([10.0])
        cluster(one, 0 * one, 0 * one, one, np.array([0]), 1, R=0.4, min_pt=1.0)
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


def _indexed(item: tuple[int, Chunk]) -> tuple[int, dict[str, JetSet]]:
    i, c = item
    return i, run_chunk(c)


def generate(
    name: str,
    n_jets: int,
    out: str | os.PathLike,
    *,
    workers: int | None = None,
    seed: int = 0,
    progress: bool = True,
    **options: Any,
) -> Path:
    """Generate ``n_jets`` rows of mini dataset ``name`` into the schema file ``out``.

    ``n_jets`` counts rows: jets (jetclass/toptag, split equally over the classes), events per
    generator setup (zjets: each of the four collections has ``n_jets`` rows), or dijet events
    (lhco, ``signal_fraction`` of them signal). ``workers`` processes (default: all cores) run
    fixed, independently seeded chunks, so the file content depends on ``seed`` only, not on
    ``workers``. Options: ``max_particles``, ``chunk_size``, ``classes`` (jetclass/toptag
    subset), ``signal_fraction`` (lhco). Rows are shuffled with ``seed``.
    """
    opts = _check(name, n_jets, options)
    spec = GENERATORS[name]
    chunks = plan_chunks(name, int(n_jets), int(seed), opts)
    w = _default_workers() if workers is None else int(workers)
    if w < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    results = _run_all(chunks, w, progress, desc=f"jetlab generate {name}")
    collections = {}
    for cname in spec.collections:
        parts = [r[cname] for r in results if cname in r]
        if parts:
            collections[cname] = JetSet.concatenate(parts)
    # shuffle rows (the same permutation for every collection keeps them row-aligned)
    n = len(next(iter(collections.values())))
    perm = np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, 7])).permutation(n)
    collections = {k: v.subset(perm) for k, v in collections.items()}
    info = {
        "generator": "jetlab.data.generate",
        "description": spec.description,
        "n_jets": int(n_jets),
        "seed": int(seed),
        "options": {k: (list(v) if isinstance(v, tuple) else v) for k, v in opts.items()},
        "n_chunks": len(chunks),
        "worker_independent": True,
        "pythia": "pythia8mc 8.317",
        "pythia_common": list(PYTHIA_COMMON),
        "samples": {s.name: list(s.settings) for s in spec.samples},
        "detector": {"toptag-mini": ATLAS_LIKE.name}.get(name, JETCLASS_LIKE.name),
    }
    return write_jetsets(out, collections, dataset=name, label_names=spec.label_names, info=info)
