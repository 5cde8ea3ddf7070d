"""CATHODE at realistic signal fractions: max SIC against the injected S/B in the signal region.

Notebook 04's cpu-quick search (``run_anomaly`` with the cpu-quick profile's settings) repeated for
several amounts of injected signal. For each target S/B in the SR the number of injected signal
events is ``round(S/B * N_B(SR) / f_SR)``, with N_B(SR) the SR background of the pseudo-data and
f_SR the fraction of signal events that fall in the SR (both counted on the events themselves).
Reports max SIC (mean and spread over seeds) for CATHODE with the pretrained generator, CATHODE
from scratch, the idealised detector and the supervised classifier, and the lowest S/B at which
each keeps max SIC beyond its seed spread above what a *random* score reaches on the same events
(mean - spread > the 95th percentile of a random score's max SIC: with few signal events and a
10-background-event floor, a random score's max SIC fluctuates above 1, e.g. 1.05 on average and
1.15 at the 95th percentile for 17 signal and 335 background events). ``--summarize JSON``
recomputes the table and the random baselines from a saved scan without rerunning it.

    python benchmarks/bench_cathode_scan.py --sb 0.5 0.2 0.1 0.05 0.02 --seeds 0 1 2 \\
        --out benchmarks/results/cathode_scan.json

``--device cuda`` and larger ``--n-events`` for the GPU. The JSON is written atomically after
every S/B point, so an interrupted scan keeps what it finished.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from jetlab.notebook_params import load_profile  # noqa: E402
from jetlab.physics.metrics import max_sic  # noqa: E402
from jetlab.tasks.anomaly import MassWindows, inject_signal, load_dijets, run_anomaly  # noqa: E402

NOTEBOOK = "04_lhco_anomaly_detection"
#: run_anomaly keywords taken from the profile (the notebook's own names where they differ)
PROFILE_TO_RUN = {"dataset": "data", "model": "model", "n_events": "n_events", "file_signal_fraction": "file_signal_fraction",
                  "max_particles": "max_particles", "epochs": "epochs", "gen_epochs": "gen_epochs",
                  "jet_gen_epochs": "jet_gen_epochs", "gen_steps": "gen_steps", "oversample": "oversample",
                  "kfolds": "kfolds", "batch_size": "batch_size", "checkpoint": "checkpoint"}


def signal_region_counts(kwargs: dict[str, Any]) -> dict[str, Any]:
    """SR background of the pseudo-data, the signal events' SR fraction and the signal available,
    counted once on the same events run_anomaly reads (they do not depend on the injected amount)."""
    events = load_dijets(kwargs["data"], kwargs["n_events"], seed=0, signal_fraction=kwargs["file_signal_fraction"],
                         max_particles=kwargs["max_particles"])
    windows = MassWindows()
    none = inject_signal(events, 0, seed=0)
    sig = events.labels == 1
    return {"sr_background": int(windows.in_sr(none.data.mjj).sum()),
            "signal_sr_fraction": float(windows.in_sr(events.mjj[sig]).mean()), "n_signal_available": int(sig.sum())}


def injected_for(target_sb: float, counts: dict[str, Any]) -> int:
    """Signal events to inject for an SR S/B of ``target_sb``."""
    n = int(round(target_sb * counts["sr_background"] / counts["signal_sr_fraction"]))
    if n > counts["n_signal_available"]:
        raise SystemExit(f"--sb {target_sb}: needs {n} signal events, the sample has {counts['n_signal_available']}; "
                         "raise --n-events or file_signal_fraction")
    return n


def random_max_sic(n_background: int, n_signal: int, *, trials: int = 300, seed: int = 0,
                   min_background_events: int = 10) -> tuple[float, float]:
    """Mean and 95th percentile of the max SIC of a uniformly random score on ``n_background`` +
    ``n_signal`` events, with the anomaly task's background-event floor: what "no information" reaches."""
    rng = np.random.default_rng(seed)
    y = np.r_[np.zeros(n_background), np.ones(n_signal)]
    v = [max_sic(y, rng.random(len(y)), min_background_events=min_background_events) for _ in range(trials)]
    return float(np.mean(v)), float(np.percentile(v, 95))


def with_random_baseline(point: dict[str, Any]) -> dict[str, Any]:
    if "random_max_sic" not in point:
        n_s = int(round(point["sr_s_over_b"] * point["sr_background"]))
        point["random_max_sic"] = random_max_sic(point["sr_background"], n_s)
    return point


def lowest_sb_found(points: list[dict[str, Any]], method: str) -> float | None:
    """Lowest S/B down to which every point keeps max SIC mean - spread above the random score's
    95th percentile (scanning from high S/B)."""
    found = None
    for p in sorted(points, key=lambda p: -p["sr_s_over_b"]):
        m = p["methods"].get(method)
        if m is None or not m["max_sic"][0] - m["max_sic"][1] > with_random_baseline(p)["random_max_sic"][1]:
            break
        found = p["sr_s_over_b"]
    return found


def markdown(points: list[dict[str, Any]]) -> str:
    methods = list(dict.fromkeys(m for p in points for m in p["methods"]))
    lines = ["| S/B in SR (injected) | S/sqrt(B) | random score (mean / 95%) | " + " | ".join(f"{m} max SIC" for m in methods) + " |",
             "|---|---|---|" + "---|" * len(methods)]
    for p in sorted(points, key=lambda p: -p["sr_s_over_b"]):
        cells = [f"{p['methods'][m]['max_sic'][0]:.2f} ± {p['methods'][m]['max_sic'][1]:.2f}" if m in p["methods"] else "-"
                 for m in methods]
        r = with_random_baseline(p)["random_max_sic"]
        lines.append(f"| {p['sr_s_over_b']:.3f} ({p['n_injected']}) | {p['sr_s_over_sqrt_b']:.2f} | {r[0]:.2f} / {r[1]:.2f} | "
                     + " | ".join(cells) + " |")
    lines.append("")
    for m in methods:
        low = lowest_sb_found(points, m)
        lines.append(f"- {m}: max SIC above a random score's 95th percentile beyond the seed spread down to S/B = "
                     + (f"{low:.3f}" if low is not None else "none of the scanned points"))
    return "\n".join(lines)


def _write_json(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1, default=lambda o: o.tolist() if isinstance(o, np.ndarray) else str(o)))
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sb", type=float, nargs="+", default=[0.5, 0.2, 0.1, 0.05, 0.02], help="target S/B in the SR")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--profile", default="cpu-quick", help="notebook 04 settings from this profile")
    ap.add_argument("--n-events", type=int, default=None, help="override the profile's n_events")
    ap.add_argument("--checkpoint", default=None, help="pretrained checkpoint (default: the profile's, 'auto')")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--output-dir", default="jetlab_output/bench_cathode_scan", help="where the fallback checkpoint goes")
    ap.add_argument("--out", type=Path, default=None, help="JSON (rewritten after every point)")
    ap.add_argument("--summarize", type=Path, default=None, help="only print (and complete) the table of a saved scan")
    args = ap.parse_args(argv)
    if args.summarize:
        doc = json.loads(args.summarize.read_text())
        doc["points"] = [with_random_baseline(p) for p in doc["points"]]
        doc["lowest_sb_found"] = {m: lowest_sb_found(doc["points"], m) for m in doc["points"][-1]["methods"]}
        _write_json(args.summarize, doc)
        print(markdown(doc["points"]))
        return 0
    if any(not 0 < s for s in args.sb):
        ap.error(f"--sb must be positive, got {args.sb}")
    prof = load_profile(args.profile).get(NOTEBOOK, {})
    kwargs = {run: prof[p] for p, run in PROFILE_TO_RUN.items() if p in prof}
    if args.n_events:
        kwargs["n_events"] = args.n_events
    if args.checkpoint:
        kwargs["checkpoint"] = args.checkpoint
    points: list[dict[str, Any]] = []
    t_all = time.perf_counter()
    counts = signal_region_counts(kwargs)
    for sb in args.sb:
        n_signal = injected_for(sb, counts)
        t0 = time.perf_counter()
        res = run_anomaly(**kwargs, n_signal=n_signal, seeds=args.seeds, device=args.device,
                          output_dir=args.output_dir, progress=False)
        summary = res.split.summary(res.windows)
        points.append({"target_sb": sb, "n_injected": n_signal, "sr_background": counts["sr_background"],
                       "signal_sr_fraction": counts["signal_sr_fraction"], "sr_s_over_b": summary["sr_s_over_b"],
                       "sr_s_over_sqrt_b": summary["sr_s_over_sqrt_b"], "seconds": time.perf_counter() - t0,
                       "methods": {m: {"max_sic": v["max_sic"], "auc": v["auc"], "max_sic_per_seed": v["max_sic_per_seed"]}
                                   for m, v in res.metrics_table().items()},
                       "closeness_auc": {k: c["auc"] for k, c in res.closeness().items()}})
        print(f"S/B {summary['sr_s_over_b']:.3f} ({n_signal} injected): {time.perf_counter() - t0:.0f} s", flush=True)
        with_random_baseline(points[-1])
        if args.out:
            _write_json(args.out, {"profile": args.profile, "settings": kwargs, "seeds": args.seeds,
                                   "load_average": os.getloadavg(), "points": points,
                                   "lowest_sb_found": {m: lowest_sb_found(points, m) for m in points[-1]["methods"]}})
    print(markdown(points))
    print(f"total {time.perf_counter() - t_all:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
