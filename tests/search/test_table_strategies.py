"""Strategies restricted to a table's cells: never a cell outside it, deterministic per seed,
random without repeats, the controller's policy renormalised over the table, and evolution's
mutation to the nearest table cell (hand-made tables)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from nasnet_det.search.runner import run_search
from nasnet_det.search.space import SearchSpace
from nasnet_det.search.strategies import build_strategy
from nasnet_det.search.tabular import Proxy, TableSupport, header, sample_cells, write_table

# 1 block, 2 ops, one combiner: 256 children; the tables below hold 40 of them.
TINY = SearchSpace(num_blocks=1, ops=("identity", "avg_pool_3x3"), combiners=("add",))
TINY_ARGS = ["space.num_blocks", "1", "space.ops", "['identity', 'avg_pool_3x3']",
             "space.combiners", "['add']"]  # fmt: skip


def _partial_table(tmp_path, n=40):
    rng = np.random.default_rng(1)
    rows = [{"key": TINY.key(d), "rewards": np.round(rng.uniform(0.2, 0.9, 2), 4).tolist(),
             "params": 1000, "mult_adds": 1000, "train_cpu_s": [1.0, 1.0]}
            for d in sample_cells(TINY, n, seed=2)]  # fmt: skip
    path = tmp_path / "table.json.gz"
    write_table(path, header(TINY, Proxy(), 0), rows)
    return path, {r["key"] for r in rows}


@pytest.mark.parametrize("strategy", ["random", "evolution", "ppo", "reinforce"])
def test_a_search_on_a_partial_table_stays_in_it_and_repeats_per_seed(
    tmp_path, instant_config, strategy
):
    path, keys = _partial_table(tmp_path)
    extra = ["strategy.population_size", "8", "strategy.sample_size", "3"]
    runs = []
    for i, seed in enumerate([3, 3, 4]):
        cfg = instant_config("execution.backend", "tabular", "execution.table", str(path),
                             "strategy.name", strategy, "strategy.batch_size", "4",
                             "max_children", "32", "seed", str(seed), "data.name", "cifar10",
                             "data.root", str(tmp_path / "no_data"), *TINY_ARGS,
                             *(extra if strategy == "evolution" else []))  # fmt: skip
        res = run_search(cfg, tmp_path / f"s{i}")
        runs.append([c["key"] for c in res.children])
    assert all(set(r) <= keys for r in runs)  # 40 of 256 children: 32 random draws would miss
    assert runs[0] == runs[1] and runs[0] != runs[2] and len(runs[0]) == 32
    if strategy == "random":  # uniform over the cells not queried yet: no repeats
        assert len(set(runs[0])) == 32


def test_restricted_random_covers_the_table_then_resumes_identically(tmp_path):
    support = TableSupport(TINY, [TINY.key(d) for d in sample_cells(TINY, 10, seed=0)])
    s = build_strategy("random", TINY, seed=1).restrict(support)
    first = s.propose(6)
    state = s.state_dict()
    rest = s.propose(4)
    assert sorted(TINY.key(d) for d in first + rest) == support.keys  # each cell once
    again = build_strategy("random", TINY, seed=1).restrict(support)
    again.load_state_dict(state)
    assert again.propose(4) == rest
    assert all(d in support for d in s.propose(5))  # table exhausted: uniform over it again


def test_nearest_table_cell_is_the_smallest_hamming_distance_ties_at_random():
    parent = (0,) * 10
    one_a = (1,) + (0,) * 9  # distance 1
    one_b = (0,) * 8 + (1, 0)  # distance 1 (decision 9, the combiner, has one choice)
    two = (1, 1) + (0,) * 8  # distance 2
    far = (1, 1, 1, 1) + (0,) * 6  # distance 4
    support = TableSupport(TINY, [TINY.key(d) for d in (parent, one_a, one_b, two, far)])
    rng = np.random.default_rng(0)
    picks = [support.nearest(parent, rng) for _ in range(200)]
    assert set(picks) == {one_a, one_b}  # never the parent, never farther, both ties drawn
    assert 70 < picks.count(one_a) < 130  # a fair coin over 200 draws (4.2 sigma)
    assert support.nearest(far, rng) == two  # distance 2 beats one_a's 3 and the parent's 4
    alone = TableSupport(TINY, [TINY.key(parent)])
    assert alone.nearest(parent, rng) == parent


def test_restricted_evolution_mutates_the_tournament_winner_to_its_nearest_table_cell():
    parent, near, far = (0,) * 10, (1,) + (0,) * 9, (1, 1, 1) + (0,) * 7
    support = TableSupport(TINY, [TINY.key(d) for d in (parent, near, far)])
    s = build_strategy("evolution", TINY, 0, population_size=2, sample_size=2).restrict(support)
    s.observe([parent, far], [0.9, 0.1])  # the tournament of both picks the parent
    assert s.propose(3) == [near, near, near]


def test_nearest_passes_over_proposed_cells_while_another_is_left():
    parent, one, two, three = (0,) * 10, (1,) + (0,) * 9, (1, 1) + (0,) * 8, (1, 1, 1) + (0,) * 7
    support = TableSupport(TINY, [TINY.key(d) for d in (parent, one, two, three)])
    rng = np.random.default_rng(0)
    assert support.nearest(parent, rng, {TINY.key(one)}) == two
    assert support.nearest(parent, rng, {TINY.key(one), TINY.key(two)}) == three
    every = {TINY.key(d) for d in (parent, one, two, three)}
    assert support.nearest(parent, rng, every) == one  # all proposed: the nearest of all again


def test_restricted_evolution_mutates_to_cells_not_proposed_yet():
    parent, one, two, far = (0,) * 10, (1,) + (0,) * 9, (1, 1) + (0,) * 8, (1, 1, 1, 1) + (0,) * 6
    support = TableSupport(TINY, [TINY.key(d) for d in (parent, one, two, far)])
    s = build_strategy("evolution", TINY, 0, population_size=2, sample_size=2).restrict(support)
    s.observe([parent, far], [0.9, 0.1])  # observed cells count as queried; the parent wins
    # one and two are new queries; then every cell was proposed and the nearest is one again.
    assert s.propose(3) == [one, two, one]


def test_restricted_controller_samples_its_policy_renormalised_over_the_table():
    cells = [(0,) * 10, (1,) + (0,) * 9, (1, 1, 1, 1) + (0,) * 6]
    support = TableSupport(TINY, [TINY.key(d) for d in cells])
    s = build_strategy("reinforce", TINY, seed=0, init_range=1.0).restrict(support)
    with torch.no_grad():
        logp, _ = s.controller.log_prob_entropy(torch.tensor(support.cells))
    p = np.exp(logp.numpy()) / np.exp(logp.numpy()).sum()
    draws = s.propose(4000)
    freq = np.array([sum(d == support.cell(i) for d in draws) for i in range(3)]) / 4000
    assert np.all(np.abs(freq - p) < 4.5 * np.sqrt(p * (1 - p) / 4000) + 1e-9), (freq, p)
    assert p.max() - p.min() > 0.05  # a non-uniform policy, so the match means something


def test_a_table_of_another_space_is_refused():
    other = SearchSpace(num_blocks=1, ops=("identity", "conv_1x1"), combiners=("add",))
    support = TableSupport(other, [other.key((0,) * 10)])
    with pytest.raises(ValueError, match="table's space is not the strategy's"):
        build_strategy("random", TINY, seed=0).restrict(support)


def test_bench_regret_and_top1_by_hand(tmp_path, bench_script):
    path, keys = _partial_table(tmp_path, n=100)
    bench = bench_script("strategies_on_table")
    table = bench.slice_table(str(path), None)
    means = table.mean_rewards()
    ranked = sorted(means, key=lambda k: -means[k])
    best, second, worst = ranked[0], ranked[1], ranked[-1]
    # The incumbent is the best *observed*: a lucky worst cell beats the second best here.
    run = [(second, 0.5), (worst, 0.99), (best, 0.7)]
    c = bench.curves(table, [run], [1, 2, 3])
    gap = [means[best] - means[second], means[best] - means[worst], means[best] - means[worst]]
    assert np.allclose(c["regret"][0], 100 * np.array(gap))
    assert c["top1"][0].tolist() == [False, False, True]  # 100 cells: the top 1% is the best
    assert bench.usable_budgets([10, 20, 25], 100) == [10, 20]
    with pytest.raises(ValueError, match="holds 40 cells, the smallest budget 10 needs"):
        bench.usable_budgets([10, 25], 40)


def test_bench_runs_on_a_small_slice_and_refuses_bad_input(tmp_path, capsys, bench_script):
    path, keys = _partial_table(tmp_path)
    bench = bench_script("strategies_on_table")
    out = tmp_path / "out"
    args = ["--table", str(path), "--cells", "30", "--budgets", "2", "6", "9", "--seeds", "3",
            "--tune-seeds", "1", "--lrs", "0.01", "--output", str(out)]  # fmt: skip
    assert bench.main(args) == 0
    text = capsys.readouterr().out
    assert "budgets [9] dropped: above a fifth of the table (30 cells -> at most 6" in text
    res = __import__("json").loads((out / "results.json").read_text())
    assert res["budgets"] == [2, 6] and len(res["rows"]) == 5
    for row in res["rows"].values():
        r = np.array(row["regret"])
        assert r.shape == (3, 2) and (r >= 0).all()
    assert (out / "regret.png").stat().st_size > 10_000
    bad = tmp_path / "bad"
    assert bench.main([*args[:3], "41", *args[4:-1], str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["strategies_on_table.py: --cells: expected 1..40 (the table's size), got 41"]
    assert not bad.exists()
