"""Reader throughput, as ratios against peers measured in the same run.

1. LHCO: jetlab's read_lhco (one fastjet ClusterSequence over the whole chunk via the awkward
   interface) vs the same clustering done event by event with fastjet's classic PseudoJet API.
2. ATLAS: read_atlas_toptag (h5py row slices) vs pandas-free full-file numpy load of the same keys.

Usage: python benchmarks/bench_readers.py [--events 2000] [--particles 250]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from fixtures_formats import make_atlas_h5, write_lhco_h5  # noqa: E402

from jetlab.data.readers import read_atlas_toptag, read_lhco  # noqa: E402
from jetlab.data.readers.lhco import PandasFrame  # noqa: E402


def lhco_events(n: int, n_particles: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ev = np.zeros((n, n_particles, 3))
    for i in range(n):
        k = n_particles // 2
        for h, phi0 in enumerate((0.0, np.pi)):
            sl = slice(h * k, (h + 1) * k)
            ev[i, sl, 0] = rng.dirichlet(np.ones(k)) * 1500
            ev[i, sl, 1] = rng.normal(0, 0.3, k)
            ev[i, sl, 2] = phi0 + rng.normal(0, 0.3, k)
        ev[i, :, 2] = (ev[i, :, 2] + np.pi) % (2 * np.pi) - np.pi
    return ev


def per_event_loop(path: Path, R: float = 1.0) -> list:
    """The peer: classic fastjet, one ClusterSequence per event, two leading jets."""
    import fastjet

    data = PandasFrame(path).read()
    jd = fastjet.JetDefinition(fastjet.antikt_algorithm, R)
    out = []
    for row in data:
        p = row[:2100].reshape(700, 3)
        p = p[p[:, 0] > 0]
        px, py, pz, e = p[:, 0] * np.cos(p[:, 2]), p[:, 0] * np.sin(p[:, 2]), p[:, 0] * np.sinh(p[:, 1]), p[:, 0] * np.cosh(p[:, 1])
        pjs = [fastjet.PseudoJet(*map(float, v)) for v in zip(px, py, pz, e)]
        cs = fastjet.ClusterSequence(pjs, jd)
        jets = fastjet.sorted_by_pt(cs.inclusive_jets())[:2]
        out.append([(j.m(), len(j.constituents())) for j in jets])
    return out


def timeit(fn, repeat: int = 3) -> float:
    best = np.inf
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=2000)
    ap.add_argument("--particles", type=int, default=250)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        src = write_lhco_h5(d / "lhco.h5", lhco_events(args.events, args.particles), np.zeros(args.events))
        read_lhco(src, stop=10)  # warm-up (fastjet banner, imports)
        t_vec = timeit(lambda: read_lhco(src))
        t_loop = timeit(lambda: per_event_loop(src), repeat=1)
        ref = per_event_loop(src)[:50]
        got = read_lhco(src, stop=50)
        masses = np.sort(np.stack([got["jet1"].jets[:, 3], got["jet2"].jets[:, 3]], 1), 1)
        np.testing.assert_allclose(masses, np.sort([[m for m, _ in r] for r in ref], 1), rtol=1e-4)
        print(f"LHCO {args.events} events x {args.particles} particles: read_lhco {t_vec:.2f} s "
              f"({args.events / t_vec:.0f} ev/s), per-event fastjet loop {t_loop:.2f} s; "
              f"speed-up x{t_loop / t_vec:.1f} (same jets checked on 50 events)")

        n = 20 * args.events
        src = make_atlas_h5(d / "atlas.h5", n, max_clus=200)

        def full_load():
            import h5py

            with h5py.File(src) as f:
                return {k: f[k][:] for k in f}

        t_read = timeit(lambda: read_atlas_toptag(src))
        t_load = timeit(full_load)
        print(f"ATLAS {n} jets: read_atlas_toptag {t_read:.2f} s ({n / t_read:.0f} jets/s) vs raw h5py load of "
              f"all keys {t_load:.2f} s; conversion overhead x{t_read / t_load:.1f}")


if __name__ == "__main__":
    main()
