"""Training options of ``tools/train_net.py``: optimizer and LR schedule from the config, clipping
of the whole gradient, a CPU-fast model layout, mixed precision, a weight EMA evaluated beside
the raw weights, and the best checkpoint by AP kept beside the last.

:func:`add_training_config` adds the keys (every one commented); the trainer in
:mod:`nasnet_det.detection.engine` calls :func:`build_optimizer`, :func:`autocast_trainer` and
:func:`add_training_hooks`. ScheduledDropPath is untouched by all of them: its hook sets the
progress on the trained model before each step, whatever precision or averaging is on.
"""

from __future__ import annotations

import logging
import time
import weakref
from typing import Any

import torch
from detectron2.config import CfgNode as CN
from detectron2.engine import hooks
from detectron2.engine.train_loop import AMPTrainer, SimpleTrainer
from detectron2.solver import LRMultiplier
from detectron2.solver import build_lr_scheduler as d2_build_lr_scheduler
from detectron2.solver.build import get_default_optimizer_params, maybe_add_gradient_clipping
from detectron2.utils import comm

from nasnet_det import engine
from nasnet_det.detection.hooks import EngineHook
from nasnet_det.engine import ModelEma

__all__ = [
    "LR_SCHEDULERS",
    "OPTIMIZERS",
    "POOLER_IMPLS",
    "AutocastTrainer",
    "EMAHook",
    "add_training_config",
    "add_training_hooks",
    "autocast_dtype",
    "autocast_trainer",
    "build_lr_scheduler",
    "build_optimizer",
    "prepare_model",
]

logger = logging.getLogger(__name__)

#: Values of ``SOLVER.OPTIMIZER``.
OPTIMIZERS = ("SGD", "ADAMW")
#: Values of ``SOLVER.LR_SCHEDULER_NAME``: Detectron2's three and ours.
LR_SCHEDULERS = ("WarmupMultiStepLR", "WarmupCosineLR", "WarmupStepWithFixedGammaLR",
                 "WarmupHoldCosineLR")  # fmt: skip
#: Values of ``MODEL.ROI_BOX_HEAD.POOLER_IMPL``.
POOLER_IMPLS = ("roi_align", "grid_sample")


def add_training_config(cfg: CN) -> CN:
    """Add ``SOLVER.OPTIMIZER``, ``SOLVER.BETAS``, ``SOLVER.BEST_CHECKPOINTER`` and
    ``MODEL_EMA`` (idempotent). ``SOLVER.AMP.ENABLED`` is Detectron2's own key."""
    if "OPTIMIZER" in cfg.SOLVER:
        return cfg
    # "SGD" (Detectron2's: SOLVER.MOMENTUM, SOLVER.NESTEROV) or "ADAMW" (SOLVER.BETAS; the CPU
    # demo's choice: from scratch and a few hundred steps it gets much further than SGD). Both
    # take SOLVER.BASE_LR, WEIGHT_DECAY(_NORM, _BIAS), BIAS_LR_FACTOR and CLIP_GRADIENTS.
    cfg.SOLVER.OPTIMIZER = "SGD"
    # AdamW's (beta1, beta2).
    cfg.SOLVER.BETAS = (0.9, 0.999)
    # SOLVER.LR_SCHEDULER_NAME may also be "WarmupHoldCosineLR" (the CPU demo's): the full rate
    # until HOLD_FRACTION of MAX_ITER, then a cosine to 0 at MAX_ITER, times the warm-up
    # (SOLVER.WARMUP_ITERS, WARMUP_FACTOR, WARMUP_METHOD) over the first iterations.
    cfg.SOLVER.HOLD_FRACTION = 0.6
    # SOLVER.CLIP_GRADIENTS.CLIP_TYPE may also be "full_model": clip the norm of all gradients
    # together at CLIP_VALUE (torch.nn.utils.clip_grad_norm_ over every parameter), where
    # Detectron2's "norm" clips each parameter's gradient on its own.
    # Put the model in channels_last (NHWC) memory format when train_net builds it (training
    # and --eval-only): CPU max/avg pooling and their gradients are several times faster than in
    # NCHW (bench/profile_step.py). The numbers are the same up to float summation order.
    cfg.MODEL.CHANNELS_LAST = False
    # How the box head's ROIAlignV2 is computed: "roi_align" (torchvision's kernel) or
    # "grid_sample" (nasnet_det.detection.pooling.GridSampleROIAlign: the same values for
    # clipped boxes, a vectorised CPU gradient where torchvision's is a scalar loop; needs
    # POOLER_SAMPLING_RATIO >= 1). Applied when train_net builds the model.
    cfg.MODEL.ROI_BOX_HEAD.POOLER_IMPL = "roi_align"
    # SOLVER.AMP.ENABLED: autocast in float16 with a gradient scaler on CUDA, in bfloat16 (no
    # scaler needed) on CPU. See docs/BENCHMARKS.md for when bf16 pays on a CPU.
    # Keep OUTPUT_DIR/model_best.pth, the checkpoint with the best METRIC seen at evaluation
    # (TEST.EVAL_PERIOD and the end of training), beside model_final.pth.
    cfg.SOLVER.BEST_CHECKPOINTER = CN()
    cfg.SOLVER.BEST_CHECKPOINTER.ENABLED = False
    # A key of the evaluation results, flattened with "/": "bbox/AP", "bbox/AP50", or with
    # MODEL_EMA the EMA's "ema/bbox/AP".
    cfg.SOLVER.BEST_CHECKPOINTER.METRIC = "bbox/AP"
    # "max" or "min".
    cfg.SOLVER.BEST_CHECKPOINTER.MODE = "max"
    # An exponential moving average of the weights (as d2go and detrex keep one), updated after
    # every step, saved in the checkpoints as "model_ema" and evaluated beside the raw weights
    # (its results under "ema/...").
    cfg.MODEL_EMA = CN()
    cfg.MODEL_EMA.ENABLED = False
    # Decay per step; the first steps use min(DECAY, (1 + n) / (10 + n)), TF's warm-up.
    cfg.MODEL_EMA.DECAY = 0.9998
    return cfg


def build_optimizer(cfg: CN, model: torch.nn.Module) -> torch.optim.Optimizer:
    """``SOLVER.OPTIMIZER`` over Detectron2's parameter groups, with its gradient clipping."""
    name = str(cfg.SOLVER.OPTIMIZER).upper()
    if name == "SGD":
        cls, extra = torch.optim.SGD, {"momentum": cfg.SOLVER.MOMENTUM,
                                       "nesterov": cfg.SOLVER.NESTEROV}  # fmt: skip
    elif name == "ADAMW":
        betas = tuple(float(b) for b in cfg.SOLVER.BETAS)
        if len(betas) != 2 or not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"SOLVER.BETAS must be two numbers in [0, 1), got {betas}")
        cls, extra = torch.optim.AdamW, {"betas": betas}
    else:
        raise ValueError(
            f"SOLVER.OPTIMIZER must be one of {', '.join(OPTIMIZERS)}, got {cfg.SOLVER.OPTIMIZER!r}"
        )
    params = get_default_optimizer_params(
        model,
        base_lr=cfg.SOLVER.BASE_LR,
        weight_decay_norm=cfg.SOLVER.WEIGHT_DECAY_NORM,
        bias_lr_factor=cfg.SOLVER.BIAS_LR_FACTOR,
        weight_decay_bias=cfg.SOLVER.WEIGHT_DECAY_BIAS,
    )
    clip = cfg.SOLVER.CLIP_GRADIENTS
    if clip.ENABLED and clip.CLIP_TYPE == "full_model":
        cls = _clip_full_model(cls, float(clip.CLIP_VALUE), float(clip.NORM_TYPE))
    else:
        cls = maybe_add_gradient_clipping(cfg, cls)
    return cls(params, lr=cfg.SOLVER.BASE_LR, weight_decay=cfg.SOLVER.WEIGHT_DECAY, **extra)


def _clip_full_model(cls: type, max_norm: float, norm_type: float) -> type:
    """``cls`` whose ``step`` first clips the norm of all its parameters' gradients together."""
    if not max_norm > 0:
        raise ValueError(f"SOLVER.CLIP_GRADIENTS.CLIP_VALUE must be > 0, got {max_norm}")

    def step(self, closure=None):
        params = [p for g in self.param_groups for p in g["params"]]
        torch.nn.utils.clip_grad_norm_(params, max_norm, norm_type)
        return cls.step(self, closure)

    return type(cls.__name__ + "FullModelClip", (cls,), {"step": step})


def build_lr_scheduler(cfg: CN, optimizer: torch.optim.Optimizer):
    """``SOLVER.LR_SCHEDULER_NAME``: Detectron2's schedulers, or "WarmupHoldCosineLR" (the
    engine's :func:`~nasnet_det.engine.warmup_hold_cosine` as an ``LRMultiplier``)."""
    s = cfg.SOLVER
    if s.LR_SCHEDULER_NAME not in LR_SCHEDULERS:
        raise ValueError(f"SOLVER.LR_SCHEDULER_NAME must be one of {', '.join(LR_SCHEDULERS)}, "
                         f"got {s.LR_SCHEDULER_NAME!r}")  # fmt: skip
    if s.LR_SCHEDULER_NAME != "WarmupHoldCosineLR":
        return d2_build_lr_scheduler(cfg, optimizer)
    if not 0.0 <= s.HOLD_FRACTION < 1.0:
        raise ValueError(f"SOLVER.HOLD_FRACTION must be in [0, 1), got {s.HOLD_FRACTION!r}")
    warmup = min(1.0, s.WARMUP_ITERS / s.MAX_ITER)
    multiplier = engine.warmup_hold_cosine(
        warmup, float(s.HOLD_FRACTION), float(s.WARMUP_FACTOR), s.WARMUP_METHOD
    )
    return LRMultiplier(optimizer, multiplier=multiplier, max_iter=s.MAX_ITER)


def prepare_model(cfg: CN, model: torch.nn.Module) -> torch.nn.Module:
    """Apply ``MODEL.CHANNELS_LAST`` and ``MODEL.ROI_BOX_HEAD.POOLER_IMPL`` to a built model."""
    impl = cfg.MODEL.ROI_BOX_HEAD.POOLER_IMPL
    if impl not in POOLER_IMPLS:
        raise ValueError(f"MODEL.ROI_BOX_HEAD.POOLER_IMPL must be one of "
                         f"{', '.join(POOLER_IMPLS)}, got {impl!r}")  # fmt: skip
    if impl == "grid_sample":
        from nasnet_det.detection.pooling import use_grid_sample_pooler

        if use_grid_sample_pooler(model) == 0:
            raise ValueError(
                "MODEL.ROI_BOX_HEAD.POOLER_IMPL 'grid_sample' needs a ROIAlignV2 pooler with "
                "POOLER_SAMPLING_RATIO >= 1; the model has none"
            )
    if cfg.MODEL.CHANNELS_LAST:
        model.to(memory_format=torch.channels_last)
    return model


def autocast_dtype(device_type: str) -> torch.dtype:
    """float16 on CUDA (tensor cores, with a gradient scaler), bfloat16 elsewhere (CPU)."""
    return torch.float16 if device_type == "cuda" else torch.bfloat16


class AutocastTrainer(AMPTrainer):
    """Detectron2's ``AMPTrainer`` on any device: ``torch.autocast(device_type, dtype)``.

    On CUDA it is float16 with a ``GradScaler``; on CPU bfloat16, whose range is float32's, so
    the scaler is disabled (a pass-through). Detectron2's own AMPTrainer requires CUDA.
    """

    def __init__(self, model, data_loader, optimizer, device_type: str) -> None:
        dtype = autocast_dtype(device_type)
        scaler = torch.amp.GradScaler(device_type, enabled=dtype == torch.float16)
        super().__init__(model, data_loader, optimizer, grad_scaler=scaler, precision=dtype)
        self.device_type = device_type

    def run_step(self) -> None:
        if not self.model.training:
            raise RuntimeError("AutocastTrainer: the model was switched to eval mode")
        start = time.perf_counter()
        data = next(self._data_loader_iter)
        data_time = time.perf_counter() - start
        with torch.autocast(self.device_type, dtype=self.precision):
            loss_dict = self.model(data)
            losses = sum(loss_dict.values())
        self.optimizer.zero_grad()
        self.grad_scaler.scale(losses).backward()
        self.after_backward()
        self._write_metrics(loss_dict, data_time)
        self.grad_scaler.step(self.optimizer)
        self.grad_scaler.update()


def autocast_trainer(trainer: SimpleTrainer, cfg: CN) -> SimpleTrainer:
    """With ``SOLVER.AMP.ENABLED``, the :class:`AutocastTrainer` over ``trainer``'s model, data
    and optimizer (for ``MODEL.DEVICE``); otherwise ``trainer`` itself."""
    if not cfg.SOLVER.AMP.ENABLED:
        return trainer
    device_type = torch.device(cfg.MODEL.DEVICE).type
    logger.info("mixed precision: autocast to %s on %s", autocast_dtype(device_type), device_type)
    return AutocastTrainer(trainer.model, trainer.data_loader, trainer.optimizer, device_type)


class EMAHook(EngineHook):
    """The engine's :class:`~nasnet_det.engine.EMAHook`: a
    :class:`~nasnet_det.engine.ModelEma` of the trainer's model (every float parameter and
    buffer, BN statistics included), updated after every step.

    The copy is taken at the start of training, after ``MODEL.WEIGHTS`` or a resumed
    checkpoint were loaded. It is a checkpointable (``state_dict``/``load_state_dict``), saved
    as ``"model_ema"`` beside the model.
    """

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"MODEL_EMA.DECAY must be in (0, 1), got {decay}")
        super().__init__(engine.EMAHook(ModelEma(model, decay)))

    @property
    def ema(self) -> ModelEma:
        return self.hook.ema

    def state_dict(self) -> dict[str, Any]:
        return self.hook.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.hook.load_state_dict(state)


def _evaluate_raw_and_ema(trainer, ema: ModelEma) -> dict[str, Any]:
    """The trainer's evaluation of the raw weights, plus the EMA's under ``"ema"``."""
    results = dict(trainer.test(trainer.cfg, trainer.model))
    results["ema"] = dict(trainer.test(trainer.cfg, ema.module))
    trainer._last_eval_results = results  # read by engine.main, as DefaultTrainer's own
    return results


def add_training_hooks(trainer, ret: list) -> list:
    """``ret`` (DefaultTrainer's hooks) with the EMA hook before evaluation, evaluation of raw
    and EMA weights, and the best checkpointer after evaluation, as the config asks."""
    cfg = trainer.cfg
    ret = list(ret)
    if cfg.MODEL_EMA.ENABLED:
        ema_hook = EMAHook(trainer.model, float(cfg.MODEL_EMA.DECAY))
        trainer.checkpointer.add_checkpointable("model_ema", ema_hook)
        proxy = weakref.proxy(trainer)
        evaluate = hooks.EvalHook(
            cfg.TEST.EVAL_PERIOD, lambda: _evaluate_raw_and_ema(proxy, ema_hook.ema)
        )
        ret = [evaluate if isinstance(h, hooks.EvalHook) else h for h in ret]
        # Updated before the periodic checkpointer and evaluation read it in the same step.
        kinds = (hooks.PeriodicCheckpointer, hooks.EvalHook)
        ret.insert(next((i for i, h in enumerate(ret) if isinstance(h, kinds)), len(ret)), ema_hook)
    at = next((i for i, h in enumerate(ret) if isinstance(h, hooks.EvalHook)), len(ret) - 1)
    if cfg.SOLVER.BEST_CHECKPOINTER.ENABLED and comm.is_main_process():
        mode = cfg.SOLVER.BEST_CHECKPOINTER.MODE
        if mode not in ("max", "min"):
            raise ValueError(f"SOLVER.BEST_CHECKPOINTER.MODE must be 'max' or 'min', got {mode!r}")
        best = hooks.BestCheckpointer(
            cfg.TEST.EVAL_PERIOD, trainer.checkpointer, cfg.SOLVER.BEST_CHECKPOINTER.METRIC, mode
        )
        ret.insert(at + 1, best)
    return ret
