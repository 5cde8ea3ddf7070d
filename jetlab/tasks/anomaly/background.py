"""CATHODE's background model: jet features given ``mjj`` (a :class:`JetFeatureGenerator`), then each
jet's particles given its features and ``mjj`` (PET's diffusion head, fine-tuned or from scratch)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from jetlab.data.preprocess import Standardizer, model_inputs
from jetlab.data.schema import JetSet
from jetlab.model.checkpoint import read_card
from jetlab.model.diffusion import complete_particle_inputs
from jetlab.model.diffusion import sample as ddim
from jetlab.model.factory import build_pet, finetune_groups
from jetlab.model.jet_generator import JetFeatureGenerator
from jetlab.model.mjj_generator import MjjConditionedGenerator
from jetlab.model.omnilearned import is_omnilearned_card
from jetlab.model.pet import PET
from jetlab.train import Trainer
from jetlab.train.ddp import resolve_device

from ..common import ArrayDataset, fit_jet_generator
from .events import DijetEvents, MassWindows
from .training import TrainingSettings

__all__ = [
    "CATHODE_GEN_PT_INPUT",
    "OMNILEARNED_GENERATOR_NOTE",
    "PARTICLE_FEATURE_NAMES",
    "BackgroundGenerator",
    "fit_background_generator",
]

#: why CATHODE's particle generator cannot be OmniLearned's (omnilearned 0.2.0 network.py: the
#: ``PET_generator`` head takes a class label only; ``PET_body`` has an optional global-condition
#: token, ``conditional``, that the published pretraining set-up leaves off, so its weights are
#: not in the checkpoints; and it generates (delta-eta, delta-phi, log pT, log E), not jetlab's
#: (delta-eta, delta-phi, log(1 - pT/pT_jet)) given the jet)
OMNILEARNED_GENERATOR_NOTE = (
    "OmniLearned's generator head is conditioned on a class label only, while CATHODE's "
    "background model needs particles generated given the jet features and mjj"
)

#: the particle inputs PET's generator head produces (raw units: rad, rad, log)
PARTICLE_FEATURE_NAMES: tuple[str, ...] = ("deta", "dphi", "log_1m_ptrel")


def _jet_latent(features: np.ndarray) -> np.ndarray:
    """Physical jet features -> generator space: log pT, eta, log m, multiplicity (per jet)."""
    f = np.asarray(features, dtype=np.float64).copy()
    for j in (0, 4):
        f[:, j] = np.log(np.maximum(f[:, j], 1e-3))
        f[:, j + 2] = np.log(np.maximum(f[:, j + 2], 1.0))
    return f.astype(np.float32)


def _jet_physical(latent: np.ndarray) -> np.ndarray:
    f = np.asarray(latent, dtype=np.float64).copy()
    for j in (0, 4):
        f[:, j] = np.exp(np.clip(f[:, j], -10, 12))
        f[:, j + 2] = np.exp(np.clip(f[:, j + 2], 0, 12))
    return f.astype(np.float32)


@dataclass
class BackgroundGenerator:
    """The fitted two-stage background model: jet features | mjj, then particles | jet features, mjj."""

    jet_model: JetFeatureGenerator
    particle_model: MjjConditionedGenerator
    standardizer: Standardizer
    windows: MassWindows
    max_particles: int
    history: dict = field(default_factory=dict)

    @torch.no_grad()
    def sample(
        self,
        mjj,
        *,
        seed: int = 0,
        steps: int = 16,
        jet_steps: int = 32,
        batch_size: int = 1024,
        device: str | torch.device = "auto",
    ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Synthetic events at the given ``mjj`` [TeV]: ``(dijet inputs, physical jet features (N, 8))``."""
        dev = resolve_device(device)
        mjj = np.asarray(mjj, dtype=np.float32).reshape(-1)
        n = len(mjj)
        cond = self.windows.scale(mjj)
        self.jet_model.to(dev).eval()
        self.particle_model.to(dev).eval()
        g = torch.Generator(device=dev).manual_seed(int(seed))
        latent = self.jet_model.sample(n, torch.as_tensor(cond[:, None], device=dev), steps=jet_steps, generator=g)
        feats = _jet_physical(latent.cpu().numpy())
        out: dict[str, np.ndarray] = {}
        P = self.max_particles
        for k in (1, 2):
            raw = feats[:, 4 * (k - 1) : 4 * k]
            jets = self.standardizer.transform_jets(raw)
            mult = np.clip(np.round(raw[:, 3]), 1, P).astype(np.int64)
            mask = np.arange(P)[None, :] < mult[:, None]
            xs = np.zeros((n, P, len(self.standardizer.particle_mean)), dtype=np.float32)
            for a in range(0, n, batch_size):
                m = torch.as_tensor(mask[a : a + batch_size], device=dev)
                j = torch.as_tensor(jets[a : a + batch_size], device=dev)
                mj = torch.as_tensor(cond[a : a + batch_size], device=dev)
                lab = torch.full((len(m),), k - 1, dtype=torch.long, device=dev)
                z = ddim(
                    self.particle_model.pet, m, self.particle_model.condition(j, mj), lab, steps=steps, generator=g
                )
                xs[a : a + batch_size] = (
                    complete_particle_inputs(z, m, j, self.standardizer, self.particle_model.pet.config.gen_pt_input)
                    .cpu()
                    .numpy()
                )
            out[f"x{k}"], out[f"mask{k}"], out[f"jets{k}"] = xs, mask, jets
        return out, feats


#: The pT coordinate CATHODE's particle generator models, whatever its checkpoint was pretrained on:
#: log(1 - pT/pT_jet) resolves the hard particles a classifier of the template looks at
#: (``benchmarks/bench_anomaly_generator.py --gen-pt-input``, benchmarks/README.md).
CATHODE_GEN_PT_INPUT = "log_1m_ptrel"


def _check_background_inputs(sideband: DijetEvents, windows: MassWindows, checkpoint) -> None:
    """Refuse too few events, events outside the sidebands and an OmniLearned checkpoint."""
    if len(sideband) < 10:
        raise ValueError(f"fit_background_generator: need at least 10 sideband events, got {len(sideband)}")
    out_of_sb = ~windows.in_sb(sideband.mjj)
    if out_of_sb.any():
        raise ValueError(
            f"fit_background_generator: {int(out_of_sb.sum())} events lie outside the sidebands "
            f"{windows.sb} TeV; pass sideband events only"
        )
    if checkpoint is not None and is_omnilearned_card(read_card(checkpoint)):
        raise ValueError(
            f"fit_background_generator: {checkpoint} is an OmniLearned checkpoint; {OMNILEARNED_GENERATOR_NOTE}. "
            "Pass checkpoint=None (jetlab's PET generator from scratch) or a jetlab checkpoint"
        )


def _fit_jet_stage(
    sideband: DijetEvents, cond: np.ndarray, *, jet_epochs: int, seed: int, device: torch.device
) -> tuple[JetFeatureGenerator, list[float]]:
    """The first stage: both jets' features given the scaled ``mjj`` ``cond``; returns it and its loss per epoch."""
    feats = sideband.jet_features()
    n_max = int(max(feats[:, 3].max(), feats[:, 7].max()))
    latent = _jet_latent(feats)
    torch.manual_seed(seed)  # its initial weights: same seed -> same background model in any process
    jet_model = JetFeatureGenerator(
        8, cond_dim=1, hidden=128, layers=3, integer_features={3: (1, n_max), 7: (1, n_max)}
    )
    jet_model.fit_normalization(latent)
    jet_losses = fit_jet_generator(
        jet_model, latent, cond=cond, epochs=jet_epochs, batch_size=256, lr=2e-3, seed=seed, device=device
    )
    return jet_model, jet_losses


def _particle_dataset(sideband: DijetEvents, cond: np.ndarray, standardizer: Standardizer) -> ArrayDataset:
    """The second stage's training rows: every jet1 (label 0) then every jet2 (label 1), each with its event's ``cond``."""
    x1, m1, j1, _ = model_inputs(sideband.jet1, standardizer)
    x2, m2, j2, _ = model_inputs(sideband.jet2, standardizer)
    n = len(sideband)
    return ArrayDataset(
        x=np.concatenate([x1, x2]),
        mask=np.concatenate([m1, m2]),
        jets=np.concatenate([j1, j2]),
        label=np.concatenate([np.zeros(n, np.int64), np.ones(n, np.int64)]),
        mjj=np.concatenate([cond, cond]),
        weight=np.ones(2 * n, np.float32),
    )


def fit_background_generator(
    sideband: DijetEvents,
    windows: MassWindows,
    *,
    checkpoint: str | os.PathLike | None = None,
    config: Any = "tiny",
    standardizer: Standardizer | None = None,
    jet_epochs: int = 100,
    seed: int = 0,
    gen_pt_input: str | None = CATHODE_GEN_PT_INPUT,
    **training: Any,
) -> BackgroundGenerator:
    """Fit the background model on sideband events (fine-tuning PET from ``checkpoint``, or from scratch).

    Both stages condition on ``windows.scale(mjj)``, so sampling at SR masses interpolates
    between the two sidebands. ``standardizer`` defaults to the model's (the checkpoint's with
    ``input_scaling="pretraining"``), else it is fitted on the sideband jets. The jet-feature stage
    trains ``jet_epochs`` with :func:`jetlab.tasks.common.fit_jet_generator`, the particle stage
    per ``training``: the :class:`~jetlab.tasks.anomaly.training.TrainingSettings` fields as keywords
    (``epochs`` with ``optimizer`` at ``lr``, the pretrained body at ``lr / lr_factor``, ...); another
    keyword is a TypeError naming it. ``gen_pt_input`` is the generated pT coordinate
    (:attr:`PETConfig.gen_pt_input`; None: the checkpoint's or preset's own); a pretrained generator
    head that modelled another one is fine-tuned on this one.
    """
    t = TrainingSettings.from_keywords("fit_background_generator", training)
    _check_background_inputs(sideband, windows, checkpoint)
    dev = resolve_device(t.device)
    # label slots 0/1 = jet1/jet2, 2 = null
    pet = build_pet(checkpoint, preset=config, num_classes=1, seed=seed, input_scaling=t.input_scaling)
    assert isinstance(pet, PET)  # OmniLearned checkpoints are refused above; no groups, so no GroupedModel
    if gen_pt_input is not None and gen_pt_input != pet.config.gen_pt_input:
        pet.config = pet.config.replace(gen_pt_input=gen_pt_input)  # PETConfig names a bad value
    if standardizer is None:
        standardizer = pet.standardizer or Standardizer.fit_jetset(JetSet.concatenate([sideband.jet1, sideband.jet2]))
    cond = windows.scale(sideband.mjj)
    jet_model, jet_losses = _fit_jet_stage(sideband, cond, jet_epochs=jet_epochs, seed=seed, device=dev)
    ds = _particle_dataset(sideband, cond, standardizer)
    wrapper = MjjConditionedGenerator(pet)
    groups = finetune_groups(wrapper, t.lr, lr_factor=t.lr_factor, optimizer=t.optimizer, pretrained=pet.pretrained)
    trainer = Trainer(
        wrapper,
        lambda m, b: m.loss(b),
        ds,
        None,
        optimizer=t.optimizer,
        lr=t.lr,
        param_groups=groups,
        epochs=t.epochs,
        batch_size=t.batch_size,
        device=dev,
        seed=seed,
        progress=t.progress,
        checkpoint_every=None,
        amp="off",
    )
    hist = trainer.fit()
    wrapper.eval()
    history = {"jet_loss": jet_losses, "particle_loss": [e.get("train_loss") for e in hist.epochs]}
    return BackgroundGenerator(jet_model, wrapper, standardizer, windows, int(sideband.jet1.max_particles), history)
