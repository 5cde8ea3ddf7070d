"""How close is CATHODE's background template to the true SR background? (issue 16, notebook 04)

Notebook 04's data at its cpu-quick settings (lhco-mini 6000 events, 15% signal in the file, 300
injected, max 24 particles): the background model (:func:`jetlab.tasks.anomaly.fit_background_generator`)
is fitted on the sideband data and sampled into the SR at ``oversample`` x the SR data's masses,
then compared with held-out TRUE SR background by :func:`jetlab.tasks.anomaly.closeness_metrics`:
the AUC of a classifier true vs generated on everything, on the jet features alone and on the
particle summaries alone (0.5 = indistinguishable). One row per (generator epochs, DDIM steps)
arm, all arms on the same events and seeds, with fit and sampling seconds.

    python benchmarks/bench_anomaly_generator.py --checkpoint CKPT --gen-epochs 3 10 --steps 10 32

``--checkpoint`` is a notebook-01 checkpoint (the pretrained generator); without it the generator
trains from scratch (the ``tiny`` preset). ``--gen-pt-input log_pt log_1m_ptrel`` fits one arm per
generated pT coordinate (``fit_background_generator(gen_pt_input=...)``; ``own``: the checkpoint's or
preset's).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from result_paths import portable_args  # noqa: E402  (benchmarks/, the script's own folder)

from jetlab.model.config import GEN_PT_INPUTS  # noqa: E402
from jetlab.tasks import anomaly as A  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", default=None, help="notebook-01 checkpoint (default: generator from scratch)")
    ap.add_argument("--gen-epochs", type=int, nargs="+", default=[3, 10])
    ap.add_argument("--steps", type=int, nargs="+", default=[10, 32], help="DDIM steps when sampling particles")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--n-events", type=int, default=6000)
    ap.add_argument("--oversample", type=int, default=2)
    ap.add_argument("--gen-pt-input", nargs="+", default=[A.CATHODE_GEN_PT_INPUT], choices=["own", *sorted(GEN_PT_INPUTS)],
                    help="generated pT coordinate(s): one arm each")
    ap.add_argument("--out", type=Path, default=None, help="JSON with every number")
    args = ap.parse_args(argv)

    windows = A.MassWindows()
    events = A.load_dijets("lhco-mini", args.n_events, seed=0, signal_fraction=0.15, max_particles=24)
    split = A.inject_signal(events, 300, seed=0)
    data, bkg = split.data, split.background
    sr, sb = windows.in_sr(data.mjj), windows.in_sb(data.mjj)
    true_sr = bkg.subset(windows.in_sr(bkg.mjj))
    print(f"SB data {int(sb.sum())} events, SR data {int(sr.sum())}, true SR background {len(true_sr)}", flush=True)
    rows = []
    arms = [(seed, epochs, pt_input) for seed in args.seeds for epochs in args.gen_epochs for pt_input in args.gen_pt_input]
    for seed, epochs, pt_input in arms:
        t0 = time.perf_counter()
        gen = A.fit_background_generator(data.subset(sb), windows, checkpoint=args.checkpoint, seed=seed,
                                         gen_pt_input=None if pt_input == "own" else pt_input,
                                         epochs=epochs, batch_size=128, lr=1e-3, progress=False, device="cpu")
        fit_s = time.perf_counter() - t0
        rng = np.random.default_rng(np.random.SeedSequence([seed, 51]))
        mjj_syn = rng.choice(data.mjj[sr], size=args.oversample * int(sr.sum()), replace=True)
        ref = A.dijet_inputs(true_sr, gen.standardizer)
        for steps in args.steps:
            t1 = time.perf_counter()
            synthetic, _ = gen.sample(mjj_syn, seed=seed + 1, steps=steps, device="cpu")
            sample_s = time.perf_counter() - t1
            c = A.closeness_metrics(ref, synthetic, gen.standardizer, seed=seed)
            rows.append({"seed": seed, "gen_epochs": epochs, "gen_pt_input": gen.particle_model.pet.config.gen_pt_input,
                         "steps": steps, "fit_s": fit_s, "sample_s": sample_s,
                         "auc": c["auc"], "auc_jets": c["auc_jets"], "auc_particles": c["auc_particles"],
                         "w1_particle": c["w1_particle"], "w1_particle_floor": c["w1_particle_floor"]})
            print(f"seed {seed}, {epochs} epochs, {rows[-1]['gen_pt_input']}, {steps} steps: AUC {c['auc']:.3f} (jets {c['auc_jets']:.3f}, "
                  f"particles {c['auc_particles']:.3f}); fit {fit_s:.0f} s, sampling {sample_s:.0f} s", flush=True)
    print("\n| generator epochs | pT coordinate | DDIM steps | seeds | AUC all | AUC jets | AUC particles | fit [s] | sampling [s] |")
    print("|---|---|---|---|---|---|---|---|---|")
    for epochs, pt_input, steps in dict.fromkeys((r["gen_epochs"], r["gen_pt_input"], r["steps"]) for r in rows):
        sel = [r for r in rows if (r["gen_epochs"], r["gen_pt_input"], r["steps"]) == (epochs, pt_input, steps)]

        def cell(k, sel=sel):
            v = [r[k] for r in sel]
            return f"{np.mean(v):.3f}" + (f" ± {np.std(v):.3f}" if len(v) > 1 else "")

        print(f"| {epochs} | {pt_input} | {steps} | {len(sel)} | {cell('auc')} | {cell('auc_jets')} | {cell('auc_particles')} | "
              f"{np.mean([r['fit_s'] for r in sel]):.0f} | {np.mean([r['sample_s'] for r in sel]):.0f} |")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.out.with_suffix(args.out.suffix + ".tmp")
        tmp.write_text(json.dumps({"args": {k: str(v) for k, v in portable_args(args).items()}, "rows": rows}, indent=1))
        tmp.replace(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
