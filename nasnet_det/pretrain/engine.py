"""ImageNet pretraining with the paper's recipe, resumable and distributed.

:func:`train` runs one process of a (possibly ``torchrun``-launched) job: RMSProp as in
TensorFlow, label smoothing, the auxiliary head's loss, ScheduledDropPath driven by the step, the
staircase exponential schedule with warm-up, weight EMA, gradient clipping, AMP and channels_last
on GPU. Each epoch reports top-1/top-5 of the raw and the EMA weights on ``val/``. Checkpoints
(``OUT/last.pth``) are atomic; ``resume=True`` continues from one bit-exactly on CPU.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader

from nasnet_det.drop_path import training_progress
from nasnet_det.genotypes import Genotype
from nasnet_det.nasnet import NASNet, build_nasnet
from nasnet_det.pretrain.checkpoint import (
    atomic_save,
    load_training_checkpoint,
    rng_state,
    set_rng_state,
)
from nasnet_det.pretrain.data import (
    EpochSampler,
    ImageFolderDataset,
    Preprocess,
    collate_skip,
    scan_imagenet,
)
from nasnet_det.pretrain.optim import ExponentialWarmup, ModelEma, RMSPropTF, param_groups

__all__ = ["train", "evaluate", "build_model_from_config", "arch_of", "CHECKPOINT_NAME"]

CHECKPOINT_NAME = "last.pth"


def arch_of(cfg: dict[str, Any], num_classes: int) -> dict[str, Any]:
    """The ``build_nasnet`` call for a training config (classes and image size filled in)."""
    overrides = dict(cfg["model"]["overrides"])
    if overrides.get("num_classes", num_classes) != num_classes:
        raise ValueError(
            f"model.overrides.num_classes is {overrides['num_classes']} but the data has "
            f"{num_classes} classes"
        )
    overrides["num_classes"] = num_classes
    overrides.setdefault("image_size", cfg["data"]["image_size"])
    return {"preset": cfg["model"]["preset"], "overrides": overrides}


def build_model_from_config(arch: dict[str, Any]) -> NASNet:
    """Build from ``{"preset", "overrides"}``; a genotype given as a dict is parsed."""
    overrides = dict(arch["overrides"])
    if isinstance(overrides.get("genotype"), dict):
        overrides["genotype"] = Genotype.from_dict(overrides["genotype"], "checkpoint genotype")
    return build_nasnet(arch["preset"], **overrides)


def _portable_arch(arch: dict[str, Any], model: NASNet) -> dict[str, Any]:
    # Inline the genotype so the checkpoint does not depend on a JSON file or a registry.
    return {
        "preset": arch["preset"],
        "overrides": {**arch["overrides"], "genotype": model.genotype.to_dict()},
    }


class _Dist:
    """Rank, world size and device of this process (``torchrun`` sets the environment)."""

    def __init__(self) -> None:
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", "0"))
        cuda = torch.cuda.is_available()
        self.device = torch.device(f"cuda:{local}" if cuda else "cpu")
        if cuda:
            torch.cuda.set_device(self.device)
        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if cuda else "gloo")
        self.main = self.rank == 0

    def all_sum(self, values: list[float]) -> list[float]:
        if self.world == 1:
            return values
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return t.tolist()

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: DataLoader,
    device: torch.device,
    channels_last: bool = False,
    drop_background: bool = False,
) -> dict[str, float]:
    """Top-1 / top-5 accuracy (percent) over ``loader``; unreadable images are skipped.

    ``drop_background``: the model has a leading background class (1001-way TF checkpoints).
    Returns ``top1``, ``top5``, ``images`` and ``skipped`` for this process's share.
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


def _percent(counts: dict[str, float], d: _Dist) -> dict[str, float]:
    c1, c5, n, s = d.all_sum([counts["top1"], counts["top5"], counts["images"], counts["skipped"]])
    return {
        "top1": 100.0 * c1 / max(n, 1),
        "top5": 100.0 * c5 / max(n, 1),
        "images": n,
        "skipped": s,
    }


def _loader(ds, sampler, batch_size, workers, seed, pin) -> DataLoader:
    # The loader's own generator seeds the workers, so the global RNG (dropout, drop path) is
    # not consumed by creating an iterator: resuming mid-epoch stays exact.
    return DataLoader(
        ds,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        collate_fn=collate_skip,
        pin_memory=pin,
        generator=torch.Generator().manual_seed(seed),
        drop_last=False,
        persistent_workers=False,
    )


def train(
    cfg: dict[str, Any],
    data_dir: str | os.PathLike,
    output: str | os.PathLike,
    resume: bool = False,
    log: Callable[[str], None] = print,
    progress: bool = True,
    on_step: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Train (or continue training) per ``cfg`` (see :mod:`nasnet_det.pretrain.config`).

    Writes ``OUT/last.pth`` (training checkpoint), ``OUT/metrics.jsonl`` (one line per epoch),
    ``OUT/config.yaml`` and TensorBoard scalars under ``OUT/tb``. Returns the last epoch's
    metrics. ``on_step(step)`` is called after every optimiser step (benchmarks, hooks). Every
    user error (data layout, config, checkpoint) raises ``ValueError`` before
    anything is written.
    """
    output = Path(output)
    d = _Dist()
    if not d.main:
        log = lambda s: None  # noqa: E731  (one process reports)
    ckpt = None
    if resume:
        ckpt = load_training_checkpoint(output / CHECKPOINT_NAME)
        if ckpt["config"] != cfg:
            log("resume: using the configuration stored in the checkpoint")
        cfg = ckpt["config"]
    t = cfg["train"]
    if t["threads"]:
        torch.set_num_threads(int(t["threads"]))
    classes, train_samples, val_samples = scan_imagenet(data_dir)
    arch = arch_of(cfg, len(classes))
    if ckpt is not None and ckpt["arch"]["preset"] != arch["preset"]:
        raise ValueError(f"checkpoint is a {ckpt['arch']['preset']}, the config a {arch['preset']}")

    seed = int(t["seed"])
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed)
    model = build_model_from_config(ckpt["arch"] if ckpt else arch)
    o = cfg["optim"]
    batch = int(o["batch_size"])
    sampler = EpochSampler(len(train_samples), batch, seed, d.rank, d.world, shuffle=True)
    steps_per_epoch = sampler.num_batches
    if steps_per_epoch == 0:
        raise ValueError(
            f"{len(train_samples)} training images are fewer than one global batch "
            f"({batch} x {d.world} processes); lower optim.batch_size"
        )
    total_steps = steps_per_epoch * int(t["epochs"])

    cuda = d.device.type == "cuda"
    amp = bool(t["amp"]) and cuda
    channels_last = bool(t["channels_last"]) and cuda
    model.to(d.device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    ema = ModelEma(model, float(o["ema_decay"]))
    global_batch = batch * d.world
    lr = float(o["lr"]) * global_batch / float(o["lr_batch"])
    optimizer = RMSPropTF(
        param_groups(model, float(o["weight_decay"])),
        lr=lr,
        decay=float(o["rmsprop_decay"]),
        momentum=float(o["rmsprop_momentum"]),
        eps=float(o["rmsprop_eps"]),
    )
    scheduler = ExponentialWarmup(
        optimizer,
        lr,
        steps_per_epoch,
        float(o["lr_decay"]),
        float(o["lr_decay_epochs"]),
        float(o["warmup_epochs"]),
        float(o["warmup_lr"]),
    )
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    epoch, start_batch, step, skipped_total = 0, 0, 0, 0
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        ema.module.load_state_dict(ckpt["ema"])
        ema.num_updates = int(ckpt.get("ema_updates", 0))
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        if "scaler" in ckpt and amp:
            scaler.load_state_dict(ckpt["scaler"])
        epoch, start_batch, step = int(ckpt["epoch"]), int(ckpt["batch"]), int(ckpt["step"])
        skipped_total = int(ckpt.get("skipped_images", 0)) if d.main else 0  # a global sum
        log(
            f"resumed from {output / CHECKPOINT_NAME}: epoch {epoch}, batch {start_batch}, "
            f"step {step}"
        )
    net: nn.Module = model
    if d.world > 1:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[d.device] if cuda else None)

    train_ds = ImageFolderDataset(train_samples, Preprocess.from_config(cfg["data"], True), seed)
    val_ds = ImageFolderDataset(val_samples, Preprocess.from_config(cfg["data"], False), seed)
    val_sampler = EpochSampler(len(val_samples), batch, seed, d.rank, d.world, shuffle=False)
    workers = int(cfg["data"]["num_workers"])
    criterion = nn.CrossEntropyLoss(label_smoothing=float(o["label_smoothing"]))
    aux_weight = float(o["aux_weight"])
    clip = float(o["clip_grad_norm"])

    writer = None
    if d.main:
        output.mkdir(parents=True, exist_ok=True)
        import yaml

        (output / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
        with contextlib.suppress(ImportError):
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(str(output / "tb"), purge_step=step if step else None)

    def save(ep: int, next_batch: int, metrics: dict | None = None, running=(0.0, 0.0)) -> None:
        # Every process calls save at the same step: the skipped count is summed over them.
        skipped_all = int(d.all_sum([skipped_total])[0])
        if not d.main:
            return
        state = {
            "model": model.state_dict(),
            "ema": ema.state_dict(),
            "ema_updates": ema.num_updates,
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict(),
            "epoch": ep,
            "batch": next_batch,
            "step": step,
            "rng": rng_state(),
            "config": cfg,
            "arch": _portable_arch(arch, model),
            "classes": classes,
            "skipped_images": skipped_all,
            "metrics": metrics or {},
            "epoch_loss": list(running),
        }
        atomic_save(state, output / CHECKPOINT_NAME)
        log(f"checkpoint: epoch {ep} batch {next_batch} step {step}")

    if ckpt is not None:
        set_rng_state(ckpt["rng"])
    max_steps = int(t["max_steps"]) or total_steps
    ckpt_every = int(t["checkpoint_every"])
    metrics: dict[str, Any] = {}
    log(
        f"training {arch['preset']} on {len(train_samples)} images / {len(classes)} classes: "
        f"{steps_per_epoch} steps x {t['epochs']} epochs, global batch {global_batch}, lr {lr:g}, "
        f"device {d.device}, {d.world} process(es), amp {amp}, channels_last {channels_last}"
    )
    while epoch < int(t["epochs"]) and step < max_steps:
        sampler.set_epoch(epoch, start_batch)
        train_ds.set_epoch(epoch)
        loader = _loader(train_ds, sampler, batch, workers, seed + epoch, cuda)
        bar = _progress(loader, progress and d.main, epoch, start_batch, steps_per_epoch)
        net.train()
        loss_sum, loss_n = (0.0, 0.0)
        if ckpt is not None and start_batch:
            loss_sum, loss_n = (float(v) for v in ckpt.get("epoch_loss", (0.0, 0.0)))
        for i, (images, labels, bad) in enumerate(bar, start=start_batch):
            for path, reason in bad:
                warnings.warn(f"skipping unreadable image {path} ({reason})", stacklevel=1)
            skipped_total += len(bad)
            model.set_drop_path_progress(training_progress(step, total_steps))
            if images is None or images.shape[0] < 2:
                # Too few readable images for batch norm; every rank must still join the
                # gradient all-reduce: a zero-weighted dummy batch.
                images = torch.zeros(2, 3, model.config.image_size, model.config.image_size)
                labels, weight = torch.zeros(2, dtype=torch.long), 0.0
            else:
                weight = 1.0
            images = images.to(d.device, non_blocking=True)
            labels = labels.to(d.device, non_blocking=True)
            if channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            with torch.autocast("cuda", dtype=torch.float16, enabled=amp):
                out = net(images)
                if isinstance(out, tuple):
                    loss = criterion(out[0], labels) + aux_weight * criterion(out[1], labels)
                else:
                    loss = criterion(out, labels)
                loss = loss * weight
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if clip > 0:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            ema.update(model)
            step += 1
            value = loss.item()
            if on_step is not None:
                on_step(step)
            if not math.isfinite(value):
                raise FloatingPointError(f"loss is {value} at step {step}")
            loss_sum += value * weight
            loss_n += weight
            if d.main:
                if hasattr(bar, "set_postfix"):
                    bar.set_postfix(loss=f"{value:.3f}", lr=f"{scheduler.get_last_lr():.3g}")
                if writer is not None and step % max(1, int(t["log_every"])) == 0:
                    writer.add_scalar("train/loss", value, step)
                    writer.add_scalar("train/lr", scheduler.get_last_lr(), step)
            if step >= max_steps:
                break
            if ckpt_every and step % ckpt_every == 0 and i + 1 < steps_per_epoch:
                save(epoch, i + 1, running=(loss_sum, loss_n))
        start_batch = 0
        if step >= max_steps and i + 1 < steps_per_epoch:
            save(epoch, i + 1, running=(loss_sum, loss_n))
            break
        epoch += 1
        metrics = _epoch_end(
            epoch,
            step,
            net,
            model,
            ema,
            val_ds,
            val_sampler,
            batch,
            workers,
            seed,
            cuda,
            channels_last,
            d,
            # every process's batches and unreadable images
            d.all_sum([loss_sum, loss_n, skipped_total]),
        )
        log(
            f"epoch {epoch}/{t['epochs']} step {step}: train loss {metrics['train_loss']:.4f}, "
            f"val top1 {metrics['top1']:.2f} top5 {metrics['top5']:.2f}, "
            f"EMA top1 {metrics['ema_top1']:.2f} top5 {metrics['ema_top5']:.2f} "
            f"({metrics['val_images']} val images; {metrics['skipped_images']} unreadable "
            "training images skipped so far)"
        )
        if d.main:
            if writer is not None:
                for k in ("top1", "top5", "ema_top1", "ema_top5", "train_loss"):
                    writer.add_scalar(f"val/{k}", metrics[k], step)
            with open(output / "metrics.jsonl", "a") as f:
                f.write(json.dumps(metrics) + "\n")
        save(epoch, 0, metrics)
    if writer is not None:
        writer.close()
    d.barrier()
    return metrics


def _progress(loader, enabled: bool, epoch: int, start: int, total: int):
    if not enabled:
        return loader
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover
        return loader
    return tqdm(
        loader,
        total=total,
        initial=start,
        desc=f"epoch {epoch + 1}",
        file=sys.stderr,
        dynamic_ncols=True,
        leave=False,
    )


def _epoch_end(
    epoch,
    step,
    net,
    model,
    ema,
    val_ds,
    val_sampler,
    batch,
    workers,
    seed,
    cuda,
    channels_last,
    d,
    running,
) -> dict[str, Any]:
    loss_sum, loss_n, skipped_total = running
    loader = _loader(val_ds, val_sampler, batch, workers, seed, cuda)
    raw = _percent(evaluate(model, loader, d.device, channels_last), d)
    ema_m = _percent(evaluate(ema.module, loader, d.device, channels_last), d)
    return {
        "epoch": epoch,
        "step": step,
        "train_loss": loss_sum / max(loss_n, 1.0),
        "top1": raw["top1"],
        "top5": raw["top5"],
        "ema_top1": ema_m["top1"],
        "ema_top5": ema_m["top5"],
        "val_images": int(raw["images"]),
        "val_skipped": int(raw["skipped"]),
        "skipped_images": int(skipped_total),
    }
