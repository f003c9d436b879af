"""Detectron2's LazyConfig (Python configs) for NASNet detectors, behind
``tools/lazyconfig_train_net.py``.

The model-zoo ``.py`` configs (``configs/COCO-Detection/*.py``, on ``configs/common/``) build
the same networks as the YAML ones from plain constructors (``L(GeneralizedRCNN)(...)``), the
way Detectron2's new baselines and ViTDet ship. Training and evaluation follow Detectron2's
``tools/lazyconfig_train_net.py`` (``SimpleTrainer`` / ``AMPTrainer`` with its hooks), with our
checks of every value read before any output, and NASNet classification checkpoints accepted as
``train.init_checkpoint``.
"""

from __future__ import annotations

import argparse
import logging
import os
from typing import Any

import torch
from detectron2.config import CfgNode, LazyConfig, instantiate
from omegaconf import DictConfig

from nasnet_det.config import ConfigError
from nasnet_det.nasnet import NASNetConfig, plan_nasnet

logger = logging.getLogger(__name__)

__all__ = [
    "LAZY_KEYS",
    "check_lazy_config",
    "clipped_optimizer",
    "do_test",
    "do_train",
    "load_lazy_config",
    "main",
    "nasnet_channels",
    "yaml_view",
]

#: The top-level keys ``tools/lazyconfig_train_net.py`` reads (Detectron2's layout).
LAZY_KEYS = ("model", "dataloader", "optimizer", "lr_multiplier", "train")


def nasnet_channels(*, nasnet: NASNetConfig, name: str) -> int:
    """Channels of backbone feature ``name`` (``"nasnet_16"``, ``"c2"``..``"c5"``) or, for
    ``"second_stage"``, of the second stage's output: a config states the network once."""
    from nasnet_det.detection.backbone import _feature_outputs

    layout = plan_nasnet(nasnet)
    if name == "second_stage":
        return layout.num_features
    return sum(layout.feature_info[j]["num_chs"] for j in _feature_outputs(name, layout))


def clipped_optimizer(
    optimizer_class: type,
    *,
    params: Any,
    clip_type: str = "norm",
    clip_value: float = 10.0,
    norm_type: float = 2.0,
    **kwargs: Any,
) -> torch.optim.Optimizer:
    """``optimizer_class(params, **kwargs)`` whose ``step`` first clips the gradients as
    ``SOLVER.CLIP_GRADIENTS`` does: ``"value"`` / ``"norm"`` per parameter (Detectron2), or
    ``"full_model"`` (the norm of all gradients together)."""
    from detectron2.solver.build import maybe_add_gradient_clipping

    from nasnet_det.detection.training import _clip_full_model

    if clip_type == "full_model":
        cls = _clip_full_model(optimizer_class, float(clip_value), float(norm_type))
    elif clip_type in ("value", "norm"):
        clip = {"ENABLED": True, "CLIP_TYPE": clip_type, "CLIP_VALUE": float(clip_value),
                "NORM_TYPE": float(norm_type)}  # fmt: skip
        cls = maybe_add_gradient_clipping(CfgNode({"SOLVER": {"CLIP_GRADIENTS": clip}}),
                                          optimizer_class)  # fmt: skip
    else:
        raise ValueError(f"clip_type must be 'value', 'norm' or 'full_model', got {clip_type!r}")
    return cls(params, **kwargs)


def load_lazy_config(config_file: str, opts: list[str] | None = None) -> DictConfig:
    """A ``.py`` LazyConfig (a path, or a model-zoo name such as
    ``COCO-Detection/faster_rcnn_nasnet_a_mobile_1x.py``) with ``key=value`` overrides.

    A Python config runs its code, as Detectron2's do: load only files you trust. LazyConfig's
    ``.yaml`` form is refused (Detectron2 reads it with ``yaml.unsafe_load``)."""
    from nasnet_det.detection import model_zoo

    path = config_file
    if not os.path.exists(path):
        try:
            path = model_zoo.get_config_file(config_file)
        except FileNotFoundError:
            raise ConfigError(
                f"config file {config_file!r} does not exist (neither a path nor a model-zoo "
                "config)"
            ) from None
    if not path.endswith(".py"):
        raise ConfigError(f"{config_file!r} is not a LazyConfig .py file (YAML configs: "
                          "tools/train_net.py)")  # fmt: skip
    cfg = LazyConfig.load(path)
    missing = [k for k in LAZY_KEYS if k not in cfg]
    if missing:
        raise ConfigError(f"{config_file}: a LazyConfig for training needs {', '.join(missing)}")
    try:
        return LazyConfig.apply_overrides(cfg, list(opts or []))
    except Exception as e:  # omegaconf/hydra errors: a bad key or value
        raise ConfigError(f"bad override in {list(opts or [])}: {e}") from None


#: ``nasnet_config`` arguments that have a ``MODEL.NASNET`` key of the same name in capitals.
_NASNET_KEYS = (
    "genotype",
    "num_cells",
    "num_conv_filters",
    "stem_multiplier",
    "skip_reduction_layer_input",
    "drop_path_keep_prob",
    "bn_momentum",
    "pool_pad",
)


def yaml_view(model: DictConfig) -> CfgNode:
    """The ``MODEL.*`` that the YAML configs would need for ``model`` (its NASNet settings,
    backbone and ROI-heads names): what the checkpointer needs to map a NASNet classification
    checkpoint onto the detector."""
    from nasnet_det.detection.config import get_nasnet_cfg

    cfg = get_nasnet_cfg()
    fpn = "bottom_up" in model.backbone
    backbone = model.backbone.bottom_up if fpn else model.backbone
    n, node = backbone.nasnet, cfg.MODEL.NASNET
    node.PRESET = n.get("preset", "nasnet_a_mobile")
    for key in _NASNET_KEYS:
        if key in n:
            node[key.upper()] = n[key]
    node.NORM = backbone.get("norm", "FrozenBN")
    node.OUT_FEATURES = list(backbone.get("out_features", ["nasnet_16"]))
    cfg.MODEL.BACKBONE.NAME = "build_nasnet_fpn_backbone" if fpn else "build_nasnet_backbone"
    cfg.MODEL.ROI_HEADS.NAME = "StandardROIHeads" if fpn else "NASNetROIHeads"
    return cfg


def _dataset_names(loader: DictConfig) -> list[str]:
    names = loader.dataset.names
    return [names] if isinstance(names, str) else list(names)


def check_lazy_config(cfg: DictConfig, args: argparse.Namespace) -> None:
    """Every value the run reads, before any output: the datasets are registered, the device
    exists, the iteration counts are positive, the weights to start from load, and
    ``train.output_dir`` can be written."""
    from detectron2.data import DatasetCatalog

    from nasnet_det.detection.checkpoint import check_weights
    from nasnet_det.detection.engine import check_device
    from nasnet_det.io import check_output_dir

    t = cfg.train
    check_device(str(t.device))
    for key in ("max_iter", "log_period"):
        if not isinstance(t.get(key), int) or t[key] < 1:
            raise ConfigError(f"train.{key} must be an integer >= 1, got {t.get(key)!r}")
    loaders = ("test",) if args.eval_only else ("train", "test")
    for part in loaders:
        for name in _dataset_names(cfg.dataloader[part]):
            if name not in DatasetCatalog.list():
                raise ConfigError(f"dataloader.{part}: dataset {name!r} is not registered")
    check_weights(t.init_checkpoint, getattr(args, "allow_pickle", False),
                  "train.init_checkpoint", load=True)  # fmt: skip
    if args.eval_only and not t.init_checkpoint:
        raise ConfigError("--eval-only needs train.init_checkpoint (a trained checkpoint)")
    check_output_dir(t.output_dir, "train.output_dir")


def do_test(cfg: DictConfig, model: torch.nn.Module) -> dict:
    """COCO evaluation of ``model`` on ``dataloader.test`` (Detectron2's ``do_test``), with the
    batch norms of a copy folded (``MODEL.NASNET.FAST_INFERENCE``'s default)."""
    from detectron2.evaluation import inference_on_dataset, print_csv_format

    from nasnet_det.detection.fast import inference_model

    if "evaluator" not in cfg.dataloader:
        return {}
    fast = inference_model(model, yaml_view(cfg.model), copy=True)
    ret = inference_on_dataset(
        fast, instantiate(cfg.dataloader.test), instantiate(cfg.dataloader.evaluator)
    )
    print_csv_format(ret)
    return ret


def _checkpointer(cfg: DictConfig, model, args, trainer=None):
    from nasnet_det.detection.checkpoint import NASNetCheckpointer

    return NASNetCheckpointer(model, cfg.train.output_dir, cfg=yaml_view(cfg.model),
                              allow_pickle=getattr(args, "allow_pickle", False),
                              **({"trainer": trainer} if trainer is not None else {}))  # fmt: skip


def do_train(args: argparse.Namespace, cfg: DictConfig) -> dict:
    """Detectron2's ``do_train``: instantiate the model, optimizer and loader, train
    ``train.max_iter`` iterations with its hooks (evaluation every ``train.eval_period``)."""
    from detectron2.engine import AMPTrainer, SimpleTrainer, default_writers, hooks
    from detectron2.engine.defaults import create_ddp_model
    from detectron2.utils import comm

    from nasnet_det.detection.hooks import DropPathHook, ZeroLossHook

    model = instantiate(cfg.model)
    model.to(cfg.train.device)
    cfg.optimizer.params.model = model
    optim = instantiate(cfg.optimizer)
    train_loader = instantiate(cfg.dataloader.train)
    model = create_ddp_model(model, **cfg.train.ddp)
    trainer = (AMPTrainer if cfg.train.amp.enabled else SimpleTrainer)(model, train_loader, optim)
    checkpointer = _checkpointer(cfg, model, args, trainer)
    results: dict = {}

    def evaluate() -> dict:
        results.update(do_test(cfg, model))
        return results

    main = comm.is_main_process()
    drop_path_steps = cfg.train.get("drop_path_total_steps", 0) or cfg.train.max_iter
    trainer.register_hooks([
        ZeroLossHook(),  # a loss of exactly 0 from the start stops the run (one line)
        DropPathHook(drop_path_steps),  # ScheduledDropPath's progress, as train_net.py has it
        hooks.IterationTimer(),
        hooks.LRScheduler(scheduler=instantiate(cfg.lr_multiplier)),
        hooks.PeriodicCheckpointer(checkpointer, **cfg.train.checkpointer) if main else None,
        hooks.EvalHook(cfg.train.eval_period, evaluate),
        hooks.PeriodicWriter(default_writers(cfg.train.output_dir, cfg.train.max_iter),
                             period=cfg.train.log_period) if main else None,
    ])  # fmt: skip
    checkpointer.resume_or_load(cfg.train.init_checkpoint, resume=args.resume)
    start = trainer.iter + 1 if args.resume and checkpointer.has_checkpoint() else 0
    trainer.train(start, cfg.train.max_iter)
    return results


def main(args: argparse.Namespace) -> dict:
    """``tools/lazyconfig_train_net.py``: train, or with ``--eval-only`` evaluate, writing
    ``coco_metrics.json`` to ``train.output_dir`` as ``tools/train_net.py`` does."""
    from detectron2.engine import default_setup
    from detectron2.utils import comm

    from nasnet_det.detection.engine import write_metrics

    cfg = load_lazy_config(args.config_file, args.opts)
    check_lazy_config(cfg, args)
    default_setup(cfg, args)
    if args.eval_only:
        model = instantiate(cfg.model)
        model.to(cfg.train.device)
        _checkpointer(cfg, model, args).load(cfg.train.init_checkpoint)
        results = do_test(cfg, model)
    else:
        results = do_train(args, cfg)
    if results and comm.is_main_process():
        write_metrics(cfg.train.output_dir, results)
    return results
