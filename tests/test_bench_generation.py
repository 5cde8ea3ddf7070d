"""benchmarks/bench_generation.py: the summary over sampling seeds that the README's generated-accuracy
figure comes from (the sampling itself is the library's, tested in test_pretraining_e2e / test_generate)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_generation  # noqa: E402


def _row(seed: int, acc: float, *, held: bool) -> dict:
    flags = {"balance_pt": True, "match_mass": True, "acceptance": True} if held else {}
    return {"guidance": 0.0, "steps": 32, "sampling_seed": seed, "accuracy": 0.8, "generated_accuracy": acc, **flags}


def test_seed_summary_groups_each_sampling_setup_and_gives_mean_spread_and_ratio():
    rows = [
        _row(0, 0.60, held=False),
        _row(0, 0.50, held=True),
        _row(1, 0.62, held=False),
        _row(1, 0.70, held=True),
        _row(2, 0.64, held=False),
        _row(2, 0.60, held=True),
    ]
    table = bench_generation.seed_summary(rows).splitlines()
    plain = next(line for line in table if "held to nothing" in line)
    held = next(line for line in table if "held to pt+mass+detector" in line)
    # by hand: 0.60, 0.62, 0.64 -> mean 0.62, sd 0.02, s.e. 0.02 / sqrt(3) = 0.0115, 0.62 / 0.8 = 0.775
    assert "| 3 | 0.6000, 0.6200, 0.6400 | 0.6200 +- 0.0200 (0.0115) | 0.8000 | 0.775 |" in plain
    # 0.50, 0.70, 0.60 -> mean 0.60, sd 0.10, s.e. 0.0577, 0.75: the held rows are not mixed with the plain ones
    assert "| 3 | 0.5000, 0.7000, 0.6000 | 0.6000 +- 0.1000 (0.0577) | 0.8000 | 0.750 |" in held


def test_seed_summary_leaves_out_trained_budget_rows():
    budget_row = {"budget_min": 5, "guidance": 0.0, "steps": 32, "accuracy": 0.8, "generated_accuracy": 0.1}
    table = bench_generation.seed_summary([budget_row, _row(0, 0.6, held=False)])
    assert "0.1000" not in table and "| 1 | 0.6000 |" in table


@pytest.mark.parametrize("bad", [["--sampling-seeds"], ["--sampling-seeds", "x"]])
def test_sampling_seeds_must_be_integers(bad):
    with pytest.raises(SystemExit):
        bench_generation.main(["--checkpoint", "nowhere", *bad])
