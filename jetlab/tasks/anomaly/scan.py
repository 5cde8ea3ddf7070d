"""How little signal can the search find? Max SIC against the injected S/B in the signal region.

CATHODE is only interesting where the signal is a small fraction of the SR (the LHCO paper's
regime is S/B around 1% or below). :func:`scan_signal_fraction` repeats :func:`run_anomaly` for
several injected amounts; :class:`SignalFractionScan` holds the points (the JSON that
``benchmarks/bench_cathode_scan.py`` writes has the same layout), tells down to which S/B each
method keeps finding the signal, and plots the curve that notebook 04 shows.

"Finding the signal" is judged against what *no information* reaches on the same events: with few
signal events and a floor of background events after the cut, a random score's max SIC
fluctuates above 1 (e.g. 1.05 on average and 1.15 at the 95th percentile for 17 signal and 335
background events). A method finds the signal at a point when its max SIC minus its seed spread
is above the random score's 95th percentile there.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from jetlab._io import atomic_path
from jetlab.model.checkpoint import WEIGHTS_FILE, file_sha256
from jetlab.physics.metrics import max_sic

from ..checkpoint_resolver import resolve_checkpoint
from .events import inject_signal, load_dijets
from .pipeline import AnomalySettings, run_anomaly

__all__ = [
    "SignalFractionScan",
    "find_saved_scan",
    "injection_levels_text",
    "random_max_sic",
    "scan_signal_fraction",
    "signal_fraction_scan",
    "stored_scan_matches",
]

log = logging.getLogger(__name__)

#: where ``benchmarks/bench_cathode_scan.py --out`` keeps the scan of a source checkout
SAVED_SCAN = Path("benchmarks") / "results" / "cathode_scan.json"
#: keys every point of a scan must have
_POINT_KEYS = ("n_injected", "sr_background", "sr_s_over_b", "sr_s_over_sqrt_b", "methods")


def random_max_sic(
    n_background: int, n_signal: int, *, trials: int = 300, seed: int = 0, min_background_events: int = 10
) -> tuple[float, float]:
    """Mean and 95th percentile of the max SIC of a uniformly random score on ``n_background`` +
    ``n_signal`` events, with the search's background-event floor: what "no information" reaches."""
    rng = np.random.default_rng(seed)
    y = np.r_[np.zeros(n_background), np.ones(n_signal)]
    v = [max_sic(y, rng.random(len(y)), min_background_events=min_background_events) for _ in range(trials)]
    return float(np.mean(v)), float(np.percentile(v, 95))


@dataclass
class SignalFractionScan:
    """Scan points, highest S/B first, each a dict: ``sr_s_over_b``, ``sr_s_over_sqrt_b``,
    ``n_injected``, ``sr_background``, ``methods`` (``{method: {"max_sic": (mean, spread), ...}}``),
    ``random_max_sic`` (mean, 95th percentile) and, for CATHODE runs, ``closeness_auc``."""

    points: list[dict[str, Any]]
    settings: dict[str, Any] = field(default_factory=dict)
    seeds: list[int] = field(default_factory=list)
    #: where the points came from: a file path, or "computed"
    source: str = "computed"
    #: other top-level entries of the file (profile, load average, ...), written back by :meth:`save`
    meta: dict[str, Any] = field(default_factory=dict)
    #: True when this process computed the points; False for a scan read from a file (a stored result,
    #: which :meth:`report` and :meth:`plot` label with its file so it never passes as this run's own)
    computed_here: bool = True

    def __post_init__(self) -> None:
        for i, p in enumerate(self.points):
            missing = [k for k in _POINT_KEYS if k not in p]
            if missing:
                raise ValueError(
                    f"SignalFractionScan ({self.source}): point {i} lacks {missing}; expected keys {list(_POINT_KEYS)}"
                )
            if "random_max_sic" not in p:
                n_s = int(round(p["sr_s_over_b"] * p["sr_background"]))
                p["random_max_sic"] = list(random_max_sic(int(p["sr_background"]), n_s))
        self.points = sorted(self.points, key=lambda p: -p["sr_s_over_b"])

    # ------------------------------------------------------------------ reading
    @property
    def methods(self) -> list[str]:
        return list(dict.fromkeys(m for p in self.points for m in p["methods"]))

    def finds_signal(self, point: dict[str, Any], method: str) -> bool:
        """Max SIC minus seed spread above the random score's 95th percentile at ``point``."""
        m = point["methods"].get(method)
        return m is not None and m["max_sic"][0] - m["max_sic"][1] > point["random_max_sic"][1]

    def lowest_found(self, method: str) -> float | None:
        """Lowest S/B down to which every point (from the highest S/B) finds the signal; None if the
        highest point already does not."""
        found = None
        for p in self.points:
            if not self.finds_signal(p, method):
                break
            found = float(p["sr_s_over_b"])
        return found

    def summary(self) -> str:
        """One plain sentence per method: down to which S/B it finds the signal, and where it stops."""
        lines = []
        for m in self.methods:
            low = self.lowest_found(m)
            below = [p["sr_s_over_b"] for p in self.points if low is None or p["sr_s_over_b"] < low]
            if low is None:
                lines.append(
                    f"{m}: does not find the signal at any scanned S/B (highest {self.points[0]['sr_s_over_b']:.3f})"
                )
            elif below:
                lines.append(f"{m}: finds the signal down to S/B = {low:.3f}; stops at S/B = {max(below):.3f}")
            else:
                lines.append(f"{m}: finds the signal at every scanned S/B, down to {low:.3f}")
        return "\n".join(lines)

    def provenance(self) -> str:
        """One line saying where the points come from: this run, or a stored file (with how it was made)."""
        if self.computed_here:
            saved = f", saved to {self.source}" if self.source != "computed" else ""
            return f"computed in this run{saved}"
        made = ", ".join(f"{k} {self.meta[k]}" for k in ("profile",) if k in self.meta)
        return f"STORED RESULT from {self.source}{' (' + made + ')' if made else ''}: not computed in this run"

    def report(self) -> str:
        """Where the scan comes from, its table and the summary: what notebook 04 prints."""
        head = f"scan: {self.provenance()}; settings {self.settings}; seeds {self.seeds}"
        return f"{head}\n\n{self.table()}\n\n{self.summary()}"

    def table(self) -> str:
        """Markdown table: S/B (injected events), S/sqrt(B), the random score and each method's max SIC."""
        ms = self.methods
        lines = [
            "| S/B in SR (injected) | S/sqrt(B) in SR | random score (mean / 95%) | "
            + " | ".join(f"{m} max SIC" for m in ms)
            + " |",
            "|---|---|---|" + "---|" * len(ms),
        ]
        for p in self.points:
            cells = [
                f"{p['methods'][m]['max_sic'][0]:.2f} ± {p['methods'][m]['max_sic'][1]:.2f}"
                if m in p["methods"]
                else "-"
                for m in ms
            ]
            r = p["random_max_sic"]
            lines.append(
                f"| {p['sr_s_over_b']:.3f} ({p['n_injected']}) | {p['sr_s_over_sqrt_b']:.2f} | {r[0]:.2f} / {r[1]:.2f} | "
                + " | ".join(cells)
                + " |"
            )
        return "\n".join(lines)

    # ------------------------------------------------------------------ figure
    def plot(self, rlabel: str | None = None):
        """Max SIC (mean ± seed spread) against S/B, one line per method, above the band a random
        score reaches (its 95th percentile): where a line enters the band, the method is blind."""
        from matplotlib.figure import Figure
        from matplotlib.ticker import NullFormatter

        from jetlab.plot import COLORS, label_axes, style

        sb = np.array([p["sr_s_over_b"] for p in self.points])
        rnd = np.array([p["random_max_sic"][1] for p in self.points])
        with style():
            fig = Figure(figsize=(6.8, 6.0))
            ax = fig.add_subplot()
            ax.fill_between(sb, 0.0, rnd, color="grey", alpha=0.25, label="random score (95%)")
            for i, m in enumerate(self.methods):
                pts = [p for p in self.points if m in p["methods"]]
                x = np.array([p["sr_s_over_b"] for p in pts])
                y = np.array([p["methods"][m]["max_sic"][0] for p in pts])
                e = np.array([p["methods"][m]["max_sic"][1] for p in pts])
                low = self.lowest_found(m)
                if low is None:
                    lab = f"{m} (never beyond random)"
                elif low == sb.min():
                    lab = f"{m} (finds it at every S/B scanned)"
                else:
                    lab = f"{m} (finds it down to S/B {low:.2g})"
                ax.errorbar(x, y, yerr=e, marker="o", ms=4, capsize=3, color=COLORS[i % len(COLORS)], label=lab)
            ax.set_xscale("log")
            ax.set_xticks(sb, [f"{v:.2g}" for v in sb])
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.set_ylim(
                0, 1.6 * max([1.0] + [p["methods"][m]["max_sic"][0] for p in self.points for m in p["methods"]])
            )
            ax.set_xlabel(r"Injected $S/B$ in the signal region")
            ax.set_ylabel(r"max SIC $\varepsilon_S\,/\,\varepsilon_B^{1/2}$")
            ax.legend(fontsize="x-small", loc="upper left")
            if not self.computed_here:  # a stored result is never shown as this run's own
                ax.set_title(f"Stored result: {Path(self.source).name} (not this run)", fontsize="small")
            label_axes(ax, rlabel)
        return fig

    # ------------------------------------------------------------------ files
    def to_dict(self) -> dict[str, Any]:
        return {
            "settings": self.settings,
            "seeds": list(self.seeds),
            "points": self.points,
            "lowest_sb_found": {m: self.lowest_found(m) for m in self.methods},
        }

    def save(self, path: str | os.PathLike, **extra: Any) -> Path:
        """Write the scan (and ``extra`` top-level entries) as JSON, atomically."""
        doc = {**self.meta, **extra, **self.to_dict()}
        with atomic_path(path) as tmp:
            Path(tmp).write_text(
                json.dumps(doc, indent=1, default=lambda o: o.tolist() if isinstance(o, np.ndarray) else str(o))
            )
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "SignalFractionScan":
        p = Path(path)
        try:
            doc = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"SignalFractionScan.load: cannot read {p}: {exc}") from exc
        if not isinstance(doc, dict) or not doc.get("points"):
            raise ValueError(f"SignalFractionScan.load: {p} has no 'points' (expected bench_cathode_scan.py's JSON)")
        meta = {k: v for k, v in doc.items() if k not in ("points", "settings", "seeds", "lowest_sb_found")}
        settings = dict(doc.get("settings", {}))
        if "data_seed" in settings and "seed" not in settings:  # scans saved before the seed had one name
            settings["seed"] = settings.pop("data_seed")
        return cls(
            points=doc["points"],
            settings=settings,
            seeds=doc.get("seeds", []),
            source=str(p),
            meta=meta,
            computed_here=False,
        )


def find_saved_scan(start: str | os.PathLike | None = None) -> Path | None:
    """The scan ``benchmarks/bench_cathode_scan.py`` saved in this source checkout, if any:
    ``$JETLAB_CATHODE_SCAN``, else :data:`SAVED_SCAN` under ``start`` (default: the working
    directory) or one of its parents, else under the checkout jetlab is imported from."""
    env = os.environ.get("JETLAB_CATHODE_SCAN")
    if env:
        if not Path(env).is_file():
            raise FileNotFoundError(f"JETLAB_CATHODE_SCAN={env!r} is not a file")
        return Path(env)
    here = Path(start) if start is not None else Path.cwd()
    import jetlab

    roots = [here.resolve(), *here.resolve().parents, Path(jetlab.__file__).resolve().parents[1]]
    for root in roots:
        if (root / SAVED_SCAN).is_file():
            return root / SAVED_SCAN
    return None


def _signal_region_counts(data: Any, s: AnomalySettings) -> dict[str, Any]:
    """SR background of the pseudo-data, the signal's SR fraction and the signal available, counted
    on the events :func:`run_anomaly` reads (they do not depend on the injected amount)."""
    events = load_dijets(
        data, s.n_events, seed=s.seed, signal_fraction=s.file_signal_fraction, max_particles=s.max_particles
    )
    none = inject_signal(events, 0, seed=s.seed)
    windows = s.windows()
    sig = events.labels == 1
    return {
        "sr_background": int(windows.in_sr(none.data.mjj).sum()),
        "signal_sr_fraction": float(windows.in_sr(events.mjj[sig]).mean()) if sig.any() else 0.0,
        "n_signal_available": int(sig.sum()),
    }


#: settings a scan sets itself (per point, or recorded apart) and never takes from its caller
_SET_BY_THE_SCAN = ("n_signal",)


def scan_record(data: Any, s: AnomalySettings) -> dict[str, Any]:
    """What a scan records of its settings (and what a stored scan is matched on): the data, every
    setting but the injected amount and the seeds (kept apart), the pretrained weights' checksum."""
    record: dict[str, Any] = {"data": str(data)}
    record.update({k: v for k, v in s.to_dict().items() if k not in (*_SET_BY_THE_SCAN, "seeds", "output_dir")})
    record[PRETRAINED_WEIGHTS] = pretrained_weights_sha256(s.checkpoint)
    return record


def _levels(targets: Sequence[float], counts_given: Sequence[int], counts: dict[str, Any]) -> dict[float, int]:
    """Injected signal events per target S/B in the SR: ``round(S/B * N_B(SR) / f_SR)`` (or the given counts)."""
    per_event = counts["signal_sr_fraction"] / max(counts["sr_background"], 1)  # S/B per injected event
    if counts_given:
        targets = [n * per_event for n in counts_given]
    return {t: (counts_given[i] if counts_given else int(round(t / per_event))) for i, t in enumerate(targets)}


def _check_targets(sb_targets: Sequence[float], n_injected: Sequence[int] | None) -> tuple[list[float], list[int]]:
    if n_injected is not None and len(n_injected):
        counts_given = [int(n) for n in n_injected]
        if any(n <= 0 for n in counts_given):
            raise ValueError(f"scan_signal_fraction: n_injected must be positive counts, got {list(n_injected)}")
    else:
        counts_given = []
    targets = [float(x) for x in sb_targets]
    if not counts_given and (not targets or any(not x > 0 for x in targets)):
        raise ValueError(f"scan_signal_fraction: sb_targets must be positive S/B values, got {list(sb_targets)}")
    return targets, counts_given


def _scan_point(data: Any, s: AnomalySettings, target: float, n_signal: int, counts, progress: bool) -> dict[str, Any]:
    t0 = time.perf_counter()
    res = run_anomaly(data, s.replace(n_signal=n_signal), progress=progress)
    summary = res.split.summary(res.windows)
    return {
        "target_sb": target,
        "n_injected": n_signal,
        "sr_background": counts["sr_background"],
        "signal_sr_fraction": counts["signal_sr_fraction"],
        "sr_s_over_b": summary["sr_s_over_b"],
        "sr_s_over_sqrt_b": summary["sr_s_over_sqrt_b"],
        "seconds": time.perf_counter() - t0,
        "methods": res.metrics_table(),
        "closeness_auc": {k: c["auc"] for k, c in res.closeness().items()},
    }


def scan_signal_fraction(
    data: Any = "lhco-mini",
    settings: AnomalySettings | None = None,
    *,
    sb_targets: Sequence[float] = (0.5, 0.2, 0.1, 0.05),
    n_injected: Sequence[int] | None = None,
    progress: bool = True,
    on_point=None,
    resume: SignalFractionScan | None = None,
    **changes: Any,
) -> SignalFractionScan:
    """:func:`run_anomaly` at each target S/B in the SR (``sb_targets``): the number of injected
    signal events is ``round(S/B * N_B(SR) / f_SR)``, with N_B(SR) the SR background of the
    pseudo-data and f_SR the signal's SR fraction. ``settings`` (default :class:`AnomalySettings`)
    with ``changes`` go to every :func:`run_anomaly`; the scan sets ``n_signal``.
    ``on_point(scan)`` is called after every point (e.g. to save a partial scan).
    ``resume``: a partial scan (e.g. the file an interrupted run saved) made with the same settings
    and seeds; its points are kept and only the targets it lacks are run. ``n_injected``: inject these
    numbers of signal events instead (a paper's levels, e.g. OmniLearn's 500 ... 10000); ``sb_targets``
    is then ignored. Before the first run each level's expected S/B and S/sqrt(B) in the SR are printed
    (``progress``); every point records the counted ones."""
    targets, counts_given = _check_targets(sb_targets, n_injected)
    for bad in _SET_BY_THE_SCAN:
        if bad in changes:
            raise TypeError(f"scan_signal_fraction: {bad!r} is set by the scan, not a run_anomaly setting here")
    s = (settings or AnomalySettings()).replace(**changes)
    counts = _signal_region_counts(data, s)
    if counts["signal_sr_fraction"] <= 0:
        raise ValueError(f"scan_signal_fraction: {data!r} has no signal events in the SR to inject")
    scan = SignalFractionScan(points=[], settings=scan_record(data, s), seeds=list(s.seeds))
    if resume is not None:
        _check_resumable(resume, scan)
        scan = SignalFractionScan(
            points=list(resume.points), settings=scan.settings, seeds=scan.seeds, meta=resume.meta
        )
    levels = _levels(targets, counts_given, counts)
    if progress:
        log.info(injection_levels_text(sorted(levels.values()), counts))
    done = {float(p["target_sb"]) for p in scan.points if "target_sb" in p}
    for target in sorted(t for t in levels if t not in done)[::-1]:
        n_signal = levels[target]
        if n_signal > counts["n_signal_available"]:
            raise ValueError(
                f"scan_signal_fraction: S/B {target} needs {n_signal} signal events, {data!r} has "
                f"{counts['n_signal_available']}; raise n_events or file_signal_fraction"
            )
        point = _scan_point(data, s, target, n_signal, counts, progress)
        scan = SignalFractionScan(
            points=[*scan.points, point], settings=scan.settings, seeds=scan.seeds, meta=scan.meta
        )
        if on_point is not None:
            on_point(scan)
    return scan


def injection_levels_text(n_injected: Sequence[int], counts: dict[str, Any]) -> str:
    """Expected signal in the SR, S/B and S/sqrt(B) there for each injected amount, before any training:
    S = n x (signal's SR fraction), B = the pseudo-data's SR background (``counts`` from
    :func:`_signal_region_counts`)."""
    b = max(int(counts["sr_background"]), 1)
    f = float(counts["signal_sr_fraction"])
    lines = [
        f"injection levels (SR background B = {b}, signal SR fraction {f:.3f}):",
        "| injected | S in SR | S/B in SR | S/sqrt(B) in SR |",
        "|---|---|---|---|",
    ]
    for n in n_injected:
        sig = n * f
        lines.append(f"| {n} | {sig:.0f} | {sig / b:.4f} | {sig / b**0.5:.2f} |")
    return "\n".join(lines)


def _check_resumable(partial: SignalFractionScan, fresh: SignalFractionScan) -> None:
    """Refuse to mix points made with other settings or seeds into one curve, naming what differs."""

    def normal(d: dict[str, Any]) -> dict[str, Any]:
        return json.loads(json.dumps(d, default=str))

    old, new = normal(partial.settings), normal(fresh.settings)
    what = [
        f"{k}: {old.get(k)!r} there, {new.get(k)!r} now"
        for k in sorted(old.keys() | new.keys())
        if old.get(k) != new.get(k)
    ]
    if list(partial.seeds) != list(fresh.seeds):
        what.append(f"seeds: {list(partial.seeds)} there, {list(fresh.seeds)} now")
    if what:
        raise ValueError(
            f"scan_signal_fraction: cannot resume {partial.source}, it was made otherwise ({'; '.join(what)})"
        )


#: settings that do not change a scan's physics (paths, device): ignored when matching a stored scan
_NOT_SCAN_SETTINGS = ("checkpoint", "device", "output_dir", "progress")
#: the scan setting naming the pretrained model by its weights: "auto" or a path say where a model is,
#: not which one (``checkpoint="auto"`` once meant notebook 01's model, now the shipped one)
PRETRAINED_WEIGHTS = "pretrained_weights_sha256"


def pretrained_weights_sha256(checkpoint: Any) -> str | None:
    """SHA-256 of the weights a run with ``checkpoint`` fine-tunes (None: no pretrained model)."""
    path = resolve_checkpoint(checkpoint)
    return None if path is None else file_sha256(Path(path) / WEIGHTS_FILE)


def stored_scan_matches(stored: SignalFractionScan, wanted: dict[str, Any]) -> list[str]:
    """The settings a stored scan was made with that differ from ``wanted`` (empty: it is a scan of
    this configuration). Only keys both name are compared, except the pretrained weights: a scan
    that does not record them is not taken for a run that names them."""

    def norm(v: Any) -> Any:
        return json.loads(json.dumps(v, default=str))

    missing = (
        [f"{PRETRAINED_WEIGHTS}: not recorded by the stored scan, this run {wanted[PRETRAINED_WEIGHTS]!r}"]
        if PRETRAINED_WEIGHTS in wanted and PRETRAINED_WEIGHTS not in stored.settings
        else []
    )
    return missing + [
        f"{k}: stored {stored.settings[k]!r}, this run {wanted[k]!r}"
        for k in sorted(stored.settings.keys() & wanted.keys())
        if k not in _NOT_SCAN_SETTINGS and norm(stored.settings[k]) != norm(wanted[k])
    ]


def signal_fraction_scan(
    source: str | os.PathLike = "auto",
    data: Any = "lhco-mini",
    settings: AnomalySettings | None = None,
    *,
    sb_targets: Sequence[float] = (0.5, 0.1),
    n_injected: Sequence[int] | None = None,
    progress: bool = True,
    **changes: Any,
) -> SignalFractionScan | None:
    """The scan notebook 04 shows. ``source``:

    * ``"auto"``: the saved benchmark scan (:func:`find_saved_scan`) **only if** it was made with this
      run's settings (data, sizes, epochs, ...: :func:`stored_scan_matches`), labelled as a stored
      result; otherwise computed like ``"compute"`` (a stored scan of other data is never shown);
    * ``"compute"``: :func:`scan_signal_fraction` of ``data`` at ``sb_targets`` (or the ``n_injected``
      levels) with ``settings`` and ``changes``; written to ``<output_dir>/signal_fraction_scan.json``
      when ``output_dir`` is set;
    * ``"none"``: no scan (None);
    * the path of a saved scan: loaded and labelled as a stored result."""
    src = str(source)
    if src == "none":
        return None
    if src not in ("auto", "compute"):
        if not Path(src).is_file():
            raise FileNotFoundError(
                f"signal_fraction_scan: {src!r} is not a file (expected 'auto', 'compute', 'none' or a scan JSON)"
            )
        return SignalFractionScan.load(src)
    s = (settings or AnomalySettings()).replace(**changes)
    saved = find_saved_scan() if src == "auto" else None
    if saved is not None:
        stored = SignalFractionScan.load(saved)
        differs = stored_scan_matches(stored, scan_record(data, s))
        if not differs:
            return stored
        log.info(
            "signal_fraction_scan: the stored scan %s was made otherwise (%s): computing", saved, "; ".join(differs)
        )
    scan = scan_signal_fraction(data, s, sb_targets=sb_targets, n_injected=n_injected, progress=progress)
    if s.output_dir is not None:
        scan.source = str(Path(s.output_dir) / "signal_fraction_scan.json")
        scan.save(scan.source)
    return scan
