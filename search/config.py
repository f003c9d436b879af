"""Search configs: YAML files with the sections below, every key defaulted and checked.

``KEY VALUE`` overrides use dotted keys (``child.epochs 1``); values are parsed as YAML.
Unknown sections or keys raise a ``ValueError`` that names them.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from nasnet_det.search.child import CHILD_DEFAULTS

__all__ = ["DEFAULTS", "load_config", "resolve_config", "apply_overrides", "SEARCH_KEYS"]

DEFAULTS: dict[str, Any] = {
    "seed": 0,
    "max_children": 20000,  # the paper's budget
    "max_minutes": None,  # stop starting rounds when the next one would end past this
    # Children proposed and trained per round (None: the strategy's batch_size). Raise it to
    # about the number of workers on a cluster; PPO still updates once per batch_size children.
    "round_size": None,
    "mode": "standalone",  # or "weight_sharing"
    # ``name`` picks the strategy; every other key is passed to its constructor.
    "strategy": {"name": "ppo", "batch_size": 20},
    "space": {"num_blocks": 5, "ops": "all", "combiners": ["add", "concat"]},
    "data": {
        "name": "cifar10",  # or "digits" (built in, no download)
        "root": "datasets/cifar10",  # the folder holding cifar-10-batches-py
        "image_size": 32,
        "train_size": 45000,
        "val_size": 5000,
        "split_seed": 0,
    },
    "child": dict(CHILD_DEFAULTS),
    "execution": {
        "backend": "local",  # or "ray"
        "num_workers": 2,  # 0: train children in the search process
        "address": None,  # Ray cluster address; None starts a local Ray
        "gpus_per_child": 0,  # Ray: GPUs each child task reserves (e.g. 1, or 0.25 to share)
        "train_fn": "nasnet_det.search.child:train_child",
    },
    # ENAS-style weight sharing (mode: weight_sharing): one over-parameterised network holds
    # every op of every block; each round trains it on the round's children, then scores them
    # on validation batches with the shared weights; the ``retrain_top`` best are retrained
    # standalone with the child: settings.
    "weight_sharing": {
        "num_cells": 1,
        "num_conv_filters": 8,
        "steps_per_round": 50,
        "batch_size": 64,
        "lr": 0.05,
        "momentum": 0.9,
        "weight_decay": 1e-4,
        "grad_clip": 5.0,
        "eval_batches": 2,
        "retrain_top": 5,
        "device": "cpu",  # or "cuda" / "auto"
    },
    "outputs": {"plot": True, "diagrams": True, "progress": True},
}

#: Sections whose change makes a stored history a different search (``--resume`` refuses).
SEARCH_KEYS = ("seed", "mode", "round_size", "strategy", "space", "data", "child", "weight_sharing")


def _merge(base: dict, delta: dict, where: str, open_keys: bool = False) -> dict:
    out = copy.deepcopy(base)
    for k, v in delta.items():
        if k not in base and not open_keys:
            raise ValueError(
                f"unknown config key {where + k!r}; expected one of {', '.join(sorted(base))}"
            )
        if isinstance(base.get(k), dict) and k != "strategy":
            if not isinstance(v, dict):
                raise ValueError(f"config key {where + k!r} must be a mapping")
            out[k] = _merge(base[k], v, f"{where}{k}.")
        elif k == "strategy":
            if not isinstance(v, dict):
                raise ValueError("config key 'strategy' must be a mapping with a 'name'")
            out[k] = _merge(base[k], v, "strategy.", open_keys=True)
        else:
            out[k] = v
    return out


def resolve_config(cfg: dict | None) -> dict:
    """Defaults filled in, unknown keys rejected."""
    if cfg is None:
        cfg = {}
    if not isinstance(cfg, dict):
        raise ValueError(f"a search config must be a mapping, got {type(cfg).__name__}")
    out = _merge(DEFAULTS, cfg, "")
    if out["mode"] not in ("standalone", "weight_sharing"):
        raise ValueError(f"mode must be 'standalone' or 'weight_sharing', got {out['mode']!r}")
    rs = out["round_size"]
    if rs is not None and (isinstance(rs, bool) or not isinstance(rs, int) or rs < 1):
        raise ValueError(f"round_size must be a positive integer or null, got {rs!r}")
    if not isinstance(out["max_children"], int) or out["max_children"] < 1:
        raise ValueError(f"max_children must be a positive integer, got {out['max_children']!r}")
    return out


def load_config(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"search config {str(path)!r} does not exist")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ValueError(f"search config {str(path)!r} is not valid YAML: {e}") from None
    return resolve_config(raw or {})


def apply_overrides(cfg: dict, pairs: list[str]) -> dict:
    """``["child.epochs", "1", "strategy.name", "random"]`` -> new resolved config."""
    if len(pairs) % 2:
        raise ValueError(f"overrides come in KEY VALUE pairs, got {len(pairs)} words")
    cfg = copy.deepcopy(cfg)
    for key, text in zip(pairs[::2], pairs[1::2]):
        value = yaml.safe_load(text)
        parts = key.split(".")
        node = cfg
        for p in parts[:-1]:
            if not isinstance(node.get(p), dict):
                raise ValueError(f"unknown config key {key!r}")
            node = node[p]
        node[parts[-1]] = value
        # re-validate: catches misspelt keys except new strategy parameters
    return resolve_config(cfg)
