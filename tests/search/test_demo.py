"""The search half of ``make demo``: a count budget, so one seed gives the same search twice; on
the shipped table (the default) every reward is a stored one, so the pick is the same on any CPU."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from nasnet_det.search.demo import DEMO_CHILDREN, DEMO_CONFIG, run_demo
from nasnet_det.search.runner import child_seed
from nasnet_det.search.tabular import load_table

from nasnet_det.genotypes import Genotype


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
                 progress=False, backend="local")
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


def test_the_demo_searches_the_shipped_table_and_picks_the_same_cell_twice(tmp_path, capsys):
    table = load_table()
    means = table.mean_rewards()
    runs = [run_demo(str(tmp_path / f"run{i}"), max_children=12, seed=5, progress=False)
            for i in range(2)]  # fmt: skip
    out = capsys.readouterr().out
    assert f"searched the tabular benchmark of {len(table.rows)} cells" in out
    assert "12 children proposed" in out and "none trained" in out
    first = _rewards(tmp_path / "run0")
    assert first == _rewards(tmp_path / "run1") and runs[0]["num_children"] == 12
    picks = [(tmp_path / f"run{i}" / "best_genotype.json").read_text() for i in range(2)]
    assert picks[0] == picks[1]
    with open(tmp_path / "run0" / "leaderboard.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["status"] == "ok"]  # a duplicate copies one
    space = table.space
    for r in rows:  # each reward is the table's stored training for the child's seed
        r["key"] = space.key(space.encode(Genotype.from_dict(json.loads(r["genotype"]))))
        stored = table.rows[r["key"]]["rewards"]
        assert float(r["reward"]) == stored[child_seed(5, int(r["child_id"])) % len(stored)]
    best = max(rows, key=lambda r: (float(r["reward"]), -int(r["child_id"])))
    assert runs[0]["best_reward"] == float(best["reward"])
    line = f"picked child {best['child_id']}: reward {float(best['reward']):.4f}"
    assert f"{line} (one stored training), mean reward {means[best['key']]:.4f}" in out
    assert np.isclose(max(means.values()), float(out.split("best mean: ")[1][:6]), atol=1e-4)
