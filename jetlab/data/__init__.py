"""Data layer: manifests, downloads, readers, caching and preprocessing (the offline generator is :mod:`jetlab.simulator`).

Everything converges on one schema (:mod:`jetlab.data.schema`).
"""

from .preprocess import (
    FEATURE_GROUPS,
    JET_INPUTS,
    PARTICLE_INPUTS,
    Standardizer,
    available_groups,
    jet_inputs,
    model_inputs,
    particle_inputs,
)
from .schema import (
    ALL_PARTICLE_FEATURES,
    JET_FEATURES,
    KINEMATIC_FEATURES,
    JetSet,
    SchemaError,
    inspect_file,
    read_jetset,
    read_jetsets,
    write_jetset,
    write_jetsets,
)

__all__ = [
    "ALL_PARTICLE_FEATURES",
    "FEATURE_GROUPS",
    "JET_FEATURES",
    "JET_INPUTS",
    "KINEMATIC_FEATURES",
    "PARTICLE_INPUTS",
    "JetSet",
    "SchemaError",
    "Standardizer",
    "available_groups",
    "inspect_file",
    "jet_inputs",
    "model_inputs",
    "particle_inputs",
    "read_jetset",
    "read_jetsets",
    "write_jetset",
    "write_jetsets",
]
