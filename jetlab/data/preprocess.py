"""Turn schema jets into model inputs: the 13 PET particle features and 4 jet features.

Particle inputs (OmniLearn convention), in this order:

==  ===================  ==============================================================
0   deta                 eta - eta_jet, sign flipped when eta_jet < 0 (forward/backward symmetry)
1   dphi                 phi - phi_jet wrapped to (-pi, pi]
2   log_1m_ptrel         log(1 - pT / pT_jet)
3   log_pt               log pT [GeV]
4   log_1m_erel          log(1 - E / E_jet)
5   log_e                log E [GeV]
6   dr                   sqrt(deta^2 + dphi^2)
7   charge               0 where the dataset has no charge
8..12 PID flags          charged hadron, neutral hadron, photon, electron, muon (0 if absent)
==  ===================  ==============================================================

Jet inputs: pT [GeV], eta, mass [GeV], multiplicity.

Features 7-12 form the ``"pid"`` group: a dataset without them gets zeros and
``available_groups`` says so, so the model can drop that group consistently (PID dropout).
Padded slots are exactly zero after standardisation, so the model never sees garbage there.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from .schema import JET_FEATURES, PID_FEATURES, JetSet, SchemaError

#: Kinematic inputs relative to the jet axis, then the schema's PID columns as they are.
KINEMATIC_INPUTS: tuple[str, ...] = ("deta", "dphi", "log_1m_ptrel", "log_pt", "log_1m_erel", "log_e", "dr")
PARTICLE_INPUTS: tuple[str, ...] = KINEMATIC_INPUTS + PID_FEATURES
JET_INPUTS: tuple[str, ...] = ("pt", "eta", "mass", "n_particles")
#: Groups of particle inputs that a dataset may lack; the model can drop each as a whole.
FEATURE_GROUPS: dict[str, tuple[int, ...]] = {
    "kinematics": tuple(range(len(KINEMATIC_INPUTS))),
    "pid": tuple(range(len(KINEMATIC_INPUTS), len(PARTICLE_INPUTS))),
}
#: Inputs that are flags (0/1) or charge: not standardised.
_UNSCALED = set(FEATURE_GROUPS["pid"])
_EPS = 1e-8


def wrap_phi(dphi: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):  # inf stays non-finite and is reported by the caller
        return (np.asarray(dphi) + np.pi) % (2 * np.pi) - np.pi


def available_groups(jetset: JetSet) -> tuple[str, ...]:
    """Feature groups the dataset really carries (kinematics always)."""
    groups = ["kinematics"]
    if jetset.has("charge") and all(jetset.has(f) for f in PID_FEATURES):
        groups.append("pid")
    return tuple(groups)


def _bad_rows(bad: np.ndarray) -> list[int]:
    """The first (at most five) jet indices with a True anywhere in ``bad`` (N, ...)."""
    return np.unique(np.nonzero(bad)[0])[:5].tolist()


def _check_jets_finite(jetset: JetSet, columns: tuple[int, ...]) -> None:
    """Raise if a used jet feature is NaN/inf: it would poison the standardiser for every jet."""
    bad = ~np.isfinite(jetset.jets[:, list(columns)])
    if bad.any():
        names = [JET_FEATURES[c] for c in columns]
        raise SchemaError(f"non-finite jet inputs in jets {_bad_rows(bad)} (NaN/inf in jet features {names})")


def particle_inputs(jetset: JetSet) -> np.ndarray:
    """(N, P, 13) float32 raw (unstandardised) particle inputs; padded slots are 0.

    NaN/inf in a real particle (or in the jet pT, eta, phi, mass it is measured against) is an
    error naming the jets; garbage in padded slots is ignored (they are zeroed).
    """
    mask = jetset.mask
    bad = ~np.isfinite(jetset.particles) & mask[..., None]
    if bad.any():
        raise SchemaError(
            f"non-finite particle inputs in jets {_bad_rows(bad)} (NaN/inf in particle features of real particles)"
        )
    _check_jets_finite(jetset, (0, 1, 2, 3))
    pt, eta, phi, e = (jetset.particles[..., i].astype(np.float64) for i in range(4))
    jpt = jetset.jets[:, 0:1].astype(np.float64)
    jeta = jetset.jets[:, 1:2].astype(np.float64)
    jphi = jetset.jets[:, 2:3].astype(np.float64)
    # jet energy from the jet four-vector (pT, eta, m) so E_rel is well defined
    jm = jetset.jets[:, 3:4].astype(np.float64)
    je = np.sqrt((jpt * np.cosh(jeta)) ** 2 + jm**2)
    sign = np.where(jeta < 0, -1.0, 1.0)
    deta = (eta - jeta) * sign
    dphi = wrap_phi(phi - jphi)
    with np.errstate(divide="ignore", invalid="ignore"):
        ptrel = np.clip(pt / np.maximum(jpt, _EPS), 0.0, 1.0 - 1e-6)
        erel = np.clip(e / np.maximum(je, _EPS), 0.0, 1.0 - 1e-6)
        out = np.zeros(mask.shape + (len(PARTICLE_INPUTS),), dtype=np.float64)
        out[..., 0] = deta
        out[..., 1] = dphi
        out[..., 2] = np.log1p(-ptrel)
        out[..., 3] = np.log(np.maximum(pt, _EPS))
        out[..., 4] = np.log1p(-erel)
        out[..., 5] = np.log(np.maximum(e, _EPS))
        out[..., 6] = np.hypot(deta, dphi)
    if "pid" in available_groups(jetset):
        out[..., 7] = jetset.feature("charge")
        for j, name in enumerate(PID_FEATURES[1:]):
            out[..., 8 + j] = jetset.feature(name)
    out[~mask] = 0.0
    if not np.isfinite(out).all():
        bad = np.unique(np.nonzero(~np.isfinite(out))[0])[:5]
        raise SchemaError(f"non-finite particle inputs in jets {bad.tolist()} (check pT/E > 0)")
    return out.astype(np.float32)


def jet_inputs(jetset: JetSet) -> np.ndarray:
    """(N, 4) float32 raw jet inputs: pT, eta, mass, multiplicity (NaN/inf is an error)."""
    _check_jets_finite(jetset, (0, 1, 3, 4))
    j = jetset.jets
    return np.stack([j[:, 0], j[:, 1], j[:, 3], j[:, 4]], axis=1).astype(np.float32)


@dataclass
class Standardizer:
    """Per-feature mean/std for particle (over real particles) and jet inputs.

    Stored with data files and in checkpoints' model cards so fine-tuning uses the
    normalisation the foundation model was pretrained with.
    """

    particle_mean: np.ndarray
    particle_std: np.ndarray
    jet_mean: np.ndarray
    jet_std: np.ndarray

    @classmethod
    def fit(cls, particles: np.ndarray, mask: np.ndarray, jets: np.ndarray) -> "Standardizer":
        real = particles[mask]
        if len(real) == 0:
            raise ValueError("Standardizer.fit: no real particles (all masked)")
        pm = real.mean(0)
        ps = real.std(0)
        for i in _UNSCALED:
            pm[i], ps[i] = 0.0, 1.0
        ps = np.where(ps < 1e-6, 1.0, ps)
        jm = jets.mean(0)
        js = jets.std(0)
        js = np.where(js < 1e-6, 1.0, js)
        return cls(pm.astype(np.float32), ps.astype(np.float32), jm.astype(np.float32), js.astype(np.float32))

    @classmethod
    def fit_jetset(cls, jetset: JetSet) -> "Standardizer":
        return cls.fit(particle_inputs(jetset), jetset.mask, jet_inputs(jetset))

    def transform_particles(self, x: np.ndarray, mask: np.ndarray) -> np.ndarray:
        y = (x - self.particle_mean) / self.particle_std
        return np.where(mask[..., None], y, 0.0).astype(np.float32)

    def inverse_particles(self, y: np.ndarray, mask: np.ndarray) -> np.ndarray:
        x = y * self.particle_std + self.particle_mean
        return np.where(mask[..., None], x, 0.0).astype(np.float32)

    def transform_jets(self, j: np.ndarray) -> np.ndarray:
        return ((j - self.jet_mean) / self.jet_std).astype(np.float32)

    def inverse_jets(self, j: np.ndarray) -> np.ndarray:
        return (j * self.jet_std + self.jet_mean).astype(np.float32)

    def to_dict(self) -> dict:
        return {
            "particle_inputs": list(PARTICLE_INPUTS),
            "jet_inputs": list(JET_INPUTS),
            "particle_mean": self.particle_mean.tolist(),
            "particle_std": self.particle_std.tolist(),
            "jet_mean": self.jet_mean.tolist(),
            "jet_std": self.jet_std.tolist(),
        }

    @classmethod
    def from_dict(cls, d: Mapping) -> "Standardizer":
        if list(d.get("particle_inputs", PARTICLE_INPUTS)) != list(PARTICLE_INPUTS):
            raise ValueError(
                f"standardizer was made for particle inputs {d.get('particle_inputs')}, "
                f"this jetlab uses {list(PARTICLE_INPUTS)}"
            )
        return cls(
            *(np.asarray(d[k], dtype=np.float32) for k in ("particle_mean", "particle_std", "jet_mean", "jet_std"))
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict())


def model_inputs(jetset: JetSet, standardizer: Standardizer | None = None):
    """(particles (N,P,13), mask (N,P), jets (N,4), standardizer) ready for the model."""
    x = particle_inputs(jetset)
    j = jet_inputs(jetset)
    if standardizer is None:
        standardizer = Standardizer.fit(x, jetset.mask, j)
    return (
        standardizer.transform_particles(x, jetset.mask),
        jetset.mask.copy(),
        standardizer.transform_jets(j),
        standardizer,
    )
