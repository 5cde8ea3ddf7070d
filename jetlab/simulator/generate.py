"""Offline event generator: small Pythia 8 + FastJet stand-ins for every public dataset.

``generate(name, n_jets, out)`` writes one jetlab schema file (atomic) for

* ``jetclass-mini`` - QCD, t->bqq', W->qq', Z->qq, H->bb jets; anti-kT R=0.8, 500 < pT < 1000 GeV,
  |eta| < 2, CMS-like particle flow (:data:`~jetlab.simulator.detector.JETCLASS_LIKE`), charge + PID;
  ``classes="all"`` (or their names) adds JetClass's other five: H->cc, H->gg, H->4q, H->l nu q q',
  t->b l nu (labels 5-9); a default file keeps the five classes and label names it always had;
* ``toptag-mini`` - top vs QCD with an ATLAS-like cluster detector with pileup, anti-kT R=1.0
  trimmed (kT R=0.2 subjets, f_cut=0.05), 350 < pT < 1000 GeV, kinematics only (the domain shift);
* ``zjets-mini`` - Z(->nu nu)+jet, R=0.4 leading jets at particle (``gen``) and detector
  (``reco``) level paired per event, for two Pythia setups: ``sim`` (Monash) and ``data``, which differs
  the way Herwig differs from Pythia, in shower and hadronisation together (:data:`ZJETS_DATA_SETTINGS`),
  and by default with the z_g stress test (:func:`zg_stress_weight`; ``zg_stress=False`` turns it off);
* ``lhco-mini`` - QCD dijets and W'(3.5 TeV) -> X(500) Y(100) -> (qq)(qq), R=1.0, leading jet
  pT > 1.2 TeV, collections ``jet1``/``jet2`` (pT-ordered) with ``extra["mjj"]``.

Speed: events come from Pythia in batches as Awkward arrays (``Pythia.nextBatch``), detector
and selection are vectorised numpy, clustering runs over the whole batch in one FastJet call, and
a process-level ``UserHooks`` veto drops events whose hard partons cannot give a selected jet
before the (expensive) parton shower / MPI runs. Long-lived hadrons (c*tau > 10 mm) are stable,
as in CMS's standard Pythia 8 settings.

Reproducibility: work is split into fixed chunks (``chunk_size`` rows of one sample each); every
chunk has its own Pythia instance and its seeds derive only from (seed, dataset, sample, chunk
index). The output is therefore identical for any number of ``workers``.

The event machinery (Pythia batches, clustering, trimming, truth matching) is
:mod:`jetlab.simulator.pythia_jets`, the dataset specs (samples, settings, the z_g stress test) are
:mod:`jetlab.simulator.mini_datasets` (re-exported here); this module holds the per-dataset chunk
workers, the planning and the file writing.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from jetlab.data.schema import KINEMATIC_FEATURES, PID_FEATURES, JetSet, write_jetsets

from .detector import pid_flags_from_pdg
from .mini_datasets import _ZJETS_BASE as _ZJETS_BASE  # re-exported: benchmarks/bench_zjets_mini.py builds on it
from .mini_datasets import (
    GENERATORS,
    ZG_STRESS_RECORD,
    ZG_STRESS_SLOPE,
    ZJETS_DATA_SETTINGS,
    GeneratorSpec,
    Sample,
    zg_stress_weight,
)
from .pythia_jets import (
    PYTHIA_COMMON,
    Batch,
    PythiaSource,
    accept_parent,
    accept_qcd,
    chunk_seeds,
    cluster,
    decay_groups,
    fill_particles,
    four_vectors,
    jet_array,
    match_parents,
    pseudorapidity,
    trim,
)
from .quiet_fastjet import consume_fastjet_banner

__all__ = [
    "generate",
    "GENERATORS",
    "GeneratorSpec",
    "PYTHIA_COMMON",
    "Sample",
    "ZG_STRESS_RECORD",
    "ZG_STRESS_SLOPE",
    "ZJETS_DATA_SETTINGS",
    "decay_groups",
    "file_label_names",
    "samples_record",
    "zg_stress_weight",
]

PID_COLUMNS: tuple[str, ...] = KINEMATIC_FEATURES + PID_FEATURES


# ============================================================================ chunk workers
@dataclass(frozen=True)
class Chunk:
    dataset: str
    sample: str
    index: int
    n: int
    seed: int
    options: tuple[tuple[str, Any], ...]


def _next_batch_size(need: int, rows: int, events: int) -> int:
    rate = rows / events if events else 0.5
    return int(np.clip(math.ceil(need / max(rate, 0.05) * 1.1) + 2, 5, 200))


def _reco_features(reco, with_pid: bool) -> np.ndarray:
    cols = [reco.pt, reco.eta, reco.phi, reco.energy]
    if with_pid:
        cols += [reco.charge] + [reco.flags[:, k] for k in range(5)]
    return np.stack(cols, axis=1).astype(np.float32)


def _gen_particles(b: Batch):
    """Visible stable generator-level particles with truth charge / PID."""
    vis = ~np.isin(np.abs(b.pdg), (12, 14, 16))
    pt = np.hypot(b.px[vis], b.py[vis])
    eta = pseudorapidity(b.px[vis], b.py[vis], b.pz[vis])
    phi = np.arctan2(b.py[vis], b.px[vis])
    e = b.e[vis]
    flags = pid_flags_from_pdg(b.pdg[vis], b.charge[vis])
    feats = np.column_stack([pt, eta, phi, e, b.charge[vis], flags]).astype(np.float32)
    return pt, eta, phi, e, b.event[vis], feats


def _single_jet_chunk(spec: GeneratorSpec, chunk: Chunk) -> dict[str, JetSet]:
    """jetclass-mini / toptag-mini: selected jets of one class."""
    opts = dict(chunk.options)
    sample = next(s for s in spec.all_samples if s.name == chunk.sample)
    atlas = spec.name == "toptag-mini"
    det, R = spec.detector, spec.jet_radius
    pt_lo, pt_hi, eta_max = (350.0, 1000.0, 2.0) if atlas else (500.0, 1000.0, 2.0)
    match_dr = 0.75 if atlas else 0.8
    pmax = int(opts["max_particles"])
    pyseed, rng = chunk_seeds(chunk.seed, spec.name, sample.name, chunk.index)
    if sample.parent:
        veto = accept_parent(sample.decay, 0.85 * pt_lo, eta_max + 0.4, match_dr + 0.25)
    else:
        veto = accept_qcd(eta_max + R * 0.6)
    src = PythiaSource(sample.settings, pyseed, veto)
    with_pid = det.keeps_pid
    parts, masks, jet_rows = [], [], []
    rows = events = 0
    while rows < chunk.n:
        b = src.batch(_next_batch_size(chunk.n - rows, rows, events))
        events += b.n_events
        reco = det.apply(b.px, b.py, b.pz, b.e, b.pdg, b.charge, b.event, b.n_events, rng)
        jets = cluster(reco.pt, reco.eta, reco.phi, reco.energy, reco.event, b.n_events, R, 0.6 * pt_lo)
        if atlas:
            jets = trim(jets, np.nonzero(jets.pt > 0.8 * pt_lo)[0], reco.pt, reco.eta, reco.phi, reco.energy)
        cand = np.nonzero((jets.pt > pt_lo) & (jets.pt < pt_hi) & (np.abs(jets.eta) < eta_max) & (jets.rank < 2))[0]
        if sample.parent:
            sel = match_parents(b, jets, cand, sample.decay, match_dr)
        else:
            sel = cand
        if not len(sel):
            continue
        feats = _reco_features(reco, with_pid)
        p, m, mult = fill_particles(jets, sel, feats, reco.pt, pmax)
        parts.append(p)
        masks.append(m)
        jet_rows.append(jet_array(jets, sel, mult))
        rows += len(sel)
    n = chunk.n
    js = JetSet(
        particles=np.concatenate(parts)[:n],
        mask=np.concatenate(masks)[:n],
        jets=np.concatenate(jet_rows)[:n],
        labels=np.full(n, sample.label),
        particle_features=PID_COLUMNS if with_pid else KINEMATIC_FEATURES,
    )
    return {"jets": js}


def _zjets_chunk(spec: GeneratorSpec, chunk: Chunk) -> dict[str, JetSet]:
    from jetlab.physics.observables import zg as zg_of_particles

    opts = dict(chunk.options)
    sample = next(s for s in spec.samples if s.name == chunk.sample)
    pmax = int(opts["max_particles"])
    pyseed, rng = chunk_seeds(chunk.seed, spec.name, sample.name, chunk.index)
    src = PythiaSource(sample.settings, pyseed, None)
    det = spec.detector
    # the z_g stress test draws from its own stream, so the detector's draws stay those of the chunk
    stress_rng = chunk_seeds(chunk.seed, spec.name, "data/zg_stress", chunk.index)[1]
    stress = sample.name == "data" and bool(opts.get("zg_stress"))
    out: dict[str, list] = {"gen": [], "reco": []}
    rows = events = 0
    pt_min, eta_max = 100.0, 2.5
    while rows < chunk.n:
        b = src.batch(_next_batch_size(chunk.n - rows, rows, events))
        events += b.n_events
        gpt, geta, gphi, ge, gev, gfeat = _gen_particles(b)
        gj = cluster(gpt, geta, gphi, ge, gev, b.n_events, spec.jet_radius, 20.0)
        reco = det.apply(b.px, b.py, b.pz, b.e, b.pdg, b.charge, b.event, b.n_events, rng)
        rj = cluster(reco.pt, reco.eta, reco.phi, reco.energy, reco.event, b.n_events, spec.jet_radius, 20.0)
        lead_g, lead_r = gj.index_of_rank(0, b.n_events), rj.index_of_rank(0, b.n_events)
        ok = (lead_g >= 0) & (lead_r >= 0)
        ok[ok] &= (gj.pt[lead_g[ok]] > pt_min) & (np.abs(gj.eta[lead_g[ok]]) < eta_max)
        ok[ok] &= (rj.pt[lead_r[ok]] > pt_min) & (np.abs(rj.eta[lead_r[ok]]) < eta_max)
        evs = np.nonzero(ok)[0]
        if not len(evs):
            continue
        sg, sr = lead_g[evs], lead_r[evs]
        p, m, mult = fill_particles(gj, sg, gfeat, gpt, pmax)
        if stress:
            keep = stress_rng.random(len(evs)) < zg_stress_weight(zg_of_particles(p, m))
            evs, sg, sr, p, m, mult = evs[keep], sg[keep], sr[keep], p[keep], m[keep], mult[keep]
        out["gen"].append((p, m, jet_array(gj, sg, mult)))
        p, m, mult = fill_particles(rj, sr, _reco_features(reco, True), reco.pt, pmax)
        out["reco"].append((p, m, jet_array(rj, sr, mult)))
        rows += len(evs)
    n = chunk.n
    res = {}
    for level, items in out.items():
        res[f"{sample.name}_{level}"] = JetSet(
            particles=np.concatenate([i[0] for i in items])[:n],
            mask=np.concatenate([i[1] for i in items])[:n],
            jets=np.concatenate([i[2] for i in items])[:n],
            labels=np.full(n, sample.label),
            particle_features=PID_COLUMNS,
        )
    return res


def _lhco_chunk(spec: GeneratorSpec, chunk: Chunk) -> dict[str, JetSet]:
    opts = dict(chunk.options)
    sample = next(s for s in spec.samples if s.name == chunk.sample)
    pmax = int(opts["max_particles"])
    pyseed, rng = chunk_seeds(chunk.seed, spec.name, sample.name, chunk.index)
    veto = None if sample.label else accept_qcd(3.0)
    src = PythiaSource(sample.settings, pyseed, veto)
    det = spec.detector
    items = []
    rows = events = 0
    while rows < chunk.n:
        b = src.batch(_next_batch_size(chunk.n - rows, rows, events))
        events += b.n_events
        reco = det.apply(b.px, b.py, b.pz, b.e, b.pdg, b.charge, b.event, b.n_events, rng)
        jets = cluster(reco.pt, reco.eta, reco.phi, reco.energy, reco.event, b.n_events, spec.jet_radius, 100.0)
        j1, j2 = jets.index_of_rank(0, b.n_events), jets.index_of_rank(1, b.n_events)
        ok = (j1 >= 0) & (j2 >= 0)
        ok[ok] &= jets.pt[j1[ok]] > 1200.0
        evs = np.nonzero(ok)[0]
        if not len(evs):
            continue
        s1, s2 = j1[evs], j2[evs]
        feats = _reco_features(reco, False)
        p1, m1, n1 = fill_particles(jets, s1, feats, reco.pt, pmax)
        p2, m2, n2 = fill_particles(jets, s2, feats, reco.pt, pmax)
        v = []
        for s in (s1, s2):
            px, py, pz = four_vectors(jets.pt[s], jets.eta[s], jets.phi[s], 0)[:3]
            e = np.sqrt(px**2 + py**2 + pz**2 + jets.mass[s] ** 2)
            v.append(np.stack([px, py, pz, e]))
        t = v[0] + v[1]
        mjj = np.sqrt(np.clip(t[3] ** 2 - t[0] ** 2 - t[1] ** 2 - t[2] ** 2, 0, None))
        items.append((p1, m1, jet_array(jets, s1, n1), p2, m2, jet_array(jets, s2, n2), mjj))
        rows += len(evs)
    n = chunk.n
    cat = [np.concatenate([it[k] for it in items])[:n] for k in range(7)]
    mjj = cat[6].astype(np.float32)
    return {
        name: JetSet(
            particles=cat[3 * k],
            mask=cat[3 * k + 1],
            jets=cat[3 * k + 2],
            labels=np.full(n, sample.label),
            particle_features=KINEMATIC_FEATURES,
            extra={"mjj": mjj},
        )
        for k, name in enumerate(("jet1", "jet2"))
    }


_RUNNERS = {
    "jetclass-mini": _single_jet_chunk,
    "toptag-mini": _single_jet_chunk,
    "zjets-mini": _zjets_chunk,
    "lhco-mini": _lhco_chunk,
}


def run_chunk(chunk: Chunk) -> dict[str, JetSet]:
    """Generate one chunk (top-level so 'spawn' workers can import it)."""
    spec = GENERATORS[chunk.dataset]
    return _RUNNERS[chunk.dataset](spec, chunk)


# ============================================================================ planning
def _split(n: int, size: int) -> list[int]:
    k = max(1, math.ceil(n / size))
    base, rem = divmod(n, k)
    return [base + (i < rem) for i in range(k) if base + (i < rem) > 0]


def _even(n: int, k: int) -> list[int]:
    base, rem = divmod(n, k)
    return [base + (i < rem) for i in range(k)]


def plan_chunks(name: str, n_jets: int, seed: int, options: dict[str, Any]) -> list[Chunk]:
    """The fixed chunk list of a request (independent of the worker count)."""
    spec = GENERATORS[name]
    size = int(options["chunk_size"])
    opts = tuple(sorted((k, v) for k, v in options.items() if k not in ("classes",)))
    if name == "zjets-mini":
        per = {"sim": n_jets, "data": n_jets}
    elif name == "lhco-mini":
        n_sig = int(round(float(options["signal_fraction"]) * n_jets))
        per = {"background": n_jets - n_sig, "signal": n_sig}
    else:
        classes = options.get("classes") or [s.name for s in spec.samples]
        per = dict(zip(classes, _even(n_jets, len(classes))))
    chunks = []
    for sample, n in per.items():
        for i, m in enumerate(_split(n, size) if n > 0 else []):
            chunks.append(Chunk(name, sample, i, m, int(seed), opts))
    return chunks


def _check(name: str, n_jets: int, options: dict[str, Any]) -> dict[str, Any]:
    if name not in GENERATORS:
        raise ValueError(f"unknown generator {name!r}; valid names: {sorted(GENERATORS)}")
    spec = GENERATORS[name]
    if isinstance(n_jets, bool) or not isinstance(n_jets, (int, np.integer)) or n_jets <= 0:
        raise ValueError(f"{name}: n_jets must be a positive integer, got {n_jets!r}")
    unknown = set(options) - set(spec.options)
    if unknown:
        raise TypeError(f"{name}: unknown option(s) {sorted(unknown)}; accepted: {sorted(spec.options)}")
    opts = {**spec.options, **{k: v for k, v in options.items() if v is not None}}
    if int(opts["chunk_size"]) <= 0:
        raise ValueError(f"{name}: chunk_size must be > 0, got {opts['chunk_size']}")
    if int(opts["max_particles"]) <= 0:
        raise ValueError(f"{name}: max_particles must be > 0, got {opts['max_particles']}")
    if "zg_stress" in opts and not isinstance(opts["zg_stress"], (bool, np.bool_)):
        raise ValueError(f"{name}: zg_stress must be True or False, got {opts['zg_stress']!r}")
    if "signal_fraction" in opts and not 0.0 <= float(opts["signal_fraction"]) <= 1.0:
        raise ValueError(f"{name}: signal_fraction must be in [0, 1], got {opts['signal_fraction']}")
    if opts.get("classes") is not None:
        valid = [s.name for s in spec.all_samples]
        classes = [opts["classes"]] if isinstance(opts["classes"], str) else list(opts["classes"])
        if classes == ["all"]:
            classes = valid
        bad = [c for c in classes if c not in valid]
        if bad or not classes:
            raise ValueError(f"{name}: unknown classes {bad}; valid: {valid} or 'all'")
        if len(set(classes)) != len(classes):
            raise ValueError(f"{name}: classes named twice in {classes}")
        opts["classes"] = tuple(classes)
    return opts


def _file_samples(spec: GeneratorSpec, options: dict[str, Any]) -> tuple[Sample, ...]:
    """The samples whose labels a file declares: the default ones, or all when ``classes`` names an
    extra one (its label follows the default labels)."""
    classes = options.get("classes") or ()
    extra = {s.name for s in spec.extra_samples}
    return spec.all_samples if extra & set(classes) else spec.samples


def file_label_names(name: str, options: dict[str, Any] | None = None) -> tuple[str, ...]:
    """Label names a ``name`` file made with ``options`` declares (index = label): jetclass-mini's
    five by default (so models built from a default file keep five classes), all ten with an extra class."""
    spec = GENERATORS[name]
    samples = _file_samples(spec, dict(options or {}))
    return spec.label_names + tuple(s.name for s in samples if s in spec.extra_samples)


def samples_record(name: str, options: dict[str, Any] | None = None) -> dict[str, list[str]]:
    """What a ``name`` file made with ``options`` records as its ``info["samples"]``: the Pythia settings
    of each sample it can hold, and for zjets-mini's 'data' with ``zg_stress`` its z_g selection.

    :func:`jetlab.data.cache.dataset_file` compares a cached file's record with this (read with the
    file's own options), so a change of settings or of the stress test regenerates the file.
    """
    spec = GENERATORS[name]
    opts = {**spec.options, **{k: v for k, v in dict(options or {}).items() if v is not None}}
    record = {s.name: list(s.settings) for s in _file_samples(spec, opts)}
    if name == "zjets-mini" and opts.get("zg_stress"):
        record["data"] = record["data"] + [ZG_STRESS_RECORD]
    return record


def _default_workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        return os.cpu_count() or 1


def _run_all(chunks: list[Chunk], workers: int, progress: bool, desc: str) -> list[dict[str, JetSet]]:
    from tqdm.auto import tqdm

    results: list[dict[str, JetSet] | None] = [None] * len(chunks)
    bar = tqdm(total=len(chunks), desc=desc, unit="chunk", disable=not progress)
    try:
        if workers <= 1 or len(chunks) == 1:
            for i, c in enumerate(chunks):
                results[i] = run_chunk(c)
                bar.update()
        else:
            import multiprocessing as mp

            ctx = mp.get_context("spawn")
            with ctx.Pool(min(workers, len(chunks)), initializer=consume_fastjet_banner) as pool:
                for i, res in pool.imap_unordered(_indexed, list(enumerate(chunks))):
                    results[i] = res
                    bar.update()
    finally:
        bar.close()
    return results  # type: ignore[return-value]


def _indexed(item: tuple[int, Chunk]) -> tuple[int, dict[str, JetSet]]:
    i, c = item
    return i, run_chunk(c)


def generate(
    name: str,
    n_jets: int,
    out: str | os.PathLike,
    *,
    workers: int | None = None,
    seed: int = 0,
    progress: bool = True,
    **options: Any,
) -> Path:
    """Generate ``n_jets`` rows of mini dataset ``name`` into the schema file ``out``.

    ``n_jets`` counts rows: jets (jetclass/toptag, split equally over the classes), events per
    generator setup (zjets: each of the four collections has ``n_jets`` rows), or dijet events
    (lhco, ``signal_fraction`` of them signal). ``workers`` processes (default: all cores) run
    fixed, independently seeded chunks, so the file content depends on ``seed`` only, not on
    ``workers``. Options: ``max_particles``, ``chunk_size``, ``classes`` (jetclass/toptag subset;
    for jetclass-mini also the five extra JetClass classes Hcc, Hgg, H4q, Hqql, Tbl, or ``"all"``),
    ``signal_fraction`` (lhco), ``zg_stress`` (zjets, default on: :func:`zg_stress_weight`).
    Rows are shuffled with ``seed``.
    """
    opts = _check(name, n_jets, options)
    spec = GENERATORS[name]
    chunks = plan_chunks(name, int(n_jets), int(seed), opts)
    w = _default_workers() if workers is None else int(workers)
    if w < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    results = _run_all(chunks, w, progress, desc=f"jetlab generate {name}")
    collections = {}
    for cname in spec.collections:
        parts = [r[cname] for r in results if cname in r]
        if parts:
            collections[cname] = JetSet.concatenate(parts)
    # shuffle rows (the same permutation for every collection keeps them row-aligned)
    n = len(next(iter(collections.values())))
    perm = np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, 7])).permutation(n)
    collections = {k: v.subset(perm) for k, v in collections.items()}
    info = {
        "generator": "jetlab.simulator.generate",
        "description": spec.description,
        "n_jets": int(n_jets),
        "seed": int(seed),
        "options": {k: (list(v) if isinstance(v, tuple) else v) for k, v in opts.items()},
        "n_chunks": len(chunks),
        "worker_independent": True,
        "pythia": "pythia8mc 8.317",
        "pythia_common": list(PYTHIA_COMMON),
        "samples": samples_record(name, opts),
        "detector": spec.detector.name,
        "jet_radius": spec.jet_radius,
    }
    return write_jetsets(out, collections, dataset=name, label_names=file_label_names(name, opts), info=info)
