"""Convert OmniLearned ``.pt`` checkpoints to jetlab checkpoint directories, and find the published ones.

An OmniLearned checkpoint is the dict its ``utils.save_checkpoint`` writes (``body``,
``classifier_head``, ``generator_head``, ``ema_body``, ``ema_generator``, ``optimizer``, ``sched``,
``epoch``, ``loss``) and stores no configuration. :func:`infer_settings` reads the settings from
tensor names and shapes; :func:`convert_omnilearned` rebuilds ``PET2`` with them and loads every
part with ``strict=True``, so a tensor that would stay unloaded or a shape that does not fit is
an error naming it (OmniLearned's own fine-tuning loads with ``strict=False`` and only prints).
The file is read with ``torch.load(weights_only=True)``: no code in it is executed.

``"omnilearned:small|medium|large"`` (:func:`resolve_omnilearned`) is the published checkpoint
fetched with ``jetlab data fetch omnilearned_checkpoints --subset small`` and converted once into
jetlab's cache.
"""

from __future__ import annotations

import fcntl
import logging
import os
import pickle
import re
from pathlib import Path
from typing import Any, Mapping

import torch

from jetlab.data.download import file_checksum

from .card import CARD_FILE, WEIGHTS_FILE, CheckpointError, ConfigMismatchError, ModelCard, state_problems
from .omnilearned import (
    ARCHITECTURE,
    CONVENTIONS,
    OmniLearnedModel,
    OmniLearnedSettings,
    deta_convention,
    identity_standardizer,
    size_presets,
)

log = logging.getLogger(__name__)

PREFIX = "omnilearned:"
#: published file per size (omnilearned README: ``--pretrain-tag pretrain_s``; utils.get_checkpoint_name)
PUBLISHED = {
    "small": "best_model_pretrain_s.pt",
    "medium": "best_model_pretrain_m.pt",
    "large": "best_model_pretrain_l.pt",
}
MANIFEST = "omnilearned_checkpoints"
#: the settings a size preset fixes (utils.get_model_parameters keys)
_PRESET_KEYS = ("base_dim", "num_transformers", "num_transformers_head", "num_tokens", "num_heads", "mlp_ratio")
_PARTS = {"body": "body", "classifier_head": "classifier", "generator_head": "generator"}


#: what an OmniLearned file holds (utils.save_checkpoint), for error messages
_EXPECTED = (
    "Expected an OmniLearned checkpoint as omnilearned's utils.save_checkpoint writes it: a dict of "
    "state dicts 'body', 'classifier_head' and/or 'generator_head' (plus 'ema_body', 'optimizer', "
    "'sched', 'epoch', 'loss')."
)


def read_omnilearned(path: str | os.PathLike) -> dict[str, Any]:
    """The checkpoint dict, loaded with ``weights_only=True`` (numpy scalars allowed for ``loss``)."""
    import numpy as np

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"OmniLearned checkpoint {path} does not exist")
    allowed: list[Any] = [np.dtype, type(np.dtype(np.float32)), type(np.dtype(np.float64))]
    scalar = getattr(getattr(np, "_core", np), "multiarray", None)
    if scalar is not None and hasattr(scalar, "scalar"):
        allowed.append(scalar.scalar)
    try:
        with torch.serialization.safe_globals(allowed):
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch's message advises loading with weights_only=False, i.e. running the file's code: not
        # for a downloaded file, so only what was refused is passed on, and the chain is dropped
        text = str(exc)
        refused = re.search(r"GLOBAL ([\w.]+)", text)
        reason = re.search(r"WeightsUnpickler error:\s*([^\n]+)", text)
        if refused:
            what = f"pickles a {refused.group(1)} object, not only tensors, numbers and dicts"
        elif reason and "weights_only" not in reason.group(1):
            what = f"is a pickle the safe reader refuses ({reason.group(1).strip()[:120]})"
        else:
            what = "is a pickle the safe reader refuses"
        raise CheckpointError(
            f"{path}: refused: the file {what}. {_EXPECTED} jetlab never runs code from a checkpoint file: "
            "check where this one came from, or convert the file omnilearned itself wrote"
        ) from None
    except Exception as exc:  # not a torch file, truncated, ...: name the problem, never torch's advice
        first = re.split(r"(?<=\.)\s", str(exc).strip(), maxsplit=1)[0] if str(exc).strip() else ""
        detail = (
            ""
            if "weights_only" in first
            else f": {type(exc).__name__}" + (f": {first[:160].rstrip('.')}" if first else "")
        )
        raise CheckpointError(
            f"{path}: not a readable torch checkpoint (damaged, truncated or another format){detail}. {_EXPECTED}"
        ) from None
    if not isinstance(ckpt, Mapping) or "body" not in ckpt:
        keys = list(ckpt)[:10] if isinstance(ckpt, Mapping) else type(ckpt).__name__
        raise CheckpointError(f"{path}: not an OmniLearned checkpoint (found {keys}). {_EXPECTED}")
    return dict(ckpt)


def _count(state: Mapping[str, torch.Tensor], prefix: str) -> int:
    idx = {int(m.group(1)) for k in state if (m := re.match(re.escape(prefix) + r"(\d+)\.", k))}
    return max(idx) + 1 if idx else 0


def infer_settings(
    ckpt: Mapping[str, Any],
    *,
    num_heads: int | None = None,
    K: int | None = None,
    num_coord: int | None = None,
    int_type: str | None = None,
    deta_flip: bool | None = None,
    size: str | None = None,
    where: str = "checkpoint",
) -> OmniLearnedSettings:
    """Settings from tensor names and shapes; the kNN settings come from :data:`CONVENTIONS` unless given.

    ``num_heads`` is read from the interaction block when there is one, else from the size preset
    with this width, else it must be given. ``size`` checks the result against OmniLearned's preset
    (:class:`ConfigMismatchError` naming each differing setting).
    """
    body = ckpt["body"]
    num_tokens, base_dim, input_dim, mlp_ratio, k_in = _body_shape(body, where)
    use_int = "interaction.mlp.fc2.weight" in body
    presets = size_presets()
    heads_from = _stored_num_heads(body, base_dim, num_heads, presets, where)
    mode = _mode(ckpt, body, where)
    num_classes = _num_classes(ckpt, where) if "classifier_head" in ckpt else 0  # 0: nothing to count
    gen_classes = _gen_classes(ckpt["generator_head"], input_dim, where) if "generator_head" in ckpt else 1
    skip = any(k.startswith("out_blocks.") for k in body)
    blocks = _count(body, "in_blocks.") + _count(body, "out_blocks.")
    heads = num_heads if num_heads is not None else heads_from
    assert heads is not None, "num_heads comes from the interaction tensors or the size presets above"
    settings = OmniLearnedSettings(
        base_dim=int(base_dim),
        num_transformers=blocks,
        num_transformers_head=_count(body, "local_physics.in_blocks."),
        num_tokens=int(num_tokens),
        num_heads=int(heads),
        mlp_ratio=int(mlp_ratio),
        mode=mode,
        num_classes=num_classes,
        gen_classes=gen_classes,
        input_dim=input_dim,
        use_int=use_int,
        local_int=k_in == input_dim + 3,
        skip=skip,
        pid="pid_embed.0.weight" in body,
        pid_dim=int(body["pid_embed.0.weight"].shape[0]) if "pid_embed.0.weight" in body else 9,
        add_info="add_embed.0.fc1.weight" in body,
        add_dim=int(body["add_embed.0.fc1.weight"].shape[1]) if "add_embed.0.fc1.weight" in body else 4,
        K=int(K if K is not None else CONVENTIONS["K"]),
        num_coord=int(num_coord if num_coord is not None else CONVENTIONS["num_coord"]),
        int_type=int_type or CONVENTIONS["int_type"],
        deta_flip=CONVENTIONS["deta_flip"] if deta_flip is None else deta_flip,  # validated by the settings
        size=size,
    )
    if size is not None:
        _check_preset(settings, size, presets, where)
    return settings


def _body_shape(body: Mapping[str, torch.Tensor], where: str) -> tuple[int, int, int, float, int]:
    """(num_tokens, base_dim, input_dim, mlp_ratio, local_physics inputs) of a PET2 body, checked."""
    need = ("token", "embed.norm.weight", "local_physics.mlp.fc1.weight")
    missing = [k for k in need if k not in body]
    if missing:
        raise CheckpointError(f"{where}: body has no {missing} tensor(s): not an OmniLearned PET2 body")
    if any(k.startswith("cond_embed.") for k in body):
        raise CheckpointError(
            f"{where}: body tensors cond_embed.* (conditional=True): the meaning of its "
            f"{body['cond_embed.0.fc1.weight'].shape[1]} global inputs is not stored, jetlab cannot feed them"
        )
    _, num_tokens, base_dim = body["token"].shape
    input_dim = int(body["embed.norm.weight"].shape[0])
    mlp_ratio = body["embed.mlp.fc1.weight"].shape[0] / base_dim
    if mlp_ratio != int(mlp_ratio):
        raise CheckpointError(
            f"{where}: body tensor embed.mlp.fc1.weight {tuple(body['embed.mlp.fc1.weight'].shape)} "
            f"gives a non-integer mlp_ratio {mlp_ratio}"
        )
    k_in = body["local_physics.mlp.fc1.weight"].shape[1]
    if k_in not in (input_dim, input_dim + 3):
        raise CheckpointError(
            f"{where}: body tensor local_physics.mlp.fc1.weight has {k_in} inputs; "
            f"expected {input_dim} or {input_dim + 3} (input_dim={input_dim})"
        )
    return num_tokens, base_dim, input_dim, mlp_ratio, k_in


def _stored_num_heads(
    body: Mapping[str, torch.Tensor], base_dim: int, num_heads: int | None, presets: Mapping, where: str
) -> int | None:
    """``num_heads`` as the interaction block stores it, else (when not given) the size preset's of
    this width; None when the caller's ``num_heads`` stands."""
    if "interaction.mlp.fc2.weight" in body:
        heads_from = int(body["interaction.mlp.fc2.weight"].shape[0])
        if num_heads is not None and num_heads != heads_from:
            raise ConfigMismatchError({"num_heads": (heads_from, num_heads)}, where)
        return heads_from
    if num_heads is None:
        same = [p["num_heads"] for p in presets.values() if p["base_dim"] == base_dim]
        if not same:
            raise CheckpointError(
                f"{where}: num_heads is not stored in any tensor of a model without interaction "
                f"blocks and no OmniLearned size has width {base_dim}: pass num_heads"
            )
        return same[0]
    return None


def _mode(ckpt: Mapping[str, Any], body: Mapping[str, torch.Tensor], where: str) -> str:
    """OmniLearned's mode (classifier, generator, pretrain) from which heads and time embedding exist."""
    has_clf, has_gen = "classifier_head" in ckpt, "generator_head" in ckpt
    use_time = "time_embed.fc1.weight" in body
    mode = {(True, False, False): "classifier", (False, True, True): "generator", (True, True, True): "pretrain"}.get(
        (has_clf, has_gen, use_time)
    )
    if mode is None:
        raise CheckpointError(
            f"{where}: unsupported combination classifier_head={has_clf}, generator_head={has_gen}, "
            f"time embedding={use_time} (jetlab supports OmniLearned's classifier, generator and "
            "pretrain modes)"
        )
    return mode


def _num_classes(ckpt: Mapping[str, Any], where: str) -> int:
    """The classifier head's class count, after checking its blocks match the body's local_physics."""
    num_classes = int(ckpt["classifier_head"]["out.weight"].shape[0])
    head_blocks = _count(ckpt["classifier_head"], "in_blocks.")
    local_blocks = _count(ckpt["body"], "local_physics.in_blocks.")
    if head_blocks != local_blocks:
        raise CheckpointError(
            f"{where}: classifier_head has {head_blocks} in_blocks but the body's local_physics "
            f"has {local_blocks}; PET2 uses one num_transformers_head for both"
        )
    return num_classes


def _gen_classes(gen: Mapping[str, torch.Tensor], input_dim: int, where: str) -> int:
    """The generator head's class count (its pid embedding rows; 1 without), after checking it
    regenerates the particle features."""
    if int(gen["out.weight"].shape[0]) != input_dim:
        raise CheckpointError(
            f"{where}: generator_head tensor out.weight has {gen['out.weight'].shape[0]} outputs, "
            f"not input_dim={input_dim} (segmentation / flavour-tagging heads are not supported)"
        )
    return int(gen["pid_embed.0.weight"].shape[0]) if "pid_embed.0.weight" in gen else 1


def _check_preset(settings: OmniLearnedSettings, size: str, presets: Mapping, where: str) -> None:
    """ConfigMismatchError naming each setting that differs from OmniLearned's ``size`` preset."""
    if size not in presets:
        raise ValueError(f"size must be one of {list(presets)}, got {size!r}")
    got = settings.to_dict()
    diffs = {k: (got[k], presets[size][k]) for k in _PRESET_KEYS if got[k] != presets[size][k]}
    if diffs:
        raise ConfigMismatchError(diffs, f"{where} (OmniLearned size {size!r})")


def _fit(state: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor], part: str, where: str) -> None:
    """Every tensor of the file loads and every tensor of the model is loaded, with equal shapes."""
    problems = state_problems(state, expected)
    if problems:
        raise CheckpointError(f"{where}: {part} does not fit the inferred settings: " + "; ".join(problems))


def build_from_checkpoint(
    ckpt: Mapping[str, Any], settings: OmniLearnedSettings, *, use_ema: bool = False, where: str = "checkpoint"
) -> OmniLearnedModel:
    """An :class:`OmniLearnedModel` with every part of ``ckpt`` loaded strictly."""
    model = OmniLearnedModel(settings)
    names = dict(_PARTS)
    if use_ema:
        if "ema_body" not in ckpt:
            raise CheckpointError(f"{where}: use_ema=True but the file has no ema_body")
        names = {
            "ema_body": "body",
            "classifier_head": "classifier",
            ("ema_generator" if "ema_generator" in ckpt else "generator_head"): "generator",
        }
    for key, part in names.items():
        module = getattr(model.net, part)
        if key not in ckpt or module is None:
            continue
        state = {k: v for k, v in ckpt[key].items()}
        _fit(state, module.state_dict(), key, where)
        module.load_state_dict(state, strict=True)
    return model.eval()


def convert_omnilearned(
    src: str | os.PathLike,
    out: str | os.PathLike,
    *,
    size: str | None = None,
    use_ema: bool = False,
    num_heads: int | None = None,
    K: int | None = None,
    num_coord: int | None = None,
    deta_flip: bool | None = None,
) -> Path:
    """``src`` (.pt) -> jetlab checkpoint directory ``out`` (``model.safetensors`` + card); returns ``out``.

    The card's architecture is ``"omnilearned-pet2"``, its config the inferred settings, its
    standardizer the identity (the wrapper builds OmniLearned's inputs from jetlab's raw ones).
    ``deta_flip``: None or False = delta-eta as OmniLearned's README defines it (no sign flip);
    True = OmniLearn v1's flip for jets at eta < 0 (see ``jetlab.model.omnilearned.CONVENTIONS``).
    A file named like a published pretrain checkpoint must hold both heads.
    """
    from .card import save

    src = Path(src)
    ckpt = read_omnilearned(src)
    settings = infer_settings(
        ckpt, num_heads=num_heads, K=K, num_coord=num_coord, deta_flip=deta_flip, size=size, where=str(src)
    )
    published = {name: s for s, name in PUBLISHED.items()}
    if src.name in published and settings.mode != "pretrain":
        lacks = [k for k in ("classifier_head", "generator_head") if k not in ckpt]
        raise CheckpointError(
            f"{src}: named as the published OmniLearned {published[src.name]} pretrain checkpoint, which holds "
            f"'body', 'classifier_head' and 'generator_head', but this file has no {lacks} (keys: {sorted(ckpt)}): "
            f"an incomplete copy or another model. Delete it and run `jetlab data fetch {MANIFEST} --subset "
            f"{published[src.name]}` again; a file of your own converts under another name (a generator-only "
            "model then has no classifier head, and fine-tuning adds a new one)"
        )
    model = build_from_checkpoint(ckpt, settings, use_ema=use_ema, where=str(src))
    assumed = {k: CONVENTIONS[k] for k in ("units", "pid_absent", "add_info")}
    card = ModelCard(
        architecture=ARCHITECTURE,
        training_data=f"OmniLearned pretraining ({src.name})"
        if src.name in PUBLISHED.values()
        else f"OmniLearned ({src.name})",
        standardizer=identity_standardizer().to_dict(),
        metrics={
            "source_file": src.name,
            "source_sha256": file_checksum(src, "sha256"),
            "source_epoch": _plain(ckpt.get("epoch")),
            "weights": "ema" if use_ema else "training",
        },
        notes=(
            f"Converted from {src.name} by jetlab. Not stored in the file, assumed: K={settings.K}, "
            f"num_coord={settings.num_coord}, int_type={settings.int_type!r}, deta_flip={settings.deta_flip} "
            f"({deta_convention(settings.deta_flip)}), PID table {CONVENTIONS['pid_table']}, {assumed} "
            "(jetlab.model.omnilearned.CONVENTIONS)."
            + ("" if settings.has_classifier else f" No classifier head in {src.name}.")
        ),
    )
    return save(model, out, card)


def _plain(v: Any) -> Any:
    if isinstance(v, torch.Tensor):
        return v.item() if v.numel() == 1 else None
    return v if isinstance(v, (int, float, str, type(None))) else str(v)


# ------------------------------------------------------------------ "omnilearned:<size>"
def is_omnilearned_name(value: Any) -> bool:
    return isinstance(value, str) and value.strip().lower().startswith(PREFIX)


def converted_dir(size: str, cache_dir: str | os.PathLike | None = None) -> Path:
    """Where the converted published checkpoint of ``size`` lives (a named checkpoint ``omnilearned-<size>``)."""
    from jetlab.data.cache import resolve_cache_dir

    return resolve_cache_dir(cache_dir) / "checkpoints" / f"omnilearned-{size}"


def resolve_omnilearned(
    value: str,
    *,
    cache_dir: str | os.PathLike | None = None,
    data_dir: str | os.PathLike | None = None,
    convert: bool = True,
) -> Path:
    """``"omnilearned:small"`` -> converted checkpoint directory (converting the fetched file once).

    Raises FileNotFoundError with the commands to run when the file has not been fetched;
    ``convert=False`` only checks (parameter validation before a notebook runs).
    """
    from jetlab.data.download import data_dir as _data_dir

    size = value.strip().lower()[len(PREFIX) :]
    if size not in PUBLISHED:
        raise ValueError(
            f"checkpoint {value!r}: unknown OmniLearned size {size!r}; use {', '.join(PREFIX + s for s in PUBLISHED)}"
        )
    target = converted_dir(size, cache_dir)
    if (target / CARD_FILE).is_file() and (target / WEIGHTS_FILE).is_file():
        _warn_if_not_default_convention(target, size)
        return target
    src = Path(_data_dir(MANIFEST, data_dir)) / PUBLISHED[size]
    if not src.is_file():
        raise FileNotFoundError(
            f"checkpoint {value!r}: the published OmniLearned {size} model is not here yet (expected {src}). Run\n"
            f"    pip install 'jetlab[omnilearned]'\n    jetlab data fetch {MANIFEST} --subset {size}\n"
            f"(jetlab converts it on first use), or convert a file you have with\n"
            f"    jetlab model convert-omnilearned FILE.pt --size {size} --out {target}"
        )
    if not convert:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / (target.name + ".lock"), "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            if not (target / CARD_FILE).is_file():
                log.info("jetlab: converting %s into %s (once)", src, target)
                convert_omnilearned(src, target, size=size)
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
    return target


_WARNED: set[str] = set()


def _warn_if_not_default_convention(target: Path, size: str) -> None:
    """A cached conversion made with another delta-eta sign (e.g. by a jetlab that flipped it by default)
    is kept, since it may be a deliberate choice, but said once per process, with how to redo it."""
    from .card import read_card

    flip = read_card(target).config.get("deta_flip")
    if flip == CONVENTIONS["deta_flip"] or str(target) in _WARNED:
        return
    _WARNED.add(str(target))
    log.warning(
        "%s was converted with deta_flip=%s (%s), not jetlab's default deta_flip=%s (%s); to use the default, "
        "delete %s (jetlab converts the fetched file again) or run: jetlab model convert-omnilearned "
        "<fetched %s> --size %s --out %s",
        target,
        flip,
        deta_convention(bool(flip)),
        CONVENTIONS["deta_flip"],
        deta_convention(CONVENTIONS["deta_flip"]),
        target,
        PUBLISHED[size],
        size,
        target,
    )


__all__ = [
    "PREFIX",
    "PUBLISHED",
    "MANIFEST",
    "build_from_checkpoint",
    "convert_omnilearned",
    "converted_dir",
    "infer_settings",
    "is_omnilearned_name",
    "read_omnilearned",
    "resolve_omnilearned",
]
