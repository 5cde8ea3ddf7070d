"""Generating jets with the pretrained model's diffusion head and judging them (notebook 01, evaluation of
pretraining); the Pythia simulation of jets is :mod:`jetlab.simulator`.

Generating a jet takes two stages, because PET's generator head produces particles *given* the
jet-level features and class:

1. :class:`jetlab.model.jet_generator.JetFeatureGenerator` samples (pT, eta, mass, N) per class
   (fitted and sampled by :mod:`.jet_feature_generation`);
2. :func:`jetlab.model.diffusion.sample` (DDIM) samples the N particles' (deta, dphi, and
   log(1 - pT/pT_jet) or log pT: :attr:`PETConfig.gen_pt_input`) conditioned on those features and the class; the standardizer turns them
   back into physical massless particles (pT, eta, phi, E), and the jet observables are
   recomputed *from the particles*, so the evaluation judges what was generated. What the particles
   can be held to (pT, mass, the detector) is :mod:`.generation_constraints`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from jetlab.data.preprocess import Standardizer, jet_inputs
from jetlab.data.schema import KINEMATIC_FEATURES, JetSet, jet_features_from_particles
from jetlab.data.torchdata import JetDataset
from jetlab.model.diffusion import balance_ptrel, generated_ptrel, sample
from jetlab.model.jet_generator import JetFeatureGenerator
from jetlab.physics.metrics import binomial_standard_error, wasserstein_1d
from jetlab.simulator.detector import JetAcceptance
from jetlab.train import predict
from jetlab.train.ddp import resolve_device

from .generation_constraints import (
    GEN_CONSTRAINTS,
    apply_constraints,
    check_constraints,
    constraint_flags,
    match_jet_mass,
    unrecordable_fractions,
)
from .jet_feature_generation import (
    MULTIPLICITY_INDEX,
    build_and_fit_jet_generator,
    generator_max_particles,
    sample_jet_features,
)

__all__ = [
    "GEN_CONSTRAINTS",
    "OBSERVABLES",
    "as_generated",
    "check_constraints",
    "constraint_flags",
    "evaluate_pretraining",
    "generate_jets",
    "jet_generator_for_model",
    "jet_observables",
    "match_jet_mass",
    "REDRAWS",
    "unrecordable_fractions",
    "wasserstein_table",
]

#: Observables compared between generated and real jets (all computed from the particles).
OBSERVABLES: tuple[str, ...] = ("jet_mass", "multiplicity", "particle_pt", "particle_eta", "particle_phi")
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


def _check_generation(n: int, steps: int, jet_steps: int) -> None:
    """Refuse a request for no jets or for a sampler without steps."""
    if n < 1:
        raise ValueError(f"generate_jets: n must be >= 1, got {n}")
    if steps < 1 or jet_steps < 1:
        raise ValueError(f"generate_jets: steps and jet_steps must be >= 1, got {steps}, {jet_steps}")


def _model_standardizer(model, standardizer: Standardizer | None, where: str) -> Standardizer:
    """``standardizer``, else the one in ``model.card``; an error naming ``where`` when neither exists."""
    if standardizer is None:
        card = getattr(model, "card", None)
        standardizer = card.get_standardizer() if card is not None else None
        if standardizer is None:
            raise ValueError(f"{where}: pass standardizer= (the model has no card with one)")
    return standardizer


@dataclass
class _ParticleSampler:
    """PET's generator head on jets whose features are drawn: standardised particle coordinates
    (deta, dphi, pT coordinate) in batches, and their physical values."""

    model: Any
    feats: np.ndarray  # (n, 4) jet features (pT, eta, mass, N), float64
    labels: np.ndarray
    standardizer: Standardizer
    max_particles: int
    steps: int
    guidance: float
    batch_size: int
    generator: torch.Generator
    device: torch.device

    def __post_init__(self) -> None:
        self.mult = self.feats[:, MULTIPLICITY_INDEX].astype(np.int64)
        self.mask = np.arange(self.max_particles)[None, :] < self.mult[:, None]
        self.jets_std = self.standardizer.transform_jets(self.feats.astype(np.float32))
        idx = list(self.model.config.gen_feature_indices)
        self.ps = self.standardizer.particle_std[idx].astype(np.float64)
        self.pm = self.standardizer.particle_mean[idx].astype(np.float64)
        self.jpt, self.jeta = self.feats[:, 0:1], self.feats[:, 1:2]

    def draw(self, rows: np.ndarray, known: np.ndarray | None = None, keep: np.ndarray | None = None) -> np.ndarray:
        """Standardised particle coordinates of the jets ``rows``, in batches (inpainting with ``keep``)."""
        dev, parts = self.device, []
        for a in range(0, len(rows), self.batch_size):
            r = rows[a : a + self.batch_size]
            p = int(self.mult[r].max())  # no need to run the model over all-padding columns
            kw = {}
            if keep is not None and known is not None:
                kw = {
                    "known": torch.as_tensor(known[r, :p], device=dev),
                    "keep": torch.as_tensor(keep[r, :p], device=dev),
                }
            m = torch.as_tensor(self.mask[r, :p], device=dev)
            j = torch.as_tensor(self.jets_std[r], device=dev)
            y = torch.as_tensor(self.labels[r], device=dev)
            out = (
                sample(
                    self.model, m, j, labels=y, steps=self.steps, generator=self.generator, guidance=self.guidance, **kw
                )
                .float()
                .cpu()
                .numpy()
            )
            full = np.zeros((len(r), self.max_particles, out.shape[-1]), dtype=np.float32)
            full[:, :p] = out
            parts.append(full)
        return np.concatenate(parts)

    def physical(self, z: np.ndarray) -> tuple[np.ndarray, torch.Tensor]:
        """(deta, dphi, pT coordinate) and pT / pT_jet of standardised coordinates ``z``."""
        raw = z[..., :3].astype(np.float64) * self.ps + self.pm
        return raw, generated_ptrel(
            torch.from_numpy(raw[..., 2]), torch.from_numpy(self.jpt), self.model.config.gen_pt_input
        )

    def lab_eta(self, deta: np.ndarray) -> np.ndarray:
        return self.jeta + np.where(self.jeta < 0, -1.0, 1.0) * deta

    def redraw_unrecordable(self, z: np.ndarray, acceptance: JetAcceptance) -> np.ndarray:
        """Draw the particles ``acceptance``'s detector could not record again given the rest of their
        jet (:data:`REDRAWS` rounds, ``z`` in place); returns how many each jet had as first drawn."""
        redrawn = np.zeros(len(z), dtype=np.int64)
        for round_ in range(REDRAWS):
            raw, ptrel_t = self.physical(z)
            pt_now = np.clip(ptrel_t.numpy(), 1e-6, 1.0 - 1e-6) * self.jpt
            bad = self.mask & ~acceptance.recordable(pt_now, self.lab_eta(raw[..., 0]))
            if round_ == 0:
                redrawn = bad.sum(1)
            rows = np.nonzero(bad.any(1))[0]
            if not len(rows):
                break
            keep = np.repeat(self.mask[..., None], z.shape[-1], axis=-1)
            keep[..., 2] &= ~bad  # the pT coordinate of an unrecordable particle is drawn again, given the rest
            z[rows] = self.draw(rows, known=z, keep=keep)
        return redrawn

    def particles(self, z: np.ndarray, rng: np.random.Generator, balance_pt: bool) -> np.ndarray:
        """Massless (pT, eta, phi, E) of standardised coordinates ``z``, each jet at a random azimuth."""
        raw, ptrel_t = self.physical(z)
        deta, dphi, mask = raw[..., 0], raw[..., 1], self.mask
        # the jet azimuth is not modelled: the physics is phi-symmetric
        jphi = rng.uniform(-np.pi, np.pi, size=(len(z), 1))
        if balance_pt:
            ptrel_t = balance_ptrel(ptrel_t.clamp(1e-6, 1.0), torch.from_numpy(dphi), torch.from_numpy(mask))
        ptrel = np.clip(ptrel_t.numpy(), 1e-6, 1.0 - 1e-6)
        pt = ptrel * self.jpt
        eta = self.lab_eta(deta)
        phi = (jphi + dphi + np.pi) % (2 * np.pi) - np.pi
        energy = pt * np.cosh(np.clip(eta, -10, 10))
        particles = np.stack([pt, eta, phi, energy], axis=-1)
        return np.where(mask[..., None], particles, 0.0)


def _pt_ordered_jetset(particles: np.ndarray, mask: np.ndarray, labels: np.ndarray, extra: dict) -> JetSet:
    """The generated jets, padding zeroed and particles pT-ordered, with jet features from the particles."""
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
        labels=labels,
        particle_features=KINEMATIC_FEATURES,
        extra=extra,
    )
    return js.validate("generate_jets")


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
    _check_generation(n, steps, jet_steps)
    standardizer = _model_standardizer(model, standardizer, "generate_jets")
    num_classes = int(model.config.num_classes)
    if jet_generator.num_features != 4:
        raise ValueError(
            f"generate_jets: jet_generator must model the 4 jet inputs (pT, eta, mass, N), "
            f"it has num_features={jet_generator.num_features}"
        )
    if max_particles is None:
        max_particles = generator_max_particles(jet_generator)
    lab = _as_labels(labels, n, num_classes)
    dev = resolve_device(device)
    model.to(dev).eval()
    jet_generator.to(dev).eval()
    gen = torch.Generator(device=dev).manual_seed(int(seed))
    rng = np.random.default_rng(int(seed))

    feats = sample_jet_features(
        jet_generator, lab, steps=jet_steps, generator=gen, max_particles=max_particles, device=dev
    )
    sampler = _ParticleSampler(model, feats, lab, standardizer, max_particles, steps, guidance, batch_size, gen, dev)
    z = sampler.draw(np.arange(n))
    # particles the detector could not record are drawn again given the rest of their jet, a few times
    redrawn = None if acceptance is None else sampler.redraw_unrecordable(z, acceptance)
    particles = sampler.particles(z, rng, balance_pt)
    extra = {"cond_jets": feats.astype(np.float32)}
    particles, mask = apply_constraints(
        particles, sampler.mask, feats, extra, balance_pt=balance_pt, match_mass=match_mass, acceptance=acceptance
    )
    if redrawn is not None:
        extra["redrawn"] = redrawn.astype(np.int64)
    return _pt_ordered_jetset(particles, mask, lab, extra)


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


def jet_generator_for_model(model, jets: JetSet, class_names: Sequence[str], *, epochs: int, seed: int):
    """A jet-feature generator fitted to ``jets`` for another pretrained ``model``: its labels in the model's
    class columns (by name, :func:`model_class_columns`) and its features in the model's input scaling, so
    that model's particle head can generate a sample of ``class_names`` the way the sample's own model does."""
    columns = model_class_columns(model, class_names)
    jg, _ = build_and_fit_jet_generator(
        jet_inputs(jets),
        columns[jets.labels],
        num_classes=model.config.num_classes,
        max_particles=jets.max_particles,
        standardizer=model.card.get_standardizer(),
        epochs=epochs,
        seed=seed,
    )
    return jg


def _classification_metrics(pred: np.ndarray, truth: np.ndarray, class_names: Sequence[str]) -> dict[str, Any]:
    """Accuracy, per-class accuracy, chance level and row-normalised confusion matrix of predictions ``pred``."""
    c = len(class_names)
    cm = np.zeros((c, c))
    np.add.at(cm, (truth, pred), 1.0)
    rows = cm.sum(1, keepdims=True)
    return {
        "n_test": int(len(truth)),
        "num_classes": c,
        "class_names": list(class_names),
        "chance_accuracy": float(np.bincount(truth, minlength=c).max() / len(truth)),
        "accuracy": float((pred == truth).mean()),
        "per_class_accuracy": {class_names[i]: float(cm[i, i] / rows[i, 0]) for i in range(c) if rows[i, 0] > 0},
        "confusion_matrix": np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0).tolist(),
        "predictions": pred,
    }


@dataclass
class _Judge:
    """The pretrained classifier deciding among a sample's classes (its output ``columns``)."""

    model: Any
    standardizer: Standardizer
    columns: np.ndarray
    batch_size: int
    device: torch.device

    def predicted(self, jets: JetSet) -> np.ndarray:
        probs = predict(
            self.model, JetDataset(jets, standardizer=self.standardizer), batch_size=self.batch_size, device=self.device
        )
        return np.argmax(probs[:, self.columns], -1)

    def generated_metrics(
        self, generated: JetSet, test_jetset: JetSet, class_names: Sequence[str], acceptance: JetAcceptance | None
    ) -> dict[str, Any]:
        """How the generated jets compare with the real test jets: their accuracy, the like-for-like
        reference on the real jets reduced to what is generated, W1 tables and the unrecordable fractions."""
        out: dict[str, Any] = {"generated_accuracy": float((self.predicted(generated) == generated.labels).mean())}
        out["kinematic_accuracy"] = float((self.predicted(as_generated(test_jetset)) == test_jetset.labels).mean())
        out["w1"] = wasserstein_table(generated, test_jetset, class_names)
        out["generated"] = generated
        if acceptance is not None:
            out["unrecordable"] = unrecordable_fractions(generated, acceptance)
        return out


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
    guidance: float = 0.0,
) -> dict[str, Any]:
    """Classifier accuracy / confusion matrix on ``test_jetset`` and W1 of generated vs real jets.

    Generated jets (unless given) have the test set's class counts; ``constraints`` (names in
    :data:`GEN_CONSTRAINTS`) hold their particles to the generated jet pT and/or mass and/or to
    the dataset's ``acceptance``. With ``acceptance``, ``unrecordable`` reports the fractions of
    generated particles its detector could not have recorded (:func:`unrecordable_fractions`:
    ``before`` as first drawn, ``removed``, and ``after``, what the evaluation judges: 0 with the
    "detector" constraint); ``guidance`` w > 0 samples the particles with classifier-free guidance
    (:func:`generate_jets`). ``reference_jetset`` (an
    independent real sample, e.g. the validation split) gives the W1 floor: the distance two
    real samples of that size have by statistics alone. Returns a JSON-friendly dict with
    ``accuracy``, ``confusion_matrix`` (rows: true, normalised), ``generated_accuracy`` (the
    classifier on generated jets: do they look like their class?), ``kinematic_accuracy`` (on the real
    test jets reduced to what the generator produces, :func:`as_generated`: the like-for-like
    reference for ``generated_accuracy``), ``standard_errors`` of those accuracies (binomial: their scatter
    over another sample of as many jets), ``w1`` and ``w1_reference``
    (``{observable: {"all"|class: value}}``) and the generated JetSet under ``"generated"``.
    """
    standardizer = _model_standardizer(model, standardizer, "evaluate_pretraining")
    if class_names is None:
        card = getattr(model, "card", None)
        class_names = (card.class_names if card is not None else None) or [
            str(i) for i in range(model.config.num_classes)
        ]
    if len(test_jetset) == 0:
        raise ValueError("evaluate_pretraining: test_jetset is empty")
    dev = resolve_device(device)
    # a model pretrained on more classes (the shipped ten-class model on a five-class sample) decides
    # among the sample's classes, found by name: its output columns and generator labels for them
    columns = model_class_columns(model, class_names)
    probs = predict(model, JetDataset(test_jetset, standardizer=standardizer), batch_size=batch_size, device=dev)
    truth = test_jetset.labels
    result = _classification_metrics(np.argmax(probs[:, columns], axis=-1), truth, class_names)
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
            guidance=guidance,
            **constraint_flags(constraints, "evaluate_pretraining", acceptance),
        )
        generated.labels = truth.copy()  # the sample's class indices, as the W1 tables expect
    if generated is not None:
        judge = _Judge(model, standardizer, columns, batch_size, dev)
        result.update(judge.generated_metrics(generated, test_jetset, class_names, acceptance))
    judged = {"accuracy": len(truth), "kinematic_accuracy": len(truth)}
    if generated is not None:
        judged["generated_accuracy"] = len(generated)
    # each accuracy's scatter over another sample of as many jets (for generated jets: another sampling seed)
    result["standard_errors"] = {k: binomial_standard_error(result[k], n) for k, n in judged.items() if k in result}
    if reference_jetset is not None:
        n = min(len(reference_jetset), len(test_jetset))
        result["w1_reference"] = wasserstein_table(reference_jetset.subset(slice(0, n)), test_jetset, class_names)
    return result
