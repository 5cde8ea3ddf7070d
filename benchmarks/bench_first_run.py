"""The constants behind the first-run notices (``about N minutes on this machine``):

* seconds per row of each offline generator in one worker process
  (:data:`jetlab.data.cache.SECONDS_PER_ROW`): ``--rows`` rows with the generator's default
  options (lhco-mini 10% signal), after one untimed warm-up request that imports Pythia/FastJet;
  per-chunk Pythia initialisation is included, as in a real request;
* seconds per jet and epoch of the fallback pretraining that notebooks 02-04 run when no
  checkpoint exists: the same ``jetlab.train.pretrain`` call (tiny PET, CPU recipe, 64 particles)
  on ``--pretrain-jets`` cached jetclass-mini jets for ``--pretrain-epochs`` epochs.

    python benchmarks/bench_first_run.py --rows 400 --pretrain-jets 1000 --pretrain-epochs 2 \
        --json benchmarks/results/first_run.json

``--json`` writes the raw figures (machine, load before and after, seconds and per-unit rates) that
the constants quote.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=400, help="rows per generator (default 400)")
    ap.add_argument("--generators", nargs="*", default=None, help="default: all of jetlab.simulator.generate.GENERATORS")
    ap.add_argument("--pretrain-jets", type=int, default=1000)
    ap.add_argument("--pretrain-epochs", type=int, default=2)
    ap.add_argument("--json", type=Path, default=None, help="write the raw figures to this file")
    args = ap.parse_args()
    result: dict = {"machine": f"{platform.machine()}, {os.cpu_count()} cores", "generators": {}}

    from jetlab.data.cache import dataset_file
    from jetlab.simulator.generate import GENERATORS, generate

    names = sorted(GENERATORS) if args.generators is None else args.generators
    load = os.getloadavg()
    result["load_before"] = [round(x, 2) for x in load]
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        generate("jetclass-mini", 5, tmp / "warm.h5", workers=1, progress=False, classes=("QCD",))
        print("| step | size | seconds | seconds per unit |")
        print("|---|---|---|---|")
        for name in names:
            start = time.perf_counter()
            generate(name, args.rows, tmp / f"{name}.h5", workers=1, progress=False)
            sec = time.perf_counter() - start
            print(f"| generate {name}, 1 worker | {args.rows} rows | {sec:.1f} | {sec / args.rows:.4f} per row |", flush=True)
            result["generators"][name] = {"rows": args.rows, "seconds": round(sec, 2), "seconds_per_row": sec / args.rows}
        if args.pretrain_jets > 0:  # the call jetlab's fallback pretraining makes, data cached first
            from jetlab.train import CPU_RECIPE, pretrain

            os.environ["JETLAB_CACHE"] = str(tmp / "cache")
            dataset_file("jetclass-mini", args.pretrain_jets, seed=0, progress=False)
            start = time.perf_counter()
            pretrain("jetclass-mini", tmp / "pet", model_config="tiny", epochs=args.pretrain_epochs, n_jets=args.pretrain_jets,
                     seed=0, device="cpu", progress=False, max_particles=64, **CPU_RECIPE)
            sec = time.perf_counter() - start
            units = args.pretrain_jets * args.pretrain_epochs
            print(f"| fallback pretraining (tiny PET, CPU recipe) | {args.pretrain_jets} jets x {args.pretrain_epochs} epochs "
                  f"| {sec:.1f} | {sec / units:.5f} per jet-epoch |", flush=True)
            result["fallback_pretraining"] = {"jets": args.pretrain_jets, "epochs": args.pretrain_epochs,
                                              "seconds": round(sec, 2), "seconds_per_jet_epoch": sec / units}
    result["load_after"] = [round(x, 2) for x in os.getloadavg()]
    print(f"load average after: {result['load_after'][0]:.1f}")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
