"""Building blocks of PET: Fourier time embedding, kNN edge blocks, (class-)attention blocks.

Conventions used everywhere here:

* ``mask`` is a bool tensor ``(B, P)``, True for real particles. Padded slots never influence
  real ones: they are excluded as attention keys and as kNN neighbours, and every block's
  output is multiplied by the mask.
* No data-dependent Python control flow (``torch.compile`` friendly); only shapes and
  ``self.training`` decide branches.
* Distances for kNN and the Fourier embedding are computed in float32 even under bf16
  autocast (neighbour ranking in bf16 is too coarse).
"""

from __future__ import annotations

import contextlib
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

try:  # torch >= 2.3
    from torch.nn.attention import SDPBackend, sdpa_kernel
except ImportError:  # pragma: no cover - torch 2.2: PyTorch's own kernel choice
    SDPBackend = None  # type: ignore[assignment,misc]
    sdpa_kernel = None  # type: ignore[assignment]

#: Kernels PET's masked attention may use on CUDA, cuDNN left out. FlashAttention refuses an
#: ``attn_mask``, so this picks the memory-efficient kernel, which PyTorch's default (cuDNN on
#: Hopper) trailed: PET paper training at bf16 ran 6,425 vs 5,457 jets/s (1.18x), PET small
#: 7,701 vs 7,613 (benchmarks/gpu_check.py, attention section, one NVIDIA H200, torch 2.11,
#: benchmarks/README.md "GPU check"). ``None`` (or torch < 2.3) leaves the choice to PyTorch.
CUDA_ATTENTION_BACKENDS: tuple | None = (
    None if SDPBackend is None else (SDPBackend.EFFICIENT_ATTENTION, SDPBackend.FLASH_ATTENTION, SDPBackend.MATH)
)


def _attention_kernels(on_cuda: bool) -> contextlib.AbstractContextManager:
    if on_cuda and CUDA_ATTENTION_BACKENDS is not None and sdpa_kernel is not None:
        return sdpa_kernel(list(CUDA_ATTENTION_BACKENDS))
    return contextlib.nullcontext()


def masked(x: Tensor, mask: Tensor) -> Tensor:
    """Zero padded particles: ``x * mask`` in x's dtype."""
    return x * mask.unsqueeze(-1).to(x.dtype)


def occupied_width(mask: Tensor) -> int:
    """Slots up to and including the last real particle of any jet in the batch (at least 1).

    Padded slots never influence real ones (see the module docstring), so slicing a batch to
    this width leaves every real particle's output unchanged and saves the work spent on padding
    that no jet of the batch uses: jetclass-mini jets have 52 real particles on average, so a
    batch padded to 128 slots is mostly padding (``benchmarks/bench_pretrain_step.py``). This is
    the one data-dependent shape in PET (one host sync per call); the layers themselves keep
    theirs static.
    """
    p = mask.shape[1]
    if p <= 1:
        return p
    slots = torch.arange(1, p + 1, device=mask.device)
    return max(1, int((mask.any(0) * slots).max()))


def safe_key_mask(mask: Tensor) -> Tensor:
    """Key mask with slot 0 forced on for jets without real particles (avoids softmax NaN).

    The outputs of such rows are zeroed by the mask afterwards, so this only keeps them finite.
    """
    empty = ~mask.any(dim=1, keepdim=True)
    return torch.cat([mask[:, :1] | empty, mask[:, 1:]], dim=1)


class FourierEmbedding(nn.Module):
    """Sinusoidal features of a scalar in [0, 1] (diffusion time) at geometric frequencies."""

    freqs: Tensor  # registered buffer (nn.Module.__getattr__ is typed Tensor | Module)

    def __init__(self, dim: int, max_freq: float = 1000.0) -> None:
        super().__init__()
        half = dim // 2
        freqs = torch.exp(torch.linspace(0.0, math.log(max_freq), half))
        self.register_buffer("freqs", freqs, persistent=False)

    def forward(self, t: Tensor) -> Tensor:
        with torch.autocast(device_type=t.device.type, enabled=False):
            arg = t.float().reshape(-1, 1) * self.freqs.unsqueeze(0)
            return torch.cat([torch.sin(arg), torch.cos(arg)], dim=-1)


class MLP(nn.Module):
    def __init__(self, dim_in: int, hidden: int, dim_out: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim_in, hidden)
        self.fc2 = nn.Linear(hidden, dim_out)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.drop(F.gelu(self.fc1(x))))


class ScaleShift(nn.Module):
    """FiLM conditioning ``x * (1 + scale) + shift`` from a per-jet condition vector."""

    def __init__(self, cond_dim: int, dim: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(cond_dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, 2 * dim))

    def forward(self, x: Tensor, cond: Tensor, mask: Tensor) -> Tensor:
        scale, shift = self.net(cond).unsqueeze(1).chunk(2, dim=-1)
        return masked(x * (1.0 + scale) + shift, mask)


class DropPath(nn.Module):
    """Stochastic depth: drop a residual branch for whole jets during training."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = float(p)

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = (torch.rand(x.shape[0], *([1] * (x.dim() - 1)), device=x.device) >= self.p).to(x.dtype)
        return x * keep / (1.0 - self.p)


class Attention(nn.Module):
    """Multi-head attention on ``scaled_dot_product_attention`` with a key padding mask."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, q_in: Tensor, kv_in: Tensor, key_mask: Tensor) -> Tensor:
        b, nq, d = q_in.shape
        nk = kv_in.shape[1]
        h = self.num_heads
        q = self.q(q_in).view(b, nq, h, d // h).transpose(1, 2)
        k, v = self.kv(kv_in).view(b, nk, 2, h, d // h).permute(2, 0, 3, 1, 4)
        with _attention_kernels(q.is_cuda):
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask[:, None, None, :])
        return self.proj(out.transpose(1, 2).reshape(b, nq, d))


class _PreNormBlock(nn.Module):
    """Parts shared by the attention blocks: two pre-norms, attention, MLP and layer scales."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: int, layer_scale_init: float, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = MLP(dim, mlp_ratio * dim, dim, dropout)
        self.gamma1 = nn.Parameter(torch.full((dim,), float(layer_scale_init)))
        self.gamma2 = nn.Parameter(torch.full((dim,), float(layer_scale_init)))


class TransformerBlock(_PreNormBlock):
    """Pre-norm self-attention block with layer scale and stochastic depth; output masked."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: int,
        layer_scale_init: float,
        drop_path: float = 0.0,
        dropout: float = 0.0,
    ) -> None:
        super().__init__(dim, num_heads, mlp_ratio, layer_scale_init, dropout)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: Tensor, mask: Tensor, key_mask: Tensor) -> Tensor:
        h = self.norm1(x)
        x = x + self.drop_path(self.gamma1 * self.attn(h, h, key_mask))
        x = x + self.drop_path(self.gamma2 * self.mlp(self.norm2(x)))
        return masked(x, mask)


class ClassAttentionBlock(_PreNormBlock):
    """CaiT-style block: only the class token queries [class token, particles]."""

    def forward(self, cls: Tensor, x: Tensor, mask: Tensor) -> Tensor:
        tokens = torch.cat([cls, x], dim=1)
        key_mask = torch.cat([torch.ones_like(mask[:, :1]), mask], dim=1)
        h = self.norm1(tokens)
        cls = cls + self.gamma1 * self.attn(h[:, :1], h, key_mask)
        return cls + self.gamma2 * self.mlp(self.norm2(cls))


def knn(points: Tensor, mask: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """Indices ``(B, P, k)`` of the k nearest *other real* particles and their validity.

    Padded candidates and the particle itself get infinite distance; a neighbour slot is valid
    only if its distance is finite, so jets with <= k real particles just have fewer valid
    neighbours (and padding never changes which real neighbours are chosen).
    """
    b, p, _ = points.shape
    # no_grad: only the indices are used, so the (B, P, P) distances need no autograd graph
    with torch.no_grad(), torch.autocast(device_type=points.device.type, enabled=False):
        pts = points.float()
        sq = (pts * pts).sum(-1)
        d = sq.unsqueeze(2) + sq.unsqueeze(1) - 2.0 * pts @ pts.transpose(1, 2)
        eye = torch.eye(p, dtype=torch.bool, device=points.device).unsqueeze(0)
        d = d.masked_fill(~mask.unsqueeze(1) | eye, float("inf"))
        vals, idx = torch.topk(d, k, dim=-1, largest=False)
    valid = torch.isfinite(vals) & mask.unsqueeze(-1)
    return idx, valid


class EdgeBlock(nn.Module):
    """EdgeConv: MLP on [x_j - x_i, x_i] over the kNN graph, mean over valid neighbours.

    The first (linear) layer is applied per particle before gathering neighbours:
    ``W [x_j - x_i; x_i] = W_a x_j + (W_b - W_a) x_i``, which is exact and saves a k-fold
    larger matrix product.

    On CPU the k-fold edge tensors (the largest in PET: ``(B, P, k, 2D)`` through a GELU, a
    linear layer and a GELU, then their backward) are built for real centre particles only,
    packed with ``nonzero``; padded centres' outputs are zero either way. jetclass-mini batches
    of 32 jets hold about 52 real particles per jet in ~95 occupied slots, so this halves the
    edge work (``benchmarks/bench_pretrain_step.py``). Elsewhere (CUDA) the dense form is kept:
    it needs no host sync and the GPU is not bound by it.
    """

    def __init__(self, dim_in: int, dim: int, k: int) -> None:
        super().__init__()
        self.k = k
        self.dim = dim
        self.fc1 = nn.Linear(2 * dim_in, 2 * dim)
        self.fc2 = nn.Linear(2 * dim, dim)

    def forward(self, points: Tensor, features: Tensor, mask: Tensor) -> Tensor:
        b, p, c = features.shape
        k = min(self.k, p - 1)
        if k <= 0:  # shape-only branch: a single slot has no neighbours
            return features.new_zeros(b, p, self.dim)
        idx, valid = knn(points, mask, k)
        w_a, w_b = self.fc1.weight[:, :c], self.fc1.weight[:, c:]
        from_nbr = F.linear(features, w_a)  # (B, P, H)
        from_centre = F.linear(features, w_b - w_a, self.fc1.bias)
        hdim = from_nbr.shape[-1]
        offset = (torch.arange(b, device=features.device) * p).view(b, 1, 1)
        flat_idx = (idx + offset).reshape(b * p, k)
        if features.device.type != "cpu":
            nbr = from_nbr.reshape(b * p, hdim)[flat_idx.reshape(-1)].view(b, p, k, hdim)
            edge = F.gelu(self.fc2(F.gelu(nbr + from_centre.unsqueeze(2))))
            w = valid.to(edge.dtype).unsqueeze(-1)
            agg = (edge * w).sum(2) / w.sum(2).clamp_min(1.0)
            return masked(agg, mask)
        centres = mask.reshape(-1).nonzero().squeeze(1)  # (N,) flat slots of real particles
        nbr_slots = flat_idx.index_select(0, centres).reshape(-1)
        nbr = from_nbr.reshape(b * p, hdim).index_select(0, nbr_slots).view(-1, k, hdim)
        centre = from_centre.reshape(b * p, hdim).index_select(0, centres)
        edge = F.gelu(self.fc2(F.gelu(nbr + centre.unsqueeze(1))))  # (N, k, D)
        w = valid.reshape(b * p, k).index_select(0, centres).to(edge.dtype).unsqueeze(-1)
        agg = (edge * w).sum(1) / w.sum(1).clamp_min(1.0)
        return agg.new_zeros(b * p, agg.shape[-1]).index_copy(0, centres, agg).view(b, p, -1)
