"""OmniLearned (PyPI ``omnilearned==0.2.0``, arXiv:2510.24066) as a jetlab backbone.

:class:`OmniLearnedModel` wraps OmniLearned's own ``PET2`` network (the pretrained weights run
through the publisher's code, not a re-implementation) behind the methods jetlab's tasks call on
:class:`jetlab.model.PET`: ``classify``, ``forward``, ``reset_classifier``, ``param_groups``,
``freeze``/``unfreeze``, ``num_parameters``, ``describe``, ``.card``/``.config``, and the
generator head's ``velocity`` where the checkpoint has one.

Inputs. jetlab's tasks standardise the 13 particle inputs of :mod:`jetlab.data.preprocess`
with the *checkpoint card's* standardizer. A converted OmniLearned card stores the identity
standardizer, so the wrapper receives jetlab's raw inputs and builds OmniLearned's own from them
(:meth:`OmniLearnedModel.omnilearned_inputs`); it refuses standardised inputs by name (the
identity ``dr == hypot(deta, dphi)`` of raw inputs fails for them).

Randomness. ``PET2.forward`` draws a diffusion time even when only classifying; the wrapper
calls the body and heads itself and draws nothing, and builds networks under
``torch.random.fork_rng`` with their own seed, so jetlab's seeded global streams are untouched.

Everything that cannot be checked without the published checkpoints and their training data is
in :data:`CONVENTIONS` below (README: "Checking the OmniLearned conventions"). The delta-eta sign
is a setting of each checkpoint (``deta_flip``, default: OmniLearned's README, no flip);
:meth:`OmniLearnedModel.describe` and the load message say which one a model runs with.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from .config import strict_from_dict
from .param_groups import FreezableParts, body_head_groups

if TYPE_CHECKING:
    from jetlab.data.preprocess import Standardizer

    from .card import ModelCard

log = logging.getLogger(__name__)

ARCHITECTURE = "omnilearned-pet2"
PARTS: tuple[str, ...] = ("body", "classifier", "generator")

# ----------------------------------------------------------------------------------------------
# The one place for conventions that cannot be verified offline. Sources: omnilearned 0.2.0's
# README ("Creating Your Own Dataset") and dataloader; the published checkpoints' training data
# is not public in processed form, so none of these is checked against them here.
# ----------------------------------------------------------------------------------------------
#: PDG ids OmniLearned keeps after its README recipe (K+, p -> pi+; n -> K0L), with 0 = padding.
_PDG_VALUES = np.array([-211, -13, -11, 0, 11, 13, 22, 130, 211])
CONVENTIONS: dict[str, Any] = {
    # kinematics: README order (delta-eta, delta-phi, log pT, log E); GeV is consistent with the
    # means of its noise distribution (diffusion.get_ad_eps: log pT 1.11, log E 1.43)
    "features": ("deta", "dphi", "log_pt", "log_e"),
    "units": "GeV",
    # delta-eta sign (see DETA_CONVENTIONS). False: delta-eta = eta - eta_jet, what OmniLearned's
    # README ("Creating Your Own Dataset": "pseudorapidity difference between the particle and jet
    # axis") defines and its dataloader passes on untouched (HEPDataset.__getitem__ reads ``data`` as
    # stored); the OmniLearned repository holds no data-preparation script (checked: every commit up
    # to 922355d) and its pretraining files are served already prepared (dataloader.get_url), so
    # this README definition is the publisher's only statement. True: OmniLearn v1's sign flip for
    # jets at eta < 0, which v1 applied to JetClass only (ViniciusMikuni/OmniLearn
    # preprocessing/dataloader.py:122; its top, ATLAS, CMS, QG and OmniFold scripts do not flip).
    "deta_flip": False,
    # integer PID: README recipe ``np.searchsorted(np.unique(pid), pid)`` applied to the PDG ids a
    # JetClass-style file holds (padding 0 included: 9 values = PET2's default pid_dim 9)
    "pid_table": {int(p): int(i) for p, i in zip(_PDG_VALUES, np.searchsorted(np.unique(_PDG_VALUES), _PDG_VALUES))},
    # PID absent (dataset without flags, or groups without "pid"): index 0, the embedding's
    # padding_idx, whose vector is zero - exactly a model without the PID input
    "pid_absent": 0,
    # extra track features (tanh d0, d0 err, tanh dz, dz err): jetlab's 13 inputs do not carry
    # them; zeros make the bias-free add_embed MLP contribute exactly nothing
    "add_info": "zeros",
    # kNN settings not stored in the tensors: omnilearned's CLI defaults (PET2's own are K=15,
    # num_coord=3), interaction type "lhc"
    "K": 10,
    "num_coord": 2,
    "int_type": "lhc",
}
#: what each ``deta_flip`` value feeds the network (describe() and the load message print it)
DETA_CONVENTIONS: dict[bool, str] = {
    False: "delta-eta = eta - eta_jet, no sign flip (OmniLearned README)",
    True: "delta-eta sign-flipped for jets at eta_jet < 0 (OmniLearn v1's JetClass preprocessing)",
}


def deta_convention(deta_flip: bool) -> str:
    """One line saying which delta-eta the network receives for ``deta_flip``."""
    return DETA_CONVENTIONS[bool(deta_flip)]


#: value written for a real particle whose log pT is exactly 0 (pT = 1 GeV): OmniLearned treats
#: log pT == 0 as padding
LOG_PT_FLOOR = 1e-6


def require_omnilearned():
    """The ``omnilearned`` package, or an ImportError saying how to install it."""
    try:
        import omnilearned.network as network
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise ImportError(
            "OmniLearned checkpoints need the optional package: pip install 'jetlab[omnilearned]' "
            f"(omnilearned==0.2.0); import failed: {exc}"
        ) from exc
    return network


def size_presets() -> dict[str, dict[str, int]]:
    """OmniLearned's named sizes (``utils.get_model_parameters``)."""
    require_omnilearned()
    from omnilearned.utils import get_model_parameters

    return {s: get_model_parameters(s) for s in ("small", "medium", "large")}


@dataclass
class OmniLearnedSettings:
    """Everything needed to rebuild the ``PET2`` of a checkpoint (stored as the card's config)."""

    base_dim: int
    num_transformers: int
    num_transformers_head: int
    num_tokens: int
    num_heads: int
    mlp_ratio: int
    mode: str = "classifier"  # classifier | generator | pretrain
    num_classes: int = 2  # classifier outputs (0: no classifier head, a generator-mode file)
    gen_classes: int = 1  # generator label classes (1 = no label embedding)
    input_dim: int = 4
    use_int: bool = False
    local_int: bool = False
    skip: bool = False
    pid: bool = False
    pid_dim: int = 9
    add_info: bool = False
    add_dim: int = 4
    K: int = CONVENTIONS["K"]
    num_coord: int = CONVENTIONS["num_coord"]
    int_type: str = CONVENTIONS["int_type"]
    deta_flip: bool = CONVENTIONS["deta_flip"]
    size: str | None = None

    def __post_init__(self) -> None:
        if self.mode not in ("classifier", "generator", "pretrain"):
            raise ValueError(f"OmniLearnedSettings.mode must be classifier, generator or pretrain, got {self.mode!r}")
        if self.input_dim != 4:
            raise ValueError(
                f"OmniLearnedSettings.input_dim={self.input_dim}: jetlab maps its inputs to OmniLearned's "
                "4 kinematic features (delta-eta, delta-phi, log pT, log E) only"
            )
        if self.base_dim % self.num_heads:
            raise ValueError(
                f"OmniLearnedSettings: base_dim {self.base_dim} is not divisible by num_heads {self.num_heads}"
            )
        if isinstance(self.deta_flip, np.bool_):
            self.deta_flip = bool(self.deta_flip)
        if not isinstance(self.deta_flip, bool):
            raise ValueError(
                f"OmniLearnedSettings.deta_flip must be True or False, got {self.deta_flip!r} "
                f"({type(self.deta_flip).__name__}): False = {DETA_CONVENTIONS[False]}; True = {DETA_CONVENTIONS[True]}"
            )
        if self.has_classifier and self.num_classes < 1:
            raise ValueError(
                f"OmniLearnedSettings: a {self.mode}-mode model has a classifier head, num_classes must be >= 1, "
                f"got {self.num_classes}"
            )

    @property
    def has_classifier(self) -> bool:
        return self.mode in ("classifier", "pretrain")

    @property
    def has_generator(self) -> bool:
        return self.mode in ("generator", "pretrain")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "OmniLearnedSettings":
        return strict_from_dict(cls, d)

    def replace(self, **changes: Any) -> "OmniLearnedSettings":
        return replace(self, **changes)

    def diff(self, other: "OmniLearnedSettings") -> dict[str, tuple[Any, Any]]:
        a, b = self.to_dict(), other.to_dict()
        return {k: (a[k], b[k]) for k in a if a[k] != b[k]}


def build_pet2(settings: OmniLearnedSettings, seed: int = 0) -> nn.Module:
    """OmniLearned's ``PET2`` for ``settings``, initialised from ``seed`` without touching the global RNG.

    No dropout: fine-tuning in jetlab is deterministic given the trainer's seed.
    """
    network = require_omnilearned()
    s = settings
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        net = network.PET2(
            input_dim=s.input_dim,
            use_int=s.use_int,
            local_int=s.local_int,
            int_type=s.int_type,
            conditional=False,
            pid=s.pid,
            pid_dim=s.pid_dim,
            add_info=s.add_info,
            add_dim=s.add_dim,
            mode=s.mode,
            num_classes=s.gen_classes if s.has_generator else s.num_classes,
            num_gen_classes=1,
            base_dim=s.base_dim,
            num_transformers=s.num_transformers,
            num_transformers_head=s.num_transformers_head,
            num_tokens=s.num_tokens,
            num_heads=s.num_heads,
            mlp_ratio=s.mlp_ratio,
            mlp_drop=0.0,
            attn_drop=0.0,
            feature_drop=0.0,
            K=s.K,
            skip=s.skip,
            num_coord=s.num_coord,
        )
        if net.classifier is not None and net.classifier.out.out_features != s.num_classes:
            net.classifier.out = nn.Linear(net.classifier.out.in_features, s.num_classes)
            _zero(net.classifier.out)
    return net


def _zero(layer: nn.Linear) -> None:
    with torch.no_grad():
        layer.weight.zero_()
        layer.bias.zero_()


def identity_standardizer():
    """Mean 0 / std 1 for every jetlab input: tasks that standardise with the card then feed raw inputs."""
    from jetlab.data.preprocess import JET_INPUTS, PARTICLE_INPUTS, Standardizer

    p, j = len(PARTICLE_INPUTS), len(JET_INPUTS)
    return Standardizer(
        np.zeros(p, np.float32), np.ones(p, np.float32), np.zeros(j, np.float32), np.ones(j, np.float32)
    )


#: jetlab (charge, flag) -> PDG id; flags in jetlab's order (charged hadron, neutral hadron, photon,
#: electron, muon) are codes 1..5, code 0 = no flag set
PDG_FROM_JETLAB = {
    (1, 1): 211,
    (-1, 1): -211,
    (0, 2): 130,
    (0, 3): 22,
    (-1, 4): 11,
    (1, 4): -11,
    (-1, 5): 13,
    (1, 5): -13,
}


def pid_lookup() -> Tensor:
    """Flat table ``(charge + 1) * 6 + flag code -> OmniLearned PID integer`` (absent PID elsewhere)."""
    lut = torch.full((3, 6), CONVENTIONS["pid_absent"], dtype=torch.long)
    for (q, flag), code in PDG_FROM_JETLAB.items():
        lut[q + 1, flag] = CONVENTIONS["pid_table"][code]
    return lut.flatten()


def is_omnilearned_card(card: Any) -> bool:
    return getattr(card, "architecture", "pet") == ARCHITECTURE


class OmniLearnedModel(FreezableParts, nn.Module):
    """An OmniLearned ``PET2`` with jetlab's model interface (see the module docstring)."""

    architecture = ARCHITECTURE
    net: Any  # omnilearned's PET2: the package is untyped, so its submodules are not known to mypy
    _pid_lookup: Tensor  # registered buffer
    card: ModelCard  # attached by load_omnilearned (absent on a freshly built model)
    standardizer: Standardizer | None  # identity by default; build_pet may replace it
    pretrained: bool  # set by jetlab.model.build_pet
    loaded_from: str | None = None  # the checkpoint directory load_omnilearned read (None: built here)

    def __init__(self, settings: OmniLearnedSettings, seed: int = 0) -> None:
        super().__init__()
        self.settings = settings
        self.net = build_pet2(settings, seed)
        self.standardizer = identity_standardizer()
        self.register_buffer("_pid_lookup", pid_lookup(), persistent=False)

    # ------------------------------------------------------------------ inputs
    def omnilearned_inputs(self, x: Tensor, mask: Tensor, jets: Tensor, groups: Sequence[str] | None = None):
        """``(X (B,P',4), pid (B,P') long | None, add (B,P',add_dim) | None)`` from jetlab's raw inputs.

        ``P' = max(P, K+1)`` (OmniLearned's kNN needs K+1 slots); padded slots are exactly 0 and a
        real particle's log pT is never 0 (OmniLearned's padding test).
        """
        if x.shape[-1] != 13:
            raise ValueError(f"OmniLearnedModel: expected jetlab's 13 particle inputs, got {x.shape[-1]}")
        mask = mask.bool()
        self._check_raw(x, mask)
        m = mask.unsqueeze(-1).to(x.dtype)
        deta = x[..., 0]
        if not self.settings.deta_flip:  # jetlab's inputs flip it for jets at eta < 0 (data.preprocess): undo
            deta = deta * torch.where(jets[:, 1:2] < 0, -1.0, 1.0).to(x.dtype)
        log_pt = x[..., 3]
        log_pt = torch.where(mask & (log_pt == 0), torch.full_like(log_pt, LOG_PT_FLOOR), log_pt)
        X = torch.stack([deta, x[..., 1], log_pt, x[..., 5]], -1) * m
        pid = add = None
        if self.settings.pid:
            use_pid = groups is None or "pid" in groups
            if use_pid:
                flags = x[..., 8:13]
                code = torch.where(
                    flags.amax(-1) > 0.5, flags.argmax(-1) + 1, torch.zeros_like(flags[..., 0], dtype=torch.long)
                )
                charge = x[..., 7].round().clamp(-1, 1).long()
                pid = self._pid_lookup[(charge + 1) * 6 + code]
            else:
                pid = torch.full(mask.shape, CONVENTIONS["pid_absent"], dtype=torch.long, device=x.device)
            pid = pid * mask.long()
        if self.settings.add_info:
            add = x.new_zeros(x.shape[:2] + (self.settings.add_dim,))
        need = self.settings.K + 1
        if X.shape[1] < need:
            pad = need - X.shape[1]
            X = torch.nn.functional.pad(X, (0, 0, 0, pad))
            pid = None if pid is None else torch.nn.functional.pad(pid, (0, pad))
            add = None if add is None else torch.nn.functional.pad(add, (0, 0, 0, pad))
        return X, pid, add

    @staticmethod
    def _check_raw(x: Tensor, mask: Tensor) -> None:
        """Raw jetlab inputs satisfy dr == hypot(deta, dphi); standardised ones do not."""
        if not bool(mask.any()):
            return
        gap = (x[..., 6] - torch.hypot(x[..., 0], x[..., 1])).abs()[mask]
        if float(gap.max()) > 1e-3 * (1.0 + float(x[..., 6][mask].abs().max())):
            raise ValueError(
                "OmniLearnedModel received standardised particle inputs: it needs jetlab's raw inputs "
                "(standardise with the checkpoint card's identity standardizer, model.standardizer)"
            )

    def _time(self, X: Tensor) -> Tensor | None:
        return X.new_zeros(X.shape[0]) if self.net.body.use_time else None

    # ------------------------------------------------------------------ forward paths
    def body_features(self, x: Tensor, mask: Tensor, jets: Tensor, groups: Sequence[str] | None = None) -> Tensor:
        """OmniLearned's body output ``(B, tokens + extra tokens + P', D)`` on clean inputs."""
        X, pid, add = self.omnilearned_inputs(x, mask, jets, groups)
        return self.net.body(X, None, pid, add, self._time(X))

    def classify(
        self, x: Tensor, mask: Tensor, jets: Tensor, groups: Sequence[str] | None = None
    ) -> tuple[Tensor, None]:
        """``(logits (B, num_classes), None)``: OmniLearned has no jet-feature regression output."""
        if self.net.classifier is None:
            raise RuntimeError(
                f"OmniLearnedModel: this {self.settings.mode}-mode checkpoint has no classifier head; "
                "call reset_classifier(num_classes) first"
            )
        return self.net.classifier(self.body_features(x, mask, jets, groups)), None

    def forward(self, x: Tensor, mask: Tensor, jets: Tensor, groups: Sequence[str] | None = None) -> Tensor:
        return self.classify(x, mask, jets, groups)[0]

    @property
    def body(self) -> nn.Module:
        """The pretrained body (what ``param_groups`` trains at the lower rate), as ``PET.body``."""
        return self.net.body

    @property
    def embedding_dim(self) -> int:
        """Width of :meth:`jet_embedding`: the classifier head's tokens, flattened."""
        return self.settings.num_tokens * self.settings.base_dim

    def jet_embedding(self, x: Tensor, mask: Tensor, jets: Tensor, groups: Sequence[str] | None = None) -> Tensor:
        """Per-jet summary ``(B, embedding_dim)``: ``PET_classifier.forward`` up to its output layer,
        so ``net.classifier.out(jet_embedding(...))`` are :meth:`classify`'s logits (used by tasks that
        combine several jets, e.g. the dijet classifier of notebook 04)."""
        if self.net.classifier is None:
            raise RuntimeError(
                f"OmniLearnedModel: this {self.settings.mode}-mode checkpoint has no classifier head; "
                "call reset_classifier(num_classes) first"
            )
        head = self.net.classifier
        h = self.body_features(x, mask, jets, groups)
        m = h[:, head.num_tokens :, 2:3] != 0  # omnilearned's own mask rule (PET_classifier.forward)
        for blk in head.in_blocks:
            h = blk(h, mask=m)
        return head.fc(h[:, : head.num_tokens].reshape(h.shape[0], -1))

    def velocity(
        self, z: Tensor, mask: Tensor, t: Tensor, labels: Tensor | None = None, pid: Tensor | None = None
    ) -> Tensor:
        """The generator head's prediction ``v = eps - x`` for OmniLearned-coordinate inputs ``z`` (B,P,4) at time ``t``.

        Same computation as ``omnilearned.diffusion.network_wrapper``; OmniLearned's generator is
        conditioned on a class label only (no jet kinematics), which is what its modes allow.
        """
        if self.net.generator is None:
            raise RuntimeError(f"OmniLearnedModel: this {self.settings.mode}-mode checkpoint has no generator head")
        z = z * mask.unsqueeze(-1).to(z.dtype)
        add = z.new_zeros(z.shape[:2] + (self.settings.add_dim,)) if self.settings.add_info else None
        if self.settings.pid and pid is None:
            pid = torch.zeros(z.shape[:2], dtype=torch.long, device=z.device)
        return self.net.generator(self.net.body(z, None, pid, add, t), labels)

    # ------------------------------------------------------------------ fine-tuning helpers
    @property
    def config(self) -> OmniLearnedSettings:
        return self.settings

    @property
    def parts(self) -> dict[str, nn.Module]:
        return {
            n: m
            for n, m in (
                ("body", self.net.body),
                ("classifier", self.net.classifier),
                ("generator", self.net.generator),
            )
            if m is not None
        }

    def _parts(self, names: Sequence[str]) -> list[nn.Module]:
        bad = [n for n in names if n not in PARTS]
        if bad:
            raise ValueError(f"unknown part(s) {bad}; OmniLearned parts are {list(PARTS)}")
        missing = [n for n in names if n not in self.parts]
        if missing:
            raise ValueError(f"this {self.settings.mode}-mode OmniLearned model has no {missing} part")
        return [self.parts[n] for n in (names or self.parts)]

    def param_groups(self, lr_head: float, lr_factor: float = 5.0, weight_decay: float | None = None) -> list[dict]:
        """Body at ``lr_head / lr_factor``, heads at ``lr_head`` (jetlab's recipe; OmniLearned's own
        CLI instead raises the input layers' lr by ``lr_factor``). Frozen parameters are skipped."""
        return body_head_groups(self, self.net.body, lr_head, lr_factor, weight_decay)

    def reset_classifier(self, num_classes: int, seed: int = 0) -> "OmniLearnedModel":
        """New zero-initialised class output layer (a whole new head, seeded, if there was none).

        Zero init as for jetlab's PET: fine-tuning starts at the uninformed loss.
        """
        if num_classes < 1:
            raise ValueError(f"reset_classifier: num_classes must be >= 1, got {num_classes}")
        ref = next(self.net.body.parameters())
        if self.net.classifier is None:
            network = require_omnilearned()
            s = self.settings
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(seed))
                self.net.classifier = network.PET_classifier(
                    s.base_dim,
                    num_transformers=s.num_transformers_head,
                    num_heads=s.num_heads,
                    mlp_ratio=s.mlp_ratio,
                    mlp_drop=0.0,
                    attn_drop=0.0,
                    num_tokens=s.num_tokens,
                    num_classes=num_classes,
                ).to(ref.device, ref.dtype)
            if s.mode == "generator":  # body + generator (+ the new head): what a pretrain-mode PET2 holds
                self.settings = s.replace(mode="pretrain", num_classes=int(num_classes))
        out = self.net.classifier.out
        self.net.classifier.out = nn.Linear(out.in_features, num_classes).to(ref.device, ref.dtype)
        _zero(self.net.classifier.out)
        self.settings = self.settings.replace(num_classes=int(num_classes))
        return self

    def source_name(self) -> str:
        """Where the weights came from: the converted OmniLearned file, else the checkpoint directory."""
        card = getattr(self, "card", None)
        metrics = getattr(card, "metrics", None) or {}
        src = metrics.get("source_file")
        where = getattr(self, "loaded_from", None)
        if src and where:
            return f"{src} (converted: {where})"
        return str(src or where or "this model")

    def describe(self, file=None) -> str:
        """Architecture, heads, the delta-eta convention the inputs are built with, parameter counts."""
        s = self.settings
        extras = [
            k
            for k, on in (
                ("interaction", s.use_int),
                ("local interaction", s.local_int),
                (f"PID({s.pid_dim})", s.pid),
                (f"track features({s.add_dim})", s.add_info),
            )
            if on
        ]
        heads = [f"classes={s.num_classes}" if self.net.classifier is not None else "no classifier head"]
        if self.net.generator is not None:
            heads.append(f"generator labels={s.gen_classes}")
        lines = [
            f"OmniLearned PET2{f' {s.size}' if s.size else ''}(width={s.base_dim}, heads={s.num_heads}, "
            f"blocks={s.num_transformers}, head blocks={s.num_transformers_head}, tokens={s.num_tokens}, "
            f"K={s.K}, mode={s.mode}, {', '.join(heads + extras)})",
            f"  inputs: {deta_convention(s.deta_flip)} [deta_flip={s.deta_flip}]",
        ]
        if self.net.classifier is None:
            lines.append(
                f"  no classifier head in {self.source_name()}: the file holds "
                f"{' and '.join(n for n in ('body', 'generator') if n in self.parts)} only; classify() needs "
                "reset_classifier(num_classes), which adds a new, untrained head (fine-tuning trains it)"
            )
        for name, n in self.num_parameters().items():
            lines.append(f"  {name:<11s}{n:>12,d} parameters")
        text = "\n".join(lines)
        (sys.stdout if file is None else file).write(text + "\n")  # a display method: shown, not logged
        return text


def load_omnilearned(
    path: str | os.PathLike,
    card=None,
    map_location: str | torch.device = "cpu",
    settings: OmniLearnedSettings | None = None,
) -> OmniLearnedModel:
    """Rebuild a converted (or fine-tuned and saved) OmniLearned checkpoint directory; strict load."""
    from .card import CheckpointError, ConfigMismatchError, load_weights_into, read_card

    path = Path(path)
    card = card if card is not None else read_card(path)
    try:
        stored = OmniLearnedSettings.from_dict(card.config)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: invalid OmniLearned settings in the model card: {exc}") from exc
    if settings is not None and stored.diff(settings):
        raise ConfigMismatchError(stored.diff(settings), path)
    model = load_weights_into(OmniLearnedModel(stored), path, card, map_location)
    model.loaded_from = str(path)
    _announce_convention(path, stored)
    return model


_ANNOUNCED: set[tuple[str, bool]] = set()


def _announce_convention(path: Path, settings: OmniLearnedSettings) -> None:
    """Log (once per checkpoint and convention, at INFO: notebooks show it) which delta-eta the model gets."""
    key = (str(Path(path).resolve()), settings.deta_flip)
    if key in _ANNOUNCED:
        return
    _ANNOUNCED.add(key)
    log.info(
        "OmniLearned checkpoint %s: %s [deta_flip=%s]", path, deta_convention(settings.deta_flip), settings.deta_flip
    )
