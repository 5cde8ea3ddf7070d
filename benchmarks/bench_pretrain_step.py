"""Where a pretraining step's time goes, and jets/s before and after slicing batches to their occupied width.

The step is the one ``jetlab pretrain`` runs (``Trainer._train_step`` with ``pretraining_loss``,
both heads, the CPU recipe's diffusion weight 3: forward, backward, gradient clipping, AdamW,
scheduler), on batches of generated jetclass-mini jets (``--n-jets`` cached jets, resolved like
``jetlab pretrain --data jetclass-mini``) padded or truncated to each particle count P.

* **before / after** (the peer, measured in the same run, interleaved, ``--repeats`` times):
  *before* is the pre-change code, patched back in: PET ran every layer over all P padded slots
  (``occupied_width`` returns the full width), and the old ``knn`` and ``EdgeBlock.forward``
  (copied here verbatim) built distances with autograd and edge tensors for every slot;
  *after* is jetlab now: PET slices each batch to the slots up to the last real particle of
  any of its jets (``jetlab.model.layers.occupied_width``), kNN runs without autograd and, on
  CPU, the edge convolution runs on real centre particles only. Both drop only padding work.
* a grid over model size (tiny, small), P, batch size and torch intra-op threads (1, 2);
* a per-component breakdown of the forward pass (embedding, kNN, edge convolution, body
  attention blocks, classifier head (clean and noisy), generator head, loss and glue) plus
  backward and optimizer, from manual timers around each module (CPU ops are synchronous);
* ``--under-load``: the same step with 1 and 2 threads while K busy-loop processes occupy the
  cores (``jetlab pretrain``'s 2.3 s a step on 2 loaded cores), a few steps each.

The JSON (``--json``, repo-relative) holds every timing; the summary recommends the foundation
recipe's model size, particle count and batch size from it, with the jet-epochs that fit
``--budget-hours`` of training on this machine::

    JETLAB_CACHE=/tmp/jlcache python benchmarks/bench_pretrain_step.py --json benchmarks/results/pretrain_step.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
from result_paths import portable_args  # benchmarks/, the script's own folder

import jetlab.model.diffusion as diffusion_module
import jetlab.model.layers as layers_module
import jetlab.model.pet as pet_module
from jetlab.model import PET, LossWeights, PETConfig, pretraining_loss
from jetlab.train.trainer import Trainer

COMPONENTS = (
    "embedding",
    "knn",
    "edge_conv",
    "body_attention",
    "classifier_head",
    "generator_head",
    "loss_and_glue",
    "backward",
    "optimizer",
)


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()
    except OSError:  # pragma: no cover
        return " ".join(f"{x:.2f}" for x in os.getloadavg())


# ---------------------------------------------------------------------------- the peer
def _full_width(mask: torch.Tensor) -> int:
    """The code before the change: every layer ran over all padded slots."""
    return int(mask.shape[1])


def old_knn(points: torch.Tensor, mask: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """jetlab.model.layers.knn before the change (distances built with autograd), copied verbatim."""
    b, p, _ = points.shape
    with torch.autocast(device_type=points.device.type, enabled=False):
        pts = points.float()
        sq = (pts * pts).sum(-1)
        d = sq.unsqueeze(2) + sq.unsqueeze(1) - 2.0 * pts @ pts.transpose(1, 2)
        eye = torch.eye(p, dtype=torch.bool, device=points.device).unsqueeze(0)
        d = d.masked_fill(~mask.unsqueeze(1) | eye, float("inf"))
        vals, idx = torch.topk(d, k, dim=-1, largest=False)
    valid = torch.isfinite(vals) & mask.unsqueeze(-1)
    return idx, valid


def old_edge_forward(self, points: torch.Tensor, features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """jetlab.model.layers.EdgeBlock.forward before the change (edges for every slot), copied verbatim."""
    import torch.nn.functional as F

    b, p, c = features.shape
    k = min(self.k, p - 1)
    if k <= 0:
        return features.new_zeros(b, p, self.dim)
    idx, valid = layers_module.knn(points, mask, k)
    w_a, w_b = self.fc1.weight[:, :c], self.fc1.weight[:, c:]
    from_nbr = F.linear(features, w_a)  # (B, P, H)
    from_centre = F.linear(features, w_b - w_a, self.fc1.bias)
    hdim = from_nbr.shape[-1]
    offset = (torch.arange(b, device=features.device) * p).view(b, 1, 1)
    nbr = from_nbr.reshape(b * p, hdim)[(idx + offset).reshape(-1)].view(b, p, k, hdim)
    edge = F.gelu(self.fc2(F.gelu(nbr + from_centre.unsqueeze(2))))
    w = valid.to(edge.dtype).unsqueeze(-1)
    agg = (edge * w).sum(2) / w.sum(2).clamp_min(1.0)
    return layers_module.masked(agg, mask)


@contextlib.contextmanager
def implementation(name: str) -> Iterator[None]:
    """``"before"``: PET as it was (every layer over all P slots, old kNN and edge convolution);
    ``"after"``: jetlab as is."""
    if name == "after":
        yield
        return
    saved = (
        pet_module.occupied_width,
        diffusion_module.occupied_width,
        layers_module.knn,
        layers_module.EdgeBlock.forward,
    )
    pet_module.occupied_width = diffusion_module.occupied_width = _full_width
    layers_module.knn = old_knn
    layers_module.EdgeBlock.forward = old_edge_forward  # type: ignore[method-assign]
    try:
        yield
    finally:
        (
            pet_module.occupied_width,
            diffusion_module.occupied_width,
            layers_module.knn,
            layers_module.EdgeBlock.forward,
        ) = saved


# ---------------------------------------------------------------------------- data
def jet_batches(n_jets: int, seed: int, particles: int, batch: int, n_batches: int) -> tuple[list[dict], dict]:
    """``n_batches`` random batches of cached jetclass-mini jets padded/truncated to ``particles`` slots."""
    from jetlab.data.sources import resolve
    from jetlab.data.torchdata import JetDataset

    js = resolve("jetclass-mini", n_jets=n_jets, seed=seed, progress=False).read()
    ds = JetDataset(js, max_particles=min(particles, js.max_particles))
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_batches):
        b = ds.__getitems__(rng.choice(len(ds), size=batch, replace=False).tolist())
        pad = particles - b["x"].shape[1]
        if pad > 0:
            b["x"] = torch.nn.functional.pad(b["x"], (0, 0, 0, pad))
            b["mask"] = torch.nn.functional.pad(b["mask"], (0, pad))
        out.append(b)
    n = js.mask.sum(1)
    stats = {
        "jets": int(len(n)),
        "max_particles_in_file": int(js.max_particles),
        "mean_multiplicity": float(n.mean()),
        "multiplicity_percentiles": {str(q): float(np.percentile(n, q)) for q in (50, 90, 95, 99)},
        "max_multiplicity": int(n.max()),
    }
    return out, stats


def truncation(n_jets: int, seed: int, particle_counts: list[int]) -> dict[str, dict[str, float]]:
    """Per P: fraction of jets with more real particles than P, and of particles (and pT) cut."""
    from jetlab.data.sources import resolve

    js = resolve("jetclass-mini", n_jets=n_jets, seed=seed, progress=False).read()
    n = js.mask.sum(1)
    pt = np.where(js.mask, js.particles[..., 0], 0.0)  # schema: pT first, pT-ordered, front-packed
    out = {}
    for p in particle_counts:
        row = {"jets_truncated": float((n > p).mean()), "particles_cut": float(np.clip(n - p, 0, None).sum() / n.sum())}
        row["pt_fraction_cut"] = float(pt[:, p:].sum() / max(pt.sum(), 1e-12))
        out[str(p)] = row
    return out


# ---------------------------------------------------------------------------- timing
def make_trainer(size: str, batch: int, seed: int = 0) -> Trainer:
    """The Trainer ``jetlab pretrain --model SIZE --batch-size B --diffusion-weight 3`` builds (data unused)."""
    import functools

    torch.manual_seed(seed)
    model = PET(PETConfig.preset(size, num_classes=5))
    loss_fn = functools.partial(pretraining_loss, weights=LossWeights(diffusion=3.0))
    dummy = [{"x": torch.zeros(1)}] * 1000
    tr = Trainer(
        model,
        loss_fn,
        dummy,
        None,
        lr=1e-3,
        epochs=1,
        batch_size=batch,
        device="cpu",
        progress=False,
        checkpoint_every=None,
        seed=seed,
    )
    tr._setup()
    tr.model.train()
    return tr


def time_steps(tr: Trainer, batches: list[dict], steps: int, start: int, cpu: list[float] | None = None) -> list[float]:
    """Wall seconds of each step; ``cpu`` collects the CPU seconds this process spent on each
    (with 1 thread: what the step would take on a core of its own, whatever the load)."""
    out = []
    for i in range(steps):
        b = batches[(start + i) % len(batches)]
        c0, t0 = time.process_time(), time.perf_counter()
        tr._train_step(b)
        out.append(time.perf_counter() - t0)
        if cpu is not None:
            cpu.append(time.process_time() - c0)
    return out


class Timers:
    """Accumulated seconds per component from wrappers around module forwards and ``knn``."""

    def __init__(self) -> None:
        self.sec: dict[str, float] = dict.fromkeys(COMPONENTS, 0.0)
        self._undo: list[Callable[[], None]] = []

    def wrap(self, obj: Any, attr: str, component: str, subtract: str | None = None) -> None:
        original = getattr(obj, attr)

        def timed(*args, **kwargs):
            before_sub = self.sec[subtract] if subtract else 0.0
            t0 = time.perf_counter()
            out = original(*args, **kwargs)
            dt = time.perf_counter() - t0
            inner = (self.sec[subtract] - before_sub) if subtract else 0.0
            self.sec[component] += dt - inner
            return out

        setattr(obj, attr, timed)
        self._undo.append(lambda: setattr(obj, attr, original))

    def undo(self) -> None:
        for u in reversed(self._undo):
            u()
        self._undo.clear()


def breakdown(tr: Trainer, batches: list[dict], steps: int) -> dict[str, float]:
    """Mean seconds per step per component (forward parts, backward, optimizer)."""
    model: PET = tr.model  # type: ignore[assignment]
    timers = Timers()
    body = model.body
    for m in (body.embed, body.time_embed, body.time_film):
        timers.wrap(m, "forward", "embedding")
    timers.wrap(layers_module, "knn", "knn")
    for blk in body.local:
        timers.wrap(blk, "forward", "edge_conv", subtract="knn")
    for blk in body.blocks:
        timers.wrap(blk, "forward", "body_attention")
    timers.wrap(model.classifier, "forward", "classifier_head")
    timers.wrap(model.generator, "forward", "generator_head")
    optimizer, scheduler, _ = tr._optimization()
    total_fwd = 0.0
    try:
        for i in range(steps):
            b = batches[i % len(batches)]
            parts_before = sum(timers.sec[c] for c in COMPONENTS if c not in ("loss_and_glue", "backward", "optimizer"))
            t0 = time.perf_counter()
            loss, _ = tr.loss_fn(model, b)
            t1 = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            t2 = time.perf_counter()
            torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.grad is not None], tr.clip_grad or 1.0)
            optimizer.step()
            scheduler.step()
            t3 = time.perf_counter()
            parts = sum(timers.sec[c] for c in COMPONENTS if c not in ("loss_and_glue", "backward", "optimizer"))
            timers.sec["loss_and_glue"] += (t1 - t0) - (parts - parts_before)
            timers.sec["backward"] += t2 - t1
            timers.sec["optimizer"] += t3 - t2
            total_fwd += t1 - t0
    finally:
        timers.undo()
    return {k: v / steps for k, v in timers.sec.items()}


# ---------------------------------------------------------------------------- main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", nargs="+", default=["tiny", "small"])
    ap.add_argument("--particles", nargs="+", type=int, default=[32, 64, 96, 128, 150])
    ap.add_argument("--batches", nargs="+", type=int, default=[32], help="batch sizes of the full grid")
    ap.add_argument("--big-batch", type=int, default=128, help="also measured at P 64/96/128 with 1 thread (0: off)")
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    ap.add_argument(
        "--multi-thread-particles",
        nargs="+",
        type=int,
        default=[64, 128],
        help="particle counts measured with threads > 1 (on loaded cores such a step can take 10 s)",
    )
    ap.add_argument("--steps", type=int, default=3, help="timed steps per variant and repeat")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved before/after repeats")
    ap.add_argument("--breakdown-steps", type=int, default=3)
    ap.add_argument("--n-jets", type=int, default=400, help="generated jetclass-mini jets the batches come from")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument(
        "--under-load", type=int, default=2, metavar="K", help="busy-loop processes for the load test (0: skip)"
    )
    ap.add_argument("--budget-hours", type=float, default=2.0)
    ap.add_argument("--recipe-jets", type=int, default=100_000)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    t_start = time.perf_counter()
    result: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}",
        "uptime_before": uptime(),
        "settings": portable_args(args),
        "grid": [],
        "breakdown": [],
    }
    print(f"machine: {result['machine']}\nuptime: {result['uptime_before']}", flush=True)
    default_threads = torch.get_num_threads()

    result["truncation"] = truncation(args.n_jets, args.seed, args.particles)
    configs = [
        (s, p, b, th)
        for s in args.sizes
        for b in args.batches
        for p in args.particles
        for th in args.threads
        if th == 1 or p in args.multi_thread_particles
    ]
    if args.big_batch:
        configs += [(s, p, args.big_batch, 1) for s in args.sizes for p in (64, 96, 128) if p in args.particles]
    data_cache: dict[tuple[int, int], tuple[list[dict], dict]] = {}
    print("| size | P | batch | threads | before jets/s | after jets/s | after/before |", flush=True)
    print("|---|---|---|---|---|---|---|", flush=True)
    for size, p, b, th in configs:
        if (p, b) not in data_cache:
            data_cache[(p, b)] = jet_batches(args.n_jets, args.seed, p, b, n_batches=6)
        batches, stats = data_cache[(p, b)]
        result["data"] = stats
        torch.set_num_threads(th)
        widths = [int(pet_module.occupied_width(x["mask"])) for x in batches]
        trainers = {v: make_trainer(size, b) for v in ("before", "after")}
        for v, tr in trainers.items():  # warm-up: first-step allocations
            with implementation(v):
                time_steps(tr, batches, 1, 0)
        times: dict[str, list[float]] = {"before": [], "after": []}
        cpu_times: dict[str, list[float]] = {"before": [], "after": []}
        ratios = []
        # threads > 1 on loaded cores can take 10 s a step: fewer steps there
        steps, repeats = (args.steps, args.repeats) if th == 1 else (1, min(args.repeats, 2))
        for r in range(repeats):
            med = {}
            for v in ("before", "after") if r % 2 == 0 else ("after", "before"):
                with implementation(v):
                    ts = time_steps(trainers[v], batches, steps, r * steps, cpu_times[v])
                times[v] += ts
                med[v] = statistics.median(ts)
            ratios.append(med["before"] / med["after"])
        row = {
            "size": size,
            "particles": p,
            "batch": b,
            "threads": th,
            "occupied_widths": widths,
            "step_s": {v: statistics.median(t) for v, t in times.items()},
            "step_s_all": times,
            "jets_per_s": {v: b / statistics.median(t) for v, t in times.items()},
            "cpu_s_per_step": {v: statistics.median(t) for v, t in cpu_times.items()},
            "jets_per_cpu_s": {v: b / statistics.median(t) for v, t in cpu_times.items()},
            "ratio_after_over_before": statistics.median(ratios),
            "ratios_per_repeat": ratios,
        }
        result["grid"].append(row)
        print(
            f"| {size} | {p} | {b} | {th} | {row['jets_per_s']['before']:.0f} | {row['jets_per_s']['after']:.0f} | "
            f"{row['ratio_after_over_before']:.2f} (repeats {', '.join(f'{x:.2f}' for x in ratios)}) |",
            flush=True,
        )

    print("\nforward breakdown (ms per step, batch %d, 1 thread):" % args.batches[0], flush=True)
    print("| size | P | variant | " + " | ".join(COMPONENTS) + " | total |", flush=True)
    print("|---|---|---|" + "---|" * (len(COMPONENTS) + 1), flush=True)
    torch.set_num_threads(1)
    for size in args.sizes:
        for p in args.particles:
            batches, _ = data_cache[(p, args.batches[0])]
            for v in ("before", "after"):
                tr = make_trainer(size, args.batches[0])
                with implementation(v):
                    time_steps(tr, batches, 1, 0)
                    ms = {k: 1e3 * s for k, s in breakdown(tr, batches, args.breakdown_steps).items()}
                result["breakdown"].append(
                    {
                        "size": size,
                        "particles": p,
                        "batch": args.batches[0],
                        "threads": 1,
                        "variant": v,
                        "ms_per_step": ms,
                    }
                )
                print(
                    f"| {size} | {p} | {v} | "
                    + " | ".join(f"{ms[c]:.0f}" for c in COMPONENTS)
                    + f" | {sum(ms.values()):.0f} |",
                    flush=True,
                )

    if args.under_load:
        print(f"\nunder load: {args.under_load} busy-loop processes, tiny, P 128, batch 32", flush=True)
        batches, _ = data_cache.get((128, 32)) or jet_batches(args.n_jets, args.seed, 128, 32, 6)
        tr = make_trainer("tiny", 32)
        hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.under_load)]
        load_rows = []
        try:
            time.sleep(1.0)
            for th in (1, 2, 1, 2):
                torch.set_num_threads(th)
                time_steps(tr, batches, 1, 0)
                ts = time_steps(tr, batches, 2, 1)
                load_rows.append({"threads": th, "step_s": ts})
                print(f"  threads {th}: {', '.join(f'{t:.2f}' for t in ts)} s/step", flush=True)
        finally:
            for h in hogs:
                h.kill()
                h.wait()
        result["under_load"] = {
            "busy_processes": args.under_load,
            "size": "tiny",
            "particles": 128,
            "batch": 32,
            "rows": load_rows,
        }
    torch.set_num_threads(default_threads)

    result["recommendation"] = recommend(result, args.budget_hours, args.recipe_jets)
    result["uptime_after"] = uptime()
    result["wall_s"] = round(time.perf_counter() - t_start, 1)
    print(f"\nuptime: {result['uptime_after']}  (benchmark wall {result['wall_s']} s)")
    print(json.dumps(result["recommendation"], indent=1))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {args.json}")


def recommend(result: dict, budget_hours: float, recipe_jets: int) -> dict:
    """The recipe from the measured 'after' steps with 1 thread, per model size and batch.

    Throughput on a core of its own is batch / (CPU seconds per step): on these shared cores the
    process got only part of a core, and wall-clock jets/s (also given) say more about the load
    than about the recipe. 1 thread because results must not depend on the thread count (it
    changes the last float bits) and 2 threads on loaded cores collapse (``under_load``); a
    second core is not counted, so the budget figures are a floor. Particle count: the smallest
    measured P that truncates at most 1% of the jets' particles (above it, slicing to the
    occupied width makes a larger cap cost little). Model size: the largest whose jet-epochs in
    the budget reach 10 passes over ``recipe_jets``. Batch: the CPU recipe's 32 unless a measured
    bigger batch is more than 1.5x faster per jet (the diffusion head needs optimizer steps more
    than big batches, jetlab.train.CPU_RECIPE).
    """
    trunc = result["truncation"]
    ps = sorted(int(p) for p in trunc)
    p_ok = [p for p in ps if trunc[str(p)]["particles_cut"] <= 0.01]
    particles = p_ok[0] if p_ok else ps[-1]
    budget_s = budget_hours * 3600.0
    rows = [r for r in result["grid"] if r["particles"] == particles and r["threads"] == 1]
    table, chosen = [], None
    for size in ("tiny", "small", "paper"):
        mine = [r for r in rows if r["size"] == size]
        if not mine:
            continue
        b32 = next((r for r in mine if r["batch"] == 32), min(mine, key=lambda r: r["batch"]))
        best = max(mine, key=lambda r: r["jets_per_cpu_s"]["after"])
        pick = best if best["jets_per_cpu_s"]["after"] > 1.5 * b32["jets_per_cpu_s"]["after"] else b32
        jps = pick["jets_per_cpu_s"]["after"]
        entry = {
            "size": size,
            "batch": pick["batch"],
            "threads": 1,
            "jets_per_s_own_core": jps,
            "jets_per_s_wall_at_this_load": pick["jets_per_s"]["after"],
            "jet_epochs_in_budget": jps * budget_s,
            "epochs_over_recipe_jets": jps * budget_s / recipe_jets,
            "other_batches_jets_per_s_own_core": {str(r["batch"]): r["jets_per_cpu_s"]["after"] for r in mine},
        }
        table.append(entry)
        if entry["epochs_over_recipe_jets"] >= 10:
            chosen = entry
    chosen = chosen or (table[0] if table else None)
    return {
        "budget_hours": budget_hours,
        "recipe_jets": recipe_jets,
        "max_particles": particles,
        "truncation_at_max_particles": trunc[str(particles)],
        "per_size": table,
        "chosen": chosen,
        "rule": " ".join((recommend.__doc__ or "").split()),
    }


if __name__ == "__main__":
    main()
