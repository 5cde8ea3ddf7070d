"""How good is PET's generator head after a fixed training budget? (issue 16, "measure first")

Trains notebook 01's model (``run_pretraining``: tiny PET, CPU recipe of the cpu-quick profile:
batch 32, lr 1e-3, diffusion weight 3, EMA 0.99, 100 jet-generator epochs) on ``jetclass-mini``
for fixed wall-clock budgets. The number of epochs is set so that the learning-rate schedule ends
at the budget (one calibration epoch measures the epoch time) and :class:`jetlab.train.TimeLimit`
stops a run that would overrun. For each budget it reports, generated vs real test jets:

* W1 of jet mass, jet pT, multiplicity and particle (pT/pT_jet, delta eta, delta phi), each with
  its real-vs-real floor (validation vs test split, same size);
* per-class jet-mass W1; the pretrained classifier's accuracy on generated vs real jets;
* the out-of-fold AUC of a gradient-boosted classifier (:func:`jetlab.physics.metrics.two_sample_auc`)
  separating generated from real, on jet features (pT, eta, mass, N) and on the 16 leading
  particles, with the same AUC for real vs real (the floor);
* generated particles the detector model cannot produce (``unrecordable``: below the detector's
  threshold at their eta, :meth:`jetlab.simulator.detector.DetectorModel.min_visible_pt`), with pT below the
  softest real particle and farther than R = 0.8 from the jet axis (with the real particles'
  fraction beyond R: the axis is the four-vector sum's, so real jets have some too) next to it;
* sampling jets/s and jet-mass W1 per DDIM step count.

    python benchmarks/bench_generation.py --budgets 2 5 15 --out benchmarks/results/generation.json
    python benchmarks/bench_generation.py --budgets 5 --gen-pt-input log_1m_ptrel log_pt

``--gen-pt-input`` trains one arm per generated pT coordinate (:attr:`PETConfig.gen_pt_input`) at
every budget, on the same data and epoch count: the before/after line of a generator change.
``--constraints pt mass pt+mass pt+mass+detector`` add a row per trained model (or checkpoint) sampled
again with ``generate_jets(..., balance_pt=True)`` (particles add up to the generated jet pT),
``match_mass=True`` (each jet widened or narrowed to the generated jet mass), ``acceptance=`` (a particle
jetclass-mini's detector could not record drawn again, then removed) or a combination;
``--balance-pt`` = ``--constraints pt``. With ``--checkpoint``, ``--sampling-seeds 0 1 2 ...`` samples the same
model for the same test jets with each seed and adds a table of the classifier's accuracy on generated jets
over the seeds (mean, spread, ratio to real jets): one seed's figure moves by a few points.

Prints a markdown table; ``--out`` also writes every number as JSON (atomically).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from result_paths import portable_args  # noqa: E402  (benchmarks/, the script's own folder)

from jetlab.data.schema import JetSet, jet_features_from_particles  # noqa: E402
from jetlab.data.sources import acceptance_of, resolve  # noqa: E402
from jetlab.data.torchdata import split_indices  # noqa: E402
from jetlab.model.config import GEN_PT_INPUTS, PETConfig  # noqa: E402
from jetlab.physics.metrics import mean_and_spread, two_sample_auc, wasserstein_1d  # noqa: E402
from jetlab.tasks.pretraining import load_pretrained, run_pretraining  # noqa: E402
from jetlab.tasks.pretraining.diffusion_generation import (  # noqa: E402
    constraint_flags,
    evaluate_pretraining,
    generate_jets,
    unrecordable_fractions,
)
from jetlab.train import TimeLimit  # noqa: E402

#: notebook 01's cpu-quick settings (jetlab/profiles/cpu-quick.yaml), except epochs (set by the budget)
RECIPE = dict(model="tiny", lr=1e-3, batch_size=32, diffusion_weight=3.0, ema_decay=0.99, jet_epochs=100, gen_steps=32)
#: jetclass-mini's detector and jet radius
ACCEPTANCE = acceptance_of("jetclass-mini")
JET_RADIUS = ACCEPTANCE.jet_radius
LEADING = 16


def relative_particles(js: JetSet) -> dict[str, np.ndarray]:
    """Per real particle: pT / pT_jet, delta eta and delta phi to the jet axis (jet from its particles)."""
    kin = jet_features_from_particles(js.particles, js.mask)  # pt, eta, phi, mass, ...
    pt, eta, phi = (js.particles[..., i] for i in range(3))
    dphi = (phi - kin[:, 2:3] + np.pi) % (2 * np.pi) - np.pi
    m = js.mask
    return {"ptrel": (pt / kin[:, 0:1])[m], "deta": (eta - kin[:, 1:2])[m], "dphi": dphi[m]}


def jet_table(js: JetSet) -> np.ndarray:
    """(N, 4): jet pT, eta, mass from the particles, and the multiplicity."""
    kin = jet_features_from_particles(js.particles, js.mask)
    return np.column_stack([kin[:, 0], kin[:, 1], kin[:, 3], js.mask.sum(1)]).astype(np.float64)


def leading_particles(js: JetSet, k: int = LEADING) -> np.ndarray:
    """(N, 3k): (log pT/pT_jet, delta eta, delta phi) of the k leading particles, zeros where absent."""
    kin = jet_features_from_particles(js.particles, js.mask)
    order = np.argsort(np.where(js.mask, -js.particles[..., 0], np.inf), axis=1, kind="stable")[:, :k]
    p = np.take_along_axis(js.particles, order[..., None], axis=1)
    m = np.take_along_axis(js.mask, order, axis=1)
    ptrel = np.log(np.clip(p[..., 0] / kin[:, 0:1], 1e-8, None))
    deta = p[..., 1] - kin[:, 1:2]
    dphi = (p[..., 2] - kin[:, 2:3] + np.pi) % (2 * np.pi) - np.pi
    feats = np.stack([ptrel, deta, dphi], axis=-1) * m[..., None]
    out = np.zeros((len(js), k, 3))
    out[:, : feats.shape[1]] = feats
    return out.reshape(len(js), -1)


def compare(gen: JetSet, real: JetSet, seed: int) -> dict[str, Any]:
    """W1 per observable and the two-sample AUCs of ``gen`` against ``real``."""
    jg, jr = jet_table(gen), jet_table(real)
    pg, pr = relative_particles(gen), relative_particles(real)
    w1 = {name: wasserstein_1d(jg[:, i], jr[:, i]) for i, name in enumerate(("jet_pt", "jet_eta", "jet_mass", "multiplicity"))}
    w1.update({f"particle_{k}": wasserstein_1d(pg[k], pr[k]) for k in pg})
    return {
        "w1": w1,
        "auc_jets": two_sample_auc(jr, jg, seed=seed),
        "auc_particles": two_sample_auc(leading_particles(real), leading_particles(gen), seed=seed),
    }


def outside_detector(gen: JetSet, real: JetSet) -> dict[str, float]:
    """Fractions of generated particles the detector could not record, softer than every real particle
    or outside the jet cone."""
    pg, pr = relative_particles(gen), relative_particles(real)
    pt_min = float(real.particles[..., 0][real.mask].min())
    pt = gen.particles[..., 0][gen.mask]
    dr, dr_real = np.hypot(pg["deta"], pg["dphi"]), np.hypot(pr["deta"], pr["dphi"])
    fractions = unrecordable_fractions(gen, ACCEPTANCE)
    return {"unrecordable": fractions["after"], "removed": fractions["removed"],
            "real_min_pt": pt_min, "below_real_min_pt": float((pt < pt_min).mean()),
            "min_generated_pt": float(pt.min()), "outside_cone": float((dr > JET_RADIUS).mean()),
            # real particles lie beyond R of the axis of their jet's four-vector sum too (anti-kT areas are not cones)
            "outside_cone_real": float((dr_real > JET_RADIUS).mean()), "max_dr_real": float(dr_real.max()),
            "max_dr_generated": float(dr.max())}


def sampling_speed(res, steps_list, seed: int, n: int) -> list[dict[str, float]]:
    rows = []
    test = res.test.subset(slice(0, min(n, len(res.test))))
    for steps in steps_list:
        t0 = time.perf_counter()
        gen = generate_jets(res.model, res.jet_generator, len(test), labels=test.labels, standardizer=res.standardizer,
                            steps=steps, seed=seed, device="cpu", max_particles=test.max_particles)
        dt = time.perf_counter() - t0
        rows.append({"steps": steps, "jets_per_s": len(test) / dt,
                     "w1_jet_mass": wasserstein_1d(jet_table(gen)[:, 2], jet_table(test)[:, 2])})
    return rows


def run_budget(minutes: float, args, sec_per_epoch: float, work: Path, pt_input: str = "log_1m_ptrel") -> list[dict[str, Any]]:
    epochs = max(1, int(minutes * 60 / sec_per_epoch))
    limit = TimeLimit(minutes * 60 * 1.05)
    t0 = time.perf_counter()
    recipe = {**RECIPE, "model": PETConfig.preset(RECIPE["model"], gen_pt_input=pt_input)}
    res = run_pretraining("jetclass-mini", n_jets=args.n_jets, seed=args.seed, epochs=epochs,
                          output_dir=work / f"b{minutes}-{pt_input}", callbacks=[limit], progress=False,
                          workers=args.workers, device=args.device, **recipe)
    wall = time.perf_counter() - t0
    ev = res.evaluation
    gen = ev["generated"]
    n = min(len(res.val), len(res.test))
    row: dict[str, Any] = {
        "budget_min": minutes, "gen_pt_input": pt_input, "epochs_scheduled": epochs, "epochs_run": len(res.history.epochs),
        "stopped_by_time": limit.stopped, "timings": res.timings, "wall_s": wall,
        "accuracy": ev["accuracy"], "generated_accuracy": ev["generated_accuracy"],
        "w1_jet_mass_per_class": ev["w1"]["jet_mass"], "w1_jet_mass_per_class_floor": ev["w1_reference"]["jet_mass"],
        "generated": compare(gen, res.test, args.seed),
        "floor": compare(res.val.subset(slice(0, n)), res.test.subset(slice(0, n)), args.seed),
        "outside_detector": outside_detector(gen, res.test),
    }
    if args.sampling_steps:
        row["sampling"] = sampling_speed(res, args.sampling_steps, args.seed, args.sampling_jets)
    rows = [row]
    test = res.test.subset(slice(0, len(gen)))
    rows += constrained_rows(res.model, res.jet_generator, res.standardizer, test, res.val, res.test, row, args)
    return rows


#: --constraints: what the generated particles are made to honour ("+" joins GEN_CONSTRAINTS names)
CONSTRAINTS = ("pt", "mass", "pt+mass", "detector", "pt+mass+detector")


def constraints_of(args) -> list[str]:
    return list(dict.fromkeys((["pt"] if args.balance_pt else []) + list(args.constraints)))


def constrained_rows(model, jg, std, test: JetSet, val: JetSet, truth: JetSet, row: dict[str, Any], args,
                     guidance: float = 0.0, sampling_seed: int | None = None) -> list[dict[str, Any]]:
    """The same trained model sampled again with each ``--constraints`` variant (same seed, same
    conditioning jets): what honouring the jet-feature generator's pT and/or mass changes."""
    rows = []
    for name in constraints_of(args):
        kw = {k: v for k, v in constraint_flags(name.split("+"), "--constraints", ACCEPTANCE).items() if v}
        gen = generate_jets(model, jg, len(test), labels=test.labels, standardizer=std, steps=row.get("steps", RECIPE["gen_steps"]),
                            seed=args.seed if sampling_seed is None else sampling_seed, device=args.device,
                            max_particles=test.max_particles, guidance=guidance, **kw)
        ev = evaluate_pretraining(model, test, standardizer=std, reference_jetset=val, generated=gen, seed=args.seed,
                                  device=args.device)
        extra = {"mass_scale_percentiles": np.percentile(gen.extra["mass_scale"], [5, 50, 95]).tolist()} if "mass_scale" in gen.extra else {}
        rows.append({**{k: v for k, v in row.items() if k != "sampling"}, **kw, "acceptance": "acceptance" in kw, **extra,
                     "generated_accuracy": ev["generated_accuracy"], "w1_jet_mass_per_class": ev["w1"]["jet_mass"],
                     "generated": compare(gen, truth, args.seed), "outside_detector": outside_detector(gen, truth)})
    return rows


def sampling_grid(args) -> list[dict[str, Any]]:
    """A trained checkpoint (``--checkpoint``) sampled with each (guidance, DDIM steps): no training.
    The test / validation jets are the split run_pretraining made (same data, n_jets, seed)."""
    model, jg = load_pretrained(args.checkpoint)
    if jg is None:
        raise SystemExit(f"--checkpoint {args.checkpoint}: no jet-feature generator in it (not from run_pretraining)")
    std, names = model.card.get_standardizer(), list(model.card.class_names)
    js = resolve("jetclass-mini", n_jets=args.n_jets, seed=args.seed, progress=False, workers=args.workers).read()
    _, va, test_idx = split_indices(len(js), (0.8, 0.1, 0.1), seed=args.seed)
    val, test = js.subset(va), js.subset(test_idx)
    n = min(len(val), len(test))
    floor = compare(val.subset(slice(0, n)), test.subset(slice(0, n)), args.seed)
    rows = []
    for w in args.guidance:
        for steps in args.sampling_steps:
            for sseed in args.sampling_seeds or [args.seed]:
                t0 = time.perf_counter()
                gen = generate_jets(model, jg, len(test), labels=test.labels, standardizer=std, steps=steps, seed=sseed,
                                    device=args.device, max_particles=test.max_particles, guidance=w)
                dt = time.perf_counter() - t0
                ev = evaluate_pretraining(model, test, standardizer=std, class_names=names, reference_jetset=val,
                                          generated=gen, device=args.device)
                rows.append({"budget_min": 0, "guidance": w, "steps": steps, "sampling_seed": sseed,
                             "jets_per_s": len(test) / dt, "epochs_run": -1,
                             "accuracy": ev["accuracy"], "generated_accuracy": ev["generated_accuracy"],
                             "w1_jet_mass_per_class": ev["w1"]["jet_mass"],
                             "w1_jet_mass_per_class_floor": ev["w1_reference"]["jet_mass"],
                             "generated": compare(gen, test, args.seed), "floor": floor,
                             "outside_detector": outside_detector(gen, test)})
                held = constrained_rows(model, jg, std, test, val, test, rows[-1], args, guidance=w, sampling_seed=sseed)
                rows += held
                print(f"guidance {w:g}, {steps} steps, sampling seed {sseed}: generated accuracy "
                      f"{ev['generated_accuracy']:.3f} (real {ev['accuracy']:.3f}), {len(test) / dt:.0f} jets/s"
                      + "".join(f"; held to {_held(h)}: {h['generated_accuracy']:.3f}" for h in held),
                      flush=True)
    return rows


def seed_summary(rows: list[dict[str, Any]]) -> str:
    """Generated accuracy over sampling seeds, per sampling setup: mean, standard deviation, standard
    error and the ratio to the real accuracy (the same test jets and classifier for every seed)."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        if "sampling_seed" in r:
            groups.setdefault(_setup_label(r), []).append(r)
    lines = ["| sampling setup | seeds | generated accuracy per seed | mean +- sd (s.e.) | real | mean / real |",
             "|---|--:|---|---|--:|--:|"]
    for label, rs in groups.items():
        acc = [r["generated_accuracy"] for r in rs]
        real = rs[0]["accuracy"]
        mean, sd = mean_and_spread(acc)
        lines.append(f"| {label} | {len(acc)} | {', '.join(f'{a:.4f}' for a in acc)} | {mean:.4f} +- {sd:.4f} "
                     f"({sd / math.sqrt(len(acc)):.4f}) | {real:.4f} | {mean / real:.3f} |")
    return "\n".join(lines)


def _held(r: dict[str, Any]) -> str:
    held = [n for n, k in (("pt", "balance_pt"), ("mass", "match_mass"), ("detector", "acceptance")) if r.get(k)]
    return "+".join(held) or "nothing"


def _setup_label(r: dict[str, Any]) -> str:
    return f"guidance {r['guidance']:g}, {r['steps']} steps, held to {_held(r)}"


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| budget (epochs) | W1 mass [GeV] | W1 pT [GeV] | W1 N | W1 pT/pT_jet | W1 deta | W1 dphi | AUC jets | AUC particles | acc gen / real | unrecordable (removed) | pT < real min | outside R |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    def label(r):
        held = (", balanced pT" if r.get("balance_pt") else "") + (", matched mass" if r.get("match_mass") else "")
        held += ", detector acceptance" if r.get("acceptance") else ""
        if "guidance" in r:
            seed = f", sampling seed {r['sampling_seed']}" if "sampling_seed" in r else ""
            return f"guidance {r['guidance']:g}, {r['steps']} steps{seed} ({r['jets_per_s']:.0f} jets/s){held}"
        arm = "" if r.get("gen_pt_input", "log_1m_ptrel") == "log_1m_ptrel" else f", {r['gen_pt_input']}"
        return f"{r['budget_min']:g} min ({r['epochs_run']}){arm}{held}"

    for r in rows:
        g, f = r["generated"], r["floor"]

        def w(k, g=g, f=f):
            return f"{g['w1'][k]:.3g} ({f['w1'][k]:.2g})"

        od = r["outside_detector"]
        lines.append(
            f"| {label(r)} | {w('jet_mass')} | {w('jet_pt')} | {w('multiplicity')} | "
            f"{w('particle_ptrel')} | {w('particle_deta')} | {w('particle_dphi')} | "
            f"{g['auc_jets']:.3f} ({f['auc_jets']:.2f}) | {g['auc_particles']:.3f} ({f['auc_particles']:.2f}) | "
            f"{r['generated_accuracy']:.3f} / {r['accuracy']:.3f} | "
            f"{od.get('unrecordable', math.nan):.2%} ({od.get('removed', 0.0):.2%}) | {od['below_real_min_pt']:.1%} | "
            f"{od['outside_cone']:.1%}" + (f" ({od['outside_cone_real']:.1%})" if "outside_cone_real" in od else "") + " |")
    lines.append("\n(real-vs-real floor in brackets)\n")
    for r in rows:
        per = ", ".join(f"{c} {v:.3g} ({r['w1_jet_mass_per_class_floor'].get(c, math.nan):.2g})"
                        for c, v in r["w1_jet_mass_per_class"].items() if c != "all")
        lines.append(f"- {label(r)}, jet-mass W1 per class [GeV]: {per}")
        for s in r.get("sampling", []):
            lines.append(f"  - DDIM {s['steps']} steps: {s['jets_per_s']:.0f} jets/s, jet-mass W1 {s['w1_jet_mass']:.3g} GeV")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--budgets", type=float, nargs="+", default=[2.0, 5.0, 15.0], help="training budgets, minutes")
    ap.add_argument("--n-jets", type=int, default=4000, help="jetclass-mini jets (notebook 01 cpu-quick: 4000)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=None, help="data-generation processes")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--sampling-steps", type=int, nargs="*", default=[8, 16, 32, 64])
    ap.add_argument("--sampling-jets", type=int, default=400)
    ap.add_argument("--checkpoint", default=None,
                    help="no training: sample this run_pretraining checkpoint with every --guidance x --sampling-steps")
    ap.add_argument("--guidance", type=float, nargs="+", default=[0.0], help="classifier-free guidance strengths (with --checkpoint)")
    ap.add_argument("--sampling-seeds", type=int, nargs="+", default=None,
                    help="with --checkpoint: sample with each of these seeds (same model, test jets and split) and "
                         "print the generated accuracy's mean and spread over them; default: --seed")
    ap.add_argument("--gen-pt-input", nargs="+", default=["log_1m_ptrel"], choices=sorted(GEN_PT_INPUTS),
                    help="generated pT coordinate(s) (PETConfig.gen_pt_input): one training arm each per budget")
    ap.add_argument("--balance-pt", action="store_true", help="same as --constraints pt")
    ap.add_argument("--constraints", nargs="*", default=[], choices=list(CONSTRAINTS),
                    help="also sample each model with its particles made to honour the generated jet pT (balance_pt), "
                         "mass (match_mass) or both: one extra row each")
    ap.add_argument("--out", type=Path, default=None, help="JSON with every number")
    args = ap.parse_args(argv)
    if any(b <= 0 for b in args.budgets):
        ap.error(f"--budgets must be positive minutes, got {args.budgets}")
    if args.checkpoint:
        rows, sec_per_epoch = sampling_grid(args), float("nan")
    else:
        rows, sec_per_epoch = train_budgets(args)
    md = markdown(rows)
    if args.checkpoint:
        md += "\n\n" + seed_summary(rows)
    print(md)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        tmp_out = args.out.with_suffix(args.out.suffix + ".tmp")
        tmp_out.write_text(json.dumps({"args": {k: str(v) for k, v in portable_args(args).items()}, "seconds_per_epoch": sec_per_epoch,
                                       "load_average": os.getloadavg(), "rows": rows}, indent=1, default=float))
        tmp_out.replace(args.out)
    return 0


def train_budgets(args) -> tuple[list[dict[str, Any]], float]:
    with tempfile.TemporaryDirectory(prefix="bench_generation_") as tmp:
        work = Path(tmp)
        t0 = time.perf_counter()
        cal = run_pretraining("jetclass-mini", n_jets=args.n_jets, seed=args.seed, output_dir=work / "calibrate",
                              progress=False, workers=args.workers, device=args.device, evaluate=False,
                              **{**RECIPE, "jet_epochs": 1}, epochs=1)
        sec_per_epoch = cal.timings["pet_train_s"]
        print(f"calibration: {sec_per_epoch:.1f} s per epoch ({time.perf_counter() - t0:.0f} s incl. data)", flush=True)
        rows = []
        for minutes in args.budgets:
            for pt_input in args.gen_pt_input:
                rows.extend(run_budget(minutes, args, sec_per_epoch, work, pt_input))
                print(f"budget {minutes:g} min, {pt_input} done: {rows[-1]['epochs_run']} epochs, "
                      f"wall {rows[-1]['wall_s']:.0f} s", flush=True)
    return rows, sec_per_epoch


if __name__ == "__main__":
    raise SystemExit(main())
