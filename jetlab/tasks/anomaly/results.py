"""What :func:`jetlab.tasks.anomaly.run_anomaly` returns: every detector's run per seed on one
pseudo-data split, the SIC table, the background model's closeness, the sculpting check and the figures."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from jetlab.physics.metrics import mean_and_spread
from jetlab.plot import compare_hist, mjj_spectrum, results_table, sic_curves

from ..common import TaskResults
from .background import PARTICLE_FEATURE_NAMES
from .detectors import AnomalyRun
from .events import JET_FEATURE_NAMES, AnomalySplit, MassWindows
from .metrics import raw_particles, sculpting_check

__all__ = ["SCULPTING_EFFICIENCIES", "AnomalyResults"]

#: cut efficiencies of the sculpting check and of the "mjj after cuts" figure
SCULPTING_EFFICIENCIES: tuple[float, ...] = (0.5, 0.2, 0.05)

_JET_PLOTS = {
    "m1": "Heavier jet mass [GeV]",
    "m2": "Lighter jet mass [GeV]",
    "pt1": "Heavier jet pT [GeV]",
    "n1": "Heavier jet multiplicity",
}
_PARTICLE_LABELS = (r"$\Delta\eta$", r"$\Delta\phi$", r"$\log(1 - p_T/p_{T,jet})$")


@dataclass
class AnomalyResults(TaskResults):
    """Every detector's :class:`AnomalyRun` per seed (``runs[(method, seed)]``) on one pseudo-data
    ``split``; the first method of the first seed is the one shown in detail (CATHODE, pretrained if
    there is a checkpoint)."""

    runs: dict[tuple[str, int], AnomalyRun]
    split: AnomalySplit
    windows: MassWindows
    dataset: str = ""
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def methods(self) -> list[str]:
        return list(dict.fromkeys(m for m, _ in self.runs))

    @property
    def seeds(self) -> list[int]:
        return list(dict.fromkeys(s for _, s in self.runs))

    @property
    def headline(self) -> AnomalyRun:
        """The run shown in detail: first method, first seed."""
        return self.runs[(self.methods[0], self.seeds[0])]

    def metrics_table(self) -> dict[str, dict[str, Any]]:
        """Per method: ``max_sic`` and ``auc`` as (mean, spread over seeds), and the per-seed max SIC."""
        out = {}
        for m in self.methods:
            sics = [self.runs[(m, s)].metrics["max_sic"] for s in self.seeds]
            aucs = [self.runs[(m, s)].metrics["auc"] for s in self.seeds]
            out[m] = {"max_sic": mean_and_spread(sics), "auc": mean_and_spread(aucs), "max_sic_per_seed": sics}
            close = [
                self.runs[(m, s)].extras["closeness"] for s in self.seeds if "closeness" in self.runs[(m, s)].extras
            ]
            if close and len(close) == len(self.seeds):
                for part in ("jets", "particles"):
                    out[m][f"closeness_auc_{part}"] = mean_and_spread([c[f"auc_{part}"] for c in close])
        return out

    def table(self):
        """Max SIC and AUC per method, mean ± spread over seeds; for CATHODE, how well a classifier
        tells its generated SR background from the true one (AUC, 0.5 = indistinguishable) on jet
        features and on particles: a template far from 0.5 finds the generator, not the signal."""
        rows = [
            {
                "Method": m,
                "max SIC": v["max_sic"],
                "AUC": v["auc"],
                "gen-vs-true AUC jets": v.get("closeness_auc_jets", "-"),
                "gen-vs-true AUC particles": v.get("closeness_auc_particles", "-"),
            }
            for m, v in self.metrics_table().items()
        ]
        return results_table(
            rows,
            formats={"max SIC": ".2f", "AUC": ".3f", "gen-vs-true AUC jets": ".3f", "gen-vs-true AUC particles": ".3f"},
            highlight={"max SIC": "max", "AUC": "max"},
            title=f"{self.dataset}: SR data vs background template, {len(self.seeds)} seed(s)",
        )

    def closeness(self) -> dict[str, dict[str, Any]]:
        """:func:`closeness_metrics` of every CATHODE run's generated SR background vs the true one."""
        return {f"{m} seed {s}": r.extras["closeness"] for (m, s), r in self.runs.items() if "closeness" in r.extras}

    def closeness_report(self) -> str:
        lines = []
        for key, c in self.closeness().items():
            parts = f" (jets {c['auc_jets']:.3f}, particles {c['auc_particles']:.3f})" if "auc_jets" in c else ""
            lines.append(f"{key}: AUC true-vs-generated = {c['auc']:.3f}{parts}")
            lines.append(
                "   W1 jet      : "
                + str({k: f"{v:.3g} (floor {c['w1_jet_floor'][k]:.3g})" for k, v in c["w1_jet"].items()})
            )
            lines.append(
                "   W1 particle : "
                + str({k: f"{v:.3g} (floor {c['w1_particle_floor'][k]:.3g})" for k, v in c["w1_particle"].items()})
            )
        return "\n".join(lines)

    def window_scores(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(mjj, score, label)`` of the data events in SR and SB with the headline run's scores
        (out-of-fold in the SR, fold average in the SB)."""
        d, run = self.split.data, self.headline
        sr, sb = self.windows.in_sr(d.mjj), self.windows.in_sb(d.mjj)
        scores = np.full(len(d), np.nan)
        scores[sr], scores[sb] = run.scores, run.sb_scores
        inw = sr | sb
        return d.mjj[inw], scores[inw], d.labels[inw]

    def sculpting(self) -> dict[float, dict[str, float]]:
        """:func:`sculpting_check` of the headline run's score cuts at :data:`SCULPTING_EFFICIENCIES`."""
        return sculpting_check(*self.window_scores(), self.windows, SCULPTING_EFFICIENCIES)

    def sculpting_report(self) -> str:
        return "\n".join(
            f"keep {eff:>4.0%}: background left {v['n_background']:5d}, W1 = {v['w1']:.3f} TeV "
            f"(random subset {v['w1_random']:.3f})"
            for eff, v in self.sculpting().items()
        )

    def plots(self) -> dict[str, Figure]:
        """mjj spectrum with the injected signal; generated vs true SR background (jet and particle
        features, headline run); SIC curves (first seed); mjj after score cuts: ``{file name: Figure}``."""
        d, w = self.split.data, self.windows
        figs = {
            "mjj_spectrum.png": mjj_spectrum(d.mjj, w.sr, w.sb, cut_masks={"injected signal (truth)": d.labels == 1})
        }
        run = self.headline
        if "synthetic" in run.extras:
            gen = run.extras["generator"]
            std, ref, syn = gen.standardizer, run.extras["reference"], run.extras["synthetic"]
            ref_feats = np.concatenate([std.inverse_jets(ref["jets1"]), std.inverse_jets(ref["jets2"])], axis=1)
            sr_feats = d.subset(w.in_sr(d.mjj)).jet_features()
            for name, xlabel in _JET_PLOTS.items():
                i = JET_FEATURE_NAMES.index(name)
                figs[f"generated_vs_true_{name}.png"] = compare_hist(
                    {
                        "true background (SR)": ref_feats[:, i],
                        f"generated ({run.method})": run.extras["synthetic_features"][:, i],
                        "SR data": sr_feats[:, i],
                    },
                    bins=30,
                    xlabel=xlabel,
                )
            true_p, gen_p = raw_particles(ref, std, 1), raw_particles(syn, std, 1)
            for i, (name, xlabel) in enumerate(zip(PARTICLE_FEATURE_NAMES, _PARTICLE_LABELS)):
                figs[f"generated_vs_true_particle_{name}.png"] = compare_hist(
                    {"true background (SR)": true_p[:, i], "generated": gen_p[:, i]},
                    bins=40,
                    xlabel=xlabel + " (heavier jet)",
                )
        first = {m: (self.runs[(m, self.seeds[0])].labels, self.runs[(m, self.seeds[0])].scores) for m in self.methods}
        figs["sic_curves.png"] = sic_curves(first, min_background_events=run.metrics["min_background_events"])
        mjj, s, _ = self.window_scores()
        cuts = {f"top {e:.0%} by score": s >= np.quantile(s, 1 - e) for e in SCULPTING_EFFICIENCIES[1:]}
        figs["mjj_after_cuts.png"] = mjj_spectrum(mjj, w.sr, w.sb, cut_masks=cuts)
        return figs

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "checkpoint": self.settings.get("checkpoint"),
            "settings": self.settings,
            "split": self.split.summary(self.windows),
            "table": self.metrics_table(),
            "closeness": self.closeness(),
            "sculpting": {str(k): v for k, v in self.sculpting().items()},
            "runs": [dict(r.summary()) | {"method": m} for (m, _), r in self.runs.items()],
        }
