"""Generator throughput: naive per-particle Python loop vs jetlab.simulator.generate (1 and 2 workers).

All three make jetclass-mini-like jets of the same classes with the same Pythia settings,
detector model and selection (anti-kT R=0.8, 500 < pT < 1000 GeV, |eta| < 2, up to the two
leading jets per event, truth matching for signal). The naive peer calls ``pythia.next()``,
loops over ``pythia.event`` in Python, clusters each event with FastJet PseudoJets and has no
process-level veto. Prints jets/s (wall clock) and ratios measured in the same run.

    python benchmarks/bench_generator.py --jets-per-class 150 --classes QCD Tbqq
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from jetlab.simulator import generate as g
from jetlab.simulator.detector import JETCLASS_LIKE


def naive(sample: g.Sample, n_jets: int, seed: int) -> int:
    import fastjet
    import pythia8mc

    py = pythia8mc.Pythia("", False)
    for s in (*g.PYTHIA_COMMON, *sample.settings, "Random:setSeed = on", f"Random:seed = {seed}"):
        py.readString(s)
    py.init()
    rng = np.random.default_rng(seed)
    jetdef = fastjet.JetDefinition(fastjet.antikt_algorithm, 0.8)
    got = 0
    while got < n_jets:
        if not py.next():
            continue
        rows = []
        for p in py.event:  # the naive per-particle loop
            if p.isFinal():
                rows.append((p.px(), p.py(), p.pz(), p.e(), p.id(), p.charge()))
        a = np.array(rows)
        reco = JETCLASS_LIKE.apply(a[:, 0], a[:, 1], a[:, 2], a[:, 3], a[:, 4].astype(int), a[:, 5],
                                   np.zeros(len(a), int), 1, rng)
        px, pyy = reco.pt * np.cos(reco.phi), reco.pt * np.sin(reco.phi)
        pz = reco.pt * np.sinh(reco.eta)
        pjs = [fastjet.PseudoJet(float(x), float(y), float(z), float(e)) for x, y, z, e in zip(px, pyy, pz, reco.energy)]
        cs = fastjet.ClusterSequence(pjs, jetdef)
        jets = fastjet.sorted_by_pt(cs.inclusive_jets(300.0))[:2]
        cand = [j for j in jets if 500 < j.pt() < 1000 and abs(j.eta()) < 2]
        if not sample.parent:
            got += len(cand)
            continue
        # truth: hadronic decays of the parent in the event record, all quarks within 0.8
        ev = py.event
        ids = np.array([ev[i].id() for i in range(ev.size())])
        st = np.array([ev[i].status() for i in range(ev.size())])
        m1 = np.array([ev[i].mother1() for i in range(ev.size())])
        for root, q in g.decay_groups(ids, st, m1, sample.parent):
            for j in cand:
                idx = [root, *q.tolist()]
                if all(j.delta_R(fastjet.PseudoJet(ev[i].px(), ev[i].py(), ev[i].pz(), ev[i].e())) < 0.8 for i in idx):
                    got += 1
                    break
    return got


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jets-per-class", type=int, default=150)
    ap.add_argument("--classes", nargs="+", default=["QCD", "Tbqq"])
    args = ap.parse_args()
    spec = g.GENERATORS["jetclass-mini"]
    samples = [s for s in spec.samples if s.name in args.classes]
    n = args.jets_per_class * len(samples)

    t = time.perf_counter()
    got = sum(naive(s, args.jets_per_class, 1 + i) for i, s in enumerate(samples))
    r_naive = got / (time.perf_counter() - t)

    rates = {}
    with tempfile.TemporaryDirectory() as tmp:
        for w in (1, 2):
            t = time.perf_counter()
            g.generate("jetclass-mini", n, Path(tmp) / f"w{w}.h5", workers=w, seed=1, progress=False,
                       classes=tuple(args.classes), chunk_size=args.jets_per_class)
            rates[w] = n / (time.perf_counter() - t)

    print(f"classes {args.classes}, {args.jets_per_class} jets per class (wall clock, includes Pythia init)")
    print(f"naive per-particle loop, 1 process : {r_naive:8.1f} jets/s")
    print(f"jetlab generate, 1 worker          : {rates[1]:8.1f} jets/s  ({rates[1] / r_naive:.2f}x naive)")
    print(f"jetlab generate, 2 workers         : {rates[2]:8.1f} jets/s  ({rates[2] / r_naive:.2f}x naive, "
          f"{rates[2] / rates[1]:.2f}x 1 worker)")


if __name__ == "__main__":
    main()
