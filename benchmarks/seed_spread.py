"""Rerun tests with other training seeds and print the spread of the values their bounds are set from.

Tests that take the ``test_seed`` / ``module_seed`` fixtures (tests/conftest.py) train with
``JETLAB_TEST_SEED``; values they pass to ``measured(name, value)`` are collected per seed. A test
may fail for some seed (that is what the spread is for): its values are kept all the same.

    python benchmarks/seed_spread.py tests/test_physics_fidelity.py::test_pet_omnifold_moves_a_known_reweighting_toward_the_truth --seeds 0 1 2 3 4 5

Prints, per value, min-max over the seeds and each seed's value; ``--out`` writes them as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("tests", nargs="+", help="pytest node ids")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4, 5])
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    values: dict[str, dict[int, float]] = defaultdict(dict)
    outcome: dict[int, int] = {}
    for seed in args.seeds:
        with tempfile.TemporaryDirectory() as tmp:
            rec = Path(tmp) / "measured.jsonl"
            env = dict(os.environ, JETLAB_TEST_SEED=str(seed), JETLAB_MEASURED=str(rec))
            proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args.tests],
                                  cwd=ROOT, env=env, capture_output=True, text=True)
            outcome[seed] = proc.returncode
            lines = rec.read_text().splitlines() if rec.exists() else []
        for line in lines:
            r = json.loads(line)
            values[f"{r['test'].split('::')[-1]}: {r['name']}"][seed] = r["value"]
        print(f"seed {seed}: pytest exit {proc.returncode}, {len(lines)} values", flush=True)
    for name, per_seed in values.items():
        v = list(per_seed.values())
        print(f"{name}: {min(v):.4g} - {max(v):.4g}  (" + ", ".join(f"{s}: {x:.4g}" for s, x in per_seed.items()) + ")")
    if args.out:
        tmp_out = args.out.with_suffix(args.out.suffix + ".tmp")
        tmp_out.write_text(json.dumps({"tests": args.tests, "seeds": args.seeds, "pytest_exit": outcome,
                                       "values": values}, indent=1))
        tmp_out.replace(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
