"""What generated particles can be held to (:data:`GEN_CONSTRAINTS`, the ``balance_pt`` / ``match_mass`` /
``acceptance`` of :func:`.diffusion_generation.generate_jets`): the particles' pT balanced to the
generated jet pT, the jet widened or narrowed to the generated jet mass (:func:`match_jet_mass`), and
particles the dataset's detector could not have recorded removed (:func:`unrecordable_fractions` counts them)."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from jetlab.data.schema import JetSet, jet_features_from_particles
from jetlab.simulator.detector import JetAcceptance

__all__ = [
    "GEN_CONSTRAINTS",
    "apply_constraints",
    "check_constraints",
    "constraint_flags",
    "match_jet_mass",
    "unrecordable_fractions",
]

#: What the generated particles can be held to (``constraints`` of :func:`evaluate_pretraining`):
#: "pt" balances the particles' pT to the generated jet pT, "mass" widens or narrows the jet to the
#: generated jet mass, "detector" draws a particle the dataset's detector could not have recorded again
#: and removes it if it stays unrecordable (``balance_pt`` / ``match_mass`` / ``acceptance`` of
#: :func:`generate_jets`).
GEN_CONSTRAINTS: tuple[str, ...] = ("pt", "mass", "detector")


def check_constraints(constraints: Sequence[str] | str | None, where: str = "generate_jets") -> tuple[str, ...]:
    """The names in :data:`GEN_CONSTRAINTS` that ``constraints`` asks for, in that order; an unknown name is an error."""
    names = [constraints] if isinstance(constraints, str) else list(constraints or ())
    bad = [c for c in names if c not in GEN_CONSTRAINTS]
    if bad:
        raise ValueError(f"{where}: unknown constraints {bad}; choose from {list(GEN_CONSTRAINTS)}")
    return tuple(c for c in GEN_CONSTRAINTS if c in names)


def constraint_flags(
    constraints: Sequence[str] | str | None, where: str = "generate_jets", acceptance: JetAcceptance | None = None
) -> dict[str, Any]:
    """``{"balance_pt", "match_mass", "acceptance"}`` for :func:`generate_jets` from names in :data:`GEN_CONSTRAINTS`.

    "detector" needs the dataset's ``acceptance`` (:func:`jetlab.data.sources.acceptance_of`).
    """
    names = check_constraints(constraints, where)
    if "detector" in names and acceptance is None:
        raise ValueError(
            f"{where}: the 'detector' constraint needs the dataset's acceptance "
            "(jetlab.data.sources.acceptance_of(dataset)); none was given"
        )
    return {
        "balance_pt": "pt" in names,
        "match_mass": "mass" in names,
        "acceptance": acceptance if "detector" in names else None,
    }


def match_jet_mass(
    particles: np.ndarray,
    mask: np.ndarray,
    target_mass: np.ndarray,
    *,
    target_pt: np.ndarray | None = None,
    iterations: int = 6,
    max_scale: float = 4.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Widen or narrow each jet about its axis until its particles' invariant mass is ``target_mass``.

    Why: the diffusion head is conditioned on the jet mass but, trained on a CPU budget, does not
    honour it closely, while the jet-feature generator's mass is close to the real distribution
    (``benchmarks/bench_generation.py --constraints`` measures both). For collimated massless
    particles m^2 ~ sum_{i<j} pT_i pT_j dR_ij^2, so scaling every particle's (deta, dphi) from the jet
    axis by one factor s scales the mass by about s; a few fixed-point steps ``s <- s * m_target / m(s)``
    make it exact to well under a percent. Multiplicity and which particle is where relative to the
    others are unchanged; so are the particle pT, unless ``target_pt`` is given: widening also moves the
    jet pT a little, so then the angular scale matches the ratio m/pT and one common pT factor per jet
    (which scales pT and mass alike) matches both.

    ``particles`` (N, P, 4) massless (pT, eta, phi, E); returns the rescaled particles (E recomputed)
    and the scale per jet, clipped to ``[1 / max_scale, max_scale]``; jets with one particle or a
    target mass <= 0 are left as they are (scale 1).
    """
    particles = np.asarray(particles, dtype=np.float64)
    mask = np.asarray(mask, dtype=bool)
    target = np.asarray(target_mass, dtype=np.float64).reshape(-1)
    if particles.ndim != 3 or particles.shape[-1] < 3 or mask.shape != particles.shape[:2]:
        raise ValueError(
            f"match_jet_mass: particles must be (N, P, 4) (pT, eta, phi, E) with a (N, P) mask, got "
            f"{particles.shape} and {mask.shape}"
        )
    if len(target) != len(particles):
        raise ValueError(f"match_jet_mass: target_mass has {len(target)} entries, expected {len(particles)}")
    goal_pt = None if target_pt is None else np.asarray(target_pt, dtype=np.float64).reshape(-1)
    if goal_pt is not None and len(goal_pt) != len(particles):
        raise ValueError(f"match_jet_mass: target_pt has {len(goal_pt)} entries, expected {len(particles)}")
    kin = jet_features_from_particles(particles, mask)
    axis_eta, axis_phi = kin[:, 1:2].astype(np.float64), kin[:, 2:3].astype(np.float64)
    pt = particles[..., 0]
    deta = particles[..., 1] - axis_eta
    dphi = (particles[..., 2] - axis_phi + np.pi) % (2 * np.pi) - np.pi
    active = (mask.sum(1) > 1) & (target > 0) & (kin[:, 3] > 0)
    if goal_pt is not None:  # match m / pT with the angles, then pT (and with it m) with one factor
        active &= goal_pt > 0
        target = np.divide(target, goal_pt, out=np.zeros_like(target), where=goal_pt > 0)

    def widened(scale: np.ndarray, pt_factor: np.ndarray | float = 1.0) -> np.ndarray:
        eta = axis_eta + deta * scale[:, None]
        phi = (axis_phi + dphi * scale[:, None] + np.pi) % (2 * np.pi) - np.pi
        p = pt * np.reshape(pt_factor, (-1, 1))
        out = np.stack([p, eta, phi, p * np.cosh(np.clip(eta, -10, 10))], axis=-1)
        return np.where(mask[..., None], out, 0.0)

    def measured(scale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        k = jet_features_from_particles(widened(scale), mask).astype(np.float64)
        return k[:, 3], k[:, 0]

    scale = np.ones(len(particles))
    for _ in range(iterations):
        mass, jet_pt = measured(scale)
        now = mass if goal_pt is None else np.divide(mass, jet_pt, out=np.zeros_like(mass), where=jet_pt > 0)
        step = np.divide(target, now, out=np.ones_like(target), where=active & (now > 0))
        scale = np.clip(scale * step, 1.0 / max_scale, max_scale)
    if goal_pt is None:
        return widened(scale), scale
    jet_pt = measured(scale)[1]
    factor = np.divide(goal_pt, jet_pt, out=np.ones_like(jet_pt), where=(goal_pt > 0) & (jet_pt > 0))
    return widened(scale, factor), scale


def _recordable(particles: np.ndarray, mask: np.ndarray, acceptance: JetAcceptance) -> np.ndarray:
    """``mask`` without the particles ``acceptance``'s detector could not record; a jet keeps at least its hardest."""
    keep = mask & acceptance.recordable(particles[..., 0], particles[..., 1])
    hardest = np.argmax(np.where(mask, particles[..., 0], -np.inf), axis=1)
    empty = ~keep.any(1) & mask.any(1)
    keep[empty, hardest[empty]] = True
    return keep


def _with_jet_pt(particles: np.ndarray, mask: np.ndarray, jet_pt: np.ndarray) -> np.ndarray:
    """Every jet's particle pT (and E) scaled by one factor so that the jet pT is ``jet_pt``."""
    now = jet_features_from_particles(particles, mask)[:, 0].astype(np.float64)
    factor = np.divide(jet_pt, now, out=np.ones_like(now), where=now > 0)
    out = particles.copy()
    out[..., 0] *= factor[:, None]
    out[..., 3] *= factor[:, None]
    return out


def apply_constraints(
    particles: np.ndarray,
    mask: np.ndarray,
    feats: np.ndarray,
    extra: dict[str, np.ndarray],
    *,
    balance_pt: bool,
    match_mass: bool,
    acceptance: JetAcceptance | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Hold generated ``particles`` (with ``mask``) of jets with features ``feats`` (pT, eta, mass, N) to the
    constraints: particles ``acceptance``'s detector could not record are removed (with ``balance_pt``
    what remains carries the jet pT again), the jet mass is matched (``match_mass``; scale per jet in
    ``extra["mass_scale"]``) and what matching moved out of reach is removed too (the count per jet in
    ``extra["unrecordable"]``). Returns ``(particles, mask)``."""
    drawn = mask
    if acceptance is not None:
        mask = _recordable(particles, mask, acceptance)
        if balance_pt and not match_mass:  # what remains carries the jet pT again
            particles = _with_jet_pt(particles, mask, feats[:, 0])
    if match_mass:
        particles, scale = match_jet_mass(particles, mask, feats[:, 2], target_pt=feats[:, 0] if balance_pt else None)
        extra["mass_scale"] = scale.astype(np.float32)
    if acceptance is not None:
        mask = _recordable(particles, mask, acceptance)  # matching moved some particles
        extra["unrecordable"] = (drawn.sum(1) - mask.sum(1)).astype(np.int64)
    return particles, mask


def unrecordable_fractions(generated: JetSet, acceptance: JetAcceptance) -> dict[str, float]:
    """Fractions of generated particles ``acceptance``'s detector could not have recorded: as first
    drawn (``before``), removed after the redraws (``removed``) and in the result (``after``); without
    the "detector" constraint ``before`` = ``after`` and nothing is removed."""
    p, m = generated.particles, generated.mask
    left = int((m & ~acceptance.recordable(p[..., 0], p[..., 1])).sum())
    removed = int(np.sum(generated.extra.get("unrecordable", 0)))
    drawn = max(int(m.sum()) + removed, 1)
    first = int(np.sum(generated.extra["redrawn"])) if "redrawn" in generated.extra else left + removed
    return {"before": first / drawn, "removed": removed / drawn, "after": left / max(int(m.sum()), 1)}
