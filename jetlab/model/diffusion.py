"""v-prediction diffusion on the generated particle inputs (deta, dphi and a pT coordinate).

Schedule: cosine in log-SNR, ``logsnr(t) = -2 log tan(a t + b)``, with ``a, b`` chosen so that
logsnr runs from +20 (t = 0, clean) to -20 (t = 1, pure noise); ``alpha^2 = sigmoid(logsnr)``,
``sigma^2 = sigmoid(-logsnr)``. Noisy particles ``z = alpha x + sigma eps``; the model predicts
``v = alpha eps - sigma x``. Only real particles are noised; padded slots stay exactly zero.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Mapping, overload

import numpy as np
import torch
from torch import Tensor

from .layers import occupied_width

if TYPE_CHECKING:  # pragma: no cover
    from jetlab.data.preprocess import Standardizer

    from .pet import PET

LOGSNR_MIN = -20.0
LOGSNR_MAX = 20.0
_B = math.atan(math.exp(-0.5 * LOGSNR_MAX))
_A = math.atan(math.exp(-0.5 * LOGSNR_MIN)) - _B


def logsnr_schedule(t: Tensor) -> Tensor:
    """Cosine log-SNR at time ``t`` in [0, 1], clipped to [-20, 20]."""
    t = t.float()
    return (-2.0 * torch.log(torch.tan(_A * t + _B))).clamp(LOGSNR_MIN, LOGSNR_MAX)


def alpha_sigma(t: Tensor) -> tuple[Tensor, Tensor]:
    """``(alpha, sigma)`` with ``alpha^2 + sigma^2 = 1`` from the log-SNR at ``t``."""
    logsnr = logsnr_schedule(t)
    return torch.sigmoid(logsnr).sqrt(), torch.sigmoid(-logsnr).sqrt()


def _bcast(a: Tensor) -> Tensor:
    return a.view(-1, 1, 1)


def noise_particles(
    x0: Tensor, mask: Tensor, t: Tensor, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(z_t, v_target, alpha, sigma)`` for clean ``x0 (B, P, G)`` at per-jet times ``t (B,)``."""
    m = mask.unsqueeze(-1).to(x0.dtype)
    eps = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype) * m
    alpha, sigma = alpha_sigma(t)
    a, s = _bcast(alpha).to(x0.dtype), _bcast(sigma).to(x0.dtype)
    z = (a * x0 + s * eps) * m
    v = (a * eps - s * x0) * m
    return z, v, alpha, sigma


def _masked_mse_per_jet(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    m = mask.unsqueeze(-1).to(pred.dtype)
    se = ((pred.float() - target.float()) ** 2 * m).sum((1, 2))
    return se / (m.sum((1, 2)) * pred.shape[-1]).clamp_min(1.0)


def _weighted_mean(values: Tensor, weight: Tensor | None) -> Tensor:
    if weight is None:
        return values.mean()
    w = weight.to(values.dtype)
    return (values * w).sum() / w.sum().clamp_min(1e-12)


def drop_labels(
    model: "PET", labels: Tensor | None, p: float, generator: torch.Generator | None = None
) -> Tensor | None:
    """Replace labels by the null label with probability ``p`` (classifier-free guidance training)."""
    if labels is None:
        return None
    labels = labels.long()
    if p <= 0.0:
        return labels
    drop = torch.rand(labels.shape, generator=generator, device=labels.device) < p
    return torch.where(drop, torch.full_like(labels, model.null_label), labels)


def diffusion_step(
    model: "PET", batch: Mapping[str, Any], generator: torch.Generator | None = None
) -> dict[str, Tensor]:
    """One noised forward pass shared by the v-loss and the noised-input classifier loss.

    Returns ``v_loss_per_jet``, ``hidden`` (body output on noisy inputs, sliced to the batch's
    occupied width, :func:`~jetlab.model.layers.occupied_width`), ``alpha``, ``t``. The noise is
    drawn at the full padded shape before slicing, so a seed gives the same draws as unsliced.
    """
    x, mask, jets = batch["x"], batch["mask"].bool(), batch["jets"]
    b = x.shape[0]
    t = torch.rand(b, generator=generator, device=x.device)
    z, v_target, alpha, _ = noise_particles(model.generated_features(x), mask, t, generator)
    labels = batch.get("label")
    if labels is not None and model.training:
        labels = drop_labels(model, labels, model.config.label_drop, generator)
    width = occupied_width(mask)
    z, v_target, mask = z[:, :width], v_target[:, :width], mask[:, :width]
    hidden = model.body(model.generator_inputs(z), mask, t)
    v = model.generator(hidden, mask, jets, t, labels)
    return {"v_loss_per_jet": _masked_mse_per_jet(v, v_target, mask), "hidden": hidden, "alpha": alpha, "t": t}


def v_loss(model: "PET", batch: Mapping[str, Any], generator: torch.Generator | None = None) -> Tensor:
    """Per-jet-weighted mean squared error of the v-prediction over real particles."""
    out = diffusion_step(model, batch, generator)
    return _weighted_mean(out["v_loss_per_jet"], batch.get("weight"))


@torch.no_grad()
def sample(
    model: "PET",
    mask: Tensor,
    jets: Tensor,
    labels: Tensor | None = None,
    steps: int = 32,
    generator: torch.Generator | None = None,
    guidance: float = 0.0,
    known: Tensor | None = None,
    keep: Tensor | None = None,
) -> Tensor:
    """Deterministic DDIM sampling of ``(B, P, num_gen_features)`` standardised particle inputs.

    ``guidance`` w > 0 uses classifier-free guidance ``(1 + w) v_cond - w v_null`` (needs labels).
    Inpainting: the slots (``keep`` (B, P)) or single coordinates (``keep`` (B, P, num_gen_features))
    where ``keep`` is True follow ``known`` (their clean values, noised to each step's level with one
    fixed noise draw) and end exactly at them, so the rest is drawn given them. Padded slots are
    exactly zero. Same ``generator`` seed -> same sample.
    """
    if steps < 1:
        raise ValueError(f"sample: steps must be >= 1, got {steps}")
    if guidance != 0.0 and labels is None:
        raise ValueError("sample: guidance != 0 needs class labels")
    mask = mask.bool()
    b, p = mask.shape
    g = model.config.num_gen_features
    m = mask.unsqueeze(-1).float()
    dev = jets.device
    z = torch.randn((b, p, g), generator=generator, device=dev) * m
    inpaint: tuple[Tensor, Tensor, Tensor] | None = None  # (where, clean values, their fixed noise)
    if keep is not None:
        if known is None or known.shape != z.shape or keep.shape not in (mask.shape, z.shape):
            raise ValueError(
                f"sample: inpainting needs known {tuple(z.shape)} and keep {tuple(mask.shape)} or {tuple(z.shape)}"
            )
        fixed = (keep.bool() if keep.dim() == 3 else keep.bool().unsqueeze(-1)) & mask.unsqueeze(-1)
        inpaint = (fixed, known.to(z.dtype), torch.randn((b, p, g), generator=generator, device=dev))
        a_1, s_1 = (_bcast(u) for u in alpha_sigma(torch.ones(b, device=dev)))
        z = torch.where(fixed, a_1 * inpaint[1] + s_1 * inpaint[2], z)
    times = torch.linspace(1.0, 0.0, steps + 1, device=dev)
    for i in range(steps):
        t = times[i].expand(b)
        s = times[i + 1].expand(b)
        v = model.denoise(z, mask, jets, t, labels).float()
        if guidance != 0.0:
            v_null = model.denoise(z, mask, jets, t, None).float()
            v = (1.0 + guidance) * v - guidance * v_null
        a_t, s_t = (_bcast(u) for u in alpha_sigma(t))
        a_s, s_s = (_bcast(u) for u in alpha_sigma(s))
        x_hat = a_t * z - s_t * v
        eps_hat = s_t * z + a_t * v
        z = (a_s * x_hat + s_s * eps_hat) * m
        if inpaint is not None:
            fixed, clean, clean_eps = inpaint
            z = torch.where(fixed, a_s * clean + s_s * clean_eps, z)
    if inpaint is not None:
        z = torch.where(inpaint[0], inpaint[1], z)
    return z


def _pt_input_index(pt_input: str) -> int:
    from .config import GEN_PT_INPUTS

    if pt_input not in GEN_PT_INPUTS:
        raise ValueError(f"pt_input must be one of {list(GEN_PT_INPUTS)}, got {pt_input!r}")
    return GEN_PT_INPUTS[pt_input]


def generated_ptrel(pt_coord: Tensor, jet_pt: Tensor, pt_input: str = "log_1m_ptrel") -> Tensor:
    """pT / pT_jet of generated particles from their (unstandardised) pT coordinate, unclipped."""
    if _pt_input_index(pt_input) == 2:
        return -torch.expm1(pt_coord.clamp(max=0.0))
    return torch.exp(pt_coord) / jet_pt.clamp_min(1e-8)


def balance_ptrel(ptrel: Tensor, dphi: Tensor, mask: Tensor) -> Tensor:
    """pT / pT_jet rescaled per jet so that the particles' transverse momenta add up to the jet's.

    The generator conditions on the jet pT but nothing makes the generated particles sum to it;
    an overall pT scale error of the particles also scales the jet mass. Dividing by
    ``|sum_i ptrel_i exp(i dphi_i)|`` (over real particles) restores the conditioned jet pT exactly.
    """
    m = mask.to(ptrel.dtype)
    sx = (ptrel * torch.cos(dphi) * m).sum(-1, keepdim=True)
    sy = (ptrel * torch.sin(dphi) * m).sum(-1, keepdim=True)
    return ptrel / torch.hypot(sx, sy).clamp_min(1e-6)


@overload
def complete_particle_inputs(
    generated: Tensor,
    mask: Tensor | np.ndarray,
    jets: Tensor | np.ndarray,
    standardizer: "Standardizer",
    pt_input: str = ...,
) -> Tensor: ...
@overload
def complete_particle_inputs(
    generated: np.ndarray,
    mask: Tensor | np.ndarray,
    jets: Tensor | np.ndarray,
    standardizer: "Standardizer",
    pt_input: str = ...,
) -> np.ndarray: ...
def complete_particle_inputs(
    generated: Tensor | np.ndarray,
    mask: Tensor | np.ndarray,
    jets: Tensor | np.ndarray,
    standardizer: "Standardizer",
    pt_input: str = "log_1m_ptrel",
) -> Tensor | np.ndarray:
    """All 13 standardised particle inputs from generated standardised (deta, dphi, pT coordinate).

    ``pt_input`` names the third generated input (:attr:`PETConfig.gen_pt_input`: ``log_1m_ptrel``
    or ``log_pt``). Particles are treated as massless (E = pT cosh eta); charge and PID flags are
    zero. ``jets`` are the standardised jet inputs (pT, eta, mass, multiplicity). Returns the same
    array type as ``generated``.
    """
    from jetlab.data.preprocess import PARTICLE_INPUTS

    as_numpy = isinstance(generated, np.ndarray)
    gen = torch.as_tensor(np.asarray(generated) if as_numpy else generated).double()
    msk = torch.as_tensor(np.asarray(mask) if isinstance(mask, np.ndarray) else mask).bool()
    jt = torch.as_tensor(np.asarray(jets) if isinstance(jets, np.ndarray) else jets).double().to(gen.device)
    msk = msk.to(gen.device)
    if gen.shape[-1] < 3 or gen.shape[:2] != msk.shape:
        raise ValueError(
            f"complete_particle_inputs: generated must be (B, P, >=3) matching mask {tuple(msk.shape)}, "
            f"got {tuple(gen.shape)}"
        )
    pm = torch.as_tensor(standardizer.particle_mean, dtype=torch.float64, device=gen.device)
    ps = torch.as_tensor(standardizer.particle_std, dtype=torch.float64, device=gen.device)
    jm = torch.as_tensor(standardizer.jet_mean, dtype=torch.float64, device=gen.device)
    js = torch.as_tensor(standardizer.jet_std, dtype=torch.float64, device=gen.device)
    idx = [0, 1, _pt_input_index(pt_input)]
    raw = gen[..., :3] * ps[idx] + pm[idx]
    deta, dphi, pt_coord = raw.unbind(-1)
    jraw = jt * js + jm
    jpt, jeta, jmass = (jraw[:, i : i + 1] for i in range(3))
    eps = 1e-8
    ptrel = generated_ptrel(pt_coord, jpt, pt_input).clamp(1e-9, 1.0 - 1e-6)
    pt = ptrel * jpt.clamp_min(eps)
    sign = torch.where(jeta < 0, -1.0, 1.0)
    eta = jeta + sign * deta
    e = pt * torch.cosh(eta)
    je = torch.sqrt((jpt * torch.cosh(jeta)) ** 2 + jmass.clamp_min(0.0) ** 2)
    erel = (e / je.clamp_min(eps)).clamp(0.0, 1.0 - 1e-6)
    out = torch.zeros(gen.shape[:2] + (len(PARTICLE_INPUTS),), dtype=torch.float64, device=gen.device)
    out[..., 0] = deta
    out[..., 1] = dphi
    out[..., 2] = torch.log1p(-ptrel)
    out[..., 3] = torch.log(pt.clamp_min(eps))
    out[..., 4] = torch.log1p(-erel)
    out[..., 5] = torch.log(e.clamp_min(eps))
    out[..., 6] = torch.hypot(deta, dphi)
    std = (out - pm) / ps
    std[..., 7:] = 0.0
    std = torch.where(msk.unsqueeze(-1), std, torch.zeros_like(std)).float()
    if isinstance(generated, np.ndarray):
        return std.cpu().numpy()
    return std.to(generated.dtype)
