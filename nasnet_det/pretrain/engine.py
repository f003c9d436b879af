"""ImageNet pretraining with the paper's recipe, resumable and distributed.

:func:`train` runs one process of a (possibly ``torchrun``-launched) job through
:class:`PretrainTrainer`: RMSProp as in TensorFlow, label smoothing, the auxiliary head's loss,
gradient clipping, AMP and channels_last on GPU in :meth:`PretrainTrainer.run_step`; the
drop-path schedule, weight EMA, per-epoch evaluation (top-1/top-5 of the raw and the EMA weights
on ``val/``), logging and atomic checkpoints (``OUT/last.pth``) as hooks
(:mod:`nasnet_det.pretrain.hooks`). ``resume=True`` continues from a checkpoint bit-exactly on CPU.
"""

from __future__ import annotations

import json
import math
import os
import random
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from nasnet_det.config import CfgNode
from nasnet_det.engine import (
    DropPathHook,
    EMAHook,
    ExponentialWarmup,
    HookBase,
    ModelEma,
    StepCallbackHook,
    TrainerBase,
)
from nasnet_det.genotypes import Genotype
from nasnet_det.io import RunFolder, RunFolderError, atomic_write_text
from nasnet_det.nasnet import NASNet, build_nasnet
from nasnet_det.pretrain import hooks as H
from nasnet_det.pretrain.checkpoint import load_training_checkpoint, rng_state, set_rng_state
from nasnet_det.pretrain.config import from_dict, to_dict, validate
from nasnet_det.pretrain.data import (
    EpochSampler,
    ImageFolderDataset,
    Preprocess,
    first_readable,
    make_loader,
    scan_imagenet,
)
from nasnet_det.pretrain.evaluate import evaluate
from nasnet_det.pretrain.optim import RMSPropTF, param_groups

__all__ = [
    "CHECKPOINT_NAME",
    "PretrainTrainer",
    "RunState",
    "arch_of",
    "build_model_from_config",
    "evaluate",
    "train",
]

CHECKPOINT_NAME = H.CHECKPOINT_NAME
#: Files a run writes into OUT; their presence marks an existing run (see ``overwrite``).
RUN_FILES = (CHECKPOINT_NAME, H.METRICS_NAME, "config.yaml", "tb")


def arch_of(cfg: CfgNode, num_classes: int) -> dict[str, Any]:
    """The ``build_nasnet`` call for a training config (classes and image size filled in)."""
    overrides = dict(cfg.model.overrides)
    if overrides.get("num_classes", num_classes) != num_classes:
        raise ValueError(
            f"model.overrides.num_classes is {overrides['num_classes']} but the data has "
            f"{num_classes} classes"
        )
    overrides["num_classes"] = num_classes
    overrides.setdefault("image_size", cfg.data.image_size)
    return {"preset": cfg.model.preset, "overrides": overrides}


def build_model_from_config(arch: dict[str, Any]) -> NASNet:
    """Build from ``{"preset", "overrides"}``; a genotype given as a dict is parsed."""
    overrides = dict(arch["overrides"])
    if isinstance(overrides.get("genotype"), dict):
        overrides["genotype"] = Genotype.from_dict(dict(overrides["genotype"]), "genotype")
    return build_nasnet(arch["preset"], **overrides)


def _portable_arch(arch: dict[str, Any], model: NASNet) -> dict[str, Any]:
    # Inline the genotype so the checkpoint does not depend on a JSON file or a registry.
    return {
        "preset": arch["preset"],
        "overrides": {**to_dict(arch["overrides"]), "genotype": model.genotype.to_dict()},
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


@dataclass
class RunState:
    """What the loop accumulates besides weights and optimiser state (all in the checkpoint)."""

    loss_sum: float = 0.0  # this epoch's weighted loss sum and weight, this process
    loss_n: float = 0.0
    skipped: int = 0  # unreadable training images met by this process (the main one: all)
    last_loss: float = float("nan")
    metrics: dict[str, Any] = field(default_factory=dict)  # the last epoch's
    history: list[dict[str, Any]] = field(default_factory=list)  # every epoch's


class PretrainTrainer(TrainerBase):
    """One process of a pretraining run: the model, its optimiser and data, and one step."""

    def __init__(
        self,
        cfg: CfgNode,
        data_dir: str | os.PathLike,
        output: str | os.PathLike,
        log: Callable[[str], None] = print,
        ckpt: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.cfg, self.output, self.dist = cfg, Path(output), _Dist()
        self.log = log if self.dist.main else (lambda s: None)
        if cfg.train.threads:
            torch.set_num_threads(cfg.train.threads)
        self.classes, train_samples, val_samples = scan_imagenet(data_dir)
        self.arch = arch_of(cfg, len(self.classes))
        if ckpt is not None and ckpt["arch"]["preset"] != self.arch["preset"]:
            raise ValueError(
                f"checkpoint is a {ckpt['arch']['preset']}, the config a {self.arch['preset']}"
            )
        _seed_everything(cfg.train.seed)
        self.model = build_model_from_config(ckpt["arch"] if ckpt else self.arch)
        # The data, after the config's own checks (the model's arguments above).
        if len(self.classes) < 2:
            raise ValueError(
                f"{str(data_dir)!r} has {len(self.classes)} class folder ({self.classes[0]}): a "
                "classifier needs at least 2 (with one class the loss is 0 from the start)"
            )
        first_readable(train_samples, f"{str(data_dir)!r} train/")
        self._build_data(train_samples, val_samples)
        self._build_optimizer()
        self.state = RunState()
        self._resume_rng = None
        if ckpt is not None:
            self.load_checkpoint(ckpt)
        self.net: nn.Module = self.model
        if self.dist.world > 1:
            ids = [self.dist.device] if self.cuda else None
            self.net = nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        self.criterion = nn.CrossEntropyLoss(label_smoothing=cfg.optim.label_smoothing)
        self._batches = None

    def _build_data(self, train_samples: list, val_samples: list) -> None:
        cfg, d = self.cfg, self.dist
        seed, batch = cfg.train.seed, cfg.optim.batch_size
        self.sampler = EpochSampler(len(train_samples), batch, seed, d.rank, d.world, shuffle=True)
        self.steps_per_epoch = self.sampler.num_batches
        if self.steps_per_epoch == 0:
            raise ValueError(
                f"{len(train_samples)} training images are fewer than one global batch "
                f"({batch} x {d.world} processes); lower optim.batch_size"
            )
        self.epochs = cfg.train.epochs
        self.total_steps = self.steps_per_epoch * self.epochs
        self.train_ds = ImageFolderDataset(
            train_samples, Preprocess.from_config(cfg.data, True), seed
        )
        self.val_ds = ImageFolderDataset(val_samples, Preprocess.from_config(cfg.data, False), seed)
        self.val_sampler = EpochSampler(
            len(val_samples), batch, seed, d.rank, d.world, shuffle=False
        )
        self.num_train_images = len(train_samples)

    def _build_optimizer(self) -> None:
        o, d = self.cfg.optim, self.dist
        self.cuda = d.device.type == "cuda"
        self.amp = self.cfg.train.amp and self.cuda
        self.channels_last = self.cfg.train.channels_last and self.cuda
        self.model.to(d.device)
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.ema = ModelEma(self.model, o.ema_decay)
        self.global_batch = o.batch_size * d.world
        self.lr = o.lr * self.global_batch / o.lr_batch
        groups = param_groups(self.model, o.weight_decay)
        self.optimizer = RMSPropTF(
            groups,
            lr=self.lr,
            decay=o.rmsprop_decay,
            momentum=o.rmsprop_momentum,
            eps=o.rmsprop_eps,
        )
        self.scheduler = ExponentialWarmup(
            self.optimizer, self.lr, self.steps_per_epoch, o.lr_decay, o.lr_decay_epochs,
            o.warmup_epochs, o.warmup_lr,
        )  # fmt: skip
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)

    @property
    def budget(self) -> int:
        """Steps this run ends at: every epoch, or ``train.max_steps`` if that is fewer."""
        return min(self.cfg.train.max_steps or self.total_steps, self.total_steps)

    def build_hooks(
        self, progress: bool = True, on_step: Callable[[int], None] | None = None
    ) -> list[HookBase | None]:
        """Order matters: the EMA sees the step's weights before evaluation and checkpoint;
        ``on_step`` (timing) runs before the epoch-end work."""
        t = self.cfg.train
        return [
            DropPathHook(self.total_steps),
            # The EMA starts as the model (fresh) or as the checkpoint's (resumed).
            EMAHook(self.ema, copy_at_start=False),
            StepCallbackHook(on_step) if on_step is not None else None,
            H.EvalHook(),
            H.LoggingHook(t.log_every, progress),
            H.CheckpointHook(t.checkpoint_every),
        ]

    def before_train(self) -> None:
        super().before_train()
        self.log(
            f"training {self.arch['preset']} on {self.num_train_images} images / "
            f"{len(self.classes)} classes: {self.steps_per_epoch} steps x {self.epochs} epochs, "
            f"global batch {self.global_batch}, lr {self.lr:g}, device {self.dist.device}, "
            f"{self.dist.world} process(es), amp {self.amp}, channels_last {self.channels_last}"
        )
        self.net.train()
        # Last of all: nothing between here and the first step draws random numbers.
        if self._resume_rng is not None:
            set_rng_state(self._resume_rng)

    def _next_batch(self):
        epoch, batch = divmod(self.iter, self.steps_per_epoch)
        if self._batches is None or batch == 0:
            self.sampler.set_epoch(epoch, batch)
            self.train_ds.set_epoch(epoch)
            o, seed = self.cfg.optim, self.cfg.train.seed
            workers = self.cfg.data.num_workers
            loader = make_loader(
                self.train_ds, self.sampler, o.batch_size, workers, seed + epoch, self.cuda
            )
            self._batches = iter(loader)
        images, labels, bad = next(self._batches)
        for path, reason in bad:
            warnings.warn(f"skipping unreadable image {path} ({reason})", stacklevel=1)
        self.state.skipped += len(bad)
        if images is None or images.shape[0] < 2:
            # Too few readable images for batch norm; every rank must still join the gradient
            # all-reduce: a zero-weighted dummy batch.
            size = self.model.config.image_size
            return torch.zeros(2, 3, size, size), torch.zeros(2, dtype=torch.long), 0.0
        return images, labels, 1.0

    def run_step(self) -> None:
        images, labels, weight = self._next_batch()
        images = images.to(self.dist.device, non_blocking=True)
        labels = labels.to(self.dist.device, non_blocking=True)
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cuda", dtype=torch.float16, enabled=self.amp):
            out = self.net(images)
            loss = self.criterion(out[0] if isinstance(out, tuple) else out, labels)
            if isinstance(out, tuple):
                loss = loss + self.cfg.optim.aux_weight * self.criterion(out[1], labels)
            loss = loss * weight
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.cfg.optim.clip_grad_norm > 0:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.optim.clip_grad_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        value = loss.item()
        if not math.isfinite(value):
            raise FloatingPointError(f"loss is {value} at step {self.iter + 1}")
        if value == 0.0 and weight and self.iter == self.start_iter == 0:
            # Cross-entropy of a real batch is never exactly 0 before training: the labels or
            # the model's output carry nothing to learn from.
            raise ValueError(
                "the training loss is exactly 0 at the first step: nothing to learn from "
                "(check the class folders and model.overrides.num_classes)"
            )
        self.state.last_loss = value
        self.state.loss_sum += value * weight
        self.state.loss_n += weight

    def evaluate_epoch(self) -> dict[str, Any]:
        """Training loss of the epoch and validation accuracies, summed over processes."""
        d, s = self.dist, self.state
        loss_sum, loss_n, skipped = d.all_sum([s.loss_sum, s.loss_n, s.skipped])
        o, seed = self.cfg.optim, self.cfg.train.seed
        loader = make_loader(
            self.val_ds, self.val_sampler, o.batch_size, self.cfg.data.num_workers, seed, self.cuda
        )
        raw = self._percent(evaluate(self.model, loader, d.device, self.channels_last))
        ema = self._percent(evaluate(self.ema.module, loader, d.device, self.channels_last))
        return {
            "train_loss": loss_sum / max(loss_n, 1.0),
            "top1": raw["top1"],
            "top5": raw["top5"],
            "ema_top1": ema["top1"],
            "ema_top5": ema["top5"],
            "val_images": int(raw["images"]),
            "val_skipped": int(raw["skipped"]),
            "skipped_images": int(skipped),
        }

    def _percent(self, counts: dict[str, float]) -> dict[str, float]:
        keys = ("top1", "top5", "images", "skipped")
        c1, c5, n, s = self.dist.all_sum([counts[k] for k in keys])
        return {"top1": 100.0 * c1 / max(n, 1), "top5": 100.0 * c5 / max(n, 1), "images": n,
                "skipped": s}  # fmt: skip

    def checkpoint_state(self, epoch: int, batch: int) -> dict[str, Any]:
        """Everything to continue bit-exactly (a collective: every process calls it)."""
        skipped_all = int(self.dist.all_sum([self.state.skipped])[0])
        s = self.state
        return {
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict(),
            "ema_updates": self.ema.num_updates,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "epoch": epoch,
            "batch": batch,
            "step": self.iter + 1,
            "rng": rng_state(),
            "config": to_dict(self.cfg),
            "arch": _portable_arch(self.arch, self.model),
            "classes": self.classes,
            "skipped_images": skipped_all,
            "metrics": s.metrics,
            "history": s.history,
            "epoch_loss": [s.loss_sum, s.loss_n],
        }

    def load_checkpoint(self, ckpt: dict[str, Any]) -> None:
        """Restore a :meth:`checkpoint_state` (the RNG is restored in :meth:`before_train`)."""
        self.model.load_state_dict(ckpt["model"])
        self.ema.module.load_state_dict(ckpt["ema"])
        self.ema.num_updates = int(ckpt.get("ema_updates", 0))
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        if "scaler" in ckpt and self.amp:
            self.scaler.load_state_dict(ckpt["scaler"])
        self.start_iter = int(ckpt["step"])
        s = self.state
        s.skipped = int(ckpt.get("skipped_images", 0)) if self.dist.main else 0  # a global sum
        if int(ckpt["batch"]):
            s.loss_sum, s.loss_n = (float(v) for v in ckpt.get("epoch_loss", (0.0, 0.0)))
        s.metrics = dict(ckpt.get("metrics", {}))
        s.history = list(ckpt.get("history", _history_from_file(self.output, ckpt["epoch"])))
        self._resume_rng = ckpt["rng"]
        self.log(
            f"resumed from {self.output / CHECKPOINT_NAME}: epoch {ckpt['epoch']}, "
            f"batch {ckpt['batch']}, step {ckpt['step']}"
        )


def _seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed)


def _history_from_file(output: Path, epochs_done: int) -> list[dict[str, Any]]:
    """A checkpoint from before ``history`` was stored: its epochs' lines of metrics.jsonl."""
    path = output / H.METRICS_NAME
    if not path.is_file():
        return []
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [m for m in lines if int(m.get("epoch", 0)) <= int(epochs_done)]


def _run_folder(output: Path, resume: bool, overwrite: bool) -> RunFolder:
    """The run folder, checked: also refuses files of a run that never saved a checkpoint."""
    folder = RunFolder(output, RUN_FILES, "training run", marker=CHECKPOINT_NAME)
    folder.check(resume, overwrite)
    found = [n for n in RUN_FILES if (output / n).exists()]
    if not resume and not overwrite and found:
        raise RunFolderError(
            f"{str(output)!r} holds files of a run ({', '.join(found)}) but no {CHECKPOINT_NAME} "
            "to resume from; pass --overwrite to start over"
        )
    return folder


def train(
    cfg: CfgNode | dict[str, Any],
    data_dir: str | os.PathLike,
    output: str | os.PathLike,
    resume: bool = False,
    overwrite: bool = False,
    log: Callable[[str], None] = print,
    progress: bool = True,
    on_step: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Train (or continue training) per ``cfg`` (see :mod:`nasnet_det.pretrain.config`; a plain
    dict holds deltas on the defaults).

    Writes ``OUT/last.pth`` (training checkpoint), ``OUT/metrics.jsonl`` (one line per epoch),
    ``OUT/config.yaml`` and TensorBoard scalars under ``OUT/tb``; returns the last epoch's
    metrics. An OUT that already holds a run needs ``resume`` (continue from ``last.pth``; the
    config stored there wins) or ``overwrite`` (start over). ``on_step(steps done)`` is called
    after every optimiser step. Every user error (config, data, checkpoint, output folder)
    raises ``ValueError``/``OSError`` before anything is written.
    """
    output = Path(output)
    if not isinstance(cfg, CfgNode):  # a plain nested dict from Python: deltas on the defaults
        cfg = from_dict(cfg, "config")
    validate(cfg)
    folder = _run_folder(output, resume, overwrite)
    ckpt = None
    if resume:
        ckpt = load_training_checkpoint(output / CHECKPOINT_NAME)
        stored = from_dict(ckpt["config"], f"checkpoint {str(output / CHECKPOINT_NAME)!r}")
        if to_dict(stored) != to_dict(cfg):
            log("resume: using the configuration stored in the checkpoint")
        cfg = stored
    trainer = PretrainTrainer(cfg, data_dir, output, log, ckpt)
    if trainer.start_iter >= trainer.budget:
        log(f"the run in {str(output)!r} is complete (step {trainer.start_iter}); nothing to do")
        return trainer.state.metrics
    trainer.register_hooks(trainer.build_hooks(progress, on_step))
    created = not output.exists()
    if trainer.dist.main:
        folder.create(overwrite)
        if resume and folder.remove_stale_temporaries():
            log(f"removed temporary files of an interrupted write in {str(output)!r}")
        # The first file written: a full disk or a read-only folder stops the run here.
        atomic_write_text(output / "config.yaml", cfg.dump(), "config copy")
    try:
        trainer.train(trainer.start_iter, trainer.budget)
    except BaseException:
        # A new run that fails before its first checkpoint cannot be resumed: its config copy,
        # metrics and TensorBoard files would only make the next attempt need --overwrite.
        if trainer.dist.main and ckpt is None and not (output / CHECKPOINT_NAME).exists():
            folder.clear()
            if created and output.is_dir() and not any(output.iterdir()):
                output.rmdir()
        raise
    trainer.dist.barrier()
    return trainer.state.metrics
