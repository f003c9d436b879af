"""The search half of ``make demo``: a count budget, so one seed gives the same search twice."""

from __future__ import annotations

import csv

import pytest
from nasnet_det.search.demo import DEMO_CHILDREN, DEMO_CONFIG, run_demo


def _rewards(folder) -> dict[int, float]:
    with open(folder / "leaderboard.csv", newline="") as f:
        return {int(r["child_id"]): float(r["reward"]) for r in csv.DictReader(f)}


def test_demo_budget_is_a_child_count():
    assert DEMO_CONFIG["max_children"] == DEMO_CHILDREN
    assert "max_minutes" not in DEMO_CONFIG


@pytest.mark.slow
def test_same_seed_same_children_and_rewards(tmp_path, capsys):
    runs = [
        run_demo(str(tmp_path / f"run{i}"), max_children=2, seed=seed, num_workers=0,
                 progress=False)
        for i, seed in enumerate((3, 3))
    ]  # fmt: skip
    assert runs[0]["num_children"] == runs[1]["num_children"] == 2
    first, second = _rewards(tmp_path / "run0"), _rewards(tmp_path / "run1")
    assert len(first) == 2 and first == second  # exactly equal, not approximately
    assert runs[0]["best_reward"] == max(first.values())
    assert (tmp_path / "run0" / "best_genotype.json").read_text() == (
        tmp_path / "run1" / "best_genotype.json"
    ).read_text()
    assert "searched 2 children" in capsys.readouterr().out
