"""The headline numbers of each notebook's ``metrics.json``, flattened for the before/after check
of tests/test_notebooks.py (the reference values live in tests/data/ci_tiny_metrics.json)."""

from __future__ import annotations

import math
from typing import Any

REFERENCE_FILE = "ci_tiny_metrics.json"


def _num(v: Any) -> float | None:
    return None if v is None else float(v)


def headline(stem: str, m: dict[str, Any]) -> dict[str, float | None]:
    """``{name: value}`` of the numbers a refactor must not move (wall times and paths excluded)."""
    out: dict[str, float | None] = {}
    if stem == "00_quickstart":
        out.update({f"p_jet0/{k}": v for k, v in m["probabilities_jet0"].items()})
        out.update({f"count/{k}": v for k, v in m["class_counts"].items()})
    elif stem == "01_pretraining":
        for k in ("accuracy", "chance_accuracy", "generated_accuracy"):
            out[k] = m[k]
        for table in ("w1", "w1_reference"):
            out.update({f"{table}/{o}": per["all"] for o, per in m[table].items()})
        for other in m.get("compared_with", [])[1:]:  # the shipped model on the same test jets
            out.update({f"{other['model']}/{k}": other[k] for k in ("accuracy", "generated_accuracy")})
    elif stem == "02_top_tagging":
        for r in m["runs"]:
            for k in ("auc", "accuracy", "rej_at_0.5", "rej_at_0.8"):
                out[f"{r['model']}/{r['fraction']}/{r['seed']}/{k}"] = r["metrics"][k]
    elif stem == "03_omnifold_unfolding":
        for method, per in m["triangular_discriminator"].items():
            out.update({f"td/{method}/{o}": v["value"] for o, v in per.items()})
        for name, run in m["runs"].items():
            for i, it in enumerate(run["best_val_loss"]):
                out.update({f"{name}/it{i}/{step}": v for step, v in it.items()})
        if m.get("convergence"):
            out["convergence/ratio"] = m["convergence"]["ratio"]
            out["convergence/target_val_loss"] = m["convergence"]["target_val_loss"]
    elif stem == "04_lhco_anomaly_detection":
        for r in m["runs"]:
            out.update({f"{r['method']}/{r['seed']}/{k}": r[k] for k in ("auc", "max_sic")})
        out.update({f"closeness/{k}": c["auc"] for k, c in m["closeness"].items()})
    else:
        raise KeyError(f"headline: no headline metrics defined for notebook {stem!r}; add them to {__file__}")
    return {k: _num(v) for k, v in out.items()}


def differences(actual: dict[str, float | None], expected: dict[str, float | None], rel: float = 1e-4) -> list[str]:
    """Names (with both values) whose values differ beyond ``rel``, or that one side lacks.

    ``rel`` 1e-4, not 1e-6: the same code and seeds give results that differ between CPUs (their
    vector instruction sets order float sums differently) and the differences grow through DDIM
    sampling: notebook 01's generated particle-eta W1 was 0.11575101 where the reference was made
    and 0.11575066 on the 2026-11-28 machine (3e-6 relative). A change of results moves them by far more."""
    diffs = [f"{k}: missing" for k in expected if k not in actual] + [f"{k}: unexpected" for k in actual if k not in expected]
    for k in expected.keys() & actual.keys():
        a, e = actual[k], expected[k]
        same = a == e or (a is not None and e is not None and math.isclose(a, e, rel_tol=rel, abs_tol=1e-12))
        if not same:
            diffs.append(f"{k}: {a!r} != reference {e!r}")
    return sorted(diffs)


def _write_reference(out_root: str) -> None:  # pragma: no cover - maintenance script
    import json
    from pathlib import Path

    path = Path(__file__).with_name("data") / REFERENCE_FILE
    doc = json.loads(path.read_text())
    for metrics in sorted(Path(out_root).glob("*/metrics.json")) + sorted(Path(out_root).glob("*/*/metrics.json")):
        stem = metrics.parent.name
        doc["reference"][stem] = headline(stem, json.loads(metrics.read_text()))
    path.write_text(json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":  # pragma: no cover
    import sys

    _write_reference(sys.argv[1])
