"""Classifier-free guidance in notebook 01's generation check: does it bring generated jets to 0.9x real?

Notebook 01 judges its generated jets by the classifier head's accuracy on them against its accuracy on
the real test jets (``generated_accuracy / accuracy``; issue 29's target: >= 0.9). This script samples
the same test jets again with classifier-free guidance ``w`` of the particle sampler (``(1 + w)
v(class) - w v(null)``, ``evaluate_pretraining(..., guidance=w)``; the heads were trained with label
dropout 0.1, so the null label is known to them), for

* ``own``: notebook 01's model (``--checkpoint``: a ``run_pretraining`` checkpoint with its jet
  generator, e.g. ``<output_dir>/checkpoint`` of the cpu-quick run), and
* ``foundation``: the shipped jetlab-foundation model deciding among the notebook's classes, with a
  jet-feature generator fitted to the notebook's training jets in its input scaling (as
  ``PretrainingResult.compare_with`` does),

on notebook 01's cpu-quick data (jetclass-mini, 4000 jets, split 80/10/10 with seed 0: the 400 test
jets), its constraints (pt, mass, detector) and 32 DDIM steps, for each sampling seed. No training
of PET. Reports the ratio, the ratio to the real jets reduced to what the generator produces, and the
W1 of jet mass, multiplicity and particle pT against the real-vs-real floor: guidance trades the last
for the first.

    python benchmarks/bench_guidance.py --checkpoint jetlab_output/01_pretraining/checkpoint \\
        --guidance 0 2 4 6 8 12 --sampling-seeds 0 --json benchmarks/results/guidance_notebook01.json

The JSON is a list of rows, rewritten after each; a rerun skips the (model, w, seed) rows it holds.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from jetlab.model import FOUNDATION_MODEL, load  # noqa: E402
from jetlab.tasks.pretraining.diffusion_generation import evaluate_pretraining, jet_generator_for_model  # noqa: E402
from jetlab.tasks.pretraining.pipeline import (  # noqa: E402
    PretrainingSettings,
    _acceptance,
    _samples,
    load_pretrained,
    resolve,
)


def _models(which: list[str], checkpoint: str | None, train, names):
    """``{name: (PET, jet generator, standardizer)}``."""
    out = {}
    if "own" in which:
        if checkpoint is None:
            raise SystemExit("--checkpoint: notebook 01's checkpoint directory is needed for model 'own'")
        m, jg = load_pretrained(checkpoint)
        if jg is None:
            raise SystemExit(
                f"--checkpoint {checkpoint}: no jet generator next to the model (run_pretraining writes one)"
            )
        out["own"] = (m, jg, m.card.get_standardizer())
    if "foundation" in which:  # as PretrainingResult.compare_with: notebook 01's 100 jet-generator epochs, seed 0
        other = load(FOUNDATION_MODEL, map_location="cpu")
        jg = jet_generator_for_model(other, train, names, epochs=100, seed=0)
        out["foundation"] = (other, jg, other.card.get_standardizer())
    return out


def summary(rows: list[dict]) -> str:
    lines = [
        "| model | w | generated / real (mean ± s.e. over seeds) | / real as generated | W1 mass | W1 N | W1 particle pT | seeds |",
        "|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for name in dict.fromkeys(r["model"] for r in rows):
        for w in sorted({r["w"] for r in rows if r["model"] == name}):
            sel = [r for r in rows if r["model"] == name and r["w"] == w]
            ratio = np.array([r["generated_accuracy"] / r["accuracy"] for r in sel])
            kin = np.array([r["generated_accuracy"] / r["kinematic_accuracy"] for r in sel])
            se = ratio.std(ddof=1) / np.sqrt(len(sel)) if len(sel) > 1 else float("nan")
            w1 = {o: np.mean([r["w1"][o] for r in sel]) for o in ("jet_mass", "multiplicity", "particle_pt")}
            lines.append(
                f"| {name} | {w:g} | {ratio.mean():.3f} ± {se:.3f} | {kin.mean():.3f} | {w1['jet_mass']:.2f} | "
                f"{w1['multiplicity']:.2f} | {w1['particle_pt']:.2f} | {len(sel)} |"
            )
    floor = rows[0]["w1_ref"]
    lines.append(
        f"| real vs real (floor) | | | | {floor['jet_mass']:.2f} | {floor['multiplicity']:.2f} | "
        f"{floor['particle_pt']:.2f} | |"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", default=None, help="notebook 01's run_pretraining checkpoint (model 'own')")
    ap.add_argument("--models", nargs="+", default=["own", "foundation"], choices=["own", "foundation"])
    ap.add_argument("--guidance", type=float, nargs="+", default=[0.0, 4.0])
    ap.add_argument("--sampling-seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--json", type=Path, default=None, help="rows (rewritten after each; kept rows are skipped)")
    ap.add_argument("--summarize", action="store_true", help="only print the table of --json")
    args = ap.parse_args(argv)
    rows = json.loads(args.json.read_text()) if args.json is not None and args.json.exists() else []
    if args.summarize:
        print(summary(rows))
        return 0
    torch.set_num_threads(1)
    s = PretrainingSettings(n_jets=4000, seed=0, gen_constraints=("pt", "mass", "detector"))
    source = resolve("jetclass-mini", n_jets=4000, seed=0, progress=False)
    names = list(source.label_names)
    acceptance = _acceptance(source, s)
    sets = _samples(source, s)
    print(f"train/val/test {len(sets.train)}/{len(sets.val)}/{len(sets.test)}, classes {names}", flush=True)
    for name, (m, jg, std) in _models(args.models, args.checkpoint, sets.train, names).items():
        for w in args.guidance:
            for seed in args.sampling_seeds:
                if any(r["model"] == name and r["w"] == w and r["seed"] == seed for r in rows):
                    continue
                t0 = time.perf_counter()
                e = evaluate_pretraining(
                    m,
                    sets.test,
                    jg,
                    standardizer=std,
                    class_names=names,
                    reference_jetset=sets.val,
                    steps=32,
                    seed=seed,
                    constraints=s.gen_constraints,
                    acceptance=acceptance,
                    guidance=w,
                )
                r = dict(
                    model=name,
                    w=w,
                    seed=seed,
                    accuracy=e["accuracy"],
                    generated_accuracy=e["generated_accuracy"],
                    kinematic_accuracy=e["kinematic_accuracy"],
                    w1={o: e["w1"][o]["all"] for o in e["w1"]},
                    w1_ref={o: e["w1_reference"][o]["all"] for o in e["w1_reference"]},
                    seconds=time.perf_counter() - t0,
                    load_average=list(os.getloadavg()),
                )
                rows.append(r)
                if args.json is not None:
                    tmp = args.json.with_suffix(".tmp")
                    tmp.write_text(json.dumps(rows, indent=1))
                    tmp.replace(args.json)
                print(
                    f"{name} w={w:g} seed={seed}: generated {r['generated_accuracy']:.3f}, real {r['accuracy']:.3f}, "
                    f"ratio {r['generated_accuracy'] / r['accuracy']:.3f} "
                    f"(/ real as generated {r['generated_accuracy'] / r['kinematic_accuracy']:.3f}); W1 mass "
                    f"{r['w1']['jet_mass']:.2f}, N {r['w1']['multiplicity']:.2f}, particle pT "
                    f"{r['w1']['particle_pt']:.2f} [{r['seconds']:.0f} s]",
                    flush=True,
                )
    print(summary(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
