"""What does each OmniFold classifier learn? The unfolded observables of several classifiers on zjets-mini.

OmniFold unfolds every observable at once, but only as well as its classifier has learned the
features in which simulation and data differ. This script runs OmniFold (``jetlab.tasks.omnifold``,
the notebook-03 settings by default) with each ``--arms`` entry and prints, per observable, the
triangular discriminator (x10^3) of the unfolded simulation against the particle-level truth after
every iteration, next to the prior and IBU, plus each arm's step-1 best validation loss (ln 2 =
0.693 is chance). Arms:

- ``mlp``: the MLP on the six observables (notebook 03's "mlp");
- ``mlp:mass,multiplicity`` (any comma-separated observables): the MLP restricted to those. An MLP
  on ``mass,multiplicity`` sees exactly what PET's jet-level inputs give it directly, so it shows
  what a PET that has learned nothing from its particles would unfold;
- ``scratch`` / ``pretrained``: PET as notebook 03 builds it (``--epochs``, ``--lr``, ``--patience``
  apply to the PET arms, ``--lr-factor`` to the pretrained one, ``--batch-size`` to every arm; the
  MLP arms keep notebook 03's epochs and their own learning rate, 1e-3; ``--step2-init`` applies
  to every arm).

``--step1`` also judges each iteration's step-1 weights: on the detector-level simulation against
the measured data (what step 1 achieved), and read on the particle-level simulation against the
truth (what a perfect step 2 would carry over). Comparing these with the unfolded row shows which
step loses what.

    python benchmarks/bench_omnifold_classifiers.py --checkpoint jetlab_output/01_pretraining/checkpoint
    python benchmarks/bench_omnifold_classifiers.py --arms scratch pretrained --iterations 1 --step1 \\
        --checkpoint jetlab_output/01_pretraining/checkpoint

Until session 12 notebook 03 ran batch 128, the PETs at lr 3e-4 with the body at lr / 5, and a fresh
step-2 model: ``--batch-size 128 --lr 3e-4 --lr-factor 5 --step2-init previous``.

Binning and discriminators as :func:`jetlab.tasks.omnifold.run_omnifold` (30 bins per observable),
so the default PET arms reproduce notebook 03's table when given the same checkpoint and seed.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

from result_paths import portable_args, portable_path  # benchmarks/, the script's own folder

OBS = ("mass", "multiplicity", "width", "log_rho", "tau21", "zg")
DEFAULT_ARMS = ["mlp:mass,multiplicity", "mlp:mass,multiplicity,width", "mlp", "scratch", "pretrained"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arms", nargs="+", default=DEFAULT_ARMS)
    ap.add_argument("--n", type=int, default=4000, help="events per generator setup")
    ap.add_argument("--data-seed", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0, help="OmniFold training seed (notebook 03: seeds[0])")
    ap.add_argument("--iterations", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=4, help="per step, PET arms")
    ap.add_argument("--mlp-epochs", type=int, default=4)
    ap.add_argument("--lr", type=float, default=1e-3, help="PET arms (notebook 03's; the classifier's own: 3e-4)")
    ap.add_argument("--lr-factor", type=float, default=1.0,
                    help="pretrained arm: body at lr / lr_factor (notebook 03's; the OmniLearn recipe's: 5)")
    ap.add_argument("--patience", type=int, default=2, help="early stopping, PET arms")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-particles", type=int, default=48)
    ap.add_argument("--checkpoint", default="auto", help="pretrained model directory (resolve_checkpoint)")
    ap.add_argument("--step2-init", default="step1", choices=["step1", "previous"],
                    help="step 2's starting model (jetlab.tasks.omnifold.omnifold)")
    ap.add_argument("--step1", action="store_true",
                    help="also judge each iteration's step-1 weights: on sim_reco vs data_reco, and on sim_gen vs truth")
    ap.add_argument("--json", type=Path, default=None, help="write the numbers here")
    args = ap.parse_args()

    import numpy as np

    from jetlab.physics import compute_observables
    from jetlab.tasks.checkpoint_resolver import resolve_checkpoint
    from jetlab.tasks.omnifold import load_omnifold_data, omnifold, unfold_observables
    from jetlab.tasks.omnifold.classifiers import make_classifier

    sets = load_omnifold_data("zjets-mini", args.n, seed=args.data_seed, progress=False)
    obs = {k: compute_observables(v, list(OBS)) for k, v in sets.items()}
    ckpt = None
    if any(a in ("scratch", "pretrained") for a in args.arms):
        ckpt = resolve_checkpoint(args.checkpoint, None, train_if_missing=True, progress=False)
    runs, times = {}, {}
    for arm in args.arms:
        kind, _, feats = arm.partition(":")
        if kind == "mlp":
            names = tuple(feats.split(",")) if feats else OBS
            spec = make_classifier("mlp", observables=names)
            inputs = [obs[k] for k in ("sim_gen", "sim_reco", "data_reco")]
            kw = dict(epochs=args.mlp_epochs, early_stopping_patience=2, lr=None)
        elif kind in ("scratch", "pretrained"):
            spec = make_classifier(kind, checkpoint=ckpt, max_particles=args.max_particles, lr_factor=args.lr_factor)
            inputs = [sets[k] for k in ("sim_gen", "sim_reco", "data_reco")]
            kw = dict(epochs=args.epochs, early_stopping_patience=args.patience, lr=args.lr)
        else:
            raise SystemExit(f"unknown arm {arm!r}: mlp, mlp:OBS1,OBS2,..., scratch or pretrained")
        t0 = time.perf_counter()
        runs[arm] = omnifold(*inputs, classifier_factory=spec, n_iterations=args.iterations, seed=args.seed,
                             batch_size=args.batch_size, step2_init=args.step2_init, device="cpu", progress=False, **kw)
        times[arm] = time.perf_counter() - t0
        print(f"{arm}: {times[arm]:.0f} s", flush=True)
    summary = unfold_observables(runs, obs["sim_gen"], obs["data_gen"], OBS, bins=30, sim_reco=obs["sim_reco"],
                                 data_reco=obs["data_reco"], n_bootstrap=0, seed=args.data_seed)  # nominal values only
    print(f"\nzjets-mini {args.n} events per setup; {args.iterations} iterations; PET arms {args.epochs} epochs, "
          f"lr {args.lr}, lr_factor {args.lr_factor}, batch {args.batch_size}, patience {args.patience}, "
          f"step 2 from {args.step2_init}; checkpoint {ckpt}\n")
    out = {"settings": portable_args(args) | {"json": str(portable_path(args.json)), "checkpoint": portable_path(ckpt)},
           "methods": {}}

    def table(summary, runs, title: str) -> dict:
        print(title + "\n")
        print("| method | step-1 best val loss | " + " | ".join(OBS) + " |")
        print("|---|--:|" + "--:|" * len(OBS))
        rows = {}
        for m in summary.methods:
            arm = m.removeprefix("OmniFold-")
            loss = runs[arm].histories[0]["step1"]["best_val_loss"] if arm in runs else None
            per = {o: np.atleast_1d(summary.per_iteration.get(m, {}).get(o, [summary.nominal[m][o]])).tolist()
                   for o in OBS}
            cells = [f"{summary.nominal[m][o]:.1f}" + (f" ({', '.join(f'{v:.1f}' for v in per[o])})"
                                                      if len(per[o]) > 1 else "") for o in OBS]
            print(f"| {m} | {'' if loss is None else f'{loss:.4f}'} | " + " | ".join(cells) + " |")
            rows[m] = {"nominal": summary.nominal[m], "per_iteration": per, "step1_best_val_loss": loss,
                       "seconds": times.get(arm)}
        return rows

    out["methods"] = table(summary, runs, "TD x10^3 vs truth after the last iteration (each iteration in brackets):")
    if args.step1:
        # step 1's detector-level weights, row-aligned with sim_gen: read at detector level against the
        # measured data (what step 1 achieved) and at particle level against the truth (what a perfect
        # step 2 would carry over)
        pulled = {arm: replace(r, push_weights=list(r.pull_weights)) for arm, r in runs.items()}
        for level, sim, ref, what in (("reco", "sim_reco", "data_reco", "the measured data (data_reco)"),
                                      ("gen", "sim_gen", "data_gen", "the truth (data_gen)")):
            s1 = unfold_observables(pulled, obs[sim], obs[ref], OBS, bins=30, n_bootstrap=0, seed=args.data_seed)
            out[f"step1_weights_{level}"] = table(
                s1, pulled, f"\nStep-1 weights on {sim} vs {what}, TD x10^3 (prior: unweighted {sim}):")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
