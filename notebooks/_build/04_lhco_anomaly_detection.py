"""Builds notebooks/04_lhco_anomaly_detection.ipynb (run: python notebooks/_build/04_lhco_anomaly_detection.py)."""

from pathlib import Path

import nbformat as nbf

cells = []
md = lambda s: cells.append(nbf.v4.new_markdown_cell(s.strip()))  # noqa: E731
code = lambda s, **meta: cells.append(nbf.v4.new_code_cell(s.strip(), metadata=meta))  # noqa: E731

md(r"""
# 04 · LHC Olympics anomaly detection: CATHODE with the foundation model

A new heavy particle decaying to two jets would show up as a small **bump in the dijet mass
`mjj`** - if we knew what its jets look like, a supervised tagger would find it. We do not. The
*weakly supervised* idea: compare events in a **signal region** (SR) of `mjj` with a
**background template** for the same region; a classifier trained "SR data vs template" can only
learn something if the data contain *something the background does not* - the anomaly.

**CATHODE** (Hallin et al. 2022) builds the template with a generative model: fit the background
distribution in the **sidebands** (SB) of `mjj`, *conditioned on `mjj`*, and interpolate it into
the SR by sampling at SR masses. Here the foundation model is used twice (as in OmniLearn):

1. **generator** - jet features of both jets given `mjj` (a small diffusion MLP), then the
   *particles* of each jet given its jet features and `mjj` with **PET's diffusion head**
   (fine-tuned from the pretrained checkpoint, or trained from scratch for comparison);
2. **classifier** - PET embeds each jet, a small MLP combines the two; *k-fold* training
   scores every SR event with a model that never saw it.

Baselines: the **idealised** detector (template = true background, the best CATHODE can do) and
the **supervised** classifier (trained with signal labels - the upper bound). The figure of merit
is the *significance improvement* `SIC = eps_S / sqrt(eps_B)`: how much a score cut multiplies
`S/sqrt(B)`.
""")
md(r"""
## Parameters

The next cell is tagged `parameters`: `jetlab run notebooks/04_lhco_anomaly_detection.ipynb
--profile cpu-quick` (or `-p NAME VALUE`) replaces these values after checking names and types.
""")
code('''
dataset = "lhco-mini"  # generator name, a jetlab LHCO file or the raw LHCO R&D HDF5
n_events = 6000  # events to generate / read
file_signal_fraction = 0.15  # signal fraction of the generated file (a reservoir: only n_signal are injected)
n_signal = 300  # signal events injected into the pseudo-data (the rest are labelled references)
sr = (3.3, 3.7)  # signal region in mjj [TeV]
sb = ((2.3, 3.3), (3.7, 5.0))  # sidebands [TeV]
max_particles = 24  # leading particles per jet given to the models
epochs = 3  # classifier epochs (every classifier)
gen_epochs = 3  # PET particle-generator epochs on sideband jets
jet_gen_epochs = 100  # epochs of the jet-feature generator (cheap MLP)
gen_steps = 10  # DDIM steps when sampling particles
oversample = 2  # synthetic background events per SR data event
kfolds = 2  # every SR event is scored by the model that did not see it
seeds = [0, 1]  # one full run per seed: results are mean ± spread
model = "tiny"  # PET preset for scratch models when there is no checkpoint
batch_size = 128
lr = 1e-3
lr_factor = 5.0  # fine-tuning: pretrained body at lr / lr_factor
min_background_events = 10  # SIC only where at least this many background events survive the cut
checkpoint = "auto"  # pretrained PET; "auto": $JETLAB_CHECKPOINT, notebook 01's, or pretrain a tiny one once
device = "auto"
seed = 0  # data injection seed
output_dir = "jetlab_output/04_lhco_anomaly_detection"
''', tags=["parameters"])
code('''
import time
from pathlib import Path

import numpy as np

import jetlab.notebook as jnb
from jetlab.physics.metrics import mean_and_spread
from jetlab.plot import compare_hist, mjj_spectrum, sic_curves
from jetlab.tasks import anomaly as A
from jetlab.tasks.common import resolve_checkpoint

run = jnb.setup({
    "dataset": dataset, "n_events": n_events, "file_signal_fraction": file_signal_fraction, "n_signal": n_signal,
    "sr": sr, "sb": sb, "max_particles": max_particles, "epochs": epochs, "gen_epochs": gen_epochs,
    "jet_gen_epochs": jet_gen_epochs, "gen_steps": gen_steps, "oversample": oversample, "kfolds": kfolds,
    "seeds": seeds, "model": model, "batch_size": batch_size, "lr": lr, "lr_factor": lr_factor,
    "min_background_events": min_background_events, "checkpoint": checkpoint, "device": device, "seed": seed,
    "output_dir": output_dir,
})
t_start = time.perf_counter()
''')
md(r"""
## 1. Data, signal injection and the mass windows

The pseudo-data are half of the background plus `n_signal` signal events; the other half of the
background and the remaining signal are kept apart, *labelled*, for the idealised and supervised
baselines and to judge the generator. `jet1` is the heavier jet. `mjj` is scaled to [-1, 1] over
the full window - that is the generator's condition.
""")
code('''
windows = A.MassWindows(sr=sr, sb=sb)
events = A.load_dijets(dataset, n_events, seed=seed, signal_fraction=file_signal_fraction, max_particles=max_particles)
split = A.inject_signal(events, n_signal, seed=seed)
summary = split.summary(windows)
print({k: round(v, 3) if isinstance(v, float) else v for k, v in summary.items()})
fig = mjj_spectrum(split.data.mjj, windows.sr, windows.sb, cut_masks={"injected signal (truth)": split.data.labels == 1})
jnb.save_figure(fig, "mjj_spectrum.png")
''')
md(r"""
## 2. Train everything: CATHODE (pretrained and scratch), idealised, supervised

Per seed: the background model is fitted on the SB data and sampled `oversample` times the SR
data size at SR masses drawn from the SR data; then `kfolds` classifiers SR-data vs synthetic.
""")
code('''
ckpt = resolve_checkpoint(checkpoint, output_root=Path(output_dir).parent, device=run.device, progress=False)
print("pretrained checkpoint:", ckpt)
common = dict(seed=0, epochs=epochs, batch_size=batch_size, lr=lr, lr_factor=lr_factor,
              min_background_events=min_background_events, device=run.device)
variants = {"CATHODE pretrained": ckpt, "CATHODE scratch": None} if ckpt is not None else {"CATHODE scratch": None}
baseline_ckpt = ckpt  # idealised / supervised use the best available model
runs = {}
for s in seeds:
    common["seed"] = s
    for name, c in variants.items():
        runs[(name, s)] = A.run_cathode(split, windows, checkpoint=c, config=model, oversample=oversample, kfolds=kfolds,
                                        gen_epochs=gen_epochs, jet_epochs=jet_gen_epochs, gen_steps=gen_steps, **common)
    runs[("idealised", s)] = A.run_idealised(split, windows, checkpoint=baseline_ckpt, config=model, kfolds=kfolds, **common)
    runs[("supervised", s)] = A.run_supervised(split, windows, checkpoint=baseline_ckpt, config=model, **common)
    print(f"seed {s}:", {n: round(r.metrics["max_sic"], 2) for (n, ss), r in runs.items() if ss == s},
          f"({time.perf_counter() - t_start:.0f} s)")
methods = list(dict.fromkeys(n for n, _ in runs))
''')
md(r"""
## 3. Is the generated background right? Generated vs true background in the SR

The generator never saw SR events. Compare its SR sample with held-out *true* SR background:
1-Wasserstein distances per feature (next to the floor from two halves of the true sample) and
the AUC of a classifier true vs generated (0.5 = indistinguishable).
""")
code('''
cat0 = runs[(methods[0], seeds[0])]
std = cat0.extras["generator"].standardizer
ref = cat0.extras["reference"]
ref_feats = np.concatenate([std.inverse_jets(ref["jets1"]), std.inverse_jets(ref["jets2"])], axis=1)
gen_feats = cat0.extras["synthetic_features"]
sr_data = split.data.subset(windows.in_sr(split.data.mjj))
labels_ = {"m1": "Heavier jet mass [GeV]", "m2": "Lighter jet mass [GeV]", "pt1": "Heavier jet pT [GeV]",
           "n1": "Heavier jet multiplicity"}
for name, xlabel in labels_.items():
    i = A.JET_FEATURE_NAMES.index(name)
    fig = compare_hist({"true background (SR)": ref_feats[:, i], f"generated ({methods[0]})": gen_feats[:, i],
                        "SR data": sr_data.jet_features()[:, i]}, bins=30, xlabel=xlabel)
    jnb.save_figure(fig, f"generated_vs_true_{name}.png")
raw = lambda inp, k: A._raw_particles(inp, std, k)
for i, (name, xlabel) in enumerate(zip(A.PARTICLE_FEATURE_NAMES, [r"$\\Delta\\eta$", r"$\\Delta\\phi$", r"$\\log(1 - p_T/p_{T,jet})$"])):
    fig = compare_hist({"true background (SR)": raw(ref, 1)[:, i], "generated": raw(cat0.extras["synthetic"], 1)[:, i]},
                       bins=40, xlabel=xlabel + " (heavier jet)")
    jnb.save_figure(fig, f"generated_vs_true_particle_{name}.png")
closeness = {f"{n} seed {s}": r.extras["closeness"] for (n, s), r in runs.items() if "closeness" in r.extras}
for key, c in closeness.items():
    print(f"{key}: AUC true-vs-generated = {c['auc']:.3f}")
    print("   W1 jet      :", {k: f"{v:.3g} (floor {c['w1_jet_floor'][k]:.3g})" for k, v in c["w1_jet"].items()})
    print("   W1 particle :", {k: f"{v:.3g} (floor {c['w1_particle_floor'][k]:.3g})" for k, v in c["w1_particle"].items()})
''')
md(r"""
## 4. Significance improvement

SIC curves of the first seed, and the max SIC (over `eps_B >= min_background_events / N_bkg`)
as mean ± spread over seeds. A max SIC above 1 means the cut enhances the significance of the
bump; the supervised classifier bounds what any method can reach with these inputs.
""")
code('''
first = {n: (runs[(n, seeds[0])].labels, runs[(n, seeds[0])].scores) for n in methods}
# the metrics keep points with eps_B >= floor (at least min_background_events survive); the plot
# drops eps_B <= fpr_min, so pass a hair below the floor for the same points
fig = sic_curves(first, fpr_min=cat0.metrics["min_fpr"] * (1 - 1e-9))
jnb.save_figure(fig, "sic_curves.png")
table = {}
for n in methods:
    sics = [runs[(n, s)].metrics["max_sic"] for s in seeds]
    aucs = [runs[(n, s)].metrics["auc"] for s in seeds]
    table[n] = {"max_sic": mean_and_spread(sics), "auc": mean_and_spread(aucs), "max_sic_per_seed": sics}
    print(f"{n:<20s} max SIC = {table[n]['max_sic'][0]:.2f} ± {table[n]['max_sic'][1]:.2f}   "
          f"AUC = {table[n]['auc'][0]:.3f} ± {table[n]['auc'][1]:.3f}")
''')
md(r"""
## 5. Does the cut sculpt the background?

`mjj` is not a classifier input, but the jet features correlate with it. Cutting on the score
must not carve a fake bump: compare the background `mjj` spectrum after cuts with the one before
(W1 next to the W1 of a random subset of the same size).
""")
code('''
best = runs[(methods[0], seeds[0])]
sr_m, sb_m = windows.in_sr(split.data.mjj), windows.in_sb(split.data.mjj)
all_scores = np.full(len(split.data), np.nan)
all_scores[sr_m], all_scores[sb_m] = best.scores, best.sb_scores
inw = sr_m | sb_m
mjj_w, s_w, y_w = split.data.mjj[inw], all_scores[inw], split.data.labels[inw]
sculpt = A.sculpting_check(mjj_w, s_w, y_w, windows, (0.5, 0.2, 0.05))
for eff, v in sculpt.items():
    print(f"keep {eff:>4.0%}: background left {v['n_background']:5d}, W1 = {v['w1']:.3f} TeV (random subset {v['w1_random']:.3f})")
cuts = {f"top {e:.0%} by score": s_w >= np.quantile(s_w, 1 - e) for e in (0.2, 0.05)}
fig = mjj_spectrum(mjj_w, windows.sr, windows.sb, cut_masks=cuts)
jnb.save_figure(fig, "mjj_after_cuts.png")
''')
md(r"""
## 6. Scan the cut

Move the slider: the events with the highest anomaly scores are kept, the SR background is
estimated from a fit to the sidebands, and the local significance of the excess updates. In a
headless run (`jetlab run`, CI) the static figure at 20% efficiency is shown.
""")
code('''
from jetlab.widgets import CutScanExplorer

explorer = CutScanExplorer(s_w, mjj_w, windows.sr, windows.sb, labels=y_w)
explorer.set_efficiency(0.2)
print({k: (round(v, 3) if isinstance(v, float) else v) for k, v in explorer.state.items() if not isinstance(v, np.ndarray)})
explorer.display()
jnb.save_figure(explorer.figure(), "cut_scan.png", display=False);
''')
md(r"""
## 7. Save the numbers
""")
code('''
metrics = {
    "dataset": dataset, "checkpoint": str(ckpt), "split": summary, "seconds": round(time.perf_counter() - t_start, 1),
    "table": table, "closeness": {k: {kk: vv for kk, vv in c.items()} for k, c in closeness.items()},
    "sculpting": {str(k): v for k, v in sculpt.items()},
    "runs": [dict(r.summary()) | {"method": n} for (n, s), r in runs.items()],
}
print("written:", jnb.save_metrics(metrics, "metrics"))
print(f"total time: {metrics['seconds']:.0f} s")
''')
md(r"""
## Where next

* Real data: `jetlab data fetch lhco_rnd`, then `dataset = "<path to events_anomalydetection_v2.h5>"`
  (clustered with FastJet on read), `n_events` of a few 100k, `max_particles = 279`, `--profile gpu-full`.
* Lower `n_signal` until the pretrained CATHODE loses the signal: the foundation model's gain is
  largest at small S/B, where the classifier has the fewest signal events to learn from.
""")

nb = nbf.v4.new_notebook(cells=cells, metadata={
    "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
    "language_info": {"name": "python"}})
out = Path(__file__).resolve().parents[1] / "04_lhco_anomaly_detection.ipynb"
nbf.write(nb, out)
print("wrote", out)
