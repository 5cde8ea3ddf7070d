"""The first stage of generating a jet (:mod:`.diffusion_generation`): a class-conditional
:class:`~jetlab.model.jet_generator.JetFeatureGenerator` of PET's jet inputs (pT, eta, mass, N),
built and fitted here (:func:`build_and_fit_jet_generator`), and the jet features drawn from it
(:func:`sample_jet_features`) that condition PET's particle generator."""

from __future__ import annotations

import numpy as np
import torch

from jetlab.data.preprocess import Standardizer
from jetlab.model.jet_generator import JetFeatureGenerator

from ..common import fit_jet_generator

__all__ = ["MULTIPLICITY_INDEX", "build_and_fit_jet_generator", "generator_max_particles", "sample_jet_features"]

#: Index of the multiplicity in the jet inputs (pT, eta, mass, N).
MULTIPLICITY_INDEX = 3


def build_and_fit_jet_generator(
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
    """Build a class-conditional :class:`JetFeatureGenerator` of raw jet inputs (pT, eta, mass, N) and fit it.

    Uses the PET ``standardizer``'s jet normalisation when given (so the generated features sit in
    the space PET was trained on). Trained by :func:`jetlab.tasks.common.fit_jet_generator`, which
    fits a generator it is given (the Trainer: AdamW, warm-up + cosine); returns
    ``(generator, loss per epoch)``. It is a few-thousand-parameter MLP: hundreds of epochs over
    10^4 jets take seconds.
    """
    x = torch.as_tensor(np.asarray(features, dtype=np.float32))
    if x.ndim != 2 or x.shape[1] != 4:
        raise ValueError(
            f"build_and_fit_jet_generator: features must be (N, 4) (pT, eta, mass, N), got {tuple(x.shape)}"
        )
    y = None if labels is None or not num_classes else torch.as_tensor(np.asarray(labels, dtype=np.int64))
    torch.manual_seed(seed)
    gen = JetFeatureGenerator(
        4,
        num_classes=num_classes if num_classes and num_classes > 1 else None,
        hidden=hidden,
        layers=layers,
        integer_features={MULTIPLICITY_INDEX: (1, max_particles)},
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


def generator_max_particles(jet_generator: JetFeatureGenerator, where: str = "generate_jets") -> int:
    """The largest multiplicity ``jet_generator`` draws (its multiplicity's integer range)."""
    rng_ = jet_generator.integer_features.get(MULTIPLICITY_INDEX)
    if rng_ is None:
        raise ValueError(f"{where}: pass max_particles (the jet generator has no multiplicity range)")
    return int(rng_[1])


def sample_jet_features(
    jet_generator: JetFeatureGenerator,
    labels: np.ndarray,
    *,
    steps: int,
    generator: torch.Generator,
    max_particles: int,
    device: torch.device,
) -> np.ndarray:
    """(pT, eta, mass, N) of ``len(labels)`` jets (float64), held to what a jet can be: N a whole
    number in [1, max_particles], pT > 0, mass >= 0. ``generator`` is the run's random stream."""
    n = len(labels)
    cond_lab = torch.as_tensor(labels, device=device) if jet_generator.num_classes else None
    feats = jet_generator.sample(n, labels=cond_lab, steps=steps, generator=generator).cpu().numpy().astype(np.float64)
    feats[:, MULTIPLICITY_INDEX] = np.clip(np.round(feats[:, MULTIPLICITY_INDEX]), 1, max_particles)
    feats[:, 0] = np.maximum(feats[:, 0], 1e-3)  # pT > 0
    feats[:, 2] = np.maximum(feats[:, 2], 0.0)  # mass >= 0
    return feats
