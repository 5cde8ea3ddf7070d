"""Reader and convert throughput on replicas of the five public datasets, next to a bare load.

Each dataset's replica is written in its publisher's format (tests/fixtures_formats.write_replica:
uproot ROOT in tarballs, gzipped h5py shards in MeV, numpy npz, pandas/PyTables HDF5 with blosc,
h5py HDF5). In the same run and on the same files it times:

* jetlab's reader (``read_*``: units, pT ordering, padding, checks) and ``convert`` (reader +
  writing the schema file), in jets/s (LHCO: events/s; each gives two jets);
* the bare library load of the same files (uproot ``arrays``, h5py ``[:]`` of every key,
  ``np.load`` of every array, ``pandas.read_hdf``): the floor any reader pays;
* for LHCO also the per-event FastJet loop (classic PseudoJet API, one ClusterSequence per
  event), which read_lhco's one-call-per-chunk clustering must beat by >= 2x (asserted here,
  with the same jets checked on 50 events);
* the projected time to convert each full published dataset at the measured convert rate, on
  one core and on 16 (files converted independently, one process per core: linear scaling is
  an upper bound; LHCO is one file, so 16 cores do not help it).

Usage: python benchmarks/bench_readers.py [--scale 1.0]   (default run: about 2 minutes on 2 cores)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core per process: the 16-core projection scales from it

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from fixtures_formats import write_replica  # noqa: E402

from jetlab.data.readers import (  # noqa: E402
    PandasFrame,
    convert,
    raw_files,
    read_aspen,
    read_atlas_toptag,
    read_jetclass,
    read_lhco,
    read_omnifold,
)

#: Full published sizes (jets; LHCO: events), from data_manifests/ and the publishers' pages.
FULL_SIZES = {
    "jetclass": 125_000_000,  # 100M train + 5M val + 20M test
    "atlas_toptag": 103_127_240,  # 92,820,427 train + 10,306,813 test (record 80030)
    "omnifold_zjets": 6_400_000,  # ~1.6M events x 4 generators
    "lhco_rnd": 1_100_000,  # 1M QCD + 100k signal events
    "aspen_open_jets": 180_000_000,
}


def best_time(fn, repeat: int = 2) -> float:
    best = np.inf
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def fastjet_loop(path: Path, R: float = 1.0) -> list:
    """The peer: classic fastjet, one ClusterSequence per event, two leading jets (mass, count)."""
    import fastjet

    data = PandasFrame(path).read()
    jd = fastjet.JetDefinition(fastjet.antikt_algorithm, R)
    out = []
    for row in data:
        p = row[:2100].reshape(700, 3)
        p = p[p[:, 0] > 0]
        px, py, pz, e = p[:, 0] * np.cos(p[:, 2]), p[:, 0] * np.sin(p[:, 2]), p[:, 0] * np.sinh(p[:, 1]), p[:, 0] * np.cosh(p[:, 1])
        cs = fastjet.ClusterSequence([fastjet.PseudoJet(*map(float, v)) for v in zip(px, py, pz, e)], jd)
        out.append(sorted(j.m() for j in fastjet.sorted_by_pt(cs.inclusive_jets())[:2]))
    return out


def bare_h5py(files):
    import h5py

    for f in files:
        with h5py.File(f, "r") as h:
            {k: h[k][:] for k in h}


def bare_uproot(files):
    import uproot

    for f in files:
        with uproot.open(f) as h:
            h["tree"].arrays(library="ak")


def bare_npz(files):
    for f in files:
        with np.load(f) as z:
            {k: z[k] for k in z.files}


def fmt_time(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scale", type=float, default=1.0, help="multiply the replica sizes")
    ap.add_argument("--datasets", nargs="+", default=list(FULL_SIZES), choices=list(FULL_SIZES))
    ap.add_argument("--json", type=Path, default=None, help="write the raw rows (rates per second, machine, load) here")
    args = ap.parse_args()
    load_before = os.getloadavg()
    t_start = time.perf_counter()
    sizes = {"jetclass": 3000, "atlas_toptag": 12000, "omnifold_zjets": 4000, "lhco_rnd": 800, "aspen_open_jets": 4000}
    sizes = {k: max(int(v * args.scale), 20) for k, v in sizes.items()}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        import warnings

        warnings.simplefilter("ignore")
        for name in args.datasets:
            t0 = time.perf_counter()
            kw = {"generators": ["Pythia21"]} if name == "omnifold_zjets" else {}
            rep = write_replica(name, tmp / name, n_jets=sizes[name], seed=0, **kw)
            t_write = time.perf_counter() - t0
            files = raw_files(name, rep.directory)
            if name == "jetclass":
                src, n = files["val"], rep.n("val")
                read = lambda: read_jetclass(src)  # noqa: E731
                bare, bare_name = (lambda: bare_uproot(src)), "uproot arrays"
            elif name == "atlas_toptag":
                src, n = files["train"], rep.n("train")
                t_gz = time.perf_counter()
                read_atlas_toptag(src, stop=1)  # first touch decompresses the shards once
                t_gz = time.perf_counter() - t_gz
                plain = [p.with_suffix("") for p in src]
                read = lambda: read_atlas_toptag(src)  # noqa: E731
                bare, bare_name = (lambda: bare_h5py(plain)), "h5py [:] all keys"
            elif name == "omnifold_zjets":
                src, n = files["Pythia21"], rep.n("Pythia21")
                read = lambda: read_omnifold(src)  # noqa: E731
                bare, bare_name = (lambda: bare_npz(src)), "np.load all arrays"
            elif name == "lhco_rnd":
                src, n = files["events"], rep.n("events")
                read = lambda: read_lhco(src[0])  # noqa: E731
                import pandas as pd

                bare, bare_name = (lambda: pd.read_hdf(src[0], "df")), "pandas.read_hdf"
                read_lhco(src[0], stop=5)  # fastjet banner, imports
            else:
                src, n = files["jets"], rep.n("jets")
                read = lambda: read_aspen(src)  # noqa: E731
                bare, bare_name = (lambda: bare_h5py(src)), "h5py [:] all keys"
            t_read = best_time(read)
            t_bare = best_time(bare)
            t_conv = best_time(lambda: convert(name, src, tmp / f"{name}.h5"), repeat=1)
            row = dict(name=name, n=n, write=t_write, read=n / t_read, bare=n / t_bare, bare_name=bare_name, convert=n / t_conv)
            if name == "atlas_toptag":
                row["gunzip"] = n / t_gz
            if name == "lhco_rnd":
                t_loop = best_time(lambda: fastjet_loop(src[0]), repeat=1)
                ref = fastjet_loop(src[0])[:50]
                got = read_lhco(src[0], stop=50)
                masses = np.sort(np.stack([got["jet1"].jets[:, 3], got["jet2"].jets[:, 3]], 1), 1)
                np.testing.assert_allclose(masses, np.asarray(ref), rtol=1e-4)
                row["fastjet_loop"] = n / t_loop
                assert row["read"] >= 2 * row["fastjet_loop"], f"read_lhco is only {row['read'] / row['fastjet_loop']:.1f}x the per-event loop"
            rows.append(row)
            print(f"{name}: {n} {'events' if name == 'lhco_rnd' else 'jets'} (replica written in {t_write:.1f} s): "
                  f"read {row['read']:.0f}/s, convert {row['convert']:.0f}/s, {bare_name} {row['bare']:.0f}/s"
                  + (f", gunzip once {row['gunzip']:.0f}/s" if "gunzip" in row else "")
                  + (f", per-event fastjet loop {row['fastjet_loop']:.0f}/s (read_lhco x{row['read'] / row['fastjet_loop']:.1f})" if "fastjet_loop" in row else ""),
                  flush=True)

    print("\n| dataset | replica | jetlab read /s | jetlab convert /s | bare load /s (what) | peer | full size | convert, 1 core | convert, 16 cores |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        full = FULL_SIZES[r["name"]]
        t1 = full / r["convert"]
        t16 = t1 if r["name"] == "lhco_rnd" else t1 / 16
        peer = f"per-event FastJet loop {r['fastjet_loop']:.0f}/s: read_lhco **{r['read'] / r['fastjet_loop']:.1f}x**" if "fastjet_loop" in r else (
            f"gunzip once {r['gunzip']:.0f}/s" if "gunzip" in r else "-")
        unit = "events" if r["name"] == "lhco_rnd" else "jets"
        print(f"| {r['name']} | {r['n']} {unit} | {r['read']:.0f} | {r['convert']:.0f} | {r['bare']:.0f} ({r['bare_name']}) | {peer} | "
              f"{full / 1e6:.1f}M {unit} | {fmt_time(t1)} | {fmt_time(t16)}{' (one file)' if r['name'] == 'lhco_rnd' else ''} |")

    if args.json:
        repo = Path(__file__).resolve().parents[1]
        out = args.json.resolve()
        raw = {
            "command": "python benchmarks/bench_readers.py " + " ".join(sys.argv[1:]).replace(str(repo) + "/", ""),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
            "load_average_before": list(load_before),
            "load_average_after": list(os.getloadavg()),
            "wall_s": round(time.perf_counter() - t_start, 1),
            "units": "rates in rows per second (events for lhco_rnd, jets otherwise); write in seconds",
            "full_sizes": {r["name"]: FULL_SIZES[r["name"]] for r in rows},
            "rows": rows,
        }
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(raw, indent=1) + "\n")
        print(f"wrote {out.relative_to(repo) if out.is_relative_to(repo) else out}")


if __name__ == "__main__":
    main()
