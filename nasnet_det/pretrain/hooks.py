"""The pretraining loop's own hooks: per-epoch evaluation, logging and checkpoints.

The drop-path schedule, the weight EMA and the step callback are the engine's
(:mod:`nasnet_det.engine.hooks`, importable here too). Each hook here reads what it needs
from its trainer (``PretrainTrainer``): ``model``, ``ema``, ``dist`` (rank and collectives),
``state`` (running loss, unreadable-image count, metrics, history), ``steps_per_epoch``,
``output`` and ``log``. Every process runs every hook (collectives stay in step); only the main
process writes files.
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Any

from nasnet_det.engine.hooks import DropPathHook, EMAHook, StepCallbackHook
from nasnet_det.engine.trainer import HookBase
from nasnet_det.io import atomic_save_torch, atomic_write_text

__all__ = [
    "CHECKPOINT_NAME",
    "METRICS_NAME",
    "CheckpointHook",
    "DropPathHook",
    "EMAHook",
    "EvalHook",
    "LoggingHook",
    "StepCallbackHook",
]

CHECKPOINT_NAME = "last.pth"
METRICS_NAME = "metrics.jsonl"


def _done(trainer) -> tuple[int, int, int]:
    """``(steps done, epoch, batch)`` after the step just run; batch 0 at an epoch's end."""
    done = trainer.iter + 1
    epoch, batch = divmod(done, trainer.steps_per_epoch)
    return done, epoch, batch


class EvalHook(HookBase):
    """At each epoch's end: top-1/top-5 of the raw and the EMA weights on ``val/``, summed over
    processes; the report line; ``OUT/metrics.jsonl`` rewritten (atomically) from the history,
    which the checkpoint also holds, so a resumed run never repeats or loses an epoch's line."""

    def before_train(self) -> None:
        t = self.trainer
        if t.dist.main and t.start_iter > 0:
            self._write(t.state.history)

    def after_step(self) -> None:
        t = self.trainer
        done, epoch, batch = _done(t)
        if batch:
            return
        metrics = {"epoch": epoch, "step": done, **t.evaluate_epoch()}
        t.state.metrics = metrics
        t.state.history.append(metrics)
        t.state.loss_sum = t.state.loss_n = 0.0
        t.log(
            f"epoch {epoch}/{t.epochs} step {done}: train loss {metrics['train_loss']:.4f}, "
            f"val top1 {metrics['top1']:.2f} top5 {metrics['top5']:.2f}, "
            f"EMA top1 {metrics['ema_top1']:.2f} top5 {metrics['ema_top5']:.2f} "
            f"({metrics['val_images']} val images; {metrics['skipped_images']} unreadable "
            "training images skipped so far)"
        )
        if t.dist.main:
            self._write(t.state.history)

    def _write(self, history: list[dict[str, Any]]) -> None:
        lines = "".join(json.dumps(m) + "\n" for m in history)
        atomic_write_text(Path(self.trainer.output) / METRICS_NAME, lines, "metrics file")


class LoggingHook(HookBase):
    """A progress bar per epoch (main process, ``stderr``) and TensorBoard scalars in
    ``OUT/tb``: training loss and rate every ``log_every`` steps, accuracies every epoch."""

    def __init__(self, log_every: int, progress: bool) -> None:
        self.log_every = max(1, int(log_every))
        self.progress = progress
        self.writer = None
        self.bar = None

    def before_train(self) -> None:
        t = self.trainer
        if not t.dist.main:
            return
        with contextlib.suppress(ImportError):
            from torch.utils.tensorboard import SummaryWriter

            purge = t.start_iter if t.start_iter else None
            self.writer = SummaryWriter(str(Path(t.output) / "tb"), purge_step=purge)

    def before_step(self) -> None:
        t = self.trainer
        if self.progress and t.dist.main and self.bar is None:
            self.bar = _bar(t.iter, t.steps_per_epoch)

    def after_step(self) -> None:
        t = self.trainer
        if not t.dist.main:
            return
        done, _, batch = _done(t)
        loss, lr = t.state.last_loss, t.scheduler.get_last_lr()
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{loss:.3f}", lr=f"{lr:.3g}")
            if batch == 0:
                self.bar.close()
                self.bar = None
        if self.writer is None:
            return
        if done % self.log_every == 0:
            self.writer.add_scalar("train/loss", loss, done)
            self.writer.add_scalar("train/lr", lr, done)
        if batch == 0:
            for k in ("top1", "top5", "ema_top1", "ema_top5", "train_loss"):
                self.writer.add_scalar(f"val/{k}", t.state.metrics[k], done)

    def after_train(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def _bar(step: int, steps_per_epoch: int):
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover
        return None
    epoch, batch = divmod(step, steps_per_epoch)
    return tqdm(
        total=steps_per_epoch,
        initial=batch,
        desc=f"epoch {epoch + 1}",
        file=sys.stderr,
        dynamic_ncols=True,
        leave=False,
    )


class CheckpointHook(HookBase):
    """``OUT/last.pth`` (atomic) at every epoch's end, every ``every`` steps within an epoch and
    when a step budget (``train.max_steps``) stops the run mid-epoch."""

    def __init__(self, every: int) -> None:
        self.every = int(every)

    def after_step(self) -> None:
        t = self.trainer
        done, epoch, batch = _done(t)
        periodic = self.every and done % self.every == 0
        if batch == 0 or done == t.max_iter or periodic:
            # Every process takes part: the unreadable-image count is summed over them.
            state = t.checkpoint_state(epoch, batch)
            if t.dist.main:
                atomic_save_torch(state, Path(t.output) / CHECKPOINT_NAME, "training checkpoint")
                t.log(f"checkpoint: epoch {epoch} batch {batch} step {done}")
