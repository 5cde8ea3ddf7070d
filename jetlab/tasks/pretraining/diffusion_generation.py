"""Generating jets with the pretrained model's diffusion head and judging them (notebook 01, evaluation of
pretraining); the Pythia simulation of jets is :mod:`jetlab.simulator`.

Generating a jet takes two stages, because PET's generator head produces particles *given* the
jet-level features and class:

1. :class:`jetlab.model.jet_generator.JetFeatureGenerator` samples (pT, eta, mass, N) per class;
2. :func:`jetlab.model.diffusion.sample` (DDIM) samples the N particles' (deta, dphi, and
   log(1 - pT/pT_jet) or log pT: :attr:`PETConfig.gen_pt_input`) conditioned on those features and the class; the standardizer turns them
   back into physical massless particles (pT, eta, phi, E), and the jet observables are
   recomputed *from the particles*, so the evaluation judges what was generated.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from jetlab.data.preprocess import Standardizer
from jetlab.data.schema import KINEMATIC_FEATURES, JetSet, jet_features_from_particles
from jetlab.data.torchdata import JetDataset
from jetlab.model.diffusion import balance_ptrel, generated_ptrel, sample
from jetlab.model.jet_generator import JetFeatureGenerator
from jetlab.physics.metrics import binomial_standard_error, wasserstein_1d
from jetlab.simulator.detector import JetAcceptance
from jetlab.train import predict
from jetlab.train.ddp import resolve_device

from ..common import fit_jet_generator

__all__ = [
    "GEN_CONSTRAINTS",
    "OBSERVABLES",
    "as_generated",
    "check_constraints",
    "constraint_flags",
    "evaluate_pretraining",
    "generate_jets",
    "jet_observables",
    "match_jet_mass",
    "REDRAWS",
    "unrecordable_fractions",
    "train_jet_generator",
    "wasserstein_table",
]

#: Observables compared between generated and real jets (all computed from the particles).
OBSERVABLES: tuple[str, ...] = ("jet_mass", "multiplicity", "particle_pt", "particle_eta", "particle_phi")
#: What the generated particles can be held to (``constraints`` of :func:`evaluate_pretraining`):
#: "pt" balances the particles' pT to the generated jet pT, "mass" widens or narrows the jet to the
#: generated jet mass, "detector" draws a particle the dataset's detector could not have recorded again
#: and removes it if it stays unrecordable (``balance_pt`` / ``match_mass`` / ``acceptance`` of
#: :func:`generate_jets`).
GEN_CONSTRAINTS: tuple[str, ...] = ("pt", "mass", "detector")
#: Index of the multiplicity in the jet inputs (pT, eta, mass, N).
_MULT = 3
#: Rounds in which :func:`generate_jets` draws a particle the detector could not record again.
REDRAWS = 3


def _balanced_labels(n: int, num_classes: int) -> np.ndarray:
    return np.arange(n) % max(num_classes, 1)


def _as_labels(labels, n: int, num_classes: int) -> np.ndarray:
    """Per-jet class labels: None -> balanced, int -> all that class, array (n,) -> as given."""
    if labels is None:
        return _balanced_labels(n, num_classes)
    if np.ndim(labels) == 0:
        out = np.full(n, int(labels), dtype=np.int64)
    else:
        out = np.asarray(labels, dtype=np.int64).reshape(-1)
        if len(out) != n:
            raise ValueError(f"generate_jets: labels has {len(out)} entries, expected n={n}")
    if len(out) and (out.min() < 0 or out.max() >= num_classes):
        raise ValueError(
            f"generate_jets: labels must be class indices in [0, {num_classes - 1}], got range "
            f"[{out.min()}, {out.max()}]"
        )
    return out


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


def jet_observables(jets: JetSet) -> dict[str, np.ndarray]:
    """Per-jet (mass, multiplicity) from the particles and per-particle (pT, eta, phi) of real particles."""
    kin = jet_features_from_particles(jets.particles, jets.mask)
    return {
        "jet_mass": kin[:, 3].astype(np.float64),
        "multiplicity": jets.mask.sum(1).astype(np.float64),
        "particle_pt": jets.particles[..., 0][jets.mask].astype(np.float64),
        "particle_eta": jets.particles[..., 1][jets.mask].astype(np.float64),
        "particle_phi": jets.particles[..., 2][jets.mask].astype(np.float64),
    }


def wasserstein_table(
    a: JetSet, b: JetSet, class_names: Sequence[str] | None = None, observables: Sequence[str] = OBSERVABLES
) -> dict[str, dict[str, float]]:
    """1-Wasserstein distance per observable between two JetSets, overall and per class.

    Returns ``{observable: {"all": w1, <class name>: w1, ...}}``; a class absent from either
    set is skipped.
    """
    bad = [o for o in observables if o not in OBSERVABLES]
    if bad:
        raise ValueError(f"wasserstein_table: unknown observables {bad}; choose from {list(OBSERVABLES)}")
    classes = np.union1d(np.unique(a.labels), np.unique(b.labels))
    names = (
        list(class_names)
        if class_names is not None
        else [str(c) for c in range(int(classes.max()) + 1 if len(classes) else 0)]
    )
    groups: list[tuple[str, JetSet, JetSet]] = [("all", a, b)]
    for c in classes:
        ia, ib = a.labels == c, b.labels == c
        if ia.any() and ib.any():
            groups.append((names[int(c)] if int(c) < len(names) else str(int(c)), a.subset(ia), b.subset(ib)))
    out: dict[str, dict[str, float]] = {o: {} for o in observables}
    for name, ja, jb in groups:
        oa, ob = jet_observables(ja), jet_observables(jb)
        for o in observables:
            if len(oa[o]) and len(ob[o]):
                out[o][name] = wasserstein_1d(oa[o], ob[o])
    return out


# ---------------------------------------------------------------------------- generation
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


@torch.no_grad()
def generate_jets(
    model,
    jet_generator: JetFeatureGenerator,
    n: int,
    labels=None,
    standardizer: Standardizer | None = None,
    steps: int = 32,
    seed: int = 0,
    *,
    jet_steps: int = 64,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
    max_particles: int | None = None,
    guidance: float = 0.0,
    balance_pt: bool = False,
    match_mass: bool = False,
    acceptance: JetAcceptance | None = None,
) -> JetSet:
    """Generate ``n`` jets: jet features from ``jet_generator``, particles from PET's generator head.

    ``labels``: None (classes in turn), an int (all jets of that class) or an array of ``n`` class
    indices. ``standardizer`` defaults to the one in ``model.card``. ``steps``/``jet_steps`` are
    the DDIM steps of the particle / jet-feature samplers; ``guidance`` w > 0 is classifier-free
    guidance of the particle sampler (``(1 + w) v_class - w v_null``); ``balance_pt`` rescales each
    jet's particle pT so they add up to the conditioned jet pT (:func:`balance_ptrel`); ``match_mass``
    widens or narrows each jet until its particles' mass is the conditioned jet mass
    (:func:`match_jet_mass`). ``acceptance`` (the dataset's :class:`~jetlab.simulator.detector.JetAcceptance`)
    keeps the generated particles where its detector can put them: a particle it could not record
    (softer than its threshold at that eta, outside its eta reach) is drawn again given the rest of
    its jet (diffusion inpainting, :data:`REDRAWS` rounds); one that is still unrecordable is removed,
    as the detector removes real ones, before the pT and mass are matched and again after. Same ``seed`` -> same
    jets. The result holds massless particles (pT, eta, phi, E), pT-ordered, with jet features
    recomputed from them; the jet features that conditioned the generation are in
    ``extra["cond_jets"]``, with ``match_mass`` each jet's angular scale factor is in
    ``extra["mass_scale"]``; with ``acceptance`` the number of unrecordable particles per jet as first
    drawn is in ``extra["redrawn"]`` and the number removed in ``extra["unrecordable"]``.
    """
    if n < 1:
        raise ValueError(f"generate_jets: n must be >= 1, got {n}")
    if steps < 1 or jet_steps < 1:
        raise ValueError(f"generate_jets: steps and jet_steps must be >= 1, got {steps}, {jet_steps}")
    if standardizer is None:
        card = getattr(model, "card", None)
        standardizer = card.get_standardizer() if card is not None else None
        if standardizer is None:
            raise ValueError("generate_jets: pass standardizer= (the model has no card with one)")
    num_classes = int(model.config.num_classes)
    if jet_generator.num_features != 4:
        raise ValueError(
            f"generate_jets: jet_generator must model the 4 jet inputs (pT, eta, mass, N), "
            f"it has num_features={jet_generator.num_features}"
        )
    if max_particles is None:
        rng_ = jet_generator.integer_features.get(_MULT)
        if rng_ is None:
            raise ValueError("generate_jets: pass max_particles (the jet generator has no multiplicity range)")
        max_particles = int(rng_[1])
    lab = _as_labels(labels, n, num_classes)
    dev = resolve_device(device)
    model.to(dev).eval()
    jet_generator.to(dev).eval()
    gen = torch.Generator(device=dev).manual_seed(int(seed))
    rng = np.random.default_rng(int(seed))

    cond_lab = torch.as_tensor(lab, device=dev) if jet_generator.num_classes else None
    feats = jet_generator.sample(n, labels=cond_lab, steps=jet_steps, generator=gen).cpu().numpy().astype(np.float64)
    feats[:, _MULT] = np.clip(np.round(feats[:, _MULT]), 1, max_particles)
    feats[:, 0] = np.maximum(feats[:, 0], 1e-3)  # pT > 0
    feats[:, 2] = np.maximum(feats[:, 2], 0.0)  # mass >= 0
    mult = feats[:, _MULT].astype(np.int64)
    mask = np.arange(max_particles)[None, :] < mult[:, None]
    jets_std = standardizer.transform_jets(feats.astype(np.float32))

    def draw(rows: np.ndarray, known: np.ndarray | None = None, keep: np.ndarray | None = None) -> np.ndarray:
        """Standardised particle coordinates of the jets ``rows``, in batches (inpainting with ``keep``)."""
        parts = []
        for a in range(0, len(rows), batch_size):
            r = rows[a : a + batch_size]
            p = int(mult[r].max())  # no need to run the model over all-padding columns
            kw = {}
            if keep is not None and known is not None:
                kw = {
                    "known": torch.as_tensor(known[r, :p], device=dev),
                    "keep": torch.as_tensor(keep[r, :p], device=dev),
                }
            m = torch.as_tensor(mask[r, :p], device=dev)
            j = torch.as_tensor(jets_std[r], device=dev)
            y = torch.as_tensor(lab[r], device=dev)
            out = (
                sample(model, m, j, labels=y, steps=steps, generator=gen, guidance=guidance, **kw).float().cpu().numpy()
            )
            full = np.zeros((len(r), max_particles, out.shape[-1]), dtype=np.float32)
            full[:, :p] = out
            parts.append(full)
        return np.concatenate(parts)

    # standardised (deta, dphi, pT coordinate) -> physical particles
    pt_input = model.config.gen_pt_input
    idx = list(model.config.gen_feature_indices)
    ps, pm = standardizer.particle_std[idx].astype(np.float64), standardizer.particle_mean[idx].astype(np.float64)
    jpt, jeta = feats[:, 0:1], feats[:, 1:2]

    def physical(z: np.ndarray) -> tuple[np.ndarray, torch.Tensor]:
        """(deta, dphi, pT coordinate) and pT / pT_jet of standardised coordinates ``z``."""
        raw = z[..., :3].astype(np.float64) * ps + pm
        return raw, generated_ptrel(torch.from_numpy(raw[..., 2]), torch.from_numpy(jpt), pt_input)

    def lab_eta(deta: np.ndarray) -> np.ndarray:
        return jeta + np.where(jeta < 0, -1.0, 1.0) * deta

    z = draw(np.arange(n))
    redrawn = np.zeros(n, dtype=np.int64)
    if acceptance is not None:
        # particles the detector could not record are drawn again given the rest of their jet, a few times
        for round_ in range(REDRAWS):
            raw, ptrel_t = physical(z)
            pt_now = np.clip(ptrel_t.numpy(), 1e-6, 1.0 - 1e-6) * jpt
            bad = mask & ~acceptance.recordable(pt_now, lab_eta(raw[..., 0]))
            if round_ == 0:
                redrawn = bad.sum(1)
            rows = np.nonzero(bad.any(1))[0]
            if not len(rows):
                break
            keep = np.repeat(mask[..., None], z.shape[-1], axis=-1)
            keep[..., 2] &= ~bad  # the pT coordinate of an unrecordable particle is drawn again, given the rest
            z[rows] = draw(rows, known=z, keep=keep)
    raw, ptrel_t = physical(z)
    deta, dphi = raw[..., 0], raw[..., 1]
    jphi = rng.uniform(-np.pi, np.pi, size=(n, 1))  # the jet azimuth is not modelled: the physics is phi-symmetric
    if balance_pt:
        ptrel_t = balance_ptrel(ptrel_t.clamp(1e-6, 1.0), torch.from_numpy(dphi), torch.from_numpy(mask))
    ptrel = np.clip(ptrel_t.numpy(), 1e-6, 1.0 - 1e-6)
    pt = ptrel * jpt
    eta = lab_eta(deta)
    phi = (jphi + dphi + np.pi) % (2 * np.pi) - np.pi
    energy = pt * np.cosh(np.clip(eta, -10, 10))
    particles = np.stack([pt, eta, phi, energy], axis=-1)
    particles = np.where(mask[..., None], particles, 0.0)
    extra = {"cond_jets": feats.astype(np.float32)}
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
        extra["redrawn"] = redrawn.astype(np.int64)
    particles = np.where(mask[..., None], particles, 0.0)
    # pT-order (the schema's convention); the model is permutation-equivariant so order carries nothing
    order = np.argsort(np.where(mask, -particles[..., 0], np.inf), axis=1, kind="stable")
    particles = np.take_along_axis(particles, order[..., None], axis=1)
    mask = np.take_along_axis(mask, order, axis=1)
    jets = jet_features_from_particles(particles, mask)
    js = JetSet(
        particles=particles,
        mask=mask,
        jets=jets,
        labels=lab,
        particle_features=KINEMATIC_FEATURES,
        extra=extra,
    )
    return js.validate("generate_jets")


def as_generated(jets: JetSet) -> JetSet:
    """``jets`` as :func:`generate_jets` represents particles: massless (pT, eta, phi, E = pT cosh eta),
    no charge or particle type, jet features recomputed from those particles.

    The generator head produces nothing else, so a classifier that also reads charge and particle type
    cannot recognise generated jets as well as real ones for that reason alone; its accuracy on the real
    jets seen this way is the like-for-like reference for its accuracy on generated jets.
    """
    pt, eta, phi = (jets.feature(f) for f in ("pt", "eta", "phi"))
    particles = np.stack([pt, eta, phi, pt * np.cosh(eta)], axis=-1)
    particles = np.where(jets.mask[..., None], particles, 0.0).astype(np.float32)
    return JetSet(
        particles=particles,
        mask=jets.mask.copy(),
        jets=jet_features_from_particles(particles, jets.mask),
        labels=jets.labels.copy(),
        particle_features=KINEMATIC_FEATURES,
    ).validate("as_generated")


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


# ---------------------------------------------------------------------------- evaluation
def model_class_columns(model, class_names: Sequence[str]) -> np.ndarray:
    """The model's output index of each of ``class_names`` (by name; the identity when the model's card
    names no classes), so a model pretrained on more classes can be judged on a sample of fewer."""
    card = getattr(model, "card", None)
    own = list(card.class_names or []) if card is not None else []
    if not own:
        return np.arange(len(class_names))
    missing = [c for c in class_names if c not in own]
    if missing:
        raise ValueError(f"evaluate_pretraining: the model was not trained on {missing} (its classes: {own})")
    return np.array([own.index(c) for c in class_names])


def evaluate_pretraining(
    model,
    test_jetset: JetSet,
    jet_generator: JetFeatureGenerator | None = None,
    *,
    standardizer: Standardizer | None = None,
    class_names: Sequence[str] | None = None,
    reference_jetset: JetSet | None = None,
    generated: JetSet | None = None,
    steps: int = 32,
    seed: int = 0,
    device: str | torch.device = "cpu",
    batch_size: int = 256,
    constraints: Sequence[str] = (),
    acceptance: JetAcceptance | None = None,
) -> dict[str, Any]:
    """Classifier accuracy / confusion matrix on ``test_jetset`` and W1 of generated vs real jets.

    Generated jets (unless given) have the test set's class counts; ``constraints`` (names in
    :data:`GEN_CONSTRAINTS`) hold their particles to the generated jet pT and/or mass and/or to
    the dataset's ``acceptance``. With ``acceptance``, ``unrecordable`` reports the fractions of
    generated particles its detector could not have recorded (:func:`unrecordable_fractions`:
    ``before`` as first drawn, ``removed``, and ``after``, what the evaluation judges: 0 with the
    "detector" constraint). ``reference_jetset`` (an
    independent real sample, e.g. the validation split) gives the W1 floor: the distance two
    real samples of that size have by statistics alone. Returns a JSON-friendly dict with
    ``accuracy``, ``confusion_matrix`` (rows: true, normalised), ``generated_accuracy`` (the
    classifier on generated jets: do they look like their class?), ``kinematic_accuracy`` (on the real
    test jets reduced to what the generator produces, :func:`as_generated`: the like-for-like
    reference for ``generated_accuracy``), ``standard_errors`` of those accuracies (binomial: their scatter
    over another sample of as many jets), ``w1`` and ``w1_reference``
    (``{observable: {"all"|class: value}}``) and the generated JetSet under ``"generated"``.
    """
    if standardizer is None:
        card = getattr(model, "card", None)
        standardizer = card.get_standardizer() if card is not None else None
        if standardizer is None:
            raise ValueError("evaluate_pretraining: pass standardizer= (the model has no card with one)")
    if class_names is None:
        card = getattr(model, "card", None)
        class_names = (card.class_names if card is not None else None) or [
            str(i) for i in range(model.config.num_classes)
        ]
    c = len(class_names)
    if len(test_jetset) == 0:
        raise ValueError("evaluate_pretraining: test_jetset is empty")
    dev = resolve_device(device)
    # a model pretrained on more classes (the shipped ten-class model on a five-class sample) decides
    # among the sample's classes, found by name: its output columns and generator labels for them
    columns = model_class_columns(model, class_names)
    probs = predict(model, JetDataset(test_jetset, standardizer=standardizer), batch_size=batch_size, device=dev)
    pred = np.argmax(probs[:, columns], axis=-1)
    truth = test_jetset.labels
    cm = np.zeros((c, c))
    np.add.at(cm, (truth, pred), 1.0)
    rows = cm.sum(1, keepdims=True)
    result: dict[str, Any] = {
        "n_test": int(len(test_jetset)),
        "num_classes": c,
        "class_names": list(class_names),
        "chance_accuracy": float(np.bincount(truth, minlength=c).max() / len(truth)),
        "accuracy": float((pred == truth).mean()),
        "per_class_accuracy": {class_names[i]: float(cm[i, i] / rows[i, 0]) for i in range(c) if rows[i, 0] > 0},
        "confusion_matrix": np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0).tolist(),
        "predictions": pred,
    }
    if generated is None and jet_generator is not None:
        generated = generate_jets(
            model,
            jet_generator,
            len(test_jetset),
            labels=columns[truth],
            standardizer=standardizer,
            steps=steps,
            seed=seed,
            device=dev,
            batch_size=batch_size,
            max_particles=test_jetset.max_particles,
            **constraint_flags(constraints, "evaluate_pretraining", acceptance),
        )
        generated.labels = truth.copy()  # the sample's class indices, as the W1 tables expect
    if generated is not None:
        gp = predict(model, JetDataset(generated, standardizer=standardizer), batch_size=batch_size, device=dev)
        result["generated_accuracy"] = float((np.argmax(gp[:, columns], -1) == generated.labels).mean())
        kp = predict(
            model, JetDataset(as_generated(test_jetset), standardizer=standardizer), batch_size=batch_size, device=dev
        )
        result["kinematic_accuracy"] = float((np.argmax(kp[:, columns], -1) == truth).mean())
        result["w1"] = wasserstein_table(generated, test_jetset, class_names)
        result["generated"] = generated
        if acceptance is not None:
            result["unrecordable"] = unrecordable_fractions(generated, acceptance)
    judged = {"accuracy": len(truth), "kinematic_accuracy": len(truth)}
    if generated is not None:
        judged["generated_accuracy"] = len(generated)
    # each accuracy's scatter over another sample of as many jets (for generated jets: another sampling seed)
    result["standard_errors"] = {k: binomial_standard_error(result[k], n) for k, n in judged.items() if k in result}
    if reference_jetset is not None:
        n = min(len(reference_jetset), len(test_jetset))
        result["w1_reference"] = wasserstein_table(reference_jetset.subset(slice(0, n)), test_jetset, class_names)
    return result


# ---------------------------------------------------------------------------- jet generator training
def train_jet_generator(
    features: np.ndarray,
    labels: np.ndarray | None,
    *,
    num_classes: int | None,
    max_particles: int,
    standardizer: Standardizer | None = None,
    epochs: int = 200,
    batch_size: int = 256,
    lr: float = 2e-3,
    hidden: int = 128,
    layers: int = 3,
    seed: int = 0,
    device: str | torch.device = "cpu",
    max_steps: int | None = None,
) -> tuple[JetFeatureGenerator, list[float]]:
    """Fit a class-conditional :class:`JetFeatureGenerator` to raw jet inputs (pT, eta, mass, N).

    Uses the PET ``standardizer``'s jet normalisation when given (so the generated features sit in
    the space PET was trained on). Trained by :func:`jetlab.tasks.common.fit_jet_generator` (the
    Trainer: AdamW, warm-up + cosine); returns ``(generator, loss per epoch)``.
    It is a few-thousand-parameter MLP: hundreds of epochs over 10^4 jets take seconds.
    """
    x = torch.as_tensor(np.asarray(features, dtype=np.float32))
    if x.ndim != 2 or x.shape[1] != 4:
        raise ValueError(f"train_jet_generator: features must be (N, 4) (pT, eta, mass, N), got {tuple(x.shape)}")
    y = None if labels is None or not num_classes else torch.as_tensor(np.asarray(labels, dtype=np.int64))
    torch.manual_seed(seed)
    gen = JetFeatureGenerator(
        4,
        num_classes=num_classes if num_classes and num_classes > 1 else None,
        hidden=hidden,
        layers=layers,
        integer_features={_MULT: (1, max_particles)},
    )
    if gen.num_classes is None:
        y = None
    if standardizer is not None:
        gen.set_normalization(standardizer.jet_mean, standardizer.jet_std)
    else:
        gen.fit_normalization(x.numpy())
    return gen, fit_jet_generator(
        gen,
        x.numpy(),
        labels=None if y is None else y.numpy(),
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        device=device,
        max_steps=max_steps,
    )
