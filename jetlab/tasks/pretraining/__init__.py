"""Pretraining and jet generation (notebook 01): :mod:`.pipeline` trains PET and the jet-feature generator
and writes one checkpoint (:func:`run_pretraining`), :mod:`.results` holds what it returns
(:class:`PretrainingResult`); generating jets with the model and judging them is
:mod:`.diffusion_generation` (its functions re-exported here)."""

from __future__ import annotations

from .diffusion_generation import (
    GEN_CONSTRAINTS,
    OBSERVABLES,
    evaluate_pretraining,
    generate_jets,
    jet_observables,
    train_jet_generator,
    wasserstein_table,
)
from .pipeline import load_pretrained, run_pretraining
from .results import PretrainingResult

__all__ = [
    "GEN_CONSTRAINTS",
    "OBSERVABLES",
    "PretrainingResult",
    "evaluate_pretraining",
    "generate_jets",
    "jet_observables",
    "load_pretrained",
    "run_pretraining",
    "train_jet_generator",
    "wasserstein_table",
]
