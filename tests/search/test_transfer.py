"""The transfer study: cell selection, correlations against scipy, and resume after kill -9."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from nasnet_det.search.runner import run_search
from nasnet_det.search.transfer import (
    Budget,
    TransferStudy,
    correlations,
    describe_correlation,
    select_cells,
)


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
    study = TransferStudy.__new__(TransferStudy)  # summarise needs only the output folder
    study.output = tmp_path
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
    assert len(rows) == 4 and rows[0].startswith("name,child_id,proxy_reward")
    assert (out / "transfer.png").stat().st_size > 0
    corr = json.loads((out / "correlations.json").read_text())
    assert set(corr) == {"accuracy", "AP"}
    # 3 cells (k=2 + NASNet-A): no correlation is reported as a number.
    for c in corr.values():
        assert c["tau"] is None and c["reason"] == "n=3: fewer than 5 points"
    assert rows[0] == "name,child_id,proxy_reward,accuracy_pct,AP,AP50,params,seconds"
