"""``jetlab demo``: a minutes-scale, offline top tagger from a fresh clone.

Generates (and caches) a small toptag-mini sample with the built-in Pythia 8 + FastJet generator,
trains a tiny PET tagger on it (fine-tuning the pretrained model if one is already available -
``$JETLAB_CHECKPOINT``, notebook 01's output or the jetlab cache - else from scratch; the demo
never pretrains) and writes ``roc.png`` and ``metrics.json`` to ``--out``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "demo",
        help="train a small top tagger offline and write a ROC plot and metrics",
        description=(
            "Generate a small top-vs-QCD sample (cached), train a tiny PET tagger on CPU for a couple "
            "of minutes and write roc.png and metrics.json to the output folder."
        ),
    )
    p.add_argument("--n-jets", type=int, default=2000, metavar="N", help="jets to generate (default 2000)")
    p.add_argument("--epochs", type=int, default=4, metavar="E", help="training epochs (default 4)")
    p.add_argument("--batch-size", type=int, default=64, metavar="B", help="batch size (default 64)")
    p.add_argument("--seed", type=int, default=0, help="seed for generation, split and training (default 0)")
    p.add_argument(
        "--out", default="jetlab_output/demo", metavar="DIR", help="output folder (default jetlab_output/demo)"
    )
    p.add_argument(
        "--checkpoint",
        default="auto",
        metavar="PATH",
        help="pretrained checkpoint to fine-tune: a path, 'auto' (use one if already present) or 'none'",
    )
    p.add_argument("--device", default="auto", help="'auto', 'cpu' or 'cuda' (default auto)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from jetlab.cli.main import CLIError

    if args.n_jets < 100:
        raise CLIError(f"--n-jets must be >= 100 (train/val/test need both classes), got {args.n_jets}")
    if args.epochs < 1 or args.batch_size < 1:
        raise CLIError(f"--epochs and --batch-size must be >= 1, got {args.epochs} and {args.batch_size}")
    result = demo(
        n_jets=args.n_jets,
        epochs=args.epochs,
        batch_size=args.batch_size,
        seed=args.seed,
        out=args.out,
        checkpoint=args.checkpoint,
        device=args.device,
        progress=not args.quiet,
    )
    m = result["metrics"]
    print(
        f"{result['model']}: AUC = {m['auc']:.4f}, accuracy = {m['accuracy']:.4f}, "
        f"1/eps_B at eps_S=0.5: {m['rej_at_0.5']:.1f}, at eps_S=0.8: {m['rej_at_0.8']:.1f} "
        f"({result['n_test']} test jets, {result['seconds']:.0f} s)"
    )
    print(f"wrote {result['roc']} and {result['metrics_file']}")
    return 0


def demo(
    *,
    n_jets: int = 2000,
    epochs: int = 4,
    batch_size: int = 64,
    seed: int = 0,
    out: str = "jetlab_output/demo",
    checkpoint: str = "auto",
    device: str = "auto",
    progress: bool = True,
) -> dict:
    """Run the demo; returns the written paths and metrics (also what ``metrics.json`` holds)."""
    from jetlab._io import to_jsonable
    from jetlab.cli.main import CLIError
    from jetlab.notebook import seed_everything
    from jetlab.plot import roc_curves, save_figure
    from jetlab.tasks.checkpoint_resolver import resolve_checkpoint
    from jetlab.tasks.common import atomic_write_text
    from jetlab.tasks.tagging import TaggingSettings, run_tagging

    t0 = time.perf_counter()
    seed_everything(seed)
    try:
        ckpt = resolve_checkpoint(checkpoint)
    except FileNotFoundError as exc:
        raise CLIError(str(exc)) from None
    model = "finetuned" if ckpt is not None else "scratch"
    if progress:
        how = (
            f"fine-tuning {ckpt}"
            if ckpt is not None
            else "training a tiny PET from scratch (no pretrained checkpoint found)"
        )
        print(f"jetlab demo: {n_jets} toptag-mini jets (generated once, then cached), {how}", flush=True)
    settings = TaggingSettings(
        n_jets=n_jets,
        checkpoint=str(ckpt) if ckpt is not None else "none",
        fractions=(1.0,),
        seeds=(seed,),
        epochs=epochs,
        batch_size=batch_size,
        models=(model,),
        seed=seed,
        model="tiny",
        device=device,
    )
    res = run_tagging("toptag-mini", settings, progress=progress)
    run = res.runs[0]
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    fig = roc_curves(
        {f"PET ({'fine-tuned' if ckpt else 'scratch'})": (res.labels, run.scores, res.weights)},
        rlabel=f"toptag-mini, {len(res.labels)} test jets",
    )
    roc = save_figure(fig, out_dir / "roc.png")
    seconds = time.perf_counter() - t0
    result = {
        "model": f"PET tiny ({'fine-tuned' if ckpt else 'from scratch'})",
        "checkpoint": str(ckpt) if ckpt else None,
        "dataset": "toptag-mini",
        "n_jets": n_jets,
        "n_train": run.n_train,
        "n_val": run.n_val,
        "n_test": int(len(res.labels)),
        "epochs": epochs,
        "batch_size": batch_size,
        "seed": seed,
        "metrics": {k: run.metrics[k] for k in ("auc", "accuracy", "rej_at_0.5", "rej_at_0.8")},
        "metric_notes": "1/eps_B interpolated linearly on the ROC curve at eps_S = 0.5 and 0.8",
        "history": run.history,
        "seconds": round(seconds, 1),
    }
    metrics_file = out_dir / "metrics.json"
    import json

    atomic_write_text(metrics_file, json.dumps(to_jsonable(result), indent=2) + "\n")
    result.update(roc=str(roc), metrics_file=str(metrics_file))
    return result
