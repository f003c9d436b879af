"""Search configs: fvcore CfgNode defaults, _BASE_ deltas, typed overrides, checks at load."""

import subprocess
import sys
from pathlib import Path

import pytest
from nasnet_det.search import (
    SearchSpace,
    build_strategy,
    get_search_defaults,
    load_config,
    register_train_fn,
    resolve_config,
    run_search,
)
from nasnet_det.search.child import TRAIN_FNS
from nasnet_det.search.demo import DEMO_CONFIG

from nasnet_det.config import CfgNode

REPO = Path(__file__).resolve().parents[2]
CONFIGS = sorted((REPO / "configs" / "search").glob("*.yaml"))
INSTANT = REPO / "configs" / "search" / "instant_test.yaml"


def test_the_configs_exist():
    names = {p.name for p in CONFIGS}
    assert {
        "Base-CIFAR10.yaml",
        "cifar10_ppo.yaml",
        "cifar10_random.yaml",
        "cifar10_weight_sharing.yaml",
        "instant_test.yaml",
    } <= names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_config_builds_its_strategy(path):
    cfg = load_config(path)
    assert isinstance(cfg, CfgNode)
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
    # The random baseline searches the same space with the same budget and children, and
    # inherits them from the same base instead of repeating them.
    assert rnd["strategy"]["name"] == "random"
    for key in ("max_children", "space", "data", "child", "execution"):
        assert rnd[key] == ppo[key], key
    text = (REPO / "configs/search/cifar10_random.yaml").read_text()
    assert "_BASE_: Base-CIFAR10.yaml" in text and "child:" not in text
    ws = load_config(REPO / "configs/search/cifar10_weight_sharing.yaml")
    assert ws.mode == "weight_sharing" and ws.max_children == 2000
    assert ws.strategy == ppo.strategy and ws.child == ppo.child


def test_defaults_are_a_commented_cfgnode():
    cfg = get_search_defaults()
    assert isinstance(cfg, CfgNode) and cfg.execution.train_fn == "train_child"
    source = (REPO / "search" / "config.py").read_text()
    for key in ("max_children", "round_size", "space.ops", "execution.train_fn"):
        line = next(ln for ln in source.splitlines() if ln.startswith(f"_C.{key} ="))
        assert "#" in line or "# " in source.split(line)[0].splitlines()[-1], key


def test_overrides_are_typed_and_yaml_spellings_work():
    cfg = load_config(
        INSTANT,
        [
            "child.lr", "1",  # an int for a float key is the float
            "outputs.plot", "false",
            "space.ops", "[identity, conv_1x1]",
            "round_size", "null",
            "strategy.name", "evolution",
            "strategy.population_size", "3",
            "strategy.sample_size", "2",
        ],
    )  # fmt: skip
    assert cfg.child.lr == 1.0 and isinstance(cfg.child.lr, float)
    assert cfg.outputs.plot is False and cfg.round_size is None
    assert list(cfg.space.ops) == ["identity", "conv_1x1"]
    assert (cfg.strategy.population_size, cfg.strategy.sample_size) == (3, 2)
    assert load_config(INSTANT, ["strategy.name", "ppo", "strategy.lr", "1"]).strategy.lr == 1.0


def test_base_inheritance_in_user_files(tmp_path):
    (tmp_path / "base.yaml").write_text(f"_BASE_: {INSTANT}\nchild:\n  epochs: 3\n")
    (tmp_path / "mine.yaml").write_text("_BASE_: base.yaml\nchild:\n  lr: 0.2\n")
    cfg = load_config(tmp_path / "mine.yaml")
    assert (cfg.child.epochs, cfg.child.lr, cfg.data.name) == (3, 0.2, "digits")


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["max_children", "0"], "max_children must be an integer >= 1, got 0"),
        (["child.lr", "-1"], "child.lr must be a number > 0, got -1.0"),
        (["child.epochs", "0"], "child.epochs must be an integer >= 1, got 0"),
        (["child.epoch", "3"], "unknown config key child.epoch"),
        (
            ["strategy.name", "bayes"],
            "strategy.name must be one of evolution, ppo, random, reinforce, got 'bayes'",
        ),
        (["strategy.learning_rate", "1"], "strategy.learning_rate for strategy 'random'"),
        (["strategy.name", "ppo", "strategy.population_size", "3"], "its parameters are"),
        (["strategy.name", "ppo", "strategy.hidden", "1.5"], "strategy.hidden expects a int"),
        (["strategy.name", "ppo", "strategy.lr", "0"], "need lr > 0"),
        (["space.ops", "[identity, conv_9x9]"], "unknown op 'conv_9x9'"),
        (["space.num_blocks", "0"], "num_blocks must be a positive integer"),
        (
            ["data.name", "mnist"],
            "data.name must be one of cifar10, digits, digit_crops, got 'mnist'",
        ),
        (["data.image_size", "0"], "data.image_size must be an integer in [1, 4096], got 0"),
        (["mode", "darts"], "mode must be one of standalone, weight_sharing, got 'darts'"),
        (["round_size", "0"], "round_size must be an integer >= 1 or None"),
        (["execution.backend", "slurm"], "execution.backend must be one of"),
        (["execution.num_workers", "-1"], "execution.num_workers must be an integer >= 0"),
        (["execution.train_fn", "os:system"], "not a registered training function"),
        (["child.device", "tpu"], "child.device must be one of cpu, cuda, auto, got 'tpu'"),
        (
            ["child.drop_path_keep_prob", "0"],
            "child.drop_path_keep_prob must be a number in (0, 1], got 0",
        ),
        (["weight_sharing.grad_clip", "0"], "weight_sharing.grad_clip must be a number > 0"),
        (["seed", "abc"], "config key seed expects a int"),
        (["child.epochs"], "KEY VALUE pairs"),
    ],
)
def test_bad_values_are_refused_at_load_naming_the_key(overrides, message):
    with pytest.raises(ValueError, match=None) as e:
        load_config(INSTANT, overrides)
    assert message in str(e.value) and "\n" not in str(e.value)


EVIL_MODULE = """
import os
open(os.environ["PWN_MARKER"], "w").close()  # runs on import


def train(genotype, child_cfg, data_cfg, seed):
    open(os.environ["PWN_MARKER"], "w").close()
    return {"reward": 1.0}
"""


def test_train_fn_registry_never_imports_from_a_config(tmp_path, monkeypatch):
    marker = tmp_path / "PWNED"
    monkeypatch.setenv("PWN_MARKER", str(marker))
    (tmp_path / "evilmod.py").write_text(EVIL_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))  # importable: the old loader would have run it
    # 'module:function' strings (the old way) and any other unregistered name are refused.
    for spec in ("evilmod:train", "os:system", "nasnet_det.search.child:train_child"):
        with pytest.raises(ValueError, match="expected one of train_child"):
            load_config(INSTANT, ["execution.train_fn", spec])
    evil = tmp_path / "evil.yaml"
    evil.write_text(f"_BASE_: {INSTANT}\nexecution:\n  train_fn: 'evilmod:train'\n")
    with pytest.raises(ValueError, match="register_train_fn"):
        load_config(evil)
    with pytest.raises(ValueError, match="not a registered training function"):
        run_search(
            {"data": {"name": "digits"}, "execution": {"train_fn": "evilmod:train"}}, tmp_path / "o"
        )
    assert not marker.exists() and "evilmod" not in sys.modules
    assert not (tmp_path / "o").exists()
    # What a user does instead: register a function in Python, then name it.
    monkeypatch.setitem(TRAIN_FNS, "mine", None)
    register_train_fn("mine")(lambda g, c, d, s: {"reward": 0.5})
    assert load_config(INSTANT, ["execution.train_fn", "mine"]).execution.train_fn == "mine"


def test_python_dicts_resolve_like_files():
    cfg = resolve_config(DEMO_CONFIG)
    assert cfg.data.name == DEMO_CONFIG["data"]["name"]
    assert cfg.strategy.population_size == DEMO_CONFIG["strategy"]["population_size"]
    with pytest.raises(ValueError, match="unknown config key chld.epochs"):
        resolve_config({"chld": {"epochs": 1}})
    with pytest.raises(ValueError, match="child.epochs must be an integer >= 1"):
        resolve_config({**DEMO_CONFIG, "child": {"epochs": 0}})


def test_tool_errors_are_one_line(tmp_path):
    tool = [sys.executable, str(REPO / "tools" / "search_cells.py")]
    r = subprocess.run(
        tool + ["--config", str(tmp_path / "missing.yaml"), "--output", str(tmp_path / "o")],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("search_cells.py: error: ") and "does not exist" in lines[0]
    assert not (tmp_path / "o").exists()
