"""Pretraining and jet generation (notebook 01): :mod:`.pipeline` trains PET and the jet-feature generator
and writes one checkpoint (:func:`run_pretraining`), :mod:`.results` holds what it returns
(:class:`PretrainingResult`); generating jets with the model and judging them is
:mod:`.diffusion_generation` (its functions re-exported here), with the jet-feature stage in
:mod:`.jet_feature_generation` and the constraints on generated particles in :mod:`.generation_constraints`."""

from __future__ import annotations

from .diffusion_generation import (
    GEN_CONSTRAINTS,
    OBSERVABLES,
    evaluate_pretraining,
    generate_jets,
    jet_observables,
    wasserstein_table,
)
from .jet_feature_generation import build_and_fit_jet_generator
from .pipeline import PretrainingSettings, load_pretrained, run_pretraining
from .results import PretrainingResult

__all__ = [
    "GEN_CONSTRAINTS",
    "OBSERVABLES",
    "PretrainingResult",
    "build_and_fit_jet_generator",
    "PretrainingSettings",
    "evaluate_pretraining",
    "generate_jets",
    "jet_observables",
    "load_pretrained",
    "run_pretraining",
    "wasserstein_table",
]
