"""Notebook 04 never presents a stored scan as its own (issue 30 item 4): a scan read from a file is
labelled with the file (printed and in the figure title), ``signal_scan="auto"`` uses the stored
scan only when it was made with the run's own settings, ``"none"`` shows none, and the injection
levels print their S/B and S/sqrt(B) in the signal region."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jetlab.tasks import anomaly as A
from jetlab.tasks.anomaly import scan as S

SETTINGS = {"data": "lhco-mini", "n_events": 6000, "seed": 0, "max_particles": 24, "epochs": 3,
            "gen_epochs": 40, "checkpoint": "/tmp/somewhere/checkpoint", "device": "auto"}


def _stored(tmp_path: Path) -> Path:
    point = {"sr_s_over_b": 0.1, "sr_s_over_sqrt_b": 1.8, "n_injected": 40, "sr_background": 335,
             "random_max_sic": [1.0, 1.07], "methods": {"CATHODE pretrained": {"max_sic": [1.5, 0.1]}}}
    path = tmp_path / "cathode_scan.json"
    path.write_text(json.dumps({"profile": "cpu-quick", "settings": SETTINGS, "seeds": [0, 1], "points": [point]}))
    return path


def _computed():
    return A.SignalFractionScan(points=[], settings={"data": "computed-here"}, seeds=[0])


def test_a_scan_read_from_a_file_is_labelled_in_text_and_figure(tmp_path):
    path = _stored(tmp_path)
    scan = S.signal_fraction_scan(str(path))
    assert scan is not None and scan.computed_here is False
    head = scan.report().splitlines()[0]
    assert head.startswith(f"scan: STORED RESULT from {path} (profile cpu-quick): not computed in this run")
    fig = scan.plot()
    assert fig.axes[0].get_title() == "Stored result: cathode_scan.json (not this run)"
    # a scan computed here says so and carries no "stored" title
    mine = A.SignalFractionScan(points=scan.points, settings=scan.settings, seeds=[0])
    assert mine.report().startswith("scan: computed in this run;")
    assert mine.plot().axes[0].get_title() == ""


def test_auto_uses_the_stored_scan_only_for_the_same_settings(tmp_path, monkeypatch):
    import hashlib
    import shutil

    import torch

    from jetlab.model import PET, PETConfig, save

    torch.manual_seed(0)
    made_with = save(PET(PETConfig.tiny(num_classes=5)), tmp_path / "made_with")
    sha = hashlib.sha256((made_with / "model.safetensors").read_bytes()).hexdigest()
    stored = _stored(tmp_path)
    doc = json.loads(stored.read_text())
    doc["settings"]["pretrained_weights_sha256"] = sha
    stored.write_text(json.dumps(doc))
    monkeypatch.setenv("JETLAB_CATHODE_SCAN", str(stored))
    calls = []
    monkeypatch.setattr(S, "scan_signal_fraction", lambda data, settings, **kw: calls.append((data, settings)) or _computed())
    same = {k: v for k, v in SETTINGS.items() if k not in ("data", "checkpoint", "device")}
    # the run's own configuration (the same weights at another path, another device): the stored scan
    elsewhere = shutil.copytree(made_with, tmp_path / "elsewhere")
    scan = S.signal_fraction_scan("auto", "lhco-mini", checkpoint=str(elsewhere), device="cpu", **same)
    assert scan is not None and scan.computed_here is False and calls == []
    # another pretrained model (what "auto" means changed when jetlab began to ship one): computed
    other = save(PET(PETConfig.tiny(num_classes=5)), tmp_path / "other")
    S.signal_fraction_scan("auto", "lhco-mini", checkpoint=str(other), device="cpu", **same)
    assert len(calls) == 1 and calls[-1][1].checkpoint == str(other)
    # a stored scan that does not say which weights it fine-tuned: computed too
    del doc["settings"]["pretrained_weights_sha256"]
    stored.write_text(json.dumps(doc))
    S.signal_fraction_scan("auto", "lhco-mini", checkpoint=str(elsewhere), device="cpu", **same)
    assert len(calls) == 2
    calls.clear()
    same["checkpoint"] = str(elsewhere)
    doc["settings"]["pretrained_weights_sha256"] = sha
    stored.write_text(json.dumps(doc))
    # the organisers' real file (cpu-quick with -p dataset lhco_rnd): computed, never the mini scan
    scan = S.signal_fraction_scan("auto", "lhco_rnd", **same)
    assert scan is not None and scan.settings == {"data": "computed-here"} and calls[-1][0] == "lhco_rnd"
    # other sizes (a paper-scale run on lhco-mini): computed too
    scan = S.signal_fraction_scan("auto", "lhco-mini", **{**same, "max_particles": 279})
    assert scan.settings == {"data": "computed-here"} and len(calls) == 2
    assert S.signal_fraction_scan("none", "lhco_rnd", **same) is None and len(calls) == 2


def test_injection_levels_print_s_over_b_and_significance_in_the_sr():
    text = S.injection_levels_text([500, 1000, 10000], {"sr_background": 50_000, "signal_sr_fraction": 0.7})
    lines = text.splitlines()
    assert lines[0] == "injection levels (SR background B = 50000, signal SR fraction 0.700):"
    # S = n x 0.7; S/B = S / 50000; S/sqrt(B) = S / 223.607
    assert lines[3] == "| 500 | 350 | 0.0070 | 1.57 |"
    assert lines[4] == "| 1000 | 700 | 0.0140 | 3.13 |"
    assert lines[5] == "| 10000 | 7000 | 0.1400 | 31.30 |"


def test_scan_injects_the_given_counts(monkeypatch):
    monkeypatch.setattr(S, "_signal_region_counts", lambda *a, **k: {
        "sr_background": 1000, "signal_sr_fraction": 0.5, "n_signal_available": 5000})
    injected = []

    class _Split:
        def __init__(self, n):
            self.n = n

        def summary(self, windows):
            return {"sr_s_over_b": 0.5 * self.n / 1000, "sr_s_over_sqrt_b": 0.5 * self.n / 1000 ** 0.5}

    class _Result:
        def __init__(self, n):
            self.split, self.windows = _Split(n), None

        def metrics_table(self):
            return {"CATHODE scratch": {"max_sic": [1.2, 0.1]}}

        def closeness(self):
            return {}

    def fake_run(data, settings, *, progress=True):
        injected.append(settings.n_signal)
        return _Result(settings.n_signal)

    monkeypatch.setattr(S, "run_anomaly", fake_run)
    scan = S.scan_signal_fraction("lhco_rnd", n_injected=[500, 2000, 100], seeds=[0], progress=False)
    assert injected == [2000, 500, 100]  # highest S/B first
    assert [p["n_injected"] for p in scan.points] == [2000, 500, 100]
    assert [p["sr_s_over_b"] for p in scan.points] == [1.0, 0.25, 0.05]
    with pytest.raises(ValueError, match="n_injected must be positive"):
        S.scan_signal_fraction("lhco_rnd", n_injected=[0], seeds=[0], progress=False)
