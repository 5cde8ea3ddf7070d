"""benchmarks/gpu_check.py: the CPU smoke run of the GPU check (so the script cannot rot between GPU
sessions) and its pure helpers (ratios, targets, attention verdict, wheel list, data plan)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"
sys.path.insert(0, str(SCRIPT.parent))
import gpu_check  # noqa: E402


def _positive(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> tuple[Path, dict, subprocess.CompletedProcess]:
    """One ``--device cpu --smoke`` run (isolated data cache) shared by the checks below."""
    tmp = tmp_path_factory.mktemp("gpu_check")
    out = tmp / "out"
    env = dict(os.environ, MPLBACKEND="Agg")
    proc = subprocess.run([sys.executable, str(SCRIPT), str(out), "--device", "cpu", "--smoke", "--cache",
                           str(tmp / "cache"), "--workers", "2"], capture_output=True, text=True, env=env, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out, json.loads((out / "summary.json").read_text()), proc


def test_smoke_run_writes_few_files_and_every_section_succeeds(smoke):
    out, summary, proc = smoke
    # the device tool returns at most 8 files: everything else is packed into one archive
    assert sorted(p.name for p in out.iterdir()) == ["artifacts.tar.gz", "gpu_check.log", "summary.json", "summary.md"]
    assert list(summary["sections"]) == list(gpu_check.SECTIONS)
    assert {n: s["status"] for n, s in summary["sections"].items()} == {n: "ok" for n in gpu_check.SECTIONS}
    env = summary["sections"]["env"]["result"]
    assert env["device"] == "cpu" and env["torch"] == torch.__version__ and env["cuda"] == torch.version.cuda
    # device, torch and CUDA versions are printed, and the markdown summary comes last
    assert f"torch {torch.__version__}; CUDA {torch.version.cuda}" in proc.stdout
    md = (out / "summary.md").read_text()
    assert proc.stdout.rstrip().endswith(md.rstrip())
    for heading in ("## Model speed", "## Attention kernel", "## Pretraining run", "## DDP", "## Notebooks"):
        assert heading in md


def test_smoke_speed_numbers_and_ratios_are_consistent(smoke):
    _, summary, _ = smoke
    sp = summary["sections"]["speed"]["result"]
    runs = {(r["model"], r["mode"], r["precision"]): r for r in sp["runs"]}
    for model in ("pet-small", "pet-paper", "part"):
        for mode in ("train", "infer"):
            for precision in ("fp32", "bf16"):
                r = runs[(model, mode, precision)]
                assert "error" not in r, r
                assert _positive(r["jets_per_s"]) and len(r["repeats"]) == 2 and all(map(_positive, r["repeats"]))
                assert r["jets_per_s"] == pytest.approx(sorted(r["repeats"])[0] / 2 + sorted(r["repeats"])[1] / 2)
    assert runs[("pet-small", "train", "fp32")]["params"] == 903_953  # PETConfig.small(num_classes=10)
    assert _positive(runs[("pet-small-pretrain", "train", "bf16")]["jets_per_s"])
    # every PET/ParT ratio is the quotient of the two jets/s of the same run
    assert len(sp["ratios"]) == 8
    for r in sp["ratios"]:
        expected = runs[(r["model"], r["mode"], r["precision"])]["jets_per_s"] / runs[("part", r["mode"], r["precision"])]["jets_per_s"]
        assert r["ratio_vs_part"] == pytest.approx(expected, rel=1e-12)
    paper = sp["targets"]["paper_over_part_train_bf16"]
    assert paper["values"]["bf16"] == pytest.approx(runs[("pet-paper", "train", "bf16")]["jets_per_s"]
                                                    / runs[("part", "train", "bf16")]["jets_per_s"])
    assert sp["compile_note"].startswith("skipped: torch.compile on a CPU")
    assert "not judged: CPU smoke run" in (smoke[0] / "summary.md").read_text()


def test_smoke_attention_forces_each_kernel(smoke):
    _, summary, _ = smoke
    res = summary["sections"]["attention"]["result"]["models"]["pet-small"]
    # torch's CPU dispatch: the fused flash kernel for CPU; forcing MATH really runs the math path
    assert res["default_backend"] == {"train": "flash (cpu)", "infer": "flash (cpu)"}
    assert res["runs"]["default"]["used"] == "flash (cpu)" and res["runs"]["FLASH_ATTENTION"]["used"] == "flash (cpu)"
    assert res["runs"]["MATH"]["used"] == "math"
    for b in ("default", "FLASH_ATTENTION", "MATH"):
        assert _positive(res["runs"][b]["jets_per_s"])
    for b in ("EFFICIENT_ATTENTION", "CUDNN_ATTENTION"):  # CUDA-only kernels
        assert "No viable backend" in res["runs"][b]["error"]
    best = max(("FLASH_ATTENTION", "MATH"), key=lambda b: res["runs"][b]["jets_per_s"])
    assert res["best_backend"] == best
    assert res["best_over_default"] == pytest.approx(res["runs"][best]["jets_per_s"] / res["runs"]["default"]["jets_per_s"])
    # every kernel's logits against the math kernel in fp32: fp32 kernels agree to float rounding, bf16
    # ones to bf16 rounding (a few 1e-3), and the CUDA-only kernels are reported as refused
    ag = res["agreement"]
    assert ag["default fp32"]["max_rel_diff"] < 1e-5 and ag["FLASH_ATTENTION fp32"]["max_rel_diff"] < 1e-5
    assert 1e-5 < ag["MATH bf16"]["max_rel_diff"] < 5e-2 and "MATH fp32" not in ag
    assert "No viable backend" in ag["EFFICIENT_ATTENTION fp32"]["error"]


def test_smoke_pretraining_ddp_and_notebook(smoke):
    out, summary, _ = smoke
    pr = summary["sections"]["pretraining"]["result"]
    assert pr["n_jets"] == 200 and pr["n_train"] == 160 and pr["epochs_run"] == 1 and pr["steps"] >= 1
    # generated jets are constrained as the profile's notebook 01 constrains them (the W1 is notebook 01's)
    profile = yaml.safe_load((ROOT / "jetlab" / "profiles" / "ci-tiny.yaml").read_text())
    assert pr["recipe"]["gen_constraints"] == profile["01_pretraining"]["gen_constraints"] == ["pt", "mass", "detector"]
    assert _positive(pr["train_jets_per_s"])
    # summary.json holds no machine's paths: the run's own files below <out>, the rest outside the repo
    assert pr["checkpoint"] == "<out>/work/pretraining/checkpoint"
    assert pr["file"].startswith("<outside repo>/") and not pr["file"].startswith("<outside repo>/tmp")
    for obs in ("jet_mass", "multiplicity"):
        assert _positive(pr["w1"][obs]["generated"]) and _positive(pr["w1"][obs]["real_floor"])
    dd = summary["sections"]["ddp"]["result"]["phases"]["pretrain"]
    assert dd["max_rel_loss_diff"] < 1e-5 and dd["find_unused_parameters"] is False
    assert summary["sections"]["ddp"]["result"]["ddp_warning_lines"] == 0
    nb = summary["sections"]["notebooks"]["result"]["notebooks"]
    assert [(r["notebook"], r["status"]) for r in nb] == [("00_quickstart", "ok")] and _positive(nb[0]["wall_s"])
    with tarfile.open(out / "artifacts.tar.gz") as tar:
        names = tar.getnames()
        executed = json.load(tar.extractfile("work/notebooks/00_quickstart/00_quickstart.ipynb"))
        metrics = json.load(tar.extractfile("work/notebooks/00_quickstart/metrics.json"))
    assert "work/pretraining/checkpoint/model.safetensors" in names and "work/ddp/two.json" in names
    assert not any(n.endswith(".pt") or "train_state" in n for n in names)
    # the notebook really ran (every code cell executed) with the pretraining section's checkpoint
    code = [c for c in executed["cells"] if c["cell_type"] == "code"]
    assert code and all(c["execution_count"] for c in code)
    injected = "".join(next(c for c in code if "injected-parameters" in c["metadata"].get("tags", []))["source"])
    assert str(out / "work" / "pretraining" / "checkpoint") in injected
    assert nb[0]["metrics"] and all(metrics[k] == v for k, v in nb[0]["metrics"].items())


def test_smoke_pretraining_accuracy_is_the_checkpoints_own(smoke, tmp_path):
    """The reported accuracy and chance level, recomputed here from the archived checkpoint on the
    run's test jets (run_pretraining's split: 0.8/0.1/0.1 with seed 0, the first n_generate test jets):
    another split's jets fail (seed 1: 0.25 against 0.35), as would another model or class column. (One
    epoch on 160 jets need not beat chance, and a model that predicts one class scores the same on
    shuffled labels, so no margin over chance is asserted here; the pretraining tests assert one.)"""
    from jetlab.data.schema import read_jetset
    from jetlab.data.torchdata import JetDataset, split_indices
    from jetlab.model import load
    from jetlab.train.finetune import predict

    out, summary, _ = smoke
    pr = summary["sections"]["pretraining"]["result"]
    with tarfile.open(out / "artifacts.tar.gz") as tar:
        members = [m for m in tar.getmembers() if m.name.startswith("work/pretraining/checkpoint/")]
        tar.extractall(tmp_path, members=members, filter="data")
    model = load(tmp_path / "work" / "pretraining" / "checkpoint")
    (data_file,) = (out.parent / "cache").glob(f"jetclass-mini-n{pr['n_jets']}-s0*.h5")
    assert pr["file"].endswith("/" + data_file.name)
    js = read_jetset(data_file)
    n = len(js)
    _, _, test_idx = split_indices(n, (0.8, 0.1, 0.1), seed=0)
    test = js.subset(test_idx[: gpu_check.SMOKE.pretrain_n_generate])
    assert pr["n_test_evaluated"] == len(test) == 20
    probs = predict(model, JetDataset(test, standardizer=model.card.get_standardizer()))
    truth = np.asarray(test.labels)
    assert pr["accuracy"] == pytest.approx(np.mean(np.argmax(probs, -1) == truth), abs=1e-12)
    assert pr["chance_accuracy"] == pytest.approx(np.bincount(truth).max() / len(truth), abs=1e-12)


# ---------------------------------------------------------------------------- helpers, in process
def _ctx(tmp_path, seconds=60.0):
    import argparse
    import time

    return gpu_check.Context(argparse.Namespace(), gpu_check.SMOKE, torch.device("cpu"), tmp_path, tmp_path,
                             time.monotonic() + seconds, gpu_check.Log(None))


def test_a_failing_section_is_reported_and_the_next_one_runs(tmp_path):
    ctx = _ctx(tmp_path)

    def broken(ctx):
        raise FileNotFoundError("no such dataset")

    bad = gpu_check.run_section("speed", broken, ctx)
    good = gpu_check.run_section("env", lambda ctx: {"device_name": "H100"}, ctx)
    assert bad["status"] == "failed" and bad["error"] == "FileNotFoundError: no such dataset"
    assert "broken" in bad["traceback"] and good == {"status": "ok", "result": {"device_name": "H100"},
                                                     "seconds": good["seconds"]}
    late = gpu_check.run_section("notebooks", lambda ctx: {}, _ctx(tmp_path, seconds=1.0))
    assert late["status"] == "skipped" and "time budget spent" in late["reason"]
    md = gpu_check.render_markdown({"device": "cuda", "smoke": False, "budget_minutes": 6.5, "wall_s": 3.0,
                                    "sections": {"env": good, "speed": bad, "notebooks": late}})
    assert "- device: **H100**" in md and "| speed | failed: FileNotFoundError: no such dataset |" in md
    assert "| notebooks | skipped: time budget spent" in md and "## Model speed" not in md


def test_ratios_and_targets_from_hand_made_runs():
    runs = [
        {"model": "pet-paper", "mode": "train", "precision": "bf16", "jets_per_s": 1250.0},
        {"model": "part", "mode": "train", "precision": "bf16", "jets_per_s": 1000.0},
        {"model": "pet-paper", "mode": "train", "precision": "bf16+compile", "jets_per_s": 1100.0},
        {"model": "part", "mode": "train", "precision": "bf16+compile", "jets_per_s": 1000.0},
        {"model": "pet-small", "mode": "infer", "precision": "bf16", "jets_per_s": 19_000.0},
        {"model": "pet-small", "mode": "infer", "precision": "fp32", "jets_per_s": 21_000.0},
        {"model": "pet-small-pretrain", "mode": "train", "precision": "bf16", "jets_per_s": 500.0},
        {"model": "pet-small", "mode": "train", "precision": "fp32", "error": "RuntimeError: x"},
        # compiled again while timed (ParT on the H200): not a steady rate, so no ratio is taken from it
        {"model": "part", "mode": "infer", "precision": "bf16+compile", "jets_per_s": 10.0, "graphs_compiled_while_timed": 3},
        {"model": "pet-paper", "mode": "infer", "precision": "bf16+compile", "jets_per_s": 30_000.0},
    ]
    assert gpu_check.speed_ratios(runs) == [
        {"model": "pet-paper", "mode": "train", "precision": "bf16", "ratio_vs_part": 1.25},
        {"model": "pet-paper", "mode": "train", "precision": "bf16+compile", "ratio_vs_part": pytest.approx(1.1)},
    ]
    t = gpu_check.speed_targets(runs, "cuda")
    assert t["paper_over_part_train_bf16"]["best"] == ("bf16", 1.25) and t["paper_over_part_train_bf16"]["met"]
    assert t["small_infer_jets_per_s"]["best"] == ("fp32", 21_000.0) and t["small_infer_jets_per_s"]["met"]
    runs[0]["jets_per_s"] = 1150.0  # 1.15x < 1.2x; inference below 20k in every precision
    runs[5]["jets_per_s"] = 18_000.0
    t = gpu_check.speed_targets(runs, "cuda")
    assert not t["paper_over_part_train_bf16"]["met"] and not t["small_infer_jets_per_s"]["met"]


def test_timing_stops_at_the_deadline_within_a_repeat():
    import time

    def slow_step():
        time.sleep(0.05)

    t0 = time.monotonic()
    rec = gpu_check._median_rate(slow_step, torch.device("cpu"), batch=10, warmup=0, iters=100, repeats=3,
                                 deadline=time.monotonic() + 0.3)
    # 100 steps of 50 ms take 5 s per repeat (a deadline checked per repeat stops after 5 s); the deadline
    # cuts the first repeat after ~7 steps (the bound leaves room for importing torch._dynamo)
    assert time.monotonic() - t0 < 4.0 and rec["cut_by_deadline"] and len(rec["repeats"]) == 1
    assert rec["jets_per_s"] == pytest.approx(10 / 0.05, rel=0.35)
    assert "graphs_compiled_while_timed" not in rec


def test_compiling_while_timed_is_reported():
    torch._dynamo.reset()
    f = torch.compile(lambda x: (x * 2).sum(), backend="eager", dynamic=False)
    sizes = iter(range(3, 100))

    def step():  # a new input shape every call: dynamo compiles again each time
        f(torch.ones(next(sizes)))

    rec = gpu_check._median_rate(step, torch.device("cpu"), batch=1, warmup=1, iters=3, repeats=1)
    assert rec["graphs_compiled_while_timed"] >= 2
    same = torch.ones(5)
    rec = gpu_check._median_rate(lambda: f(same), torch.device("cpu"), batch=1, warmup=1, iters=3, repeats=1)
    assert "graphs_compiled_while_timed" not in rec
    torch._dynamo.reset()


def test_sdpa_backend_names_and_verdict():
    name = gpu_check.sdpa_backend_name
    assert name(["aten::_scaled_dot_product_efficient_attention", "aten::_efficient_attention_backward"]) == "efficient"
    assert name(["aten::_scaled_dot_product_flash_attention"]) == "flash"
    assert name(["aten::_scaled_dot_product_cudnn_attention"]) == "cudnn"
    assert name(["aten::_scaled_dot_product_flash_attention_for_cpu"]) == "flash (cpu)"
    assert name([]) == "math"
    # the real dispatch on this CPU: a forced math kernel leaves no fused op behind
    from torch.nn.attention import SDPBackend, sdpa_kernel

    q = torch.randn(2, 4, 8, 16)
    mask = torch.ones(2, 1, 1, 8, dtype=torch.bool)
    sdpa = torch.nn.functional.scaled_dot_product_attention
    assert name(gpu_check.sdpa_ops_used(lambda: sdpa(q, q, q, attn_mask=mask))) == "flash (cpu)"
    with sdpa_kernel([SDPBackend.MATH]):
        assert gpu_check.sdpa_ops_used(lambda: sdpa(q, q, q, attn_mask=mask)) == []

    def res(default, **forced):
        runs = {"default": {"jets_per_s": default[0], "used": default[1]}}
        runs.update({b: ({"jets_per_s": v[0], "used": v[1]} if v else {"error": "refused"}) for b, v in forced.items()})
        return {"runs": runs}

    v = gpu_check.attention_verdict(res((100.0, "efficient"), EFFICIENT_ATTENTION=(104.0, "efficient"),
                                        CUDNN_ATTENTION=(102.0, "cudnn"), FLASH_ATTENTION=None))
    assert v["best_backend"] == "EFFICIENT_ATTENTION" and v["default_is_best"]  # same kernel as the default: noise
    v = gpu_check.attention_verdict(res((100.0, "efficient"), EFFICIENT_ATTENTION=(99.0, "efficient"),
                                        CUDNN_ATTENTION=(130.0, "cudnn")))
    assert v["best_backend"] == "CUDNN_ATTENTION" and v["best_over_default"] == pytest.approx(1.3)
    assert v["default_is_best"] is False
    models = {"pet-paper": {**res((100.0, "efficient"), FLASH_ATTENTION=None), **v, "default_backend": {"train": "efficient"}}}
    note = gpu_check.attention_note(models, "cuda")
    assert "FlashAttention refused PET's attention (pet-paper)" in note and "CUDNN_ATTENTION is 1.30x the default" in note


def test_data_plan_matches_the_gpu_smoke_profile():
    profile = yaml.safe_load((ROOT / "jetlab" / "profiles" / "gpu-smoke.yaml").read_text())
    plan = {(e["dataset"], e["n"]): e for e in gpu_check.data_plan(gpu_check.FULL)}
    assert set(plan) == {("jetclass-mini", profile["01_pretraining"]["n_jets"]),
                         ("toptag-mini", profile["02_top_tagging"]["n_jets"]),
                         ("zjets-mini", profile["03_omnifold_unfolding"]["n_jets"]),
                         ("lhco-mini", profile["04_lhco_anomaly_detection"]["n_events"])}
    # the timed pretraining, notebook 00 and notebook 01 share one file
    assert profile["00_quickstart"]["n_jets"] == profile["01_pretraining"]["n_jets"] == gpu_check.pretraining_jets(gpu_check.FULL)
    assert plan[("lhco-mini", profile["04_lhco_anomaly_detection"]["n_events"])]["options"] == {
        "signal_fraction": profile["04_lhco_anomaly_detection"]["file_signal_fraction"]}
    # every notebook that has a device parameter runs on the GPU
    assert all(p.get("device") == "cuda" for stem, p in profile.items() if stem != "00_quickstart")
    assert gpu_check.data_plan(gpu_check.SMOKE) == [{"dataset": "jetclass-mini", "n": 200, "seed": 0, "options": {}}]


def test_device_wheels_are_what_the_image_lacks():
    reqs = dict(gpu_check.device_wheel_requirements())
    names = {gpu_check._norm(n) for n in reqs}
    assert {"papermill", "ipykernel", "weaver-core", "awkward", "uproot", "mplhep"} <= names
    # already on the device image: never carried
    assert not names & {"torch", "numpy", "scipy", "matplotlib", "h5py", "pyyaml", "tqdm", "triton"}
    # weaver-core's ParT needs only torch: its heavy requirements stay behind
    assert not names & {"tables", "numexpr", "awkward0", "lz4"}
    # FastJet always travels (jetlab.physics needs it for notebook 03); Pythia only to generate data there
    assert "fastjet" in names and "pythia8mc" not in names
    with_gen = {gpu_check._norm(n) for n in dict(gpu_check.device_wheel_requirements(with_generator=True))}
    assert {"pythia8mc", "fastjet"} <= with_gen
    import importlib.metadata as md

    assert reqs["papermill"] == md.version("papermill")


def test_cuda_requested_without_a_gpu_is_a_clear_error(tmp_path):
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")  # no GPU visible, on any machine
    proc = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "o"), "--device", "cuda"], capture_output=True,
                          text=True, timeout=120, env=env)
    assert proc.returncode == 2
    assert "--device cuda but torch sees no CUDA device; use --device cpu --smoke" in proc.stderr
    assert not (tmp_path / "o").exists()
