"""`jetlab demo` end to end with tiny sizes: generates toptag-mini into a private cache, trains, writes outputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

import jetlab.tasks.tagging
from jetlab.cli.main import main


def test_demo_writes_roc_and_metrics(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("JETLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("JETLAB_CHECKPOINT", raising=False)
    # keep the run's test scores and labels (metrics.json has only the metrics) to recompute them here
    seen = []
    real_run_tagging = jetlab.tasks.tagging.run_tagging

    def spy(*args, **kwargs):
        seen.append(real_run_tagging(*args, **kwargs))
        return seen[-1]

    monkeypatch.setattr(jetlab.tasks.tagging, "run_tagging", spy)
    out = tmp_path / "demo"
    rc = main(["demo", "--n-jets", "300", "--epochs", "3", "--seed", "0", "--out", str(out), "--checkpoint", "none",
               "--quiet"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "AUC =" in printed and "1/eps_B" in printed and str(out / "metrics.json") in printed
    png = out / "roc.png"
    assert png.stat().st_size > 1000 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    m = json.loads((out / "metrics.json").read_text())
    assert m["dataset"] == "toptag-mini" and m["n_jets"] == 300 and m["checkpoint"] is None
    assert m["n_train"] + m["n_val"] + m["n_test"] == 300
    met = m["metrics"]
    assert 0.6 < met["auc"] <= 1.0
    # the written metrics are the run's test scores' own, recomputed independently: AUC with sklearn,
    # accuracy as score > 0.5 for top by hand (a wrong label order, score column or split fails)
    (res,) = seen
    labels, scores = np.asarray(res.labels), np.asarray(res.runs[0].scores)
    assert len(labels) == m["n_test"] == len(scores)
    assert met["auc"] == pytest.approx(roc_auc_score(labels, scores, sample_weight=res.weights), abs=1e-9)
    accuracy = float(np.average((scores > 0.5) == (labels == 1), weights=res.weights))
    assert met["accuracy"] == pytest.approx(accuracy, abs=1e-12)
    # and above always guessing the commoner class, by more than two binomial standard errors of it
    chance = max(np.mean(labels == 1), np.mean(labels == 0))
    assert met["accuracy"] > chance + 2 * np.sqrt(chance * (1 - chance) / len(labels))
    assert met["rej_at_0.5"] is None or met["rej_at_0.5"] >= met["rej_at_0.8"] >= 1.0
    assert len(m["history"]["train_loss"]) == 3


def test_demo_rejects_bad_arguments(tmp_path, capsys):
    assert main(["demo", "--n-jets", "10", "--out", str(tmp_path)]) == 2
    assert "--n-jets must be >= 100" in capsys.readouterr().err
    assert main(["demo", "--checkpoint", str(tmp_path / "missing"), "--out", str(tmp_path)]) == 2
    assert "missing" in capsys.readouterr().err
