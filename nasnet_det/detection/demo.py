"""The detection demo: a small NASNet Faster R-CNN learns the built-in digits dataset on CPU.

:func:`run_demo` trains the ``configs/Demo/faster_rcnn_nasnet_a_digits_cpu.yaml`` detector
(any genotype: a registered name or a cell search's JSON) for ``SOLVER.MAX_ITER`` iterations
from ``SEED``, evaluates it with Detectron2's ``COCOEvaluator``, prints the COCO AP table and
saves a picture of its detections on validation images. The budget is an iteration count, never
a wall clock: the same seed on the same machine gives the same AP.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
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

import nasnet_det.detection  # noqa: F401  (registers the NASNet parts and built-in datasets)
from nasnet_det.detection import model_zoo
from nasnet_det.detection.checkpoint import classification_to_detectron2
from nasnet_det.detection.config import nasnet_config_from_cfg
from nasnet_det.detection.engine import write_metrics
from nasnet_det.detection.hooks import set_drop_path_progress
from nasnet_det.detection.pooling import use_grid_sample_pooler
from nasnet_det.genotypes import get_genotype
from nasnet_det.io import atomic_save_torch, atomic_write_bytes
from nasnet_det.nasnet import NASNet

__all__ = [
    "DEMO_CONFIG",
    "Pretrain",
    "classifier_accuracy",
    "demo_config",
    "digit_crops",
    "evaluate",
    "pretrain_classifier",
    "run_demo",
    "save_detections",
    "train",
]

DEMO_CONFIG = "Demo/faster_rcnn_nasnet_a_digits_cpu.yaml"


def demo_config(genotype: str = "nasnet_a", opts: list[str] | None = None) -> CfgNode:
    """The demo's config with ``MODEL.NASNET.GENOTYPE`` set (validated right away)."""
    get_genotype(genotype)  # a missing or malformed genotype fails before any work
    cfg = model_zoo.get_config(DEMO_CONFIG)
    cfg.MODEL.NASNET.GENOTYPE = os.fspath(genotype)
    if opts:
        cfg.merge_from_list(list(opts))
    if cfg.SOLVER.MAX_ITER < 1:
        raise ValueError(f"SOLVER.MAX_ITER must be a positive integer, got {cfg.SOLVER.MAX_ITER}")
    return cfg


def _lr_factor(progress: float, it: int, warmup: int, hold: float = 0.6) -> float:
    """Linear warmup, constant until ``hold``, then cosine decay to 0 at ``progress`` 1.

    From scratch the classifier sits on a plateau for hundreds of steps before digit identity
    is learned; holding the full rate gets it off sooner than a cosine from the start.
    """
    warm = min(1.0, (it + 1) / warmup) if warmup > 0 else 1.0
    p = min(1.0, max(0.0, (progress - hold) / (1.0 - hold)))
    return warm * 0.5 * (1.0 + math.cos(math.pi * p))


def train(cfg: CfgNode, model: torch.nn.Module, progress: bool = True) -> dict[str, float]:
    """Train ``model`` for exactly ``SOLVER.MAX_ITER`` iterations; returns the final losses.

    AdamW at ``SOLVER.BASE_LR`` (from scratch and a few hundred steps, AdamW gets much further
    than SGD), linear warmup over ``SOLVER.WARMUP_ITERS``, held, then a cosine over the last 40%
    (:func:`_lr_factor`), gradient norm clipped at ``SOLVER.CLIP_GRADIENTS.CLIP_VALUE``.
    """
    from tqdm import tqdm

    # NHWC: CPU max/avg pooling and their gradients are several times faster than in NCHW
    # (bench/profile_step.py), and grid_sample's ROIAlign gradient is vectorised where
    # torchvision's CPU one is a scalar loop: a demo step takes 0.80x the time (0.187 vs
    # 0.234 s, median of 20 steps, 2 alternating rounds, 1 thread).
    model.to(memory_format=torch.channels_last)
    use_grid_sample_pooler(model)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        params, lr=cfg.SOLVER.BASE_LR, weight_decay=cfg.SOLVER.WEIGHT_DECAY
    )
    base_lrs = [g["lr"] for g in optimizer.param_groups]
    loader = iter(build_detection_train_loader(cfg))
    total = int(cfg.SOLVER.MAX_ITER)
    model.train()
    start = time.monotonic()
    losses: dict[str, float] = {}
    bar = tqdm(total=total, unit="it", desc="detector", disable=not progress, dynamic_ncols=True)
    with EventStorage() as storage, bar:
        for it in range(total):
            factor = _lr_factor(it / total, it, cfg.SOLVER.WARMUP_ITERS)
            for g, lr in zip(optimizer.param_groups, base_lrs):
                g["lr"] = lr * factor
            set_drop_path_progress(model, it / total)
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
            bar.update(1)
            if it % 25 == 0 or it == total - 1:
                bar.set_postfix(loss=f"{sum(losses.values()):.3f}", refresh=False)
    return {"iterations": total, "train_seconds": time.monotonic() - start, **losses}


def evaluate(cfg: CfgNode, model: torch.nn.Module, output_dir: str) -> dict[str, float]:
    """COCO box metrics of ``model`` on ``DATASETS.TEST[0]`` (pycocotools' prints captured)."""
    val = cfg.DATASETS.TEST[0]
    evaluator = COCOEvaluator(
        val, output_dir=os.path.join(output_dir, "inference"), use_fast_impl=False
    )
    model.eval()
    # pycocotools prints its progress ("Loading and preparing results...", the 12-line
    # summary) to stdout; the demo prints its own table instead.
    with contextlib.redirect_stdout(io.StringIO()):
        results = inference_on_dataset(model, build_detection_test_loader(cfg, val), evaluator)
    return dict(results["bbox"])


def save_detections(
    model: torch.nn.Module,
    dataset_name: str,
    path: str | os.PathLike,
    num_images: int = 6,
    score_thresh: float = 0.5,
    resize: tuple[int, int] | None = None,
) -> str:
    """Draw ``model``'s detections on the first val images into one PNG grid (atomic write).

    ``resize``: ``(INPUT.MIN_SIZE_TEST, INPUT.MAX_SIZE_TEST)``, the test-time resize the
    evaluation applies (boxes are drawn back at the image's own size); None feeds the images
    as they are."""
    import cv2
    from detectron2.data import transforms as T
    from detectron2.utils.visualizer import Visualizer

    dicts = DatasetCatalog.get(dataset_name)[:num_images]
    meta = MetadataCatalog.get(dataset_name)
    aug = T.ResizeShortestEdge(resize[0], resize[1]) if resize else None
    tiles = []
    model.eval()
    for d in dicts:
        rgb = cv2.imread(d["file_name"])[:, :, ::-1]
        seen = aug.get_transform(rgb).apply_image(rgb) if aug else rgb
        image = torch.as_tensor(np.ascontiguousarray(seen.transpose(2, 0, 1)).astype("float32"))
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
    ok, png = cv2.imencode(".png", np.ascontiguousarray(np.concatenate(rows, 0)[:, :, ::-1]))
    if not ok:
        raise OSError(f"could not encode the detections picture {str(path)!r}")
    atomic_write_bytes(path, png.tobytes(), what="detections picture")
    return str(path)


@dataclasses.dataclass(frozen=True)
class Pretrain:
    """Classification pretraining of the detector's NASNet on digit crops (the paper's recipe,
    ImageNet then COCO, in miniature): ``iters`` AdamW steps at ``lr`` with a cosine decay, each
    on ``batch_size`` freshly rendered crops (:class:`nasnet_det.data.DigitCrops`: the
    training split's digits on photographs, never a val digit) of ``crop`` px at the detector's
    input scale. ``iters=0`` trains the detector from scratch."""

    iters: int = 1000
    batch_size: int = 32
    lr: float = 3e-3
    weight_decay: float = 1e-4
    crop: int = 64


def digit_crops(
    dataset_name: str, crop: int = 64, scale: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """A window of ``crop / scale`` image pixels (photo background included) centred on every
    annotated object of a registered detection dataset, resized to ``crop`` px, RGB scaled to
    [-1, 1] as the demo's ``PIXEL_MEAN``/``PIXEL_STD`` do; ``(x [n, 3, crop, crop] float32,
    y [n] int64)``."""
    import cv2

    from nasnet_det.data import centred_window

    xs, ys = [], []
    window = max(1, int(round(crop / scale)))
    half = window // 2
    for d in DatasetCatalog.get(dataset_name):
        rgb = cv2.imread(d["file_name"])[:, :, ::-1]
        padded = cv2.copyMakeBorder(rgb, half, half, half, half, cv2.BORDER_REFLECT)
        for a in d.get("annotations", []):
            x, y, w, h = a["bbox"]  # XYWH_ABS, as load_coco_json returns it
            xs.append(centred_window(padded, (x + w / 2, y + h / 2), window, crop))
            ys.append(a["category_id"])
    if not xs:
        raise ValueError(f"dataset {dataset_name!r} has no annotated objects to crop")
    return _to_tensor(np.stack(xs)), torch.tensor(ys, dtype=torch.int64)


def _to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """uint8 ``[n, h, w, 3]`` -> float ``[n, 3, h, w]`` in [-1, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(rgb.transpose(0, 3, 1, 2)))
    return (x.float() - 127.5) / 127.5


def _classifier(cfg: CfgNode, num_classes: int) -> NASNet:
    """The whole NASNet that the detector is cut from (same genotype, N, F), with a head."""
    ncfg = dataclasses.replace(
        nasnet_config_from_cfg(cfg), num_classes=num_classes, use_aux_head=False
    )
    return NASNet(ncfg)


def classifier_accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Top-1 accuracy of ``model`` on ``(x, y)`` (eval mode, batches of 256)."""
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), 256):
            correct += int((model(x[i : i + 256]).argmax(1) == y[i : i + 256]).sum())
    return correct / len(x)


def _crop_source(cfg: CfgNode) -> Any:
    """The built-in digits spec behind ``DATASETS.TRAIN[0]`` (pretraining renders more of it)."""
    name = cfg.DATASETS.TRAIN[0]
    spec = MetadataCatalog.get(name).get("digits_spec", None)
    if spec is None:
        raise ValueError(
            f"the demo's pretraining renders built-in digits; DATASETS.TRAIN[0] {name!r} is not "
            "a built-in digits dataset (nasnet_digits_train or one registered with "
            "register_nasnet_digits)"
        )
    return spec


def pretrain_classifier(
    cfg: CfgNode, spec: Pretrain, seed: int, progress: bool = True
) -> tuple[NASNet, dict[str, float]]:
    """Train the detector's NASNet as a digit classifier on crops rendered from the digits of
    ``DATASETS.TRAIN[0]``; returns the model and ``{"iterations", "seconds", "val_accuracy"}``
    (on crops of ``DATASETS.TEST[0]``'s real images). Deterministic given ``seed`` on one
    thread."""
    from tqdm import tqdm

    from nasnet_det.data import DigitCrops

    start = time.monotonic()
    digits = _crop_source(cfg)
    # The detector's input resize of the (square) digit images: 192 / 128 = 1.5.
    scale = float(cfg.INPUT.MIN_SIZE_TEST) / digits.image_size
    source = DigitCrops(digits, "train", scale)
    xv, yv = digit_crops(cfg.DATASETS.TEST[0], spec.crop, scale)
    torch.manual_seed(seed)
    model = _classifier(cfg, cfg.MODEL.ROI_HEADS.NUM_CLASSES)
    model.to(memory_format=torch.channels_last)  # CPU pooling: several times faster (see train)
    opt = torch.optim.AdamW(model.parameters(), lr=spec.lr, weight_decay=spec.weight_decay)
    rng = np.random.default_rng([seed, 2024])
    model.train()
    bar = tqdm(total=spec.iters, unit="it", desc="pretrain", disable=not progress)
    with bar:
        for it in range(spec.iters):
            rgb, labels = source.sample(spec.batch_size, spec.crop, rng)
            for g in opt.param_groups:
                g["lr"] = spec.lr * 0.5 * (1 + math.cos(math.pi * it / spec.iters))
            loss = torch.nn.functional.cross_entropy(
                model(_to_tensor(rgb)), torch.from_numpy(labels)
            )
            if not torch.isfinite(loss):
                raise FloatingPointError(f"pretraining loss became {loss.item()} at step {it}")
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            bar.update(1)
    acc = classifier_accuracy(model, xv, yv) if spec.iters else None
    return model, {
        "iterations": spec.iters,
        "seconds": time.monotonic() - start,
        "val_accuracy": acc,
    }


def load_pretrained(detector: torch.nn.Module, classifier: NASNet, cfg: CfgNode) -> int:
    """Copy ``classifier``'s stem and cells into ``detector`` (backbone and second stage);
    returns how many tensors were copied. Shapes must match (same MODEL.NASNET)."""
    weights = classification_to_detectron2(classifier.state_dict(), cfg)
    own = detector.state_dict()
    bad = [k for k, v in weights.items() if k not in own or own[k].shape != v.shape]
    if bad:
        raise ValueError(f"pretrained tensors do not fit the detector, e.g. {bad[0]!r}")
    detector.load_state_dict(weights, strict=False)
    return len(weights)


def run_demo(
    output_dir: str,
    genotype: str = "nasnet_a",
    *,
    opts: list[str] | None = None,
    pretrain: Pretrain | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Pretrain, train, evaluate and draw the demo detector, all from ``SEED``.

    ``genotype``: a registered name or a genotype JSON path. ``opts``: extra KEY VALUE config
    overrides (e.g. ``["SOLVER.MAX_ITER", "100", "SEED", "1"]``). ``pretrain``: the
    classification pretraining (default :class:`Pretrain`; ``Pretrain(iters=0)``: none).
    Returns ``{"metrics": COCO bbox metrics (AP, AP50, ...), "image": PNG path, "train":
    iterations/seconds/final losses, "pretrain": iterations/seconds/val_accuracy, "params":
    parameter count}``; also writes ``coco_metrics.json`` and the trained detector,
    ``model_final.pth`` (``{"model": state_dict}``), there.
    """
    # One thread: on a shared machine OpenMP's spinning threads slow a multi-threaded step
    # down several-fold, and for a model this small a second thread gains little; one thread
    # also makes the floating-point sums, and so the AP, repeat exactly.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _run_demo(output_dir, genotype, opts, pretrain or Pretrain(), progress)
    finally:
        torch.set_num_threads(threads)


def _run_demo(
    output_dir: str, genotype: str, opts: list[str] | None, spec: Pretrain, progress: bool
) -> dict[str, Any]:
    t0 = time.monotonic()
    cfg = demo_config(genotype, opts)
    cfg.OUTPUT_DIR = str(output_dir)
    cfg.freeze()
    os.makedirs(output_dir, exist_ok=True)
    for name in cfg.DATASETS.TRAIN + cfg.DATASETS.TEST:
        DatasetCatalog.get(name)  # written once to the cache on first use
    seed_all_rng(cfg.SEED)
    model = build_model(cfg)
    n_params = sum(p.numel() for p in model.parameters())
    pre: dict[str, Any] = {"iterations": 0, "seconds": 0.0, "val_accuracy": None}
    if spec.iters > 0:
        print(
            f"pretraining: the NASNet as a digit classifier, {spec.iters} iterations of "
            f"{spec.batch_size} crops of {spec.crop} px (training digits pasted on photos)",
            flush=True,
        )
        classifier, pre = pretrain_classifier(cfg, spec, cfg.SEED, progress)
        load_pretrained(model, classifier, cfg)
        print(f"pretraining: val crop accuracy {100 * pre['val_accuracy']:.1f}%", flush=True)
    print(
        f"detector: {n_params / 1e6:.2f}M parameters, {cfg.SOLVER.MAX_ITER} iterations at "
        f"batch {cfg.SOLVER.IMS_PER_BATCH}, seed {cfg.SEED}",
        flush=True,
    )
    train_stats = train(cfg, model, progress=progress)
    # Detectron2's checkpoint layout: tools/predict.py and train_net --eval-only load it.
    atomic_save_torch({"model": model.state_dict()}, Path(output_dir) / "model_final.pth")
    bbox = evaluate(cfg, model, output_dir)
    val = cfg.DATASETS.TEST[0]
    print(f"COCO box AP on {val} ({len(DatasetCatalog.get(val))} images)")
    print(create_small_table({k: v for k, v in bbox.items() if "-" not in k}))
    image = save_detections(
        model,
        val,
        Path(output_dir) / "detections.png",
        resize=(cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST),
    )
    write_metrics(output_dir, {"bbox": bbox, "train": train_stats, "pretrain": pre})
    print(f"detector: done in {(time.monotonic() - t0) / 60:.1f} min", flush=True)
    return {
        "metrics": bbox,
        "image": image,
        "train": train_stats,
        "pretrain": pre,
        "params": n_params,
    }
