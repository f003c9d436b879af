"""How a table's reward repeats: variance components checked against a hand computation,
Spearman-Brown's prediction against simulated fresh trainings, and the builder's report."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from nasnet_det.search.tabular import repeatability, split_mean_tau

REPO = Path(__file__).resolve().parents[2]


def test_variance_components_match_a_hand_computation():
    # cell means 11, 20, 32; seed means 20, 22; grand 21. Residuals r - cell - seed + grand:
    # 0, 0 / 1, -1 / -1, 1 -> noise 4 / ((3-1)(2-1)) = 2. MS cells = 2 * (100 + 1 + 121) / 2
    # = 222 -> cell variance (222 - 2) / 2 = 110. Median reward 20 % on 100 images: SE 4 points.
    rep = repeatability([[10, 12], [20, 20], [30, 34]], val_size=100)
    assert rep.noise_var == pytest.approx(2.0)
    assert rep.cell_var == pytest.approx(110.0)
    assert rep.seed_shift == pytest.approx((-1.0, 1.0))
    assert rep.icc == pytest.approx(110 / 112)
    assert rep.reliability(2) == pytest.approx(110 / 111)
    assert rep.predicted_tau(1) == pytest.approx(2 / math.pi * math.asin(110 / 112))
    assert rep.eval_se == pytest.approx(4.0)


def test_a_seed_shift_shared_by_all_cells_is_not_noise():
    base = np.array([[40.0, 41.0], [50.0, 49.0], [60.0, 61.0], [70.0, 69.0]])
    shifted = base + np.array([0.0, 5.0])  # seed 1 is 5 points better on every cell
    a, b = repeatability(base, 1000), repeatability(shifted, 1000)
    assert b.noise_var == pytest.approx(a.noise_var) and b.cell_var == pytest.approx(a.cell_var)
    assert b.seed_shift == pytest.approx((a.seed_shift[0] - 2.5, a.seed_shift[1] + 2.5))


def test_spearman_brown_predicts_the_tau_of_averaged_fresh_trainings():
    # Cells N(0, 5^2), each training adds N(0, 5^2): one training repeats at r = 0.5, means of
    # 3 at r = 0.75 (tau 2/pi asin 0.75 = 0.54); 2,000 cells pin the measured tau to +-0.03.
    rng = np.random.default_rng(0)
    cells = rng.normal(50, 5, 2000)
    r = cells[:, None] + rng.normal(0, 5, (2000, 6))
    rep = repeatability(r, val_size=10**9)
    assert rep.icc == pytest.approx(0.5, abs=0.03)
    tau3, lo, hi = split_mean_tau(r, 3)
    assert rep.predicted_tau(3) == pytest.approx(2 / math.pi * math.asin(0.75), abs=0.02)
    assert tau3 == pytest.approx(rep.predicted_tau(3), abs=0.03)
    assert lo < tau3 < hi
    assert split_mean_tau(r, 1)[0] < tau3  # averaging helps
    assert rep.seeds_for(0.8) == next(k for k in range(1, 65) if rep.predicted_tau(k) >= 0.8)
    assert rep.seeds_for(0.999) is None


def test_too_few_cells_or_seeds_is_one_error():
    with pytest.raises(ValueError, match="cells >= 2, seeds >= 2"):
        repeatability([[50.0, 51.0]], 100)
    with pytest.raises(ValueError, match="needs 4 seeds"):
        split_mean_tau(np.ones((6, 3)), 2)


def test_the_report_reads_a_growing_log_without_touching_it(tmp_path):
    sys.path.insert(0, str(REPO / "bench"))
    try:
        import build_table
    finally:
        sys.path.pop(0)
    rng = np.random.default_rng(1)
    head = {"proxy": {"seeds": [0, 1, 2, 3], "val_size": 2000}}
    rows = [{"key": str(i), "rewards": list(0.5 + 0.1 * rng.normal() + 0.02 * rng.normal(size=4)),
             "train_cpu_s": [10.0, 11.0, 12.0, 13.0]} for i in range(20)]  # fmt: skip
    log = tmp_path / "rows.jsonl"
    text = "\n".join(json.dumps(x) for x in [head, *rows]) + '\n{"key": "cut sh'
    log.write_text(text)
    assert len(build_table.read_rows(str(log))) == 20
    assert log.read_text() == text  # the partial line a build is writing stays
    out = build_table.report(build_table.read_rows(str(log)), head)
    assert "mean of 2 trainings vs mean of 2 fresh ones" in out
    assert "cells: 20, trainings per cell: 4" in out and "tau >= 0.8 needs k = 1" in out


def test_the_builder_defaults_to_the_shipped_tables_proxy(tmp_path):
    import subprocess

    from nasnet_det.search.tabular import Proxy, load_table

    log = tmp_path / "rows.jsonl"
    cmd = [sys.executable, str(REPO / "bench" / "build_table.py"), "build", "--log", str(log),
           "--cells", "0"]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    head = json.loads(log.read_text().splitlines()[0])
    assert head["proxy"] == Proxy().to_dict() == load_table().head["proxy"]
    assert len(Proxy().seeds) == 4 and Proxy().image_size == 16


def test_ship_puts_a_transfer_studys_detection_ap_in_the_tables_head(tmp_path):
    sys.path.insert(0, str(REPO / "bench"))
    try:
        import build_table
    finally:
        sys.path.pop(0)
    from nasnet_det.search.space import SearchSpace
    from nasnet_det.search.tabular import Proxy, header, load_table, sample_cells

    from nasnet_det.genotypes import get_genotype

    space = SearchSpace(num_blocks=1, ops=("identity", "avg_pool_3x3", "conv_1x1"))
    cells = sample_cells(space, 3, seed=0)
    rows = [{"key": space.key(d), "rewards": [0.5, 0.6], "params": 1, "mult_adds": 1,
             "train_cpu_s": [1.0, 1.0]} for d in cells]  # fmt: skip
    log = tmp_path / "rows.jsonl"
    head = header(space, Proxy(seeds=(0, 1)), 0)
    log.write_text("\n".join(json.dumps(x) for x in [head, *rows]) + "\n")
    study = tmp_path / "study"
    (study / "cells").mkdir(parents=True)
    budget = {"pretrain_iters": 5, "detector_iters": 7, "seed": 0, "train_set": "a",
              "val_set": "b"}  # fmt: skip
    (study / "study.json").write_text(json.dumps({"budget": budget}))
    trained = [("c1", space.decode(cells[1]), 0, 41.0), ("c1", space.decode(cells[1]), 1, 43.5),
               ("nasnet_a", get_genotype("nasnet_a"), 0, 50.0)]  # fmt: skip
    for cell, g, seed, ap in trained:
        rec = {"name": f"{cell}_seed{seed}", "cell": cell, "seed": seed, "genotype": g.to_dict(),
               "accuracy": 0.9, "AP": ap, "AP50": ap + 20}  # fmt: skip
        (study / "cells" / f"{cell}_seed{seed}.json").write_text(json.dumps(rec))
    out = tmp_path / "table.json.gz"
    assert build_table.main(["ship", "--log", str(log), "--output", str(out),
                             "--transfer", str(study)]) == 0  # fmt: skip
    table = load_table(out)
    assert len(table.rows) == 3
    want = {"seeds": [0, 1], "accuracy_pct": [90.0, 90.0], "AP": [41.0, 43.5], "AP50": [61.0, 63.5]}
    assert table.transfer == {rows[1]["key"]: want}
    assert table.head["transfer"]["reference"]["nasnet_a"]["AP"] == [50.0]
    assert table.head["transfer"]["budget"]["detector_iters"] == 7
