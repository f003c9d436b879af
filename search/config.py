"""Search configs: fvcore ``CfgNode`` defaults, YAML deltas on a base, typed overrides.

A search config loads the way Detectron2's do, through :func:`nasnet_det.config.load_config`:
the commented defaults below, a YAML file that may inherit from others (``_BASE_``, paths
relative to the file), then ``KEY VALUE`` overrides typed by the defaults (``child.epochs 1``).
YAML is read safely (a ``!!python`` tag is refused), unknown keys are refused, and every value
is checked here, at load, with one ``ValueError`` naming the key: nothing is trained or written
before a bad value is found.

The ``strategy`` node holds ``name``, ``batch_size`` and the chosen strategy's own parameters,
checked against (and typed by) the fields of that strategy's ``Params`` dataclass: a new
strategy needs no edit here.
"""

from __future__ import annotations

import ast
import dataclasses
import os
from collections.abc import Mapping, Sequence
from typing import Any

import yaml
from nasnet_det.search.child import CHILD_DEFAULTS, get_train_fn
from nasnet_det.search.data import DATASETS
from nasnet_det.search.executor import BACKENDS
from nasnet_det.search.space import SearchSpace
from nasnet_det.search.strategies import STRATEGIES

from nasnet_det.config import (
    CfgNode,
    ConfigError,
    Rule,
    check_table,
    choice,
    fail,
    integer,
    literal,
    merge_overrides,
    number,
)
from nasnet_det.config import load_config as _load_cfg
from nasnet_det.limits import max_image_side

__all__ = [
    "SEARCH_KEYS",
    "apply_overrides",
    "get_search_defaults",
    "load_config",
    "resolve_config",
    "to_plain",
    "validate_config",
]

_C = CfgNode()
_C.seed = 0
# Children proposed in total (the paper: 20,000): the budget is a count, never a wall-clock
# time, so a search repeats exactly from its seed.
_C.max_children = 20000
# Children proposed and trained per round (None: the strategy's batch_size). Raise it to about
# the number of workers on a cluster; PPO still updates once per batch_size children.
_C.round_size = None
_C.mode = "standalone"  # or "weight_sharing"

# ``name`` picks a registered strategy (ppo, reinforce, random, evolution); the other keys are
# the fields of that strategy's Params dataclass (e.g. ppo: lr, entropy_weight, baseline_decay,
# hidden, init_range, clip_eps, ppo_epochs; evolution: population_size, sample_size).
_C.strategy = CfgNode(new_allowed=True)
_C.strategy.name = "ppo"
_C.strategy.batch_size = 20  # children per strategy update (PPO: the paper's 20)

_C.space = CfgNode()
_C.space.num_blocks = 5  # B, blocks per cell
_C.space.ops = None  # op names from nasnet_det.ops; None or "all": all 13
_C.space.combiners = ["add", "concat"]

_C.data = CfgNode()
_C.data.name = "cifar10"  # or "digits" (scikit-learn's, built in, no download)
_C.data.root = "datasets/cifar10"  # the folder holding cifar-10-batches-py
_C.data.image_size = 32
_C.data.train_size = 45000  # the paper's 45k/5k split of CIFAR-10's training set
_C.data.val_size = 5000
_C.data.split_seed = 0

# The proxy training of each child (see nasnet_det.search.child.CHILD_DEFAULTS).
_C.child = CfgNode(dict(CHILD_DEFAULTS))

_C.execution = CfgNode()
_C.execution.backend = "local"  # or "ray", or "tabular" (look children up in a trained table)
_C.execution.num_workers = 2  # 0: train children in the search process
_C.execution.address = None  # Ray cluster address; None starts a local Ray
_C.execution.gpus_per_child = 0.0  # Ray: GPUs each child task reserves (1, or 0.25 to share)
# A name registered with nasnet_det.search.child.register_train_fn (configs never import code).
_C.execution.train_fn = "train_child"
# backend tabular: the table file (nasnet_det.search.tabular); None: the one shipped in the package
_C.execution.table = None

# ENAS-style weight sharing (mode: weight_sharing): one over-parameterised network holds every
# op of every block; each round trains it on the round's children, then scores them on held-out
# batches with the shared weights; the retrain_top best are retrained standalone (child: node).
_C.weight_sharing = CfgNode()
_C.weight_sharing.num_cells = 1
_C.weight_sharing.num_conv_filters = 8
_C.weight_sharing.steps_per_round = 50
_C.weight_sharing.batch_size = 64
_C.weight_sharing.lr = 0.05
_C.weight_sharing.momentum = 0.9
_C.weight_sharing.weight_decay = 1e-4
_C.weight_sharing.grad_clip = 5.0
_C.weight_sharing.eval_batches = 2
_C.weight_sharing.retrain_top = 5
_C.weight_sharing.device = "cpu"  # or "cuda" / "auto"

_C.outputs = CfgNode()
_C.outputs.plot = True  # rewards.png at the end
_C.outputs.diagrams = True  # cell_normal/cell_reduction .png/.svg of the best child
_C.outputs.progress = True  # a progress bar on stderr

#: Nodes whose change makes a stored history a different search (``--resume`` refuses).
SEARCH_KEYS = ("seed", "mode", "round_size", "strategy", "space", "data", "child", "weight_sharing")

_DEVICES = ("cpu", "cuda", "auto")


def get_search_defaults() -> CfgNode:
    """A fresh copy of the commented defaults."""
    return _C.clone()


def load_config(path: str | os.PathLike, overrides: Sequence[str] = ()) -> CfgNode:
    """Defaults, then the YAML file ``path`` (with its ``_BASE_`` chain), then ``overrides``."""
    cfg = _load_cfg(_C, path, what="search config")
    return apply_overrides(cfg, overrides)


def apply_overrides(cfg: CfgNode, pairs: Sequence[str]) -> CfgNode:
    """A checked copy of ``cfg`` with ``KEY VALUE`` pairs (``["child.epochs", "1"]``) merged."""
    pairs = [str(p) for p in pairs]
    if len(pairs) % 2:
        raise ConfigError(f"command line: overrides must be KEY VALUE pairs, got {pairs}")
    pairs = [p if i % 2 == 0 else _yaml_words(p) for i, p in enumerate(pairs)]
    cfg = resolve_config(cfg, check=False)
    _admit_strategy_keys(cfg, pairs)
    merge_overrides(cfg, pairs)
    validate_config(cfg)
    return cfg


def resolve_config(cfg: Mapping | None = None, check: bool = True) -> CfgNode:
    """A ``CfgNode`` from ``cfg``: a node is copied, a plain nested dict (Python callers) is
    merged into the defaults as typed overrides; checked unless ``check=False``."""
    if cfg is None:
        out = get_search_defaults()
    elif isinstance(cfg, CfgNode):
        out = cfg.clone()
    elif isinstance(cfg, Mapping):
        out = get_search_defaults()
        pairs = [s for key, value in _flatten(cfg) for s in (key, repr(value))]
        _admit_strategy_keys(out, pairs)
        merge_overrides(out, pairs, what="search config")
    else:
        raise ConfigError(f"a search config must be a mapping, got {type(cfg).__name__}")
    if check:
        validate_config(out)
    return out


def to_plain(node: Any) -> Any:
    """``CfgNode`` -> nested plain ``dict`` (for JSON, workers and Ray)."""
    if isinstance(node, Mapping):
        return {k: to_plain(v) for k, v in node.items()}
    if isinstance(node, tuple):
        return [to_plain(v) for v in node]
    return node


def _flatten(d: Mapping, prefix: str = "") -> list[tuple[str, Any]]:
    out = []
    for k, v in d.items():
        if isinstance(v, Mapping):
            out += _flatten(v, f"{prefix}{k}.")
        else:
            out.append((f"{prefix}{k}", v))
    return out


def _strategy_params(name: str) -> dict[str, Any]:
    """``{parameter: default}`` of a registered strategy (its ``Params`` dataclass fields)."""
    return {f.name: f.default for f in dataclasses.fields(STRATEGIES[name].Params)}


def _admit_strategy_keys(cfg: CfgNode, pairs: Sequence[str]) -> None:
    """Let ``strategy.<param>`` overrides through when ``<param>`` belongs to the strategy the
    config ends up with (inserted with its ``Params`` default, so the merge types the value)."""
    keys = list(pairs[0::2])
    name = cfg.strategy.name
    for key, value in zip(keys, pairs[1::2]):
        if key == "strategy.name":
            name = literal(value)
    name = name if isinstance(name, str) else ""
    params = _strategy_params(name) if name in STRATEGIES else {}
    for k, default in params.items():  # a YAML int for a float parameter: a float, as meant
        v = cfg.strategy.get(k)
        if isinstance(default, float) and isinstance(v, int) and not isinstance(v, bool):
            cfg.strategy[k] = float(v)
    for key in keys:
        parts = key.split(".")
        if len(parts) != 2 or parts[0] != "strategy" or parts[1] in cfg.strategy:
            continue
        if parts[1] not in params:
            raise ConfigError(
                f"unknown config key {key} for strategy {name!r}; its parameters are "
                f"{', '.join(sorted(params)) or 'unknown (unknown strategy)'}"
            )
        cfg.strategy[parts[1]] = params[parts[1]]


def _yaml_words(text: str) -> str:
    """Values are Python literals (``False``, ``['a', 'b']``); YAML spellings a user types
    (``false``, ``null``, ``[a, b]``) are read safely as YAML and passed on as literals."""
    try:
        ast.literal_eval(text)
        return text
    except (ValueError, SyntaxError):
        pass
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return text if isinstance(value, str) else repr(value)


def _checks() -> list[tuple[str, Rule]]:
    """``(key, rule)`` for every plain value; the space, the strategy's parameters and the
    training function are checked by the code that uses them (below)."""
    positive = number(0, open_low=True)
    return [
        ("seed", integer(0)),
        ("max_children", integer(1)),
        ("round_size", integer(1, none_ok=True)),
        ("mode", choice("standalone", "weight_sharing")),
        ("strategy.name", choice(*sorted(STRATEGIES))),
        ("strategy.batch_size", integer(1)),
        ("data.name", choice(*DATASETS)),
        ("data.image_size", integer(1, max_image_side())),
        ("data.train_size", integer(1)),
        ("data.val_size", integer(1)),
        ("data.split_seed", integer(0)),
        *((f"child.{k}", integer(1)) for k in ("num_cells", "num_conv_filters", "epochs",
                                               "batch_size", "eval_batch_size")),
        ("child.stem_multiplier", positive),
        ("child.drop_path_keep_prob", number(0, 1, open_low=True)),
        ("child.lr", positive),
        ("child.momentum", number(0, 1)),
        ("child.weight_decay", number(0)),
        ("child.grad_clip", number(0)),
        ("child.schedule", choice("cosine", "constant")),
        ("child.device", choice(*_DEVICES)),
        ("execution.backend", choice(*BACKENDS)),
        ("execution.num_workers", integer(0)),
        ("execution.gpus_per_child", number(0)),
        *((f"weight_sharing.{k}", integer(1)) for k in ("num_cells", "num_conv_filters",
                                                        "steps_per_round", "batch_size",
                                                        "eval_batches")),
        ("weight_sharing.retrain_top", integer(0)),
        ("weight_sharing.lr", positive),
        ("weight_sharing.momentum", number(0, 1)),
        ("weight_sharing.weight_decay", number(0)),
        ("weight_sharing.grad_clip", positive),
        ("weight_sharing.device", choice(*_DEVICES)),
    ]  # fmt: skip


def validate_config(cfg: CfgNode) -> None:
    """Check every value (ranges, known names); one ``ConfigError`` naming the first bad key."""
    check_table(cfg, _checks())
    _check_space(cfg)
    _check_strategy(cfg)
    try:
        get_train_fn(cfg.execution.train_fn)
    except ValueError as e:
        raise ConfigError(f"config key {e}") from None


def _check_space(cfg: CfgNode) -> None:
    if cfg.space.ops in ("all",):
        cfg.space.ops = None
    try:
        SearchSpace.from_config(cfg.space)
    except ValueError as e:
        raise ConfigError(f"config node space: {e}") from None


def _check_strategy(cfg: CfgNode) -> None:
    """Each ``strategy.<key>`` is a field of the strategy's ``Params``, of its default's type;
    the dataclass then checks the values together (ranges that depend on each other)."""
    name = cfg.strategy.name
    params = _strategy_params(name)
    for k, v in cfg.strategy.items():
        if k == "name":
            continue
        if k not in params:
            raise ConfigError(
                f"unknown config key strategy.{k} for strategy {name!r}; its "
                f"parameters are {', '.join(sorted(params))}"
            )
        want = type(params[k])
        if want is float and isinstance(v, int) and not isinstance(v, bool):
            cfg.strategy[k] = v = float(v)
        if type(v) is not want:
            fail(f"strategy.{k}", f"a {want.__name__} (default {params[k]!r})", v)
    try:
        STRATEGIES[name].Params(**{k: v for k, v in cfg.strategy.items() if k != "name"})
    except ValueError as e:
        raise ConfigError(f"config node strategy (name {name}): {e}") from None
