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
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 01 - Pretraining a jet foundation model (PET / OmniLearn)
#
# **PET** (Point-Edge Transformer) treats a jet as a *set* of particles. Each particle is embedded,
# a local EdgeConv block looks at its k nearest neighbours in (Δη, Δφ), and transformer blocks let
# every particle attend to every other one. Padding is masked, so the output does not depend on how
# many empty slots a jet has, and the model is permutation-symmetric.
#
# **OmniLearn** trains one shared body with two heads at once:
#
# * a **classifier head** (class-attention on a learned token): cross entropy over the jet classes,
#   plus a regression of the jet features (pT, η, mass, multiplicity);
# * a **generator head**: a *diffusion* model that learns to denoise particle features
#   (Δη, Δφ, log(1 − pT/pT_jet)) given the noise level, the jet features and the class
#   (v-prediction, cosine log-SNR schedule).
#
# Loss = CE + jet-feature MSE + diffusion v-loss (+ the classifier applied to the noised jets,
# weighted by α²). Why pretrain? The body learns what jets of many kinds look like - both to tell
# them apart and to *generate* them - so fine-tuning on a new task (notebooks 02-04) starts from a
# representation that needs far fewer labelled jets and converges faster.
#
# To generate whole jets we need their jet-level features first: a small class-conditional diffusion
# MLP (`JetFeatureGenerator`) samples (pT, η, mass, N), then PET's generator head samples the N
# particles (deterministic DDIM). At a CPU budget the diffusion head does not honour the jet pT and
# mass it is conditioned on closely, so by default (`gen_constraints = ["pt", "mass", "detector"]`) the
# generated particles are held to them: their pT are scaled to add up to the jet pT and the jet is
# widened or narrowed about its axis to the jet mass. And they are held to what the detector can
# record, as real particles are: a generated particle softer than the detector's threshold at its η
# is drawn again by the diffusion head, given the rest of its jet (inpainting); one that is still
# unrecordable after three draws is removed, as the detector would never have reported it. The
# diffusion head still decides how the pT is shared and where the particles lie relative to each
# other; the section "What the diffusion head does alone" shows the same model without the constraints.

# %% tags=["parameters"]
# Parameters (papermill). Defaults = the cpu-quick profile: a few minutes on 2 CPU cores.
dataset = "jetclass-mini"   # a generator name (generated + cached) or a schema .h5 file
n_jets = 4000               # jets generated / read (split 80/10/10 train/val/test)
epochs = 10
model = "tiny"              # model size: tiny | small | paper
batch_size = 32             # small batches give more optimizer steps, which the diffusion head needs on a CPU budget
lr = 1e-3
diffusion_weight = 3.0      # weight of the diffusion v-loss (OmniLearn uses 1 at GPU scale)
ema_decay = 0.99            # EMA of the weights (0.999 at GPU scale)
jet_epochs = 100            # epochs of the jet-feature generator (a small MLP)
gen_steps = 32              # DDIM steps for particle generation
gen_constraints = ["pt", "mass", "detector"]  # held to the generated jet pT, mass and the detector's reach; empty: diffusion head alone
gen_guidance = 0.0          # classifier-free guidance w of the particle sampler: 0 samples the head as trained (see "Guidance" below)
n_generate = 0              # generated jets to compare; 0 means one per test jet
device = "auto"
output_dir = "jetlab_output/01_pretraining"
seed = 0

# %%
import jetlab.notebook as jnb
from jetlab.model import PET, PETConfig
from jetlab.tasks.pretraining import PretrainingSettings, run_pretraining
from jetlab.train import LiveLossPlot
from jetlab.widgets import TrainingMonitor

run, settings = jnb.setup(globals(), PretrainingSettings)  # the parameters above, checked and frozen

# %% [markdown]
# ## The model
# The parameter count per part (body, classifier head, generator head):

# %%
PET(PETConfig.preset(model, num_classes=5)).describe();

# %% [markdown]
# ## Train
# Data are generated (Pythia 8 + FastJet, cached) on first use. The loss curves update live in
# JupyterLab; run headless they are drawn once training is done.

# %%
monitor = TrainingMonitor(title="PET pretraining")
monitor.display()
result = run_pretraining(dataset, settings, callbacks=[LiveLossPlot(monitor, every=5)], progress=False)
print(f"train/val/test jets: {len(result.train)}/{len(result.val)}/{len(result.test)}")
print("timings [s]:", {k: round(v, 1) for k, v in result.timings.items()})

# %% tags=["plot"]
jnb.save_figure(monitor.figure(), "loss_curves");

# %% [markdown]
# ## Classification
# Multi-class accuracy on the held-out test jets (chance = the largest class fraction) and the
# confusion matrix (rows: true class, normalised).

# %%
ev, se = result.evaluation, result.evaluation["standard_errors"]
# ± binomial standard errors: a test set or a generated sample of the same size scatters that much
# (for the generated jets, another sampling seed does: see benchmarks/README.md)
print(f"accuracy {ev['accuracy']:.3f} ± {se['accuracy']:.3f} (chance {ev['chance_accuracy']:.3f}); "
      f"classifier accuracy on generated jets {ev['generated_accuracy']:.3f} ± {se['generated_accuracy']:.3f} "
      f"({ev['generated_accuracy'] / ev['accuracy']:.2f}x)")
# the generator produces massless (pT, eta, phi) alone: the same classifier on the real test jets
# reduced to that (no charge, no particle type) is the like-for-like reference
print(f"accuracy on real jets seen as the generator produces them {ev['kinematic_accuracy']:.3f} "
      f"± {se['kinematic_accuracy']:.3f}; generated / that: {ev['generated_accuracy'] / ev['kinematic_accuracy']:.2f}x")

# %% [markdown]
# ## Generated vs real jets
# Jet mass and multiplicity are computed from the *generated particles*. The 1-Wasserstein
# distance W1 between generated and real test jets is compared with the W1 between two independent
# real samples of the same size (validation vs test): that is the floor set by statistics alone.

# %%
result.table()

# %%
print("W1 per class (jet mass [GeV], multiplicity):", result.w1_per_class())
if "unrecordable" in ev:  # jetlab's generated datasets: their detector model is known
    u = ev["unrecordable"]
    print(f"generated particles the detector could not have recorded: {u['after']:.2%} (first drawn by the "
          f"diffusion head: {u['before']:.2%}, drawn again; removed after three draws: {u['removed']:.2%})")

# %% [markdown]
# ## What the diffusion head does alone
# The same model and jet features, sampled again without `gen_constraints`: the particles' pT and mass
# are then whatever the diffusion head makes of the jet features it is conditioned on. The mass scale
# says how far each jet had to be widened (> 1) or narrowed (< 1) to reach its mass (5th, 50th, 95th
# percentile), and "unrecordable particles" which fraction of the particles the detector model could
# not have recorded (softer than its threshold at their η: `DetectorModel.min_visible_pt`): as judged,
# as first drawn, and removed after the "detector" constraint drew them again. The distance between
# the rows is the diffusion head's own error.

# %%
result.compare_generation([], device=run.device)

# %% [markdown]
# ## The foundation model jetlab ships
# The model above was pretrained here in minutes, on the jets of this notebook. jetlab also ships a
# foundation model, `jetlab-foundation`: the same tiny PET pretrained on 100,000 jets of all ten
# JetClass classes (`jetlab pretrain --recipe jetlab-foundation`, under an hour on 2 CPU cores;
# `jetlab model info jetlab-foundation` shows its card). It is what notebooks 02-04 fine-tune with
# `checkpoint="auto"`. Here it is judged on the same test jets as the model above: deciding among this
# notebook's classes, and generating jets the same way (jet features from a generator fitted to these
# training jets, the same steps, seed and constraints), against the same real-vs-real floor.

# %%
result.compare_with("jetlab-foundation", device=run.device)

# %% [markdown]
# ## Guidance: more typical jets, at a price
# The diffusion head was trained with its class label dropped for one jet in ten, so it also knows the
# unconditional velocity. Classifier-free guidance samples with `(1 + w) v(class) - w v(null)`: `gen_guidance = w`
# above (twice the sampling time). `benchmarks/bench_guidance.py` sampled this notebook's stored cpu-quick test
# jets with three sampling seeds (`benchmarks/results/guidance_notebook01.json`, table in `benchmarks/README.md`).
# The generated / real accuracy goes from 0.80 ± 0.01 to 0.81 ± 0.004 at w = 4 for this notebook's model, and
# from 0.76 ± 0.01 to 0.84 ± 0.004 for jetlab-foundation. Beyond w = 6 it falls again, and the particle-pT W1
# grows from the first step: the jets become more typical of their class and less like real ones. Neither model
# reaches 0.9x: the particles the head draws, not its class conditioning, set the limit. So this notebook
# keeps `gen_guidance = 0`, the head as trained.

# %% [markdown]
# ## Save
# `result.save()` writes `metrics.json` and the figures: the confusion matrix of the classifier head
# (rows: true class, normalised) and generated vs real jets. The checkpoint (`model.safetensors` + `model_card.json`, with the jet generator alongside) is in
# `<output_dir>/checkpoint`; notebooks 02-04 find it with `checkpoint="auto"`.

# %% tags=["plot"]
result.save(run.output_dir)  # metrics.json, the confusion matrix and generated vs real jets
print("checkpoint:", result.checkpoint)

# %% [markdown]
# ## Exercises
#
# Predict first, then run the cell below to check (answers in the collapsed cell at the end).
#
# 1. **Chance level.** "Chance" above is the accuracy of always answering the most common class. Predict it
#    from the class counts of the test jets.
# 2. **Model size.** The `small` preset has a wider embedding and more transformer blocks than `tiny`.
#    Roughly how many times more parameters do you expect? (A transformer block has about 12 d² weights
#    for width d.)

# %% tags=["exercise"]
import numpy as np

counts = np.bincount(result.test.labels[: ev["n_test"]], minlength=len(result.class_names))
print("test jets per class:", dict(zip(result.class_names, counts.tolist())))
print(f"largest class fraction {counts.max() / counts.sum():.3f} = chance accuracy {ev['chance_accuracy']:.3f}")

# %% tags=["exercise"]
# NBVAL_CHECK_OUTPUT
sizes = {name: sum(p.numel() for p in PET(PETConfig.preset(name, num_classes=5)).parameters()) for name in ("tiny", "small")}
print(", ".join(f"{name}: {n:,} parameters" for name, n in sizes.items()), f"| ratio {sizes['small'] / sizes['tiny']:.1f}")

# %% [markdown] jupyter={"source_hidden": true} tags=["answers"]
# **Answers**
#
# 1. The largest count divided by the number of test jets: exactly the `chance_accuracy` printed above. A
#    classifier is only useful where its accuracy is clearly above that number.
# 2. The weights grow with the square of the width times the number of blocks: see the ratio printed by the
#    cell. More parameters need more jets and epochs to train, which is why the CPU profiles use `tiny`.
