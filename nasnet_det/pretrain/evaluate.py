"""Top-1/top-5 of imported or trained weights on an ImageNet-layout ``val/`` folder, each with the
preprocessing its source was evaluated with."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from nasnet_det.convert import check_against_model
from nasnet_det.convert.hub import load_weights
from nasnet_det.pretrain.data import (
    EpochSampler,
    ImageFolderDataset,
    Preprocess,
    make_loader,
    scan_split,
)

__all__ = ["evaluate", "evaluate_weights"]


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: DataLoader,
    device: torch.device,
    channels_last: bool = False,
    drop_background: bool = False,
) -> dict[str, float]:
    """Top-1 / top-5 hit counts over ``loader``; unreadable images are skipped.

    ``drop_background``: the model has a leading background class (1001-way TF checkpoints).
    Returns the counts ``top1``, ``top5``, ``images`` and ``skipped`` of this process's share.
    """
    was_training = model.training
    model.eval()
    correct1 = correct5 = seen = skipped = 0
    for images, labels, bad in loader:
        skipped += len(bad)
        if images is None:
            continue
        images = images.to(device, non_blocking=True)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        logits = model(images).float()
        if drop_background:
            logits = logits[:, 1:]
        top5 = logits.topk(min(5, logits.shape[1]), dim=1).indices.cpu()
        hit = top5 == labels[:, None]
        correct1 += hit[:, 0].sum().item()
        correct5 += hit.any(dim=1).sum().item()
        seen += labels.numel()
    model.train(was_training)
    return {"top1": correct1, "top5": correct5, "images": seen, "skipped": skipped}


def evaluate_weights(
    path: str | os.PathLike,
    data_dir: str | os.PathLike,
    source: str | None = None,
    arch: str | None = None,
    ema: bool = True,
    batch_size: int = 32,
    num_workers: int = 4,
    allow_pickle: bool = False,
    device: str | None = None,
) -> dict[str, Any]:
    """Top-1/top-5 (percent) of the weights at ``path`` (a file or a weight name, read by
    :func:`nasnet_det.convert.hub.load_weights`) on ``data_dir/val`` (or ``data_dir`` itself if
    it has no ``val/``), with the preprocessing of the weights' source."""
    conv = load_weights(path, source=source, arch=arch, ema=ema, allow_pickle=allow_pickle)
    pre = conv.preprocessing
    val_dir = Path(data_dir) / "val" if (Path(data_dir) / "val").is_dir() else Path(data_dir)
    classes, samples = scan_split(val_dir)
    model = conv.build_model()
    check_against_model(conv.state_dict, model, f"weights {str(path)!r}")
    model.load_state_dict(conv.state_dict)
    n_out = model.num_classes
    background = n_out == len(classes) + 1
    if n_out != len(classes) and not background:
        raise ValueError(
            f"the weights predict {n_out} classes but {str(val_dir)!r} has {len(classes)} class "
            "folders (expected the same classes, in sorted folder order)"
        )
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model.to(dev)
    preprocess = Preprocess(
        train=False, **{k: (tuple(v) if isinstance(v, list) else v) for k, v in pre.items()}
    )
    ds = ImageFolderDataset(samples, preprocess)
    sampler = EpochSampler(len(samples), batch_size, shuffle=False)
    counts = evaluate(
        model,
        make_loader(ds, sampler, batch_size, num_workers, 0, dev.type == "cuda"),
        dev,
        drop_background=background,
    )
    n = max(counts["images"], 1)
    return {
        "top1": 100.0 * counts["top1"] / n,
        "top5": 100.0 * counts["top5"] / n,
        "images": counts["images"],
        "skipped": counts["skipped"],
        "source": conv.source,
        "preprocessing": pre,
    }
