"""Training and evaluation wiring behind ``tools/train_net.py`` (Detectron2's DefaultTrainer).

Adds to Detectron2's trainer: the NASNet config node, the checkpointer that takes NASNet
classification checkpoints, the drop-path hook, COCO evaluation with pycocotools
(``use_fast_impl=False``, since this build has no compiled extension) and a
``coco_metrics.json`` written atomically to ``OUTPUT_DIR``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import weakref
from collections import OrderedDict
from pathlib import Path
from typing import Any

from detectron2.config import CfgNode
from detectron2.data import DatasetCatalog
from detectron2.engine import DefaultTrainer, default_setup
from detectron2.evaluation import COCOEvaluator
from detectron2.utils import comm

import nasnet_det.detection  # noqa: F401  (registers the NASNet parts and built-in datasets)
from nasnet_det.detection import model_zoo
from nasnet_det.detection.checkpoint import NASNetCheckpointer
from nasnet_det.detection.config import get_nasnet_cfg
from nasnet_det.detection.hooks import DropPathHook

__all__ = ["Trainer", "load_config", "main", "setup", "write_metrics"]


class Trainer(DefaultTrainer):
    """``DefaultTrainer`` with NASNet checkpoint loading, drop path and COCO evaluation."""

    def build_hooks(self) -> list:
        # DefaultTrainer made a DetectionCheckpointer just before; ours also reads NASNet
        # classification checkpoints and refuses mismatching ones.
        self.checkpointer = NASNetCheckpointer(
            self._trainer.model, self.cfg.OUTPUT_DIR, cfg=self.cfg, trainer=weakref.proxy(self)
        )
        ret = super().build_hooks()
        total = self.cfg.MODEL.NASNET.DROP_PATH_TOTAL_STEPS or self.cfg.SOLVER.MAX_ITER
        ret.insert(0, DropPathHook(total))
        return ret

    @classmethod
    def build_evaluator(cls, cfg: CfgNode, dataset_name: str, output_folder: str | None = None):
        DatasetCatalog.get(dataset_name)  # built-in datasets write their json on first use
        output_folder = output_folder or os.path.join(cfg.OUTPUT_DIR, "inference")
        return COCOEvaluator(dataset_name, output_dir=output_folder, use_fast_impl=False)


def load_config(config_file: str, opts: list[str] | None = None) -> CfgNode:
    """Default config + ``MODEL.NASNET``, merged with a yaml file (a path, or a model-zoo
    name such as ``COCO-Detection/faster_rcnn_nasnet_a_mobile_1x.yaml``) and KEY VALUE opts."""
    cfg = get_nasnet_cfg()
    if config_file:
        path = config_file
        if not os.path.isfile(path):
            try:
                path = model_zoo.get_config_file(config_file)
            except FileNotFoundError:
                raise FileNotFoundError(
                    f"config file {config_file!r} does not exist (neither a path nor a "
                    "model-zoo config)"
                ) from None
        cfg.merge_from_file(path)
    if opts:
        if len(opts) % 2:
            raise ValueError(f"overrides must be KEY VALUE pairs, got an odd list: {opts}")
        cfg.merge_from_list(list(opts))
    return cfg


def setup(args: argparse.Namespace) -> CfgNode:
    cfg = load_config(args.config_file, args.opts)
    cfg.freeze()
    default_setup(cfg, args)
    return cfg


def write_metrics(output_dir: str, results: dict[str, Any]) -> str:
    """Write ``results`` (e.g. ``{"bbox": {"AP": ..}}``) to ``output_dir/coco_metrics.json``."""
    path = Path(output_dir) / "coco_metrics.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(_plain(results), indent=2) + "\n")
    os.replace(tmp, path)
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
    if args.eval_only:
        model = Trainer.build_model(cfg)
        NASNetCheckpointer(model, cfg.OUTPUT_DIR, cfg=cfg).resume_or_load(
            cfg.MODEL.WEIGHTS, resume=args.resume
        )
        results = Trainer.test(cfg, model)
    else:
        trainer = Trainer(cfg)
        trainer.resume_or_load(resume=args.resume)
        trainer.train()
        results = getattr(trainer, "_last_eval_results", None)
    if results and comm.is_main_process():
        write_metrics(cfg.OUTPUT_DIR, results)
    return results
