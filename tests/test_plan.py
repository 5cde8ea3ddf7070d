"""jetlab.plan / ``jetlab run --plan`` and the ``--yes`` gate: the planner's arithmetic against
numbers computed by hand from the measured rates (written out below, not taken from the module),
the shipped paper / gpu-hour profiles' plans, and a run that refuses to start without --yes."""

from __future__ import annotations

from pathlib import Path

import pytest

from jetlab import plan, runner
from jetlab.cli.main import main as cli_main
from jetlab.runner import ParameterError

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"

# The rates, copied by hand from benchmarks/results/gpu_check_h200_2026-11-28_run2.json ("speed"):
# PET paper fp32 training 8655 jets/s, TF32 inference 35950 jets/s; PET small bf16 pretraining step
# 5469 jets/s vs its bf16 classifier step 8841 jets/s; all at 128 particles. H100 = H200 x 4.8 / 3.35.
H100_FACTOR = 4.8 / 3.35


def test_rates_are_the_committed_measurements():
    import json

    runs = json.loads(Path(plan.GPU_RATES_SOURCE.split()[0]).read_text())["sections"]["speed"]["result"]["runs"]
    rate = {(r["model"], r["mode"], r["precision"]): r["jets_per_s"] for r in runs}
    assert plan.H200_TRAIN_JETS_PER_S_PET_PAPER == pytest.approx(rate[("pet-paper", "train", "fp32")], abs=0.5)
    assert plan.H200_TRAIN_JETS_PER_S_PET_SMALL == pytest.approx(rate[("pet-small", "train", "fp32")], abs=0.5)
    assert plan.H200_INFER_JETS_PER_S_PET_PAPER == pytest.approx(rate[("pet-paper", "infer", "fp32+tf32")], abs=0.5)
    ratio = rate[("pet-small-pretrain", "train", "bf16")] / rate[("pet-small", "train", "bf16")]
    assert plan.PRETRAIN_STEP_SPEED_RATIO == pytest.approx(ratio, rel=1e-3)
    assert plan.H100_TIME_PER_H200_TIME == pytest.approx(1.4328, abs=1e-4)


def test_pretraining_estimate_by_hand():
    params = dict(dataset="jetclass", n_jets=1_000_000, epochs=10, model="paper", n_generate=10_000, gen_steps=64)
    cost = plan.estimate_notebook("01_pretraining", params)
    # training: 1e6 jets x 10 epochs at 8655 x 128/150 x (5469/8841) jets/s (JetClass: 150 slots)
    train_rate = 8655 * 128 / 150 * 5469 / 8841  # = 4570.2 jets/s
    # validation 50,000 jets per epoch, generation 10,000 jets x 64 DDIM steps, at 35950 x 128/150
    infer_rate = 35950 * 128 / 150  # = 30677 jets/s
    seconds = 1e7 / train_rate + (50_000 * 10 + 10_000 * 64) / infer_rate  # 2188.1 + 37.2 s
    assert cost.train_jet_epochs == 1e7
    assert cost.h200_gpu_hours == pytest.approx(seconds / 3600, rel=1e-9)
    assert cost.h200_gpu_hours == pytest.approx(0.6182, abs=1e-3)
    assert cost.h100_gpu_hours == pytest.approx(0.6182 * H100_FACTOR, abs=2e-3)
    # every fetched JetClass jet is converted: 125M jets at 402 jets per core-second (results/readers.json)
    assert cost.conversion_core_hours == pytest.approx(125e6 / 402 / 3600, rel=1e-9)  # 86.4
    # disk: 125M rows x (150 slots x 14 features + 7) x 4 bytes, uncompressed
    assert cost.disk_bytes == 125_000_000 * (150 * 14 + 7) * 4
    # classifier-free guidance evaluates the head twice per DDIM step (class and null label): 10,000 x 64 more passes
    guided = plan.estimate_notebook("01_pretraining", {**params, "gen_guidance": 4.0})
    assert guided.h200_gpu_hours == pytest.approx((seconds + 10_000 * 64 / infer_rate) / 3600, rel=1e-9)


def test_tagging_estimate_by_hand_on_record_15013():
    params = dict(dataset="atlas_toptag", n_jets=1_000_000, fractions=[1.0, 0.1], seeds=[0], epochs=7)
    ctx = {"model": "paper", "fetch": {"atlas_toptag": ["legacy_train", "legacy_test"]}}
    cost = plan.estimate_notebook("02_top_tagging", params, context=ctx)
    # train pool 75% of 1M = 750k; (1.0 + 0.1) x 750k x 7 epochs x 3 models
    assert cost.train_jet_epochs == pytest.approx(1.1 * 750_000 * 7 * 3)  # 17,325,000
    # validation: (250k + 25k) x 7 epochs x 3 models; test: 2.5M (record 15013) x 2 fractions x 3 models
    seconds = 17_325_000 / (8655 * 128 / 120) + (275_000 * 7 * 3 + 2_500_000 * 2 * 3) / (35950 * 128 / 120)
    assert cost.h200_gpu_hours == pytest.approx(seconds / 3600, rel=1e-9)  # 0.672 h
    assert cost.h100_gpu_hours == pytest.approx(seconds / 3600 * H100_FACTOR, rel=1e-9)
    # record 15013 alone is converted: ~42M + 2.5M jets at 4418 per core-second
    assert cost.conversion_core_hours == pytest.approx(44.5e6 / 4418 / 3600, rel=1e-9)
    # the manifest's rounded sizes of train.h5 (130 GB) and test.h5 (7.6 GB)
    assert cost.fetch_bytes == 130_000_000_000 + 7_600_000_000
    # the 2024 release instead: its 1033 shards have no size in the manifest
    other = plan.estimate_notebook("02_top_tagging", params, context={"model": "paper"})
    assert other.fetch_unknown_files == 929 + 104 and other.fetch_bytes == 0


def test_omnifold_estimate_by_hand():
    params = dict(dataset="omnifold_zjets", n_jets=250_000, n_iterations=6, epochs=2, max_particles=101,
                  classifiers=["pretrained", "scratch", "mlp"], seeds=[0, 1])
    cost = plan.estimate_notebook("03_omnifold_unfolding", params, context={"model": "paper"})
    # 2 PETs x [6 iterations x 2 steps x 500k rows x 2 epochs + 1 extra seed x 500k x 2 epochs]; MLP free
    assert cost.train_jet_epochs == 2 * (6 * 2 * 500_000 * 2 + 1 * 500_000 * 2)  # 26,000,000
    seconds = 26e6 / (8655 * 128 / 101) + (2 * 6 * 2 * 500_000) / (35950 * 128 / 101)
    assert cost.h200_gpu_hours == pytest.approx(seconds / 3600, rel=1e-9)


def test_a_dataset_is_fetched_and_converted_once_per_series():
    costs = plan.estimate([("01_pretraining", {"dataset": "jetclass", "n_jets": 10, "epochs": 1}),
                           ("01_pretraining", {"dataset": "jetclass", "n_jets": 10, "epochs": 1})])
    assert costs[0].conversion_core_hours > 40 and costs[1].conversion_core_hours == 0.0
    assert costs[1].fetch_text == "(fetched above)"


def _plans(profile: str):
    return [runner.plan_run(nb, profile=profile, out=f"/tmp/plan-{profile}-{nb.stem}", check_kernel=False)
            for nb in sorted(runner.find_notebooks(NOTEBOOKS), key=lambda p: (p.stem != "01_pretraining", p.name))]


def test_gpu_hour_fits_about_one_gpu_hour_per_notebook_and_paper_needs_yes():
    hour = runner.estimate_costs(_plans("gpu-hour"), "gpu-hour")
    assert {c.notebook for c in hour} == {p.stem for p in runner.find_notebooks(NOTEBOOKS)}
    for c in hour:
        assert c.h100_gpu_hours <= 1.05, (c.notebook, c.h100_gpu_hours)
    assert max(c.h100_gpu_hours for c in hour) > 0.85  # the largest subset that fits, not a token run
    paper = runner.estimate_costs(_plans("paper"), "paper")
    by_nb = {c.notebook: c for c in paper}
    # 100M JetClass jets x 200 epochs of pretraining: over a thousand H100 GPU-hours
    assert by_nb["01_pretraining"].train_jet_epochs == 100_000_000 * 200
    assert by_nb["01_pretraining"].h100_gpu_hours > 1000
    assert plan.needs_confirmation(paper) and plan.needs_confirmation(hour)
    assert not plan.needs_confirmation(runner.estimate_costs(_plans("ci-tiny"), "ci-tiny"))


def test_plan_prints_the_table_and_runs_nothing(tmp_path, capsys):
    out = tmp_path / "never"
    assert cli_main(["run", "--all", "--profile", "paper", "--plan", "--out", str(out),
                     "--notebook-dir", str(NOTEBOOKS)]) == 0
    text = capsys.readouterr().out
    head = next(line for line in text.splitlines() if line.startswith("notebook"))
    for column in ("fetch", "disk GB", "conv. core-h", "train jet-epochs", "H200 GPU-h", "H100 GPU-h"):
        assert column in head
    rows = [line for line in text.splitlines() if line.startswith(("00_", "01_", "02_", "03_", "04_"))]
    assert [r.split()[0] for r in rows] == ["01_pretraining", "00_quickstart", "02_top_tagging",
                                            "03_omnifold_unfolding", "04_lhco_anomaly_detection"]
    assert "fetch atlas_toptag subsets legacy_train, legacy_test" in text  # record 15013
    assert "gpu_check_h200_2026-11-28_run2.json" in text and "x 1.43" in text
    assert not out.exists()


def test_run_over_two_gpu_hours_refuses_without_yes(tmp_path, capsys):
    out = tmp_path / "never"
    code = cli_main(["run", "--all", "--profile", "gpu-hour", "--out", str(out), "--notebook-dir", str(NOTEBOOKS)])
    captured = capsys.readouterr()
    assert code == 2
    assert "H100 GPU-hours (over 2); nothing was started" in captured.err and "--yes" in captured.err
    assert "jetlab plan (profile gpu-hour)" in captured.err  # the cost came first
    assert not out.exists()
    # with --yes the gate lets the same plans through (the run itself is not started here)
    costs = runner.gate_on_cost(_plans("gpu-hour"), "gpu-hour", yes=True)
    assert sum(c.h100_gpu_hours for c in costs) > 2
    with pytest.raises(ParameterError, match="nothing was started"):
        runner.gate_on_cost(_plans("gpu-hour"), "gpu-hour", yes=False)


def test_record_15013_profile_refuses_when_80030_shards_would_be_read(tmp_path):
    atlas = tmp_path / "atlas_toptag"
    atlas.mkdir()
    (atlas / "train.h5").write_bytes(b"")
    (atlas / "test.h5").write_bytes(b"")
    fetch = {"atlas_toptag": ["legacy_train", "legacy_test"]}
    assert plan.check_release(fetch, atlas) == []
    (atlas / "train_nominal_000.h5.gz").write_bytes(b"")
    problems = plan.check_release(fetch, atlas)
    assert len(problems) == 1 and "record 80030 shard(s) (e.g. train_nominal_000.h5.gz)" in problems[0]
    assert plan.check_release({"atlas_toptag": ["train", "test"]}, atlas) == []  # 80030 wanted: fine
