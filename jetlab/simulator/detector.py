"""Parametric, vectorised detector models for the offline generator.

The generator hands over *flat* arrays of stable generator-level particles (all events of a
batch concatenated, with an ``event`` index) and gets back flat arrays of reconstructed
objects. Two presets differ on purpose, so that the mini datasets carry a realistic domain shift:

* :data:`JETCLASS_LIKE` - a CMS/Delphes-like particle flow: tracks for charged particles
  (efficiency, curvature resolution), ECAL/HCAL smearing for photons and neutral hadrons
  (untracked charged hadrons end up as neutral hadrons), fine angles, PID flags kept.
* :data:`ATLAS_LIKE` - calorimeter clusters only: every visible particle (but muons) is a
  massless calorimeter deposit, merged into 0.1 x 0.1 eta-phi cells, coarser angles, other
  resolutions, a cluster threshold and a parametric soft pileup overlay. No charge / PID.

Everything is numpy; randomness comes only from the ``numpy.random.Generator`` passed in.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import NamedTuple

import numpy as np

from jetlab.data.preprocess import wrap_phi

__all__ = [
    "DetectorModel",
    "RecoParticles",
    "JETCLASS_LIKE",
    "ATLAS_LIKE",
    "DETECTORS",
    "JetAcceptance",
    "get_detector",
    "pid_flags_from_pdg",
]

_NEUTRINOS = (12, 14, 16)
#: Standard deviations of the smearing kept as margin where a threshold acts before it (track pT,
#: angles): a reconstructed track falls this far below its threshold with probability 3e-7.
_SMEARING_MARGIN = 5.0


class RecoParticles(NamedTuple):
    """Flat reconstructed objects, grouped by ``event`` (ascending)."""

    pt: np.ndarray
    eta: np.ndarray
    phi: np.ndarray
    energy: np.ndarray
    charge: np.ndarray  # float, -1/0/+1
    flags: np.ndarray  # (n, 5) bool: charged hadron, neutral hadron, photon, electron, muon
    event: np.ndarray  # int64 event index

    def counts(self, n_events: int) -> np.ndarray:
        return np.bincount(self.event, minlength=n_events)


def pid_flags_from_pdg(pdg: np.ndarray, charge: np.ndarray) -> np.ndarray:
    """The 5 JetClass PID flags of generator-level particles (truth, no detector)."""
    a = np.abs(pdg)
    charged = charge != 0
    is_e = a == 11
    is_mu = a == 13
    is_gamma = a == 22
    flags = np.stack(
        [
            charged & ~is_e & ~is_mu,
            ~charged & ~is_gamma & ~np.isin(a, _NEUTRINOS),
            is_gamma,
            is_e,
            is_mu,
        ],
        axis=1,
    )
    return flags


def _kinematics(px, py, pz):
    pt = np.hypot(px, py)
    with np.errstate(divide="ignore", invalid="ignore"):
        eta = np.arcsinh(np.where(pt > 0, pz / np.where(pt > 0, pt, 1.0), 0.0))
    phi = np.arctan2(py, px)
    return pt, eta, phi


def _checked_inputs(px, py, pz, energy, pdg, charge, event) -> tuple[np.ndarray, ...]:
    """:meth:`DetectorModel.apply`'s inputs as arrays of the dtypes it computes in, all of one length."""
    px, py, pz, energy = (np.asarray(a, dtype=np.float64) for a in (px, py, pz, energy))
    pdg = np.asarray(pdg)
    charge = np.asarray(charge, dtype=np.float64)
    event = np.asarray(event, dtype=np.int64)
    n = len(px)
    for nm, arr in (("py", py), ("pz", pz), ("energy", energy), ("pdg", pdg), ("charge", charge), ("event", event)):
        if len(arr) != n:
            raise ValueError(f"DetectorModel.apply: {nm} has {len(arr)} entries, px has {n}")
    return px, py, pz, energy, pdg, charge, event


def _track_flags(is_e: np.ndarray, is_mu: np.ndarray) -> np.ndarray:
    """PID flags of tracks: charged hadron, electron or muon (no neutral flags)."""
    flags = np.zeros((len(is_e), 5), dtype=bool)
    flags[:, 0] = ~is_e & ~is_mu
    flags[:, 3] = is_e
    flags[:, 4] = is_mu
    return flags


def _event_ordered(parts: list[tuple]) -> RecoParticles:
    """Tracks, clusters and pileup joined into one particle list, stably sorted by event."""
    if not parts:
        z = np.zeros(0)
        return RecoParticles(z, z, z, z, z, np.zeros((0, 5), bool), np.zeros(0, np.int64))
    cat = [np.concatenate([p[k] for p in parts]) for k in range(7)]
    order = np.argsort(cat[6], kind="stable")
    pt_, eta_, phi_, e_, q_, fl_, ev_ = (c[order] for c in cat)
    return RecoParticles(pt_, eta_, phi_, e_, q_.astype(np.float64), fl_.astype(bool), ev_.astype(np.int64))


@dataclass(frozen=True)
class DetectorModel:
    """A parametric detector. Resolutions are relative: sigma(X)/X.

    Tracks (``use_tracks``): efficiency ``track_efficiency`` above ``track_eff_pt_knee`` GeV and
    ``track_efficiency_low_pt`` below it, for ``pt > track_pt_min`` and ``|eta| < track_eta_max``;
    sigma(pT)/pT = sqrt(track_res_const^2 + (track_res_slope * pT)^2).
    Calorimeters: sigma(E)/E = sqrt((stochastic/sqrt(E))^2 + constant^2), ECAL for photons and
    electrons, HCAL for hadrons; Gaussian angular smearing per subsystem; energy thresholds.
    ``cell_size`` merges calorimeter deposits of one event in eta-phi cells (clusters).
    Pileup: on average ``pileup_density`` soft massless deposits per unit eta-phi area within
    ``|eta| < pileup_eta_max``, pT exponential with mean ``pileup_pt_mean`` GeV.
    """

    name: str
    use_tracks: bool = True
    keeps_pid: bool = True
    track_eta_max: float = 2.5
    track_pt_min: float = 0.1
    track_efficiency: float = 0.95
    track_efficiency_low_pt: float = 0.7
    track_eff_pt_knee: float = 1.0
    track_res_const: float = 0.006
    track_res_slope: float = 1.0e-4
    track_angle_sigma: float = 0.001
    ecal_stochastic: float = 0.05
    ecal_constant: float = 0.005
    hcal_stochastic: float = 1.0
    hcal_constant: float = 0.05
    ecal_angle_sigma: float = 0.005
    hcal_angle_sigma: float = 0.02
    photon_e_min: float = 0.5
    neutral_e_min: float = 1.0
    calo_eta_max: float = 3.0
    muons_in_calo: bool = False
    cell_size: float | None = None
    cluster_pt_min: float = 0.0
    pileup_density: float = 0.0
    pileup_pt_mean: float = 0.7
    pileup_eta_max: float = 3.0

    def __post_init__(self) -> None:
        for f in ("track_efficiency", "track_efficiency_low_pt"):
            v = getattr(self, f)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"DetectorModel {self.name!r}: {f} must be in [0, 1], got {v}")
        for f in (
            "track_res_const",
            "track_res_slope",
            "ecal_stochastic",
            "ecal_constant",
            "hcal_stochastic",
            "hcal_constant",
            "pileup_density",
        ):
            if getattr(self, f) < 0:
                raise ValueError(f"DetectorModel {self.name!r}: {f} must be >= 0, got {getattr(self, f)}")
        if self.cell_size is not None and self.cell_size <= 0:
            raise ValueError(f"DetectorModel {self.name!r}: cell_size must be > 0 or None, got {self.cell_size}")

    def replace(self, **changes) -> "DetectorModel":
        return replace(self, **changes)

    def min_visible_pt(self, eta: np.ndarray) -> np.ndarray:
        """The softest particle pT (GeV) this detector reports at pseudorapidity ``eta``; inf where it sees nothing.

        Why: a generator of detector-level particles must stay where the detector can put particles
        (``jetlab.tasks.pretraining.diffusion_generation.generate_jets(acceptance=...)``). Calorimeter deposits pass an energy
        threshold after smearing, so their reported pT >= E_min / cosh(eta) exactly (and >= the cluster
        threshold); tracks pass ``track_pt_min`` before their pT is smeared, so the bound keeps
        five resolution widths of margin; pileup deposits start at the cluster threshold.
        """
        a = np.abs(np.asarray(eta, dtype=np.float64))
        inf = np.full_like(a, np.inf)
        calo_reach = self.calo_eta_max + _SMEARING_MARGIN * max(self.ecal_angle_sigma, self.hcal_angle_sigma)
        calo_e_min = min(self.photon_e_min, self.neutral_e_min)
        calo = np.maximum(calo_e_min / np.cosh(np.minimum(a, 20.0)), self.cluster_pt_min)
        out = np.where(a <= calo_reach, calo, inf)
        if self.use_tracks:
            track_reach = self.track_eta_max + _SMEARING_MARGIN * self.track_angle_sigma
            res = float(self.track_resolution(np.asarray(self.track_pt_min)))
            track = self.track_pt_min * max(1.0 - _SMEARING_MARGIN * res, 0.05)  # apply() clips the smearing at 0.05
            out = np.where(a <= track_reach, np.minimum(out, track), out)
        if self.pileup_density > 0:
            out = np.where(a <= self.pileup_eta_max, np.minimum(out, self.cluster_pt_min), out)
        return out

    # ------------------------------------------------------------------ pieces
    def track_efficiency_at(self, pt: np.ndarray, eta: np.ndarray) -> np.ndarray:
        eff = np.where(pt >= self.track_eff_pt_knee, self.track_efficiency, self.track_efficiency_low_pt)
        inside = (pt > self.track_pt_min) & (np.abs(eta) < self.track_eta_max)
        return np.where(inside, eff, 0.0)

    def track_resolution(self, pt: np.ndarray) -> np.ndarray:
        return np.hypot(self.track_res_const, self.track_res_slope * pt)

    def calo_resolution(self, energy: np.ndarray, em: np.ndarray) -> np.ndarray:
        stoch = np.where(em, self.ecal_stochastic, self.hcal_stochastic)
        const = np.where(em, self.ecal_constant, self.hcal_constant)
        return np.hypot(stoch / np.sqrt(np.maximum(energy, 1e-6)), const)

    # ------------------------------------------------------------------- apply
    def apply(
        self,
        px: np.ndarray,
        py: np.ndarray,
        pz: np.ndarray,
        energy: np.ndarray,
        pdg: np.ndarray,
        charge: np.ndarray,
        event: np.ndarray,
        n_events: int,
        rng: np.random.Generator,
    ) -> RecoParticles:
        """Reconstruct flat generator-level stable particles; see the class docstring."""
        px, py, pz, energy, pdg, charge, event = _checked_inputs(px, py, pz, energy, pdg, charge, event)
        n = len(px)
        a = np.abs(pdg)
        visible = ~np.isin(a, _NEUTRINOS)
        pt, eta, phi = _kinematics(px, py, pz)
        is_mu = a == 13
        is_e = a == 11
        is_gamma = a == 22
        charged = (charge != 0) & visible

        # ---- tracks
        if self.use_tracks:
            eff = self.track_efficiency_at(pt, eta)
            tracked = charged & (rng.random(n) < eff)
        else:
            tracked = np.zeros(n, dtype=bool)
        # ---- calorimeter deposits: everything visible that is not a track (muons only if allowed)
        calo = visible & ~tracked & (np.abs(eta) < self.calo_eta_max)
        if not self.muons_in_calo:
            calo &= ~is_mu
        em = is_gamma | is_e

        out = {}
        # the random draws keep their order: tracks, then calorimeter, then pileup
        ti = np.nonzero(tracked)[0]
        if len(ti):
            kin = self._smeared_tracks(pt[ti], eta[ti], phi[ti], energy[ti], pz[ti], rng)
            out["tracks"] = (*kin, np.sign(charge[ti]), _track_flags(is_e[ti], is_mu[ti]), event[ti])
        ci = np.nonzero(calo)[0]
        if len(ci):
            out["calo"] = self._calo_clusters(energy[ci], eta[ci], phi[ci], event[ci], em[ci], rng)
        if self.pileup_density > 0 and n_events > 0:
            out["pileup"] = self._pileup(n_events, rng)
        return _event_ordered(list(out.values()))

    def _smeared_tracks(self, pt, eta, phi, energy, pz, rng) -> tuple:
        """Track (pT, eta, phi, energy): pT smearing, tiny angular smearing, the particle's mass kept."""
        s = 1.0 + self.track_resolution(pt) * rng.standard_normal(len(pt))
        s = np.clip(s, 0.05, None)
        tpt = pt * s
        teta = eta + self.track_angle_sigma * rng.standard_normal(len(pt))
        tphi = wrap_phi(phi + self.track_angle_sigma * rng.standard_normal(len(pt)))
        m2 = np.clip(energy**2 - pt**2 - pz**2, 0, None)
        return (tpt, teta, tphi, np.sqrt((tpt * np.cosh(teta)) ** 2 + m2))

    def _calo_clusters(self, energy, eta, phi, cev, cem, rng) -> tuple:
        """Calorimeter deposits: energy and angular smearing, cell merging, thresholds; massless."""
        ce = energy * (1.0 + self.calo_resolution(energy, cem) * rng.standard_normal(len(energy)))
        sig = np.where(cem, self.ecal_angle_sigma, self.hcal_angle_sigma)
        ceta = eta + sig * rng.standard_normal(len(energy))
        cphi = wrap_phi(phi + sig * rng.standard_normal(len(energy)))
        if self.cell_size is not None:
            ce, ceta, cphi, cev, cem = self._merge_cells(ce, ceta, cphi, cev, cem)
        keep = ce > np.where(cem, self.photon_e_min, self.neutral_e_min)
        ce, ceta, cphi, cev, cem = ce[keep], ceta[keep], cphi[keep], cev[keep], cem[keep]
        cpt = ce / np.cosh(ceta)
        if self.cluster_pt_min > 0:
            keep = cpt > self.cluster_pt_min
            ce, ceta, cphi, cev, cem, cpt = ce[keep], ceta[keep], cphi[keep], cev[keep], cem[keep], cpt[keep]
        cflags = np.zeros((len(ce), 5), dtype=bool)
        cflags[:, 1] = ~cem
        cflags[:, 2] = cem
        return (cpt, ceta, cphi, ce, np.zeros(len(ce)), cflags, cev)

    def _pileup(self, n_events: int, rng: np.random.Generator) -> tuple:
        """Pileup overlay: a Poisson number of soft neutral clusters per event, flat in eta and phi."""
        area = 2 * self.pileup_eta_max * 2 * np.pi
        npu = rng.poisson(self.pileup_density * area, size=n_events)
        tot = int(npu.sum())
        pev = np.repeat(np.arange(n_events), npu)
        ppt = self.cluster_pt_min + rng.exponential(self.pileup_pt_mean, tot)
        peta = rng.uniform(-self.pileup_eta_max, self.pileup_eta_max, tot)
        pphi = rng.uniform(-np.pi, np.pi, tot)
        pflags = np.zeros((tot, 5), dtype=bool)
        pflags[:, 1] = True
        return (ppt, peta, pphi, ppt * np.cosh(peta), np.zeros(tot), pflags, pev)

    def _merge_cells(self, e, eta, phi, ev, em):
        """Sum deposits of one event falling in the same eta-phi cell (energy-weighted axes)."""
        assert self.cell_size is not None, "_merge_cells runs only when cell merging is on"
        cs = float(self.cell_size)
        ieta = np.floor(eta / cs).astype(np.int64)
        nphi = int(np.ceil(2 * np.pi / cs))
        iphi = np.floor((phi + np.pi) / cs).astype(np.int64) % nphi
        neta = int(np.ceil(2 * (self.calo_eta_max + 1) / cs)) + 2
        key = (ev * neta + (ieta + neta // 2)) * nphi + iphi
        uniq, inv = np.unique(key, return_inverse=True)
        w = np.maximum(e, 0.0)
        esum = np.bincount(inv, weights=e, minlength=len(uniq))
        wsum = np.bincount(inv, weights=w, minlength=len(uniq))
        wsum_safe = np.where(wsum > 0, wsum, 1.0)
        meta = np.bincount(inv, weights=w * eta, minlength=len(uniq)) / wsum_safe
        # average phi via unit vectors so cells at the +-pi seam behave
        cx = np.bincount(inv, weights=w * np.cos(phi), minlength=len(uniq))
        sy = np.bincount(inv, weights=w * np.sin(phi), minlength=len(uniq))
        mphi = np.arctan2(sy, cx)
        emfrac = np.bincount(inv, weights=w * em, minlength=len(uniq)) / wsum_safe
        mev = uniq // (neta * nphi)
        return esum, meta, mphi, mev, emfrac > 0.5


#: CMS/Delphes-like particle flow (JetClass): tracks + ECAL/HCAL, PID kept.
JETCLASS_LIKE = DetectorModel(name="jetclass-like")

#: ATLAS-like topo-cluster proxy: calorimeter only, 0.1 cells, coarser, pileup, no PID.
ATLAS_LIKE = DetectorModel(
    name="atlas-like",
    use_tracks=False,
    keeps_pid=False,
    ecal_stochastic=0.10,
    ecal_constant=0.007,
    hcal_stochastic=0.50,
    hcal_constant=0.03,
    ecal_angle_sigma=0.01,
    hcal_angle_sigma=0.03,
    photon_e_min=0.4,
    neutral_e_min=0.4,
    calo_eta_max=3.2,
    cell_size=0.1,
    cluster_pt_min=0.4,
    pileup_density=4.0,
    pileup_pt_mean=0.6,
    pileup_eta_max=3.0,
)

#: The detector presets by name (the name a generated file's ``info["detector"]`` records).
DETECTORS: dict[str, DetectorModel] = {d.name: d for d in (JETCLASS_LIKE, ATLAS_LIKE)}


def get_detector(detector: DetectorModel | str) -> DetectorModel:
    """A :class:`DetectorModel` from itself or from its preset name."""
    if isinstance(detector, DetectorModel):
        return detector
    if detector not in DETECTORS:
        raise ValueError(f"unknown detector {detector!r}: expected a DetectorModel or one of {sorted(DETECTORS)}")
    return DETECTORS[detector]


@dataclass(frozen=True)
class JetAcceptance:
    """Where a dataset's detector-level particles can lie: recorded by ``detector``, clustered into
    anti-kT jets of radius ``jet_radius``. Generated particles are held to it
    (``jetlab.tasks.pretraining.diffusion_generation.generate_jets(acceptance=...)``); :func:`jetlab.data.sources.acceptance_of`
    finds a dataset's.
    """

    detector: DetectorModel
    jet_radius: float

    def __post_init__(self) -> None:
        if not self.jet_radius > 0:
            raise ValueError(f"JetAcceptance: jet_radius must be > 0, got {self.jet_radius}")

    def recordable(self, pt: np.ndarray, eta: np.ndarray) -> np.ndarray:
        """True where the detector can report a particle of this pT at this pseudorapidity."""
        return np.asarray(pt) >= self.detector.min_visible_pt(eta)
