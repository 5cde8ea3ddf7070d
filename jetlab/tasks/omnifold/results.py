"""What :func:`jetlab.tasks.omnifold.run_omnifold` returns: one unfolding per classifier, the
triangular-discriminator summary against the truth, the step-1 convergence study, their tables and figures."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from matplotlib.figure import Figure

from jetlab.physics import OBSERVABLES
from jetlab.plot import compare_hist, loss_curves, results_table

from ..common import TaskResults
from .algorithm import OmniFoldResult
from .convergence import ConvergenceStudy
from .evaluation import UnfoldingSummary

__all__ = ["CLASSIFIERS", "OmniFoldResults"]

#: the classifiers notebook 03 compares ("pfn": the original OmniFold's Particle Flow Network)
CLASSIFIERS: tuple[str, ...] = ("pretrained", "scratch", "pfn", "mlp")
_PETS = ("pretrained", "scratch")


@dataclass
class OmniFoldResults(TaskResults):
    """Everything :func:`run_omnifold` produced: one :class:`OmniFoldResult` per classifier
    (``runs``), the triangular-discriminator ``summary`` and the step-1 convergence ``study``."""

    runs: dict[str, OmniFoldResult]
    summary: UnfoldingSummary
    study: ConvergenceStudy | None
    observables: dict[str, dict[str, Any]] = field(repr=False)
    dataset: str = ""
    settings: dict[str, Any] = field(default_factory=dict)

    def convergence(self) -> dict[str, Any] | None:
        """:meth:`ConvergenceStudy.ratio` (pretrained vs scratch, seed-averaged); None without both."""
        return self.study.ratio() if self.study is not None and all(n in self.study.curves for n in _PETS) else None

    def convergence_report(self) -> str:
        """The convergence numbers in two lines (empty without both PETs)."""
        c = self.convergence()
        if c is None:
            return ""
        reach = "never" if c["pretrained_epochs"] is None else f"{c['pretrained_epochs']:.2f} epochs"
        return (
            f"scratch (mean of {c['n_seeds']}) reaches its best val loss {c['target_val_loss']:.5f} after "
            f"{c['scratch_epochs']:.2f} epochs; pretrained reaches it after {reach} -> ratio {c['ratio']:.2f}; "
            f"best val loss pretrained {c['pretrained_best_val_loss']:.5f}\n"
            "per seed: " + ", ".join(f"{r:.2f}" for r in c["per_seed"])
        )

    def explorer_results(self) -> dict[str, dict[str, Any]]:
        """:class:`jetlab.widgets.IterationExplorer` input for the first of pretrained, scratch, mlp."""
        best = next(f"OmniFold-{n}" for n in CLASSIFIERS + tuple(self.runs) if n in self.runs)
        return self.summary.explorer_results(best)

    def table(self):
        """Triangular discriminator x 10^3 per observable (rows) and method (columns). Bold: the
        method closest to the truth for each observable (lowest TD), where it beats the prior."""
        s = self.summary
        methods = [m for m in s.methods if m != "prior"]
        return results_table(
            s.rows(),
            formats={m: ".2f" for m in s.methods},
            row_best="min",
            row_columns=methods,
            row_reference="prior" if "prior" in s.methods else None,
            title="Triangular discriminator x 10^3 (unfolded vs truth; bold: best method per observable, if below the prior)",
        )

    def plots(self) -> dict[str, Figure]:
        """The seed-averaged step-1 validation loss of each PET and every unfolded observable against
        the truth and the prior: ``{file name: Figure}``."""
        figs: dict[str, Figure] = {}
        if self.study is not None:
            curves = {}
            for n, cs in self.study.curves.items():
                mean = self.study.mean_curve(n)
                curves[f"{n} (mean of {len(cs)})"] = {
                    "epoch": [p[0] for p in mean],
                    "val_loss": [p[1] for p in mean],
                    "val_loss_std": self.study.spread(n),
                }
            fig = loss_curves(curves, train=False, ylabel="Step-1 validation loss (iteration 1)")
            fig.axes[0].set_xlabel("Epoch")
            figs["val_loss_step1.png"] = fig
        obs = self.observables
        for o in self.summary.observables:
            samples = {"truth": obs["data_gen"][o], "prior (sim)": obs["sim_gen"][o]}
            weights = {}
            for name, r in self.runs.items():
                samples[f"OmniFold-{name}"] = obs["sim_gen"][o]
                weights[f"OmniFold-{name}"] = r.weights()
            figs[f"unfolded_{o}.png"] = compare_hist(
                samples,
                bins=self.summary.bins[o],
                weights=weights,
                xlabel=OBSERVABLES[o].label if o in OBSERVABLES else o,
                reference="truth",
                rlabel=None,
                ratio_range=(0.6, 1.4),
            )
        return figs

    def to_dict(self) -> dict[str, Any]:
        s = self.summary
        return {
            "dataset": self.dataset,
            "settings": self.settings,
            "triangular_discriminator": {
                m: {o: {"value": v[0], "std": v[1]} for o, v in s.td[m].items()} for m in s.methods
            },
            "per_iteration": {m: {o: v.tolist() for o, v in d.items()} for m, d in s.per_iteration.items()},
            "convergence": self.convergence(),
            "convergence_curves": None if self.study is None else self.study.curves,
            "runs": {n: r.summary() for n, r in self.runs.items()},
        }
