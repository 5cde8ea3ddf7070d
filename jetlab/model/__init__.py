"""jetlab.model: the PET / OmniLearn model (body, classifier head, diffusion generator head).

Typical use::

    from jetlab.model import PET, PETConfig
    model = PET(PETConfig.tiny(num_classes=2))
    logits = model(x, mask, jets)           # inputs from jetlab.data.preprocess.model_inputs
    jetlab.model.save(model, "ckpt/", card) # model.safetensors + model_card.json
    model = jetlab.model.load("ckpt/")
"""

from __future__ import annotations

from .checkpoint import (
    FOUNDATION_MODEL,
    CheckpointError,
    ConfigMismatchError,
    ModelCard,
    available_checkpoints,
    load,
    load_body_into,
    read_card,
    save,
    shipped_checkpoints,
)
from .config import PETConfig
from .diffusion import alpha_sigma, complete_particle_inputs, logsnr_schedule, sample, v_loss
from .losses import LossWeights, classification_loss, pretraining_loss
from .pet import PET
from .pfn import ParticleFlowNetwork

__all__ = [
    "PET",
    "PETConfig",
    "ParticleFlowNetwork",
    "ModelCard",
    "ConfigMismatchError",
    "CheckpointError",
    "save",
    "load",
    "load_body_into",
    "available_checkpoints",
    "shipped_checkpoints",
    "FOUNDATION_MODEL",
    "read_card",
    "LossWeights",
    "pretraining_loss",
    "classification_loss",
    "v_loss",
    "sample",
    "complete_particle_inputs",
    "logsnr_schedule",
    "alpha_sigma",
]
