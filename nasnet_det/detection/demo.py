"""The detection demo: a small NASNet Faster R-CNN learns the built-in digits dataset on CPU.

:func:`run_demo` trains the ``configs/Demo/faster_rcnn_nasnet_a_digits_cpu.yaml`` detector
(any genotype: a registered name or a cell search's JSON) within a time budget, evaluates it
with Detectron2's ``COCOEvaluator``, prints the COCO AP table and saves a picture of its
detections on validation images.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from detectron2.config import CfgNode
from detectron2.data import (
    DatasetCatalog,
    MetadataCatalog,
    build_detection_test_loader,
    build_detection_train_loader,
)
from detectron2.evaluation import COCOEvaluator, inference_on_dataset
from detectron2.modeling import build_model
from detectron2.utils.env import seed_all_rng
from detectron2.utils.events import EventStorage
from detectron2.utils.logger import create_small_table

import nasnet_det.data  # noqa: F401  (registers the built-in datasets)
from nasnet_det import model_zoo
from nasnet_det.detection.engine import write_metrics
from nasnet_det.detection.hooks import set_drop_path_progress
from nasnet_det.genotypes import get_genotype

__all__ = ["DEMO_CONFIG", "demo_config", "run_demo", "save_detections"]

DEMO_CONFIG = "Demo/faster_rcnn_nasnet_a_digits_cpu.yaml"
_EVAL_RESERVE_S = 60.0  # evaluation on 200 val images plus the picture (~25 s), headroom


def demo_config(genotype: str = "nasnet_a", opts: list[str] | None = None) -> CfgNode:
    """The demo's config with ``MODEL.NASNET.GENOTYPE`` set (validated right away)."""
    get_genotype(genotype)  # a missing or malformed genotype fails before any work
    cfg = model_zoo.get_config(DEMO_CONFIG)
    cfg.MODEL.NASNET.GENOTYPE = os.fspath(genotype)
    if opts:
        cfg.merge_from_list(list(opts))
    return cfg


def _lr_factor(progress: float, it: int, warmup: int, hold: float = 0.6) -> float:
    """Linear warmup, constant until ``hold``, then cosine decay to 0 at ``progress`` 1.

    From scratch the classifier sits on a plateau for hundreds of steps before digit identity
    is learned; holding the full rate gets it off sooner than a cosine from the start.
    """
    warm = min(1.0, (it + 1) / warmup) if warmup > 0 else 1.0
    p = min(1.0, max(0.0, (progress - hold) / (1.0 - hold)))
    return warm * 0.5 * (1.0 + math.cos(math.pi * p))


def _train(cfg: CfgNode, model: torch.nn.Module, budget_s: float) -> dict[str, float]:
    """Train until SOLVER.MAX_ITER or ``budget_s`` seconds, annealing over whichever ends first.

    AdamW at ``SOLVER.BASE_LR``, gradient norm clipped at ``SOLVER.CLIP_GRADIENTS.CLIP_VALUE``.
    """
    # From scratch and a few hundred steps: AdamW gets much further than SGD in that budget.
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        params, lr=cfg.SOLVER.BASE_LR, weight_decay=cfg.SOLVER.WEIGHT_DECAY
    )
    base_lrs = [g["lr"] for g in optimizer.param_groups]
    loader = iter(build_detection_train_loader(cfg))
    model.train()
    start = time.monotonic()
    it, losses = 0, {}
    with EventStorage() as storage:
        while True:
            progress = max(it / cfg.SOLVER.MAX_ITER, (time.monotonic() - start) / budget_s)
            if progress >= 1.0:
                break
            factor = _lr_factor(progress, it, cfg.SOLVER.WARMUP_ITERS)
            for g, lr in zip(optimizer.param_groups, base_lrs):
                g["lr"] = lr * factor
            set_drop_path_progress(model, progress)
            storage.iter = it
            loss_dict = model(next(loader))
            loss = sum(loss_dict.values())
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss became {loss.item()} at iteration {it}")
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, cfg.SOLVER.CLIP_GRADIENTS.CLIP_VALUE)
            optimizer.step()
            losses = {
                k: losses.get(k, v.item()) * 0.9 + v.item() * 0.1 for k, v in loss_dict.items()
            }
            if it % 50 == 0:
                elapsed = time.monotonic() - start
                terms = "  ".join(f"{k} {v:.3f}" for k, v in losses.items())
                lr = base_lrs[0] * factor
                print(f"iter {it:5d}  {elapsed:6.0f}s  lr {lr:.5f}  {terms}", flush=True)
            it += 1
    return {"iterations": it, "train_seconds": time.monotonic() - start, **losses}


def save_detections(
    model: torch.nn.Module,
    dataset_name: str,
    path: str | os.PathLike,
    num_images: int = 6,
    score_thresh: float = 0.3,
) -> str:
    """Draw ``model``'s detections on the first val images into one PNG grid (atomic write)."""
    import cv2
    from detectron2.utils.visualizer import Visualizer

    dicts = DatasetCatalog.get(dataset_name)[:num_images]
    meta = MetadataCatalog.get(dataset_name)
    tiles = []
    model.eval()
    for d in dicts:
        bgr = cv2.imread(d["file_name"])
        rgb = bgr[:, :, ::-1]
        image = torch.as_tensor(np.ascontiguousarray(rgb.transpose(2, 0, 1)).astype("float32"))
        with torch.no_grad():
            inst = model([{"image": image, "height": rgb.shape[0], "width": rgb.shape[1]}])
        inst = inst[0]["instances"].to("cpu")
        inst = inst[inst.scores >= score_thresh]
        vis = Visualizer(rgb, meta, scale=3.0).draw_instance_predictions(inst)
        tiles.append(vis.get_image())
    cols = math.ceil(math.sqrt(len(tiles)))  # 6 images: 3 x 2; 4 images: 2 x 2
    rows = [np.concatenate(tiles[i : i + cols], 1) for i in range(0, len(tiles), cols)]
    if rows and rows[-1].shape != rows[0].shape:
        pad = np.full_like(rows[0], 255)
        pad[:, : rows[-1].shape[1]] = rows[-1]
        rows[-1] = pad
    grid = np.concatenate(rows, 0)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.png")
    if not cv2.imwrite(str(tmp), grid[:, :, ::-1]):
        raise OSError(f"could not write {tmp}")
    os.replace(tmp, path)
    return str(path)


def run_demo(
    output_dir: str,
    genotype: str = "nasnet_a",
    max_minutes: float = 10.0,
    *,
    opts: list[str] | None = None,
) -> dict[str, Any]:
    """Train, evaluate and draw the demo detector; everything within ``max_minutes``.

    ``genotype``: a registered name or a genotype JSON path. ``opts``: extra KEY VALUE config
    overrides. Returns ``{"metrics": COCO bbox metrics (AP, AP50, ...), "image": PNG path,
    "train": iterations/seconds/final losses}``; also writes ``coco_metrics.json`` there.
    """
    if max_minutes <= 0:
        raise ValueError(f"max_minutes must be positive, got {max_minutes}")
    # One thread: on a shared machine OpenMP's spinning threads slow a multi-threaded step
    # down several-fold, and for a model this small a second thread gains little (measured on
    # 2 cores: 0.47 s vs 0.40 s per iteration uncontended).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _run_demo(output_dir, genotype, max_minutes, opts)
    finally:
        torch.set_num_threads(threads)


def _run_demo(
    output_dir: str, genotype: str, max_minutes: float, opts: list[str] | None
) -> dict[str, Any]:
    t0 = time.monotonic()
    cfg = demo_config(genotype, opts)
    cfg.OUTPUT_DIR = str(output_dir)
    cfg.freeze()
    os.makedirs(output_dir, exist_ok=True)
    seed_all_rng(cfg.SEED)
    print(f"demo: NASNet genotype {genotype!r}, budget {max_minutes:.1f} min", flush=True)
    for name in cfg.DATASETS.TRAIN + cfg.DATASETS.TEST:
        DatasetCatalog.get(name)  # written once to the cache on first use
    model = build_model(cfg)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"demo: detector with {n_params / 1e6:.2f}M parameters", flush=True)

    budget = max_minutes * 60.0 - (time.monotonic() - t0) - _EVAL_RESERVE_S
    if budget < 10:
        raise ValueError(f"max_minutes={max_minutes} leaves no time to train")
    train_stats = _train(cfg, model, budget)
    print(
        f"demo: trained {train_stats['iterations']} iterations in "
        f"{train_stats['train_seconds']:.0f}s",
        flush=True,
    )

    val = cfg.DATASETS.TEST[0]
    evaluator = COCOEvaluator(
        val, output_dir=os.path.join(output_dir, "inference"), use_fast_impl=False
    )
    model.eval()
    results = inference_on_dataset(model, build_detection_test_loader(cfg, val), evaluator)
    bbox = dict(results["bbox"])
    print(f"demo: COCO box AP on {val} ({len(DatasetCatalog.get(val))} images)")
    print(create_small_table({k: v for k, v in bbox.items() if "-" not in k}))
    image = save_detections(model, val, Path(output_dir) / "detections.png")
    print(f"demo: detections drawn to {image}")
    write_metrics(output_dir, {"bbox": bbox, "train": train_stats})
    print(f"demo: done in {(time.monotonic() - t0) / 60:.1f} min", flush=True)
    return {"metrics": bbox, "image": image, "train": train_stats}
