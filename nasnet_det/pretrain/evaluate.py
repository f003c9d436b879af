"""Top-1/top-5 of imported or trained weights on an ImageNet-layout ``val/`` folder, each with the
preprocessing its source was evaluated with."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from nasnet_det.convert import (
    Converted,
    convert_state_dict,
    load_state_dict_file,
    ours,
    unwrap_state_dict,
)
from nasnet_det.pretrain.data import (
    EpochSampler,
    ImageFolderDataset,
    Preprocess,
    make_loader,
    scan_split,
)

__all__ = ["PREPROCESSING", "evaluate", "evaluate_weights", "load_weights"]

#: Evaluation preprocessing of each public checkpoint, keyed by ``Converted.source``.
#: timm: its pretrained config; Cadene: ``pretrainedmodels.utils.TransformImage`` (scale 0.875).
PREPROCESSING: dict[str, dict[str, Any]] = {
    "timm:nasnetalarge": dict(image_size=331, crop_pct=0.911, interpolation="bicubic"),
    "pretrainedmodels:nasnetamobile": dict(
        image_size=224, crop_pct=0.875, interpolation="bilinear"
    ),
    "pretrainedmodels:nasnetalarge": dict(image_size=331, crop_pct=0.875, interpolation="bilinear"),
}
_MEAN_STD = dict(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))


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


def load_weights(
    path: str | os.PathLike,
    source: str | None = None,
    arch: str | None = None,
    ema: bool = True,
    allow_pickle: bool = False,
) -> tuple[Converted, dict[str, Any]]:
    """Weights from any supported file, and their evaluation preprocessing.

    Accepted: a training checkpoint of ours (EMA weights unless ``ema=False``), a file written by
    ``tools/convert_weights.py`` (its meta names the source), or a source's own checkpoint with
    ``source`` and ``arch``.
    """
    obj = load_state_dict_file(path, allow_pickle=allow_pickle)
    pre: dict[str, Any] | None = None
    if ours.is_training_checkpoint(obj) and "ema" in obj:
        conv = ours.convert_checkpoint(obj, ema=ema, arch=arch)
        pre = ours.preprocessing(obj)
    elif source is not None:
        if arch is None:
            raise ValueError(f"--arch is needed with --source {source}")
        conv = convert_state_dict(source, arch, unwrap_state_dict(obj))
    else:
        meta = _meta(path, obj)
        if meta is None:
            raise ValueError(
                f"cannot tell which network {str(path)!r} holds: pass --source and --arch, or "
                "convert it with tools/convert_weights.py first"
            )
        conv = ours.OursConverted(
            unwrap_state_dict(obj),
            meta["preset"],
            dict(meta.get("overrides", {})),
            meta.get("source", ""),
        )
        pre = meta.get("preprocessing")
    if pre is None:
        pre = PREPROCESSING.get(conv.source)
    if pre is None:  # our own architecture without recorded preprocessing: the recipe's
        size = int(conv.overrides.get("image_size", 331 if "large" in conv.preset else 224))
        pre = dict(image_size=size, crop_pct=0.875, interpolation="bilinear")
    return conv, {**_MEAN_STD, **pre}


def _meta(path: str | os.PathLike, obj: dict[str, Any]) -> dict[str, Any] | None:
    if isinstance(obj.get("meta"), dict):
        return obj["meta"]
    if Path(path).suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), "pt") as f:
            raw = (f.metadata() or {}).get("meta")
        return json.loads(raw) if raw else None
    return None


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
    """Top-1/top-5 (percent) of the weights at ``path`` on ``data_dir/val`` (or ``data_dir``
    itself if it has no ``val/``), with the source's preprocessing."""
    from nasnet_det.convert import check_against_model
    from nasnet_det.convert.hub import resolve_weights_path

    # A weight name (nasnet://timm/nasnetalarge) is its converted file, which names its source;
    # as a path it would lose a slash ("nasnet:/timm/...") and "not exist".
    path = resolve_weights_path(os.fspath(path))
    conv, pre = load_weights(path, source, arch, ema, allow_pickle)
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
