"""Pretraining configuration: defaults, YAML deltas (``yaml.safe_load``), ``KEY VALUE`` overrides.

A config is a nested dict of plain values. Files hold only what differs from :data:`DEFAULTS`;
command-line overrides use dotted keys (``optim.lr 0.02``) whose values are parsed as YAML
(``0.02`` is a float, ``[1, 2]`` a list, ``null`` None). Unknown keys are errors.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import yaml

__all__ = ["DEFAULTS", "load_config", "apply_overrides", "merge"]

#: Every key, with the paper's ImageNet recipe as the default (NASNet-A Mobile).
DEFAULTS: dict[str, Any] = {
    "model": {
        "preset": "nasnet_a_mobile",  # a build_nasnet preset
        "overrides": {},  # NASNetConfig fields, e.g. genotype (name or .json path), num_cells
    },
    "data": {
        "image_size": 224,  # training crop and evaluation size (224 mobile, 331 large)
        "scale": [0.08, 1.0],  # Inception crop: fraction of the image area
        "ratio": [0.75, 1.3333333],  # Inception crop: aspect ratio range
        "hflip": 0.5,  # probability of a horizontal flip
        "crop_pct": 0.875,  # evaluation: resize the short side to image_size / crop_pct
        "interpolation": "bilinear",  # bilinear | bicubic
        "mean": [0.5, 0.5, 0.5],  # scales inputs to [-1, 1] as TF-slim does
        "std": [0.5, 0.5, 0.5],
        "num_workers": 8,  # DataLoader worker processes per training process
    },
    "optim": {
        "batch_size": 32,  # images per process per step
        "lr": 0.04,  # learning rate for lr_batch images; scaled linearly with the global batch
        "lr_batch": 32,
        "rmsprop_decay": 0.9,  # TF RMSProp (epsilon inside the square root, mean square from 1)
        "rmsprop_momentum": 0.9,
        "rmsprop_eps": 1.0,
        "weight_decay": 4.0e-5,  # L2 on conv and linear weights (not BN, not biases)
        "label_smoothing": 0.1,
        "aux_weight": 0.4,  # auxiliary head loss weight
        "clip_grad_norm": 10.0,  # global gradient norm clip; 0 disables
        "lr_decay": 0.97,  # staircase exponential decay factor ...
        "lr_decay_epochs": 2.4,  # ... applied every this many epochs
        "warmup_epochs": 3.0,  # linear warm-up from warmup_lr to lr
        "warmup_lr": 1.0e-6,
        "ema_decay": 0.9999,  # weight EMA; TF's min(decay, (1 + n) / (10 + n)) warm-up
    },
    "train": {
        "epochs": 312,  # 250k steps of 1600 images (TF-slim) over 1.28M images
        "seed": 0,
        "amp": True,  # float16 autocast + gradient scaling (GPU only; ignored on CPU)
        "channels_last": True,  # GPU only
        "checkpoint_every": 1000,  # also checkpoint every this many steps (0: epoch ends only)
        "log_every": 50,  # TensorBoard scalar interval in steps
        "threads": 0,  # torch CPU threads per process (0: torch's default)
        "max_steps": 0,  # stop after this many steps in total (0: no limit; smoke tests)
    },
}


def merge(base: dict[str, Any], delta: dict[str, Any], where: str = "") -> dict[str, Any]:
    """``base`` updated by ``delta`` recursively; keys absent from ``base`` raise ValueError.

    ``model.overrides`` is free-form (checked by :func:`nasnet_det.build_nasnet`).
    """
    out = copy.deepcopy(base)
    for key, value in delta.items():
        path = f"{where}.{key}" if where else str(key)
        if key not in out:
            raise ValueError(
                f"unknown config key {path!r}; expected one of "
                f"{', '.join(f'{where}.{k}' if where else k for k in out)}"
            )
        if isinstance(out[key], dict) and path != "model.overrides":
            if not isinstance(value, dict):
                raise ValueError(f"config key {path!r} must be a mapping, got {value!r}")
            out[key] = merge(out[key], value, path)
        else:
            out[key] = copy.deepcopy(value)
    return out


def apply_overrides(cfg: dict[str, Any], pairs: list[str]) -> dict[str, Any]:
    """Apply ``["optim.lr", "0.02", "train.epochs", "3"]`` (values parsed as YAML)."""
    if len(pairs) % 2:
        raise ValueError(f"overrides must be KEY VALUE pairs, got an odd count: {pairs}")
    for key, raw in zip(pairs[::2], pairs[1::2]):
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as e:
            raise ValueError(f"override {key}: cannot parse {raw!r} as YAML: {e}") from None
        delta: dict[str, Any] = value
        for part in reversed(key.split(".")):
            delta = {part: delta}
        cfg = merge(cfg, delta)
    return cfg


def load_config(path: str | os.PathLike | None, overrides: list[str] | None = None) -> dict:
    """:data:`DEFAULTS` updated by the YAML file at ``path`` (if any), then ``overrides``."""
    cfg = copy.deepcopy(DEFAULTS)
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ValueError(f"config file {str(p)!r} does not exist")
        try:
            delta = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as e:
            raise ValueError(f"config file {str(p)!r} is not valid YAML: {e}") from None
        if not isinstance(delta, dict):
            raise ValueError(f"config file {str(p)!r} must hold a mapping at the top level")
        cfg = merge(cfg, delta)
    cfg = apply_overrides(cfg, list(overrides or []))
    validate(cfg)
    return cfg


def validate(cfg: dict[str, Any]) -> None:
    """Range checks that would otherwise fail deep inside training."""
    d, o, t = cfg["data"], cfg["optim"], cfg["train"]
    checks = [
        (
            "data.image_size",
            d["image_size"],
            isinstance(d["image_size"], int) and d["image_size"] > 0,
        ),
        ("data.crop_pct", d["crop_pct"], 0 < float(d["crop_pct"]) <= 1),
        ("data.interpolation", d["interpolation"], d["interpolation"] in ("bilinear", "bicubic")),
        (
            "optim.batch_size",
            o["batch_size"],
            isinstance(o["batch_size"], int) and o["batch_size"] > 0,
        ),
        ("optim.lr", o["lr"], float(o["lr"]) > 0),
        ("optim.ema_decay", o["ema_decay"], 0 <= float(o["ema_decay"]) < 1),
        ("train.epochs", t["epochs"], isinstance(t["epochs"], int) and t["epochs"] > 0),
        (
            "data.num_workers",
            d["num_workers"],
            isinstance(d["num_workers"], int) and d["num_workers"] >= 0,
        ),
    ]
    for key, value, ok in checks:
        if not ok:
            raise ValueError(f"config {key} has an invalid value {value!r}")
