"""zjets-mini: how far apart are the 'sim' and 'data' setups, against the statistical floor?

Generates ``--n`` events per setup with ``jetlab.data.generate`` (the settings the notebooks and the
cache use), computes the six OmniFold observables on the particle-level (``gen``) jets and prints,
per observable, the triangular discriminator (x10^3) between sim and data next to its statistical
floor: the TD between two random halves of sim (n/2 vs n/2), averaged over ``--splits`` random
halvings. The ratio TD / floor is the figure to read: it says whether an unfolding can show
anything beyond statistics (the OmniFold paper's Herwig-vs-Pythia difference is many times its
floor in every observable). Binning as the OmniLearn reference: ``linspace(lo, hi, 50)`` over
each observable's range, multiplicity ``linspace(0, 80, 80)``.

    python benchmarks/bench_zjets_mini.py --n 4000
    python benchmarks/bench_zjets_mini.py --n 4000 --data-settings "Tune:pp = 21" "TimeShower:alphaSvalue = 0.105"

``--data-settings`` replaces the 'data' setup's tune settings (the Z+jets process settings stay) to
measure a candidate before it goes into :data:`jetlab.data.generate.ZJETS_DATA_SETTINGS`.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time
from pathlib import Path

import numpy as np

OBS = ("mass", "multiplicity", "width", "log_rho", "tau21", "zg")


def reference_edges(name: str) -> np.ndarray:
    """The OmniLearn reference binning of one observable."""
    from jetlab.physics.observables import OBSERVABLES

    if name == "multiplicity":
        return np.linspace(0.0, 80.0, 80)
    lo, hi = OBSERVABLES[name].range
    return np.linspace(lo, hi, 50)


def separation(sim: dict[str, np.ndarray], data: dict[str, np.ndarray], splits: int = 20, seed: int = 0) -> dict:
    """Per observable: TD(sim, data), the half-vs-half floor of sim (mean over ``splits``) and the ratio."""
    from jetlab.physics.metrics import triangular_discriminator_samples as td

    rng = np.random.default_rng(seed)
    n = len(next(iter(sim.values())))
    perms = [rng.permutation(n) for _ in range(splits)]
    out = {}
    for o in OBS:
        e = reference_edges(o)
        d = td(sim[o], data[o], e)
        floors = [td(sim[o][p[: n // 2]], sim[o][p[n // 2:]], e) for p in perms]
        f = float(np.mean(floors))
        out[o] = {"td": d, "floor": f, "floor_sd": float(np.std(floors)), "ratio": d / f,
                  "sim_mean": float(np.mean(sim[o])), "data_mean": float(np.mean(data[o]))}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=4000, help="events per generator setup")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=None, help="generator processes (default: all cores)")
    ap.add_argument("--splits", type=int, default=20, help="random halvings of sim averaged for the floor")
    ap.add_argument("--level", choices=("gen", "reco"), default="gen")
    ap.add_argument("--file", default=None, help="an existing zjets-mini file instead of generating one")
    ap.add_argument("--data-settings", nargs="+", default=None, metavar="SETTING",
                    help="Pythia settings of a candidate 'data' setup (replacing ZJETS_DATA_SETTINGS)")
    args = ap.parse_args()

    from jetlab.data import generate as G
    from jetlab.data.generate import GENERATORS, generate

    if args.data_settings:
        spec = GENERATORS["zjets-mini"]
        samples = tuple(G.Sample(s.name, G._ZJETS_BASE + tuple(args.data_settings), s.label) if s.name == "data" else s
                        for s in spec.samples)
        GENERATORS["zjets-mini"] = dataclasses.replace(spec, samples=samples)
        args.workers = 1  # spawned workers would re-import the registry without the candidate
    from jetlab.data.schema import read_jetsets
    from jetlab.physics import compute_observables

    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(args.file) if args.file else generate("zjets-mini", args.n, Path(tmp) / "z.h5", seed=args.seed,
                                                          workers=args.workers, progress=False)
        gen_s = time.perf_counter() - t0
        sets = read_jetsets(path)
    obs = {k: compute_observables(sets[f"{k}_{args.level}"], OBS) for k in ("sim", "data")}
    res = separation(obs["sim"], obs["data"], args.splits, args.seed)
    n = len(obs["sim"]["mass"])
    for s in GENERATORS["zjets-mini"].samples:
        print(f"{s.name}: {' | '.join(x for x in s.settings if not x.startswith(('WeakBoson', 'WeakZ0', '23:', 'PhaseSpace')))}")
    print(f"\n{n} events per setup ({args.level} level), seed {args.seed}; generated in {gen_s:.0f} s "
          f"(load average {load0:.1f} -> {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores); "
          f"floor = sim {n // 2} vs {n - n // 2}, mean of {args.splits} halvings\n")
    print("| observable | mean sim | mean data | TD sim vs data (x10^3) | floor (x10^3) | TD / floor |")
    print("|---|--:|--:|--:|--:|--:|")
    for o, r in res.items():
        print(f"| {o} | {r['sim_mean']:.4g} | {r['data_mean']:.4g} | {r['td']:.1f} | {r['floor']:.1f} +- {r['floor_sd']:.1f} "
              f"| **{r['ratio']:.1f}** |")
    worst = min(res, key=lambda o: res[o]["ratio"])
    print(f"\nevery observable >= 3x its floor: {'yes' if res[worst]['ratio'] >= 3 else 'NO'} "
          f"(lowest: {worst}, {res[worst]['ratio']:.1f}x)")


if __name__ == "__main__":
    main()
