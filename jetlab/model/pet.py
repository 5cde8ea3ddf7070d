"""PET (Point-Edge Transformer): a shared body with a classifier head and a diffusion generator head.

This is the OmniLearn foundation-model architecture: the body embeds each particle, adds a
local EdgeConv representation over dynamic kNN graphs (first in (deta, dphi), then in learned
feature space), and runs pre-norm transformer blocks over the jet. Both heads read the same
body output, so pretraining with classification + jet regression + diffusion shapes one
representation that is later fine-tuned (see ``param_groups`` for the smaller body lr).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from jetlab.data.preprocess import FEATURE_GROUPS

from .config import PETConfig

if TYPE_CHECKING:
    from jetlab.data.preprocess import Standardizer

    from .card import ModelCard
from .layers import (
    MLP,
    ClassAttentionBlock,
    EdgeBlock,
    FourierEmbedding,
    ScaleShift,
    TransformerBlock,
    masked,
    occupied_width,
    safe_key_mask,
)
from .param_groups import FreezableParts, body_head_groups

PARTS: tuple[str, ...] = ("body", "classifier", "generator")


def _check_groups(groups: Iterable[str]) -> tuple[str, ...]:
    groups = tuple(groups)
    unknown = [g for g in groups if g not in FEATURE_GROUPS]
    if unknown:
        raise ValueError(f"unknown feature group(s) {unknown}; known groups are {list(FEATURE_GROUPS)}")
    if "kinematics" not in groups:
        raise ValueError(f"groups={groups!r}: the 'kinematics' group is always required")
    return groups


class PETBody(nn.Module):
    """Particle embedding, time scale/shift, local kNN edge blocks and transformer blocks."""

    pid_columns: Tensor  # registered buffer

    def __init__(self, cfg: PETConfig) -> None:
        super().__init__()
        d = cfg.projection_dim
        self.feature_drop = cfg.feature_drop
        self.embed = MLP(cfg.num_feat, 2 * d, d)
        self.time_embed = FourierEmbedding(cfg.time_embed_dim)
        self.time_film = ScaleShift(cfg.time_embed_dim, d)
        self.local = nn.ModuleList(EdgeBlock(d, d, cfg.k) for _ in range(cfg.num_local if cfg.k > 0 else 0))
        rates = torch.linspace(0.0, cfg.drop_path, max(cfg.num_transformer, 1)).tolist()
        self.blocks = nn.ModuleList(
            TransformerBlock(d, cfg.num_heads, cfg.mlp_ratio, cfg.layer_scale_init, rates[i], cfg.dropout)
            for i in range(cfg.num_transformer)
        )
        pid = torch.zeros(cfg.num_feat, dtype=torch.bool)
        pid[[i for i in FEATURE_GROUPS["pid"] if i < cfg.num_feat]] = True
        self.register_buffer("pid_columns", pid, persistent=False)

    def drop_features(self, x: Tensor, groups: Sequence[str] | None = None) -> Tensor:
        """Zero the pid inputs for jets that drop them (random in training, forced by ``groups``)."""
        keep = None
        if self.training and self.feature_drop > 0.0:
            keep = (torch.rand(x.shape[0], 1, 1, device=x.device) >= self.feature_drop).to(x.dtype)
        if groups is not None and "pid" not in _check_groups(groups):
            keep = x.new_zeros(x.shape[0], 1, 1)
        if keep is None:
            return x
        return x * torch.where(self.pid_columns, keep, torch.ones_like(keep))

    def forward(
        self, x: Tensor, mask: Tensor, time: Tensor | None = None, groups: Sequence[str] | None = None
    ) -> Tensor:
        """``(B, P, D)`` per-particle representation; padded slots are exactly zero."""
        mask = mask.bool()
        x = masked(self.drop_features(x, groups), mask)
        h = masked(F.gelu(self.embed(x)), mask)
        if time is None:
            time = x.new_zeros(x.shape[0])
        h = self.time_film(h, self.time_embed(time), mask)
        if len(self.local):
            points, local = x[..., :2], h
            for blk in self.local:
                local = blk(points, local, mask)
                points = local
            h = h + local
        key_mask = safe_key_mask(mask)
        for blk in self.blocks:
            h = blk(h, mask, key_mask)
        return h


class ClassifierHead(nn.Module):
    """Jet-feature scale/shift, class-attention blocks; class logits and jet-feature regression."""

    def __init__(self, cfg: PETConfig) -> None:
        super().__init__()
        d = cfg.projection_dim
        self.jet_film = ScaleShift(cfg.num_jet, d)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        self.blocks = nn.ModuleList(
            ClassAttentionBlock(d, cfg.num_heads, cfg.mlp_ratio, cfg.layer_scale_init, cfg.dropout)
            for _ in range(cfg.num_transformer_head)
        )
        self.norm = nn.LayerNorm(d)
        self.out = nn.Linear(d, cfg.num_classes)
        self.regress = nn.Linear(d, cfg.num_jet)

    def summary(self, h: Tensor, mask: Tensor, jets: Tensor) -> Tensor:
        """``(B, D)`` per-jet representation the output layers read (the normed class token).

        ``h`` may already be sliced to the batch's occupied width (:func:`occupied_width`) while
        ``mask`` is the full one: both are sliced to that width, which drops padding only.
        """
        width = occupied_width(mask)
        h, mask = h[:, :width], mask[:, :width]
        h = self.jet_film(h, jets, mask)
        if len(self.blocks):
            cls = self.cls_token.expand(h.shape[0], -1, -1)
            for blk in self.blocks:
                cls = blk(cls, h, mask)
            c = cls[:, 0]
        else:  # no class attention: masked mean pooling
            m = mask.unsqueeze(-1).to(h.dtype)
            c = (h * m).sum(1) / m.sum(1).clamp_min(1.0)
        return self.norm(c)

    def forward(self, h: Tensor, mask: Tensor, jets: Tensor) -> tuple[Tensor, Tensor]:
        c = self.summary(h, mask, jets)
        return self.out(c), self.regress(c)


class GeneratorHead(nn.Module):
    """Conditions on (time, jet features, label) and predicts v for the generated particle inputs."""

    def __init__(self, cfg: PETConfig) -> None:
        super().__init__()
        d = cfg.projection_dim
        self.time_embed = FourierEmbedding(cfg.time_embed_dim)
        self.time_mlp = MLP(cfg.time_embed_dim, d, d)
        self.jet_mlp = MLP(cfg.num_jet, d, d)
        self.num_labels = max(cfg.num_classes, 2)
        self.label_embed = nn.Embedding(self.num_labels + 1, d)  # last index = "null" label
        self.film = ScaleShift(d, d)
        self.blocks = nn.ModuleList(
            TransformerBlock(d, cfg.num_heads, cfg.mlp_ratio, cfg.layer_scale_init, 0.0, cfg.dropout)
            for _ in range(cfg.num_gen_layers)
        )
        self.norm = nn.LayerNorm(d)
        self.out = nn.Linear(d, cfg.num_gen_features)

    @property
    def null_label(self) -> int:
        return self.num_labels

    def forward(self, h: Tensor, mask: Tensor, jets: Tensor, t: Tensor, labels: Tensor | None = None) -> Tensor:
        if labels is None:
            labels = torch.full((h.shape[0],), self.null_label, dtype=torch.long, device=h.device)
        cond = self.time_mlp(self.time_embed(t)) + self.jet_mlp(jets) + self.label_embed(labels.long())
        h = self.film(h, F.gelu(cond), mask)
        key_mask = safe_key_mask(mask)
        for blk in self.blocks:
            h = blk(h, mask, key_mask)
        return masked(self.out(self.norm(h)), mask)


def zero_init_output(model: "PET") -> None:
    """Zero the class output layer (weights and bias) of a model whose head is new."""
    with torch.no_grad():
        model.classifier.out.weight.zero_()
        model.classifier.out.bias.zero_()


class PET(FreezableParts, nn.Module):
    """The PET / OmniLearn model: ``body``, ``classifier`` and ``generator`` parts.

    Inputs come from :func:`jetlab.data.preprocess.model_inputs`: ``x (B, P, num_feat)``
    standardised, ``mask (B, P)`` bool, ``jets (B, num_jet)`` standardised.
    """

    card: ModelCard  # attached by jetlab.model.load (absent on a freshly built model)
    # set by jetlab.model.build_pet: the input standardizer to use and whether the body is pretrained
    standardizer: Standardizer | None
    pretrained: bool

    def __init__(self, config: PETConfig | None = None) -> None:
        super().__init__()
        self.config = config if config is not None else PETConfig()
        self.body = PETBody(self.config)
        self.classifier = ClassifierHead(self.config)
        self.generator = GeneratorHead(self.config)

    # ------------------------------------------------------------------ forward paths
    def classify(
        self, x: Tensor, mask: Tensor, jets: Tensor, groups: Sequence[str] | None = None
    ) -> tuple[Tensor, Tensor]:
        """``(logits (B, num_classes), jet_regression (B, num_jet))`` on clean inputs."""
        mask = mask.bool()
        width = occupied_width(mask)
        x, mask = x[:, :width], mask[:, :width]
        return self.classifier(self.body(x, mask, None, groups), mask, jets)

    def forward(self, x: Tensor, mask: Tensor, jets: Tensor, groups: Sequence[str] | None = None) -> Tensor:
        return self.classify(x, mask, jets, groups)[0]

    def generated_features(self, x: Tensor) -> Tensor:
        """The inputs the generator models, ``(B, P, num_gen_features)``, of full inputs ``x``."""
        return x[..., list(self.config.gen_feature_indices)]

    def generator_inputs(self, x_t: Tensor) -> Tensor:
        """Body input for denoising: the noisy generated features in their input slots, all others zero."""
        idx = list(self.config.gen_feature_indices)
        out = x_t.new_zeros(x_t.shape[:-1] + (self.config.num_feat,))
        out[..., idx] = x_t[..., : len(idx)]
        return out

    def denoise(self, x_t: Tensor, mask: Tensor, jets: Tensor, t: Tensor, labels: Tensor | None = None) -> Tensor:
        """v-prediction ``(B, P, num_gen_features)`` for noisy particles ``x_t`` at time ``t`` in [0, 1].

        Only the first ``num_gen_features`` inputs of ``x_t`` are read (the others would leak
        clean information); ``labels=None`` means the unconditional ("null") label.
        """
        mask = mask.bool()
        p, width = mask.shape[1], occupied_width(mask)
        x_t, mask = x_t[:, :width], mask[:, :width]
        h = self.body(self.generator_inputs(x_t), mask, t)
        v = self.generator(h, mask, jets, t, labels)
        return F.pad(v, (0, 0, 0, p - width)) if width < p else v

    @property
    def null_label(self) -> int:
        return self.generator.null_label

    # ------------------------------------------------------------------ fine-tuning helpers
    @property
    def parts(self) -> dict[str, nn.Module]:
        return {"body": self.body, "classifier": self.classifier, "generator": self.generator}

    def _parts(self, names: Sequence[str]) -> list[nn.Module]:
        bad = [n for n in names if n not in PARTS]
        if bad:
            raise ValueError(f"unknown part(s) {bad}; PET parts are {list(PARTS)}")
        return [self.parts[n] for n in (names or PARTS)]

    def param_groups(self, lr_head: float, lr_factor: float = 5.0, weight_decay: float | None = None) -> list[dict]:
        """Optimizer groups: body at ``lr_head / lr_factor``, heads at ``lr_head`` (frozen params skipped)."""
        return body_head_groups(self, self.body, lr_head, lr_factor, weight_decay)

    def reset_classifier(self, num_classes: int) -> "PET":
        """New class output layer (and generator label embedding) for ``num_classes`` classes.

        The new output layer starts at zero: fine-tuning begins at the uninformed loss (ln 2 for
        a balanced binary task) instead of a random prediction on top of the pretrained features
        that first has to be unlearned; see :func:`zero_init_output`.
        """
        if num_classes < 1:
            raise ValueError(f"reset_classifier: num_classes must be >= 1, got {num_classes}")
        ref = self.classifier.out.weight
        self.config = self.config.replace(num_classes=num_classes)
        self.classifier.out = nn.Linear(self.config.projection_dim, num_classes).to(ref.device, ref.dtype)
        zero_init_output(self)
        gen = self.generator
        gen.num_labels = max(num_classes, 2)
        gen.label_embed = nn.Embedding(gen.num_labels + 1, self.config.projection_dim).to(ref.device, ref.dtype)
        return self

    def describe(self, file=None) -> str:
        """Show (write to ``file``, default stdout) and return the parameter count per part."""
        c = self.config
        lines = [
            f"PET(width={c.projection_dim}, heads={c.num_heads}, transformer={c.num_transformer}, "
            f"class_attention={c.num_transformer_head}, generator={c.num_gen_layers}, "
            f"local={c.num_local}xK{c.k}, classes={c.num_classes})"
        ]
        for name, n in self.num_parameters().items():
            lines.append(f"  {name:<11s}{n:>12,d} parameters")
        text = "\n".join(lines)
        (sys.stdout if file is None else file).write(text + "\n")  # a display method: shown, not logged
        return text
