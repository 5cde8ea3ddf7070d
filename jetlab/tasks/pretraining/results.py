"""What :func:`jetlab.tasks.pretraining.run_pretraining` returns: the model, the jet generator, the
evaluation of generated jets and its tables, figures and ``metrics.json``."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from matplotlib.figure import Figure

from jetlab.data.preprocess import Standardizer
from jetlab.data.schema import JetSet
from jetlab.model import FOUNDATION_MODEL, ModelCard, load
from jetlab.model.jet_generator import JetFeatureGenerator
from jetlab.plot import compare_jets, confusion_matrix, results_table
from jetlab.simulator.detector import JetAcceptance

from ..common import TaskResults
from .diffusion_generation import (
    check_constraints,
    evaluate_pretraining,
    jet_generator_for_model,
)

__all__ = ["ACCURACY_METRICS", "PretrainingResult"]

#: the evaluation's accuracies that the model card's metrics and ``PretrainingResult.to_dict`` keep
ACCURACY_METRICS: tuple[str, ...] = (
    "accuracy",
    "chance_accuracy",
    "generated_accuracy",
    "kinematic_accuracy",
    "per_class_accuracy",
)


@dataclass
class PretrainingResult(TaskResults):
    """What :func:`run_pretraining` produced (the checkpoint is at ``checkpoint``)."""

    model: Any
    jet_generator: JetFeatureGenerator
    history: Any
    jet_generator_history: list[float]
    standardizer: Standardizer
    class_names: list[str]
    train: JetSet
    val: JetSet
    test: JetSet
    metrics: dict[str, Any]
    evaluation: dict[str, Any]
    checkpoint: Path
    timings: dict[str, float] = field(default_factory=dict)
    acceptance: JetAcceptance | None = None  # the training data's, where jetlab models its detector

    def table(self):
        """W1 of generated vs real test jets per observable, next to the real-vs-real floor."""
        ev = self.evaluation
        rows = [
            {
                "observable": o,
                "W1 generated vs real": ev["w1"][o]["all"],
                "W1 real vs real (floor)": ev["w1_reference"][o]["all"],
            }
            for o in ev.get("w1", {})
        ]
        return results_table(
            rows,
            formats={"W1 generated vs real": ".3g", "W1 real vs real (floor)": ".3g"},
            title="1-Wasserstein distances (lower is closer)",
        )

    def w1_per_class(self, observables: Sequence[str] = ("jet_mass", "multiplicity")) -> dict[str, dict[str, float]]:
        """``{class: {observable: W1}}`` of generated vs real test jets (NaN where a class is missing)."""
        w1 = self.evaluation.get("w1", {})
        return {c: {o: float(w1[o].get(c, float("nan"))) for o in observables} for c in self.class_names}

    def _generation(self, caller: str) -> dict[str, Any]:
        """How the evaluation generated its jets (steps, seed, constraints); an error if it generated none."""
        gen = self.metrics.get("generation")
        if "generated" not in self.evaluation or gen is None:
            raise ValueError(f"{caller}: this run has no generated jets (run_pretraining(evaluate=False)?)")
        return gen

    def _evaluate_again(self, model, jet_generator, standardizer, constraints, device) -> dict[str, Any]:
        """:func:`evaluate_pretraining` on the evaluation's test jets with its sampling steps and seed."""
        gen = self._generation("evaluate")
        return evaluate_pretraining(
            model,
            self.test.subset(slice(0, self.evaluation["n_test"])),
            jet_generator,
            standardizer=standardizer,
            class_names=self.class_names,
            steps=gen["steps"],
            seed=gen["seed"],
            device=device,
            constraints=constraints,
            acceptance=self.acceptance,
            guidance=gen.get("guidance", 0.0),
        )

    def compare_generation(self, constraints: Sequence[str] = (), device: str | torch.device = "cpu"):
        """The evaluation's generated jets next to the same model and jet features sampled with other
        ``constraints`` (default none: the diffusion head alone). A table per arm: jet-mass W1 overall
        and per class (floor in the last row) and the classifier's accuracy on generated jets against
        its accuracy on real ones; the numbers are kept for ``metrics.json`` (``generation_compared``)."""
        ev = self.evaluation
        constraints = check_constraints(constraints, "compare_generation")
        gen = self._generation("compare_generation")
        other = self._evaluate_again(self.model, self.jet_generator, self.standardizer, constraints, device)

        def arm(held: Sequence[str], e: dict[str, Any]) -> dict[str, Any]:
            scale = e["generated"].extra.get("mass_scale")
            return {
                "constraints": list(held),
                "generated_accuracy": e["generated_accuracy"],
                "w1_jet_mass": e["w1"]["jet_mass"],
                "mass_scale_5_50_95": None if scale is None else np.percentile(scale, [5, 50, 95]).tolist(),
                "unrecordable": e.get("unrecordable"),
            }

        ev["compared"] = [arm(gen["constraints"], ev), arm(constraints, other)]
        names = [c for c in ev["w1"]["jet_mass"] if c != "all"]
        floor = ev["w1_reference"]["jet_mass"]

        def row(label: str, acc: Any, w1: dict[str, float], scale: Any, lost: Any) -> dict[str, Any]:
            return {
                "generated jets": label,
                "classifier accuracy": acc,
                "jet-mass W1 all": w1["all"],
                **{f"W1 {c}": w1.get(c) for c in names},
                "mass scale 5/50/95%": "" if scale is None else " / ".join(f"{v:.2f}" for v in scale),
                "unrecordable particles": ""
                if lost is None
                else f"{lost['after']:.2%} (drawn: {lost['before']:.2%}, removed: {lost['removed']:.2%})",
            }

        rows = [
            row(
                "held to " + " and ".join(a["constraints"]) if a["constraints"] else "diffusion head alone",
                a["generated_accuracy"],
                a["w1_jet_mass"],
                a["mass_scale_5_50_95"],
                a["unrecordable"],
            )
            for a in ev["compared"]
        ]
        rows.append(row("real (floor: real vs real)", ev["accuracy"], floor, None, None))
        return results_table(rows, floatfmt=".3g", title="Generated jets with and without constraints")

    def compare_with(self, checkpoint: str | os.PathLike = FOUNDATION_MODEL, device: str | torch.device = "cpu"):
        """Another pretrained PET (default: the foundation model jetlab ships) judged on this run's test
        jets as this run's model was: its accuracy among this sample's classes (by name), and jets
        generated by its diffusion head the same way (jet features from a generator fitted to this run's
        training jets in that model's input scaling, same steps, seed and constraints) against the same
        real-vs-real floor. A table of both models; the numbers are kept for ``metrics.json``
        (``compared_with``)."""
        ev, gen = self.evaluation, self._generation("compare_with")
        other = load(checkpoint, map_location="cpu")
        jg = jet_generator_for_model(
            other, self.train, self.class_names, epochs=len(self.jet_generator_history), seed=gen["seed"]
        )
        theirs = self._evaluate_again(other, jg, other.card.get_standardizer(), gen["constraints"], device)

        def arm(name: str, card: ModelCard, e: dict[str, Any]) -> dict[str, Any]:
            keep = ("accuracy", "generated_accuracy", "kinematic_accuracy", "standard_errors")
            return {
                "model": name,
                "training_jets": card.training_size,
                "classes": len(card.class_names or []),
                **{k: e[k] for k in keep},
                "w1": {o: e["w1"][o]["all"] for o in e["w1"]},
            }

        arms = [arm("pretrained in this run", self.model.card, ev), arm(str(checkpoint), other.card, theirs)]
        ev["compared_with"] = arms
        floor = {o: v["all"] for o, v in ev["w1_reference"].items()}
        rows = [
            {
                "model": a["model"],
                "pretraining jets": a["training_jets"],
                "classes": a["classes"],
                "accuracy": f"{a['accuracy']:.3f} ± {a['standard_errors']['accuracy']:.3f}",
                "accuracy on generated": f"{a['generated_accuracy']:.3f} ± {a['standard_errors']['generated_accuracy']:.3f}",
                "generated / real as generated": a["generated_accuracy"] / a["kinematic_accuracy"],
                **{f"W1 {o}": a["w1"][o] for o in ("jet_mass", "multiplicity")},
            }
            for a in arms
        ]
        rows.append({"model": "real vs real (floor)", **{f"W1 {o}": floor[o] for o in ("jet_mass", "multiplicity")}})
        return results_table(rows, floatfmt=".3g", title=f"The same test jets: this run's model and {checkpoint}")

    def plots(self) -> dict[str, Figure]:
        """Confusion matrix of the classifier head and generated vs real jets: ``{file name: Figure}``."""
        ev = self.evaluation
        figs = {
            "confusion_matrix.png": confusion_matrix(
                self.test.labels[: ev["n_test"]], ev["predictions"], self.class_names
            )
        }
        if "generated" in ev:
            real = self.test.subset(slice(0, len(ev["generated"])))
            figs["generated_vs_real.png"] = compare_jets(
                real, ev["generated"], ("particle pt", "particle eta", "particle phi", "multiplicity", "jet mass")
            )
        return figs

    def to_dict(self) -> dict[str, Any]:
        ev = self.evaluation
        out: dict[str, Any] = {
            k: ev[k] for k in (*ACCURACY_METRICS, "confusion_matrix", "w1", "w1_reference") if k in ev
        }
        if "generation" in self.metrics:
            out["generation"] = self.metrics["generation"]
        if "compared" in ev:
            out["generation_compared"] = ev["compared"]
        if "compared_with" in ev:
            out["compared_with"] = ev["compared_with"]
        out.update(
            checkpoint=str(self.checkpoint),
            timings=self.timings,
            parameters=self.model.num_parameters(),
            class_names=self.class_names,
            n_train=len(self.train),
            n_val=len(self.val),
            n_test=len(self.test),
        )
        return out
