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

import ast
import os
from collections.abc import Callable, Sequence
from typing import Any

from nasnet_det.config import CfgNode, ConfigError, merge_overrides
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


def _literal(text: str) -> Any:
    """A command-line value as the config mechanism reads it: a Python literal, else a string."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


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
            cfg.model.overrides[field] = _literal(value)
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


def _positive_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v > 0


def _nonneg_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _range(v: Any) -> bool:
    return len(v) == 2 and all(isinstance(x, (int, float)) for x in v) and 0 < v[0] <= v[1]


def _triple(v: Any) -> bool:
    return len(v) == 3 and all(isinstance(x, (int, float)) for x in v)


#: ``(key, test, what is expected)``: range checks that would otherwise fail deep in training.
_CHECKS: list[tuple[str, Callable[[Any], bool], str]] = [
    (
        "data.image_size",
        lambda v: _positive_int(v) and v <= max_image_side(),
        f"an integer in [1, {max_image_side()}]",
    ),  # fmt: skip
    ("data.scale", lambda v: _range(v) and v[1] <= 1, "[min, max] with 0 < min <= max <= 1"),
    ("data.ratio", _range, "[min, max] with 0 < min <= max"),
    ("data.hflip", lambda v: 0 <= v <= 1, "a probability in [0, 1]"),
    ("data.crop_pct", lambda v: 0 < v <= 1, "in (0, 1]"),
    ("data.interpolation", lambda v: v in ("bilinear", "bicubic"), "bilinear or bicubic"),
    ("data.mean", _triple, "three numbers"),
    ("data.std", lambda v: _triple(v) and min(v) > 0, "three positive numbers"),
    ("data.num_workers", _nonneg_int, "an integer >= 0"),
    ("optim.batch_size", _positive_int, "a positive integer"),
    ("optim.lr", lambda v: v > 0, "> 0"),
    ("optim.lr_batch", _positive_int, "a positive integer"),
    ("optim.rmsprop_decay", lambda v: 0 <= v < 1, "in [0, 1)"),
    ("optim.rmsprop_momentum", lambda v: 0 <= v < 1, "in [0, 1)"),
    ("optim.rmsprop_eps", lambda v: v > 0, "> 0"),
    ("optim.weight_decay", lambda v: v >= 0, ">= 0"),
    ("optim.label_smoothing", lambda v: 0 <= v < 1, "in [0, 1)"),
    ("optim.aux_weight", lambda v: v >= 0, ">= 0"),
    ("optim.clip_grad_norm", lambda v: v >= 0, ">= 0 (0 disables)"),
    ("optim.lr_decay", lambda v: 0 < v <= 1, "in (0, 1]"),
    ("optim.lr_decay_epochs", lambda v: v > 0, "> 0"),
    ("optim.warmup_epochs", lambda v: v >= 0, ">= 0"),
    ("optim.warmup_lr", lambda v: v >= 0, ">= 0"),
    ("optim.ema_decay", lambda v: 0 <= v < 1, "in [0, 1)"),
    ("train.epochs", _positive_int, "a positive integer"),
    ("train.seed", _nonneg_int, "an integer >= 0"),
    ("train.checkpoint_every", _nonneg_int, "an integer >= 0 (0: epoch ends only)"),
    ("train.log_every", _positive_int, "a positive integer"),
    ("train.threads", _nonneg_int, "an integer >= 0 (0: torch's default)"),
    ("train.max_steps", _nonneg_int, "an integer >= 0 (0: no limit)"),
]


def validate(cfg: CfgNode) -> None:
    """Refuse, naming the key, a value that would fail deep inside training (or silently
    train nothing, as ``train.epochs 0`` would)."""
    if not isinstance(cfg.model.preset, str):
        raise ConfigError(
            f"config key model.preset must be a preset name, got {cfg.model.preset!r}"
        )
    for key, ok, expected in _CHECKS:
        section, name = key.split(".")
        value = cfg[section][name]
        try:
            good = bool(ok(value))
        except TypeError:
            good = False
        if not good:
            raise ConfigError(f"config key {key} must be {expected}, got {value!r}")
