"""Classification pretraining on digit crops: the paper's ImageNet-then-COCO recipe in miniature.

The CPU demo pretrains the whole NASNet that its detector is cut from as a digit classifier
(:func:`pretrain_digits`), through the engine's :class:`~nasnet_det.engine.SimpleTrainer`, and
writes a classification checkpoint (:func:`save_classifier`) that ``MODEL.WEIGHTS`` of
``tools/train_net.py`` loads into both detector halves. Torch-only: the caller supplies the
validation crops.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any

import numpy as np
import torch

from nasnet_det.data import DigitCrops, DigitsSpec
from nasnet_det.engine import ProgressHook, SimpleTrainer, cosine, top1_accuracy
from nasnet_det.io import atomic_save_torch
from nasnet_det.nasnet import NASNet, NASNetConfig

__all__ = ["Pretrain", "pretrain_digits", "save_classifier", "to_tensor"]


@dataclasses.dataclass(frozen=True)
class Pretrain:
    """``iters`` AdamW steps at ``lr`` with a cosine decay, each on ``batch_size`` freshly
    rendered crops (:class:`nasnet_det.data.DigitCrops`: the training split's digits on
    photographs, never a val digit) of ``crop`` px at the detector's input scale; gradient norm
    clipped at 5. ``iters=0``: no pretraining (the detector trains from scratch)."""

    iters: int = 1000
    batch_size: int = 32
    lr: float = 3e-3
    weight_decay: float = 1e-4
    crop: int = 64


def to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """uint8 ``[n, h, w, 3]`` -> float ``[n, 3, h, w]`` in [-1, 1] (the demo's ``PIXEL_MEAN``
    and ``PIXEL_STD`` of 127.5)."""
    x = torch.from_numpy(np.ascontiguousarray(rgb.transpose(0, 3, 1, 2)))
    return (x.float() - 127.5) / 127.5


def pretrain_digits(
    config: NASNetConfig,
    spec: Pretrain,
    digits: DigitsSpec,
    scale: float,
    seed: int,
    val: tuple[torch.Tensor, torch.Tensor] | None = None,
    progress: bool = True,
) -> tuple[NASNet, dict[str, Any]]:
    """Train ``NASNet(config)`` (a classifier: ``num_classes`` set) on crops of ``digits``'
    training split seen at ``scale``; returns the model and ``{"iterations", "seconds",
    "val_accuracy"}`` (top-1 on ``val``, None without). Deterministic given ``seed`` on one
    thread."""
    start = time.monotonic()
    source = DigitCrops(digits, "train", scale)
    torch.manual_seed(seed)
    model = NASNet(config)
    model.to(memory_format=torch.channels_last)  # CPU pooling: several times faster
    opt = torch.optim.AdamW(model.parameters(), lr=spec.lr, weight_decay=spec.weight_decay)
    rng = np.random.default_rng([seed, 2024])

    def batches(_: int) -> tuple[torch.Tensor, torch.Tensor]:
        rgb, labels = source.sample(spec.batch_size, spec.crop, rng)
        return to_tensor(rgb), torch.from_numpy(labels)

    trainer = SimpleTrainer(model, opt, batches, lr=cosine(spec.lr), clip_grad_norm=5.0)
    trainer.register_hooks([ProgressHook("pretrain", enabled=progress)])
    model.train()
    trainer.train(0, spec.iters)
    acc = None
    if val is not None and spec.iters:
        model.eval()
        acc = top1_accuracy(model, val[0], val[1], 256)
    return model, {"iterations": spec.iters, "seconds": time.monotonic() - start,
                   "val_accuracy": acc}  # fmt: skip


def save_classifier(model: NASNet, path: str | os.PathLike) -> str:
    """``{"model": state_dict}`` at ``path`` (atomic): a classification checkpoint that
    ``MODEL.WEIGHTS`` maps onto a detector (``stem.*``, ``cells.*``, ``classifier.*``)."""
    atomic_save_torch({"model": model.state_dict()}, path, "pretrained classifier")
    return str(path)
