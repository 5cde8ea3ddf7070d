"""Rehearsal of the paper-scale path: `jetlab run --all --profile paper` (and `gpu-hour`) on replicas
of the published datasets, laid out where `jetlab data fetch` puts them, with sizes overridden.

This is the test that catches a notebook that only ever met the generated stand-ins: every
notebook reads the real dataset *names* of the profiles (jetclass, atlas_toptag record 15013,
omnifold_zjets, lhco_rnd) through the one resolver, in the publishers' own file formats, with the
profiles' own recipes (Lion, the reference learning rates, 279 LHCO particles, notebook 04's own
scan at given injection levels) and the cost table printed first.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
from fixtures_formats import write_replica

pytestmark = [pytest.mark.slow, pytest.mark.notebook]

ROOT = Path(__file__).resolve().parents[1]

#: size overrides: each applies to every notebook that declares the parameter (as `-p` does)
OVERRIDES = {
    "device": "cpu", "n_jets": 240, "epochs": 1, "batch_size": 32, "model": "tiny", "jet_epochs": 5,
    "gen_steps": 2, "n_generate": 20, "fractions": "[1.0]", "seeds": "[0]", "n_iterations": 2,
    "n_bootstrap": 2, "max_particles": 16, "n_events": 500, "n_signal": 20,
    "gen_epochs": 1, "jet_gen_epochs": 3, "oversample": 1, "kfolds": 2, "min_background_events": 3,
}
#: the paper profile computes its own scan at injection levels: two small ones on the replica
SCAN_LEVELS = "[10, 20]"


@pytest.mark.parametrize("profile", ["paper", "gpu-hour"])
def test_profile_runs_every_notebook_on_replicas_of_the_real_datasets(tmp_path, profile):
    data = tmp_path / "data"
    replicas = {
        "jetclass": write_replica("jetclass", data / "jetclass", n_jets=120),
        # record 15013 (train.h5 / test.h5), the release both profiles name
        "atlas_toptag": write_replica("atlas_toptag", data / "atlas_toptag", n_jets=300, legacy=True),
        "omnifold_zjets": write_replica("omnifold_zjets", data / "omnifold_zjets", n_jets=340),
        "lhco_rnd": write_replica("lhco_rnd", data / "lhco_rnd", n_jets=500, complib="blosc"),
    }
    out = tmp_path / "out"
    env = dict(os.environ, JETLAB_DATA=str(data), JETLAB_CACHE=str(tmp_path / "cache"), JETLAB_HEADLESS="1",
               MPLBACKEND="Agg")
    env.pop("JETLAB_CHECKPOINT", None)
    cmd = [sys.executable, "-m", "jetlab.cli.main", "run", "--all", "--profile", profile, "--out", str(out),
           "--notebook-dir", str(ROOT / "notebooks"), "--quiet"]
    overrides = dict(OVERRIDES, **({"scan_n_signal": SCAN_LEVELS} if profile == "paper" else {}))
    for name, value in overrides.items():
        cmd += ["-p", name, str(value)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1500)
    wall = time.perf_counter() - t0
    assert proc.returncode == 0, f"jetlab run --all --profile {profile} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}"
    print(f"rehearsal ({profile}) wall time: {wall:.0f} s")
    # the cost came first, for the overridden sizes: well under the --yes threshold
    assert f"jetlab plan (profile {profile}):" in proc.stderr
    assert "fetch atlas_toptag subsets legacy_train, legacy_test" in proc.stderr

    expected = {"00_quickstart": None, "01_pretraining": "jetclass", "02_top_tagging": "atlas_toptag",
                "03_omnifold_unfolding": "omnifold_zjets", "04_lhco_anomaly_detection": "lhco_rnd"}
    for stem, dataset in expected.items():
        run_dir = out / stem
        assert (run_dir / f"{stem}.ipynb").is_file(), f"{stem}: no executed notebook in {run_dir}"
        info = json.loads((run_dir / "run_info.json").read_text())
        metrics = list(run_dir.glob("*.json"))
        assert any(p.name != "run_info.json" for p in metrics) or stem == "00_quickstart", f"{stem}: no metrics written"
        if dataset is not None:
            assert info["parameters"]["dataset"] == dataset
    params04 = json.loads((out / "04_lhco_anomaly_detection" / "run_info.json").read_text())["parameters"]
    assert params04["optimizer"] == "lion" and params04["lr"] == pytest.approx(3e-5)
    # the published data went through the resolver: one schema file per raw file, every split
    for name, rep in replicas.items():
        for split, files in rep.files.items():
            if split.endswith("features"):
                continue
            if name == "jetclass":  # the raw files are the ROOT files inside the tarballs
                n_raw = sum(len([m for m in tarfile.open(f).getnames() if m.endswith(".root")]) for f in files)
            else:
                n_raw = len(files)
            converted = sorted((data / name / "schema" / split).glob("*.h5"))
            assert len(converted) == n_raw, f"{name}/{split}: {len(converted)} schema files for {n_raw} raw files"
    # notebook 02 trained on record 15013's training jets and tested on its whole test file
    tagging = json.loads((out / "02_top_tagging" / "metrics.json").read_text())
    settings = tagging.get("settings", tagging)
    assert settings["n_test"] == replicas["atlas_toptag"].n("test")
    assert "record 15013" in settings["data_release"]
    # notebook 03 unfolded every Z+jets file: all 17 npz per generator
    assert len(list((data / "omnifold_zjets" / "schema" / "Pythia21").glob("*.h5"))) == 17
    # notebook 04: paper computes its own scan at the given levels; gpu-hour shows none; neither the stored one
    nb04 = (out / "04_lhco_anomaly_detection" / "04_lhco_anomaly_detection.ipynb").read_text()
    assert "STORED RESULT" not in nb04
    scan_file = out / "04_lhco_anomaly_detection" / "signal_fraction_scan.json"
    if profile == "paper":
        scan = json.loads(scan_file.read_text())
        assert sorted(p["n_injected"] for p in scan["points"]) == [10, 20]
        assert "scan: computed in this run" in nb04 and "injection levels (SR background B = " in nb04
        assert (out / "04_lhco_anomaly_detection" / "signal_fraction_scan.png").is_file()
    else:
        assert not scan_file.exists() and not (out / "04_lhco_anomaly_detection" / "signal_fraction_scan.png").exists()
        assert "no signal-fraction scan in this run" in nb04
