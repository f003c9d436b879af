"""The detection demo, wired from the package's own parts: pretraining, then train_net.

:func:`run_demo` pretrains the demo detector's NASNet as a digit classifier
(:func:`nasnet_det.pretrain.digits.pretrain_digits`, through the engine) and writes that
checkpoint; then ``tools/train_net.py``'s :class:`~nasnet_det.detection.engine.Trainer` trains
``configs/Demo/faster_rcnn_nasnet_a_digits_cpu.yaml`` with ``MODEL.WEIGHTS`` at it (the schedule,
optimizer, layout and pooler are config keys there), evaluates with ``COCOEvaluator`` and
:mod:`nasnet_det.detection.predict` draws validation pictures. The budget is an iteration count:
the same seed on the same machine gives the same AP.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from detectron2.config import CfgNode
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.engine import default_argument_parser
from detectron2.utils.logger import create_small_table

from nasnet_det.data import centred_window
from nasnet_det.detection import engine, model_zoo
from nasnet_det.detection.config import nasnet_config_from_cfg, resolve_genotype
from nasnet_det.detection.predict import Predictor, predict_images
from nasnet_det.genotypes import Genotype
from nasnet_det.io import atomic_write_bytes
from nasnet_det.pretrain.digits import Pretrain, pretrain_digits, save_classifier, to_tensor

__all__ = ["DEMO_CONFIG", "Pretrain", "demo_config", "digit_crops", "run_demo", "tile_pictures"]

DEMO_CONFIG = "Demo/faster_rcnn_nasnet_a_digits_cpu.yaml"


def demo_config(genotype: str | Genotype = "nasnet_a", opts: list[str] | None = None) -> CfgNode:
    """The demo's config with ``MODEL.NASNET.GENOTYPE`` set: a genotype file is read here,
    once (a :class:`Genotype` is taken as it is); the config carries the cell itself from then
    on (pretraining, train_net, pictures)."""
    cfg = engine.load_config(model_zoo.get_config_file(DEMO_CONFIG), list(opts or []))
    inline = isinstance(genotype, Genotype)
    cfg.MODEL.NASNET.GENOTYPE = genotype.inline() if inline else os.fspath(genotype)
    resolve_genotype(cfg)  # a missing or malformed genotype fails before any work
    if cfg.SOLVER.MAX_ITER < 1:
        raise ValueError(f"SOLVER.MAX_ITER must be a positive integer, got {cfg.SOLVER.MAX_ITER}")
    return cfg


def digit_crops(
    dataset_name: str, crop: int = 64, scale: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """A window of ``crop / scale`` image pixels (photo background included) centred on every
    annotated object of a registered detection dataset, resized to ``crop`` px, RGB in [-1, 1];
    ``(x [n, 3, crop, crop] float32, y [n] int64)``."""
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
    return to_tensor(np.stack(xs)), torch.tensor(ys, dtype=torch.int64)


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


def pretrain(cfg: CfgNode, spec: Pretrain, path: Path, progress: bool) -> dict[str, Any]:
    """The whole NASNet of ``cfg``'s detector as a digit classifier, saved at ``path``."""
    digits = _crop_source(cfg)
    scale = float(cfg.INPUT.MIN_SIZE_TEST) / digits.image_size  # 192 / 128 = 1.5
    val = digit_crops(cfg.DATASETS.TEST[0], spec.crop, scale)
    ncfg = dataclasses.replace(
        nasnet_config_from_cfg(cfg), num_classes=cfg.MODEL.ROI_HEADS.NUM_CLASSES
    )
    model, stats = pretrain_digits(ncfg, spec, digits, scale, cfg.SEED, val, progress)
    save_classifier(model, path)
    return stats


def tile_pictures(paths: list[Path], path: Path, scale: int = 3) -> str:
    """The pictures at ``paths`` (same size), enlarged ``scale`` times, as one PNG grid."""
    tiles = [cv2.resize(cv2.imread(str(p)), None, fx=scale, fy=scale,
                        interpolation=cv2.INTER_NEAREST) for p in paths]  # fmt: skip
    cols = math.ceil(math.sqrt(len(tiles)))  # 6 pictures: 3 x 2; 4: 2 x 2
    rows = [np.concatenate(tiles[i : i + cols], 1) for i in range(0, len(tiles), cols)]
    if rows[-1].shape != rows[0].shape:
        pad = np.full_like(rows[0], 255)
        pad[:, : rows[-1].shape[1]] = rows[-1]
        rows[-1] = pad
    ok, png = cv2.imencode(".png", np.concatenate(rows, 0))
    if not ok:
        raise OSError(f"could not encode the detections picture {str(path)!r}")
    atomic_write_bytes(path, png.tobytes(), what="detections picture")
    return str(path)


@contextlib.contextmanager
def _logs_to_file_only():
    """Detectron2's log goes to ``OUTPUT_DIR/log.txt`` only; the demo prints its own lines.

    Yields ``(buffer, quiet)``: run train_net's setup with stdout redirected to ``buffer`` (its
    environment and config dump), then call ``quiet()``: the terminal handlers made meanwhile
    point back at stdout and pass warnings and errors only."""
    names = ("detectron2", "fvcore", "nasnet_det")
    before = {n: list(logging.getLogger(n).handlers) for n in names}
    buffer = io.StringIO()

    def made_here() -> list[logging.Handler]:
        return [h for n in names for h in logging.getLogger(n).handlers[len(before[n]) :]]

    def quiet() -> None:
        for h in made_here():
            if isinstance(h, logging.StreamHandler) and h.stream is buffer:
                h.setStream(sys.stdout)
                h.setLevel(logging.WARNING)
                h.addFilter(_not_the_heads_warning)

    try:
        yield buffer, quiet
    finally:
        for n in names:
            for h in logging.getLogger(n).handlers[len(before[n]) :]:
                logging.getLogger(n).removeHandler(h)
                h.close()


def _not_the_heads_warning(record: logging.LogRecord) -> bool:
    # fvcore lists the detector's tensors a classifier checkpoint lacks (RPN, box predictor):
    # expected here, and :func:`_loaded_line` says it in one line (log.txt keeps the list).
    return not (
        record.name == "fvcore.common.checkpoint"
        and str(record.msg).startswith("Some model parameters or buffers are not found")
    )


def _loaded_line(trainer: Any, weights: str) -> str:
    """Which parts of the detector start from ``weights`` and which at random."""
    if not weights:
        return "detector: every weight starts at random (no pretraining)"
    missing = getattr(trainer.checkpointer, "incompatible", None)
    missing = missing.missing_keys if missing is not None else []
    parts = sorted({".".join(k.split(".")[:2]) for k in missing})
    loaded = sum(1 for _ in trainer.model.state_dict()) - len(missing)
    fresh = f"; {len(missing)} start at random: {', '.join(parts)}" if missing else ""
    return f"detector: {loaded} tensors from {os.path.basename(weights)}{fresh}"


def _train(cfg: CfgNode, progress: bool) -> tuple[Any, dict, float]:
    """``tools/train_net.py --config-file DEMO_CONFIG`` on ``cfg``, in this process."""
    args = default_argument_parser().parse_args(
        ["--config-file", model_zoo.get_config_file(DEMO_CONFIG)]
    )
    with _logs_to_file_only() as (buffer, quiet):
        # default_setup prints the environment and the whole config: log.txt keeps them.
        with contextlib.redirect_stdout(buffer):
            cfg = engine.setup(args, cfg)
        quiet()
        trainer = engine.Trainer(cfg, progress=progress)
        trainer.resume_or_load(resume=False)
        print(_loaded_line(trainer, cfg.MODEL.WEIGHTS), flush=True)
        n_params = sum(p.numel() for p in trainer.model.parameters())
        print(f"detector: {n_params / 1e6:.2f}M parameters, {cfg.SOLVER.MAX_ITER} iterations at "
              f"batch {cfg.SOLVER.IMS_PER_BATCH}, seed {cfg.SEED}", flush=True)  # fmt: skip
        start = time.monotonic()
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools' prints
            trainer.train()
        seconds = time.monotonic() - start
    losses = trainer.storage.latest_with_smoothing_hint(20)
    stats = {"iterations": cfg.SOLVER.MAX_ITER, "train_seconds": seconds, "params": n_params,
             **{k: v for k, (v, _) in losses.items() if k.startswith("loss")}}  # fmt: skip
    return cfg, dict(trainer._last_eval_results["bbox"]), stats


def run_demo(
    output_dir: str,
    genotype: str | Genotype = "nasnet_a",
    *,
    opts: list[str] | None = None,
    pretrain: Pretrain | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Pretrain, train, evaluate and draw the demo detector, all from ``SEED``.

    ``genotype``: a registered name, a genotype JSON path or a :class:`Genotype`. ``opts``:
    extra KEY VALUE config overrides (e.g. ``["SOLVER.MAX_ITER", "100", "SEED", "1"]``).
    ``pretrain``: the classification pretraining (default :class:`Pretrain`;
    ``Pretrain(iters=0)``: none).
    Returns ``{"metrics": COCO bbox metrics, "image": PNG path, "train": iterations/seconds/
    final losses, "pretrain": iterations/seconds/val_accuracy, "params"}``. Writes train_net's
    outputs (``model_final.pth``, ``coco_metrics.json``, ``config.yaml``, ``log.txt``) there,
    the classifier at ``pretrain.pth``, pictures under ``predictions/`` and ``detections.png``.
    """
    # One thread: on a shared machine OpenMP's spinning threads slow a step down several-fold,
    # and one thread makes the floating-point sums, and so the AP, repeat exactly.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _run_demo(Path(output_dir), genotype, list(opts or []), pretrain or Pretrain(),
                         progress)  # fmt: skip
    finally:
        torch.set_num_threads(threads)


def _run_demo(out: Path, genotype, opts: list[str], spec: Pretrain, progress: bool) -> dict:
    t0 = time.monotonic()
    cfg = demo_config(genotype, opts)
    out.mkdir(parents=True, exist_ok=True)
    pre: dict[str, Any] = {"iterations": 0, "seconds": 0.0, "val_accuracy": None}
    weights = ""
    if spec.iters > 0:
        print(f"pretraining: the NASNet as a digit classifier, {spec.iters} iterations of "
              f"{spec.batch_size} crops of {spec.crop} px (training digits pasted on photos)",
              flush=True)  # fmt: skip
        weights = str(out / "pretrain.pth")
        pre = pretrain(cfg, spec, Path(weights), progress)
        print(f"pretraining: val crop accuracy {100 * pre['val_accuracy']:.1f}%", flush=True)
    cfg.MODEL.WEIGHTS, cfg.OUTPUT_DIR = weights, str(out)
    cfg, bbox, stats = _train(cfg, progress)
    val = cfg.DATASETS.TEST[0]
    print(f"COCO box AP on {val} ({len(DatasetCatalog.get(val))} images)")
    print(create_small_table({k: v for k, v in bbox.items() if "-" not in k}))
    image = _draw(cfg, out)
    engine.write_metrics(str(out), {"bbox": bbox, "train": stats, "pretrain": pre})
    print(f"detector: done in {(time.monotonic() - t0) / 60:.1f} min", flush=True)
    return {"metrics": bbox, "image": image, "train": stats, "pretrain": pre,
            "params": stats["params"]}  # fmt: skip


def _draw(cfg: CfgNode, out: Path, num_images: int = 6) -> str:
    """predict.py's pictures of the first val images (scores >= 0.5, drawn at 3x) beside
    their ground truth, and the grid of them."""
    cfg = cfg.clone()
    cfg.defrost()
    cfg.MODEL.WEIGHTS = str(out / "model_final.pth")
    val = cfg.DATASETS.TEST[0]
    records = DatasetCatalog.get(val)[:num_images]
    paths = [Path(d["file_name"]) for d in records]
    (out / "predictions").mkdir(exist_ok=True)
    with contextlib.redirect_stderr(io.StringIO()):  # predict's progress bar
        predict_images(Predictor(cfg), paths, out / "predictions", MetadataCatalog.get(val), 0.5,
                       scale=3, ground_truth=dict(zip(paths, records)))  # fmt: skip
    drawn = [out / "predictions" / p.name for p in paths]
    return tile_pictures(drawn, out / "detections.png", scale=1)
