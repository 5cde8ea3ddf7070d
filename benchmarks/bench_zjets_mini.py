"""zjets-mini: how far apart are the 'sim' and 'data' setups, against the statistical floor?

Generates ``--n`` events per setup with ``jetlab.simulator.generate`` (the settings the notebooks and the
cache use), computes the six OmniFold observables on the particle-level (``gen``) jets and prints,
per observable, the triangular discriminator (x10^3) between sim and data next to its statistical
floor: the TD between two random halves of sim (n/2 vs n/2), averaged over ``--splits`` random
halvings. The ratio TD / floor is the figure to read: it says whether an unfolding can show
anything beyond statistics (the OmniFold paper's Herwig-vs-Pythia difference is many times its
floor in every observable). Binning as the OmniLearn reference: ``linspace(lo, hi, 50)`` over
each observable's range, multiplicity ``linspace(0, 80, 80)``.

    python benchmarks/bench_zjets_mini.py --n 4000
    python benchmarks/bench_zjets_mini.py --n 2000 --json benchmarks/results/zjets_mini_zg_stress.json
    python benchmarks/bench_zjets_mini.py --n 2000 --no-zg-stress

'data' is generated as the notebooks get it, with the z_g stress test on
(:func:`jetlab.simulator.generate.zg_stress_weight`: 'data' events kept with a known, smooth probability in
particle-level z_g); ``--no-zg-stress`` measures the Pythia setups alone. ``--json`` writes the table.
    python benchmarks/bench_zjets_mini.py --n 4000 --data-settings "Tune:pp = 21" "TimeShower:alphaSvalue = 0.105"

``--data-settings`` replaces the 'data' setup's tune settings (the Z+jets process settings stay) to
measure a candidate before it goes into :data:`jetlab.simulator.generate.ZJETS_DATA_SETTINGS`.
``--scan`` is the search that chose it: each of :data:`SCAN` (single changes, then combinations,
without the z_g stress test: the scan is about Pythia settings) generated with ``--scan-n`` events against ``--n`` sim events, printing per observable the TD minus
its expected statistical part (the mean TD of a random ``--scan-n`` subset of sim vs the rest) and
the shift of the mean in units of sim's standard deviation.

    python benchmarks/bench_zjets_mini.py --scan --n 4000 --scan-n 1000
    python benchmarks/bench_zjets_mini.py --file ~/.cache/jetlab/zjets-mini-n4000-s0.h5 --scan --scan-n 400 --scan-only vincia
    python benchmarks/bench_zjets_mini.py --n 3000 --variations fsr:cNS=4 fsr:cNS=-2 fsr:cNS=10 fsr:muRfac=0.5

``--variations`` measures Pythia's automated shower variations as event weights instead
(:func:`shower_variations`).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from result_paths import portable_path  # benchmarks/, the script's own folder

OBS = ("mass", "multiplicity", "width", "log_rho", "tau21", "zg")


def reference_edges(name: str) -> np.ndarray:
    """The OmniLearn reference binning of one observable."""
    from jetlab.physics.observables import OBSERVABLES

    if name == "multiplicity":
        return np.linspace(0.0, 80.0, 80)
    lo, hi = OBSERVABLES[name].range
    return np.linspace(lo, hi, 50)


#: Candidate 'data' setups of the scan (settings after the Z+jets process settings).
SCAN: dict[str, tuple[str, ...]] = {
    "A14, FSR alpha_s 0.105 (before)": ("Tune:pp = 21", "TimeShower:alphaSvalue = 0.105"),
    "FSR fixed alpha_s 0.12": ("Tune:pp = 14", "TimeShower:alphaSorder = 0", "TimeShower:alphaSvalue = 0.12"),
    "FSR CMW alpha_s": ("Tune:pp = 14", "TimeShower:alphaSuseCMW = on"),
    "FSR scale factor 4": ("Tune:pp = 14", "TimeShower:renormMultFac = 4"),
    "FSR power shower": ("Tune:pp = 14", "TimeShower:pTmaxMatch = 2"),
    "FSR cutoff 1.5 GeV": ("Tune:pp = 14", "TimeShower:pTmin = 1.5"),
    "FSR global recoil": ("Tune:pp = 14", "TimeShower:globalRecoil = on"),
    "MPI pT0 1.8, QCD CR": ("Tune:pp = 14", "MultipartonInteractions:pT0Ref = 1.8", "ColourReconnection:mode = 1"),
    "Lund a 1.0, b 0.6, sigma 0.45": ("Tune:pp = 14", "StringZ:aLund = 1.0", "StringZ:bLund = 0.6", "StringPT:sigma = 0.45"),
    "quark jets only (qg -> Zq)": ("Tune:pp = 14", "WeakBosonAndParton:qqbar2gmZg = off"),
    "gluon jets only (qqbar -> Zg)": ("Tune:pp = 14", "WeakBosonAndParton:qg2gmZq = off"),
    "scale 4 + Lund a 2.0, b 0.3, sigma 0.5": ("Tune:pp = 14", "TimeShower:renormMultFac = 4", "StringZ:aLund = 2.0",
                                               "StringZ:bLund = 0.3", "StringPT:sigma = 0.5"),
    "alpha_s 0.11 + Lund a 2.0, b 0.3, sigma 0.6": ("Tune:pp = 14", "TimeShower:alphaSvalue = 0.11", "StringZ:aLund = 2.0",
                                                    "StringZ:bLund = 0.3", "StringPT:sigma = 0.6"),
    "CMW + Lund a 2.0, b 0.3, sigma 0.5 (chosen)": ("Tune:pp = 14", "TimeShower:alphaSuseCMW = on", "StringZ:aLund = 2.0",
                                                    "StringZ:bLund = 0.3", "StringPT:sigma = 0.5"),
    # the z_g search (none moves it): recoil, ISR, MPI, matrix-element corrections, g -> qq kernel, a large
    # coupling, and Vincia's antenna shower (about 10x slower: scan it with a smaller --scan-n)
    "FSR no beam recoil": ("Tune:pp = 14", "TimeShower:allowBeamRecoil = off"),
    "ISR off": ("Tune:pp = 14", "PartonLevel:ISR = off"),
    "MPI off": ("Tune:pp = 14", "PartonLevel:MPI = off"),
    "FSR ME corrections off": ("Tune:pp = 14", "TimeShower:MEcorrections = off"),
    "g -> qq kernel weight 4 (changes no event here: a null control)": ("Tune:pp = 14", "TimeShower:weightGluonToQuark = 4"),
    "ISR dipole recoil": ("Tune:pp = 14", "SpaceShower:dipoleRecoil = on"),
    "FSR fixed alpha_s 0.15": ("Tune:pp = 14", "TimeShower:alphaSorder = 0", "TimeShower:alphaSvalue = 0.15"),
    "FSR alpha_s(mZ) 0.2": ("Tune:pp = 14", "TimeShower:alphaSvalue = 0.2"),
    "Vincia shower (no QED)": ("Tune:pp = 14", "PartonShowers:model = 2", "Vincia:ewMode = 0"),
    "Vincia global shower (sector off, no QED)": (
        "Tune:pp = 14",
        "PartonShowers:model = 2",
        "Vincia:ewMode = 0",
        "Vincia:sectorShower = off",
    ),
}


def _data_only(settings: tuple[str, ...], n: int, seed: int, level: str) -> dict[str, np.ndarray]:
    """Observables of ``n`` 'data' events generated in this process with ``settings``."""
    from jetlab.data.schema import JetSet
    from jetlab.physics import compute_observables
    from jetlab.simulator import generate as G

    spec = G.GENERATORS["zjets-mini"]
    cand = dataclasses.replace(spec, samples=(G.Sample("data", G._ZJETS_BASE + tuple(settings), 1),))
    opts = G._check("zjets-mini", n, {"zg_stress": False})
    chunks = [c for c in G.plan_chunks("zjets-mini", n, seed, opts) if c.sample == "data"]
    parts = [G._zjets_chunk(cand, c)[f"data_{level}"] for c in chunks]
    return compute_observables(JetSet.concatenate(parts), OBS)


def scan(sim: dict[str, np.ndarray], n: int, seed: int, level: str, draws: int = 20, only: list[str] | None = None) -> None:
    """Print the scan table: TD minus its statistical part, and the mean shift in sim sd (the candidates
    whose name contains one of ``only``, all without)."""
    from jetlab.physics.metrics import triangular_discriminator_samples as td

    rng = np.random.default_rng(seed)
    m = len(sim["mass"])
    perms = [rng.permutation(m) for _ in range(draws)]
    stat = {o: float(np.mean([td(sim[o][p[:n]], sim[o][p[n:]], reference_edges(o)) for p in perms])) for o in OBS}
    print(f"\nscan: {n} candidate events vs {m} sim; per observable TD - stat (x10^3) / mean shift in sim sd; "
          "stat = " + ", ".join(f"{o} {v:.1f}" for o, v in stat.items()))
    print("| candidate 'data' | seconds | " + " | ".join(OBS) + " |")
    print("|---|--:|" + "--:|" * len(OBS))
    for name, settings in SCAN.items():
        if only and not any(o.lower() in name.lower() for o in only):
            continue
        t0 = time.perf_counter()
        c = _data_only(settings, n, seed + 1, level)
        cells = [f"{td(c[o], sim[o], reference_edges(o)) - stat[o]:.1f} / {(c[o].mean() - sim[o].mean()) / sim[o].std():+.2f}"
                 for o in OBS]
        print(f"| {name} | {time.perf_counter() - t0:.0f} | " + " | ".join(cells) + " |", flush=True)


def shower_variations(variations: list[str], n: int, seed: int) -> None:
    """Pythia's automated shower variations (``UncertaintyBands``, e.g. ``fsr:cNS=10``: the
    non-singular terms of the FSR splitting kernels, which weight the hard splittings z_g is made of;
    ``fsr:muRfac=0.5``) as event weights on ``n`` Monash (sim) events, particle level: per observable
    the TD (x10^3) between the nominal and the reweighted histogram of the *same* events and the mean
    shift in units of sim's sd. A reweighting that moved z_g could be unweighted into a 'data' setup;
    the selection is the leading particle-level jet (pT > 100 GeV, |eta| < 2.5), no detector level."""
    import awkward as ak

    from jetlab.data.schema import JetSet
    from jetlab.physics import compute_observables
    from jetlab.simulator import generate as G
    from jetlab.simulator.pythia_jets import PythiaSource, cluster, fill_particles, jet_array

    names = [f"v{i}" for i in range(len(variations))]
    listing = ", ".join(f"{k} {v}" for k, v in zip(names, variations))
    src = PythiaSource(G._ZJETS_BASE + ("Tune:pp = 14", "UncertaintyBands:doVariations = on",
                                        f"UncertaintyBands:List = {{{listing}}}"), seed)
    weights, parts = [], []
    t0, rows = time.perf_counter(), 0
    while rows < n:
        run = src.pythia.nextBatch(250, "skip")
        w = np.asarray(ak.to_list(run["info"]["weights"]), dtype=np.float64)
        b = src.batch_of(run)
        gpt, geta, gphi, ge, gev, gfeat = G._gen_particles(b)
        gj = cluster(gpt, geta, gphi, ge, gev, b.n_events, 0.4, 20.0)
        lead = gj.index_of_rank(0, b.n_events)
        ok = lead >= 0
        ok[ok] &= (gj.pt[lead[ok]] > 100.0) & (np.abs(gj.eta[lead[ok]]) < 2.5)
        evs = np.nonzero(ok)[0]
        p, m, mult = fill_particles(gj, lead[evs], gfeat, gpt, 101)
        parts.append((p, m, jet_array(gj, lead[evs], mult)))
        weights.append(w[evs])
        rows += len(evs)
    w_all = np.concatenate(weights)[:n]
    js = JetSet(particles=np.concatenate([q[0] for q in parts])[:n], mask=np.concatenate([q[1] for q in parts])[:n],
                jets=np.concatenate([q[2] for q in parts])[:n], labels=np.zeros(n, np.int64))
    obs = compute_observables(js, OBS)
    print(f"\nshower variations as weights on {n} sim events ({time.perf_counter() - t0:.0f} s); per observable "
          "TD(nominal, reweighted) x10^3 / mean shift in sim sd")
    print("| variation | weights: mean, sd, max, n_eff | " + " | ".join(OBS) + " |")
    print("|---|---|" + "--:|" * len(OBS))
    for k, v in enumerate(variations, start=1):
        wv = w_all[:, k]
        n_eff = wv.sum() ** 2 / np.sum(wv**2)
        cells = []
        for o in OBS:
            e = reference_edges(o)
            h0 = np.histogram(obs[o], e)[0].astype(float)
            h1 = np.histogram(obs[o], e, weights=wv)[0]
            p0, p1 = h0 / h0.sum(), h1 / h1.sum()
            s_ = p0 + p1
            tdv = 0.5 * np.sum(np.divide((p0 - p1) ** 2, s_, out=np.zeros_like(s_), where=s_ > 0)) * 1e3
            shift = (np.average(obs[o], weights=wv) - obs[o].mean()) / obs[o].std()
            cells.append(f"{tdv:.1f} / {shift:+.3f}")
        print(f"| {v} | {wv.mean():.2f}, {wv.std():.2f}, {wv.max():.1f}, {n_eff:.0f} | " + " | ".join(cells) + " |")


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
    ap.add_argument("--no-zg-stress", action="store_true", help="'data' without the z_g stress test")
    ap.add_argument("--json", default=None, metavar="PATH", help="write the separation table (raw numbers) here")
    ap.add_argument("--file", default=None, help="an existing zjets-mini file instead of generating one")
    ap.add_argument("--data-settings", nargs="+", default=None, metavar="SETTING",
                    help="Pythia settings of a candidate 'data' setup (replacing ZJETS_DATA_SETTINGS)")
    ap.add_argument("--scan", action="store_true", help="also run the candidate scan (SCAN) against sim")
    ap.add_argument("--scan-n", type=int, default=1000, help="events per scan candidate")
    ap.add_argument("--scan-only", nargs="+", default=None, metavar="TEXT",
                    help="scan only the candidates whose name contains one of these (case-insensitive)")
    ap.add_argument("--variations", nargs="+", default=None, metavar="VAR",
                    help="only: Pythia shower variations (e.g. fsr:cNS=10 fsr:muRfac=0.5) as weights on --n sim events")
    args = ap.parse_args()
    if args.variations:
        shower_variations(args.variations, args.n, args.seed)
        return

    from jetlab.simulator import generate as G
    from jetlab.simulator.generate import GENERATORS, generate

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
                                                          workers=args.workers, progress=False,
                                                          zg_stress=not args.no_zg_stress)
        gen_s = time.perf_counter() - t0
        sets = read_jetsets(path)
        from jetlab.data.schema import inspect_file

        file_info = inspect_file(path).info
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
    if args.json:
        import json

        doc = {"command": "python benchmarks/bench_zjets_mini.py " + " ".join(map(portable_path, sys.argv[1:])),
               "n_events_per_setup": n, "seed": args.seed, "level": args.level, "splits": args.splits,
               "zg_stress": bool(file_info.get("options", {}).get("zg_stress", False)),
               "samples": file_info.get("samples"), "generation_seconds": round(gen_s, 1),
               "load_average": [round(load0, 2), round(os.getloadavg()[0], 2)], "cores": os.cpu_count(),
               "td_x1e3_reference_binning": res}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(doc, indent=1) + "\n")
        print(f"wrote {args.json}")
    if args.scan:
        scan(obs["sim"], args.scan_n, args.seed, args.level, only=args.scan_only)


if __name__ == "__main__":
    main()
