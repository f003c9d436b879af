"""Predictions from a trained detector: drawn pictures, drawn videos and COCO-results JSON.

Behind ``tools/predict.py``. :class:`Predictor` is Detectron2's ``DefaultPredictor`` (same
resize, same input format handling) with our checkpointer, so ``MODEL.WEIGHTS`` is read
weights-only. Pictures are drawn with Detectron2's ``Visualizer``, videos frame by frame with its
``VideoVisualizer`` and written with OpenCV's ``VideoWriter``. Every output is written atomically.

The JSON holds every detection the model returns (``MODEL.ROI_HEADS.SCORE_THRESH_TEST``, 0.05 by
default, as Detectron2's evaluator sees them), so ``tools/eval_coco.py`` gives the AP that
``tools/train_net.py --eval-only`` gives; the confidence threshold only thins what is drawn.
With a dataset name, image ids and category ids are that dataset's, so its annotation file scores
the JSON directly.
"""

from __future__ import annotations

import glob
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from detectron2.config import CfgNode
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data import transforms as T
from detectron2.data.detection_utils import read_image
from detectron2.engine import DefaultPredictor
from detectron2.evaluation.coco_evaluation import instances_to_coco_json
from detectron2.modeling import build_model
from detectron2.utils.video_visualizer import VideoVisualizer
from detectron2.utils.visualizer import ColorMode
from PIL import UnidentifiedImageError
from tqdm import tqdm

from nasnet_det.detection.checkpoint import NASNetCheckpointer
from nasnet_det.detection.fast import inference_model
from nasnet_det.detection.visualize import beside_ground_truth, draw_instances
from nasnet_det.io import OutputError, atomic_call, atomic_write_bytes, atomic_write_json

__all__ = [
    "IMAGE_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "Inputs",
    "Predictor",
    "collect_inputs",
    "dataset_image_ids",
    "dataset_json",
    "dataset_records",
    "no_detection_notes",
    "predict_images",
    "predict_video",
    "write_dataset_json",
    "write_results",
]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".m4v", ".webm")


@dataclass
class Inputs:
    """What ``--input`` named: ``kind`` is ``"images"`` (one or more) or ``"video"`` (one)."""

    kind: str
    paths: list[Path]


def _is_image(p: Path) -> bool:
    return p.suffix.lower() in IMAGE_EXTENSIONS


def collect_inputs(spec: str) -> Inputs:
    """Resolve ``--input``: an image, a folder of images (not recursive), a glob pattern or a
    video file. Images are sorted by path and each is opened once to check it is an image."""
    path = Path(spec)
    if path.is_dir():
        paths = sorted(p for p in path.iterdir() if p.is_file() and _is_image(p))
        if not paths:
            raise ValueError(
                f"--input folder {spec!r} has no images ({', '.join(IMAGE_EXTENSIONS)})"
            )
    elif path.is_file():
        if path.suffix.lower() in VIDEO_EXTENSIONS:
            return Inputs("video", [path])
        if not _is_image(path):
            raise ValueError(
                f"--input {spec!r} is neither an image ({', '.join(IMAGE_EXTENSIONS)}) nor a "
                f"video ({', '.join(VIDEO_EXTENSIONS)})"
            )
        paths = [path]
    elif glob.has_magic(spec):
        paths = sorted(Path(p) for p in glob.glob(spec) if Path(p).is_file() and _is_image(Path(p)))
        if not paths:
            raise ValueError(f"--input pattern {spec!r} matches no image files")
    elif path.exists():  # /dev/null, /dev/zero, a pipe: there, but not a file to read
        raise ValueError(f"--input {spec!r} is not a regular file, a folder or a pattern")
    else:
        raise FileNotFoundError(f"--input {spec!r} does not exist")
    seen: dict[str, Path] = {}
    for p in paths:
        if _picture_name(p) in seen:
            raise ValueError(
                f"--input: {str(seen[_picture_name(p)])!r} and {str(p)!r} both give the picture "
                f"{_picture_name(p)!r} in the output folder"
            )
        seen[_picture_name(p)] = p
        _check_image(p)
    return Inputs("images", paths)


def _check_image(path: Path) -> None:
    from nasnet_det.limits import open_image

    try:
        with open_image(path, "--input") as im:
            im.load()  # decodes: a file truncated after its header fails here, not mid-run
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise ValueError(f"--input {str(path)!r} is not a readable image: {e}") from None


def dataset_image_ids(dataset: str, paths: Iterable[Path]) -> dict[Path, int]:
    """Map input images to ``dataset``'s image ids (by full path, else by unique file name)."""
    records = DatasetCatalog.get(dataset)
    by_path = {os.path.realpath(r["file_name"]): r["image_id"] for r in records}
    names: dict[str, list] = {}
    for r in records:
        names.setdefault(os.path.basename(r["file_name"]), []).append(r["image_id"])
    out = {}
    for p in paths:
        image_id = by_path.get(os.path.realpath(p))
        if image_id is None and len(names.get(p.name, [])) == 1:
            image_id = names[p.name][0]
        if image_id is None:
            raise ValueError(
                f"--input image {str(p)!r} is not one of the {len(records)} images of dataset "
                f"{dataset!r} (--dataset maps inputs to its image ids)"
            )
        if not isinstance(image_id, int):
            raise ValueError(f"dataset {dataset!r} has a non-integer image id {image_id!r}")
        out[p] = image_id
    return out


def dataset_records(dataset: str, image_ids: dict[Path, int]) -> dict[Path, dict]:
    """The ground-truth record of each input image (``image_ids``: :func:`dataset_image_ids`)."""
    by_id = {r["image_id"]: r for r in DatasetCatalog.get(dataset)}
    return {p: by_id[i] for p, i in image_ids.items()}


class Predictor(DefaultPredictor):
    """Detectron2's ``DefaultPredictor`` (its ``__call__``: BGR in, resize, one image out),
    loading ``MODEL.WEIGHTS`` with :class:`NASNetCheckpointer` (weights-only, shape-checked;
    ``allow_pickle`` lets it unpickle a trusted ``.pkl``/object ``.pth``, as
    ``NASNET_DET_ALLOW_PICKLE=1`` asks in ``tools/predict.py``), then made fast as
    ``MODEL.NASNET.FAST_INFERENCE`` says (:func:`inference_model`)."""

    def __init__(self, cfg: CfgNode, *, allow_pickle: bool = False) -> None:
        if not cfg.MODEL.WEIGHTS:
            raise ValueError(
                "MODEL.WEIGHTS is empty: give a trained detector, e.g. "
                f"MODEL.WEIGHTS {os.path.join(cfg.OUTPUT_DIR, 'model_final.pth')}"
            )
        self.cfg = cfg.clone()
        self.model = build_model(self.cfg)
        self.model.eval()
        if len(cfg.DATASETS.TEST):
            self.metadata = MetadataCatalog.get(cfg.DATASETS.TEST[0])
        NASNetCheckpointer(self.model, cfg=self.cfg, allow_pickle=allow_pickle).load(
            cfg.MODEL.WEIGHTS
        )
        self.model = inference_model(self.model, self.cfg)  # MODEL.NASNET.FAST_INFERENCE
        self.aug = T.ResizeShortestEdge(
            [cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MIN_SIZE_TEST], cfg.INPUT.MAX_SIZE_TEST
        )
        self.input_format = cfg.INPUT.FORMAT
        if self.input_format not in ("RGB", "BGR"):
            raise ValueError(f"INPUT.FORMAT must be RGB or BGR, got {self.input_format!r}")


def _to_dataset_ids(results: list[dict], metadata: Any) -> list[dict]:
    # The model predicts contiguous ids 0..K-1; a COCO file's own ids come back through the
    # mapping Detectron2 recorded when it loaded the file (as COCOEvaluator does).
    mapping = getattr(metadata, "thing_dataset_id_to_contiguous_id", None)
    if mapping:
        reverse = {v: k for k, v in mapping.items()}
        for r in results:
            r["category_id"] = reverse[r["category_id"]]
    return results


# Pictures are written in their input's format where OpenCV can encode it, else as PNG.
_ENCODABLE = (".jpg", ".jpeg", ".png", ".bmp")


def _picture_name(path: Path) -> str:
    return path.name if path.suffix.lower() in _ENCODABLE else path.stem + ".png"


def _encode(path: Path, bgr: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(path.suffix, bgr)
    if not ok:
        raise OutputError(f"cannot encode picture {str(path)!r}")
    return buf.tobytes()


def predict_images(
    predictor: Predictor,
    paths: list[Path],
    out_dir: Path,
    metadata: Any,
    threshold: float,
    image_ids: dict[Path, int] | None = None,
    *,
    scale: float | None = None,
    ground_truth: dict[Path, dict] | None = None,
) -> list[dict]:
    """Draw each image's detections scoring >= ``threshold`` into ``out_dir/<name>`` and return
    all detections as a COCO results list (image ids from ``image_ids``, else 1, 2, ...).

    Pictures are drawn at ``scale`` (default: small images enlarged to a readable size, see
    :func:`~nasnet_det.detection.visualize.readable_scale`); where ``ground_truth`` holds an
    image's record, its ground truth is drawn beside the detections."""
    results: list[dict] = []
    for n, path in enumerate(tqdm(paths, desc="predict", unit="image", file=sys.stderr), 1):
        bgr = read_image(str(path), format="BGR")
        instances = predictor(bgr)["instances"].to("cpu")
        image_id = image_ids[path] if image_ids else n
        results.extend(_to_dataset_ids(instances_to_coco_json(instances, image_id), metadata))
        shown = instances[instances.scores >= threshold]
        rgb = np.ascontiguousarray(bgr[:, :, ::-1])
        record = (ground_truth or {}).get(path)
        if record is None:
            drawn = draw_instances(rgb, shown, metadata, scale)
        else:
            title = f"{len(shown)} detections >= {threshold:g}"
            drawn = beside_ground_truth(rgb, shown, record, metadata, scale, title)
        name = _picture_name(path)
        bgr_out = np.ascontiguousarray(drawn[:, :, ::-1])
        atomic_write_bytes(out_dir / name, _encode(out_dir / name, bgr_out), "picture")
    return results


def no_detection_notes(
    results: list[dict], paths: list[Path], threshold: float, image_ids: dict[Path, int] | None
) -> list[str]:
    """One line for each input image where no detection scores >= ``threshold`` (its picture
    shows no box), with how many scored below."""
    above: dict = {}
    below: dict = {}
    for r in results:
        d = above if r["score"] >= threshold else below
        d[r["image_id"]] = d.get(r["image_id"], 0) + 1
    notes = []
    for n, p in enumerate(paths, 1):
        i = image_ids[p] if image_ids else n
        if not above.get(i):
            notes.append(
                f"{p.name}: no detection scores >= {threshold:g} ({below.get(i, 0)} below it)"
            )
    return notes


def open_video(path: Path) -> tuple[cv2.VideoCapture, int, float, tuple[int, int]]:
    """Open a video and check that a first frame can be read; returns the capture (rewound),
    its frame count (0 when the container does not say), frames per second and (width, height)."""
    cap = cv2.VideoCapture(str(path))
    ok, frame = cap.read() if cap.isOpened() else (False, None)
    if not ok:
        cap.release()
        raise ValueError(f"--input {str(path)!r} is not a video OpenCV can read (no first frame)")
    cap.release()
    cap = cv2.VideoCapture(str(path))  # from the start again (seeking is not reliable)
    count = max(int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), 0)
    fps = cap.get(cv2.CAP_PROP_FPS)
    fps = fps if fps and np.isfinite(fps) and fps > 0 else 25.0
    return cap, count, fps, (frame.shape[1], frame.shape[0])


def predict_video(
    predictor: Predictor, path: Path, out_dir: Path, metadata: Any, threshold: float
) -> tuple[Path, list[dict]]:
    """Draw every frame's detections (score >= ``threshold``) into ``out_dir/<stem>.mp4``;
    returns that path and all detections as COCO results with image id = frame number (1, ...)."""
    cap, count, fps, size = open_video(path)
    out = out_dir / f"{path.stem}.mp4"
    results: list[dict] = []
    visualizer = VideoVisualizer(metadata, instance_mode=ColorMode.IMAGE)

    def write(tmp: str) -> None:
        writer = cv2.VideoWriter(tmp, cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
        if not writer.isOpened():
            raise OutputError(f"cannot write video {str(out)!r}: OpenCV has no mp4v encoder")
        try:
            with tqdm(total=count or None, desc="predict", unit="frame", file=sys.stderr) as bar:
                frame_no = 0
                while True:
                    ok, frame = cap.read()
                    if not ok:
                        break
                    frame_no += 1
                    instances = predictor(frame)["instances"].to("cpu")
                    results.extend(
                        _to_dataset_ids(instances_to_coco_json(instances, frame_no), metadata)
                    )
                    shown = instances[instances.scores >= threshold]
                    drawn = visualizer.draw_instance_predictions(frame[:, :, ::-1], shown)
                    writer.write(np.ascontiguousarray(drawn.get_image()[:, :, ::-1]))
                    bar.update(1)
        finally:
            writer.release()
            cap.release()

    atomic_call(out, write, "video")
    return out, results


def dataset_json(dataset: str) -> tuple[str, bool]:
    """The COCO annotation file that scores predictions on ``dataset``: its own json file, or
    (VOC and other in-memory datasets) ``("", False)`` when one has to be written by
    :func:`write_dataset_json`. Returns (path, exists)."""
    json_file = getattr(MetadataCatalog.get(dataset), "json_file", "")
    return (json_file, True) if json_file and os.path.isfile(json_file) else ("", False)


def write_dataset_json(dataset: str, path: Path) -> Path:
    """``dataset``'s records as a COCO annotation file, as ``COCOEvaluator`` converts them."""
    from detectron2.data.datasets.coco import convert_to_coco_dict

    return atomic_write_json(path, convert_to_coco_dict(dataset), "ground-truth JSON")


def write_results(path: Path, results: list[dict]) -> Path:
    """The COCO results list (``image_id``, ``category_id``, ``bbox`` [x, y, w, h], ``score``)."""
    return atomic_write_json(path, [_plain(r) for r in results], "predictions JSON", indent=None)


def _plain(r: dict) -> dict:
    return {
        k: (float(v) if isinstance(v, (np.floating, torch.Tensor)) else v) for k, v in r.items()
    }
