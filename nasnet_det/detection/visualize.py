"""Pictures of datasets and detections that a person can read: behind ``tools/visualize_data.py``,
``tools/visualize_json_results.py``, ``tools/predict.py`` and the demo's picture.

Everything is drawn with Detectron2's ``Visualizer``. Small images are enlarged first
(:func:`readable_scale`: a 128 px digit picture is drawn at 512 px) and the label font is kept at
a readable pixel size, so that a label such as ``7 60%`` fits inside the picture. Where ground
truth is known, it is drawn beside the detections (:func:`side_by_side`, ground truth on the
right as in Detectron2's ``visualize_json_results.py``), and its boxes are also outlined, dashed,
under the detections (:func:`beside_ground_truth`), so that a miss can be told from a hit.
Every picture is written atomically.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data import detection_utils as utils
from detectron2.structures import Boxes, BoxMode, Instances
from detectron2.utils.visualizer import ColorMode, Visualizer

from nasnet_det.io import OutputError, atomic_write_bytes, check_output_dir

__all__ = [
    "MIN_READABLE_SIDE",
    "SOURCES",
    "beside_ground_truth",
    "dataloader_images",
    "draw_coco_images",
    "draw_instances",
    "draw_over_ground_truth",
    "draw_record",
    "instances_from_results",
    "parse_scale",
    "readable_scale",
    "side_by_side",
    "visualizer",
    "visualize_dataset",
    "visualize_json_results",
    "write_picture",
]

#: Images whose longer side is below this are enlarged to it by default (``--scale auto``).
MIN_READABLE_SIDE = 512
#: The label font's height in output pixels is at least this.
MIN_FONT_PX = 13
SOURCES = ("annotation", "dataloader")


def readable_scale(height: int, width: int, scale: float | None = None) -> float:
    """The drawing scale: ``scale`` when given (> 0), else enlarge so that the longer side is at
    least :data:`MIN_READABLE_SIDE` pixels (never shrink)."""
    if scale is not None:
        if not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale > 0):
            raise ValueError(f"scale must be a positive number, got {scale!r}")
        return float(scale)
    return max(1.0, MIN_READABLE_SIDE / max(height, width, 1))


def parse_scale(text: str, option: str = "--scale") -> float | None:
    """A tool's ``--scale`` value: ``"auto"`` (None: :func:`readable_scale` decides) or a
    positive factor; anything else is one ``ValueError`` line naming ``option``."""
    if text == "auto":
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{option} must be 'auto' or a positive number, got {text!r}")
    return value


def visualizer(rgb: np.ndarray, metadata: Any, scale: float | None = None) -> Visualizer:
    """Detectron2's ``Visualizer`` at :func:`readable_scale`, with a label font at least
    :data:`MIN_FONT_PX` output pixels high."""
    h, w = rgb.shape[:2]
    s = readable_scale(h, w, scale)
    # Visualizer's own font size (its formula) is in image pixels and shrinks with the scale;
    # raise it so that a label is at least MIN_FONT_PX output pixels high.
    default = max(np.sqrt(h * w) // 90, 10 // s)
    font = max(1.0, MIN_FONT_PX / max(default * s, 1e-6))
    return Visualizer(rgb, metadata, scale=s, instance_mode=ColorMode.IMAGE, font_size_scale=font)


def draw_record(
    record: dict, metadata: Any, scale: float | None = None, rgb: np.ndarray | None = None
) -> np.ndarray:
    """A Detectron2 dataset dict's ground truth drawn on its image (read from
    ``record["file_name"]`` unless ``rgb`` is given); returns RGB uint8."""
    if rgb is None:
        rgb = utils.read_image(record["file_name"], format="RGB")
    return visualizer(rgb, metadata, scale).draw_dataset_dict(record).get_image()


def draw_instances(
    rgb: np.ndarray, instances: Instances, metadata: Any, scale: float | None = None
) -> np.ndarray:
    """Predicted ``Instances`` (``pred_boxes``, ``scores``, ``pred_classes``) or ground-truth ones
    (``gt_boxes``, ``gt_classes``, as a data loader yields them) drawn on ``rgb``."""
    vis = visualizer(rgb, metadata, scale)
    if instances.has("gt_boxes"):
        names = metadata.get("thing_classes", None)
        classes = instances.gt_classes.tolist() if instances.has("gt_classes") else []
        labels = [names[c] if names else str(c) for c in classes]
        return vis.overlay_instances(labels=labels, boxes=instances.gt_boxes).get_image()
    return vis.draw_instance_predictions(instances).get_image()


def draw_over_ground_truth(
    rgb: np.ndarray, instances: Instances, record: dict, metadata: Any, scale: float | None = None
) -> np.ndarray:
    """Predicted ``instances`` drawn over the outlines of ``record``'s ground-truth boxes (white,
    dashed, no label): an object with a dashed outline and no detection box is a miss."""
    vis = visualizer(rgb, metadata, scale)
    for ann in record.get("annotations", []):
        box = BoxMode.convert(list(ann["bbox"]), ann.get("bbox_mode", BoxMode.XYWH_ABS),
                              BoxMode.XYXY_ABS)  # fmt: skip
        vis.draw_box(box, alpha=1.0, edge_color="white", line_style="--")
    return vis.draw_instance_predictions(instances).get_image()


def beside_ground_truth(
    rgb: np.ndarray,
    instances: Instances,
    record: dict,
    metadata: Any,
    scale: float | None = None,
    title: str = "",
) -> np.ndarray:
    """The detections over the dashed ground-truth outlines (:func:`draw_over_ground_truth`),
    titled ``title``, beside the labelled ground truth, titled ``"<n> ground truth"``."""
    n_gt = len(record.get("annotations", []))
    return side_by_side(
        draw_over_ground_truth(rgb, instances, record, metadata, scale),
        draw_record(record, metadata, scale, rgb),
        (f"{title}; truth dashed" if title else "truth dashed", f"{n_gt} ground truth"),
    )


def _banner(rgb: np.ndarray, title: str) -> np.ndarray:
    height = 28
    bar = np.full((height, rgb.shape[1], 3), 255, np.uint8)
    font, size = cv2.FONT_HERSHEY_SIMPLEX, 0.6
    width = cv2.getTextSize(title, font, size, 1)[0][0]
    if width > rgb.shape[1] - 12:  # a long title shrinks to fit rather than being cut
        size *= (rgb.shape[1] - 12) / width
    cv2.putText(bar, title, (6, 20), font, size, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([bar, rgb], 0)


def side_by_side(left: np.ndarray, right: np.ndarray, titles: tuple[str, str]) -> np.ndarray:
    """Two RGB pictures of the same image next to each other, each under a title, with a white
    gap between them (the right one is resized to the left one's height if they differ)."""
    if right.shape[0] != left.shape[0]:
        f = left.shape[0] / right.shape[0]
        right = cv2.resize(right, (round(right.shape[1] * f), left.shape[0]))
    gap = np.full((left.shape[0], 8, 3), 255, np.uint8)
    parts = [_banner(left, titles[0]), _banner(gap, ""), _banner(right, titles[1])]
    return np.concatenate(parts, 1)


def write_picture(path: Path, rgb: np.ndarray) -> Path:
    """``rgb`` to ``path`` (its suffix decides the encoding), atomically."""
    ok, buf = cv2.imencode(path.suffix, np.ascontiguousarray(rgb[:, :, ::-1]))
    if not ok:
        raise OutputError(f"cannot encode picture {str(path)!r}")
    return atomic_write_bytes(path, buf.tobytes(), "picture")


def _picture_name(i: int, file_name: str) -> str:
    return f"{i:05d}_{Path(file_name).stem}.png"


def dataloader_images(cfg) -> Iterator[tuple[dict, np.ndarray]]:
    """What training sees: the config's train loader (``Trainer.build_train_loader``: resize,
    flip, the lot), one ``(dataset dict, RGB image)`` per image, forever."""
    from nasnet_det.detection.engine import Trainer

    for batch in Trainer.build_train_loader(cfg):
        for d in batch:
            img = d["image"].permute(1, 2, 0).cpu().numpy()
            yield d, utils.convert_image_to_rgb(img, cfg.INPUT.FORMAT)


def visualize_dataset(
    cfg,
    source: str,
    out_dir: str | os.PathLike,
    *,
    datasets: Iterable[str] | None = None,
    num_images: int = 50,
    scale: float | None = None,
) -> list[Path]:
    """Draw ``num_images`` pictures of the config's training data with their boxes into
    ``out_dir`` as ``<index>_<image name>.png``: ``source="annotation"`` the registered records
    of ``datasets`` (default ``DATASETS.TRAIN``) as stored, ``"dataloader"`` the images and
    boxes after the training loader's augmentation. Returns the written paths."""
    if source not in SOURCES:
        raise ValueError(f"source must be one of {', '.join(SOURCES)}, got {source!r}")
    if num_images < 1:
        raise ValueError(f"the number of images must be >= 1, got {num_images}")
    names = list(datasets or cfg.DATASETS.TRAIN)
    if not names:
        raise ValueError("no dataset to show: DATASETS.TRAIN is empty and none was named")
    for n in names:
        if n not in DatasetCatalog.list():
            raise ValueError(f"dataset {n!r} is not registered (DATASETS.COCO_JSON / VOC or a "
                             "built-in name such as nasnet_digits_train)")  # fmt: skip
    metadata = MetadataCatalog.get(names[0])
    readable_scale(1, 1, scale)  # a bad scale fails before any output
    out = check_output_dir(out_dir, "--output-dir")
    written = []
    if source == "annotation":
        records = itertools.chain.from_iterable(DatasetCatalog.get(n) for n in names)
        for i, r in enumerate(itertools.islice(records, num_images)):
            path = out / _picture_name(i, r["file_name"])
            written.append(write_picture(path, draw_record(r, metadata, scale)))
    else:
        for i, (d, rgb) in enumerate(itertools.islice(dataloader_images(cfg), num_images)):
            drawn = draw_instances(rgb, d["instances"], metadata, scale)
            written.append(write_picture(out / _picture_name(i, d["file_name"]), drawn))
    return written


def instances_from_results(
    results: list[dict], height: int, width: int, metadata: Any
) -> Instances:
    """COCO results of one image (``bbox`` [x, y, w, h], dataset category ids) as predicted
    ``Instances`` with the model's contiguous class indices."""
    mapping = getattr(metadata, "thing_dataset_id_to_contiguous_id", None)
    num = len(metadata.get("thing_classes", []) or [])
    classes = []
    for r in results:
        c = r["category_id"]
        if mapping:
            if c not in mapping:
                raise ValueError(f"a detection's category_id {c} is not in the dataset")
            c = mapping[c]
        elif not (isinstance(c, int) and 0 <= c < max(num, 1)):
            raise ValueError(f"a detection's category_id {c!r} is not a class of the dataset")
        classes.append(c)
    boxes = np.array([r["bbox"] for r in results], dtype=np.float64).reshape(-1, 4)
    inst = Instances((height, width))
    inst.pred_boxes = Boxes(BoxMode.convert(boxes, BoxMode.XYWH_ABS, BoxMode.XYXY_ABS))
    inst.scores = torch.tensor([float(r["score"]) for r in results])
    inst.pred_classes = torch.tensor(classes, dtype=torch.int64)
    return inst


def _check_results(results: Any) -> None:
    if not isinstance(results, list) or not all(
        isinstance(r, dict)
        and {"image_id", "category_id", "bbox", "score"} <= r.keys()
        and isinstance(r["bbox"], list)
        and len(r["bbox"]) == 4
        and all(isinstance(v, (int, float)) and math.isfinite(v) for v in r["bbox"])
        and isinstance(r["score"], (int, float))
        for r in results
    ):
        raise ValueError(
            "--input is not a COCO results list (entries with image_id, category_id, bbox, "
            "score), e.g. Detectron2's coco_instances_results.json"
        )


def visualize_json_results(
    results: list[dict],
    dataset: str,
    out_dir: str | os.PathLike,
    *,
    conf_threshold: float = 0.5,
    scale: float | None = None,
    num_images: int | None = None,
) -> tuple[list[Path], list[str]]:
    """For each image of ``dataset`` (in its order, the first ``num_images``): its detections
    in ``results`` scoring >= ``conf_threshold`` beside its ground truth, as
    ``<index>_<image name>.png``. Returns the written paths and one note per image where no
    detection passed the threshold."""
    _check_results(results)
    if dataset not in DatasetCatalog.list():
        raise ValueError(f"--dataset {dataset!r} is not registered (DATASETS.COCO_JSON / VOC in "
                         "the config, or a built-in name)")  # fmt: skip
    readable_scale(1, 1, scale)
    records = DatasetCatalog.get(dataset)
    metadata = MetadataCatalog.get(dataset)
    ids = {r["image_id"] for r in records}
    unknown = [r["image_id"] for r in results if r["image_id"] not in ids]
    if unknown:
        raise ValueError(f"{len(unknown)} detections have an image_id that is not in "
                         f"{dataset!r}; first: {unknown[0]!r}")  # fmt: skip
    instances_from_results(results, 1, 1, metadata)  # every category id maps, before output
    by_image: dict = {}
    for r in results:
        by_image.setdefault(r["image_id"], []).append(r)
    out = check_output_dir(out_dir, "--output")
    written, notes = [], []
    for i, rec in enumerate(records[:num_images]):
        rgb = utils.read_image(rec["file_name"], format="RGB")
        dets = [r for r in by_image.get(rec["image_id"], []) if r["score"] >= conf_threshold]
        inst = instances_from_results(dets, rgb.shape[0], rgb.shape[1], metadata)
        title = f"{len(dets)} detections >= {conf_threshold:g}"
        picture = beside_ground_truth(rgb, inst, rec, metadata, scale, title)
        n_gt = len(rec.get("annotations", []))
        written.append(write_picture(out / _picture_name(i, rec["file_name"]), picture))
        if not dets:
            notes.append(
                f"{Path(rec['file_name']).name}: no detection scores >= {conf_threshold:g} "
                f"({len(by_image.get(rec['image_id'], []))} below it, {n_gt} ground truth)"
            )
    return written, notes


def _image_files(gt: dict, image_ids: list, root: Path) -> dict:
    """``{image id: its file under root}``, every one checked to exist."""
    images = {im["id"]: im for im in gt["images"]}
    files = {}
    for i in image_ids:
        name = images[i].get("file_name")
        if not isinstance(name, str) or not (root / name).is_file():
            raise FileNotFoundError(
                f"image {i} ({name!r}) is not a file under the image folder {str(root)!r}"
            )
        files[i] = root / name
    return files


def draw_coco_images(
    gt: dict,
    dts: list[dict],
    image_ids: list,
    image_root: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    score_thr: float = 0.3,
    scale: float | None = None,
    notes: dict | None = None,
) -> list[Path]:
    """COCO GT and results (plain dicts, as ``tools/eval_coco.py`` reads them): for each of
    ``image_ids``, its detections scoring >= ``score_thr`` beside its ground truth, as
    ``<rank>_<image name>.png`` in ``out_dir``; ``notes[image_id]`` is added to the left title.
    Every image file is checked to exist under ``image_root`` before the first is drawn."""
    from detectron2.data.catalog import Metadata

    cats = sorted(gt["categories"], key=lambda c: c["id"])
    mapping = {c["id"]: k for k, c in enumerate(cats)}
    metadata = Metadata(name="__coco_images__", thing_classes=[c["name"] for c in cats],
                        thing_dataset_id_to_contiguous_id=mapping)  # fmt: skip
    files = _image_files(gt, image_ids, Path(image_root))
    anns: dict = {}
    for a in gt["annotations"]:
        anns.setdefault(a["image_id"], []).append(a)
    found: dict = {}
    for d in dts:
        if d["score"] >= score_thr:
            found.setdefault(d["image_id"], []).append(d)
    out = check_output_dir(out_dir, "pictures folder")
    written = []
    for rank, i in enumerate(image_ids):
        rgb = utils.read_image(str(files[i]), format="RGB")
        record = {
            "file_name": str(files[i]),
            "annotations": [
                {"bbox": a["bbox"], "bbox_mode": BoxMode.XYWH_ABS, "iscrowd": a.get("iscrowd", 0),
                 "category_id": mapping[a["category_id"]]}
                for a in anns.get(i, [])
            ],
        }  # fmt: skip
        dets = found.get(i, [])
        inst = instances_from_results(dets, rgb.shape[0], rgb.shape[1], metadata)
        left = f"{len(dets)} detections >= {score_thr:g}"
        if notes and i in notes:
            left += f" ({notes[i]})"
        picture = beside_ground_truth(rgb, inst, record, metadata, scale, left)
        written.append(write_picture(out / _picture_name(rank, files[i].name), picture))
    return written
