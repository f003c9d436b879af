import csv
import json
import sqlite3

import pytest
from nasnet_det.search import HistoryError, run_search
from nasnet_det.search.child import train_child
from nasnet_det.search.space import SearchSpace

from nasnet_det import build_nasnet, get_genotype
from nasnet_det.io import RunFolderError

STRATEGY_OVERRIDES = {
    "random": [],
    "ppo": [],
    "reinforce": [],
    "evolution": ["strategy.population_size", "3", "strategy.sample_size", "2"],
}


@pytest.mark.parametrize("name", sorted(STRATEGY_OVERRIDES))
def test_each_strategy_runs_instant_config(tmp_path, name, instant_config):
    cfg = instant_config("strategy.name", name, *STRATEGY_OVERRIDES[name])
    res = run_search(cfg, tmp_path)
    assert res.num_children == 6
    ids = [c["child_id"] for c in res.children]
    assert ids == list(range(6))
    assert all(c["status"] in ("ok", "duplicate") for c in res.children)
    assert all(0.0 <= c["reward"] <= 1.0 for c in res.children)
    # The outputs people look at.
    g = get_genotype(str(tmp_path / "best_genotype.json"))
    assert g.name == f"search_{name}_child{res.best_child_id}"
    build_nasnet(
        "nasnet_a_cifar",
        genotype=g,
        num_cells=1,
        num_conv_filters=2,
        num_classes=10,
        use_aux_head=False,
        image_size=8,
    )
    with open(tmp_path / "leaderboard.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 6 and {"child_id", "genotype", "reward", "status"} <= set(rows[0])
    assert float(rows[0]["reward"]) == pytest.approx(res.best_reward)
    for p in (
        "rewards.png",
        "cell_normal.png",
        "cell_normal.svg",
        "cell_reduction.png",
        "cell_reduction.svg",
    ):
        assert (tmp_path / p).stat().st_size > 1000, p


def test_duplicates_are_not_retrained(tmp_path, instant_config):
    # A one-op, one-combiner, one-block space has 2^2 (normal) x 2^2 (reduce) = 16 children.
    calls = []

    def fn(genotype, child_cfg, data_cfg, seed):
        calls.append(genotype)
        return {"reward": 0.1 * genotype.normal[0].left.input + 0.01, "params": 1}

    cfg = instant_config(
        "space.num_blocks",
        "1",
        "space.ops",
        "[identity]",
        "space.combiners",
        "[add]",
        "max_children",
        "40",
    )
    res = run_search(cfg, tmp_path, train_fn=fn)
    keys = [c["key"] for c in res.children]
    assert len(calls) == len(set(keys)) <= 16
    dups = [c for c in res.children if c["status"] == "duplicate"]
    assert len(dups) == 40 - len(set(keys))
    first = {c["key"]: c for c in res.children if c["duplicate_of"] is None}
    for c in dups:
        assert c["reward"] == first[c["key"]]["reward"]
        assert c["duplicate_of"] == first[c["key"]]["child_id"]


def test_failing_child_is_recorded_and_search_goes_on(tmp_path, instant_config):
    def fn(genotype, child_cfg, data_cfg, seed):
        ops = {b.left.op for b in genotype.normal} | {b.right.op for b in genotype.normal}
        if "conv_1x1" in ops:
            raise RuntimeError("boom")
        if "sep_conv_3x3" in ops:
            return {"reward": float("nan")}
        return train_child(genotype, child_cfg, data_cfg, seed)

    cfg = instant_config("max_children", "9")
    res = run_search(cfg, tmp_path, train_fn=fn)
    assert res.num_children == 9
    failed = [c for c in res.children if c["status"] == "failed"]
    assert failed, "the seed was chosen so that some child fails"
    assert any("RuntimeError: boom" in c["error"] for c in failed)
    assert all(c["reward"] is None for c in failed)
    assert res.best_reward is not None
    with open(tmp_path / "leaderboard.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows[-1]["status"] == "failed"  # failed children sort last


def test_out_of_memory_is_recorded(tmp_path, instant_config):
    import torch

    def fn(genotype, child_cfg, data_cfg, seed):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    res = run_search(
        instant_config("max_children", "1", "strategy.batch_size", "1"), tmp_path, train_fn=fn
    )
    assert res.children[0]["status"] == "failed"
    assert res.children[0]["error"].startswith("out of memory: CUDA out of memory")


def test_nan_reward_counts_as_failed(tmp_path, instant_config):
    cfg = instant_config("max_children", "2", "strategy.batch_size", "2")
    res = run_search(cfg, tmp_path, train_fn=lambda g, c, d, s: {"reward": float("nan")})
    assert [c["status"] for c in res.children] == ["failed", "failed"]
    assert "reward is nan" in res.children[0]["error"]
    assert res.best_genotype is None


def test_history_is_never_overwritten_without_flag(tmp_path, instant_config):
    fn = lambda g, c, d, s: {"reward": 0.5}  # noqa: E731
    cfg = instant_config("max_children", "3")
    run_search(cfg, tmp_path, train_fn=fn)
    with pytest.raises(ValueError, match="--resume .* or --overwrite"):
        run_search(cfg, tmp_path, train_fn=fn)
    # Resuming a finished search trains nothing and keeps everything.
    res = run_search(cfg, tmp_path, resume=True, train_fn=lambda *a: 1 / 0)
    assert res.num_children == 3 and all(c["status"] == "ok" for c in res.children)
    # A resumed search may not change what it searches.
    with pytest.raises(HistoryError, match=r"different search .*'seed'"):
        run_search(instant_config("max_children", "3", "seed", "1"), tmp_path, resume=True)
    res = run_search(cfg, tmp_path, overwrite=True, train_fn=lambda g, c, d, s: {"reward": 0.25})
    assert res.best_reward == 0.25


def test_corrupt_or_missing_history(tmp_path, instant_config):
    cfg = instant_config("max_children", "3")
    with pytest.raises(RunFolderError, match="no search history to continue"):
        run_search(cfg, tmp_path / "nothing", resume=True)
    assert not (tmp_path / "nothing").exists()
    (tmp_path / "history.sqlite").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(HistoryError, match="corrupt or not a search history"):
        run_search(cfg, tmp_path, resume=True)
    other = tmp_path / "other"
    other.mkdir()
    db = sqlite3.connect(other / "history.sqlite")
    db.execute("CREATE TABLE t (x)")
    db.commit()
    db.close()
    with pytest.raises(HistoryError, match="not a search history .no such table: meta"):
        run_search(cfg, other, resume=True)


def test_summary_written(tmp_path, instant_config):
    run_search(
        instant_config("max_children", "3"), tmp_path, train_fn=lambda g, c, d, s: {"reward": 0.5}
    )
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["num_children"] == 3 and s["best_reward"] == 0.5
    assert SearchSpace(2).num_decisions == 20


def test_round_size_decouples_parallelism_from_the_update(tmp_path, instant_config):
    cfg = instant_config("strategy.name", "ppo", "round_size", "6", "max_children", "6")
    res = run_search(cfg, tmp_path, train_fn=lambda g, c, d, s: {"reward": 0.5})
    assert {c["round"] for c in res.children} == {0}
    with pytest.raises(ValueError, match="round_size"):
        instant_config("round_size", "0")


def test_runner_steps_one_round_per_call(tmp_path, instant_config):
    """``SearchRunner.step()`` trains and checkpoints exactly one round; stepping by hand gives
    the children ``run_search`` gives."""
    from nasnet_det.search import SearchRunner
    from nasnet_det.search.history import History

    fn = lambda g, c, d, s: {"reward": (s % 1000) / 1000.0, "params": 1}  # noqa: E731
    cfg = instant_config("strategy.name", "ppo", "max_children", "7", "strategy.batch_size", "3")
    with SearchRunner(cfg, tmp_path / "steps", train_fn=fn) as runner:
        sizes = []
        while runner.step():
            sizes.append(len(runner.history.children()))
            assert runner.history.load_checkpoint()[:2] == (len(sizes), sizes[-1])
        assert sizes == [3, 6, 7] and runner.done and not runner.step()
        stepped = runner.finish()
    ref = run_search(cfg, tmp_path / "ref", train_fn=fn)
    assert [(c["key"], c["reward"]) for c in stepped.children] == [
        (c["key"], c["reward"]) for c in ref.children
    ]
    assert stepped.best_child_id == ref.best_child_id
    # The finished history needs no more rounds when opened again.
    with SearchRunner(cfg, tmp_path / "steps", resume=True, train_fn=fn) as runner:
        assert runner.done and not runner.step()
    h = History(tmp_path / "steps" / "history.sqlite", create=False)
    assert len(h.children()) == 7
    h.close()


def test_overwrite_removes_only_search_files(tmp_path, instant_config):
    fn = lambda g, c, d, s: {"reward": 0.5}  # noqa: E731
    cfg = instant_config("max_children", "2", "outputs.plot", "false", "outputs.diagrams", "false")
    run_search(cfg, tmp_path, train_fn=fn)
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "data").mkdir()
    run_search(cfg, tmp_path, overwrite=True, train_fn=fn)
    assert (tmp_path / "notes.txt").read_text() == "mine" and (tmp_path / "data").is_dir()
