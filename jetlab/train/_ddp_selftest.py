"""Tiny deterministic training run used by tests/test_ddp.py (single process or under torchrun).

``python -m jetlab.train._ddp_selftest --out result.json --batch-size B`` trains a small MLP on
synthetic jets and writes the final losses and a weight checksum (rank 0) so the 1- and 2-process
runs can be compared at equal global batch size.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch
from torch import nn


def synthetic_jetset(n: int = 256, p: int = 16, seed: int = 0):
    """Two classes of jets that differ in their particle spread (learnable in a few steps)."""
    from jetlab.data.schema import JetSet, jet_features_from_particles

    rng = np.random.default_rng(seed)
    label = rng.integers(0, 2, n)
    k = rng.integers(3, p, n)
    mask = np.arange(p)[None] < k[:, None]
    pt = np.sort(rng.exponential(20.0, (n, p)) + 1.0, axis=1)[:, ::-1]
    width = np.where(label == 1, 0.4, 0.1)[:, None]
    eta = rng.normal(0, 1, (n, p)) * width
    phi = rng.normal(0, 1, (n, p)) * width
    parts = np.stack([pt, eta, phi, pt * np.cosh(eta)], -1) * mask[..., None]
    return JetSet(parts, mask, jet_features_from_particles(parts, mask), label)


class TinyNet(nn.Module):
    def __init__(self, n_in: int = 13, n_jet: int = 4, width: int = 16, n_out: int = 2) -> None:
        super().__init__()
        self.phi = nn.Sequential(nn.Linear(n_in, width), nn.GELU(), nn.Linear(width, width))
        self.rho = nn.Sequential(nn.Linear(width + n_jet, width), nn.GELU(), nn.Linear(width, n_out))

    def forward(self, x, mask, jets):
        h = (self.phi(x) * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp_min(1)
        return self.rho(torch.cat([h, jets], -1))


def ce_loss(model: nn.Module, batch: dict):
    loss = nn.functional.cross_entropy(model(batch["x"], batch["mask"], batch["jets"]), batch["label"])
    return loss, {"ce": float(loss.detach())}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--checkpoint-dir", default=None)
    args = ap.parse_args(argv)
    from jetlab.data.torchdata import JetDataset
    from jetlab.train.trainer import Trainer

    train = JetDataset(synthetic_jetset(256, seed=0))
    val = JetDataset(synthetic_jetset(64, seed=1), standardizer=train.standardizer)
    torch.manual_seed(0)
    model = TinyNet()
    trainer = Trainer(model, ce_loss, train, val, lr=3e-3, epochs=args.epochs, batch_size=args.batch_size,
                      warmup_steps=2, device="cpu", seed=0, progress=False, checkpoint_dir=args.checkpoint_dir,
                      checkpoint_every=4, find_unused_parameters=False)
    hist = trainer.fit()
    result = {
        "rank": trainer.ctx.rank,
        "world_size": trainer.ctx.world_size,
        "steps": len(hist.steps),
        "train_loss": hist.train_loss,
        "val_loss": hist.val_loss,
        "weights": [float(p.detach().double().sum()) for p in model.parameters()],
    }
    from jetlab.train import ddp

    if trainer.is_main:
        with open(args.out, "w") as f:
            json.dump(result, f)
    ddp.barrier(trainer.ctx)
    ddp.cleanup(trainer.ctx)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
