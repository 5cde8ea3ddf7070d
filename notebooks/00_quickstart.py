# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.7
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # jetlab quickstart: from a jet to a tag in five minutes
#
# This notebook is a short tour of jetlab. In a few cells you will
#
# 1. **make a jet sample** with the offline generator (Pythia 8 + FastJet + a simple detector model),
#    stored in jetlab's one common schema;
# 2. **look at a jet**, particle by particle;
# 3. **turn jets into model inputs** (the 13 particle and 4 jet features of PET / OmniLearn);
# 4. **tag jets** with the foundation model jetlab ships (`jetlab-foundation`: PET pretrained on 100,000
#    jets of the ten JetClass classes), or with `checkpoint = "none"` a tiny untrained model (its answers
#    are then random, and the notebook says so).
#
# Everything runs on a laptop CPU. The same notebook runs headless with
# `jetlab run notebooks/00_quickstart.ipynb -p n_jets 1000`, which stores the executed notebook,
# its figures, `metrics.json` and `run_info.json` in `jetlab_output/00_quickstart/`.

# %% [markdown]
# ## Parameters
#
# The next cell is tagged `parameters`: `jetlab run -p NAME VALUE` (or papermill) replaces these
# values; `jetlab run` checks names and types before it starts anything.

# %% tags=["parameters"]
n_jets = 500  # jets to generate (cached after the first run)
seed = 0  # seeds Python, NumPy and torch
output_dir = "jetlab_output/00_quickstart"  # figures, metrics and run_info.json go here
checkpoint = "auto"  # a model directory, "auto" ($JETLAB_CHECKPOINT, else the foundation model jetlab ships) or "none"

# %% [markdown]
# `jetlab.notebook.setup` makes the run reproducible and self-describing: it seeds every random
# number generator, picks the device (a GPU if there is one), applies the plot style, and records
# the parameters together with the jetlab and torch versions, here and in `run_info.json`.

# %%
import numpy as np
import torch

import jetlab.notebook as jnb

run = jnb.setup(globals())
device = run.device

# %% [markdown]
# ## 1. A jet sample
#
# `resolve` turns a dataset name into its files (here a generated sample, cached after the first
# run) and `read` loads the jets. `jetclass-mini` mimics [JetClass](https://zenodo.org/records/6619768), whose ten classes are
# large-radius jets from QCD and from boosted top, W, Z and Higgs decays; the mini version keeps
# five of them (QCD, t → bqq', W → qq', Z → qq̄, H → bb̄). The real datasets (JetClass, ATLAS
# top tagging, OmniFold Z+jets, LHC Olympics) are converted to the *same* schema by
# `jetlab data fetch`, and `resolve("jetclass")` reads them: everything below works on them unchanged.

# %%
from jetlab.data.sources import resolve

data = resolve("jetclass-mini", n_jets=run.parameters["n_jets"], seed=run.seed)  # a generator, a published dataset, files: one resolver
jets = data.read()
print(f"{len(jets)} jets from {data.files()[0].name}")

# %%
# NBVAL_CHECK_OUTPUT
print(f"dataset {data.name!r} with {len(data.label_names)} classes:")
print(", ".join(data.label_names))

# %% [markdown]
# How many jets of each class did we get? (Class labels are integers indexing `label_names`.)

# %%
from jetlab.plot import label_axes, new_figure, style

counts = np.bincount(jets.labels, minlength=len(data.label_names))
for name, count in zip(data.label_names, counts):
    print(f"{name:>10s} {count:5d}")

# %% tags=["plot"]
with style():
    fig, ax = new_figure(figsize=(8, 4.5))
    ax.bar(range(len(counts)), counts, color="#5790fc")
    ax.set_xticks(range(len(counts)), data.label_names, rotation=45, ha="right")
    ax.set_ylabel("jets")
    label_axes(ax, rlabel=f"{data.name}, {len(jets)} jets")
jnb.save_figure(fig, "class_counts");

# %% [markdown]
# ## 2. What a jet looks like
#
# A `JetSet` holds padded arrays: `particles` has shape *(jets, max particles, features)* with
# columns (pT, η, φ, E, ...) in GeV and radians, sorted by pT; `mask` marks the real particles;
# `jets` has one row (pT, η, φ, mass, multiplicity) per jet.

# %%
print("particles:", jets.particles.shape, "features:", ", ".join(jets.particle_features))
print("mask:     ", jets.mask.shape, "| jets:", jets.jets.shape)
i = 0
print(
    f"jet {i}: {data.label_names[jets.labels[i]]}, pT = {jets.jet_feature('pt')[i]:.0f} GeV, "
    f"mass = {jets.jet_feature('mass')[i]:.1f} GeV, {int(jets.mask[i].sum())} particles"
)

# %% [markdown]
# The event display shows one jet in the η-φ plane relative to the jet axis: marker area and
# colour follow the particle pT. In JupyterLab it comes with a slider to browse the jets; in a
# headless run (`jetlab run`, CI) it falls back to a static figure.

# %% tags=["plot"]
from jetlab.widgets import JetEventDisplay

viewer = JetEventDisplay(jets, index=0, label_names=data.label_names)
viewer.display()
jnb.save_figure(viewer.figure(), "jet_display", display=False);

# %% [markdown]
# ## 3. Model inputs
#
# PET does not see raw four-momenta. `model_inputs` computes, per particle, 13 features
# (Δη, Δφ, log pT, log E, their ratios to the jet, ΔR, charge and five particle-ID flags; zeros
# where a dataset lacks them) and 4 jet features, and standardises them. Padded particles stay
# masked out.

# %%
# NBVAL_CHECK_OUTPUT
from jetlab.data import JET_INPUTS, PARTICLE_INPUTS

print(len(PARTICLE_INPUTS), "particle inputs:", ", ".join(PARTICLE_INPUTS))
print(len(JET_INPUTS), "jet inputs:", ", ".join(JET_INPUTS))

# %% [markdown]
# ## 4. A model, and a tag
#
# With `checkpoint="auto"` the notebook takes `$JETLAB_CHECKPOINT` if it is set, else the foundation model
# shipped inside jetlab (`jetlab model info jetlab-foundation` prints its card: ten JetClass classes, 100,000
# jets, and the command that made it). With `checkpoint="none"` we build a *tiny, untrained* PET: the code
# path is the same, but its probabilities mean nothing yet.

# %%
from jetlab.data import model_inputs
from jetlab.model import PET, PETConfig, load
from jetlab.tasks.checkpoint_resolver import resolve_checkpoint

ckpt = resolve_checkpoint(checkpoint, run.output_dir)  # None: no pretrained model (yet)
model = load(ckpt) if ckpt is not None else PET(PETConfig.preset("tiny", num_classes=len(data.label_names)))
model = model.to(device).eval()
standardizer = model.card.get_standardizer() if ckpt is not None else None  # None: fitted on these jets below
class_names = (model.card.class_names if ckpt is not None else None) or list(data.label_names)
print(f"loaded the pretrained model from {ckpt}" if ckpt is not None else f"no checkpoint (checkpoint={checkpoint!r}): "
      "a tiny UNTRAINED PET, so its probabilities are meaningless; checkpoint='auto' gives the shipped model.")
print(f"{sum(p.numel() for p in model.parameters()):,} parameters")

# %% [markdown]
# Tag the first eight jets: the classifier head returns one logit per class; softmax turns them
# into class probabilities.

# %%
x, mask, jet_inputs, standardizer = model_inputs(jets, standardizer)
with torch.no_grad():
    logits = model(
        torch.as_tensor(x[:8], dtype=torch.float32, device=device),
        torch.as_tensor(mask[:8], device=device),
        torch.as_tensor(jet_inputs[:8], dtype=torch.float32, device=device),
    )
probs = logits.softmax(dim=-1).cpu().numpy()

# %%
# NBVAL_CHECK_OUTPUT
print("probabilities of", len(probs), "jets | each row sums to 1:", bool(np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)))

# %%
true_name = data.label_names[jets.labels[0]]
best = int(probs[0].argmax())
print(f"jet 0 is a {true_name} jet; the model says {class_names[best]} (p = {probs[0, best]:.2f})")
jnb.save_metrics({"n_jets": len(jets), "class_counts": dict(zip(data.label_names, counts)), "pretrained": ckpt is not None,
                  "probabilities_jet0": dict(zip(class_names, probs[0]))}, "metrics");

# %% tags=["plot"]
with style():
    fig, ax = new_figure(figsize=(8, 4.5))
    ax.bar(range(len(class_names)), probs[0], color="#f89c20")
    ax.set_xticks(range(len(class_names)), class_names, rotation=45, ha="right")
    ax.set_ylabel("probability")
    label_axes(ax, rlabel=f"jet 0 (true: {true_name})")
jnb.save_figure(fig, "tag_jet0");

# %% [markdown]
# ## Where next
#
# - **01_pretraining**: pretrain PET on JetClass-like jets (classification + generation).
# - **02_top_tagging**: fine-tune it for top tagging and compare with training from scratch.
# - **03_omnifold_unfolding**: unfold Z+jets substructure with OmniFold.
# - **04_lhco_anomaly_detection**: weakly supervised resonance search on the LHC Olympics data.
#
# Run the whole series headless with `jetlab run --all --profile cpu-quick`.

# %% [markdown]
# ## Exercises
#
# Predict first, then run the cell below the question to check (answers in the collapsed cell at the end).
#
# 1. **Particles per jet.** A top quark decays to three quarks, a W/Z/H to two, while a QCD jet starts from
#    one. Which class has the most particles per jet on average, and which the fewest?
# 2. **Jet mass.** Which class should have its median jet mass nearest 173 GeV, and which nearest 80-91 GeV?
# 3. **Softmax temperature.** Divide the logits by 2 before the softmax. Does the largest probability of
#    jet 0 go up or down? Can the order of the classes change?

# %% tags=["exercise"]
mult, mass = jets.mask.sum(axis=1), jets.jet_feature("mass")
for k, name in enumerate(data.label_names):
    print(f"{name:>10s}: mean multiplicity {mult[jets.labels == k].mean():5.1f}, median mass {np.median(mass[jets.labels == k]):6.1f} GeV")

# %% tags=["exercise"]
soft = (logits / 2).softmax(dim=-1).cpu().numpy()
print(f"largest probability of jet 0: T = 1 {probs[0].max():.3f}, T = 2 {soft[0].max():.3f}")
print("same order of classes for every jet:", bool((probs.argsort(axis=1) == soft.argsort(axis=1)).all()))

# %% [markdown] tags=["answers"] jupyter={"source_hidden": true}
# **Answers**
#
# 1. Top jets have the most particles (three hard prongs, each showering), W and Z jets the fewest. QCD jets
#    are not the fewest: many start from a gluon, which radiates more than a quark (colour factor 3 vs 4/3),
#    so they land between W/Z and top. Multiplicity alone does not tell a W from a QCD jet; mass does.
# 2. Top jets peak near the top mass (173 GeV), W and Z jets near 80 and 91 GeV, H near 125 GeV, while QCD
#    jets have a broad mass distribution at lower values (their mass comes from the shower, not a decay).
# 3. Down: a temperature T > 1 flattens the distribution towards uniform (1/5 per class). The order
#    cannot change, because dividing by a positive number keeps the order of the logits and softmax is
#    monotonic.
