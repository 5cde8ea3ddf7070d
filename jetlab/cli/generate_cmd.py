"""``jetlab generate NAME --n-jets N --out FILE``: make a mini dataset with Pythia 8 + FastJet."""

from __future__ import annotations

import argparse

from jetlab.cli.main import CLIError

#: kept here (not imported from jetlab.simulator.generate) so ``jetlab --help`` stays fast
NAMES = ("jetclass-mini", "toptag-mini", "zjets-mini", "lhco-mini")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "generate",
        help="generate a small stand-in dataset (Pythia 8 + FastJet)",
        description="Generate a mini dataset in the jetlab schema: " + ", ".join(NAMES) + ".",
    )
    p.add_argument("name", metavar="NAME", help=f"dataset to generate ({', '.join(NAMES)})")
    p.add_argument("--n-jets", type=int, required=True, help="rows (jets, or events for zjets/lhco)")
    p.add_argument("--out", required=True, help="output HDF5 file")
    p.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    p.add_argument("--seed", type=int, default=0, help="random seed (output independent of --workers)")
    p.add_argument("--signal-fraction", type=float, default=None, help="lhco-mini: fraction of signal events")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.name not in NAMES:
        raise CLIError(f"unknown dataset {args.name!r}; valid names: {', '.join(NAMES)}")
    if args.n_jets <= 0:
        raise CLIError(f"--n-jets must be a positive integer, got {args.n_jets}")
    if args.workers is not None and args.workers < 1:
        raise CLIError(f"--workers must be >= 1, got {args.workers}")
    options = {}
    if args.signal_fraction is not None:
        if args.name != "lhco-mini":
            raise CLIError("--signal-fraction only applies to lhco-mini")
        if not 0.0 <= args.signal_fraction <= 1.0:
            raise CLIError(f"--signal-fraction must be in [0, 1], got {args.signal_fraction}")
        options["signal_fraction"] = args.signal_fraction

    import numpy as np

    from jetlab.data.schema import read_jetsets
    from jetlab.simulator.generate import generate

    try:
        path = generate(
            args.name,
            args.n_jets,
            args.out,
            workers=args.workers,
            seed=args.seed,
            progress=not args.no_progress,
            **options,
        )
    except (ValueError, TypeError, OSError) as exc:
        raise CLIError(str(exc)) from None
    sets = read_jetsets(path)
    from jetlab.data.schema import inspect_file

    meta = inspect_file(path)
    print(f"wrote {path} ({meta.dataset}, {meta.n_rows} rows, collections {list(meta.collections)})")
    for cname, js in sets.items():
        counts = np.bincount(js.labels, minlength=len(meta.label_names))
        per = ", ".join(f"{n}={c}" for n, c in zip(meta.label_names, counts) if c)
        pt = js.jets[:, 0]
        print(
            f"  {cname}: {per}; jet pT {pt.min():.0f}-{pt.max():.0f} GeV; "
            f"particle features {list(js.particle_features)}"
        )
    return 0
