"""Ray and local worker processes train the same children to the same rewards; weight sharing
runs end to end and retrains its best children standalone."""

import json

import pytest
from nasnet_det.search import run_search

from nasnet_det import get_genotype

FAST = ["outputs.plot", "false", "outputs.diagrams", "false"]


@pytest.mark.slow
def test_ray_matches_local_workers(tmp_path, instant_config):
    pytest.importorskip("ray")
    import ray

    cfg = instant_config(
        "max_children", "4", "strategy.batch_size", "2", "execution.num_workers", "2", *FAST
    )
    local = run_search(cfg, tmp_path / "local", backend="local")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        remote = run_search(cfg, tmp_path / "ray", backend="ray")
    finally:
        ray.shutdown()
    assert [c["key"] for c in remote.children] == [c["key"] for c in local.children]
    for a, b in zip(remote.children, local.children):
        assert a["status"] == b["status"] == "ok"
        assert a["reward"] == pytest.approx(b["reward"], abs=1e-12)


def test_weight_sharing_mode(tmp_path, instant_config):
    cfg = instant_config("mode", "weight_sharing", "max_children", "6", *FAST)
    res = run_search(cfg, tmp_path)
    shared = [c for c in res.children if c["phase"] == "shared"]
    standalone = [c for c in res.children if c["phase"] == "standalone"]
    assert len(shared) == 6 and len(standalone) == 2  # retrain_top: 2
    best_shared = sorted(shared, key=lambda c: (-c["reward"], c["child_id"]))[:2]
    assert sorted(c["key"] for c in standalone) == sorted(c["key"] for c in best_shared)
    assert [c["child_id"] for c in standalone] == [6, 7]
    # The reported best is a standalone-trained child.
    assert res.best_child_id in (6, 7)
    get_genotype(str(tmp_path / "best_genotype.json"))
    # Resuming a finished weight-sharing search changes nothing.
    again = run_search(cfg, tmp_path, resume=True, train_fn=lambda *a: 1 / 0)
    assert [c["reward"] for c in again.children] == [c["reward"] for c in res.children]


def test_shared_net_runs_every_op():
    import numpy as np
    import torch
    from nasnet_det.search.space import SearchSpace
    from nasnet_det.search.weight_sharing import SharedNet

    space = SearchSpace(num_blocks=2)
    net = SharedNet(space, num_cells=1, num_conv_filters=2, num_classes=3)
    rng = np.random.default_rng(0)
    for _ in range(5):
        out = net(torch.randn(2, 3, 8, 8), space.sample(rng))
        assert out.shape == (2, 3) and torch.isfinite(out).all()
    # Every op of every block exists for both branches, strided twins in reduction cells.
    normal, reduction = net.cells[0], net.cells[1]
    assert len(normal.ops) == 2 * 2 * 13 and len(reduction.ops) == 2 * 2 * 13 * 2


CRASHING_TRAIN_FN = """
import os
import signal


def train(genotype, child_cfg, data_cfg, seed):
    if genotype.normal[0].left.input == 0:
        os.kill(os.getpid(), signal.SIGKILL)  # what the kernel's OOM killer does
    return {"reward": 0.5, "params": 1}
"""


@pytest.mark.slow
def test_killed_worker_fails_its_child_only(tmp_path, monkeypatch, instant_config):
    (tmp_path / "crashmod.py").write_text(CRASHING_TRAIN_FN)
    monkeypatch.syspath_prepend(str(tmp_path))  # spawned workers get the parent's sys.path
    import crashmod
    from nasnet_det.search.child import TRAIN_FNS

    # Registered in Python (configs only name registered functions); the workers receive the
    # function by reference and import crashmod themselves.
    monkeypatch.setitem(TRAIN_FNS, "crash_on_input_0", crashmod.train)
    cfg = instant_config(
        "max_children",
        "4",
        "strategy.batch_size",
        "4",
        "execution.num_workers",
        "2",
        "execution.train_fn",
        "crash_on_input_0",
        *FAST,
    )
    res = run_search(cfg, tmp_path / "out")
    assert len(res.children) == 4
    for c in res.children:
        crashes = json.loads(c["genotype"])["normal"][0]["left"][1] == 0
        if crashes:
            assert c["status"] == "failed" and "worker process died" in c["error"]
        else:
            assert c["status"] == "ok" and c["reward"] == 0.5, c["error"]
    assert {c["status"] for c in res.children} == {"ok", "failed"}
