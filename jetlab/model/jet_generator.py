"""A small conditional diffusion model over jet-level features.

PET's generator head produces the *particles* of a jet given its jet-level features
(pT, eta, mass, multiplicity) and class. To generate whole jets from nothing, those jet
features must be sampled first: :class:`JetFeatureGenerator` is that first stage. It is a
residual MLP trained with the same v-prediction objective and cosine log-SNR schedule as
:mod:`jetlab.model.diffusion` (so both stages share one noise convention) and sampled with
the same deterministic DDIM update.

It conditions on an arbitrary condition vector (``cond_dim`` > 0, e.g. the scaled dijet mass of
the LHCO anomaly task) and/or a class label (``num_classes``), with classifier-free-guidance-style
label dropout during training. Features live in a normalised space: :meth:`fit_normalization`
stores per-feature mean/std as buffers, so ``loss`` takes and ``sample`` returns *physical*
features. Integer features (multiplicities) are generated as continuous values, then rounded
and clipped to a range given by ``integer_features`` (e.g. ``{3: (1, 128)}``).

Persist it with :func:`save_jet_generator` / :func:`load_jet_generator` (safetensors + JSON).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .diffusion import alpha_sigma
from .layers import FourierEmbedding

__all__ = [
    "JetFeatureGenerator",
    "load_jet_generator",
    "save_jet_generator",
    "JET_GENERATOR_WEIGHTS",
    "JET_GENERATOR_CONFIG",
]

JET_GENERATOR_WEIGHTS = "jet_generator.safetensors"
JET_GENERATOR_CONFIG = "jet_generator.json"
_FORMAT = "jetlab-jet-feature-generator"
_VERSION = 1


class _ResBlock(nn.Module):
    """Pre-norm residual MLP block whose scale/shift comes from the conditioning embedding."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(hidden, elementwise_affine=False)
        self.film = nn.Linear(hidden, 2 * hidden)
        self.fc1 = nn.Linear(hidden, 2 * hidden)
        self.fc2 = nn.Linear(2 * hidden, hidden)
        nn.init.zeros_(self.film.weight)
        nn.init.zeros_(self.film.bias)

    def forward(self, h: Tensor, c: Tensor) -> Tensor:
        scale, shift = self.film(c).chunk(2, dim=-1)
        y = self.norm(h) * (1.0 + scale) + shift
        return h + self.fc2(F.gelu(self.fc1(y)))


class JetFeatureGenerator(nn.Module):
    """Conditional v-prediction diffusion MLP over ``num_features`` jet-level features.

    Parameters
    ----------
    num_features:
        features per sample (4 for one jet's (pT, eta, mass, N); 8 for two jets).
    cond_dim:
        length of the continuous condition vector (0: none).
    num_classes:
        number of class labels to condition on (None: unconditional in class).
    hidden, layers:
        width and number of residual blocks.
    integer_features:
        ``{feature index: (low, high)}`` - rounded to integers and clipped after sampling.
    label_drop:
        probability (training only) of replacing the label by the null label, which lets
        :meth:`sample` use classifier-free guidance.
    """

    # registered buffers, and the provenance :func:`load_jet_generator` attaches
    feature_mean: Tensor
    feature_std: Tensor
    metadata: dict[str, Any]

    def __init__(
        self,
        num_features: int = 4,
        cond_dim: int = 0,
        num_classes: int | None = None,
        hidden: int = 128,
        layers: int = 3,
        *,
        integer_features: Mapping[int, tuple[float, float]] | None = None,
        label_drop: float = 0.1,
        time_embed_dim: int = 32,
    ) -> None:
        super().__init__()
        if num_features < 1:
            raise ValueError(f"JetFeatureGenerator: num_features must be >= 1, got {num_features}")
        if cond_dim < 0:
            raise ValueError(f"JetFeatureGenerator: cond_dim must be >= 0, got {cond_dim}")
        if num_classes is not None and num_classes < 1:
            raise ValueError(f"JetFeatureGenerator: num_classes must be >= 1 or None, got {num_classes}")
        if hidden < 1 or layers < 0:
            raise ValueError(
                f"JetFeatureGenerator: need hidden >= 1 and layers >= 0, got hidden={hidden}, layers={layers}"
            )
        if not 0.0 <= label_drop < 1.0:
            raise ValueError(f"JetFeatureGenerator: label_drop must be in [0, 1), got {label_drop}")
        if time_embed_dim < 2 or time_embed_dim % 2:
            raise ValueError(f"JetFeatureGenerator: time_embed_dim must be even and >= 2, got {time_embed_dim}")
        ints = {int(k): (float(v[0]), float(v[1])) for k, v in dict(integer_features or {}).items()}
        for k, (lo, hi) in ints.items():
            if not 0 <= k < num_features:
                raise ValueError(f"JetFeatureGenerator: integer_features index {k} outside [0, {num_features - 1}]")
            if lo > hi:
                raise ValueError(f"JetFeatureGenerator: integer_features[{k}] range ({lo}, {hi}) has low > high")
        self.num_features, self.cond_dim, self.num_classes = int(num_features), int(cond_dim), num_classes
        self.hidden, self.layers, self.label_drop = int(hidden), int(layers), float(label_drop)
        self.time_embed_dim = int(time_embed_dim)
        self.integer_features = ints
        self.time_embed = FourierEmbedding(time_embed_dim)
        self.cond_mlp = nn.Sequential(
            nn.Linear(time_embed_dim + cond_dim, hidden), nn.GELU(), nn.Linear(hidden, hidden)
        )
        self.label_embed = nn.Embedding(num_classes + 1, hidden) if num_classes else None
        self.inp = nn.Linear(num_features, hidden)
        self.blocks = nn.ModuleList(_ResBlock(hidden) for _ in range(layers))
        self.norm = nn.LayerNorm(hidden)
        self.out = nn.Linear(hidden, num_features)
        self.register_buffer("feature_mean", torch.zeros(num_features))
        self.register_buffer("feature_std", torch.ones(num_features))

    # ------------------------------------------------------------------ config / normalisation
    def config(self) -> dict[str, Any]:
        """Constructor arguments (JSON-serialisable): ``JetFeatureGenerator(**g.config())`` rebuilds it."""
        return {
            "num_features": self.num_features,
            "cond_dim": self.cond_dim,
            "num_classes": self.num_classes,
            "hidden": self.hidden,
            "layers": self.layers,
            "label_drop": self.label_drop,
            "time_embed_dim": self.time_embed_dim,
            "integer_features": {str(k): list(v) for k, v in self.integer_features.items()},
        }

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "JetFeatureGenerator":
        cfg = dict(config)
        cfg["integer_features"] = {int(k): tuple(v) for k, v in dict(cfg.get("integer_features") or {}).items()}
        try:
            return cls(**cfg)
        except TypeError as exc:
            raise ValueError(f"JetFeatureGenerator.from_config: invalid config {cfg}: {exc}") from exc

    @property
    def null_label(self) -> int:
        return int(self.num_classes or 0)

    def set_normalization(self, mean, std) -> "JetFeatureGenerator":
        """Use fixed per-feature ``mean``/``std`` (e.g. PET's jet standardizer) for the normalised space."""
        mean = torch.as_tensor(np.asarray(mean, dtype=np.float32)).reshape(-1)
        std = torch.as_tensor(np.asarray(std, dtype=np.float32)).reshape(-1)
        if mean.numel() != self.num_features or std.numel() != self.num_features:
            raise ValueError(
                f"set_normalization: expected {self.num_features} means and stds, got {mean.numel()} and {std.numel()}"
            )
        if not (torch.isfinite(mean).all() and torch.isfinite(std).all()) or (std <= 0).any():
            raise ValueError("set_normalization: means must be finite and stds finite and > 0")
        self.feature_mean.copy_(mean)
        self.feature_std.copy_(std)
        return self

    def fit_normalization(self, features, weights=None) -> "JetFeatureGenerator":
        """Set mean/std from physical ``features (N, num_features)`` (weighted if ``weights``)."""
        x = np.asarray(features, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.num_features or len(x) < 2:
            raise ValueError(f"fit_normalization: features must be (N >= 2, {self.num_features}), got {x.shape}")
        w = np.ones(len(x)) if weights is None else np.asarray(weights, dtype=np.float64)
        mean = np.average(x, axis=0, weights=w)
        std = np.sqrt(np.average((x - mean) ** 2, axis=0, weights=w))
        return self.set_normalization(mean, np.where(std < 1e-6, 1.0, std))

    def normalize(self, x: Tensor) -> Tensor:
        return (x - self.feature_mean) / self.feature_std

    def denormalize(self, z: Tensor) -> Tensor:
        return z * self.feature_std + self.feature_mean

    # ------------------------------------------------------------------ network
    def _check(self, n: int, cond: Tensor | None, labels: Tensor | None, where: str) -> None:
        if self.cond_dim and cond is None:
            raise ValueError(f"JetFeatureGenerator.{where}: this model needs cond of shape (N, {self.cond_dim})")
        if cond is not None:
            if not self.cond_dim:
                raise ValueError(f"JetFeatureGenerator.{where}: got cond but the model has cond_dim=0")
            if tuple(cond.shape) != (n, self.cond_dim):
                raise ValueError(
                    f"JetFeatureGenerator.{where}: cond must be ({n}, {self.cond_dim}), got {tuple(cond.shape)}"
                )
        if labels is not None:
            if not self.num_classes:
                raise ValueError(f"JetFeatureGenerator.{where}: got labels but the model has num_classes=None")
            if tuple(labels.shape) != (n,):
                raise ValueError(f"JetFeatureGenerator.{where}: labels must be ({n},), got {tuple(labels.shape)}")
            if len(labels) and (int(labels.min()) < 0 or int(labels.max()) > self.num_classes):
                raise ValueError(
                    f"JetFeatureGenerator.{where}: labels must be in [0, {self.num_classes - 1}] "
                    f"(or {self.num_classes} = null)"
                )

    def forward(self, z: Tensor, t: Tensor, cond: Tensor | None = None, labels: Tensor | None = None) -> Tensor:
        """v-prediction for normalised noisy features ``z (B, F)`` at times ``t (B,)``; labels None = null."""
        parts = [self.time_embed(t)]
        if self.cond_dim:
            if cond is None:
                raise ValueError(f"JetFeatureGenerator.forward: this model needs cond of shape (B, {self.cond_dim})")
            parts.append(cond.to(z.dtype))
        c = self.cond_mlp(torch.cat(parts, dim=-1))
        if self.label_embed is not None:
            if labels is None:
                labels = torch.full((z.shape[0],), self.null_label, dtype=torch.long, device=z.device)
            c = c + self.label_embed(labels.long())
        c = F.gelu(c)
        h = self.inp(z)
        for blk in self.blocks:
            h = blk(h, c)
        return self.out(self.norm(h))

    # ------------------------------------------------------------------ training / sampling
    def loss(
        self,
        features: Tensor,
        cond: Tensor | None = None,
        labels: Tensor | None = None,
        weights: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Weighted mean v-prediction MSE for *physical* ``features (B, F)`` (normalised internally)."""
        if features.ndim != 2 or features.shape[1] != self.num_features:
            raise ValueError(
                f"JetFeatureGenerator.loss: features must be (B, {self.num_features}), got {tuple(features.shape)}"
            )
        b = features.shape[0]
        self._check(b, cond, labels, "loss")
        x0 = self.normalize(features.float())
        t = torch.rand(b, generator=generator, device=x0.device)
        eps = torch.randn(x0.shape, generator=generator, device=x0.device)
        alpha, sigma = alpha_sigma(t)
        a, s = alpha.unsqueeze(-1), sigma.unsqueeze(-1)
        z = a * x0 + s * eps
        target = a * eps - s * x0
        if labels is not None and self.training and self.label_drop > 0:
            drop = torch.rand(b, generator=generator, device=x0.device) < self.label_drop
            labels = torch.where(drop, torch.full_like(labels.long(), self.null_label), labels.long())
        per = ((self(z, t, cond, labels).float() - target) ** 2).mean(-1)
        if weights is None:
            return per.mean()
        w = weights.to(per.dtype)
        return (per * w).sum() / w.sum().clamp_min(1e-12)

    @torch.no_grad()
    def sample(
        self,
        n: int,
        cond: Tensor | None = None,
        labels: Tensor | None = None,
        steps: int = 64,
        generator: torch.Generator | None = None,
        guidance: float = 0.0,
        *,
        round_integers: bool = True,
    ) -> Tensor:
        """``(n, F)`` physical features by deterministic DDIM from Gaussian noise (same generator -> same sample).

        ``guidance`` w > 0 mixes ``(1 + w) v(label) - w v(null)`` (needs labels). Integer
        features are rounded and clipped to their ``integer_features`` range.
        """
        if n < 0:
            raise ValueError(f"JetFeatureGenerator.sample: n must be >= 0, got {n}")
        if steps < 1:
            raise ValueError(f"JetFeatureGenerator.sample: steps must be >= 1, got {steps}")
        if guidance != 0.0 and labels is None:
            raise ValueError("JetFeatureGenerator.sample: guidance != 0 needs labels")
        dev = self.feature_mean.device
        if cond is not None:
            cond = (
                torch.as_tensor(cond, dtype=torch.float32, device=dev).reshape(n, -1)
                if n
                else torch.as_tensor(cond, dtype=torch.float32, device=dev).reshape(0, self.cond_dim)
            )
        if labels is not None:
            labels = torch.as_tensor(labels, device=dev).long().reshape(-1)
        self._check(n, cond, labels, "sample")
        was_training = self.training
        self.eval()
        try:
            z = torch.randn((n, self.num_features), generator=generator, device=dev)
            times = torch.linspace(1.0, 0.0, steps + 1, device=dev)
            for i in range(steps):
                t, s = times[i].expand(n), times[i + 1].expand(n)
                v = self(z, t, cond, labels).float()
                if guidance != 0.0:
                    v = (1.0 + guidance) * v - guidance * self(z, t, cond, None).float()
                a_t, s_t = (u.unsqueeze(-1) for u in alpha_sigma(t))
                a_s, s_s = (u.unsqueeze(-1) for u in alpha_sigma(s))
                x_hat = a_t * z - s_t * v
                eps_hat = s_t * z + a_t * v
                z = a_s * x_hat + s_s * eps_hat
        finally:
            self.train(was_training)
        x = self.denormalize(z)
        if round_integers:
            for k, (lo, hi) in self.integer_features.items():
                x[:, k] = torch.round(x[:, k]).clamp(lo, hi)
        return x

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


# ---------------------------------------------------------------------- persistence
def save_jet_generator(
    generator: JetFeatureGenerator, directory: str | os.PathLike, metadata: Mapping[str, Any] | None = None
) -> tuple[Path, Path]:
    """Write ``jet_generator.safetensors`` + ``jet_generator.json`` into ``directory`` (each atomically)."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu").contiguous() for k, v in generator.state_dict().items()}
    weights, config = directory / JET_GENERATOR_WEIGHTS, directory / JET_GENERATOR_CONFIG
    doc = {"format": _FORMAT, "version": _VERSION, "config": generator.config(), "metadata": dict(metadata or {})}
    for path, write in (
        (weights, lambda p: save_file(state, p)),
        (config, lambda p: Path(p).write_text(json.dumps(doc, indent=2, default=str) + "\n")),
    ):
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=directory)
        os.close(fd)
        try:
            write(tmp)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise
    return weights, config


def load_jet_generator(directory: str | os.PathLike, map_location: str | torch.device = "cpu") -> JetFeatureGenerator:
    """Rebuild a :class:`JetFeatureGenerator` saved by :func:`save_jet_generator`; ``.metadata`` holds its metadata."""
    from safetensors.torch import load_file

    directory = Path(directory)
    config, weights = directory / JET_GENERATOR_CONFIG, directory / JET_GENERATOR_WEIGHTS
    if not config.is_file() or not weights.is_file():
        raise FileNotFoundError(
            f"load_jet_generator: {directory} has no {JET_GENERATOR_CONFIG} + {JET_GENERATOR_WEIGHTS}"
        )
    try:
        doc = json.loads(config.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{config}: invalid JSON ({exc})") from exc
    if doc.get("format") != _FORMAT:
        raise ValueError(f"{config}: not a jet generator config (format={doc.get('format')!r}, expected {_FORMAT!r})")
    if int(doc.get("version", 0)) > _VERSION:
        raise ValueError(f"{config}: version {doc['version']} is newer than this jetlab reads ({_VERSION})")
    gen = JetFeatureGenerator.from_config(doc["config"])
    state = load_file(str(weights), device=str(torch.device(map_location)))
    missing, unexpected = set(gen.state_dict()) - set(state), set(state) - set(gen.state_dict())
    if missing or unexpected:
        raise ValueError(
            f"{weights}: weights do not fit the config: missing {sorted(missing)}, unexpected {sorted(unexpected)}"
        )
    gen.load_state_dict(state)
    gen.to(map_location)
    gen.metadata = dict(doc.get("metadata") or {})
    gen.eval()
    return gen
