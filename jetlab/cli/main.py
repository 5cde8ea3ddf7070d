"""``jetlab`` console entry point.

Each sub-command lives in ``jetlab/cli/<name>_cmd.py`` and exposes
``register(subparsers)`` which adds its parser and sets ``func`` (called with the parsed
namespace, returning an exit code). Imports of heavy modules happen inside ``func`` so
``jetlab --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from jetlab import __version__
from jetlab._logging import show_messages

#: modules that provide sub-commands, in the order shown by --help
COMMAND_MODULES = (
    "jetlab.cli.data_cmd",  # jetlab data list|fetch|verify|convert
    "jetlab.cli.generate_cmd",  # jetlab generate NAME ...
    "jetlab.cli.demo_cmd",  # jetlab demo
    "jetlab.cli.pretrain_cmd",  # jetlab pretrain ...
    "jetlab.cli.run_cmd",  # jetlab run NOTEBOOK ...
    "jetlab.cli.model_cmd",  # jetlab model convert-omnilearned ...
)


class CLIError(Exception):
    """A user-facing error: printed as ``jetlab: error: ...`` with exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jetlab",
        description="jetlab: a jet foundation model (PET/OmniLearn) for notebooks and analyses.",
    )
    parser.add_argument("--version", action="version", version=f"jetlab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            mod = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # sub-command not built into this install
                continue
            raise
        mod.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    show_messages()  # the library's INFO messages (stages, results) as plain lines on stdout
    try:
        return int(args.func(args) or 0)
    except CLIError as exc:
        print(f"jetlab: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("jetlab: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    # run the imported module's main: as __main__ this file's CLIError would be a different class
    # from the jetlab.cli.main.CLIError that the sub-commands raise
    from jetlab.cli.main import main as _main

    sys.exit(_main())
