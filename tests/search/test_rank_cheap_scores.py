"""bench/rank_cheap_scores.py's weight-sharing column: the shared network of the table's space,
at the table's child size, scored on every held-out crop the table's reward counts."""

from __future__ import annotations

import numpy as np
from nasnet_det.search.space import SearchSpace
from nasnet_det.search.tabular import Proxy, header, sample_cells, write_table

SPACE = SearchSpace(num_blocks=2, ops=("identity", "avg_pool_3x3", "conv_1x1"))
# 40 held-out images at batch 8: 5 batches; a score is then a multiple of 1/40.
TINY = Proxy(image_size=8, train_size=64, val_size=40, num_conv_filters=4, batch_size=8,
             seeds=(0, 1), dataset="digits")  # fmt: skip


def test_ws_config_is_the_search_default_at_the_tables_child_size(bench_script):
    rank = bench_script("rank_cheap_scores")
    cfg = rank.ws_config(TINY)
    assert (cfg["num_cells"], cfg["num_conv_filters"], cfg["batch_size"]) == (1, 4, 8)
    assert cfg["eval_batches"] == 5  # 40 / 8
    assert rank.ws_config(Proxy(val_size=2000, batch_size=32))["eval_batches"] == 63  # ceil(62.5)
    assert cfg["lr"] == 0.05 and cfg["grad_clip"] == 5.0  # the search config's defaults


def test_weight_sharing_scores_every_cell_on_all_held_out_crops(bench_script):
    rank = bench_script("rank_cheap_scores")
    keys = [SPACE.key(d) for d in sample_cells(SPACE, 6, seed=0)]
    cols = {s: rank.weight_sharing_scores(SPACE, keys, TINY, s, [0, 3], recal=2, plain=True)
            for s in ("uniform", "fair")}  # fmt: skip
    uni = cols["uniform"]
    assert list(uni) == [
        "weight sharing, uniform, 0 steps, BN recalibrated (2 batches)",
        "weight sharing, uniform, 0 steps, batch statistics",
        "weight sharing, uniform, 3 steps, BN recalibrated (2 batches)",
        "weight sharing, uniform, 3 steps, batch statistics",
    ]
    for scores, cpu in uni.values():
        assert len(scores) == 6 and cpu > 0
        assert np.allclose(np.array(scores) / 2.5, np.round(np.array(scores) / 2.5))  # k / 40
        assert all(0 <= s <= 100 for s in scores)
    # Untrained (0 steps), the schedules share the initialisation: the same scores.
    zero = "0 steps, BN recalibrated (2 batches)"
    assert (
        uni[f"weight sharing, uniform, {zero}"][0]
        == cols["fair"][f"weight sharing, fair, {zero}"][0]
    )


def test_the_script_ranks_zero_cost_and_weight_sharing_scores_of_a_table(
    bench_script, tmp_path, capsys
):
    rank = bench_script("rank_cheap_scores")
    rng = np.random.default_rng(0)
    rows = [{"key": SPACE.key(d), "rewards": rng.uniform(0.2, 0.9, 2).round(4).tolist(),
             "params": 1, "mult_adds": 1, "train_cpu_s": [1.0, 1.0]}
            for d in sample_cells(SPACE, 6, seed=1)]  # fmt: skip
    path = tmp_path / "table.json.gz"
    write_table(path, header(SPACE, TINY, 1), rows)
    argv = ["--table", str(path), "--batch", "8", "--seeds", "0", "--cells", "5"]
    assert rank.main([*argv, "--ws-steps", "2", "--ws-schedules", "fair"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("5 cells of ")
    table = [line for line in out.splitlines() if line.startswith("| ") and "---" not in line]
    names = [line.split(" | ")[0][2:] for line in table[1:]]
    assert names == ["synflow", "naswot", "grad_norm", "params",
                     "weight sharing, fair, 2 steps, BN recalibrated (8 batches)"]  # fmt: skip
    assert all(line.split(" | ")[3] == "5" for line in table[1:])  # n


def test_short_reward_is_one_training_of_the_cell_in_percent(bench_script):
    import pytest
    from nasnet_det.search.child import train_child

    rank = bench_script("rank_cheap_scores")
    key = SPACE.key(sample_cells(SPACE, 1, seed=2)[0])
    child = {**TINY.child_cfg(), "epochs": 1}
    reward, cpu = rank.short_reward(SPACE, key, child, TINY.data_cfg(), seed=3)
    ref = train_child(SPACE.decode(SPACE.parse_key(key)), child, TINY.data_cfg(), 3)["reward"]
    assert reward == pytest.approx(100 * ref) and cpu > 0
    assert reward / 2.5 == pytest.approx(round(reward / 2.5))  # k of 40 held-out images
    with pytest.raises(RuntimeError, match=f"cell {key}: training failed"):
        rank.short_reward(SPACE, key, child, {**TINY.data_cfg(), "name": "no_such_data"})
