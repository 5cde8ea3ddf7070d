"""GPU check: jetlab's GPU path in one command that fits a short device lease (< 8 minutes on one H100).

Sections, each guarded (a failure is reported in the summary and the rest still runs) and all under
one time budget (``--minutes``):

* ``env``: device name, torch / CUDA / cuDNN versions, missing packages;
* ``data``: every generated file the run reads, made (or found carried, see ``--prepare``) with all
  cores *before* any GPU timing starts;
* ``speed``: PET ``small`` and ``paper`` vs weaver-core's ParticleTransformer on the same inputs
  (batch 256, 128 particles; built as benchmarks/bench_model.py builds them): training and
  inference jets/s in fp32, bf16 autocast and bf16 + ``torch.compile``, peak GPU memory, PET/ParT
  ratios (medians of repeats after warm-up, ``torch.cuda.synchronize`` around each repeat);
* ``attention``: which ``scaled_dot_product_attention`` kernel PET's masked attention dispatches to
  at bf16, and PET's jets/s with each kernel forced in turn (``torch.nn.attention.sdpa_kernel``);
* ``pretraining``: ``small`` PET pretrained for a fixed time with the GPU recipe (batch 250,
  diffusion weight 1) by :func:`jetlab.tasks.pretraining.run_pretraining`; jets/s, accuracy and the
  generated-jet W1 (jet mass, multiplicity) against the real-vs-real floor, as notebook 01 reports;
* ``ddp``: a 2-process gloo run's losses and weights against 1 process, DDP's find_unused flag;
* ``notebooks``: notebooks 01, 00, 02-04 through ``jetlab run`` with the ``gpu-smoke`` profile, each
  timed; executed notebooks and metrics kept.

Writes ``OUTDIR/summary.md``, ``OUTDIR/summary.json``, ``OUTDIR/gpu_check.log`` and
``OUTDIR/artifacts.tar.gz`` (everything else, packed: the device tool returns at most 8 files) and
prints the markdown summary last.

    python benchmarks/gpu_check.py OUTDIR                       # on the GPU machine (see benchmarks/README.md)
    python benchmarks/gpu_check.py OUTDIR --device cpu --smoke  # seconds-scale sizes on a CPU (the test suite)
    python benchmarks/gpu_check.py --prepare .gpu_carry         # on a CPU machine before a GPU session:
                                                                # data + the wheels the device image lacks
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tarfile
import time
import traceback
import warnings
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

from result_paths import portable_path  # noqa: E402 - benchmarks/, the script's own folder

from jetlab.train.callbacks import TimeLimit  # noqa: E402 - after the path set-up (run from a checkout)

#: issue 19's targets on one H100
TARGET_PAPER_OVER_PART_TRAIN_BF16 = 1.2
TARGET_SMALL_INFER_JETS_PER_S = 20_000.0
#: two timings within this fraction of each other are a tie (repeat-to-repeat noise)
TIE = 0.03
SECTIONS = ("env", "data", "speed", "attention", "pretraining", "ddp", "notebooks")
NOTEBOOK_ORDER = ("01_pretraining", "00_quickstart", "02_top_tagging", "03_omnifold_unfolding",
                  "04_lhco_anomaly_detection")
SDPA_BACKENDS = ("FLASH_ATTENTION", "EFFICIENT_ATTENTION", "CUDNN_ATTENTION", "MATH")
DDP_WARNING = "find_unused_parameters=True was specified in DDP constructor, but did not find any unused parameters"

#: Packages of the device machines' image ('cuda'), as the workplace's device notes list them
#: (read 2026-11-17). ``--prepare`` downloads wheels only for what the run needs beyond these.
DEVICE_IMAGE_PACKAGES = frozenset(s.strip() for s in (
    "absl-py, accelerate, aiofiles, aiohappyeyeballs, aiohttp, aiosignal, annotated-doc, anyio, attrs, botorch, "
    "build, certifi, charset-normalizer, chex, click, cloudpickle, cmake, colorama, contourpy, coverage, "
    "cuda-bindings, cuda-core, cuda-pathfinder, cuda-toolkit, cupy-cuda13x, cycler, cython, diffrax, e3nn, einops, "
    "equinox, etils, execnet, filelock, flatbuffers, flax, fonttools, formulaic, frozenlist, fsspec, gpytorch, "
    "grpcio, h11, h5py, hf-xet, httpcore, httpx, huggingface-hub, humanize, hypothesis, idna, imageio, iniconfig, "
    "interface-meta, jax, jax-cuda13-pjrt, jax-cuda13-plugin, jaxlib, jaxtyping, jinja2, joblib, kiwisolver, "
    "lazy-loader, lightning, lightning-utilities, linear-operator, lineax, llvmlite, lxml, markdown, "
    "markdown-it-py, markupsafe, matplotlib, mdurl, meson, ml-dtypes, mpi4py, mpmath, msgpack, multidict, "
    "multipledispatch, mypy-extensions, nanobind, narwhals, networkx, ninja, numba, numba-cuda, numpy, numpyro, "
    "nvidia-cublas, nvidia-cuda-cupti, nvidia-cuda-nvrtc, nvidia-cuda-runtime, nvidia-cudnn-cu13, nvidia-cufft, "
    "nvidia-cufile, nvidia-curand, nvidia-cusolver, nvidia-cusparse, nvidia-cusparselt-cu13, nvidia-ml-py, "
    "nvidia-nccl-cu13, nvidia-nvjitlink, nvidia-nvshmem-cu13, nvidia-nvtx, onnx, onnx-ir, onnxruntime, onnxscript, "
    "opencv-python-headless, optax, opt-einsum, opt-einsum-fx, optimistix, orbax-checkpoint, packaging, pandas, "
    "pathspec, patsy, peft, pillow, pip, pluggy, portalocker, prometheus-client, propcache, protobuf, psutil, "
    "pyarrow, pybind11, py-cpuinfo, pygments, pyparsing, pyproject-hooks, pyre-extensions, pytest, "
    "pytest-benchmark, pytest-cov, pytest-mock, pytest-timeout, pytest-xdist, python-dateutil, pytorch-lightning, "
    "pyyaml, regex, requests, rich, sacrebleu, safetensors, scikit-build-core, scikit-image, scikit-learn, scipy, "
    "seaborn, sentencepiece, sentence-transformers, setuptools, shellingham, simplejson, six, sortedcontainers, "
    "statsmodels, sympy, tabulate, tensorboard, tensorboard-data-server, tensorstore, threadpoolctl, tifffile, "
    "tiktoken, timm, tokenizers, toolz, torch, torchaudio, torchdiffeq, torch-geometric, torchmetrics, "
    "torchvision, tqdm, transformers, treescope, triton, typer, typing-extensions, typing-inspect, urllib3, "
    "uvloop, wadler-lindig, werkzeug, wheel, wrapt, xarray, xxhash, yarl, zipp").split(","))
#: what the run imports beyond jetlab's own dependencies (weaver-core: its ParT needs torch only,
#: so none of its heavy requirements are carried)
#: fastjet: jetlab.physics reclusters constituents for N-subjettiness and soft drop (notebook 03), so
#: the device needs it even with every data file carried (the 2026-11-28 H200 run failed there without it)
EXTRA_ROOTS = ("papermill", "ipykernel", "ipywidgets", "fastjet")
LEAF_PACKAGES = ("weaver-core",)
GENERATOR_PACKAGES = ("pythia8mc",)
#: what the carry folder may take of the device tool's 64 MiB (the working tree needs the rest)
CARRY_LIMIT_MIB = 58


# ============================================================================ settings
@dataclass(frozen=True)
class Settings:
    """Sizes of one run; FULL fits one H100 in < 8 minutes, SMOKE runs in seconds on a CPU (its time
    limits are loose on purpose: on a loaded CPU a smoke run must still measure everything)."""

    batch: int
    particles: int
    warmup: int
    iters: int
    repeats: int
    attention_iters: int
    attention_models: tuple[str, ...]
    compile: bool
    speed_s: float  # seconds for the speed section (compiles included)
    attention_s: float
    pretrain_train_s: float  # the fixed training time of the pretraining run
    pretrain_batch: int
    pretrain_epochs: int | None  # None: sized to pretrain_train_s from the measured pretraining-step rate
    pretrain_jet_epochs: int
    pretrain_gen_steps: int
    pretrain_n_generate: int
    ddp_phases: str
    ddp_epochs: int
    notebook_profile: str
    notebooks: tuple[str, ...]
    notebook_s: float  # at most this long per notebook


FULL = Settings(batch=256, particles=128, warmup=5, iters=10, repeats=3, attention_iters=5,
                attention_models=("pet-small", "pet-paper"), compile=True, speed_s=110, attention_s=20,
                pretrain_train_s=45, pretrain_batch=250, pretrain_epochs=None, pretrain_jet_epochs=50,
                pretrain_gen_steps=32, pretrain_n_generate=2000, ddp_phases="pretrain,classify", ddp_epochs=2,
                notebook_profile="gpu-smoke", notebooks=NOTEBOOK_ORDER, notebook_s=120)
SMOKE = Settings(batch=4, particles=16, warmup=1, iters=1, repeats=2, attention_iters=1, attention_models=("pet-small",),
                 compile=False, speed_s=600, attention_s=600, pretrain_train_s=3, pretrain_batch=16, pretrain_epochs=1,
                 pretrain_jet_epochs=5,
                 pretrain_gen_steps=2, pretrain_n_generate=20, ddp_phases="pretrain", ddp_epochs=1,
                 notebook_profile="ci-tiny", notebooks=("00_quickstart",), notebook_s=600)
#: the jetclass-mini sample of the timed pretraining: the gpu-smoke profile's notebook-01 file in a
#: full run (one file for both), ci-tiny's in a smoke run
PRETRAIN_SEED = 0


def pretraining_jets(settings: Settings) -> int:
    from jetlab.runner import load_profile

    return int(load_profile(settings.notebook_profile)["01_pretraining"]["n_jets"])


# ============================================================================ plumbing
class Log:
    """Print and append to OUTDIR/gpu_check.log (the device tool returns only the output's tail)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path

    def __call__(self, msg: str) -> None:
        print(msg, flush=True)
        if self.path is not None:
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(msg + "\n")


@dataclass
class Context:
    args: argparse.Namespace
    settings: Settings
    device: Any  # torch.device
    out: Path
    work: Path
    deadline: float
    log: Log
    results: dict[str, Any] = field(default_factory=dict)

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def notebook_reserve(self) -> float:
        """Seconds kept back for the notebooks section, only when this run includes it (a ``--sections ddp``
        rerun gave its subprocess 10 s because the unselected notebooks' time was still kept back)."""
        return self.settings.notebook_s if "notebooks" in [x.strip() for x in self.args.sections.split(",")] else 0.0


def run_section(name: str, fn: Callable[[Context], dict], ctx: Context, *, min_s: float = 5.0) -> dict:
    """Run one section: its result, or its error, never an exception (one failure must not end the run)."""
    t0 = time.monotonic()
    if ctx.remaining() < min_s:
        rec = {"status": "skipped", "reason": f"time budget spent ({ctx.remaining():.0f} s left)", "seconds": 0.0}
        ctx.log(f"[{name}] skipped: {rec['reason']}")
        return rec
    ctx.log(f"[{name}] start ({ctx.remaining():.0f} s of the budget left)")
    try:
        result = fn(ctx)
        rec = {"status": "ok", "result": result}
    except Exception as exc:  # noqa: BLE001 - reported in the summary, the next section still runs
        rec = {"status": "failed", "error": f"{type(exc).__name__}: {exc}",
               "traceback": traceback.format_exc()[-3000:]}
        ctx.log(f"[{name}] FAILED: {rec['error']}\n{rec['traceback']}")
    rec["seconds"] = round(time.monotonic() - t0, 2)
    ctx.log(f"[{name}] {rec['status']} in {rec['seconds']:.1f} s")
    return rec


def _json_safe(obj: Any, out_dir: Path | None = None) -> Any:
    """Non-finite floats -> None, tuples -> lists, absolute paths -> repo-relative or ``<outside repo>/...``
    (result_paths.portable_path: summary.json is committed, so no machine's temp or home paths), anything
    else unknown -> str (summary.json is strict JSON). Paths below ``out_dir`` become ``<out>/...``."""
    if isinstance(obj, (str, Path)):
        return portable_path(obj, {"<out>": out_dir} if out_dir is not None else None)
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _json_safe(v, out_dir) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v, out_dir) for v in obj]
    if obj is None or isinstance(obj, (str, int, bool)):
        return obj
    return str(obj)


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _median_rate(step: Callable[[], None], device, *, batch: int, warmup: int, iters: int, repeats: int,
                 deadline: float | None = None) -> dict:
    """Median jets/s over ``repeats`` timed loops of ``iters`` steps after ``warmup`` steps; the peak
    GPU memory above what was allocated before the first step (inputs and weights excluded)."""
    import torch

    cuda = device.type == "cuda"
    _sync(device)
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    t0 = time.perf_counter()
    for _ in range(warmup):
        step()
    _sync(device)
    warmup_s = time.perf_counter() - t0
    graphs = _compiled_graphs()
    rates, cut = [], False
    for _ in range(repeats):
        t = time.perf_counter()
        done = 0
        for _ in range(iters):
            step()
            done += 1
            # checked every step: a compiled step that recompiles each call took 19 s on the H200 (ParT,
            # 2026-11-28), and a deadline checked per repeat let the speed section overrun by 200 s
            if deadline is not None and time.monotonic() > deadline:
                cut = True
                break
        _sync(device)
        rates.append(done * batch / (time.perf_counter() - t))
        if cut or (deadline is not None and time.monotonic() > deadline):
            break
    peak = (torch.cuda.max_memory_allocated(device) - base) / 2**20 if cuda else None
    out = {"jets_per_s": statistics.median(rates), "repeats": rates, "warmup_s": warmup_s, "peak_mb": peak}
    if cut:
        out["cut_by_deadline"] = True
    new_graphs = _compiled_graphs() - graphs
    if new_graphs:  # torch.compile compiled again while being timed: the rate includes compiling
        out["graphs_compiled_while_timed"] = new_graphs
    return out


def _compiled_graphs() -> int:
    """How many graphs torch.compile (dynamo) has compiled in this process so far."""
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


# ============================================================================ models
PET_MODELS = {"pet-small": "small", "pet-paper": "paper"}


def build_model(name: str, device, *, pretraining: bool = False):
    """``(model, forward(batch), loss(batch))``: PET presets, or ParT exactly as bench_model builds it."""
    if name == "part":
        import bench_model

        model, fwd, loss = bench_model.build("part")
        return model.to(device), fwd, loss
    from jetlab.model import PET, PETConfig, classification_loss, pretraining_loss

    model = PET(getattr(PETConfig, PET_MODELS[name])(num_classes=10)).to(device)

    def fwd(b):
        return model(b["x"], b["mask"], b["jets"])

    def loss(b):
        return pretraining_loss(model, b)[0] if pretraining else classification_loss(model, b)

    return model, fwd, loss


def make_step(name: str, mode: str, precision: str, batch: dict, device, *, pretraining: bool = False):
    """One training step (forward, loss, backward, AdamW) or one inference forward of model ``name``."""
    import torch

    model, fwd, loss = build_model(name, device, pretraining=pretraining)
    if precision == "bf16+compile":
        fwd, loss = torch.compile(fwd, dynamic=False), torch.compile(loss, dynamic=False)
    amp = precision.startswith("bf16")
    tf32 = precision == "fp32+tf32"

    def autocast():
        return torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp)

    if mode == "infer":
        model.eval()

        def step():
            with torch.no_grad(), autocast():
                fwd(batch)
    else:
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

        def step():
            opt.zero_grad(set_to_none=True)
            with autocast():
                out = loss(batch)
            out.backward()
            opt.step()

    if tf32:
        from jetlab.train import tf32_inference

        plain = step

        def step():  # TF32 matmuls only while this step runs: jetlab's own switch (predict's), here for training too
            with tf32_inference(device):
                plain()

    return model, step


def _release(device) -> None:
    import gc

    import torch

    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


# ============================================================================ sections
def section_env(ctx: Context) -> dict:
    import importlib.util

    import torch

    import jetlab

    info: dict[str, Any] = {
        "device": str(ctx.device), "torch": torch.__version__, "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "python": platform.python_version(), "platform": platform.platform(), "cpu_cores": os.cpu_count(),
        "jetlab": jetlab.__version__, "smoke": bool(ctx.args.smoke), "budget_minutes": ctx.args.minutes,
        "workers": ctx.args.workers, "cache": os.environ.get("JETLAB_CACHE"),
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
    }
    if ctx.device.type == "cuda":
        p = torch.cuda.get_device_properties(ctx.device)
        info.update(device_name=p.name, capability=f"{p.major}.{p.minor}", gpu_memory_gib=round(p.total_memory / 2**30, 1),
                    multiprocessors=p.multi_processor_count, gpus_visible=torch.cuda.device_count())
    else:
        info["device_name"] = platform.processor() or "cpu"
    try:
        info["git_commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                            text=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        info["git_commit"] = None
    needed = {"weaver": "speed (ParT)", "papermill": "notebooks", "ipykernel": "notebooks", "h5py": "data",
              "pythia8mc": "data (only if a file must be generated)",
              "fastjet": "notebook 03 (N-subjettiness, soft drop) and data generation"}
    info["missing_packages"] = {m: why for m, why in needed.items() if importlib.util.find_spec(m) is None}
    ctx.log(f"device: {info['device_name']} ({info['device']}); torch {info['torch']}; CUDA {info['cuda']}; "
            f"cuDNN {info['cudnn']}; python {info['python']}; {info['cpu_cores']} CPU cores")
    if info["missing_packages"]:
        ctx.log(f"missing packages (sections that need them will fail): {info['missing_packages']}")
    return info


def data_plan(settings: Settings) -> list[dict]:
    """Every generated file the run reads: the pretraining sample and the notebooks' files."""
    from jetlab.runner import notebook_data_plan

    plan = [{"dataset": "jetclass-mini", "n": pretraining_jets(settings), "seed": PRETRAIN_SEED, "options": {}}]
    for entry in notebook_data_plan(ROOT / "notebooks", settings.notebook_profile):
        if any(Path(nb).stem in settings.notebooks for nb in entry["notebooks"]):
            key = (entry["dataset"], entry["n"], entry["seed"], entry["options"])
            if key not in [(p["dataset"], p["n"], p["seed"], p["options"]) for p in plan]:
                plan.append({k: entry[k] for k in ("dataset", "n", "seed", "options")})
    return plan


def make_data(settings: Settings, workers: int, log: Callable[[str], None]) -> list[dict]:
    """Find (carried) or generate every file of :func:`data_plan` with ``workers`` processes."""
    from jetlab.data.cache import dataset_file

    made = []
    for entry in data_plan(settings):
        t0 = time.monotonic()
        path = dataset_file(entry["dataset"], entry["n"], seed=entry["seed"], workers=workers, progress=False,
                            **entry["options"])
        dt = time.monotonic() - t0
        log(f"  {entry['dataset']} n={entry['n']}: {path} ({dt:.1f} s, {path.stat().st_size / 2**20:.1f} MiB)")
        made.append({**entry, "path": str(path), "seconds": round(dt, 2), "mib": round(path.stat().st_size / 2**20, 2)})
    return made


def section_data(ctx: Context) -> dict:
    files = make_data(ctx.settings, ctx.args.workers, ctx.log)
    ctx.results["pretraining_file"] = files[0]["path"]
    return {"files": files, "workers": ctx.args.workers}


def section_speed(ctx: Context) -> dict:
    """jets/s per (model, precision, mode), peak memory, PET/ParT ratios; compiled runs last, by priority."""
    import bench_model
    import torch

    s, dev = ctx.settings, ctx.device
    end = time.monotonic() + s.speed_s
    batch = bench_model.make_inputs(s.batch, s.particles, str(dev))
    runs: list[dict] = []

    def measure(name, mode, precision, pretraining=False):
        label = name + ("-pretrain" if pretraining else "")
        rec = {"model": label, "mode": mode, "precision": precision}
        try:
            model, step = make_step(name, mode, precision, batch, dev, pretraining=pretraining)
            rec.update(_median_rate(step, dev, batch=s.batch, warmup=s.warmup, iters=s.iters, repeats=s.repeats,
                                    deadline=end))
            rec["params"] = sum(p.numel() for p in model.parameters())
            ctx.log(f"  {label:<18s} {mode:<5s} {precision:<13s} {rec['jets_per_s']:10.1f} jets/s"
                    + (f"  peak {rec['peak_mb']:.0f} MB" if rec["peak_mb"] is not None else "")
                    + (f"  (warm-up incl. compile {rec['warmup_s']:.1f} s)" if "compile" in precision else "")
                    + (f"  {rec['graphs_compiled_while_timed']} graphs compiled while timed"
                       if rec.get("graphs_compiled_while_timed") else "")
                    + ("  (cut by the deadline)" if rec.get("cut_by_deadline") else ""))
        except Exception as exc:  # noqa: BLE001 - one failed measurement is a row, not the end
            rec["error"] = f"{type(exc).__name__}: {str(exc)[:500]}"
            ctx.log(f"  {label} {mode} {precision} FAILED: {rec['error']}")
        finally:
            model = step = None  # noqa: F841
            _release(dev)
        runs.append(rec)
        return rec

    for precision in ("fp32", "bf16"):
        for name in ("pet-paper", "part", "pet-small"):
            for mode in ("train", "infer"):
                if time.monotonic() < end:
                    measure(name, mode, precision)
    if dev.type == "cuda":  # bf16 autocast was slower than fp32 for PET: is TF32 the better fast path?
        for name in ("pet-paper", "pet-small"):
            for mode in ("train", "infer"):
                if time.monotonic() < end:
                    measure(name, mode, "fp32+tf32")
    pretrain = measure("pet-small", "train", "bf16", pretraining=True) if time.monotonic() < end else {}
    if pretrain.get("jets_per_s"):
        ctx.results["pretrain_jets_per_s"] = pretrain["jets_per_s"]
    compile_note = None
    if not s.compile:
        compile_note = ("skipped: torch.compile on a CPU builds C++ kernels for every graph (minutes for one PET on a "
                        "small CPU), more than a smoke run may take")
    else:
        # most wanted first: the 1.2x training target, then the 20k jets/s inference target; a compile
        # starts only if the time left covers the longest warm-up (compile) seen so far
        longest = 30.0
        for name, mode in (("pet-paper", "train"), ("part", "train"), ("pet-small", "infer"), ("pet-paper", "infer"),
                           ("part", "infer"), ("pet-small", "train")):
            if end - time.monotonic() < longest + 5:
                compile_note = (f"stopped: {end - time.monotonic():.0f} s of the speed section's {s.speed_s:.0f} s "
                                f"left before {name} {mode}, a compile took up to {longest:.0f} s")
                break
            torch._dynamo.reset()
            rec = measure(name, mode, "bf16+compile")
            longest = max(longest, rec.get("warmup_s", 0.0) + s.repeats * s.iters * 0.05)
    if compile_note:
        ctx.log(f"  torch.compile: {compile_note}")
    return {"batch": s.batch, "particles": s.particles, "warmup": s.warmup, "iters": s.iters, "repeats": s.repeats,
            "runs": runs, "ratios": speed_ratios(runs), "targets": speed_targets(runs, dev.type),
            "compile_note": compile_note}


def _steady_rates(runs: list[dict]) -> dict:
    """jets/s per (model, mode, precision), leaving out runs that compiled while timed (not a steady state)."""
    return {(r["model"], r["mode"], r["precision"]): r["jets_per_s"] for r in runs
            if r.get("jets_per_s") and not r.get("graphs_compiled_while_timed")}


def speed_ratios(runs: list[dict]) -> list[dict]:
    """PET jets/s over ParT jets/s for every (precision, mode) where both were measured."""
    rate = _steady_rates(runs)
    out = []
    for (model, mode, precision), v in sorted(rate.items()):
        peer = rate.get(("part", mode, precision))
        if model.startswith("pet-") and not model.endswith("-pretrain") and peer:
            out.append({"model": model, "mode": mode, "precision": precision, "ratio_vs_part": v / peer})
    return out


def speed_targets(runs: list[dict], device_type: str) -> dict:
    """The issue's two H100 targets, judged on the measured numbers (meaningful on an H100 only)."""
    rate = _steady_rates(runs)
    paper = [(p, rate[("pet-paper", "train", p)] / rate[("part", "train", p)]) for p in ("bf16", "bf16+compile")
             if ("pet-paper", "train", p) in rate and ("part", "train", p) in rate]
    small = [(p, rate[("pet-small", "infer", p)]) for p in ("fp32", "fp32+tf32", "bf16", "bf16+compile")
             if ("pet-small", "infer", p) in rate]
    best_paper = max(paper, key=lambda t: t[1]) if paper else None
    best_small = max(small, key=lambda t: t[1]) if small else None
    return {
        "device_type": device_type,
        "paper_over_part_train_bf16": {"target": TARGET_PAPER_OVER_PART_TRAIN_BF16, "values": dict(paper),
                                       "best": best_paper, "met": bool(best_paper and best_paper[1] >= TARGET_PAPER_OVER_PART_TRAIN_BF16)},
        "small_infer_jets_per_s": {"target": TARGET_SMALL_INFER_JETS_PER_S, "values": dict(small),
                                   "best": best_small, "met": bool(best_small and best_small[1] >= TARGET_SMALL_INFER_JETS_PER_S)},
    }


def sdpa_ops_used(fn: Callable[[], None]) -> list[str]:
    """Names of the aten scaled-dot-product-attention kernels ``fn()`` runs (forward and backward)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Record(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.names: set[str] = set()

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.names.add(func.name())
            return func(*args, **(kwargs or {}))

    rec = Record()
    with rec:
        fn()
    return sorted(n for n in rec.names if "scaled_dot_product" in n or "_efficient_attention" in n
                  or "_flash_attention" in n or "cudnn_attention" in n)


def sdpa_backend_name(ops: list[str]) -> str:
    """The backend the ops belong to; "math" when no fused kernel ran (the math path decomposes into matmuls)."""
    joined = " ".join(ops)
    for key, name in (("flash_attention_for_cpu", "flash (cpu)"), ("flash_attention", "flash"),
                      ("efficient_attention", "efficient"), ("cudnn_attention", "cudnn"),
                      ("fused_attention_overrideable", "overrideable")):  # codespell:ignore  (PyTorch op name)
        if key in joined:
            return name
    return "math"


@contextlib.contextmanager
def _forced_kernel(kernel_ctx):
    """Force one SDPA kernel: jetlab's own CUDA preference (entered inside ``Attention.forward``) is
    switched off meanwhile, or it would override the forced choice. "default" is jetlab's default."""
    from jetlab.model import layers

    saved = layers.CUDA_ATTENTION_BACKENDS
    layers.CUDA_ATTENTION_BACKENDS = None
    try:
        with kernel_ctx:
            yield
    finally:
        layers.CUDA_ATTENTION_BACKENDS = saved


def section_attention(ctx: Context) -> dict:
    """Default SDPA kernel of PET's masked attention at bf16 and jets/s with each kernel forced."""
    import bench_model
    from torch.nn.attention import SDPBackend, sdpa_kernel

    s, dev = ctx.settings, ctx.device
    end = time.monotonic() + s.attention_s
    batch = bench_model.make_inputs(s.batch, s.particles, str(dev))
    out: dict[str, Any] = {"mask": "boolean key-padding mask (B, 1, 1, P) passed as attn_mask (jetlab.model.layers.Attention)",
                           "models": {}}
    for name in s.attention_models:
        res: dict[str, Any] = {"default_backend": {}, "runs": {}}
        for mode in ("train", "infer"):
            model, step = make_step(name, mode, "bf16", batch, dev)
            res["default_backend"][mode] = sdpa_backend_name(sdpa_ops_used(step))
            model = step = None  # noqa: F841
            _release(dev)
        for choice in ("default",) + SDPA_BACKENDS:
            if time.monotonic() > end:
                res["runs"][choice] = {"error": "not run: attention section's time budget spent"}
                continue
            ctx_mgr = (contextlib.nullcontext if choice == "default"
                       else (lambda c=choice: _forced_kernel(sdpa_kernel([getattr(SDPBackend, c)]))))
            rec: dict[str, Any] = {}
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    model, step = make_step(name, "train", "bf16", batch, dev)

                    def forced(step=step, ctx_mgr=ctx_mgr):
                        with ctx_mgr():
                            step()

                    rec["used"] = sdpa_backend_name(sdpa_ops_used(forced))
                    rec.update(_median_rate(forced, dev, batch=s.batch, warmup=1, iters=s.attention_iters,
                                            repeats=s.repeats, deadline=end))
                except Exception as exc:  # noqa: BLE001 - a refused kernel is a result
                    rec["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
                finally:
                    model = step = None  # noqa: F841
                    _release(dev)
            reasons = list(dict.fromkeys(str(w.message).strip().splitlines()[0][:300] for w in caught
                                         if "attention" in str(w.message).lower() or "sdp" in str(w.message).lower()))
            if reasons:
                rec["torch_warnings"] = reasons[:4]
            res["runs"][choice] = rec
            ctx.log(f"  {name} train bf16 sdpa={choice:<20s} "
                    + (f"{rec['jets_per_s']:10.1f} jets/s (ran {rec['used']})" if "jets_per_s" in rec else rec["error"]))
        res.update(attention_verdict(res))
        try:
            res["agreement"] = attention_agreement(name, batch, dev)
            ctx.log(f"  {name} output vs math fp32: " + ", ".join(
                f"{k} {v['max_rel_diff']:.1e}" if "max_rel_diff" in v else f"{k} {v['error'][:60]}"
                for k, v in res["agreement"].items()))
        except Exception as exc:  # noqa: BLE001 - reported, the section's timings stand
            res["agreement"] = {"error": f"{type(exc).__name__}: {exc}"}
        _release(dev)
        out["models"][name] = res
    out["note"] = attention_note(out["models"], dev.type)
    return out


def attention_agreement(name: str, batch: dict, dev) -> dict:
    """PET's inference logits with each kernel (forced, and jetlab's default) against the math kernel in
    fp32. A speed run cannot tell whether two kernels compute the same attention; a kernel that differs
    from math by more than the precision's rounding must not be jetlab's default."""
    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel

    torch.manual_seed(0)
    model, fwd, _ = build_model(name, dev)
    model.eval()

    def logits(choice: str, amp: bool):
        mgr = (contextlib.nullcontext() if choice == "default"
               else _forced_kernel(sdpa_kernel([getattr(SDPBackend, choice)])))
        with torch.no_grad(), torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp), mgr:
            return fwd(batch).float()

    ref = logits("MATH", False)
    scale = ref.abs().max().clamp_min(1e-12)
    out: dict[str, dict] = {}
    for choice in ("default",) + SDPA_BACKENDS:
        for amp in (False, True):
            key = f"{choice} {'bf16' if amp else 'fp32'}"
            if choice == "MATH" and not amp:
                continue
            try:
                d = (logits(choice, amp) - ref).abs().max() / scale
                out[key] = {"max_rel_diff": float(d)}
            except Exception as exc:  # noqa: BLE001 - a refused kernel is a result
                out[key] = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"}
    return out


def attention_verdict(res: dict) -> dict:
    """Best forced backend vs the default. The default is best when the fastest forced run used the
    default's own kernel (their difference is noise) or is within TIE of it."""
    runs = res["runs"]
    default = runs.get("default", {}).get("jets_per_s")
    forced = {b: r["jets_per_s"] for b, r in runs.items() if b != "default" and r.get("jets_per_s")}
    if not default or not forced:
        return {"best_backend": None, "best_over_default": None, "default_is_best": None}
    best = max(forced, key=forced.get)
    ratio = forced[best] / default
    same_kernel = runs[best].get("used") == runs["default"].get("used")
    return {"best_backend": best, "best_over_default": ratio, "default_is_best": same_kernel or ratio <= 1.0 + TIE}


def attention_note(models: dict, device_type: str) -> str:
    lines = []
    flash = [m for m, r in models.items() if "error" in r["runs"].get("FLASH_ATTENTION", {})]
    if flash:
        lines.append("FlashAttention refused PET's attention (" + ", ".join(flash) + "): PyTorch's flash kernel takes no "
                     "attn_mask, and PET masks padded particles with a boolean key mask; flash would need variable-length "
                     "(nested/jagged) inputs instead of padding.")
    slower = [f"{m}: {r['best_backend']} is {r['best_over_default']:.2f}x the default ({r['default_backend']['train']})"
              for m, r in models.items() if r.get("default_is_best") is False]
    if slower:
        lines.append("The default is not the fastest kernel: " + "; ".join(slower) + ". Make it the default in "
                     "jetlab.model.layers.CUDA_ATTENTION_BACKENDS (the kernels Attention.forward allows on CUDA) after checking "
                     "outputs match.")
    elif all(r.get("default_is_best") for r in models.values()):
        lines.append(f"The default kernel is the fastest (within {TIE:.0%}) for every PET measured.")
    if device_type != "cuda":
        lines.append("Measured on a CPU (smoke run): the CUDA kernels (efficient, cudnn) are not available here.")
    return " ".join(lines)


def section_pretraining(ctx: Context) -> dict:
    """``small`` PET, GPU recipe, fixed time; accuracy and W1 as notebook 01 reports them."""
    from jetlab.data.cache import dataset_file
    from jetlab.tasks.pretraining import run_pretraining

    s = ctx.settings
    n = pretraining_jets(s)
    path = ctx.results.get("pretraining_file") or str(dataset_file("jetclass-mini", n, seed=PRETRAIN_SEED,
                                                                   workers=ctx.args.workers, progress=False))
    train_s = min(s.pretrain_train_s, max(10.0, ctx.remaining() - 60 - ctx.notebook_reserve()))
    n_train = int(0.8 * n)
    rate = ctx.results.get("pretrain_jets_per_s")
    if rate is None and s.pretrain_epochs is None:  # speed not run: measure the step here (a few seconds)
        import bench_model

        batch = bench_model.make_inputs(s.batch, s.particles, str(ctx.device))
        model, step = make_step("pet-small", "train", "bf16", batch, ctx.device, pretraining=True)
        rate = _median_rate(step, ctx.device, batch=s.batch, warmup=2, iters=5, repeats=1)["jets_per_s"]
        model = step = batch = None  # noqa: F841
        _release(ctx.device)
    # generated jets constrained as notebook 01 constrains them (its gpu-smoke entry), or the W1 is not its W1
    from jetlab.runner import load_profile

    constraints = list(load_profile(s.notebook_profile)["01_pretraining"].get("gen_constraints", []))
    # size the cosine schedule to the time (0.6: validation, EMA and data loading are not in the rate)
    epochs = s.pretrain_epochs or (max(1, min(500, int(0.6 * rate * train_s / n_train))) if rate else 500)
    limit = TimeLimit(train_s)
    out_dir = ctx.work / "pretraining"
    t0 = time.monotonic()
    res = run_pretraining(path, n_jets=n, epochs=epochs, model="small", device=str(ctx.device), output_dir=out_dir,
                          seed=0, batch_size=s.pretrain_batch, lr=3e-4, diffusion_weight=1.0, ema_decay=0.999,
                          jet_epochs=s.pretrain_jet_epochs, gen_steps=s.pretrain_gen_steps,
                          n_generate=s.pretrain_n_generate, gen_constraints=constraints, callbacks=[limit], progress=False,
                          workers=ctx.args.workers)
    wall = time.monotonic() - t0
    ctx.results["pretraining_checkpoint"] = str(res.checkpoint)
    h, bs = res.history, s.pretrain_batch
    spe = math.ceil(len(res.train) / bs)
    full = len(h.steps) // spe
    jets = full * len(res.train) + (len(h.steps) - full * spe) * bs
    ev = res.evaluation
    w1 = {o: {"generated": ev["w1"][o]["all"], "real_floor": ev["w1_reference"][o]["all"]}
          for o in ("jet_mass", "multiplicity")}
    return {
        "file": path, "n_jets": n, "n_train": len(res.train), "n_test_evaluated": ev["n_test"],
        "recipe": {"model": "small", "batch_size": bs, "lr": 3e-4, "diffusion_weight": 1.0, "ema_decay": 0.999,
                   "epochs_scheduled": epochs, "train_seconds_limit": train_s, "step_jets_per_s": rate,
                   "gen_constraints": constraints},
        "stopped_by_time": limit.stopped, "epochs_run": len(h.epochs), "steps": len(h.steps),
        "train_jets_per_s": jets / res.timings["pet_train_s"], "timings": res.timings, "wall_s": wall,
        "accuracy": ev["accuracy"], "chance_accuracy": ev["chance_accuracy"],
        "generated_accuracy": ev.get("generated_accuracy"), "w1": w1, "checkpoint": str(res.checkpoint),
    }


def section_ddp(ctx: Context) -> dict:
    """2-process gloo (CPU) DDP vs 1 process on jetlab.train._ddp_selftest's PET phases."""
    import torch

    s = ctx.settings
    d = ctx.work / "ddp"
    d.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=_pythonpath())
    mod = ["-m", "jetlab.train._ddp_selftest", "--phases", s.ddp_phases, "--epochs", str(s.ddp_epochs)]
    timeout = max(10.0, min(300.0, ctx.remaining() - ctx.notebook_reserve()))
    one = subprocess.run([sys.executable, *mod, "--out", str(d / "one.json"), "--batch-size", "32", "--split", "2"],
                         env=env, capture_output=True, text=True, timeout=timeout)
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *mod,
                          "--out", str(d / "two.json"), "--batch-size", "16"],
                         env=env, capture_output=True, text=True, timeout=timeout)
    (d / "two.stderr.txt").write_text(two.stderr)
    for proc, what in ((one, "1 process"), (two, "2 processes")):
        if proc.returncode:
            raise RuntimeError(f"_ddp_selftest ({what}) exited {proc.returncode}: {proc.stderr[-1500:]}")
    a = json.loads((d / "one.json").read_text())["phases"]
    b = json.loads((d / "two.json").read_text())["phases"]
    phases = {}
    for p in a:
        phases[p] = {
            "train_loss_1p": a[p]["train_loss"], "train_loss_2p": b[p]["train_loss"],
            "max_rel_loss_diff": max(abs(x - y) / max(abs(x), 1e-12) for x, y in zip(a[p]["train_loss"], b[p]["train_loss"])),
            "max_abs_weight_sum_diff": max(abs(x - y) for x, y in zip(a[p]["weights"], b[p]["weights"])),
            "find_unused_parameters": b[p]["ddp_find_unused_parameters"],
            "n_unused_parameters": len(b[p]["unused_parameters"] or []),
        }
    nccl = ("not checked: one GPU visible" if ctx.device.type == "cuda" and torch.cuda.device_count() < 2
            else "not checked: the self-test runs gloo on CPU")
    return {"backend": "gloo (CPU)", "phases": phases, "ddp_warning_lines": sum(DDP_WARNING in ln for ln in two.stderr.splitlines()),
            "nccl": nccl}


def section_notebooks(ctx: Context) -> dict:
    """Each notebook through ``jetlab run`` in its own process (killable at its time limit), timed."""
    s = ctx.settings
    root = ctx.work / "notebooks"
    env = dict(os.environ, PYTHONPATH=_pythonpath(), MPLBACKEND="Agg", JETLAB_HEADLESS="1")
    from jetlab.runner import read_parameters

    rows = []
    ckpt01 = root / "01_pretraining" / "checkpoint"
    for stem in s.notebooks:
        nb = ROOT / "notebooks" / f"{stem}.ipynb"
        declared = read_parameters(nb)
        cmd = [sys.executable, "-m", "jetlab.cli.main", "run", str(nb), "--profile", s.notebook_profile,
               "--out", str(root / stem), "-q"]
        if "device" in declared:
            cmd += ["-p", "device", ctx.device.type]
        if "checkpoint" in declared and stem != "01_pretraining":
            ck = ckpt01 if ckpt01.exists() else Path(ctx.results.get("pretraining_checkpoint", ""))
            if ck.name and ck.exists():
                cmd += ["-p", "checkpoint", str(ck)]
        timeout = min(s.notebook_s, ctx.remaining() - 5)
        row: dict[str, Any] = {"notebook": stem, "profile": s.notebook_profile}
        if timeout < 10:
            row.update(status="skipped", reason="time budget spent")
            rows.append(row)
            ctx.log(f"  {stem}: skipped (time budget spent)")
            continue
        t0 = time.monotonic()
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)
        try:
            output, _ = proc.communicate(timeout=timeout)
            row["status"] = "ok" if proc.returncode == 0 else f"failed (exit {proc.returncode})"
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)  # the notebook's own process group: jetlab run and its kernel
            output, _ = proc.communicate()
            row["status"] = f"timed out after {timeout:.0f} s"
        row["wall_s"] = round(time.monotonic() - t0, 2)
        (root / f"{stem}.log").parent.mkdir(parents=True, exist_ok=True)
        (root / f"{stem}.log").write_text(output or "")
        if row["status"] != "ok":
            row["output_tail"] = (output or "")[-1500:]
        metrics = root / stem / "metrics.json"
        if metrics.exists():
            row["metrics"] = _scalars(json.loads(metrics.read_text()))
        rows.append(row)
        ctx.log(f"  {stem}: {row['status']} in {row['wall_s']:.1f} s")
    return {"profile": s.notebook_profile, "device": ctx.device.type, "notebooks": rows}


def _scalars(d: dict, limit: int = 8) -> dict:
    """The first few top-level numbers of a metrics file (the summary's teaser; the file is in the archive)."""
    out = {}
    for k, v in d.items():
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            out[k] = v
        if len(out) >= limit:
            break
    return out


def _pythonpath() -> str:
    parts = [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return os.pathsep.join(dict.fromkeys(parts))


# ============================================================================ summary
def _fmt(v: Any, decimals: int = 1) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.{decimals}f}"
    return str(v)


def render_markdown(summary: dict) -> str:
    """The summary as markdown tables (what the device tool's output tail and benchmarks/README.md show)."""
    sec = summary["sections"]
    env = sec.get("env", {}).get("result", {})
    lines = [f"# jetlab GPU check ({'smoke, ' if summary['smoke'] else ''}device {env.get('device', summary['device'])})", ""]
    lines.append(f"- device: **{env.get('device_name', '?')}**" + (f" (capability {env['capability']}, "
                 f"{env['gpu_memory_gib']} GiB, {env['multiprocessors']} SMs)" if "capability" in env else ""))
    lines.append(f"- torch {env.get('torch', '?')}, CUDA {env.get('cuda')}, cuDNN {env.get('cudnn')}, Python {env.get('python', '?')}, "
                 f"{env.get('cpu_cores', '?')} CPU cores, jetlab {env.get('jetlab', '?')} ({env.get('git_commit') or 'no git'})")
    lines.append(f"- total wall time {summary['wall_s']:.0f} s (budget {summary['budget_minutes']} min)")
    if env.get("missing_packages"):
        lines.append(f"- missing packages: {env['missing_packages']}")
    lines += ["", "| section | status | seconds |", "|---|---|---|"]
    for name, rec in sec.items():
        status = rec["status"] + (f": {rec['error']}" if rec.get("error") else "") + (f": {rec['reason']}" if rec.get("reason") else "")
        lines.append(f"| {name} | {status.replace('|', '/')[:300]} | {rec.get('seconds', 0):.1f} |")

    sp = sec.get("speed", {}).get("result")
    if sp:
        lines += ["", f"## Model speed (batch {sp['batch']}, {sp['particles']} particles; median of {sp['repeats']} x "
                  f"{sp['iters']} steps after {sp['warmup']} warm-up)", "",
                  "| model | mode | precision | jets/s | x ParT | peak MB | warm-up s |", "|---|---|---|---|---|---|---|"]
        ratio = {(r["model"], r["mode"], r["precision"]): r["ratio_vs_part"] for r in sp["ratios"]}
        for r in sp["runs"]:
            if "error" in r:
                lines.append(f"| {r['model']} | {r['mode']} | {r['precision']} | failed: {r['error'][:120]} | | | |")
                continue
            note = (f" ({r['graphs_compiled_while_timed']} graphs compiled while timed)"
                    if r.get("graphs_compiled_while_timed") else "") + (" (cut)" if r.get("cut_by_deadline") else "")
            lines.append(f"| {r['model']} | {r['mode']} | {r['precision']} | {_fmt(r['jets_per_s'])}{note} | "
                         f"{_fmt(ratio.get((r['model'], r['mode'], r['precision'])), 2)} | {_fmt(r['peak_mb'], 0)} | "
                         f"{_fmt(r['warmup_s'], 1)} |")
        t = sp["targets"]
        pt, st = t["paper_over_part_train_bf16"], t["small_infer_jets_per_s"]

        def verdict(target: dict) -> str:
            if t["device_type"] != "cuda":
                return "not judged: CPU smoke run"
            return "**met**" if target["met"] else "**not met**"

        lines += ["", f"Targets (H100): PET paper / ParT training at bf16 >= {pt['target']}x: "
                  + (f"best {pt['best'][1]:.2f}x ({pt['best'][0]}) -> {verdict(pt)}" if pt["best"] else "not measured")
                  + f"; PET small inference >= {st['target']:,.0f} jets/s: "
                  + (f"best {st['best'][1]:,.0f} ({st['best'][0]}) -> {verdict(st)}" if st["best"] else "not measured")]
        if sp.get("compile_note"):
            lines.append(f"torch.compile: {sp['compile_note']}")

    at = sec.get("attention", {}).get("result")
    if at:
        lines += ["", "## Attention kernel (PET, training step, bf16)", "", f"Mask: {at['mask']}.", "",
                  "| model | default (train / infer) | " + " | ".join(("default",) + SDPA_BACKENDS) + " | best / default |",
                  "|---|---|" + "---|" * (len(SDPA_BACKENDS) + 2)]
        for m, r in at["models"].items():
            cells = []
            for b in ("default",) + SDPA_BACKENDS:
                x = r["runs"].get(b, {})
                cells.append(_fmt(x["jets_per_s"]) if "jets_per_s" in x else "refused" if "error" in x else "-")
            lines.append(f"| {m} | {r['default_backend'].get('train')} / {r['default_backend'].get('infer')} | "
                         + " | ".join(cells) + f" | {_fmt(r.get('best_over_default'), 2)} ({r.get('best_backend')}) |")
        refusals = {f"{m} {b}": x.get("torch_warnings", [x["error"]])[0] for m, r in at["models"].items()
                    for b, x in r["runs"].items() if "error" in x}
        for k, why in list(refusals.items())[:4]:
            lines.append(f"- {k} refused: {why}")
        for m, r in at["models"].items():
            ag = r.get("agreement", {})
            if "error" in ag:
                lines.append(f"- {m} output agreement not measured: {ag['error'][:200]}")
            elif ag:
                lines.append(f"- {m} logits vs the math kernel in fp32 (max |diff| / max |logit|): " + ", ".join(
                    f"{k} {v['max_rel_diff']:.1e}" if "max_rel_diff" in v else f"{k} refused" for k, v in ag.items()))
        lines.append("")
        lines.append(at["note"])

    pr = sec.get("pretraining", {}).get("result")
    if pr:
        lines += ["", f"## Pretraining run (PET small, jetclass-mini {pr['n_jets']} jets, batch {pr['recipe']['batch_size']}, "
                  f"{pr['recipe']['train_seconds_limit']:.0f} s of training; generation constrained by "
                  f"{', '.join(pr['recipe'].get('gen_constraints') or ['nothing'])})", "",
                  "| epochs | steps | training jets/s | accuracy (chance) | generated accuracy | W1 jet mass [GeV] (floor) | W1 multiplicity (floor) |",
                  "|---|---|---|---|---|---|---|",
                  f"| {pr['epochs_run']} | {pr['steps']} | {_fmt(pr['train_jets_per_s'])} | {pr['accuracy']:.3f} ({pr['chance_accuracy']:.3f}) | "
                  f"{_fmt(pr['generated_accuracy'], 3)} | {_fmt(pr['w1']['jet_mass']['generated'], 2)} ({_fmt(pr['w1']['jet_mass']['real_floor'], 2)}) | "
                  f"{_fmt(pr['w1']['multiplicity']['generated'], 2)} ({_fmt(pr['w1']['multiplicity']['real_floor'], 2)}) |"]

    dd = sec.get("ddp", {}).get("result")
    if dd:
        lines += ["", f"## DDP ({dd['backend']}, 2 processes vs 1)", "",
                  "| phase | max rel. loss diff | max weight-sum diff | find_unused_parameters | unused params |", "|---|---|---|---|---|"]
        for p, r in dd["phases"].items():
            lines.append(f"| {p} | {r['max_rel_loss_diff']:.1e} | {r['max_abs_weight_sum_diff']:.1e} | "
                         f"{r['find_unused_parameters']} | {r['n_unused_parameters']} |")
        lines.append(f"DDP 'no unused parameters' warnings: {dd['ddp_warning_lines']}; NCCL: {dd['nccl']}")

    nb = sec.get("notebooks", {}).get("result")
    if nb:
        lines += ["", f"## Notebooks (jetlab run --profile {nb['profile']}, device {nb['device']})", "",
                  "| notebook | status | wall s | metrics (first numbers) |", "|---|---|---|---|"]
        for r in nb["notebooks"]:
            m = ", ".join(f"{k} {v:.4g}" for k, v in r.get("metrics", {}).items())
            lines.append(f"| {r['notebook']} | {r['status']} | {_fmt(r.get('wall_s'))} | {m[:200]} |")
    return "\n".join(lines) + "\n"


def _packed(rel: Path) -> bool:
    """Kept in the archive: not trainer states, not the duplicate model of ``train_state``, no notebook
    weights (the device tool returns files of at most 16 MiB; the timed pretraining's checkpoint stays)."""
    if rel.suffix == ".pt" or "train_state" in rel.parts:
        return False
    return not (rel.suffix == ".safetensors" and rel.parts[:2] != ("work", "pretraining"))


def pack(work: Path, archive: Path) -> int:
    """What :func:`_packed` keeps of ``work`` into one tar.gz, then remove ``work``; the archive's size."""
    from jetlab._io import atomic_path

    with atomic_path(archive) as tmp:
        with tarfile.open(tmp, "w:gz") as tar:
            for p in sorted(work.rglob("*")):
                rel = p.relative_to(work.parent)
                if p.is_file() and _packed(rel):
                    tar.add(p, arcname=str(rel))
    shutil.rmtree(work)
    return archive.stat().st_size


# ============================================================================ prepare (CPU, before a GPU session)
def _norm(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


#: jetlab requirements the GPU run never imports, left out of the carried wheels (the tool carries 64 MiB)
NOT_CARRIED = {"hdf5plugin": "the published files' HDF5 filters (46 MiB); generated cache files are gzip"}


def device_wheel_requirements(with_generator: bool = False) -> list[tuple[str, str]]:
    """``(distribution, installed version)`` of everything the run imports that the device image lacks.

    The closure of jetlab's requirements plus papermill / ipykernel / ipywidgets (and weaver-core
    without its requirements), over the distributions installed here, with markers evaluated for
    the device's Python 3.12 on Linux, minus :data:`DEVICE_IMAGE_PACKAGES`."""
    import importlib.metadata as md

    from packaging.requirements import Requirement

    marker_env = {"python_version": "3.12", "python_full_version": "3.12.3", "sys_platform": "linux",
                  "platform_system": "Linux", "platform_machine": "x86_64", "implementation_name": "cpython",
                  "platform_python_implementation": "CPython", "os_name": "posix", "extra": ""}
    roots = [Requirement(r).name for r in (md.requires("jetlab") or [])
             if not Requirement(r).marker or Requirement(r).marker.evaluate(marker_env)]
    roots += list(EXTRA_ROOTS) + list(LEAF_PACKAGES) + (list(GENERATOR_PACKAGES) if with_generator else [])
    image = {_norm(n) for n in DEVICE_IMAGE_PACKAGES} | {_norm(n) for n in NOT_CARRIED}
    leaves = {_norm(n) for n in LEAF_PACKAGES}
    seen: dict[str, tuple[str, str]] = {}
    todo = list(roots)
    while todo:
        name = todo.pop()
        key = _norm(name)
        if key in seen or key in image:
            continue
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            raise RuntimeError(f"--prepare: {name} is needed on the device but not installed here; "
                               f"pip install it (jetlab's [all] extras) and rerun") from None
        seen[key] = (dist.metadata["Name"], dist.version)
        if key in leaves:
            continue
        for r in dist.requires or []:
            req = Requirement(r)
            if req.marker is None or req.marker.evaluate(marker_env):
                todo.append(req.name)
    return sorted(seen.values(), key=lambda t: _norm(t[0]))


def download_wheels(reqs: list[tuple[str, str]], dest: Path, log: Callable[[str], None]) -> list[Path]:
    """cp312 manylinux wheels (or pure-Python ones) of ``reqs`` into ``dest`` with pip, no dependencies."""
    dest.mkdir(parents=True, exist_ok=True)
    platforms = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
                 "manylinux1_x86_64"]
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:", "--python-version",
           "3.12", "--implementation", "cp", "-d", str(dest)]
    for p in platforms:
        cmd += ["--platform", p]
    proc = subprocess.run(cmd + [f"{n}=={v}" for n, v in reqs], capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"pip download failed ({proc.returncode}): {proc.stderr[-2000:]}")
    wheels = sorted(dest.glob("*.whl"))
    log(f"  {len(wheels)} wheels, {sum(w.stat().st_size for w in wheels) / 2**20:.1f} MiB in {dest}")
    return wheels


def prepare(carry: Path, settings: Settings, workers: int, *, wheels: bool, data: bool, with_generator: bool) -> dict:
    """Make on this (CPU) machine what the GPU run can be given: the data files and the missing wheels."""
    log = Log(None)
    carry.mkdir(parents=True, exist_ok=True)
    out: dict[str, Any] = {"carry": str(carry)}
    if data:
        os.environ["JETLAB_CACHE"] = str((carry / "cache").resolve())
        log(f"data -> {os.environ['JETLAB_CACHE']} ({workers} workers)")
        out["files"] = make_data(settings, workers, log)
    if wheels:
        reqs = device_wheel_requirements(with_generator)
        log("wheels: " + ", ".join(f"{n}=={v}" for n, v in reqs))
        out["wheels"] = [str(w) for w in download_wheels(reqs, carry / "wheels", log)]
    size = sum(p.stat().st_size for p in carry.rglob("*") if p.is_file())
    log(f"{carry}: {size / 2**20:.1f} MiB in all (the device tool carries at most 64 MiB with the working tree)")
    if size > CARRY_LIMIT_MIB * 2**20:
        log(f"WARNING: more than {CARRY_LIMIT_MIB} MiB: with the working tree this may not travel; drop --with-generator "
            f"or lower the gpu-smoke sizes")
    out["mib"] = round(size / 2**20, 2)
    return out


# ============================================================================ main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("outdir", nargs="?", help="everything is written under this directory")
    ap.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    ap.add_argument("--smoke", action="store_true", help="seconds-scale sizes (CPU test of the script itself)")
    ap.add_argument("--minutes", type=float, default=None, help="time budget of the whole run (default 6.5; smoke 30)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="data-generation processes (default: all cores)")
    ap.add_argument("--cache", default=None, help="dataset cache directory (JETLAB_CACHE); carried files are found here")
    ap.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated subset of {','.join(SECTIONS)}")
    ap.add_argument("--notebooks", default=None,
                    help="comma-separated subset of the notebooks section's notebooks (stems, e.g. 03_omnifold_unfolding)")
    ap.add_argument("--keep-work", action="store_true", help="leave OUTDIR/work unpacked (default: packed into artifacts.tar.gz)")
    ap.add_argument("--prepare", metavar="CARRY", default=None,
                    help="on a CPU machine: generate the data into CARRY/cache and download the wheels the device lacks "
                         "into CARRY/wheels, then exit")
    ap.add_argument("--no-wheels", action="store_true", help="--prepare: data only")
    ap.add_argument("--no-data", action="store_true", help="--prepare: wheels only")
    ap.add_argument("--with-generator", action="store_true",
                    help="--prepare: also carry the Pythia wheel (28.2 MiB) so the device can generate data")
    args = ap.parse_args(argv)
    settings = SMOKE if args.smoke else FULL
    if args.notebooks:
        chosen = tuple(n.strip() for n in args.notebooks.split(",") if n.strip())
        unknown = [n for n in chosen if n not in NOTEBOOK_ORDER]
        if unknown:
            ap.error(f"--notebooks: unknown {unknown}; expected stems among {', '.join(NOTEBOOK_ORDER)}")
        settings = replace(settings, notebooks=tuple(n for n in NOTEBOOK_ORDER if n in chosen))
    if args.cache:
        os.environ["JETLAB_CACHE"] = str(Path(args.cache).resolve())
    if args.prepare:
        prepare(Path(args.prepare), settings, args.workers, wheels=not args.no_wheels, data=not args.no_data,
                with_generator=args.with_generator)
        return 0
    if not args.outdir:
        ap.error("OUTDIR is required (or --prepare CARRY)")
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    bad = [s for s in sections if s not in SECTIONS]
    if bad:
        ap.error(f"--sections: unknown {bad}; choose from {list(SECTIONS)}")
    if args.minutes is None:
        args.minutes = 30.0 if args.smoke else 6.5

    import torch

    if args.smoke:
        # one thread per process: on a small shared CPU, thread contention made a smoke run 4x slower
        # (3m51 with 2 threads, 62 s with 1 at a similar load; benchmarks/README.md)
        torch.set_num_threads(1)
        os.environ["OMP_NUM_THREADS"] = "1"  # the notebooks' kernels and the DDP processes
    if args.device == "cuda" and not torch.cuda.is_available():
        print("gpu_check: --device cuda but torch sees no CUDA device; use --device cpu --smoke to test the script",
              file=sys.stderr)
        return 2
    out = Path(args.outdir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    work = out / "work"
    work.mkdir(exist_ok=True)
    (out / "gpu_check.log").unlink(missing_ok=True)
    log = Log(out / "gpu_check.log")
    device = torch.device("cuda:0" if args.device == "cuda" else "cpu")
    os.environ.setdefault("MPLBACKEND", "Agg")
    t_start = time.monotonic()
    ctx = Context(args, settings, device, out, work, t_start + 60 * args.minutes, log)
    fns = {"env": section_env, "data": section_data, "speed": section_speed, "attention": section_attention,
           "pretraining": section_pretraining, "ddp": section_ddp, "notebooks": section_notebooks}
    summary: dict[str, Any] = {"device": args.device, "smoke": bool(args.smoke), "budget_minutes": args.minutes,
                               "settings": asdict(settings), "sections": {}}
    for name in SECTIONS:
        if name in sections:
            summary["sections"][name] = run_section(name, fns[name], ctx, min_s=0.0 if name == "env" else 5.0)
    summary["wall_s"] = time.monotonic() - t_start
    md = render_markdown(summary)
    from jetlab._io import atomic_write_text

    atomic_write_text(out / "summary.json", json.dumps(_json_safe(summary, out), indent=1, allow_nan=False))
    atomic_write_text(out / "summary.md", md)
    if not args.keep_work:
        size = pack(work, out / "artifacts.tar.gz")
        log(f"artifacts.tar.gz: {size / 2**20:.1f} MiB" + ("  WARNING: over the device tool's 16 MiB per file"
                                                          if size > 16 * 2**20 else ""))
    print("\n" + md, flush=True)
    return 0



if __name__ == "__main__":
    raise SystemExit(main())
