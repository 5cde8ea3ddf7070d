"""Do two checkouts of jetlab give bit-identical results? (issue 31 item 6)

``run``: execute every notebook of a checkout at the ci-tiny profile, one torch thread, with a
fresh data and checkpoint cache (so no generated file or pretrained model is carried over from
the other checkout), writing each notebook's outputs to ``<out>/<stem>/``.

``compare``: walk two such output trees and compare every number they wrote: each JSON file's
numbers (keys that hold wall times, dates, paths or versions are skipped and listed) and each
array of every ``.npz`` / ``.h5`` / ``.safetensors`` file (model weights), with ``==`` (NaN equal to NaN). It prints one line per file
and exits 1 if any number differs.

    python benchmarks/check_same_results.py run --checkout /tmp/old --out /tmp/bit/old
    python benchmarks/check_same_results.py run --checkout . --out /tmp/bit/new
    python benchmarks/check_same_results.py compare /tmp/bit/old /tmp/bit/new
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np

#: JSON keys whose values are expected to change from run to run (times, places, versions)
VOLATILE = (
    "time",
    "timing",
    "seconds",
    "wall",
    "started",
    "date",
    "path",
    "dir",
    "file",
    "version",
    "python",
    "torch",
    "jetlab",
    "host",
    "machine",
    "command",
    "checkpoint",
    "source",
    "elapsed",
)


def run(checkout: Path, out: Path, notebooks: list[str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    cache = Path(tempfile.mkdtemp(prefix="jetlab-bitcheck-cache-"))
    env = dict(
        os.environ,
        PYTHONPATH=str(checkout),
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        JETLAB_CACHE=str(cache / "cache"),
        JETLAB_DATA=str(cache / "data"),
        JETLAB_CHECKPOINTS=str(cache / "checkpoints"),
        JETLAB_HEADLESS="1",
    )
    env.pop("JETLAB_CHECKPOINT", None)
    for stem in notebooks:
        t0 = time.time()
        cmd = [sys.executable, "-m", "jetlab.cli.main", "run", f"notebooks/{stem}.ipynb", "--profile", "ci-tiny"]
        cmd += ["--out", str(out / stem), "-q"]
        done = subprocess.run(cmd, cwd=checkout, env=env, capture_output=True, text=True)
        print(f"{stem}: rc {done.returncode} in {time.time() - t0:.0f} s", flush=True)
        if done.returncode:
            print(done.stdout[-3000:], done.stderr[-3000:], sep="\n")
            raise SystemExit(done.returncode)


def _volatile(key: str) -> bool:
    k = key.lower()
    return any(v in k for v in VOLATILE)


def _json_numbers(obj: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(obj, dict):
        for k, v in obj.items():
            if not _volatile(str(k)):
                yield from _json_numbers(v, f"{prefix}/{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _json_numbers(v, f"{prefix}[{i}]")
    elif isinstance(obj, (bool, int, float)) or obj is None:
        yield prefix, obj


def _arrays(path: Path) -> dict[str, np.ndarray]:
    if path.suffix == ".safetensors":
        from safetensors.numpy import load_file

        return load_file(path)
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    import h5py

    found: dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: found.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return found


def _same(a: Any, b: Any) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.dtype.kind in "fc":
        return bool(np.array_equal(a, b, equal_nan=True))
    return bool(np.array_equal(a, b))


def compare(old: Path, new: Path) -> int:
    differing = 0
    files = sorted(p.relative_to(old) for p in old.rglob("*") if p.suffix in (".json", ".npz", ".h5", ".safetensors"))
    for rel in files:
        b = new / rel
        if not b.exists():
            print(f"MISSING  {rel}")
            differing += 1
            continue
        if rel.suffix == ".json":
            xa = dict(_json_numbers(json.loads((old / rel).read_text())))
            xb = dict(_json_numbers(json.loads(b.read_text())))
        else:
            xa, xb = _arrays(old / rel), _arrays(b)
        keys = sorted(set(xa) | set(xb))
        bad = [k for k in keys if k not in xa or k not in xb or not _same(xa[k], xb[k])]
        status = "same" if not bad else "DIFFERS"
        print(f"{status:8} {rel}: {len(keys) - len(bad)}/{len(keys)} values identical")
        for k in bad[:40]:
            print(f"           {k}: {xa.get(k, '<absent>')!r:.80} -> {xb.get(k, '<absent>')!r:.80}")
        differing += bool(bad)
    print(f"{len(files)} files compared, {differing} differ")
    return 1 if differing else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    r = sub.add_parser("run")
    r.add_argument("--checkout", type=Path, default=Path("."))
    r.add_argument("--out", type=Path, required=True)
    r.add_argument(
        "--notebooks",
        nargs="*",
        default=[
            "00_quickstart",
            "01_pretraining",
            "02_top_tagging",
            "03_omnifold_unfolding",
            "04_lhco_anomaly_detection",
        ],
    )
    c = sub.add_parser("compare")
    c.add_argument("old", type=Path)
    c.add_argument("new", type=Path)
    args = parser.parse_args()
    if args.what == "run":
        run(args.checkout.resolve(), args.out.resolve(), args.notebooks)
    else:
        raise SystemExit(compare(args.old, args.new))


if __name__ == "__main__":
    main()
