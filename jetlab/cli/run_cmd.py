"""``jetlab run NOTEBOOK | --all``: execute notebooks headless with validated parameters."""

from __future__ import annotations

import argparse
import sys

EPILOG = """\
examples:
  jetlab run notebooks/02_top_tagging.ipynb --profile cpu-quick -p epochs 3
  jetlab run notebooks/00_quickstart.ipynb -p n_jets 500 --out results/quick
  jetlab run --all --profile paper --plan              # what the paper's experiments cost
  jetlab run --all --profile gpu-hour --out results --yes

-p values are parsed like papermill's (int, float, True/False/None, Python literals) and
checked against the types of the defaults in the notebook's 'parameters' cell before anything
runs. Every run first prints its cost per notebook (fetch, disk, conversion core-hours, training
jet-epochs, GPU-hours; jetlab/plan.py names the measured rates); a run estimated above 2 H100
GPU-hours starts only with --yes. Profiles: cpu-quick (minutes on a laptop), gpu-hour (about one
GPU-hour per notebook on the public datasets), paper (the OmniLearn paper's experiments:
GPU-weeks), gpu-smoke (a GPU check), ci-tiny (seconds, for tests), or a path to your own YAML file.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "run",
        help="execute a notebook (or the whole series) headless with papermill",
        description="Execute a jetlab notebook with papermill; the executed notebook, its figures, "
        "metrics and run_info.json go to --out.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("notebook", nargs="?", help="notebook to execute (omit with --all)")
    p.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="set a notebook parameter (repeatable)",
    )
    p.add_argument(
        "--profile", help="parameter profile: cpu-quick, gpu-hour, paper, gpu-smoke, ci-tiny, or a YAML file"
    )
    p.add_argument(
        "--out",
        help="output directory (default jetlab_output/<notebook-stem>; with --all the root, default jetlab_output)",
    )
    p.add_argument("--kernel", default="python3", help="Jupyter kernel name (default python3)")
    p.add_argument("--all", action="store_true", help="run 01_pretraining, then the others with its checkpoint")
    p.add_argument("--notebook-dir", default="notebooks", help="where --all finds the notebooks (default notebooks)")
    p.add_argument(
        "--log-output",
        action="store_true",
        help="stream cell outputs to the terminal (also with --quiet; on by default otherwise)",
    )
    p.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="no progress (cells, elapsed time, stage bars, outputs): only the result lines, for CI logs",
    )
    p.add_argument("--prepare-only", action="store_true", help="write the parameterised notebook without executing it")
    p.add_argument(
        "--in-place",
        action="store_true",
        help="then store the outputs (PNG figures, tables, printed metrics) in the notebook itself, "
        "beside its jupytext .py source (with --all: only once every notebook has run)",
    )
    p.add_argument(
        "--plan",
        action="store_true",
        help="print what the run would cost per notebook (fetch, disk, conversion, jet-epochs, GPU-hours) and exit",
    )
    p.add_argument("--yes", action="store_true", help="start a run estimated above 2 H100 GPU-hours")
    p.add_argument("--list-profiles", action="store_true", help="list the shipped profiles and exit")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from jetlab.cli.main import CLIError
    from jetlab.runner import NotebookExecutionError, ParameterError, list_profiles

    if args.list_profiles:
        for name in list_profiles():
            print(name)
        return 0
    params = _checked_parameters(args)
    try:
        results = _execute(args, params)
    except ParameterError as exc:  # nothing was executed: a usage error
        raise CLIError(str(exc)) from exc
    except NotebookExecutionError as exc:  # a cell failed: the run itself failed
        print(f"jetlab: error: {exc}", file=sys.stderr)
        return 1
    if args.plan:
        return 0
    _report(args, results)
    return 0


def _checked_parameters(args: argparse.Namespace) -> dict[str, str]:
    """The ``-p NAME VALUE`` pairs as a dict, after the checks that need no notebook (usage errors)."""
    from jetlab.cli.main import CLIError

    if args.all == bool(args.notebook):
        raise CLIError("give either a NOTEBOOK or --all (not both, not neither)")
    if args.in_place and args.prepare_only:
        raise CLIError("--in-place stores the outputs of an execution: it cannot go with --prepare-only")
    params: dict[str, str] = {}
    for name, value in args.parameter:
        if name in params:
            raise CLIError(f"parameter {name!r} given twice with -p")
        params[name] = value
    return params


def _execute(args: argparse.Namespace, params: dict[str, str]) -> list:
    """Run the notebook (or the series) after the cost table and the --yes gate; the run results."""
    from jetlab.options import DEFAULT_OUTPUT_ROOT
    from jetlab.plan import format_plan
    from jetlab.runner import estimate_costs, gate_on_cost, run_all, run_notebook

    progress = not args.quiet  # progress goes to stderr, the result lines to stdout

    def cost_first(plans) -> bool:
        """The plan's table first (stdout with --plan, else stderr), then the --yes gate."""
        if args.plan:
            print(format_plan(estimate_costs(plans, args.profile), profile=args.profile))
            return False
        gate_on_cost(plans, args.profile, yes=args.yes, echo=lambda msg: print(msg, file=sys.stderr, flush=True))
        return True

    if args.all:
        return run_all(
            args.notebook_dir,
            params,
            profile=args.profile,
            out=args.out or DEFAULT_OUTPUT_ROOT,
            kernel=args.kernel,
            progress=progress,
            log_output=args.log_output,
            echo=None if args.quiet else (lambda msg: print(msg, file=sys.stderr, flush=True)),
            before_execute=cost_first,
            check_kernel=not args.plan,
        )
    one = run_notebook(
        args.notebook,
        params,
        profile=args.profile,
        out=args.out,
        kernel=args.kernel,
        progress=progress,
        log_output=args.log_output,
        prepare_only=args.prepare_only,
        before_execute=cost_first,
    )
    return [one] if one is not None else []


def _report(args: argparse.Namespace, results: list) -> None:
    """One result line per notebook, then (with --in-place, once every run succeeded) the stored outputs."""
    for res in results:
        verb = "prepared" if args.prepare_only else f"executed in {res.seconds:.1f} s"
        print(f"{res.notebook.name}: {verb} -> {res.executed}")
        others = [p.name for p in res.files if p != res.executed]
        if others:
            print(f"  outputs in {res.output_dir}: {', '.join(others)}")
    if args.in_place:  # after all runs succeeded: never a half-updated series
        from jetlab.stored_outputs import store_outputs

        for res in results:
            stored = store_outputs(res.executed, res.notebook, profile=args.profile)
            print(f"{res.notebook.name}: outputs stored in {stored} ({stored.stat().st_size / 1024:.0f} KiB)")
