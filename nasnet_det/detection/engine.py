"""Training and evaluation wiring behind ``tools/train_net.py`` (Detectron2's DefaultTrainer).

Adds to Detectron2's trainer: the NASNet config node, the checkpointer that takes NASNet
classification checkpoints, the drop-path hook, COCO evaluation with pycocotools
(``use_fast_impl=False``, since this build has no compiled extension) and a
``coco_metrics.json`` written atomically to ``OUTPUT_DIR``.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import weakref
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch
from detectron2.config import CfgNode
from detectron2.data import DatasetCatalog
from detectron2.engine import DefaultTrainer, default_setup
from detectron2.evaluation import COCOEvaluator
from detectron2.utils import comm
from detectron2.utils.logger import setup_logger

import nasnet_det.detection  # noqa: F401  (registers the NASNet parts and built-in datasets)
from nasnet_det.config import (
    ConfigError,
    Rule,
    check_table,
    choice,
    integer,
    merge_config_file,
    merge_overrides,
    number,
    numbers,
)
from nasnet_det.detection import model_zoo, training
from nasnet_det.detection.backbone import C4_FEATURE, FPN_FEATURES
from nasnet_det.detection.checkpoint import NASNetCheckpointer, allow_pickle_from_env, check_weights
from nasnet_det.detection.config import get_nasnet_cfg, nasnet_config_from_cfg, resolve_genotype
from nasnet_det.detection.datasets import register_from_config
from nasnet_det.detection.fast import inference_model
from nasnet_det.detection.hooks import DropPathHook, EngineHook, ZeroLossHook
from nasnet_det.engine import ProgressHook
from nasnet_det.io import atomic_write_json, check_output_dir
from nasnet_det.limits import max_image_side
from nasnet_det.nasnet import plan_nasnet

logger = logging.getLogger(__name__)

__all__ = [
    "Trainer",
    "check_config",
    "check_device",
    "check_num_gpus",
    "load_config",
    "main",
    "setup",
    "write_metrics",
]


class _NoTracebackForUserErrors(logging.Filter):
    """Detectron2 logs "Exception during training:" with a traceback before re-raising; for a
    user's error (a full disk, a bad file) the tool's one-line message says it all."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], (OSError, ValueError)):
            record.exc_info = record.exc_text = None
        return True


logging.getLogger("detectron2.engine.train_loop").addFilter(_NoTracebackForUserErrors())


class Trainer(DefaultTrainer):
    """``DefaultTrainer`` with NASNet checkpoint loading, drop path and COCO evaluation.

    ``allow_pickle`` lets ``MODEL.WEIGHTS`` / ``--resume`` unpickle (``--allow-pickle``);
    ``progress`` adds the engine's progress bar (the demo's)."""

    def __init__(self, cfg: CfgNode, allow_pickle: bool = False, progress: bool = False) -> None:
        self.allow_pickle, self.progress = allow_pickle, progress
        super().__init__(cfg)
        self._trainer = training.autocast_trainer(self._trainer, cfg)  # SOLVER.AMP.ENABLED

    @classmethod
    def build_model(cls, cfg: CfgNode) -> torch.nn.Module:
        # MODEL.CHANNELS_LAST, MODEL.ROI_BOX_HEAD.POOLER_IMPL
        return training.prepare_model(cfg, super().build_model(cfg))

    @classmethod
    def build_optimizer(cls, cfg: CfgNode, model: torch.nn.Module) -> torch.optim.Optimizer:
        return training.build_optimizer(cfg, model)  # SOLVER.OPTIMIZER, CLIP_TYPE full_model

    @classmethod
    def build_lr_scheduler(cls, cfg: CfgNode, optimizer: torch.optim.Optimizer):
        return training.build_lr_scheduler(cfg, optimizer)  # also WarmupHoldCosineLR

    def build_hooks(self) -> list:
        # DefaultTrainer made a DetectionCheckpointer just before; ours also reads NASNet
        # classification checkpoints, refuses mismatching ones and writes atomically.
        self.checkpointer = NASNetCheckpointer(
            self._trainer.model,
            self.cfg.OUTPUT_DIR,
            cfg=self.cfg,
            allow_pickle=self.allow_pickle,
            trainer=weakref.proxy(self),
        )
        ret = super().build_hooks()
        total = self.cfg.MODEL.NASNET.DROP_PATH_TOTAL_STEPS or self.cfg.SOLVER.MAX_ITER
        ret.insert(0, DropPathHook(total))
        ret.insert(0, ZeroLossHook())  # first: stops before a checkpoint of a 0-loss step
        if self.progress:
            ret.append(EngineHook(ProgressHook("detector")))
        return training.add_training_hooks(self, ret)  # MODEL_EMA, SOLVER.BEST_CHECKPOINTER

    def resume_or_load(self, resume: bool = True) -> None:
        super().resume_or_load(resume=resume)
        # Killed while writing model_final.pth after the last periodic checkpoint: resuming
        # starts at MAX_ITER and trains nothing, so write the final checkpoint from that state.
        final = os.path.join(self.cfg.OUTPUT_DIR, "model_final.pth")
        if resume and self.start_iter >= self.max_iter and not os.path.isfile(final):
            logger.info("the run had finished training; writing the missing %s", final)
            self.checkpointer.save("model_final", iteration=self.start_iter - 1)

    @classmethod
    def test(cls, cfg: CfgNode, model: torch.nn.Module, evaluators=None):
        # MODEL.NASNET.FAST_INFERENCE: evaluate a BN-folded copy (the trained model is untouched;
        # an --eval-only model made fast in place is used as it is).
        return super().test(cfg, inference_model(model, cfg, copy=True), evaluators)

    @classmethod
    def build_evaluator(cls, cfg: CfgNode, dataset_name: str, output_folder: str | None = None):
        DatasetCatalog.get(dataset_name)  # built-in datasets write their json on first use
        output_folder = output_folder or os.path.join(cfg.OUTPUT_DIR, "inference")
        return COCOEvaluator(dataset_name, output_dir=output_folder, use_fast_impl=False)


def load_config(config_file: str, opts: list[str] | None = None) -> CfgNode:
    """Default config + ``MODEL.NASNET``, merged with a yaml file (a path, or a model-zoo
    name such as ``COCO-Detection/faster_rcnn_nasnet_a_mobile_1x.yaml``) and KEY VALUE opts.

    YAML is read safely (a Python tag is refused, never run); an unknown key, a wrong type or a
    broken file is one :class:`~nasnet_det.config.ConfigError` naming the file and the key.
    ``MODEL.NASNET.GENOTYPE`` is resolved here, once (:func:`resolve_genotype`)."""
    cfg = get_nasnet_cfg()
    if config_file:
        path = config_file
        if not os.path.exists(path):
            try:
                path = model_zoo.get_config_file(config_file)
            except (FileNotFoundError, RuntimeError):
                raise ConfigError(
                    f"config file {config_file!r} does not exist (neither a path nor a "
                    "model-zoo config)"
                ) from None
        merge_config_file(cfg, path)
    if opts:
        merge_overrides(cfg, list(opts))
    resolve_genotype(cfg)  # a genotype file is read here, once per run
    return cfg


_OUT_FEATURES = (C4_FEATURE, *FPN_FEATURES)  # the backbone's own names
_FEATURES = Rule(lambda v: len(v) > 0 and all(f in _OUT_FEATURES for f in v),
                 f"some of {', '.join(_OUT_FEATURES)}")  # fmt: skip
_OPTIMIZER = Rule(lambda v: str(v).upper() in training.OPTIMIZERS,
                  "one of " + ", ".join(training.OPTIMIZERS))  # fmt: skip
_TEST_SIZES = ("MAX_SIZE_TRAIN", "MIN_SIZE_TEST", "MAX_SIZE_TEST")


def _config_checks() -> list[tuple[str, Rule]]:
    """The table of every value train_net reads (the image side limit is read per call)."""
    side = max_image_side()
    size = integer(1, side)
    min_sizes = Rule(  # an int or a list (Detectron2 takes both)
        lambda v: all(map(size.holds, v)) and len(v) > 0 if isinstance(v, (list, tuple))
        else size.holds(v),
        f"one or more sizes in [1, {side}]",
    )  # fmt: skip
    return [
        *((f"SOLVER.{k}", integer(1)) for k in ("MAX_ITER", "IMS_PER_BATCH", "CHECKPOINT_PERIOD")),
        ("SOLVER.BASE_LR", number(0, open_low=True)),
        ("SOLVER.WARMUP_ITERS", integer(0)),
        *((f"SOLVER.{k}", number(0)) for k in ("WEIGHT_DECAY", "MOMENTUM", "GAMMA")),
        ("SOLVER.STEPS", Rule(lambda v: all(map(integer(1).holds, v)), "iteration numbers >= 1")),
        ("SOLVER.OPTIMIZER", _OPTIMIZER),
        ("SOLVER.BETAS", numbers(2, number(0, 1, open_high=True))),
        ("SOLVER.LR_SCHEDULER_NAME", choice(*training.LR_SCHEDULERS)),
        ("SOLVER.HOLD_FRACTION", number(0, 1, open_high=True)),
        ("SOLVER.BEST_CHECKPOINTER.MODE", choice("max", "min")),
        ("MODEL_EMA.DECAY", number(0, 1, open_low=True, open_high=True)),
        ("TEST.EVAL_PERIOD", integer(0, note="0: evaluate at the end only")),
        ("DATALOADER.NUM_WORKERS", integer(0)),
        ("MODEL.ROI_HEADS.NUM_CLASSES", integer(1)),
        *((f"MODEL.ROI_HEADS.{k}", number(0, 1)) for k in ("SCORE_THRESH_TEST", "NMS_THRESH_TEST")),
        ("INPUT.MIN_SIZE_TRAIN", min_sizes),
        *((f"INPUT.{k}", integer(0, side)) for k in _TEST_SIZES),
        ("MODEL.NASNET.FREEZE_AT", integer(0)),
        ("MODEL.NASNET.DROP_PATH_TOTAL_STEPS", integer(0, note="0: SOLVER.MAX_ITER")),
        ("MODEL.NASNET.OUT_FEATURES", _FEATURES),
    ]


def check_config(cfg: CfgNode, args: argparse.Namespace | None = None) -> None:
    """Check every value train_net uses before any work or output, naming the key: the table
    above, every ``MODEL.NASNET`` value (through the network plan), the device, and that the
    weights to start from (``MODEL.WEIGHTS``, or the checkpoint ``--resume`` continues) load."""
    check_table(cfg, _config_checks())
    plan_nasnet(nasnet_config_from_cfg(cfg))  # every MODEL.NASNET value, named on error
    _check_device(cfg.MODEL.DEVICE, getattr(args, "num_gpus", 1) if args else 1)
    allow_pickle = _allow_pickle(args)
    resume = args is not None and getattr(args, "resume", False)
    ckpt = NASNetCheckpointer(torch.nn.Module(), cfg.OUTPUT_DIR, cfg=cfg, allow_pickle=allow_pickle)
    if resume and ckpt.has_checkpoint():
        # What --resume loads (MODEL.WEIGHTS is not read then), checked before any output.
        ckpt.good_checkpoint_file(warn=False, load=True)
        return
    check_weights(cfg.MODEL.WEIGHTS, allow_pickle, load=True)
    if args is not None and getattr(args, "eval_only", False) and not cfg.MODEL.WEIGHTS:
        raise ConfigError(
            "--eval-only needs MODEL.WEIGHTS (a trained checkpoint), or --resume with a "
            "checkpoint in OUTPUT_DIR"
        )


def check_num_gpus(num_gpus: int) -> None:
    """``--num-gpus`` against the GPUs present (before ``launch`` starts any process)."""
    gpus = torch.cuda.device_count()
    if not integer(1).holds(num_gpus):
        raise ConfigError(f"--num-gpus must be >= 1, got {num_gpus}")
    if num_gpus > 1 and num_gpus > gpus:
        raise ConfigError(
            f"--num-gpus {num_gpus} asks for more GPUs than the {gpus} CUDA GPU(s) available"
        )


def check_device(device: str) -> None:
    """``MODEL.DEVICE`` for a one-process tool (predict, export): cuda needs a GPU."""
    _check_device(device, 1)


def _check_device(device: str, num_gpus: int) -> None:
    check_num_gpus(num_gpus)
    gpus = torch.cuda.device_count()
    kind = str(device).split(":", 1)[0]
    if kind not in ("cpu", "cuda"):
        raise ConfigError(f"MODEL.DEVICE must be 'cpu' or 'cuda', got {device!r}")
    if kind == "cuda" and gpus == 0:
        raise ConfigError(
            f"MODEL.DEVICE is {device!r} but no CUDA GPU is available (use MODEL.DEVICE cpu)"
        )
    if kind == "cpu" and num_gpus > 1:
        raise ConfigError(f"--num-gpus {num_gpus} needs MODEL.DEVICE cuda, got {device!r}")


def _allow_pickle(args: argparse.Namespace | None) -> bool:
    return bool(getattr(args, "allow_pickle", False)) or allow_pickle_from_env()


def setup(args: argparse.Namespace, cfg: CfgNode | None = None) -> CfgNode:
    """The checked, frozen config of a run (``cfg``, or ``args``' file and opts), its output
    folder and logs (Detectron2's ``default_setup``)."""
    cfg = load_config(args.config_file, args.opts) if cfg is None else cfg
    check_config(cfg, args)
    # DATASETS.COCO_JSON / VOC: read and checked here, before default_setup makes OUTPUT_DIR.
    register_from_config(cfg, need=("TEST",) if args.eval_only else ("TRAIN", "TEST"))
    if not args.eval_only and not cfg.DATASETS.TRAIN:
        raise ConfigError("DATASETS.TRAIN is empty; name at least one dataset to train on")
    check_output_dir(cfg.OUTPUT_DIR, "OUTPUT_DIR")
    cfg.freeze()
    default_setup(cfg, args)
    # Our own log lines (resume fallbacks, checkpoint mapping) beside Detectron2's.
    setup_logger(
        cfg.OUTPUT_DIR,
        distributed_rank=comm.get_rank(),
        name="nasnet_det",
        abbrev_name="nasnet_det",
    )
    return cfg


def write_metrics(output_dir: str, results: dict[str, Any]) -> str:
    """Write ``results`` (e.g. ``{"bbox": {"AP": ..}}``) to ``output_dir/coco_metrics.json``."""
    path = Path(output_dir) / "coco_metrics.json"
    atomic_write_json(path, _plain(results), "COCO metrics")
    return str(path)


def _plain(obj: Any) -> Any:
    # Strict JSON: numpy scalars become floats, NaN (e.g. APl with no large objects) null.
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if hasattr(obj, "__float__") and not isinstance(obj, bool):
        value = float(obj)
        return None if math.isnan(value) else value
    return obj


def main(args: argparse.Namespace) -> OrderedDict | dict | None:
    """Train (or with ``--eval-only`` evaluate) as Detectron2's ``tools/train_net.py`` does."""
    cfg = setup(args)
    allow_pickle = _allow_pickle(args)
    if args.eval_only:
        model = Trainer.build_model(cfg)
        checkpointer = NASNetCheckpointer(model, cfg.OUTPUT_DIR, cfg=cfg, allow_pickle=allow_pickle)
        checkpointer.resume_or_load(cfg.MODEL.WEIGHTS, resume=args.resume)
        results = Trainer.test(cfg, inference_model(model, cfg))  # folded in place: no copy
    else:
        trainer = Trainer(cfg, allow_pickle=allow_pickle)
        trainer.resume_or_load(resume=args.resume)
        trainer.train()
        results = getattr(trainer, "_last_eval_results", None)
    if results and comm.is_main_process():
        write_metrics(cfg.OUTPUT_DIR, results)
    return results
