"""OmniFold step-1 convergence, pretrained vs from-scratch PET, over several seeds, on zjets-mini.

Notebook 03 shows this with 3 seeds per PET (its CPU budget). This benchmark repeats the first step-1
training (data vs simulation at detector level, the paper's Figure 1) for more seeds and prints:

* the seed-averaged convergence ratio (epochs the scratch mean needs to reach its best validation
  loss / epochs the pretrained mean needs to reach that value; > 1: pretraining converges faster);
* the same ratio seed by seed, and for how many seeds each PET ends lower;
* the same for the pretrained PET fed through the pretraining sample's input scaling
  (``input_scaling="pretraining"``), the other peer measured in this run; "pretrained" scales to
  the simulation (``input_scaling="task"``, what notebook 03 passes).

    python benchmarks/bench_omnifold_convergence.py --seeds 6 --n-jets 4000 --epochs 4
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=6, help="trainings per PET (seeds 0..N-1)")
    ap.add_argument("--n-jets", type=int, default=4000, help="events per generator setup")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--max-particles", type=int, default=48)
    ap.add_argument("--checkpoint", default="auto", help="pretrained model; 'auto' as in the notebooks")
    ap.add_argument("--no-pretraining-scaling", action="store_true", help="skip the third peer")
    args = ap.parse_args()

    from jetlab.tasks.checkpoint_resolver import resolve_checkpoint
    from jetlab.tasks.omnifold import ConvergenceStudy, PETClassifier, load_omnifold_data, step1_curves

    ckpt = str(resolve_checkpoint(args.checkpoint))
    sets = load_omnifold_data("zjets-mini", args.n_jets, seed=0, progress=False)
    specs = {
        "scratch": PETClassifier(checkpoint=ckpt, pretrained=False, max_particles=args.max_particles),
        "pretrained": PETClassifier(checkpoint=ckpt, max_particles=args.max_particles, input_scaling="task"),
    }
    if not args.no_pretraining_scaling:
        specs["pretrained, pretraining scaling"] = PETClassifier(checkpoint=ckpt, max_particles=args.max_particles,
                                                                 input_scaling="pretraining")
    seeds = list(range(args.seeds))
    curves, seconds = {}, {}
    for name, spec in specs.items():
        t0 = time.perf_counter()
        curves[name] = step1_curves(sets["sim_reco"], sets["data_reco"], classifier_factory=spec, seeds=seeds,
                                    epochs=args.epochs, batch_size=args.batch_size, progress=False)
        seconds[name] = time.perf_counter() - t0
        print(f"{name}: {len(seeds)} trainings in {seconds[name]:.0f} s; best val loss per seed "
              + ", ".join(f"{min(y for _, y in c):.4f}" for c in curves[name]), flush=True)
    print(f"\ncheckpoint {ckpt}; zjets-mini {args.n_jets} events per setup, {args.epochs} epochs, seeds {seeds}\n")
    print("| pretrained variant | mean-curve ratio | pretrained epochs | scratch epochs | per-seed ratios "
          "| seeds faster | seeds ending lower | best val loss (mean curve) pretrained / scratch |")
    print("|---|--:|--:|--:|---|--:|--:|---|")
    for name in specs:
        if name == "scratch":
            continue
        study = ConvergenceStudy({"scratch": curves["scratch"], "pretrained": curves[name]})
        r = study.ratio()
        per = np.array(r["per_seed"], dtype=float)
        lower = sum(min(y for _, y in p) < min(y for _, y in s) for p, s in zip(curves[name], curves["scratch"]))
        reach = "never" if r["pretrained_epochs"] is None else f"{r['pretrained_epochs']:.2f}"
        best_scratch = min(y for _, y in study.mean_curve("scratch"))
        print(f"| {name} | {r['ratio']:.2f}x | {reach} | {r['scratch_epochs']:.2f} | "
              + ", ".join(f"{v:.2f}" for v in per) + f" | {int(np.sum(per > 1))}/{len(per)} | {lower}/{len(per)} | "
              f"{r['pretrained_best_val_loss']:.4f} / {best_scratch:.4f} |")
    print("\n" + json.dumps({"curves": curves, "seconds": seconds}))


if __name__ == "__main__":
    main()
