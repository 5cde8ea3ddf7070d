"""CATHODE at realistic signal fractions: max SIC against the injected S/B in the signal region.

Notebook 04's cpu-quick search (``run_anomaly`` with the cpu-quick profile's settings) repeated for
several amounts of injected signal. For each target S/B in the SR the number of injected signal
events is ``round(S/B * N_B(SR) / f_SR)``, with N_B(SR) the SR background of the pseudo-data and
f_SR the fraction of signal events that fall in the SR (both counted on the events themselves).
The scan itself is :func:`jetlab.tasks.anomaly.scan_signal_fraction` (notebook 04 computes a small one
when no saved scan is found, and otherwise plots the one this script saves). Reports max SIC (mean and spread over seeds) for CATHODE with the pretrained generator, CATHODE
from scratch, the idealised detector and the supervised classifier, and the lowest S/B at which
each keeps max SIC beyond its seed spread above what a *random* score reaches on the same events
(mean - spread > the 95th percentile of a random score's max SIC: with few signal events and a
10-background-event floor, a random score's max SIC fluctuates above 1, e.g. 1.05 on average and
1.15 at the 95th percentile for 17 signal and 335 background events). ``--summarize JSON``
recomputes the table and the random baselines from a saved scan without rerunning it.

    python benchmarks/bench_cathode_scan.py --sb 0.5 0.2 0.1 0.05 0.02 --seeds 0 1 2 \\
        --out benchmarks/results/cathode_scan.json

``--device cuda`` and larger ``--n-events`` for the GPU. The JSON is written atomically after
every S/B point, so an interrupted scan keeps what it finished; ``--resume`` continues it (same
settings and seeds, or it refuses), running only the S/B targets the file lacks.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from result_paths import portable_path  # noqa: E402  (benchmarks/, the script's own folder)

from jetlab.notebook_params import load_profile  # noqa: E402
from jetlab.tasks.anomaly import SignalFractionScan, scan_signal_fraction  # noqa: E402

NOTEBOOK = "04_lhco_anomaly_detection"
#: run_anomaly keywords taken from the profile (the notebook's own names where they differ)
PROFILE_TO_RUN = {"dataset": "data", "model": "model", "n_events": "n_events", "file_signal_fraction": "file_signal_fraction",
                  "max_particles": "max_particles", "epochs": "epochs", "gen_epochs": "gen_epochs",
                  "jet_gen_epochs": "jet_gen_epochs", "gen_steps": "gen_steps", "oversample": "oversample",
                  "kfolds": "kfolds", "batch_size": "batch_size", "checkpoint": "checkpoint"}


def markdown(scan: SignalFractionScan) -> str:
    return scan.table() + "\n\n" + "\n".join(f"- {line}" for line in scan.summary().splitlines())


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
    ap.add_argument("--resume", action="store_true", help="keep the points already in --out, run only the missing S/B")
    ap.add_argument("--summarize", type=Path, default=None, help="only print (and complete) the table of a saved scan")
    args = ap.parse_args(argv)
    if args.summarize:
        scan = SignalFractionScan.load(args.summarize)
        scan.save(args.summarize)
        print(markdown(scan))
        return 0
    if any(not 0 < s for s in args.sb):
        ap.error(f"--sb must be positive, got {args.sb}")
    if args.resume and args.out is None:
        ap.error("--resume needs --out (the partial scan to continue)")
    resume = SignalFractionScan.load(args.out) if args.resume and args.out.is_file() else None
    prof = load_profile(args.profile).get(NOTEBOOK, {})
    kwargs = {run: prof[p] for p, run in PROFILE_TO_RUN.items() if p in prof}
    if args.n_events:
        kwargs["n_events"] = args.n_events
    if args.checkpoint:
        kwargs["checkpoint"] = args.checkpoint
    data = kwargs.pop("data", "lhco-mini")
    if resume is not None:  # the file holds portable paths (below): compare it with this run's own
        for k, v in kwargs.items():
            if resume.settings.get(k) == portable_path(v):
                resume.settings[k] = v
    t_all = time.perf_counter()

    def save(partial: SignalFractionScan) -> None:
        p = partial.points[-1]  # scan_signal_fraction appends each new point, also when it resumes
        print(f"S/B {p['sr_s_over_b']:.3f} ({p['n_injected']} injected): {p['seconds']:.0f} s", flush=True)
        if args.out:
            portable = {k: portable_path(v) for k, v in partial.settings.items()}  # no temp paths in results
            dataclasses.replace(partial, settings=portable).save(
                args.out, profile=args.profile, load_average=os.getloadavg()
            )

    scan = scan_signal_fraction(data, sb_targets=args.sb, seeds=args.seeds, device=args.device,
                                output_dir=args.output_dir, progress=False, on_point=save, resume=resume, **kwargs)
    print(markdown(scan))
    print(f"total {time.perf_counter() - t_all:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
