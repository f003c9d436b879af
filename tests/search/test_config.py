import subprocess
import sys
from pathlib import Path

import pytest
from nasnet_det.search import SearchSpace, build_strategy, load_config, resolve_config
from nasnet_det.search.demo import DEMO_CONFIG

REPO = Path(__file__).resolve().parents[2]
CONFIGS = sorted((REPO / "configs" / "search").glob("*.yaml"))


def test_the_four_configs_exist():
    names = {p.name for p in CONFIGS}
    assert {
        "cifar10_ppo.yaml",
        "cifar10_random.yaml",
        "cifar10_weight_sharing.yaml",
        "instant_test.yaml",
    } <= names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_config_builds_its_strategy(path):
    cfg = load_config(path)
    space = SearchSpace.from_config(cfg["space"])
    params = {k: v for k, v in cfg["strategy"].items() if k != "name"}
    build_strategy(cfg["strategy"]["name"], space, cfg["seed"], **params)


def test_paper_search_settings():
    ppo = load_config(REPO / "configs/search/cifar10_ppo.yaml")
    rnd = load_config(REPO / "configs/search/cifar10_random.yaml")
    # Paper section 4: PPO, lr 0.00035, entropy 1e-5, EMA 0.95, minibatch 20, ~20,000 children
    # with N = 2 trained 20 epochs on 45k CIFAR-10 images and validated on 5k.
    s = ppo["strategy"]
    assert (s["name"], s["lr"], s["entropy_weight"], s["baseline_decay"], s["batch_size"]) == (
        "ppo",
        0.00035,
        1e-5,
        0.95,
        20,
    )
    assert (s["hidden"], s["init_range"]) == (100, 0.1)
    assert ppo["max_children"] == 20000 and ppo["space"]["num_blocks"] == 5
    assert ppo["child"]["num_cells"] == 2 and ppo["child"]["epochs"] == 20
    assert ppo["child"]["schedule"] == "cosine"
    assert (ppo["data"]["train_size"], ppo["data"]["val_size"]) == (45000, 5000)
    assert SearchSpace.from_config(ppo["space"]).num_decisions == 50
    # The random baseline searches the same space with the same budget and children.
    assert rnd["strategy"]["name"] == "random"
    for key in ("max_children", "space", "data", "child"):
        assert rnd[key] == ppo[key], key


def test_demo_config_resolves():
    cfg = resolve_config(DEMO_CONFIG)
    assert cfg["data"]["name"] == "digits"


def test_tool_errors_are_one_line(tmp_path):
    tool = [sys.executable, str(REPO / "tools" / "search_cells.py")]
    r = subprocess.run(
        tool + ["--config", str(tmp_path / "missing.yaml"), "--output", str(tmp_path / "o")],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("search_cells.py: error: ") and "does not exist" in last
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "o").exists()
    r = subprocess.run(
        tool + ["--compare", str(tmp_path), "--output", str(tmp_path / "x.png")],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and "no leaderboard.csv" in r.stderr
