"""The transfer study: cell selection, correlations against scipy, and resume after kill -9."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from nasnet_det.search.runner import run_search
from nasnet_det.search.space import SearchSpace
from nasnet_det.search.tabular import Proxy, header, load_table, sample_cells, write_table
from nasnet_det.search.transfer import (
    Budget,
    TransferStudy,
    correlations,
    describe_correlation,
    select_cells,
    select_table_cells,
)

SPACE = SearchSpace(num_blocks=1, ops=("identity", "avg_pool_3x3", "conv_1x1"))
# A proxy small enough that NASNet-A's reference trainings take a second.
TINY_PROXY = Proxy(image_size=8, train_size=32, val_size=20, num_conv_filters=4, batch_size=8,
                   epochs=1, seeds=(0, 1), dataset="digits")  # fmt: skip


def _table(tmp_path, means):
    """A table of len(means) cells of SPACE whose two trainings average to ``means``."""
    rows = [{"key": SPACE.key(d), "rewards": [m - 0.01, m + 0.01], "params": 1, "mult_adds": 1,
             "train_cpu_s": [1.0, 1.0]}
            for d, m in zip(sample_cells(SPACE, len(means), seed=0), means)]  # fmt: skip
    path = tmp_path / "table.json.gz"
    write_table(path, header(SPACE, TINY_PROXY, 0), rows)
    return path


def _row(cid, reward, status="ok", genotype=None):
    g = genotype or json.dumps({"id": cid})
    return {"child_id": str(cid), "reward": "" if reward is None else str(reward),
            "status": status, "phase": "standalone", "genotype": g}  # fmt: skip


def test_select_cells_spans_best_quantiles_and_worst():
    rows = [_row(i, r) for i, r in enumerate([0.5, 0.9, 0.7, 0.6, 0.8, 0.4, 0.95, 0.3, 0.85])]
    rows += [_row(20, 0.99, status="failed"), _row(21, None, status="failed")]
    rows.append(_row(22, 0.9, status="duplicate", genotype=rows[1]["genotype"]))
    picked = select_cells(rows, 3)
    # 9 distinct trained children sorted by reward: ranks 1, 5 and 9.
    assert [c["reward"] for c in picked] == [0.95, 0.7, 0.3]
    assert [c["name"] for c in picked] == ["rank1_child6", "rank5_child2", "rank9_child7"]
    assert len(select_cells(rows, 9)) == 9
    with pytest.raises(ValueError, match="fewer than k=10"):
        select_cells(rows, 10)
    with pytest.raises(ValueError, match="at least 2"):
        select_cells(rows, 1)


def test_table_cells_span_the_mean_rewards_best_quantiles_and_worst(tmp_path):
    means = [0.50, 0.90, 0.30, 0.70, 0.10, 0.60, 0.80, 0.20, 0.40]
    table = load_table(_table(tmp_path, means))
    picked = select_table_cells(table, 3)
    # Ranked by mean: 0.90 (row 1) is rank 1, 0.50 (row 0) rank 5, 0.10 (row 4) rank 9.
    assert [c["name"] for c in picked] == ["rank1_cell1", "rank5_cell0", "rank9_cell4"]
    assert [c["reward"] for c in picked] == pytest.approx([0.90, 0.50, 0.10])
    keys = list(table.rows)
    for c in picked:  # the genotype is the table's cell itself
        assert table.lookup(c["genotype"]) is table.rows[keys[c["child_id"]]]
    with pytest.raises(ValueError, match="fewer than k=10"):
        select_table_cells(table, 10)


def test_a_table_study_trains_every_cell_once_per_seed(tmp_path):
    path = _table(tmp_path, [0.5, 0.9, 0.3, 0.7])
    study = TransferStudy(None, 2, tmp_path / "s", Budget(1, 1), table=path, seeds=[3, 5])
    names = [j["name"] for j in study.jobs()]
    assert names == ["rank1_cell1_seed3", "rank1_cell1_seed5", "rank4_cell2_seed3",
                     "rank4_cell2_seed5", "nasnet_a_seed3", "nasnet_a_seed5"]  # fmt: skip
    assert [j["budget"]["seed"] for j in study.jobs()] == [3, 5] * 3
    assert study.jobs()[0]["proxy"]["table_proxy"] == TINY_PROXY.to_dict()
    plan = json.loads((tmp_path / "s" / "study.json").read_text())
    assert plan["seeds"] == [3, 5] and plan["search"].startswith("table:")
    with pytest.raises(ValueError, match="another search, k, budget or seeds"):
        TransferStudy(None, 2, tmp_path / "s", Budget(1, 1), table=path, seeds=[3])
    with pytest.raises(ValueError, match="--search or --table"):
        TransferStudy(None, 2, tmp_path / "t", Budget(1, 1))


def test_a_table_study_resumes_by_the_tables_content_not_its_path(tmp_path):
    import shutil

    path = _table(tmp_path, [0.5, 0.9, 0.3, 0.7])
    TransferStudy(None, 2, tmp_path / "s", Budget(1, 1), table=path)
    moved = tmp_path / "elsewhere" / "same.json.gz"
    moved.parent.mkdir()
    shutil.copy(path, moved)
    TransferStudy(None, 2, tmp_path / "s", Budget(1, 1), table=moved)  # same bytes: resumes
    other = _table(tmp_path / "elsewhere", [0.5, 0.9, 0.3, 0.6])
    with pytest.raises(ValueError, match="another search"):
        TransferStudy(None, 2, tmp_path / "s", Budget(1, 1), table=other)
    # A plan written before tables were named by content (their absolute path) still resumes.
    meta = tmp_path / "s" / "study.json"
    plan = json.loads(meta.read_text())
    meta.write_text(json.dumps({**plan, "search": f"table:{load_table(path).path}"}))
    TransferStudy(None, 2, tmp_path / "s", Budget(1, 1), table=path)
    assert json.loads(meta.read_text())["search"] == plan["search"]


def test_a_table_studys_nasnet_a_reward_is_trained_once_for_all_seeds(tmp_path, monkeypatch):
    import nasnet_det.search.transfer as transfer

    calls = []
    monkeypatch.setattr(transfer, "_proxy_reward", lambda job, g, s: calls.append(s) or 0.42)
    monkeypatch.setattr(transfer, "_run_jobs", lambda todo, workers: [
        {"name": j["name"], "cell": j["cell"], "proxy_reward": j["proxy_reward"],
         "accuracy": 0.5, "AP": 1.0} for j in todo])  # fmt: skip
    path = _table(tmp_path, [0.5, 0.9, 0.3, 0.7])
    study = TransferStudy(None, 2, tmp_path / "s", Budget(1, 1), table=path, seeds=[3, 5, 7])
    records = study.run(progress=False)
    assert calls == [3]  # once, not once per seed
    assert [r["proxy_reward"] for r in records if r["cell"] == "nasnet_a"] == [0.42] * 3
    assert [r["proxy_reward"] for r in records[:2]] == pytest.approx([0.9, 0.9])  # looked up


def test_nasnet_a_reference_reward_is_its_mean_over_the_tables_trainings():
    from nasnet_det.search.child import run_child
    from nasnet_det.search.tabular import train_on_proxy

    from nasnet_det.genotypes import get_genotype

    g = get_genotype("nasnet_a")
    got = train_on_proxy(g, TINY_PROXY)
    assert len(got["rewards"]) == 2 and len(got["train_cpu_s"]) == 2
    for s, r in zip(TINY_PROXY.seeds, got["rewards"]):  # each one search-child training
        task = {"child_id": 0, "genotype": g.to_dict(), "child": TINY_PROXY.child_cfg(),
                "data": TINY_PROXY.data_cfg(), "seed": s, "num_threads": 1}  # fmt: skip
        assert run_child(task)["reward"] == r


def test_seeds_are_averaged_per_cell_and_their_spread_reported():
    from scipy import stats

    proxy = [0.91, 0.85, 0.88, 0.70, 0.95, 0.80]
    ap = [(20.0, 21.0), (18.0, 18.0), (20.0, 22.0), (9.0, 10.0), (19.0, 19.0), (11.0, 13.0)]
    recs = [{"name": f"c{i}_seed{s}", "cell": f"c{i}", "seed": s, "proxy_reward": p,
             "accuracy": 0.5, "AP": a[s]}
            for i, (p, a) in enumerate(zip(proxy, ap)) for s in (0, 1)]  # fmt: skip
    corr = correlations(recs)
    means = [sum(a) / 2 for a in ap]
    assert corr["AP"]["n"] == 6
    assert corr["AP"]["rho"] == pytest.approx(stats.spearmanr(proxy, means).statistic)
    # Spreads 1, 0, 2, 1, 0, 2: median 1, max 2.
    assert corr["AP"]["seed_spread"] == {"cells": 6, "median": 1.0, "max": 2.0}
    assert corr["accuracy"]["reason"] is not None and corr["accuracy"]["rho_ci"] is None
    lo, hi = corr["AP"]["rho_ci"]
    ref = stats.bootstrap((proxy, means), lambda a, b: stats.spearmanr(a, b).statistic,
                          paired=True, vectorized=False, n_resamples=4000, method="BCa",
                          rng=np.random.default_rng(0)).confidence_interval  # fmt: skip
    assert (lo, hi) == pytest.approx((ref.low, ref.high))
    assert lo < corr["AP"]["rho"] < hi <= 1.0
    assert describe_correlation(corr["AP"]).endswith(f"interval {lo:.2f} to {hi:.2f}")


def test_correlations_match_scipy():
    from scipy import stats

    proxy = [0.91, 0.85, 0.88, 0.70, 0.95, 0.80]
    acc = [0.61, 0.55, 0.40, 0.38, 0.66, 0.52]
    ap = [20.5, 18.0, 21.0, 9.5, 19.0, 12.0]
    recs = [{"name": str(i), "proxy_reward": p, "accuracy": a, "AP": b}
            for i, (p, a, b) in enumerate(zip(proxy, acc, ap))]  # fmt: skip
    recs.append({"name": "x", "proxy_reward": 0.5, "accuracy": None, "AP": None})  # left out
    corr = correlations(recs)
    for key, ys in (("accuracy", acc), ("AP", ap)):
        assert corr[key]["n"] == 6
        assert corr[key]["tau"] == pytest.approx(stats.kendalltau(proxy, ys).statistic)
        assert corr[key]["rho"] == pytest.approx(stats.spearmanr(proxy, ys).statistic)
        assert corr[key]["rho_p"] == pytest.approx(stats.spearmanr(proxy, ys).pvalue)
    # Hand count for (a): 13 concordant, 2 discordant pairs of 15 -> tau = 11 / 15.
    assert corr["accuracy"]["tau"] == pytest.approx(11 / 15)


def test_three_cells_or_all_tied_ap_is_undefined_never_one():
    # What a new user's `--k 2` study gave: 3 cells (2 + NASNet-A), every AP 0.0. scipy would
    # call the accuracy ranking tau = rho = 1.00; with 3 points that is chance (1 in 6).
    recs = [{"name": str(i), "proxy_reward": p, "accuracy": a, "AP": 0.0}
            for i, (p, a) in enumerate([(0.9, 0.3), (0.8, 0.2), (0.7, 0.1)])]  # fmt: skip
    corr = correlations(recs)
    assert corr["accuracy"]["tau"] is None and corr["accuracy"]["rho"] is None
    assert describe_correlation(corr["accuracy"]) == "undefined (n=3: fewer than 5 points)"
    recs += [{"name": str(i), "proxy_reward": 0.1 * i, "accuracy": 0.05 * i, "AP": 0.0}
             for i in range(3, 6)]  # fmt: skip
    corr = correlations(recs)
    assert describe_correlation(corr["AP"]) == "undefined (every AP is tied at 0)"
    assert corr["accuracy"]["n"] == 6 and corr["accuracy"]["reason"] is None
    assert describe_correlation(corr["accuracy"]).startswith("Kendall tau ")


def test_results_csv_stores_accuracy_in_percent_as_printed_and_plotted(tmp_path):
    recs = [{"name": f"c{i}", "child_id": i, "proxy_reward": 0.9 - 0.1 * i,
             "accuracy": 0.4375 - 0.05 * i, "AP": 12.5 - i, "AP50": 30.0, "params": 1000,
             "seconds": 1.0} for i in range(5)]  # fmt: skip
    study = TransferStudy.__new__(TransferStudy)  # summarise needs the folder and the source
    study.output, study.proxy = tmp_path, {}
    study.summarise(recs)
    import csv

    with open(tmp_path / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [float(r["accuracy_pct"]) for r in rows] == pytest.approx(
        [43.75, 38.75, 33.75, 28.75, 23.75]
    )
    assert float(rows[0]["AP"]) == 12.5


def test_budget_is_checked():
    with pytest.raises(ValueError, match="detector_iters must be a positive integer"):
        Budget(pretrain_iters=5, detector_iters=0)


DRIVER = textwrap.dedent(
    """
    import sys
    from nasnet_det.cli import quiet_warnings
    quiet_warnings()
    from nasnet_det.data import DigitsSpec
    from nasnet_det.detection.datasets import register_nasnet_digits
    from nasnet_det.search.transfer import Budget, TransferStudy
    search, out, cache = sys.argv[1:4]
    register_nasnet_digits("tt_digits", root=cache,
                           spec=DigitsSpec(num_train=8, num_val=2, num_val_mini=1))
    budget = Budget(1, 1, 0, "tt_digits_train", "tt_digits_val")
    TransferStudy(search, 2, out, budget).run(workers=0, progress=False)
    """
)


@pytest.mark.slow
def test_resume_after_sigkill_never_retrains_a_finished_cell(tmp_path, instant_config):
    run_search(instant_config(), tmp_path / "search")
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    out, cells = tmp_path / "study", tmp_path / "study" / "cells"
    cmd = [sys.executable, str(driver), str(tmp_path / "search"), str(out), str(tmp_path / "c")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 600
    while not (cells.is_dir() and list(cells.glob("*.json"))):
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = sorted(cells.glob("*.json"))
    assert 1 <= len(finished) < 3  # killed in the middle of the study
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in finished}
    logs = {p.stem: (out / "runs" / p.stem / "log.txt").stat().st_mtime_ns for p in finished}

    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    for name, (data, mtime) in before.items():
        p = cells / name
        assert p.read_bytes() == data and p.stat().st_mtime_ns == mtime
    for name, mtime in logs.items():  # its training log was not written again
        assert (out / "runs" / name / "log.txt").stat().st_mtime_ns == mtime
    records = [json.loads(p.read_text()) for p in sorted(cells.glob("*.json"))]
    assert len(records) == 3 and "nasnet_a" in {r["name"] for r in records}
    assert all(0.0 <= r["proxy_reward"] <= 1.0 for r in records)
    rows = (out / "results.csv").read_text().strip().splitlines()
    assert len(rows) == 4 and rows[0].startswith("name,child_id,seed,proxy_reward")
    assert (out / "transfer.png").stat().st_size > 0
    corr = json.loads((out / "correlations.json").read_text())
    assert set(corr) == {"accuracy", "AP"}
    # 3 cells (k=2 + NASNet-A): no correlation is reported as a number.
    for c in corr.values():
        assert c["tau"] is None and c["reason"] == "n=3: fewer than 5 points"
    assert rows[0] == "name,child_id,seed,proxy_reward,accuracy_pct,AP,AP50,params,seconds"


@pytest.mark.slow
def test_a_table_study_runs_two_seeds_per_cell_and_averages_them(tmp_path):
    from nasnet_det.search.tabular import train_on_proxy

    from nasnet_det.data import DigitsSpec
    from nasnet_det.detection.datasets import register_nasnet_digits
    from nasnet_det.genotypes import get_genotype

    register_nasnet_digits("tt2_digits", root=tmp_path / "c",
                           spec=DigitsSpec(num_train=8, num_val=2, num_val_mini=1))  # fmt: skip
    path = _table(tmp_path, [0.5, 0.9, 0.3, 0.7])
    budget = Budget(1, 1, 0, "tt2_digits_train", "tt2_digits_val")
    study = TransferStudy(None, 2, tmp_path / "s", budget, table=path, seeds=[0, 1])
    records = study.run(workers=0, progress=False)
    assert [(r["cell"], r["seed"]) for r in records] == [
        (c, s) for c in ("rank1_cell1", "rank4_cell2", "nasnet_a") for s in (0, 1)
    ]
    assert [r["proxy_reward"] for r in records[:4]] == pytest.approx([0.9] * 2 + [0.3] * 2)
    ref = np.mean(train_on_proxy(get_genotype("nasnet_a"), TINY_PROXY)["rewards"])
    assert records[4]["proxy_reward"] == records[5]["proxy_reward"] == pytest.approx(ref)
    rows = (tmp_path / "s" / "results.csv").read_text().strip().splitlines()
    assert len(rows) == 7 and rows[1].startswith("rank1_cell1_seed0,1,0,")
    corr = json.loads((tmp_path / "s" / "correlations.json").read_text())
    assert corr["AP"]["n"] == 3 and corr["AP"]["seed_spread"]["cells"] == 3


def test_report_summarises_a_partial_study_and_trains_nothing(tmp_path):
    path = _table(tmp_path, [0.5, 0.9, 0.3, 0.7])
    tool = [sys.executable, "tools/transfer_study.py", "--table", str(path), "--k", "2",
            "--seeds", "0", "1", "--pretrain-iters", "1", "--detector-iters", "1",
            "--report"]  # fmt: skip
    empty = subprocess.run(tool + ["--output", str(tmp_path / "none")], capture_output=True,
                           text=True, timeout=300)  # fmt: skip
    assert empty.returncode == 2 and "holds no transfer study" in empty.stderr
    assert "Traceback" not in empty.stderr and not (tmp_path / "none").exists()
    study = TransferStudy(None, 2, tmp_path / "s", Budget(1, 1), table=path, seeds=[0, 1])
    rec = {"name": "rank1_cell1_seed0", "cell": "rank1_cell1", "seed": 0, "child_id": 1,
           "proxy_reward": 0.9, "accuracy": 0.875, "AP": 40.0, "AP50": 60.0, "params": 10,
           "seconds": 1.0}  # fmt: skip
    (tmp_path / "s" / "cells" / "rank1_cell1_seed0.json").write_text(json.dumps(rec))
    got = subprocess.run(tool + ["--output", str(tmp_path / "s")], capture_output=True,
                         text=True, timeout=300)  # fmt: skip
    assert got.returncode == 0, got.stderr[-2000:]
    assert "report on the 1 finished trainings (nothing trained)" in got.stdout
    assert "n=1: fewer than 5 points" in got.stdout or "undefined" in got.stdout
    rows = (tmp_path / "s" / "results.csv").read_text().strip().splitlines()
    assert rows[1].startswith("rank1_cell1_seed0,1,0,0.9,87.5,40.0")
    assert not (tmp_path / "s" / "runs").exists() or not any((tmp_path / "s" / "runs").iterdir())
    assert len(study.done()) == 1
