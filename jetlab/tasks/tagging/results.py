"""What :func:`jetlab.tasks.tagging.run_tagging` returns: the runs, the Table-I-like summary, the
comparisons and the figures."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from jetlab.physics.metrics import mean_and_spread
from jetlab.plot import COLORS, label_axes, rejection_curves, results_table, roc_curves, style

from ..common import TaskResults

__all__ = ["METRICS", "MODEL_LABELS", "PAPER_TABLE_I", "TaggingResults", "TaggingRun", "plot_learning_curve"]

#: Models run_tagging knows, with the names used in tables and legends.
MODEL_LABELS: dict[str, str] = {
    "finetuned": "OmniLearn (fine-tuned PET)",
    "scratch": "PET (from scratch)",
    "pfn": "Particle Flow Network",
}
#: (metric key, table column, format)
METRICS: tuple[tuple[str, str, str], ...] = (
    ("auc", "AUC", ".4f"),
    ("accuracy", "Acc", ".4f"),
    ("rej_at_0.5", "1/eps_B @ eps_S=0.5", ".1f"),
    ("rej_at_0.8", "1/eps_B @ eps_S=0.8", ".1f"),
)
#: Published ATLAS top-tagging numbers (OmniLearn paper, Table I): AUC, Acc, 1/eps_B at 0.5, 0.8.
PAPER_TABLE_I: dict[str, tuple[float, float, float, float]] = {
    "PET classifier, 4M jets": (0.959, 0.890, 146.5, 19.4),
    "OmniLearn, 4M jets": (0.961, 0.894, 172.1, 20.8),
    "PET classifier, 40M jets": (0.964, 0.898, 201.4, 23.6),
    "OmniLearn, 40M jets": (0.965, 0.899, 207.3, 24.1),
    "ParticleNet": (0.961, 0.894, 153.7, 20.4),
}


@dataclass
class TaggingRun:
    """One trained model: which (model, fraction, seed), its test metrics, scores and history."""

    model: str
    fraction: float
    seed: int
    n_train: int
    n_val: int
    metrics: dict[str, float]
    budget: dict[str, Any]
    history: dict[str, Any]
    seconds: float
    scores: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))

    def to_dict(self, scores: bool = False) -> dict[str, Any]:
        d = {k: v for k, v in asdict(self).items() if k != "scores"}
        if scores:
            d["scores"] = np.asarray(self.scores).tolist()
        return d


@dataclass
class TaggingResults(TaskResults):
    """All runs of :func:`run_tagging` plus the shared test labels/weights."""

    runs: list[TaggingRun]
    labels: np.ndarray
    weights: np.ndarray
    dataset: str
    settings: dict[str, Any] = field(default_factory=dict)

    # ---------------------------------------------------------------- selection
    @property
    def models(self) -> list[str]:
        return list(dict.fromkeys(r.model for r in self.runs))

    @property
    def fractions(self) -> list[float]:
        return sorted({r.fraction for r in self.runs}, reverse=True)

    @property
    def seeds(self) -> list[int]:
        return sorted({r.seed for r in self.runs})

    def select(
        self, model: str | None = None, fraction: float | None = None, seed: int | None = None
    ) -> list[TaggingRun]:
        return [
            r
            for r in self.runs
            if (model is None or r.model == model)
            and (fraction is None or math.isclose(r.fraction, fraction))
            and (seed is None or r.seed == seed)
        ]

    # ---------------------------------------------------------------- summaries
    def summary(self) -> list[dict[str, Any]]:
        """One row per (model, fraction): ``(mean, spread)`` over seeds of every metric.

        The spread is the sample standard deviation over seeds (0 for a single seed)."""
        rows = []
        for model in self.models:
            for frac in self.fractions:
                runs = self.select(model, frac)
                if not runs:
                    continue
                row: dict[str, Any] = {
                    "model": model,
                    "fraction": frac,
                    "n_train": runs[0].n_train,
                    "n_seeds": len(runs),
                }
                with np.errstate(invalid="ignore"):  # 1/eps_B can be inf (no background passes)
                    for key in runs[0].metrics:
                        row[key] = mean_and_spread([r.metrics[key] for r in runs])
                row["seconds"] = mean_and_spread([r.seconds for r in runs])
                rows.append(row)
        return rows

    def table(self, title: str | None = None):
        """Results laid out like Table I of the OmniLearn paper: rows model x training fraction,
        columns AUC, accuracy and 1/eps_B at eps_S = 0.5 / 0.8 as 'mean ± spread over seeds'; bold:
        the best model in each column at each training size (highest mean, ties as printed)."""
        rows = []
        for s in self.summary():
            row = {
                "Model": MODEL_LABELS.get(s["model"], s["model"]),
                "Training jets": f"{s['fraction']:.0%} ({s['n_train']:,})",
            }
            for key, col, _ in METRICS:
                row[col] = s[key]
            rows.append(row)
        weighted = "per-jet-weighted" if self.settings.get("weighted_metrics") else "unweighted"
        title = title or f"{self.dataset}: {weighted} test metrics, mean ± std over {len(self.seeds)} seed(s)"
        return results_table(
            rows,
            formats={col: fmt for _, col, fmt in METRICS},
            # higher is better for every metric here (AUC, accuracy, background rejection); models
            # are compared at equal training size, so the best is bold within each fraction
            highlight={col: "max" for _, col, _ in METRICS},
            group_by="Training jets",
            title=title,
        )

    def comparison(self, fraction: float, a: str = "finetuned", b: str = "scratch") -> dict[str, dict[str, float]]:
        """For each metric: mean difference ``a - b`` at ``fraction``, the larger seed spread of the
        two, and whether the difference exceeds it (the notebook's "beats scratch" check)."""
        sa, sb = ({(s["model"], s["fraction"]): s for s in self.summary()}.get((m, fraction)) for m in (a, b))
        if sa is None or sb is None:
            raise KeyError(
                f"comparison: need runs of {a!r} and {b!r} at fraction {fraction}; have models "
                f"{self.models} and fractions {self.fractions}"
            )
        out = {}
        for key, _, _ in METRICS:
            diff = sa[key][0] - sb[key][0]
            spread = max(sa[key][1], sb[key][1])
            out[key] = {"difference": diff, "spread": spread, "significant": bool(diff > spread)}
        return out

    def roc_inputs(self, fraction: float | None = None, seed: int | None = None) -> dict[str, tuple]:
        """``{legend label: (labels, scores, weights)}`` for :func:`jetlab.plot.roc_curves` /
        ``rejection_curves``: one curve per (model, fraction) at ``seed`` (default: the first)."""
        seed = self.seeds[0] if seed is None else seed
        fracs = self.fractions if fraction is None else [fraction]
        out = {}
        for frac in fracs:
            for model in self.models:
                for r in self.select(model, frac, seed):
                    label = MODEL_LABELS.get(model, model) + ("" if len(fracs) == 1 else f", {frac:.0%}")
                    out[label] = (self.labels, r.scores, self.weights)
        if not out:
            raise KeyError(f"roc_inputs: no runs at fraction={fraction}, seed={seed}")
        return out

    def learning_curve(self, metric: str = "auc") -> dict[str, dict[str, np.ndarray]]:
        """``{model: {"n_train", "fraction", "mean", "spread"}}`` of ``metric`` vs training-set size."""
        out = {}
        for model in self.models:
            rows = sorted((s for s in self.summary() if s["model"] == model), key=lambda s: s["n_train"])
            out[model] = {
                "n_train": np.array([s["n_train"] for s in rows]),
                "fraction": np.array([s["fraction"] for s in rows]),
                "mean": np.array([s[metric][0] for s in rows]),
                "spread": np.array([s[metric][1] for s in rows]),
            }
        return out

    def headline_run(self) -> TaggingRun:
        """The run a notebook shows in detail: fine-tuned (else the first model) on the largest
        fraction, first seed."""
        model = "finetuned" if "finetuned" in self.models else self.models[0]
        return self.select(model, max(self.fractions), self.seeds[0])[0]

    def comparison_report(self, fraction: float | None = None) -> str:
        """One line per metric: fine-tuned minus scratch at ``fraction`` (default: the smallest) and
        whether the difference exceeds the seed spread; empty without both models."""
        if not {"finetuned", "scratch"} <= set(self.models):
            return ""
        frac = min(self.fractions) if fraction is None else fraction
        return "\n".join(
            f"{key:>12s}: fine-tuned - scratch = {c['difference']:+.4f} (seed spread {c['spread']:.4f}) "
            f"-> {'yes' if c['significant'] else 'no'}"
            for key, c in self.comparison(frac).items()
        )

    # ---------------------------------------------------------------- figures
    def plots(self) -> dict[str, Figure]:
        """ROC and rejection curves per training fraction (first seed) and learning curves of AUC and
        1/eps_B at eps_S = 0.5: ``{file name: Figure}``."""
        figs: dict[str, Figure] = {}
        for frac in self.fractions:
            inputs = self.roc_inputs(fraction=frac)
            tag, rlabel = f"{round(100 * frac)}pct", f"{self.dataset}, {frac:.0%} of training jets"
            figs[f"roc_{tag}.png"] = roc_curves(inputs, rlabel=rlabel)
            figs[f"rejection_{tag}.png"] = rejection_curves(inputs, rlabel=rlabel)
        for metric in ("auc", "rej_at_0.5"):
            figs[f"learning_curve_{metric}.png"] = plot_learning_curve(self, metric, rlabel=self.dataset)
        return figs

    # ---------------------------------------------------------------- serialisation
    def to_dict(self, scores: bool = False) -> dict[str, Any]:
        summary = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in s.items()} for s in self.summary()]
        d = {
            "dataset": self.dataset,
            "settings": self.settings,
            "metric_method": "interp",
            "summary": summary,
            "runs": [r.to_dict(scores) for r in self.runs],
            "n_test": int(len(self.labels)),
            "checkpoint": self.settings.get("checkpoint"),
        }
        if {"finetuned", "scratch"} <= set(self.models):
            d["finetuned_vs_scratch_at_smallest_fraction"] = self.comparison(min(self.fractions))
        if scores:
            d["test_labels"] = self.labels.tolist()
            d["test_weights"] = self.weights.tolist()
        return d


def plot_learning_curve(results: TaggingResults, metric: str = "auc", *, rlabel: str | None = None):
    """Metric (mean ± seed spread) vs number of training jets, one line per model (log x)."""
    names = {k: col for k, col, _ in METRICS}
    if metric not in names:
        raise ValueError(f"plot_learning_curve: metric must be one of {list(names)}, got {metric!r}")
    curves = results.learning_curve(metric)
    with style():
        fig = Figure(figsize=(6.8, 5.6))
        ax = fig.add_subplot()
        for i, (model, c) in enumerate(curves.items()):
            ax.errorbar(
                c["n_train"],
                c["mean"],
                yerr=c["spread"],
                marker="o",
                capsize=3,
                color=COLORS[i % len(COLORS)],
                label=MODEL_LABELS.get(model, model),
            )
        ax.set_xscale("log")
        ax.set_xlabel("Training jets")
        ax.set_ylabel(names[metric].replace("eps_B", r"$\varepsilon_B$").replace("eps_S", r"$\varepsilon_S$"))
        ax.legend(fontsize="small")
        label_axes(ax, rlabel)
    return fig
