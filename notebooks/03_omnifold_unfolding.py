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
# # 03 · OmniFold: unbinned unfolding with the foundation model
#
# A detector smears every jet: what we *measure* (detector level, "reco") is not what nature produced
# (particle level, "gen"). **Unfolding** undoes that. Classic methods such as iterative Bayesian unfolding
# (IBU) do it one *binned* observable at a time. **OmniFold** (Andreassen et al., PRL 124 (2020) 182001)
# unfolds the *whole event*, unbinned, with two classifiers per iteration:
#
# 1. **Step 1 - pull.** Train a classifier to separate measured data from simulation at detector level,
#    the simulation weighted by the current weights ν. Its likelihood ratio f/(1-f) turns ν into
#    *pull* weights ω that make the reweighted simulation look like data at detector level.
# 2. **Step 2 - push.** ω is a function of the *detector-level* event. Train a second classifier on the
#    *particle-level* simulation, weighted by ω (label 1) against weighted by ν (label 0): its ratio
#    gives new weights ν that are a proper function of the particle-level event.
#
# Iterating converges to the maximum-likelihood unfolding; any observable computed from the reweighted
# particle-level simulation is then unfolded at once. The classifiers are the expensive part - which is
# where a pretrained **foundation model** helps: the OmniLearn paper fine-tunes the pretrained PET body
# and reaches the from-scratch model's best validation loss about **2x faster** in the first step.
#
# This notebook compares four classifiers on the same events: **PET fine-tuned** from the pretrained
# checkpoint, **PET from scratch**, a **Particle Flow Network** (`OmniFold-pfn`: the Deep Sets network
# on the particles that the original OmniFold paper unfolded with, Phi 100-100-256 and F 100-100-100,
# the paper's Table II reference) and a small **MLP on six jet observables**, plus IBU per observable.

# %% [markdown]
# ## Parameters
#
# The next cell is tagged `parameters`; `jetlab run notebooks/03_omnifold_unfolding.ipynb --profile cpu-quick`
# (or `-p NAME VALUE`) replaces these values after checking names and types.

# %% tags=["parameters"]
dataset = "zjets-mini"  # generator name, "omnifold_zjets" (Zenodo npz files) or a schema file
n_jets = 4000  # events per generator setup (-1: all of a public dataset)
n_iterations = 3  # OmniFold iterations
epochs = 4  # per step; later iterations continue from the previous model (warm start)
batch_size = 32
lr = 1e-3  # every classifier's learning rate (None: each one's own)
lr_factor = 1.0  # the fine-tuned PET's body learns at lr / lr_factor (the OmniLearn recipe: 5)
step2_init = "step1"  # step 2 starts from the step-1 model just trained ("previous": fresh, then warm start)
early_stopping_patience = 2
max_particles = 48  # PET sees the leading particles only (CPU budget); None: all
model = "tiny"  # PET preset for "scratch" when no checkpoint fixes the architecture
checkpoint = "auto"  # pretrained model directory; "auto": $JETLAB_CHECKPOINT, else the foundation model jetlab ships; "none"
pretrain_jets = 4000  # only where jetlab ships no model and "auto" finds none
pretrain_epochs = 8
classifiers = ["pretrained", "scratch", "pfn", "mlp"]  # "pfn": the original OmniFold's PFN
n_bootstrap = 20  # resamplings for the table's uncertainties
seeds = [0, 1, 2]  # OmniFold runs with the first; each PET's step-1 convergence is averaged over all
input_scaling = "task"  # fine-tuned PET inputs scaled to the simulation: these jets lie far from the pretraining jets
optimizer = "adamw"  # or "lion" (the OmniLearn reference recipe)
device = "auto"
seed = 0
output_dir = "jetlab_output/03_omnifold_unfolding"

# %%
import jetlab.notebook as jnb
from jetlab.tasks.omnifold import OmniFoldSettings, run_omnifold

run, settings = jnb.setup(globals(), OmniFoldSettings)  # the parameters above, checked and frozen

# %% [markdown]
# ## 1. Data: two generator setups at particle and detector level
#
# `zjets-mini` mimics the OmniFold Z+jets sample: Z(→νν)+jet events, the leading anti-kT R = 0.4 jet at
# particle level (`*_gen`) and after a parametric detector (`*_reco`), row-aligned per event. The
# "simulation" is Pythia 8 with the Monash tune; the "data" differ the way Herwig differs from Pythia, in shower
# and hadronisation together (CMW shower α_s, softer and wider Lund string fragmentation). The truth we try to
# recover (`data_gen`: more constituents, wider jets, higher τ21) is many times its statistical floor away from the
# prior (`sim_gen`) in mass, N, width, log ρ and τ21 with 4000 events; no Pythia setting moves soft-drop z_g
# beyond statistics (benchmarks/README.md, "zjets-mini: sim vs data").
#
# So zjets-mini adds a **z_g stress test**, on by default: each "data" event is kept with probability
# 1 − 0.8 z_g / 0.5, with z_g of its particle-level leading jet (accept-reject on generated events, so they
# stay unweighted, and nothing else is selected on). The truth then has softer splittings by a known amount,
# and all six observables differ from the prior by 4-19 times their statistical floor
# (`benchmarks/results/zjets_mini_zg_stress.json`). It is a test of the method, not physics: the real case
# is a different generator, as Herwig in the OmniFold Z+jets sample (`dataset = "omnifold_zjets"`);
# `resolve("zjets-mini", ..., zg_stress=False)` gives the sample without it.

# %% [markdown]
# ## 2. The pretrained model
#
# `resolve_checkpoint("auto")` takes `$JETLAB_CHECKPOINT` if it is set, else the foundation model shipped
# inside jetlab (the tiny PET pretrained on 100,000 jets of the ten JetClass classes: `jetlab model info
# jetlab-foundation`). The body learns at `lr / lr_factor`: the OmniLearn recipe slows it 5x, but with 3200 training events
# and 4 epochs the body has to learn as fast as the new head (`lr_factor = 1`; benchmarks/README.md, "What the
# OmniFold classifiers learn"). With `input_scaling = "task"` both PETs
# scale their inputs to the simulation's means and widths: the pretrained weights then see inputs with the
# moments they were trained on, although these R = 0.4, 200 GeV jets lie far from the pretraining jets
# (`"task"` is jetlab's default in every task; `"pretraining"` keeps the pretraining sample's scaling;
# `benchmarks/bench_finetune_recipe.py` compares the two over seeds). The scratch
# model uses the *same* architecture, so the comparison isolates the effect of pretraining.

# %% [markdown]
# ## 3. Run OmniFold
#
# Each classifier runs `n_iterations` iterations of the two steps. Simulated *events* (gen and reco rows
# together) and data events are split once into disjoint training and validation sets; early stopping and
# the choice of the best model look at the validation events only. Weights enter the loss (weighted BCE,
# both classes normalised to the same total) and every histogram. The per-step likelihood ratio is clipped
# to [1/10, 10]. Iterations after the first continue from the previous iteration's model at a 5x smaller,
# fixed learning rate. Step 2 starts from a copy of the step-1 model just trained (`step2_init = "step1"`):
# both learn the same weight ratio, step 1 from the detector-level event and step 2 from the particle-level one.
# Step 2's own signal is weak (the same events twice, with two sets of weights), and from a fresh model a
# few epochs learn only what mass and multiplicity carry; the substructure step 1 found is then lost.

# %%
results = run_omnifold(dataset, settings)

# %% [markdown]
# ## 4. Convergence: pretrained vs scratch (the paper's Figure 1)
#
# Validation loss of step 1 in the first iteration, sampled twice per epoch. On a few thousand events one
# training's curve wobbles by about as much as pretrained and scratch differ, so each PET is trained
# once per seed in `seeds` (other train/validation splits and initialisations; the OmniFold run above is
# the first) and the curves are averaged. The band is the spread over seeds; most of it comes from the
# seeds' different validation events, which move both PETs alike, so read the seeds pairwise (below). The number is
# *epochs the scratch mean needs to reach its best validation loss / epochs the pretrained mean needs to
# reach that same value* (linear interpolation between samples; > 1 means pretraining converges faster;
# the OmniLearn paper reports about 2), followed by the same ratio for each seed on its own.

# %%
print(results.convergence_report())

# %% [markdown]
# ## 5. Triangular discriminators (the paper's Table II)
#
# Δ(p, q) = ½ Σ (p_i − q_i)² / (p_i + q_i) × 10³ between the unfolded and the true particle-level
# distribution (lower is better), for IBU (binned, per observable, same iteration count), each OmniFold
# classifier and the prior (the simulation before unfolding). Uncertainties: spread over bootstrap
# resamplings of the events (statistical only).
#
# For comparison, the OmniLearn paper (OmniFold Z+jets, Pythia → Herwig, 1.6M events):
#
# | observable | IBU | OmniFold (DeepSets) | OmniLearn |
# |---|---|---|---|
# | jet mass | 9.31 | 2.77 | 2.8 ± 0.9 |
# | multiplicity N | 1.51 | 0.33 | 0.50 ± 0.15 |
# | width | 0.11 | 0.10 | 0.09 ± 0.02 |
# | log ρ | 0.71 | 0.35 | 0.23 ± 0.07 |
# | τ21 | 1.10 | 0.53 | 0.13 ± 0.03 |
# | z_g | 0.37 | 0.68 | 0.19 ± 0.03 |
#
# With a few thousand events the statistical floor of Δ (about n_bins / (2N) × 10³) dominates: compare
# the columns with each other and with the prior, not with the paper's absolute numbers.

# %%
results.table()

# %% [markdown]
# **Read the rows.** OmniFold unfolds every observable at once, but only as well as its
# classifiers have learned the features in which simulation and data differ. PET receives the jet mass and
# multiplicity directly (its jet-level inputs); the substructure behind τ21 it has to learn from the
# particles, from 3200 training events in 4 epochs per step. Two settings make that possible here
# (benchmarks/README.md, "What the OmniFold classifiers learn", `bench_omnifold_classifiers.py`):
#
# - **Enough optimizer steps:** batch 32, lr 1e-3, and the pretrained body at the head's rate.
# - **Step 2 starting from step 1's model.** Both learn the same weight ratio. From a fresh model, step 2's
#   weak signal teaches it only mass and multiplicity, and the pretrained PET unfolds τ21 above the prior:
#   56 after the first iteration, against 36 when step 2 starts from step 1.
#
# With them, and the foundation model jetlab ships as the starting point (pretrained on 100,000 jets of ten
# classes), the stored cpu-quick run shows what the paper's Table II shows:
#
# - The fine-tuned PET unfolds every observable below the prior, by 3-15 times the larger bootstrap spread.
#   It is the best method in τ21 (4.6 ± 3.1 against IBU's 6.4, the prior's 54.0).
# - It is below the PFN, the original OmniFold network, in width, log ρ, τ21 and z_g. The PFN's τ21 (73.4)
#   stays above the prior: 4 epochs a step are too few for it.
# - From scratch, the same PET learns τ21 and z_g far less well (32.5 and 26.9).
# - The observables MLP, handed the ingredients of the six observables, stays best in log ρ (7.0 against
#   17.7) and multiplicity. The pretrained PET's multiplicity worsens with the iterations (16.6, 22.4, 26.9:
#   section 7).
# - z_g now differs from the prior by the stress test (section 1); every method but the PFN (35.6 against
#   36.2) unfolds it towards the truth.
#
# These figures are from the stored run; another seed moves them by about the spreads shown.
# More events and epochs (the `gpu-hour` and `paper` profiles) are where PET's particles can pay off further.

# %% [markdown]
# ## 6. Unfolded distributions
#
# Truth (the "data" generator at particle level), prior (simulation) and the unfolded simulation of each
# classifier, normalised to unit area; the ratio panel divides by the truth. `results.save()` writes them,
# the seed-averaged step-1 validation-loss curves of section 4 and `metrics.json` (the table, the
# per-iteration discriminators, the convergence numbers and curves, every run's summary).

# %% tags=["plot"]
results.save(run.output_dir);

# %% [markdown]
# ## 7. Step through the iterations
#
# Pick an observable and an iteration: the unfolded distribution after that iteration against truth,
# prior and IBU, with the triangular discriminators. In a headless run the static figure is shown.

# %% tags=["plot"]
from jetlab.widgets import IterationExplorer

IterationExplorer(results.explorer_results()).display()

# %% [markdown]
# ## Exercises
#
# Predict first, then run the cell below to check (answers in the collapsed cell at the end).
#
# 1. **The discriminator by hand.** What is Δ × 10³ for two histograms of the same shape but different
#    normalisation? And for two histograms with no bin in common?
# 2. **The statistical floor.** Two samples of N = 2000 events drawn from the *same* distribution, in 20 bins:
#    what Δ × 10³ do you expect from statistics alone (see section 5)?
# 3. **Iterations.** Does Δ between the unfolded and the true distribution shrink from the first iteration to
#    the last, for every observable?

# %% tags=["exercise"]
# NBVAL_CHECK_OUTPUT
import numpy as np

from jetlab.physics.metrics import triangular_discriminator

print(f"same shape: {triangular_discriminator([1, 2, 3], [2, 4, 6]):.1f}, disjoint: {triangular_discriminator([1, 0], [0, 1]):.1f}")
rng = np.random.default_rng(0)
a, b = (np.histogram(rng.normal(size=2000), bins=20, range=(-4, 4))[0] for _ in range(2))
print(f"two samples of one distribution: {triangular_discriminator(a, b):.1f} (expected about 20 / (2 x 2000) x 1e3 = 5)")

# %% tags=["exercise"]
explorer = IterationExplorer(results.explorer_results())
for obs in explorer.results:
    print(obs, [round(explorer.set(observable=obs, iteration=i)["delta_unfolded_x1e3"], 1) for i in range(1, explorer.n_iterations + 1)])

# %% [markdown] tags=["answers"] jupyter={"source_hidden": true}
# **Answers**
#
# 1. 0 for the same shape (Δ compares normalised histograms), and 1000 for disjoint ones (the maximum:
#    ½ Σ (p − q)² / (p + q) = ½ (1 + 1) = 1).
# 2. About n_bins / (2N) × 10³ = 5, because each normalised bin fluctuates by about √(p_i / N); one pair of
#    samples scatters around that value. No unfolding can beat this floor with N events.
# 3. Not necessarily: each iteration moves the weights further from the prior, which removes bias but adds
#    statistical noise. With few events Δ often stops shrinking after the first iteration or two, and it can
#    rise again: that is why the number of iterations is a regularisation choice.
