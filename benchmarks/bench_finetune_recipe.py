"""Fine-tuning recipe: input-scaling policy and optimizer, over seeds, on two tasks.

Fine-tunes the same pretrained PET (``--checkpoint``, default "auto": notebook 01's or the tiny
fallback the notebooks pretrain once) with every arm of

* ``input_scaling``: ``"pretraining"`` (the checkpoint's standardizer, the OmniLearn reference)
  or ``"task"`` (fitted on the task's training data);
* ``optimizer``: ``"adamw"`` (jetlab's default, the task's default lr) or ``"lion"`` (the OmniLearn
  reference recipe: Lion at ``--lion-lr``, body at lr / lr_factor, body weight decay x lr_factor;
  ``--arms`` picks some);

plus a from-scratch PET as the reference, on

* zjets-mini, OmniFold step 1 (data vs simulation at detector level, the training whose
  convergence the paper compares): best validation loss per seed (lower is better);
* toptag-mini, top tagging: test AUC and 1/eps_B at eps_S = 0.5 per seed (higher is better).

For each arm it prints the mean, the seed spread (sample sd) and the paired difference to the
first arm (default AdamW + pretraining scaling) (mean +- its standard error, and in how many seeds the arm wins).

    python benchmarks/bench_finetune_recipe.py --seeds 6
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
from result_paths import portable_args, portable_path  # benchmarks/, the script's own folder

ARMS = (("adamw", "pretraining"), ("adamw", "task"), ("lion", "pretraining"), ("lion", "task"))


def _stats(values, ref=None, higher_is_better=True) -> str:
    v = np.asarray(values, dtype=float)
    s = f"{v.mean():.4f} +- {v.std(ddof=1) if len(v) > 1 else 0.0:.4f}"
    if ref is not None:
        d = v - np.asarray(ref, dtype=float)
        se = d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else 0.0
        wins = int(np.sum(d > 0) if higher_is_better else np.sum(d < 0))
        s += f" | {d.mean():+.4f} +- {se:.4f} | {wins}/{len(d)}"
    else:
        s += " | (reference) | -"
    return s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=6)
    ap.add_argument("--checkpoint", default="auto")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--zjets-events", type=int, default=4000, help="events per zjets-mini setup (notebook 03 cpu-quick)")
    ap.add_argument("--zjets-epochs", type=int, default=4)
    ap.add_argument("--toptag-jets", type=int, default=3000, help="toptag-mini jets (notebook 02 cpu-quick)")
    ap.add_argument("--toptag-epochs", type=int, default=3)
    ap.add_argument("--lion-lr", type=float, default=3e-5, help="Lion head learning rate (the reference's)")
    ap.add_argument("--tasks", nargs="+", default=["zjets", "toptag"], choices=["zjets", "toptag"])
    ap.add_argument("--arms", nargs="+", default=[f"{o}:{s}" for o, s in ARMS], metavar="OPTIMIZER:SCALING",
                    help="fine-tuning arms; the first is the reference of the paired differences")
    ap.add_argument("--no-scratch", action="store_true", help="skip the from-scratch PET")
    ap.add_argument("--json", default=None, help="also write every per-seed number here")
    args = ap.parse_args()
    arms = [tuple(a.split(":")) for a in args.arms]
    ref_name = "{}, {}".format(*arms[0])

    from jetlab.tasks.checkpoint_resolver import resolve_checkpoint
    from jetlab.train.ddp import resolve_device

    dev = resolve_device(args.device)
    t0 = time.perf_counter()
    ckpt = resolve_checkpoint(args.checkpoint, train_if_missing=True, device=dev, progress=False)
    print(f"checkpoint {ckpt} ({time.perf_counter() - t0:.0f} s); device {dev}; seeds 0..{args.seeds - 1}; "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)
    seeds = list(range(args.seeds))
    out: dict = {"checkpoint": portable_path(ckpt), "device": str(dev), "seeds": seeds, "args": portable_args(args)}

    if "zjets" in args.tasks:
        from jetlab.tasks.omnifold import PETClassifier, load_omnifold_data, step1_curves

        sets = load_omnifold_data("zjets-mini", args.zjets_events, seed=0, progress=False)
        specs = {} if args.no_scratch else {"scratch": PETClassifier(checkpoint=str(ckpt), pretrained=False, max_particles=48)}
        for opt, scaling in arms:
            kw = {"lr": args.lion_lr} if opt == "lion" else {}
            specs[f"{opt}, {scaling}"] = PETClassifier(checkpoint=str(ckpt), max_particles=48, optimizer=opt,
                                                      input_scaling=scaling, **kw)
        best = {}
        for name, spec in specs.items():
            t = time.perf_counter()
            curves = step1_curves(sets["sim_reco"], sets["data_reco"], classifier_factory=spec, seeds=seeds,
                                  epochs=args.zjets_epochs, batch_size=128, device=dev, progress=False)
            best[name] = [min(y for _, y in c) for c in curves]
            print(f"zjets {name}: {time.perf_counter() - t:.0f} s; best val loss "
                  + ", ".join(f"{b:.4f}" for b in best[name]), flush=True)
        out["zjets_best_val_loss"] = best
        ref = best[ref_name]
        print(f"\nzjets-mini OmniFold step 1, {args.zjets_events} events per setup, {args.zjets_epochs} epochs: "
              "best validation loss (lower is better; chance ln 2 = 0.6931)\n")
        print(f"| arm | mean +- seed sd | paired diff vs {ref_name} (+- se) | seeds lower |")
        print("|---|---|---|--:|")
        for name, v in best.items():
            print(f"| {name} | " + _stats(v, None if name == ref_name else ref, higher_is_better=False) + " |")

    if "toptag" in args.tasks:
        from jetlab.tasks.tagging import run_tagging

        metrics: dict[str, dict[str, list[float]]] = {}
        runs_of = ([] if args.no_scratch else [("scratch", "adamw", "task")]) + [(f"{o}, {s}", o, s) for o, s in arms]
        for name, opt, scaling in runs_of:
            t = time.perf_counter()
            kw = {"lr": args.lion_lr} if opt == "lion" else {}
            res = run_tagging("toptag-mini", checkpoint=str(ckpt), n_jets=args.toptag_jets, seeds=seeds, fractions=(1.0,),
                              epochs=args.toptag_epochs, batch_size=64, models=("scratch",) if name == "scratch" else ("finetuned",),
                              optimizer=opt, input_scaling=scaling, device=dev, progress=False, **kw)
            runs = sorted(res.runs, key=lambda r: r.seed)
            metrics[name] = {"auc": [r.metrics["auc"] for r in runs],
                             "rej50": [r.metrics["rej_at_0.5"] for r in runs]}
            print(f"toptag {name}: {time.perf_counter() - t:.0f} s; AUC " + ", ".join(f"{a:.4f}" for a in metrics[name]["auc"]),
                  flush=True)
        out["toptag"] = metrics
        print(f"\ntoptag-mini tagging, {args.toptag_jets} jets (60% train), {args.toptag_epochs} epochs: test metrics "
              "(higher is better)\n")
        print("| arm | AUC mean +- seed sd | paired diff (+- se) | seeds higher | 1/eps_B@0.5 mean +- sd | paired diff (+- se) | seeds higher |")
        print("|---|---|---|--:|---|---|--:|")
        ref = metrics[ref_name]
        for name, m in metrics.items():
            r = None if name == ref_name else ref
            print(f"| {name} | " + _stats(m["auc"], None if r is None else r["auc"]) + " | "
                  + _stats(m["rej50"], None if r is None else r["rej50"]) + " |")
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=1)


if __name__ == "__main__":
    main()
