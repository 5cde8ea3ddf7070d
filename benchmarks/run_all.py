"""Run every benchmark once with quick settings and print a markdown summary.

Each script runs in its own process with a time limit; its ratio lines (the meaningful
figures: peers measured in the same run) are collected into one table, followed by the
machine description (CPU model, cores, torch version, load average) they came from.

    python benchmarks/run_all.py [--timeout 600] [--only bench_model bench_readers] [--log-dir DIR]
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent

#: script -> quick arguments (each should finish in a few minutes on 2 shared CPU cores)
QUICK: dict[str, list[str]] = {
    "bench_model": [],
    "bench_dataloading": ["--n-jets", "8000"],
    "bench_readers": [],
    "bench_generator": ["--jets-per-class", "60"],
    "bench_equal_walltime": ["--n-jets", "1000", "--seconds", "20"],
    "bench_omnifold_convergence": ["--seeds", "2", "--n-jets", "2000", "--epochs", "2"],
}
RATIO = re.compile(r"ratio|speed-?up|overhead|\d(\.\d+)?x\b|\bx\d", re.IGNORECASE)


def machine() -> dict[str, str]:
    """CPU model, visible cores, torch version and the 1/5/15-minute load averages."""
    model = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        cores = os.cpu_count() or 0
    try:
        import torch

        tv = torch.__version__
    except ImportError:  # pragma: no cover
        tv = "not installed"
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    return {"cpu": model, "cores": str(cores), "torch": tv, "python": platform.python_version(), "load (1/5/15 min)": load}


def run(name: str, args: list[str], timeout: float) -> tuple[str, float, str]:
    t0 = time.perf_counter()
    # own session: on timeout the whole group (Pythia worker pools included) is stopped
    proc = subprocess.Popen([sys.executable, str(HERE / f"{name}.py"), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
        status = "ok" if proc.returncode == 0 else f"exit {proc.returncode}"
        out = stdout + ("\n" + stderr[-3000:] if proc.returncode else "")
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, _ = proc.communicate()
        status = f"stopped after {timeout:.0f} s"
        out = stdout or ""
    return status, time.perf_counter() - t0, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds per benchmark")
    ap.add_argument("--only", nargs="+", choices=sorted(QUICK), help="run only these")
    ap.add_argument("--log-dir", type=Path, default=None, help="also write each script's full output here")
    a = ap.parse_args()
    before = machine()
    rows = []
    for name in a.only or QUICK:
        if not (HERE / f"{name}.py").exists():
            rows.append((name, "missing", 0.0, []))
            continue
        print(f"running {name} {' '.join(QUICK[name])} ...", file=sys.stderr, flush=True)
        status, wall, out = run(name, QUICK[name], a.timeout)
        if a.log_dir:
            a.log_dir.mkdir(parents=True, exist_ok=True)
            (a.log_dir / f"{name}.txt").write_text(out)
        ratios = [ln.strip() for ln in out.splitlines() if RATIO.search(ln)]
        rows.append((name, status, wall, ratios))
    after = machine()
    print("| benchmark | quick args | status | wall [s] | ratio lines |")
    print("|---|---|---|---|---|")
    for name, status, wall, ratios in rows:
        cell = "<br>".join(r.replace("|", "\\|") for r in ratios[:12]) or "-"
        print(f"| {name} | `{' '.join(QUICK.get(name, []))}` | {status} | {wall:.0f} | {cell} |")
    print()
    for k, v in before.items():
        extra = f" (after: {after[k]})" if k.startswith("load") else ""
        print(f"- {k}: {v}{extra}")


if __name__ == "__main__":
    main()
