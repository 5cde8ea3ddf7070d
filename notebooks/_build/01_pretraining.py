"""Build notebooks/01_pretraining.ipynb (run: python notebooks/_build/01_pretraining.py)."""

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

cells = [
    new_markdown_cell("""# 01 - Pretraining a jet foundation model (PET / OmniLearn)

**PET** (Point-Edge Transformer) treats a jet as a *set* of particles. Each particle is embedded,
a local EdgeConv block looks at its k nearest neighbours in (Δη, Δφ), and transformer blocks let
every particle attend to every other one. Padding is masked, so the output does not depend on how
many empty slots a jet has, and the model is permutation-symmetric.

**OmniLearn** trains one shared body with two heads at once:

* a **classifier head** (class-attention on a learned token): cross entropy over the jet classes,
  plus a regression of the jet features (pT, η, mass, multiplicity);
* a **generator head**: a *diffusion* model that learns to denoise particle features
  (Δη, Δφ, log(1 − pT/pT_jet)) given the noise level, the jet features and the class
  (v-prediction, cosine log-SNR schedule).

Loss = CE + jet-feature MSE + diffusion v-loss (+ the classifier applied to the noised jets,
weighted by α²). Why pretrain? The body learns what jets of many kinds look like - both to tell
them apart and to *generate* them - so fine-tuning on a new task (notebooks 02-04) starts from a
representation that needs far fewer labelled jets and converges faster.

To generate whole jets we need their jet-level features first: a small class-conditional diffusion
MLP (`JetFeatureGenerator`) samples (pT, η, mass, N), then PET's generator head samples the N
particles (deterministic DDIM)."""),
    new_code_cell("""# Parameters (papermill). Defaults = the cpu-quick profile: a few minutes on 2 CPU cores.
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
n_generate = 0              # generated jets to compare; 0 means one per test jet
device = "auto"
output_dir = "jetlab_output/01_pretraining"
seed = 0""", metadata={"tags": ["parameters"]}),
    new_code_cell("""import time

import numpy as np

import jetlab.notebook as jnb
import jetlab.plot as jplot
from jetlab.model import PET
from jetlab.model.config import PETConfig
from jetlab.tasks.pretraining import run_pretraining
from jetlab.train import LiveLossPlot
from jetlab.widgets import TrainingMonitor

run = jnb.setup(dict(dataset=dataset, n_jets=n_jets, epochs=epochs, model=model, batch_size=batch_size,
                     lr=lr, diffusion_weight=diffusion_weight, ema_decay=ema_decay, jet_epochs=jet_epochs,
                     gen_steps=gen_steps, n_generate=n_generate, device=device,
                     output_dir=output_dir, seed=seed), seed=seed)
t_start = time.perf_counter()"""),
    new_markdown_cell("## The model\nThe parameter count per part (body, classifier head, generator head):"),
    new_code_cell("""presets = {"tiny": PETConfig.tiny, "small": PETConfig.small, "paper": PETConfig.paper}
PET(presets[model](num_classes=5)).describe();"""),
    new_markdown_cell("""## Train
Data are generated (Pythia 8 + FastJet, cached) on first use. The loss curves update live in
JupyterLab; run headless they are drawn once training is done."""),
    new_code_cell("""monitor = TrainingMonitor(title="PET pretraining")
def on_update(update):
    h = update["history"]
    monitor.update({"epoch": [e["epoch"] + 1 for e in h.epochs], "train_loss": h.train_loss,
                    "val_loss": h.val_loss, "step_loss": h.step_loss})
monitor.display()
result = run_pretraining(dataset, n_jets=n_jets, epochs=epochs, model_size=model, device=run.device,
                         output_dir=jnb.output_dir(), seed=seed, batch_size=batch_size, lr=lr, jet_epochs=jet_epochs,
                         diffusion_weight=diffusion_weight, ema_decay=ema_decay or None,
                         gen_steps=gen_steps, n_generate=n_generate or None,
                         callbacks=[LiveLossPlot(on_update, every=5)], progress=False)
print(f"train/val/test jets: {len(result.train)}/{len(result.val)}/{len(result.test)}")
print("timings [s]:", {k: round(v, 1) for k, v in result.timings.items()})"""),
    new_code_cell("""fig = monitor.figure()
jnb.save_figure(fig, "loss_curves");"""),
    new_markdown_cell("""## Classification
Multi-class accuracy on the held-out test jets (chance = the largest class fraction) and the
confusion matrix (rows: true class, normalised)."""),
    new_code_cell("""ev = result.evaluation
print(f"accuracy {ev['accuracy']:.3f} (chance {ev['chance_accuracy']:.3f}); "
      f"classifier accuracy on generated jets {ev['generated_accuracy']:.3f}")
fig = jplot.confusion_matrix(result.test.labels[: ev["n_test"]], ev["predictions"], result.class_names)
jnb.save_figure(fig, "confusion_matrix");"""),
    new_markdown_cell("""## Generated vs real jets
Jet mass and multiplicity are computed from the *generated particles*. The 1-Wasserstein
distance W1 between generated and real test jets is compared with the W1 between two independent
real samples of the same size (validation vs test): that is the floor set by statistics alone."""),
    new_code_cell("""gen = ev["generated"]
real = result.test.subset(slice(0, len(gen)))
fig = jplot.compare_jets(real, gen, ("particle pt", "particle eta", "particle phi", "multiplicity", "jet mass"))
jnb.save_figure(fig, "generated_vs_real");
rows = [{"observable": o, "W1 generated vs real": ev["w1"][o]["all"], "W1 real vs real (floor)": ev["w1_reference"][o]["all"]}
        for o in ev["w1"]]
jplot.results_table(rows) if hasattr(jplot, "results_table") else rows"""),
    new_code_cell("""per_class = {c: {o: round(ev["w1"][o].get(c, float("nan")), 3) for o in ("jet_mass", "multiplicity")}
             for c in result.class_names}
print("W1 per class (jet mass [GeV], multiplicity):", per_class)"""),
    new_markdown_cell("""## Save
The checkpoint (`model.safetensors` + `model_card.json`, with the jet generator alongside) is in
`<output_dir>/checkpoint`; notebooks 02-04 find it with `checkpoint="auto"`."""),
    new_code_cell("""metrics = {k: ev[k] for k in ("accuracy", "chance_accuracy", "generated_accuracy", "per_class_accuracy",
                             "confusion_matrix", "w1", "w1_reference")}
metrics.update(checkpoint=str(result.checkpoint), timings=result.timings, parameters=result.model.num_parameters(),
               notebook_wall_s=time.perf_counter() - t_start)
print("metrics:", jnb.save_metrics(metrics, "metrics"))
print("checkpoint:", result.checkpoint)"""),
]
nb = new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                                          "language_info": {"name": "python"}})
out = Path(__file__).resolve().parents[1] / "01_pretraining.ipynb"
nbformat.write(nb, out)
print(out)
