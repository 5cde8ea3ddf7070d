"""Fine-tuned vs from-scratch PET at *equal wall-clock training time* on toptag-mini.

Identical epoch budgets (what jetlab.tasks.tagging compares) can hide a cost difference; this
benchmark gives both models the same number of seconds instead: each trains in one-epoch steps
until ``--seconds`` have passed, then both are tested on the same jets. It prints the AUC and
1/eps_B of each and the ratios fine-tuned / scratch measured in this run.

    python benchmarks/bench_equal_walltime.py --n-jets 4000 --fraction 0.1 --seconds 60
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-jets", type=int, default=4000)
    ap.add_argument("--fraction", type=float, default=0.1, help="fraction of the training jets used")
    ap.add_argument("--seconds", type=float, default=60.0, help="wall-clock training budget per model")
    ap.add_argument("--checkpoint", default="auto")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from jetlab.data.preprocess import Standardizer
    from jetlab.data.torchdata import JetDataset, split_indices
    from jetlab.model import read_card
    from jetlab.tasks.checkpoint_resolver import resolve_checkpoint
    from jetlab.tasks.common import (
        TrimmedDataset,
        build_finetune_model,
        build_scratch_model,
        load_task_data,
        max_multiplicity,
    )
    from jetlab.tasks.tagging.pipeline import _test_metrics
    from jetlab.train import fit_classifier, predict

    ckpt = resolve_checkpoint(args.checkpoint)
    data = load_task_data("toptag-mini", args.n_jets, seed=args.seed)
    tr, va, test_idx = split_indices(len(data.jets), (0.6, 0.2, 0.2), seed=args.seed)
    rng = np.random.default_rng(args.seed)
    tr = np.sort(rng.permutation(tr)[: max(10, round(args.fraction * len(tr)))])
    train, val, test = data.jets.subset(tr), data.jets.subset(va), data.jets.subset(test_idx)
    pmax = max_multiplicity(train, val, test)
    results = {}
    for name in ("finetuned", "scratch"):
        if name == "finetuned":
            model = build_finetune_model(ckpt, 1, data.groups, seed=args.seed)
            std, factor = read_card(ckpt).get_standardizer(), 5.0
        else:
            model = build_scratch_model(ckpt, 1, data.groups, seed=args.seed)
            std, factor = Standardizer.fit_jetset(train), 1.0
        ds = {k: TrimmedDataset(JetDataset(js, standardizer=std, max_particles=pmax))
              for k, js in (("train", train), ("val", val), ("test", test))}
        t0, epochs = time.perf_counter(), 0
        while time.perf_counter() - t0 < args.seconds:
            # constant learning rate in one-epoch chunks: the budget is time, not a schedule length
            fit_classifier(model, ds["train"], None, lr_head=1e-3, lr_factor=factor, epochs=1,
                           batch_size=args.batch_size, seed=args.seed + epochs, warmup_steps=0, progress=False,
                           device="cpu")
            epochs += 1
        spent = time.perf_counter() - t0
        scores = predict(model, ds["test"], device="cpu")
        m = _test_metrics(test.labels, scores, test.weights)
        results[name] = m
        print(f"{name:>9s}: {epochs} epochs in {spent:.0f} s on {len(train)} jets: AUC {m['auc']:.4f}, "
              f"1/eps_B@0.5 {m['rej_at_0.5']:.1f}, @0.8 {m['rej_at_0.8']:.1f}")
    f, s = results["finetuned"], results["scratch"]
    print(f"ratio fine-tuned/scratch at equal wall time ({args.seconds:.0f} s): AUC {f['auc'] / s['auc']:.4f}, "
          f"1/eps_B@0.5 {f['rej_at_0.5'] / s['rej_at_0.5']:.3f}, 1/eps_B@0.8 {f['rej_at_0.8'] / s['rej_at_0.8']:.3f}")


if __name__ == "__main__":
    main()
