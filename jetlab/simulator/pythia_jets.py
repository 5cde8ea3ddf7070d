"""Pythia 8 events in vectorised batches and their FastJet jets: the event machinery of
:mod:`jetlab.simulator.generate` (which keeps the per-dataset chunk workers and the planning; the
dataset specs are :mod:`jetlab.simulator.mini_datasets`). Seeds come from :func:`chunk_seeds` alone,
so a chunk's events depend only on its identity.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from .quiet_fastjet import fastjet_module

__all__ = [
    "PYTHIA_COMMON",
    "CHARGED_LEPTONS",
    "GLUONS",
    "QUARKS",
    "VISIBLE",
    "Batch",
    "DecayRule",
    "Jets",
    "PythiaSource",
    "accept_parent",
    "accept_qcd",
    "chunk_seeds",
    "cluster",
    "decay_groups",
    "delta_phi",
    "fill_particles",
    "four_vectors",
    "jet_array",
    "match_parents",
    "pseudorapidity",
    "trim",
]

#: Settings every Pythia instance gets (quiet, 13 TeV, CMS-standard stable-particle definition).
PYTHIA_COMMON: tuple[str, ...] = (
    "Beams:eCM = 13000.",
    "Print:quiet = on",
    "Next:numberCount = 0",
    "ParticleDecays:limitTau0 = on",
    "ParticleDecays:tau0Max = 10",
)


# ============================================================================ Pythia source
def _stable_hash(text: str) -> int:
    return zlib.crc32(text.encode())


def chunk_seeds(seed: int, dataset: str, sample: str, index: int) -> tuple[int, np.random.Generator]:
    """(Pythia seed, numpy Generator) of one chunk; depends only on its identity."""
    ss = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, _stable_hash(dataset), _stable_hash(sample), int(index)])
    pythia_seed = int(ss.generate_state(1)[0]) % 900_000_000 + 1
    return pythia_seed, np.random.default_rng(ss)


def pseudorapidity(px, py, pz):
    """eta of momenta (px, py, pz); pT floored at 1e-12 so beam-axis particles stay finite."""
    pt = np.hypot(px, py)
    return np.arcsinh(pz / np.maximum(pt, 1e-12))


def delta_phi(a, b):
    """a - b wrapped into [-pi, pi)."""
    return (a - b + np.pi) % (2 * np.pi) - np.pi


#: |PDG id| of the visible decay products a truth-matched jet must contain, by kind.
QUARKS: tuple[int, ...] = (1, 2, 3, 4, 5)
GLUONS: tuple[int, ...] = (21,)
CHARGED_LEPTONS: tuple[int, ...] = (11, 13, 15)
#: every visible kind: a decay's products are all of these it has (so H -> W W* -> q q' l nu is no 2-quark decay)
VISIBLE: tuple[int, ...] = QUARKS + GLUONS + CHARGED_LEPTONS
#: bosons a decay chain is followed up through (t -> b W(-> ...), H -> W W*(-> ...)), recoil copies included
_INTERMEDIATE = (23, 24)


@dataclass(frozen=True)
class DecayRule:
    """Which decays of ``parent`` can make a truth-matched jet: exactly ``products`` visible decay
    products of each kind (``((|PDG ids|, count), ...)``), followed through intermediate W / Z bosons.

    As in JetClass (Qu, Li, Qu, arXiv:2202.03772) a jet matches when the parent and all its decay
    products lie inside it; neutrinos are invisible and are not among the products, so a leptonic
    decay matches on its charged lepton (a tau counts as a lepton: its decay products follow it).
    """

    parent: int
    products: tuple[tuple[tuple[int, ...], int], ...]

    @staticmethod
    def hadronic(parent: int) -> "DecayRule":
        """All quarks of a hadronic decay: 3 for top (b q q'), 2 otherwise."""
        return DecayRule(parent, ((QUARKS, 3 if parent == 6 else 2),))

    @property
    def has_neutrino(self) -> bool:
        """A charged lepton among the products: its neutrino is missing from the jet."""
        return any(set(ids) & set(CHARGED_LEPTONS) for ids, n in self.products if n > 0)

    def complete(self, product_pdg: np.ndarray) -> bool:
        """The visible products of one decay are exactly the rule's: its count of each kind, nothing else."""
        a = np.abs(product_pdg)
        return len(a) == sum(n for _, n in self.products) and all(
            int(np.isin(a, ids).sum()) == n for ids, n in self.products
        )


def _rule(parent: "int | DecayRule") -> DecayRule:
    return parent if isinstance(parent, DecayRule) else DecayRule.hadronic(int(parent))


def decay_groups(
    ids: np.ndarray, status: np.ndarray, mother1: np.ndarray, parent: "int | DecayRule"
) -> list[tuple[int, np.ndarray]]:
    """Complete decays of a parent in one event record: [(parent index, product indices)].

    ``parent`` is a :class:`DecayRule` or a |PDG id| (then its hadronic decay, :meth:`DecayRule.hadronic`).
    Decay products are the visible (:data:`VISIBLE`) particles of |status| 23; a product whose mother
    is an intermediate W / Z (a top's W, a Higgs's W and W*) is followed up through the boson and its
    recoil copies to the parent. Only decays whose visible products match the rule exactly are returned.
    """
    rule = _rule(parent)
    cand = np.nonzero((np.abs(status) == 23) & np.isin(np.abs(ids), VISIBLE))[0]
    groups: dict[int, list[int]] = {}
    for i in cand:
        k = int(mother1[i])
        if k <= 0:
            continue
        while abs(ids[k]) != rule.parent and abs(ids[k]) in _INTERMEDIATE and mother1[k] > 0:
            k = int(mother1[k])
        if abs(ids[k]) == rule.parent:
            groups.setdefault(k, []).append(int(i))
    return [(r, np.asarray(q)) for r, q in groups.items() if rule.complete(ids[np.asarray(q)])]


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


def accept_qcd(eta_max: float):
    """Process-level veto: keep events with an outgoing hard parton within |eta| < eta_max."""

    def accept(rec):
        out = np.abs(rec[:, 1]) == 23
        return bool((np.abs(pseudorapidity(rec[out, 3], rec[out, 4], rec[out, 5])) < eta_max).any())

    return accept


def accept_parent(parent: "int | DecayRule", pt_min: float, eta_max: float, dr_max: float):
    """Process-level veto: keep events with a complete ``parent`` decay (:func:`decay_groups`) above
    pt_min, inside eta_max, whose visible products lie within dr_max of it (it can give a matched jet).

    For a decay with a neutrino (a charged lepton among the products) the visible products' pT must
    pass pt_min too: the jet carries only them, and most leptonic tops and H -> l nu q q' decays that
    pass on the parent's pT alone make no jet in the window after the shower."""
    parent = _rule(parent)
    leptonic = parent.has_neutrino

    def accept(rec):
        ids = rec[:, 0].astype(np.int64)
        for root, q in decay_groups(ids, rec[:, 1].astype(np.int64), rec[:, 2].astype(np.int64), parent):
            px, py, pz = rec[root, 3], rec[root, 4], rec[root, 5]
            if np.hypot(px, py) < pt_min:
                continue
            if leptonic and np.hypot(rec[q, 3].sum(), rec[q, 4].sum()) < pt_min:
                continue
            eta, phi = pseudorapidity(px, py, pz), np.arctan2(py, px)
            if abs(eta) > eta_max:
                continue
            qeta = pseudorapidity(rec[q, 3], rec[q, 4], rec[q, 5])
            qphi = np.arctan2(rec[q, 4], rec[q, 3])
            if np.max(np.hypot(qeta - eta, delta_phi(qphi, phi))) < dr_max:
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
        return self.batch_of(self.pythia.nextBatch(int(n_events), "skip"))

    def batch_of(self, run) -> Batch:
        """The :class:`Batch` of one ``nextBatch`` result (an awkward record with ``prt`` and ``info``:
        a caller that needs the event weights reads ``run["info"]["weights"]`` itself)."""
        import awkward as ak

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
            px=px[fin],
            py=py[fin],
            pz=pz[fin],
            e=e[fin],
            pdg=ids[fin],
            charge=self.charges(ids[fin]),
            event=event_all[fin],
            rec_id=ids,
            rec_status=status,
            rec_mother1=m1,
            rec_p=np.stack([px, py, pz], axis=1),
            rec_offsets=offsets,
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


def four_vectors(pt, eta, phi, e):
    """(px, py, pz, E) of (pT, eta, phi, E)."""
    return pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta), e


def cluster(pt, eta, phi, e, event, n_events, R: float, min_pt: float, algorithm: str = "antikt") -> Jets:
    """Cluster all events of a batch in one FastJet call."""
    import awkward as ak

    fastjet = fastjet_module()

    counts = np.bincount(event, minlength=n_events)
    px, py, pz, en = four_vectors(pt, eta, phi, e)
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
    jeta = pseudorapidity(jpx, jpy, jpz)
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

    fastjet = fastjet_module()

    keep_c = np.isin(jets.const_jet, sel)
    cj, ci = jets.const_jet[keep_c], jets.const_idx[keep_c]
    order = np.argsort(cj, kind="stable")
    cj, ci = cj[order], ci[order]
    uj, counts = np.unique(cj, return_counts=True)
    px, py, pz, en = four_vectors(pt[ci], eta[ci], phi[ci], e[ci])
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
    qx, qy, qz, qe = four_vectors(pt[ti], eta[ti], phi[ti], e[ti])
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


def jet_array(jets: Jets, sel: np.ndarray, mult: np.ndarray) -> np.ndarray:
    """(len(sel), 5) jet rows (pT, eta, phi, mass, multiplicity) of the schema."""
    return np.stack([jets.pt[sel], jets.eta[sel], jets.phi[sel], jets.mass[sel], mult], axis=1).astype(np.float32)


def match_parents(batch: Batch, jets: Jets, cand: np.ndarray, parent: "int | DecayRule", dr: float) -> np.ndarray:
    """Candidate jets (flat indices) truth-matched to a decaying ``parent`` (a :class:`DecayRule`, or
    a |PDG id| for its hadronic decay).

    A jet matches when the parent and all its visible decay products lie within ``dr`` of the jet
    axis; each parent matches at most one (the closest) jet.
    """
    rule = _rule(parent)
    qmask = (np.abs(batch.rec_status) == 23) & np.isin(np.abs(batch.rec_id), VISIBLE)
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
        groups = decay_groups(batch.rec_id[lo:hi], batch.rec_status[lo:hi], batch.rec_mother1[lo:hi], rule)
        js = np.asarray(by_event[ev])
        used: set[int] = set()
        for root, q in groups:
            p = batch.rec_p[lo:hi]
            idx = np.concatenate([[root], q])
            eta = pseudorapidity(p[idx, 0], p[idx, 1], p[idx, 2])
            phi = np.arctan2(p[idx, 1], p[idx, 0])
            d = np.hypot(eta[None, :] - jets.eta[js][:, None], delta_phi(phi[None, :], jets.phi[js][:, None]))
            good = (d < dr).all(axis=1)
            if not good.any():
                continue
            best = js[good][np.argmin(d[good, 0])]
            if int(best) not in used:
                used.add(int(best))
                matched.append(int(best))
    return np.asarray(sorted(matched), dtype=np.int64)
