#!/usr/bin/env python
"""Pretraining throughput: our trainer vs a plain loop with torchvision's reference transforms.

    python bench/pretrain_speed.py [--size 224] [--batch 32] [--steps 3] [--threads 1]

Generates ImageNet-like JPEGs (500x375) in a temporary folder, then measures, for NASNet-A
Mobile at ``--size``:

* training images/s of ``nasnet_det.pretrain.train`` (TF RMSProp, EMA, clipping, drop path,
  label smoothing, aux loss; checkpoints off during the timed steps);
* training images/s of a plain loop: torchvision ``ImageFolder`` with the reference script's
  transforms (RandomResizedCrop, flip, ToTensor, Normalize), ``torch.optim.RMSprop``, the same
  model and losses, nothing else;
* images/s of each input pipeline alone (decode, crop, tensor; one process).

The first step of each trainer is a warm-up and is not timed. On a GPU, AMP and channels_last
are used by our trainer (as in training).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def make_images(root: Path, n: int, classes: int = 4) -> None:
    rng = np.random.default_rng(0)
    for split, count in (("train", n), ("val", classes)):
        for i in range(count):
            d = root / split / f"c{i % classes}"
            d.mkdir(parents=True, exist_ok=True)
            # smooth random fields compress like photos, unlike white noise
            small = rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)
            Image.fromarray(small).resize((500, 375), Image.BICUBIC).save(
                d / f"{i}.jpg", quality=90
            )


def time_ours(data: Path, out: Path, size: int, batch: int, steps: int, workers: int) -> float:
    from nasnet_det.pretrain import load_config, train

    cfg = load_config(
        None,
        [
            "data.image_size",
            str(size),
            "data.num_workers",
            str(workers),
            "optim.batch_size",
            str(batch),
            "train.epochs",
            "1",
            "train.max_steps",
            str(steps + 1),
            "train.checkpoint_every",
            "0",
            "train.threads",
            "0",
            "train.log_every",
            "1000000",
        ],
    )
    stamps: list[float] = []
    train(
        cfg,
        data,
        out,
        log=lambda s: None,
        progress=False,
        on_step=lambda s: stamps.append(time.perf_counter()),
    )
    return batch * steps / (stamps[-1] - stamps[0])


def reference_transforms(size: int):
    from torchvision import transforms as T

    return T.Compose(
        [
            T.RandomResizedCrop(size),
            T.RandomHorizontalFlip(),
            T.ToTensor(),
            T.Normalize([0.5, 0.5, 0.5], [0.5, 0.5, 0.5]),
        ]
    )


def time_plain(data: Path, size: int, batch: int, steps: int, workers: int) -> float:
    from torchvision.datasets import ImageFolder

    from nasnet_det import build_nasnet

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    ds = ImageFolder(str(data / "train"), reference_transforms(size))
    loader = torch.utils.data.DataLoader(
        ds, batch, shuffle=True, num_workers=workers, drop_last=True
    )
    model = build_nasnet("nasnet_a_mobile", num_classes=len(ds.classes), image_size=size)
    model.to(device).train()
    opt = torch.optim.RMSprop(model.parameters(), lr=0.04, alpha=0.9, eps=1.0, momentum=0.9)
    crit = torch.nn.CrossEntropyLoss(label_smoothing=0.1)
    stamps = []
    it = iter(loader)
    for _ in range(steps + 1):
        x, y = next(it)
        x, y = x.to(device), y.to(device)
        logits, aux = model(x)
        loss = crit(logits, y) + 0.4 * crit(aux, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        loss.item()
        stamps.append(time.perf_counter())
    return batch * steps / (stamps[-1] - stamps[0])


def time_pipelines(data: Path, size: int, n: int) -> tuple[float, float]:
    import random

    from torchvision.datasets import ImageFolder

    from nasnet_det.pretrain.data import ImageFolderDataset, Preprocess, scan_split

    _, samples = scan_split(data / "train")
    ours = ImageFolderDataset(samples, Preprocess(image_size=size))
    ref = ImageFolder(str(data / "train"), reference_transforms(size))
    rates = []
    for ds in (ours, ref):
        idx = [random.randrange(len(ds)) for _ in range(n)]
        t = time.perf_counter()
        for i in idx:
            ds[i]
        rates.append(n / (time.perf_counter() - t))
    return rates[0], rates[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=3, help="timed steps (after one warm-up)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--workers", type=int, default=0, help="DataLoader workers")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        make_images(data, args.batch * (args.steps + 1))
        pipe_ours, pipe_ref = time_pipelines(data, args.size, 4 * args.batch)
        ours = time_ours(data, Path(tmp) / "out", args.size, args.batch, args.steps, args.workers)
        torch.set_num_threads(args.threads)
        plain = time_plain(data, args.size, args.batch, args.steps, args.workers)
    dev = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    print(
        f"device {dev}, threads {args.threads}, workers {args.workers}, NASNet-A Mobile "
        f"@{args.size}, batch {args.batch}, {args.steps} timed steps"
    )
    print(
        f"train  ours {ours:8.2f} img/s | plain loop + torchvision reference {plain:8.2f} "
        f"img/s | ratio {ours / plain:.2f}"
    )
    print(
        f"input pipeline alone  ours {pipe_ours:8.1f} img/s | torchvision reference "
        f"{pipe_ref:8.1f} img/s | ratio {pipe_ours / pipe_ref:.2f}"
    )


if __name__ == "__main__":
    main()
