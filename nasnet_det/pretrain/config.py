"""Pretraining configuration: a commented fvcore ``CfgNode`` of defaults, as Detectron2 keeps its.

:func:`get_cfg` returns the defaults (the paper's ImageNet recipe for NASNet-A Mobile); a config
file holds only what differs from them and may inherit from another through ``_BASE_``
(``configs/ImageNet/Base-NASNet-ImageNet.yaml``); ``KEY VALUE`` pairs from the command line
(``optim.lr 0.02``) are typed by the default's type. Loading goes through
:func:`nasnet_det.config.load_config` (safe YAML, unknown keys refused, one-line errors naming the
file and key), so pretraining, search and detection configs behave alike.

``model.overrides`` is the one open node: its keys are :class:`nasnet_det.nasnet.NASNetConfig`
fields (``model.overrides.num_cells 2``), checked by :func:`nasnet_det.build_nasnet`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from nasnet_det.config import (
    CfgNode,
    ConfigError,
    Rule,
    check_table,
    choice,
    integer,
    literal,
    merge_overrides,
    number,
    numbers,
)
from nasnet_det.config import load_config as _load_config
from nasnet_det.limits import max_image_side

__all__ = ["apply_overrides", "get_cfg", "load_config", "to_dict", "validate"]

_C = CfgNode()

_C.model = CfgNode()
# A build_nasnet preset: nasnet_a_mobile, nasnet_a_large or nasnet_a_cifar.
_C.model.preset = "nasnet_a_mobile"
# NASNetConfig fields that differ from the preset, e.g. genotype (a registered name or a
# Genotype .json path), num_cells, num_conv_filters, drop_path_keep_prob. num_classes and
# image_size are filled in from the data and data.image_size.
_C.model.overrides = CfgNode(new_allowed=True)

_C.data = CfgNode()
# Training crop and evaluation size in pixels (224 for Mobile, 331 for Large).
_C.data.image_size = 224
# Inception crop: range of the crop's fraction of the image area.
_C.data.scale = [0.08, 1.0]
# Inception crop: range of the crop's aspect ratio.
_C.data.ratio = [0.75, 1.3333333]
# Probability of a horizontal flip.
_C.data.hflip = 0.5
# Evaluation: the short side is resized to image_size / crop_pct, then centre-cropped.
_C.data.crop_pct = 0.875
# Resampling filter: bilinear or bicubic.
_C.data.interpolation = "bilinear"
# Per-channel mean and std; 0.5 maps inputs to [-1, 1] as TF-slim does.
_C.data.mean = [0.5, 0.5, 0.5]
_C.data.std = [0.5, 0.5, 0.5]
# DataLoader worker processes per training process (0: load in the training process).
_C.data.num_workers = 8

_C.optim = CfgNode()
# Images per process per step.
_C.optim.batch_size = 32
# Learning rate for lr_batch images; scaled linearly with the global batch.
_C.optim.lr = 0.04
_C.optim.lr_batch = 32
# TF RMSProp: decay of the mean square (which starts at 1), momentum, epsilon inside the root.
_C.optim.rmsprop_decay = 0.9
_C.optim.rmsprop_momentum = 0.9
_C.optim.rmsprop_eps = 1.0
# L2 weight decay on conv and linear weights (not on batch norm, not on biases).
_C.optim.weight_decay = 4.0e-5
# Label smoothing of the cross-entropy.
_C.optim.label_smoothing = 0.1
# Weight of the auxiliary head's loss.
_C.optim.aux_weight = 0.4
# Global gradient-norm clip; 0 disables.
_C.optim.clip_grad_norm = 10.0
# Staircase exponential decay: the rate is multiplied by lr_decay every lr_decay_epochs.
_C.optim.lr_decay = 0.97
_C.optim.lr_decay_epochs = 2.4
# Linear warm-up from warmup_lr to lr over this many epochs.
_C.optim.warmup_epochs = 3.0
_C.optim.warmup_lr = 1.0e-6
# Weight EMA decay, with TF's min(decay, (1 + n) / (10 + n)) warm-up.
_C.optim.ema_decay = 0.9999

_C.train = CfgNode()
# Epochs over train/ (312: TF-slim's 250k steps of 1600 images over 1.28M images).
_C.train.epochs = 312
# Seed of the weights, the sample order and the augmentation (results repeat for one seed).
_C.train.seed = 0
# float16 autocast with gradient scaling (GPU only; ignored on CPU).
_C.train.amp = True
# channels_last memory format (GPU only).
_C.train.channels_last = True
# Also checkpoint every this many steps (0: at epoch ends only).
_C.train.checkpoint_every = 1000
# TensorBoard scalar interval in steps.
_C.train.log_every = 50
# torch CPU threads per process (0: torch's default).
_C.train.threads = 0
# Stop after this many steps in total (0: no limit; for smoke tests and benchmarks).
_C.train.max_steps = 0


def get_cfg() -> CfgNode:
    """A fresh copy of the defaults (modify it freely)."""
    return _C.clone()


_OPEN = "model.overrides."


def _split_open_keys(cfg: CfgNode, opts: Sequence[str]) -> list[str]:
    """Set new ``model.overrides.<field>`` keys (the open node) and return the other pairs."""
    opts = [str(o) for o in opts]
    if len(opts) % 2:
        raise ConfigError(
            f"command line: overrides must be KEY VALUE pairs, got an odd list {opts}"
        )
    rest: list[str] = []
    for key, value in zip(opts[0::2], opts[1::2]):
        if key == "model.overrides":
            raise ConfigError(
                "command line: set model.overrides one field at a time, e.g. "
                "model.overrides.num_cells 2"
            )
        field = key[len(_OPEN) :] if key.startswith(_OPEN) else None
        if field is not None and field not in cfg.model.overrides:
            if not field.isidentifier():
                raise ConfigError(f"command line: {key!r} is not a NASNetConfig field name")
            cfg.model.overrides[field] = literal(value)
            continue
        rest += [key, value]
    return rest


def apply_overrides(cfg: CfgNode, opts: Sequence[str]) -> CfgNode:
    """Merge ``["optim.lr", "0.02", "model.overrides.num_cells", "2"]`` into ``cfg`` and
    validate; returns ``cfg``."""
    merge_overrides(cfg, _split_open_keys(cfg, opts))
    validate(cfg)
    return cfg


def load_config(
    path: str | os.PathLike | None = None, overrides: Sequence[str] | None = None
) -> CfgNode:
    """The defaults merged with the YAML file at ``path`` (if any) and ``overrides``, validated."""
    cfg = _load_config(_C, path)
    return apply_overrides(cfg, list(overrides or []))


def from_dict(stored: dict[str, Any], where: str) -> CfgNode:
    """A config stored as a plain dict (in a checkpoint) back as a validated node."""
    cfg = get_cfg()
    try:
        cfg.merge_from_other_cfg(CfgNode(stored))
    except (KeyError, ValueError, AssertionError, TypeError) as e:
        raise ConfigError(f"{where}: its stored config does not fit this version ({e})") from None
    validate(cfg)
    return cfg


def to_dict(cfg: CfgNode | dict) -> dict[str, Any]:
    """Plain nested dicts (checkpoints hold these: ``torch.load(weights_only=True)`` reads them)."""
    return {k: to_dict(v) if isinstance(v, dict) else v for k, v in cfg.items()}


def _pair_range(high: float | None) -> Rule:
    return Rule(
        lambda v: len(v) == 2 and all(map(number().holds, v)) and 0 < v[0] <= v[1]
        and (high is None or v[1] <= high),
        "[min, max] with 0 < min <= max" + (f" <= {high}" if high is not None else ""),
    )  # fmt: skip


def _checks() -> list[tuple[str, Rule]]:
    """``(key, rule)``: range checks that would otherwise fail deep in training."""
    return [
        ("model.preset", Rule(lambda v: isinstance(v, str), "a preset name")),
        ("data.image_size", integer(1, max_image_side())),
        ("data.scale", _pair_range(1)),
        ("data.ratio", _pair_range(None)),
        ("data.hflip", number(0, 1, note="a probability")),
        ("data.crop_pct", number(0, 1, open_low=True)),
        ("data.interpolation", choice("bilinear", "bicubic")),
        ("data.mean", numbers(3, number())),
        ("data.std", numbers(3, number(0, open_low=True))),
        ("data.num_workers", integer(0)),
        ("optim.batch_size", integer(1)),
        ("optim.lr", number(0, open_low=True)),
        ("optim.lr_batch", integer(1)),
        *((f"optim.{k}", number(0, 1, open_high=True))
          for k in ("rmsprop_decay", "rmsprop_momentum", "label_smoothing", "ema_decay")),
        ("optim.rmsprop_eps", number(0, open_low=True)),
        *((f"optim.{k}", number(0)) for k in ("weight_decay", "aux_weight", "warmup_epochs",
                                              "warmup_lr")),
        ("optim.clip_grad_norm", number(0, note="0 disables")),
        ("optim.lr_decay", number(0, 1, open_low=True)),
        ("optim.lr_decay_epochs", number(0, open_low=True)),
        ("train.epochs", integer(1)),
        ("train.seed", integer(0)),
        ("train.checkpoint_every", integer(0, note="0: epoch ends only")),
        ("train.log_every", integer(1)),
        ("train.threads", integer(0, note="0: torch's default")),
        ("train.max_steps", integer(0, note="0: no limit")),
    ]  # fmt: skip


def validate(cfg: CfgNode) -> None:
    """Refuse, naming the key, a value that would fail deep inside training (or silently
    train nothing, as ``train.epochs 0`` would)."""
    check_table(cfg, _checks())
