"""jetlab.tasks.anomaly.scan: max SIC against the injected S/B, and the rule for "finds the signal"."""

from __future__ import annotations

import json
import types

import numpy as np
import pytest
from test_anomaly import fake_events

from jetlab.tasks import anomaly as A
from jetlab.tasks.anomaly import scan as S


def _point(sb, n_bkg, methods, p95):
    return {"sr_s_over_b": sb, "sr_s_over_sqrt_b": sb * n_bkg / np.sqrt(n_bkg), "n_injected": int(sb * n_bkg),
            "sr_background": n_bkg, "random_max_sic": [1.0, p95],
            "methods": {m: {"max_sic": list(v)} for m, v in methods.items()}}


def _hand_scan():
    # random-score 95th percentiles as the saved cpu-quick scan has them
    return A.SignalFractionScan(points=[
        _point(0.05, 335, {"A": (1.30, 0.01), "B": (1.00, 0.01), "edge": (1.17, 0.01)}, 1.16),
        _point(0.5, 335, {"A": (2.00, 0.10), "B": (1.00, 0.01), "edge": (1.51, 0.50)}, 1.01),
        _point(0.1, 335, {"A": (1.10, 0.05), "B": (1.02, 0.01), "edge": (1.20, 0.10)}, 1.07),
        _point(0.2, 335, {"A": (1.50, 0.10), "B": (1.00, 0.02), "edge": (1.40, 0.30)}, 1.04),
    ])


def test_lowest_found_scans_down_from_the_highest_signal_fraction():
    scan = _hand_scan()
    assert [p["sr_s_over_b"] for p in scan.points] == [0.5, 0.2, 0.1, 0.05]  # sorted, highest first
    # A: 1.9 > 1.01, 1.4 > 1.04, but 1.05 < 1.07 at S/B 0.1: found down to 0.2, although 0.05 clears
    # its band again (a point below a miss does not count)
    assert scan.lowest_found("A") == 0.2
    # B is a score without information: never beyond the random band
    assert scan.lowest_found("B") is None
    # edge: 1.51 - 0.50 = 1.01 equals the band: not beyond it
    assert scan.lowest_found("edge") is None
    lines = scan.summary().splitlines()
    assert lines[0] == "A: finds the signal down to S/B = 0.200; stops at S/B = 0.100"
    assert lines[1].startswith("B: does not find the signal at any scanned S/B")
    assert "| 0.200 (67) |" in scan.table() and "1.50 ± 0.10" in scan.table()


def test_random_score_reaches_above_one_with_few_signal_events_and_about_one_with_many():
    few = S.random_max_sic(335, 17, trials=200)
    many = S.random_max_sic(3000, 3000, trials=40)
    # a random score has SIC = sqrt(eps_S) <= 1: with many events its max is 1 up to fluctuations ...
    assert abs(many[0] - 1.0) < 0.02
    # ... with 17 signal events the best cut finds upward fluctuations well above that
    assert few[0] > 1.03 and few[1] > few[0] + 0.03


def test_scan_round_trips_through_its_json_and_bad_files_are_named(tmp_path):
    scan = _hand_scan()
    path = scan.save(tmp_path / "scan.json", profile="cpu-quick")
    back = A.SignalFractionScan.load(path)
    assert back.source == str(path) and back.meta == {"profile": "cpu-quick"}
    assert [p["methods"]["A"]["max_sic"] for p in back.points] == [p["methods"]["A"]["max_sic"] for p in scan.points]
    assert json.loads(path.read_text())["lowest_sb_found"] == {"A": 0.2, "B": None, "edge": None}
    empty = tmp_path / "empty.json"
    empty.write_text("{}")
    with pytest.raises(ValueError, match="empty.json has no 'points'"):
        A.SignalFractionScan.load(empty)
    with pytest.raises(ValueError, match="cannot read .*missing.json"):
        A.SignalFractionScan.load(tmp_path / "missing.json")
    with pytest.raises(ValueError, match=r"point 0 lacks \['n_injected'"):
        A.SignalFractionScan(points=[{"sr_s_over_b": 0.1}])
    with pytest.raises(FileNotFoundError, match="nope.json' is not a file"):
        A.signal_fraction_scan(str(tmp_path / "nope.json"))


def test_scan_plot_draws_one_line_per_method_above_the_random_band():
    fig = _hand_scan().plot()
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[0] == "random score (95%)"
    assert "A (finds it down to S/B 0.2)" in labels and "B (never beyond random)" in labels
    assert len(ax.collections) >= 1  # the grey band


def test_saved_scan_is_found_from_the_working_directory_or_the_environment(tmp_path, monkeypatch):
    saved = tmp_path / S.SAVED_SCAN
    _hand_scan().save(saved)
    monkeypatch.delenv("JETLAB_CATHODE_SCAN", raising=False)
    assert S.find_saved_scan(tmp_path / "notebooks") == saved
    monkeypatch.setenv("JETLAB_CATHODE_SCAN", str(tmp_path / "elsewhere.json"))
    with pytest.raises(FileNotFoundError, match="JETLAB_CATHODE_SCAN"):
        S.find_saved_scan(tmp_path)


def _fake_search(monkeypatch, events):
    """Replace the search by one that records (n_signal, realised SR S/B) and returns a fixed table."""
    monkeypatch.setattr(S, "load_dijets", lambda *a, **k: events)
    seen = []

    def fake_run_anomaly(data, settings, *, progress=True):
        n_signal = settings.n_signal
        split = A.inject_signal(events, n_signal, seed=settings.seed)
        win = A.MassWindows()
        sr = win.in_sr(split.data.mjj)
        realised = (split.data.labels[sr] == 1).sum() / (split.data.labels[sr] == 0).sum()
        seen.append((n_signal, realised))
        table = {"CATHODE scratch": {"max_sic": (1.2, 0.1), "auc": (0.6, 0.0), "max_sic_per_seed": [1.2]}}
        return types.SimpleNamespace(split=split, windows=win, metrics_table=lambda: table, closeness=lambda: {})

    monkeypatch.setattr(S, "run_anomaly", fake_run_anomaly)
    return seen


def test_scan_injects_the_signal_that_gives_each_target_sb(monkeypatch, tmp_path):
    """The injected amount realises the requested S/B in the pseudo-data's SR (counted here on the
    split the search would see), and a target needing more signal than the file holds is refused."""
    events = fake_events(n_bkg=2000, n_sig=400, seed=3)
    seen = _fake_search(monkeypatch, events)
    scan = A.scan_signal_fraction("fake", sb_targets=[0.05, 0.3], seeds=[0], n_events=2400, seed=1)
    n_b_sr = (A.MassWindows().in_sr(A.inject_signal(events, 0, seed=1).data.mjj)).sum()
    for (n_signal, realised), target in zip(seen, (0.3, 0.05)):
        assert abs(realised - target) < 2.0 / n_b_sr, (n_signal, realised, target)
    assert [p["target_sb"] for p in scan.points] == [0.3, 0.05]
    with pytest.raises(ValueError, match="needs .* signal events, 'fake' has 400"):
        A.scan_signal_fraction("fake", sb_targets=[50.0], seeds=[0], n_events=2400)
    with pytest.raises(TypeError, match="'n_signal' is set by the scan"):
        A.scan_signal_fraction("fake", n_signal=3)


def test_an_interrupted_scan_resumes_with_only_the_missing_points_and_refuses_other_settings(monkeypatch, tmp_path):
    """What a partial file holds is not rerun; points made with other settings or seeds are never
    mixed into one curve."""
    events = fake_events(n_bkg=2000, n_sig=400, seed=3)
    seen = _fake_search(monkeypatch, events)
    first = A.scan_signal_fraction("fake", sb_targets=[0.3], seeds=[0, 1], n_events=2400, epochs=2)
    first.save(tmp_path / "partial.json", profile="cpu-quick")
    partial = A.SignalFractionScan.load(tmp_path / "partial.json")
    n_before = len(seen)
    scan = A.scan_signal_fraction("fake", sb_targets=[0.3, 0.1, 0.05], seeds=[0, 1], n_events=2400, epochs=2,
                                  resume=partial)
    assert len(seen) == n_before + 2  # 0.1 and 0.05 only
    realised = [r for _, r in seen[n_before:]]
    assert abs(realised[0] - 0.1) < 0.02 and abs(realised[1] - 0.05) < 0.02, realised
    assert [p["target_sb"] for p in scan.points] == [0.3, 0.1, 0.05]
    assert scan.points[0]["seconds"] == partial.points[0]["seconds"]
    assert scan.meta["profile"] == "cpu-quick"
    with pytest.raises(ValueError, match=r"cannot resume .*partial.json.*epochs: 2 there, 3 now"):
        A.scan_signal_fraction("fake", sb_targets=[0.1], seeds=[0, 1], n_events=2400, epochs=3, resume=partial)
    with pytest.raises(ValueError, match=r"seeds: \[0, 1\] there, \[0\] now"):
        A.scan_signal_fraction("fake", sb_targets=[0.1], seeds=[0], n_events=2400, epochs=2, resume=partial)
