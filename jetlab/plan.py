"""What a run will cost before it starts (``jetlab run ... --plan``).

Per notebook: bytes to fetch, disk after conversion, conversion core-hours, training jet-epochs
and estimated GPU-hours, from the notebook's parameters (defaults, profile, ``-p``). Why: at the
paper's sizes a run takes GPU-days; a user must see that, and agree to it, before the first
download or epoch (:data:`CONFIRM_ABOVE_GPU_HOURS`).

Every rate is a named constant with the file (and run) it was measured in. The GPU rates were
measured on an **H200**; the H100 figures multiply the time by :data:`H100_TIME_PER_H200_TIME`, the
H200/H100 memory-bandwidth ratio (same Hopper compute; see that constant). The model is simple and
says so: time = work / measured rate, with the per-jet cost scaled linearly in the particle slots
(:data:`RATE_PARTICLES`), early stopping ignored (an upper bound) and CPU-side data loading
assumed to keep up (``benchmarks/README.md``: the loader is >100x faster than a training step).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

__all__ = [
    "CONFIRM_ABOVE_GPU_HOURS",
    "DATASETS",
    "H100_TIME_PER_H200_TIME",
    "DatasetFacts",
    "NotebookCost",
    "check_release",
    "estimate",
    "estimate_notebook",
    "format_plan",
    "needs_confirmation",
]

# --------------------------------------------------------------------------- measured rates
#: every GPU rate below: benchmarks/results/gpu_check_h200_2026-11-28_run2.json, section "speed"
#: (``benchmarks/gpu_check.py`` on one NVIDIA H200, torch 2.11 + CUDA 13.0; batch 256 x 128 particles,
#: median of 3 x 10 steps)
GPU_RATES_SOURCE = "benchmarks/results/gpu_check_h200_2026-11-28_run2.json (speed section, H200)"
#: particle slots per jet at which the rates were measured
RATE_PARTICLES = 128
#: training jets/s, float32 (jetlab trains in float32 on CUDA): PET paper (2.1M parameters)
H200_TRAIN_JETS_PER_S_PET_PAPER = 8655.0
#: training jets/s, float32: PET small (0.9M parameters; also used for ``tiny``, an upper bound on its time)
H200_TRAIN_JETS_PER_S_PET_SMALL = 11544.0
#: inference jets/s, float32 + TF32 (``jetlab.train.predict`` runs under TF32): PET paper
H200_INFER_JETS_PER_S_PET_PAPER = 35950.0
#: inference jets/s, float32 + TF32: PET small
H200_INFER_JETS_PER_S_PET_SMALL = 53027.0
#: a pretraining step (classifier + generator heads, diffusion loss) costs 1 / this of a classifier
#: step: PET small at bf16, pretraining 5,469 jets/s vs classification 8,841 jets/s (same run 2, the
#: only pair measured at one precision)
PRETRAIN_STEP_SPEED_RATIO = 5469.0 / 8841.0

#: H100 time = H200 time x this: 4.8 TB/s / 3.35 TB/s, the H200 (HBM3e) over the H100 SXM (HBM3)
#: memory bandwidth on NVIDIA's data sheets; both are the same GH100 compute die (989 dense
#: TF32/BF16 tensor TFLOPS), so a compute-bound step runs equally fast and a bandwidth-bound one
#: at most 1.43x slower. PET is neither matmul- nor clearly bandwidth-bound at these sizes
#: (benchmarks/README.md, "GPU check"), so the plan takes the upper bound: an estimate, not a
#: measurement on an H100 (none has run jetlab).
H100_TIME_PER_H200_TIME = 4.8 / 3.35

#: CPU conversion rates (rows per second on one core, rounded), ``benchmarks/results/readers.json``
#: (``benchmarks/bench_readers.py --json``, its "convert" column: one run on a shared 2-core machine at
#: load 7-8, so the rates are low and the core-hours an upper bound)
CONVERT_RATES_SOURCE = "benchmarks/results/readers.json (bench_readers.py on a shared 2-core machine, load 7-8)"
CONVERT_ROWS_PER_CORE_S = {
    "jetclass": 402.0,
    "atlas_toptag": 4418.0,
    "omnifold_zjets": 374.0,
    "lhco_rnd": 495.0,
    "aspen_open_jets": 584.0,
}
#: jetlab's Pythia generator for the offline stand-ins: 110,000 jetclass-mini jets of the ten classes in
#: 620 s on 2 workers (the shipped model's card, jetlab/weights/jetlab-foundation: recipe
#: ``generation_s``), 88.7 jets/s per core; used for every ``*-mini``
GENERATE_JETS_PER_CORE_S = 110_000 / 620.0 / 2

#: a run whose estimate exceeds this many H100 GPU-hours needs ``--yes``
CONFIRM_ABOVE_GPU_HOURS = 2.0


# --------------------------------------------------------------------------- datasets
@dataclass(frozen=True)
class DatasetFacts:
    """Rows per manifest subset and what one converted row stores (for the disk estimate).

    ``rows``: jets (events for LHCO) per subset, from the publisher (approximate where marked in
    ``rows_note``); ``slots`` x ``features`` float32 per particle collection, ``collections`` per row
    (two jets per LHCO event, gen + sim per Z+jets event)."""

    rows: Mapping[str, int]
    slots: int
    features: int
    collections: int = 1
    rows_note: str = ""

    def row_bytes(self) -> int:
        # float32 particles + 5 jet features + weight + label per collection, uncompressed
        return self.collections * (self.slots * self.features * 4 + 7 * 4)


DATASETS: dict[str, DatasetFacts] = {
    # JetClass (Zenodo 6619768): 100M / 5M / 20M; the converter keeps 150 particles (PET's JetClass
    # value), kinematics + 6 PID + 4 track columns
    "jetclass": DatasetFacts({"train": 100_000_000, "val": 5_000_000, "test": 20_000_000}, 150, 14),
    # ATLAS top tagging: record 80030 nominal (92,820,427 / 10,306,813, the manifest's description);
    # record 15013 about 42M / 2.5M jets (the 2022 README of ATLAS's example repository, as quoted in
    # data_manifests/atlas_toptag.yaml); 120 clusters kept (PET's ATLAS value), kinematics only
    "atlas_toptag": DatasetFacts(
        {"train": 92_820_427, "test": 10_306_813, "legacy_train": 42_000_000, "legacy_test": 2_500_000},
        120,
        4,
        rows_note="record 15013 row counts are approximate (42M / 2.5M)",
    ),
    # OmniFold Z+jets (Zenodo 3548091): about 1.6M events per generator, gen and sim jets of up to
    # 101 particles (kinematics + charge/PID flags)
    "omnifold_zjets": DatasetFacts(
        {"Herwig": 1_600_000, "Pythia21": 1_600_000, "Pythia25": 1_600_000, "Pythia26": 1_600_000},
        101,
        10,
        collections=2,
        rows_note="about 1.6M events per generator",
    ),
    # LHCO R&D (Zenodo 4536377): 1M QCD + 100k signal events, two R = 1 jets of up to 279 particles
    "lhco_rnd": DatasetFacts({"rnd": 1_100_000, "rnd_features": 0}, 279, 4, collections=2),
}
#: LHCO R&D composition (Zenodo 4536377): background and signal events in the file
LHCO_BACKGROUND_EVENTS = 1_000_000
LHCO_SIGNAL_EVENTS = 100_000

#: the particle slots a generated stand-in stores (jetlab's generator: no more than 128 per jet)
_GENERATED_SLOTS = 128


# --------------------------------------------------------------------------- results
@dataclass
class NotebookCost:
    """The estimate for one notebook (see the module docstring for the model)."""

    notebook: str
    dataset: str | None
    fetch_text: str = "-"
    fetch_bytes: int = 0
    fetch_unknown_files: int = 0
    disk_bytes: int = 0
    conversion_core_hours: float = 0.0
    train_jet_epochs: float = 0.0
    h200_gpu_hours: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def h100_gpu_hours(self) -> float:
        return self.h200_gpu_hours * H100_TIME_PER_H200_TIME


def _model_key(model: Any) -> str:
    return "paper" if str(model) == "paper" else "small"


def _train_seconds(jet_epochs: float, model: Any, particles: int, *, pretraining: bool = False) -> float:
    rate = H200_TRAIN_JETS_PER_S_PET_PAPER if _model_key(model) == "paper" else H200_TRAIN_JETS_PER_S_PET_SMALL
    rate *= RATE_PARTICLES / max(int(particles), 1)
    if pretraining:
        rate *= PRETRAIN_STEP_SPEED_RATIO
    return jet_epochs / rate


def _infer_seconds(jets: float, model: Any, particles: int) -> float:
    rate = H200_INFER_JETS_PER_S_PET_PAPER if _model_key(model) == "paper" else H200_INFER_JETS_PER_S_PET_SMALL
    return jets / (rate * RATE_PARTICLES / max(int(particles), 1))


def _positive(n: Any) -> int | None:
    return int(n) if isinstance(n, (int, float)) and not isinstance(n, bool) and n > 0 else None


# --------------------------------------------------------------------------- data
def _data_cost(cost: NotebookCost, dataset: str, subsets: Sequence[str] | None, n_generated: int | None) -> None:
    """Fill fetch, disk and conversion for ``dataset`` (all of the fetched subsets are converted)."""
    from jetlab.data.manifests import load_manifest
    from jetlab.data.sources import dataset_names

    generators, published = dataset_names()
    if dataset in generators:
        n = n_generated or 0
        cost.fetch_text = "none (generated)"
        cost.disk_bytes = n * (_GENERATED_SLOTS * 14 * 4 + 28)
        cost.conversion_core_hours = n / GENERATE_JETS_PER_CORE_S / 3600
        cost.notes.append(f"{dataset}: {n} jets generated with Pythia on CPU (counted as conversion)")
        return
    if dataset not in published or dataset not in DATASETS:
        cost.fetch_text = "a local file (not sized)"
        return
    manifest = load_manifest(dataset)
    chosen = list(subsets) if subsets else manifest.default_subsets
    summary = manifest.size_summary(manifest.files_for(chosen))
    cost.fetch_text = summary.text()
    cost.notes.append(f"fetch {dataset} subsets {', '.join(chosen)}")
    cost.fetch_bytes = summary.total
    cost.fetch_unknown_files = summary.n_unknown
    facts = DATASETS[dataset]
    rows = sum(facts.rows.get(s, 0) for s in chosen)
    cost.disk_bytes = rows * facts.row_bytes()
    cost.conversion_core_hours = rows / CONVERT_ROWS_PER_CORE_S[dataset] / 3600
    if facts.rows_note:
        cost.notes.append(facts.rows_note)


def _rows(dataset: str, subsets: Sequence[str] | None, wanted: Iterable[str]) -> int:
    facts = DATASETS.get(dataset)
    if facts is None:
        return 0
    chosen = set(subsets) if subsets else None
    return sum(facts.rows.get(s, 0) for s in wanted if chosen is None or s in chosen)


# --------------------------------------------------------------------------- per notebook
def _quickstart(p: Mapping[str, Any], cost: NotebookCost, ctx: Mapping[str, Any]) -> None:
    n = _positive(p.get("n_jets")) or 0
    _data_cost(cost, "jetclass-mini", None, n)
    cost.dataset = "jetclass-mini"
    cost.h200_gpu_hours = _infer_seconds(n, ctx.get("model", "small"), _GENERATED_SLOTS) / 3600
    cost.notes.append("inference only")


def _pretraining(p: Mapping[str, Any], cost: NotebookCost, ctx: Mapping[str, Any]) -> None:
    dataset, model, epochs = str(p.get("dataset")), p.get("model", "tiny"), int(p.get("epochs", 1))
    subsets = ctx.get("fetch", {}).get(dataset)
    n = _positive(p.get("n_jets"))
    if dataset in DATASETS:
        train = n or _rows(dataset, subsets, ["train"])
        particles, val = DATASETS[dataset].slots, 50_000  # MAX_VALIDATION_ROWS (jetlab.train.pretrain)
    else:
        train, particles, val = int(0.8 * (n or 0)), _GENERATED_SLOTS, int(0.1 * (n or 0))
    _data_cost(cost, dataset, subsets, n)
    cost.train_jet_epochs = float(train * epochs)
    n_gen = _positive(p.get("n_generate")) or (val if dataset in DATASETS else int(0.1 * (n or 0)))
    seconds = _train_seconds(cost.train_jet_epochs, model, particles, pretraining=True)
    seconds += _infer_seconds(val * epochs, model, particles)  # validation every epoch
    passes = int(p.get("gen_steps", 32)) * (2 if p.get("gen_guidance") else 1)  # guidance: a null-label pass too
    seconds += _infer_seconds(n_gen * passes, model, particles)  # one pass per DDIM step
    cost.h200_gpu_hours = seconds / 3600
    cost.notes.append(f"pretraining step = {1 / PRETRAIN_STEP_SPEED_RATIO:.2f}x a classifier step")


def _tagging(p: Mapping[str, Any], cost: NotebookCost, ctx: Mapping[str, Any]) -> None:
    dataset = str(p.get("dataset"))
    subsets = ctx.get("fetch", {}).get(dataset)
    n = _positive(p.get("n_jets"))
    fractions = [float(f) for f in p.get("fractions", [1.0])]
    seeds, epochs = len(p.get("seeds", [0])), int(p.get("epochs", 1))
    model = ctx.get("model", "small")  # the checkpoint's architecture: notebook 01's in this run
    if dataset in DATASETS:
        pool = n or _rows(dataset, subsets, ["train", "legacy_train"])
        test = float(_rows(dataset, subsets, ["test", "legacy_test"]))
        train_pool, val_pool = 0.75 * pool, 0.25 * pool  # run_tagging's split (0.6, 0.2): train / val
        particles = DATASETS[dataset].slots
    else:
        pool = n or 0
        train_pool, val_pool, test = 0.6 * pool, 0.2 * pool, 0.2 * pool
        particles = _GENERATED_SLOTS
    _data_cost(cost, dataset, subsets, n)
    models = 3  # fine-tuned PET, scratch PET, PFN (counted at the PET rate: an upper bound)
    per_model = sum(f * train_pool for f in fractions) * seeds * epochs
    cost.train_jet_epochs = per_model * models
    val_jets = sum(max(100.0, f * val_pool) for f in fractions) * seeds * epochs * models
    test_jets = test * len(fractions) * seeds * models
    seconds = _train_seconds(cost.train_jet_epochs, model, particles) + _infer_seconds(
        val_jets + test_jets, model, particles
    )
    cost.h200_gpu_hours = seconds / 3600
    cost.notes.append("3 models x fractions x seeds; the PFN counted at PET's rate")


def _omnifold(p: Mapping[str, Any], cost: NotebookCost, ctx: Mapping[str, Any]) -> None:
    dataset = str(p.get("dataset"))
    subsets = ctx.get("fetch", {}).get(dataset)
    n = _positive(p.get("n_jets"))
    if dataset in DATASETS:
        events = n or DATASETS[dataset].rows["Pythia21"]
    else:
        events = n or 0
    particles = _positive(p.get("max_particles")) or DATASETS.get(dataset, DATASETS["omnifold_zjets"]).slots
    # the PETs only: the PFN (~2e7 FLOP a jet-epoch at 101 particles) and the MLP are small beside them
    classifiers = [c for c in p.get("classifiers", ["pretrained", "scratch"]) if c not in ("mlp", "pfn")]
    iterations, epochs, seeds = int(p.get("n_iterations", 1)), int(p.get("epochs", 1)), len(p.get("seeds", [0]))
    model = ctx.get("model", p.get("model", "small"))
    _data_cost(cost, dataset, subsets, 2 * (n or 0) if dataset not in DATASETS else n)
    # each iteration: step 1 (sim vs data) and step 2 (gen vs reweighted gen), 2 x events rows each
    per_pet = iterations * 2 * (2 * events) * epochs
    extra_seeds = (seeds - 1) * (2 * events) * epochs  # one more step-1 training per PET and seed
    cost.train_jet_epochs = float(len(classifiers) * (per_pet + extra_seeds))
    predictions = len(classifiers) * iterations * 2 * (2 * events)
    seconds = _train_seconds(cost.train_jet_epochs, model, particles) + _infer_seconds(predictions, model, particles)
    cost.h200_gpu_hours = seconds / 3600
    cost.notes.append(
        f"{len(classifiers)} PET classifier(s) x {iterations} iterations x 2 steps; the MLP and the PFN not counted"
    )


def _anomaly(p: Mapping[str, Any], cost: NotebookCost, ctx: Mapping[str, Any]) -> None:
    dataset = str(p.get("dataset"))
    subsets = ctx.get("fetch", {}).get(dataset)
    n = _positive(p.get("n_events"))
    if dataset in DATASETS:
        events = n or DATASETS[dataset].rows["rnd"]
        background = events * LHCO_BACKGROUND_EVENTS / (LHCO_BACKGROUND_EVENTS + LHCO_SIGNAL_EVENTS)
    else:
        events = n or 0
        background = events * (1.0 - float(p.get("file_signal_fraction", 0.15)))
    _data_cost(cost, dataset, subsets, n)
    particles = _positive(p.get("max_particles")) or 279
    model = ctx.get("model", p.get("model", "small"))
    seeds, kfolds = len(p.get("seeds", [0])), int(p.get("kfolds", 2))
    epochs, gen_epochs = int(p.get("epochs", 1)), int(p.get("gen_epochs", 1))
    oversample, gen_steps = int(p.get("oversample", 1)), int(p.get("gen_steps", 32))
    data = 0.5 * background + int(p.get("n_signal", 0))  # inject_signal: half the background + the signal
    sr = SR_FRACTION_OF_BACKGROUND * data
    sideband = SB_FRACTION_OF_BACKGROUND * data
    # per seed and CATHODE variant (pretrained, scratch): the particle generator on 2 jets per SB event,
    # sampling oversample x SR events x 2 jets, then kfolds classifiers on (1 - 1/k) of SR data + synthetic
    generator = 2 * sideband * gen_epochs
    classifier = kfolds * (1 - 1 / kfolds) * sr * (1 + oversample) * epochs * 2
    idealised = kfolds * (1 - 1 / kfolds) * sr * 2 * epochs * 2  # SR data vs as many true background
    supervised = sr * 2 * epochs * 2
    scan_points = len(ctx.get("scan_levels", []))
    runs = seeds + scan_points  # each scan level repeats the search with the first seed
    cost.train_jet_epochs = float(runs * (2 * (generator + classifier) + idealised + supervised))
    sampled = runs * 2 * oversample * sr * 2 * gen_steps
    seconds = _train_seconds(runs * 2 * generator, model, particles, pretraining=True)
    seconds += _train_seconds(runs * (2 * classifier + idealised + supervised), model, particles)
    seconds += _infer_seconds(sampled, model, particles)
    cost.h200_gpu_hours = seconds / 3600
    cost.notes.append(
        f"{seeds} seed(s) + {scan_points} scan level(s); SR/SB fractions of the background "
        f"{SR_FRACTION_OF_BACKGROUND:.2f}/{SB_FRACTION_OF_BACKGROUND:.2f}; generator step counted as a pretraining step"
    )


#: share of the LHCO R&D background in the SR (3.3-3.7 TeV): the OmniLearn reference reads 90,000 +
#: 10,000 SR background events of the 1M (ViniciusMikuni/OmniLearn scripts/classify_lhco.py, ``nevts``)
SR_FRACTION_OF_BACKGROUND = 0.10
#: share in the sidebands (2.3-3.3 and 3.7-5 TeV): no published count was found; an assumption
#: (most of the steeply falling QCD spectrum above the 1.2 TeV jet cut), used only to size the
#: generator training. Notebook 04 prints the counted values.
SB_FRACTION_OF_BACKGROUND = 0.60

_ESTIMATORS = {
    "00_quickstart": _quickstart,
    "01_pretraining": _pretraining,
    "02_top_tagging": _tagging,
    "03_omnifold_unfolding": _omnifold,
    "04_lhco_anomaly_detection": _anomaly,
}


def estimate_notebook(
    stem: str, parameters: Mapping[str, Any], *, context: Mapping[str, Any] | None = None
) -> NotebookCost:
    """The cost of notebook ``stem`` run with ``parameters`` (its defaults merged with a profile and
    ``-p``). ``context``: ``model`` (the pretrained architecture other notebooks fine-tune),
    ``fetch`` ({dataset: manifest subsets}), ``scan_levels`` (notebook 04's extra searches)."""
    ctx = dict(context or {})
    dataset = parameters.get("dataset")
    cost = NotebookCost(stem, str(dataset) if dataset is not None else None)
    fn = _ESTIMATORS.get(stem)
    if fn is None:
        cost.notes.append("no cost model for this notebook")
        return cost
    fn(parameters, cost, ctx)
    return cost


def _scan_levels(p: Mapping[str, Any]) -> list[Any]:
    if str(p.get("signal_scan", "auto")) != "compute":
        return []
    return list(p.get("scan_n_signal") or p.get("scan_sb") or [])


def estimate(
    runs: Sequence[tuple[str, Mapping[str, Any]]], *, fetch: Mapping[str, Sequence[str]] | None = None
) -> list[NotebookCost]:
    """Costs of a series ``[(stem, parameters), ...]`` in run order. A dataset is fetched and converted
    once: the first notebook that reads it carries that cost. Notebooks after ``01_pretraining``
    fine-tune its ``model``."""
    model = next((dict(p).get("model") for s, p in runs if s == "01_pretraining"), None)
    seen: set[str] = set()
    out = []
    for stem, params in runs:
        ctx: dict[str, Any] = {"fetch": dict(fetch or {}), "scan_levels": _scan_levels(params)}
        if model is not None:
            ctx["model"] = model
        cost = estimate_notebook(stem, params, context=ctx)
        if cost.dataset in seen and cost.dataset in DATASETS:
            cost.fetch_text, cost.fetch_bytes, cost.fetch_unknown_files = "(fetched above)", 0, 0
            cost.disk_bytes, cost.conversion_core_hours = 0, 0.0
        if cost.dataset:
            seen.add(cost.dataset)
        out.append(cost)
    return out


def needs_confirmation(costs: Iterable[NotebookCost]) -> bool:
    """Whether the run's H100 estimate is above :data:`CONFIRM_ABOVE_GPU_HOURS`."""
    return sum(c.h100_gpu_hours for c in costs) > CONFIRM_ABOVE_GPU_HOURS


def _gb(n: float) -> str:
    return f"{n / 1e9:,.1f}"


def _hours(h: float) -> str:
    if h >= 48:
        return f"{h:,.0f} ({h / 24:,.1f} d)"
    return f"{h:,.2f}" if h < 10 else f"{h:,.1f}"


def format_plan(costs: Sequence[NotebookCost], *, profile: Any = None) -> str:
    """The table ``--plan`` prints (and every run prints first), with the sources of its rates."""
    head = (
        f"{'notebook':<28} {'dataset':<15} {'fetch':<36} {'disk GB':>9} {'conv. core-h':>12} "
        f"{'train jet-epochs':>17} {'H200 GPU-h':>14} {'H100 GPU-h':>16}"
    )
    lines = [f"jetlab plan{f' (profile {profile})' if profile else ''}:", head, "-" * len(head)]
    for c in costs:
        lines.append(
            f"{c.notebook:<28} {str(c.dataset or '-'):<15} {c.fetch_text:<36} {_gb(c.disk_bytes):>9} "
            f"{c.conversion_core_hours:>12,.1f} {c.train_jet_epochs:>17,.3g} {_hours(c.h200_gpu_hours):>14} "
            f"{_hours(c.h100_gpu_hours):>16}"
        )
    total = sum(c.h100_gpu_hours for c in costs)
    lines.append("-" * len(head))
    lines.append(
        f"{'total':<28} {'':<15} {_gb(sum(c.fetch_bytes for c in costs)) + ' GB (known sizes)':<36} "
        f"{_gb(sum(c.disk_bytes for c in costs)):>9} {sum(c.conversion_core_hours for c in costs):>12,.1f} "
        f"{sum(c.train_jet_epochs for c in costs):>17,.3g} {_hours(sum(c.h200_gpu_hours for c in costs)):>14} "
        f"{_hours(total):>16}"
    )
    for c in costs:
        if c.notes:
            lines.append(f"  {c.notebook}: {'; '.join(c.notes)}")
    lines += [
        f"GPU rates: {GPU_RATES_SOURCE}; H100 = H200 x {H100_TIME_PER_H200_TIME:.2f} (memory-bandwidth "
        "ratio 4.8 / 3.35 TB/s, an upper bound: not measured on an H100); per-jet cost linear in particle "
        f"slots from {RATE_PARTICLES}; early stopping ignored.",
        f"Conversion: {CONVERT_RATES_SOURCE}. Disk: uncompressed float32 size of the converted rows "
        "(gzip shrinks the zero padding). Fetch: the manifests' sizes (unknown sizes are not summed).",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- data checks
def check_release(fetch: Mapping[str, Sequence[str]], atlas_dir: str | os.PathLike | None = None) -> list[str]:
    """Problems that would make a run read other data than the profile names. Today: the profile
    asks for ATLAS record 15013 (subsets ``legacy_*``) while record 80030 shards sit in the same
    directory (``atlas_dir``, default ``$JETLAB_DATA/atlas_toptag``), which jetlab's reader takes
    first (``jetlab.data.readers.files``)."""
    from jetlab.data.download import data_dir

    problems = []
    wanted = set(fetch.get("atlas_toptag", ()))
    if wanted and all(s.startswith("legacy_") for s in wanted):
        d = Path(data_dir("atlas_toptag", atlas_dir))
        shards = sorted(d.glob("*_nominal_*.h5*")) if d.is_dir() else []
        if shards:
            problems.append(
                f"the profile reads ATLAS record 15013 (train.h5 / test.h5) but {d} also holds {len(shards)} "
                f"record 80030 shard(s) (e.g. {shards[0].name}), which jetlab reads first: move them, or point "
                "JETLAB_DATA at a directory whose atlas_toptag/ holds only record 15013"
            )
    return problems
