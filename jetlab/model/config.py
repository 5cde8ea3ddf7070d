"""PET hyper-parameters as one serialisable dataclass.

The config is stored in every checkpoint's model card, so a model can always be rebuilt
exactly; ``to_dict`` / ``from_dict`` round-trip and ``from_dict`` rejects unknown fields by name
(a typo or a checkpoint from a newer jetlab fails loudly instead of being silently ignored).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Mapping

#: the model-size presets of :meth:`PETConfig.preset`, smallest first
PRESETS: tuple[str, ...] = ("tiny", "small", "paper")
#: the particle inputs (jetlab.data.preprocess.PARTICLE_INPUTS: index 2 and 3) the generator may
#: model as its pT coordinate
GEN_PT_INPUTS: dict[str, int] = {"log_1m_ptrel": 2, "log_pt": 3}


def strict_from_dict(cls, d: Mapping[str, Any]):
    """``cls(**d)`` for a dataclass, refusing unknown keys by name (a typo must not be dropped)."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ValueError(f"{cls.__name__}.from_dict: unknown field(s) {unknown}; known fields are {sorted(known)}")
    return cls(**dict(d))


@dataclass
class PETConfig:
    """Architecture of the PET body and its classifier / generator heads.

    Defaults are the published PET / OmniLearn settings (see :meth:`paper`).
    """

    #: particle inputs per particle (jetlab.data.preprocess.PARTICLE_INPUTS)
    num_feat: int = 13
    #: jet inputs (pT, eta, mass, multiplicity)
    num_jet: int = 4
    #: classifier outputs (JetClass: 10); 1 means binary (BCE on a single logit)
    num_classes: int = 10
    #: width D of every per-particle representation
    projection_dim: int = 128
    num_heads: int = 4
    #: pre-norm transformer blocks in the body
    num_transformer: int = 8
    #: class-attention blocks in the classifier head
    num_transformer_head: int = 2
    #: transformer blocks in the generator head
    num_gen_layers: int = 2
    #: neighbours per particle in the local (kNN edge) blocks
    k: int = 10
    #: kNN edge blocks: first in (deta, dphi), then in learned feature space
    num_local: int = 2
    #: hidden width of transformer MLPs = mlp_ratio * projection_dim
    mlp_ratio: int = 2
    layer_scale_init: float = 1e-5
    #: stochastic depth rate of the last body block (linearly increasing from 0)
    drop_path: float = 0.0
    dropout: float = 0.0
    #: probability per jet (training only) of dropping the "pid" feature group (inputs 7..12)
    feature_drop: float = 0.1
    #: particle inputs modelled by the diffusion generator (deta, dphi and the pT input below)
    num_gen_features: int = 3
    #: the generator's pT coordinate: ``"log_1m_ptrel"`` (log(1 - pT/pT_jet), the OmniLearn input,
    #: ~0 for every soft particle) or ``"log_pt"`` (log pT, which resolves soft particles)
    gen_pt_input: str = "log_1m_ptrel"
    #: Fourier features of the diffusion time
    time_embed_dim: int = 64
    #: probability per jet (training only) of replacing the label by "null" (classifier-free guidance)
    label_drop: float = 0.1

    def __post_init__(self) -> None:
        for name in (
            "num_feat",
            "num_jet",
            "num_classes",
            "projection_dim",
            "num_heads",
            "mlp_ratio",
            "time_embed_dim",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"PETConfig.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("num_transformer", "num_transformer_head", "num_gen_layers", "k", "num_local"):
            if getattr(self, name) < 0:
                raise ValueError(f"PETConfig.{name} must be >= 0, got {getattr(self, name)}")
        if self.projection_dim % self.num_heads:
            raise ValueError(
                f"PETConfig.projection_dim ({self.projection_dim}) must be divisible by num_heads ({self.num_heads})"
            )
        if not 1 <= self.num_gen_features <= self.num_feat:
            raise ValueError(
                f"PETConfig.num_gen_features must be in [1, num_feat={self.num_feat}], got {self.num_gen_features}"
            )
        if self.gen_pt_input not in GEN_PT_INPUTS:
            raise ValueError(f"PETConfig.gen_pt_input must be one of {list(GEN_PT_INPUTS)}, got {self.gen_pt_input!r}")
        if self.gen_pt_input != "log_1m_ptrel" and self.num_gen_features != 3:
            raise ValueError(
                f"PETConfig.gen_pt_input={self.gen_pt_input!r} needs num_gen_features=3 "
                f"(deta, dphi, pT), got {self.num_gen_features}"
            )
        if self.time_embed_dim % 2:
            raise ValueError(f"PETConfig.time_embed_dim must be even, got {self.time_embed_dim}")
        for name in ("drop_path", "dropout", "feature_drop", "label_drop"):
            v = getattr(self, name)
            if not 0.0 <= v < 1.0:
                raise ValueError(f"PETConfig.{name} must be in [0, 1), got {v}")

    @property
    def gen_feature_indices(self) -> tuple[int, ...]:
        """Which particle inputs the generator models, in its output order."""
        if self.gen_pt_input == "log_1m_ptrel":
            return tuple(range(self.num_gen_features))
        return (0, 1, GEN_PT_INPUTS[self.gen_pt_input])

    # ------------------------------------------------------------------ presets
    @classmethod
    def tiny(cls, **overrides: Any) -> "PETConfig":
        """A ~0.25M-parameter model that trains at hundreds of jets/s on 2 CPU cores (tests, demos)."""
        base = dict(
            projection_dim=64,
            num_heads=4,
            num_transformer=2,
            num_transformer_head=1,
            num_gen_layers=1,
            k=8,
            num_local=1,
            time_embed_dim=32,
        )
        return cls(**{**base, **overrides})

    @classmethod
    def small(cls, **overrides: Any) -> "PETConfig":
        """Laptop-sized model for notebook-scale pretraining (~0.9M parameters)."""
        base = dict(
            projection_dim=96,
            num_heads=4,
            num_transformer=4,
            num_transformer_head=2,
            num_gen_layers=2,
            k=10,
            num_local=2,
            time_embed_dim=64,
        )
        return cls(**{**base, **overrides})

    @classmethod
    def paper(cls, **overrides: Any) -> "PETConfig":
        """The published PET / OmniLearn model: width 128, 8 blocks, 4 heads, K=10 (~2M parameters)."""
        return cls(**overrides)

    @classmethod
    def preset(cls, name: "str | PETConfig | Mapping[str, Any]", **overrides: Any) -> "PETConfig":
        """The one place a model-size parameter becomes a config: a preset name from :data:`PRESETS`
        (any case), a ``PETConfig`` or a dict of fields, with ``overrides`` applied on top.

        Notebooks, tasks and ``jetlab pretrain`` all take ``model="tiny"`` and call this, so an
        unknown name fails the same way everywhere."""
        if isinstance(name, PETConfig):
            return name.replace(**overrides)
        if isinstance(name, Mapping):
            return cls.from_dict({**dict(name), **overrides})
        key = str(name).strip().lower()
        if key not in PRESETS:
            raise ValueError(
                f"PETConfig.preset: unknown model preset {name!r}; choose one of {list(PRESETS)}, "
                "or pass a PETConfig or a dict of its fields"
            )
        return getattr(cls, key)(**overrides)

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "PETConfig":
        return strict_from_dict(cls, d)

    def replace(self, **changes: Any) -> "PETConfig":
        return replace(self, **changes)

    def diff(self, other: "PETConfig") -> dict[str, tuple[Any, Any]]:
        """Fields whose values differ: ``{name: (self_value, other_value)}``."""
        a, b = self.to_dict(), other.to_dict()
        return {k: (a[k], b[k]) for k in a if a[k] != b[k]}
