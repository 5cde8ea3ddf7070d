"""Throughput, peak memory and FLOPs of jetlab PET and OmniLearned vs weaver-core's ParticleTransformer / ParticleNet.

All models see identical inputs: the same batch size, number of particle slots, 13 particle
features and the same masks (front-packed, multiplicities between P/2 and P, one full jet so
weaver's trimming cannot shorten the batch). ParT also gets (px, py, pz, E) for its pair
features, as in its paper. OmniLearned's PET2 (small / medium, the published pretraining set-up:
interaction, PID, 4 track features; as a 10-class classifier through jetlab's wrapper) gets
jetlab's raw inputs of the same particles (it builds its own coordinates from them). Training =
forward + cross entropy + backward + AdamW step.

Peak memory: on CUDA ``torch.cuda.max_memory_allocated`` over warm-up + timed loop; on CPU the
increase of the process's peak RSS over warm-up + timed loop, each (model, mode) measured in a fresh
subprocess so the high-water marks do not mix.

    python benchmarks/bench_model.py                       # small CPU run, ~2 minutes
    python benchmarks/bench_model.py --device cuda --batch-size 256 --particles 128 --iters 20
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

MODELS = ("pet-tiny", "pet-paper", "pet-paper-pretrain", "part", "particlenet", "omnilearned-small", "omnilearned-medium")
PEER = "part"


def make_inputs(batch: int, particles: int, device: str, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    n = torch.randint(particles // 2, particles + 1, (batch,), generator=g)
    n[0] = particles
    mask = torch.arange(particles).unsqueeze(0) < n.unsqueeze(1)
    m = mask.unsqueeze(-1).float()
    x = torch.randn(batch, particles, 13, generator=g) * m
    pt = torch.rand(batch, particles, generator=g) * 50 + 1
    eta, phi = x[..., 0] * 0.2, x[..., 1] * 0.2
    p4 = torch.stack([pt * torch.cos(phi), pt * torch.sin(phi), pt * torch.sinh(eta), pt * torch.cosh(eta)], -1) * m
    # jetlab's raw inputs of the same particles (what an OmniLearned checkpoint's wrapper reads)
    raw = torch.zeros(batch, particles, 13)
    raw[..., 0], raw[..., 1], raw[..., 3], raw[..., 5] = eta, phi, pt.log(), (pt * torch.cosh(eta)).log()
    raw[..., 6] = torch.hypot(eta, phi)
    kind = torch.randint(0, 5, (batch, particles), generator=g)
    raw[..., 8:13] = F.one_hot(kind, 5).float()
    raw[..., 7] = torch.where((kind == 0) | (kind >= 3), 1.0, 0.0)
    out = {
        "x": x, "mask": mask, "jets": torch.randn(batch, 4, generator=g), "p4": p4, "raw": raw * m,
        "label": torch.randint(0, 10, (batch,), generator=g), "weight": torch.ones(batch),
    }
    return {k: v.to(device) for k, v in out.items()}


def build(name: str, num_classes: int = 10):
    """(model, forward(batch) -> logits, train_loss(batch) -> scalar)."""
    if name.startswith("pet"):
        from jetlab.model import PET, PETConfig, classification_loss, pretraining_loss

        cfg = (PETConfig.tiny if name == "pet-tiny" else PETConfig.paper)(num_classes=num_classes)
        model = PET(cfg)
        fwd = lambda b: model(b["x"], b["mask"], b["jets"])  # noqa: E731
        if name.endswith("pretrain"):
            loss = lambda b: pretraining_loss(model, b)[0]  # noqa: E731
        else:
            loss = lambda b: classification_loss(model, b)  # noqa: E731
        return model, fwd, loss
    if name.startswith("omnilearned"):
        from jetlab.model.omnilearned import OmniLearnedModel, OmniLearnedSettings, size_presets

        size = name.split("-")[1]
        model = OmniLearnedModel(OmniLearnedSettings(**size_presets()[size], mode="classifier", num_classes=num_classes,
                                                     use_int=True, pid=True, add_info=True, size=size))

        def fwd(b):
            return model(b["raw"], b["mask"], b["jets"])
    elif name == "part":
        from weaver.nn.model.ParticleTransformer import ParticleTransformer

        # the ParT paper configuration (weaver defaults) with its 4 pair features
        model = ParticleTransformer(input_dim=13, num_classes=num_classes, pair_input_dim=4, use_amp=False)

        def fwd(b):
            return model(b["x"].transpose(1, 2), v=b["p4"].transpose(1, 2), mask=b["mask"].unsqueeze(1).float())
    elif name == "particlenet":
        from weaver.nn.model.ParticleNet import ParticleNet

        # the ParticleNet paper configuration
        model = ParticleNet(13, num_classes, conv_params=[(16, (64, 64, 64)), (16, (128, 128, 128)), (16, (256, 256, 256))],
                            fc_params=[(256, 0.1)])

        def fwd(b):
            m = b["mask"].unsqueeze(1).float()
            return model(b["x"][..., :2].transpose(1, 2) * m, b["x"].transpose(1, 2) * m, m)
    else:
        raise SystemExit(f"unknown model {name!r}; choose from {MODELS}")
    return model, fwd, (lambda b: F.cross_entropy(fwd(b), b["label"]))


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def measure(name: str, mode: str, args) -> dict:
    torch.manual_seed(0)
    model, fwd, loss_fn = build(name)
    model.to(args.device)
    batch = make_inputs(args.batch_size, args.particles, args.device)
    n_params = sum(p.numel() for p in model.parameters())
    if mode == "infer":
        model.eval()

        def step():
            with torch.no_grad():
                fwd(batch)
    else:
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

        def step():
            opt.zero_grad(set_to_none=True)
            loss_fn(batch).backward()
            opt.step()

    sync(args.device)
    if args.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # model + inputs built, nothing run
    for _ in range(args.warmup):
        step()
    t0 = time.perf_counter()
    for _ in range(args.iters):
        step()
    sync(args.device)
    dt = time.perf_counter() - t0
    if args.device.startswith("cuda"):
        peak_mb = (torch.cuda.max_memory_allocated() - base) / 2**20
    else:
        peak_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024  # KiB on Linux
    flops = None
    if mode == "infer":
        model.eval()
        # grad mode on: FlopCounterMode's module tracker fails under no_grad in some torch versions
        with FlopCounterMode(display=False) as fc:
            fwd(batch)
        flops = fc.get_total_flops() / args.batch_size
    return {"model": name, "mode": mode, "jets_per_s": args.iters * args.batch_size / dt,
            "peak_mb": peak_mb, "params": n_params, "flops_per_jet": flops}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--particles", type=int, default=48)
    ap.add_argument("--iters", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    ap.add_argument("--worker", nargs=2, metavar=("MODEL", "MODE"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.worker:
        print("RESULT " + json.dumps(measure(args.worker[0], args.worker[1], args)))
        return 0

    results = []
    base_cmd = [sys.executable, __file__, "--device", args.device, "--batch-size", str(args.batch_size),
                "--particles", str(args.particles), "--iters", str(args.iters), "--warmup", str(args.warmup),
                "--threads", str(args.threads)]
    for name in args.models:
        for mode in ("infer", "train"):
            if name == "pet-paper-pretrain" and mode == "infer":
                continue
            proc = subprocess.run(base_cmd + ["--worker", name, mode], capture_output=True, text=True)
            lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
            if proc.returncode or not lines:
                print(f"{name} {mode} failed:\n{proc.stderr[-2000:]}", file=sys.stderr)
                continue
            r = json.loads(lines[-1][7:])
            results.append(r)
            print(f"  measured {name:<19s} {mode:<5s} {r['jets_per_s']:9.1f} jets/s", flush=True)

    print(f"\ndevice={args.device} threads={args.threads} batch={args.batch_size} particles={args.particles} "
          f"features=13 iters={args.iters} (torch {torch.__version__})")
    peer = {r["mode"]: r for r in results if r["model"] == PEER}
    hdr = f"{'model':<19s} {'mode':<5s} {'params':>10s} {'jets/s':>9s} {'x ParT':>7s} {'peak MB':>8s} {'MFLOP/jet':>10s}"
    print(hdr)
    print("-" * len(hdr))
    for r in results:
        ratio = r["jets_per_s"] / peer[r["mode"]]["jets_per_s"] if r["mode"] in peer else float("nan")
        fl = f"{r['flops_per_jet'] / 1e6:10.1f}" if r["flops_per_jet"] is not None else f"{'':>10s}"
        print(f"{r['model']:<19s} {r['mode']:<5s} {r['params']:>10,d} {r['jets_per_s']:9.1f} {ratio:7.2f} "
              f"{r['peak_mb']:8.1f} {fl}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
