"""Datasets for Detectron2: the built-in digits set and datasets named in a config.

Built in (registered on ``import nasnet_det.detection``): ``nasnet_digits_train``,
``nasnet_digits_val`` and ``nasnet_digits_val_mini`` (16 val images), handwritten digits on real
photographs (see :mod:`nasnet_det.data.digits`), generated on first use into
``$NASNET_DET_CACHE`` or ``./datasets/nasnet_digits``. Real COCO is registered by Detectron2
itself (``coco_2017_train`` etc. under ``$DETECTRON2_DATASETS``); :func:`register_from_config`
checks those files as completely as a config's own, though Detectron2 loads them later.

From the config (:func:`register_from_config`, called by ``tools/train_net.py`` and
``tools/predict.py`` before anything else runs): ``DATASETS.COCO_JSON`` entries
``[name, annotation json, image folder]`` and ``DATASETS.VOC`` entries
``[name, folder, image set, class names]``. Each is read and checked completely at registration,
so a bad file is one ``ValueError`` (``FileNotFoundError`` for a missing path) naming the file and
the entry before any output exists; the records are kept and handed out by ``DatasetCatalog``.
COCO category ids need not be contiguous: Detectron2's ``load_coco_json`` maps them to
``0..K-1`` and its ``COCOEvaluator`` maps results back through the metadata it records.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets import load_coco_json
from detectron2.structures import BoxMode

from nasnet_det.data import CLASSES, SPLITS, DigitsSpec, build_digits_dataset, default_root

__all__ = [
    "IMAGE_EXTENSIONS",
    "check_coco_json",
    "check_num_classes",
    "load_voc",
    "register_coco_json",
    "register_from_config",
    "register_nasnet_digits",
    "register_voc",
]

logger = logging.getLogger(__name__)

#: Image file suffixes looked for in a VOC folder's JPEGImages/ (in this order).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")

# name -> the config entry it was registered from; these may be re-registered (a second run in
# the same process, e.g. tests), any other registered name may not be taken.
_FROM_CONFIG: dict[str, tuple] = {}
# name -> (images, images with an object that is not a crowd region): what Detectron2 trains on.
_USABLE: dict[str, tuple[int, int]] = {}


def register_nasnet_digits(
    prefix: str = "nasnet_digits",
    root: str | os.PathLike | None = None,
    spec: DigitsSpec | None = None,
) -> list[str]:
    """Register ``{prefix}_train``, ``{prefix}_val`` and ``{prefix}_val_mini``.

    Nothing is generated until a split is first loaded (``DatasetCatalog.get``). Returns the
    registered names; already registered names are left alone.
    """
    root = Path(root).resolve() if root is not None else default_root()
    spec = spec or DigitsSpec()
    names = []
    for split in SPLITS:
        name = f"{prefix}_{split}"
        names.append(name)
        if name in DatasetCatalog.list():
            continue
        json_file = root / f"{split}.json"

        def load(json_file=json_file, name=name):
            build_digits_dataset(root, spec)
            return load_coco_json(str(json_file), str(root), name)

        DatasetCatalog.register(name, load)
        MetadataCatalog.get(name).set(
            json_file=str(json_file),
            image_root=str(root),
            evaluator_type="coco",
            thing_classes=list(CLASSES),
            digits_spec=spec,  # what nasnet_det.data.DigitCrops draws more samples from
        )
    return names


def _free_name(name: str, what: str) -> None:
    """Make room for ``name``: an earlier config registration is dropped, any other refused."""
    if name in _FROM_CONFIG:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)
        del _FROM_CONFIG[name]
    elif name in DatasetCatalog.list():
        raise ValueError(
            f"{what}: the name is already registered (a built-in dataset); choose another name"
        )


def _register(name: str, source: tuple, records: list[dict], **metadata: Any) -> None:
    # The records were read and checked once, at registration; each get() hands out a copy
    # (Detectron2's mappers mutate what they are given).
    DatasetCatalog.register(name, lambda records=records: copy.deepcopy(records))
    MetadataCatalog.get(name).set(evaluator_type="coco", **metadata)
    _FROM_CONFIG[name] = source
    _USABLE[name] = (len(records), sum(map(_has_object, records)))


def _has_object(record: dict) -> bool:
    # As Detectron2's filter_images_with_only_crowd_annotations (DATALOADER.FILTER_EMPTY_...).
    return any(a.get("iscrowd", 0) == 0 for a in record.get("annotations", ()))


def _check_trainable(names: list[str]) -> None:
    """One line when no image of the training datasets has an object Detectron2 trains on
    (every annotation a crowd region): it would assert "No valid data found" after OUTPUT_DIR
    exists, or with ``DATALOADER.FILTER_EMPTY_ANNOTATIONS False`` train on background alone.
    Datasets whose records are not known yet (the digits set, generated on use) pass."""
    if not names or not all(n in _USABLE for n in names):
        return
    images = sum(_USABLE[n][0] for n in names)
    if not any(_USABLE[n][1] for n in names):
        raise ValueError(
            f"DATASETS.TRAIN {', '.join(map(repr, names))}: none of the {images} images has an "
            'object that is not a crowd region ("iscrowd": 1, which Detectron2 leaves out of '
            "training): nothing to train on"
        )


def _dir(path: str, what: str) -> Path:
    p = Path(path)
    if not p.is_dir():
        state = "is not a folder" if p.exists() else "does not exist"
        raise FileNotFoundError(f"{what} {str(p)!r} {state}")
    return p


def _file(path: Path | str, what: str) -> Path:
    p = Path(path)
    if not p.is_file():
        state = "is not a file" if p.exists() else "does not exist"
        raise FileNotFoundError(f"{what} {str(p)!r} {state}")
    return p


def check_coco_json(json_file: str, image_root: str, what: str) -> dict:
    """Read and check a COCO-format annotation file and its image folder; returns the file.

    The file is checked as ``tools/eval_coco.py`` checks ground truth (layout, ids, category
    references, boxes), then what Detectron2's loader and mapper would stumble on mid-training:
    the optional annotation fields (``ignore``, ``keypoints``, ``segmentation``), every
    ``file_name`` inside ``image_root``, every image's header within the limits, its data whole
    and its recorded ``width``/``height``. There must be at least one image and one annotation.
    Errors are one ``ValueError`` (``FileNotFoundError``) that starts with ``what``.
    """
    from nasnet_det.evaluation.inputs import load_json_file, validate_gt

    _file(json_file, f"{what}: annotation file")
    root = _dir(image_root, f"{what}: image folder")
    gt = load_json_file(json_file, f"{what}: annotation")
    try:
        validate_gt(gt, "bbox", f"{what}: {json_file}")
    except ValueError as e:  # the same checks as eval_coco.py --gt, less that tool's hint
        raise ValueError(str(e).replace(" (a detections list? pass it with --dt)", "")) from None
    if not gt["images"]:
        raise ValueError(f"{what}: {json_file} has no images (an empty dataset)")
    if not gt["annotations"]:
        raise ValueError(f"{what}: {json_file} has no annotations (an empty dataset)")
    _check_boxes_inside(gt, f"{what}: {json_file}")
    _check_annotation_fields(gt["annotations"], f"{what}: {json_file}")
    for i, im in enumerate(gt["images"]):
        where = f"{what}: {json_file}: images[{i}] (id {im['id']})"
        if type(im.get("file_name")) is not str or not im["file_name"]:
            raise ValueError(f"{where} has no file_name")
        _check_image(_inside(root, im["file_name"], where), im, where)
    return gt


def register_coco_json(name: str, json_file: str, image_root: str) -> list[dict]:
    """Register a COCO-format annotation file and its image folder as ``name``, checked
    completely first (:func:`check_coco_json`). Returns the Detectron2 records."""
    what = f"DATASETS.COCO_JSON {name!r}"
    _free_name(name, what)
    gt = check_coco_json(json_file, image_root, what)
    root = Path(image_root)
    # Detectron2's loader: maps category ids to 0..K-1 and records the mapping in the metadata
    # (thing_dataset_id_to_contiguous_id) that COCOEvaluator uses to map results back.
    records = load_coco_json(str(json_file), str(root), name)
    meta = MetadataCatalog.get(name)
    mapping = dict(meta.thing_dataset_id_to_contiguous_id)
    classes = list(meta.thing_classes)
    _register(
        name,
        ("DATASETS.COCO_JSON", name, str(json_file), str(image_root)),
        records,
        json_file=str(json_file),
        image_root=str(root),
        thing_classes=classes,
        thing_dataset_id_to_contiguous_id=mapping,
    )
    logger.info(
        "dataset %s: %d images, %d boxes, %d categories from %s",
        name,
        len(records),
        len(gt["annotations"]),
        len(classes),
        json_file,
    )
    return records


#: Pixels a COCO box may reach past its image's border (rounding in annotation tools).
BOX_TOLERANCE = 1.0


def _check_boxes_inside(gt: dict, where: str) -> None:
    """Each box ``[x, y, w, h]`` inside its image's recorded ``width`` x ``height`` (as VOC's
    are), within :data:`BOX_TOLERANCE`; the first one outside is one ``ValueError``."""
    sizes = {im["id"]: (im.get("width"), im.get("height")) for im in gt["images"]}
    t = BOX_TOLERANCE
    for k, ann in enumerate(gt["annotations"]):
        width, height = sizes.get(ann["image_id"], (None, None))
        if not isinstance(width, (int, float)) or not isinstance(height, (int, float)):
            continue
        x, y, w, h = ann["bbox"]
        if x < -t or y < -t or x + w > width + t or y + h > height + t:
            raise ValueError(
                f"{where}: annotation[{k}] (id {ann.get('id')}) has box [x {x:g}, y {y:g}, "
                f"w {w:g}, h {h:g}] outside its {width:g}x{height:g} image "
                f"(id {ann['image_id']}; tolerance {t:g} px)"
            )


def _check_annotation_fields(anns: list[dict], where: str) -> None:
    """The optional fields Detectron2's ``load_coco_json`` reads, with the types it needs (it
    asserts on ``ignore`` and fails with a ``TypeError`` on a string of keypoints or a number as
    a segmentation). Degenerate polygons (under 3 points) pass: Detectron2 drops them itself."""
    for k, ann in enumerate(anns):
        at = f"{where}: annotation[{k}] (id {ann.get('id')})"
        ignore = ann.get("ignore", 0)
        if ignore not in (0, None):  # also True, "1", 1
            raise ValueError(
                f'{at} has "ignore": {ignore!r}, which Detectron2 does not support; drop the '
                'key (or mark the object "iscrowd": 1)'
            )
        keypoints = ann.get("keypoints")
        if keypoints is not None and not (
            type(keypoints) is list
            and len(keypoints) % 3 == 0
            and all(_finite_number(v) for v in keypoints)
        ):
            raise ValueError(
                f"{at} has 'keypoints' {_shown(keypoints)}, expected a list of numbers "
                "(x, y, visibility for each keypoint)"
            )
        seg = ann.get("segmentation")
        if seg is not None and not _segmentation_ok(seg):
            raise ValueError(
                f"{at} has 'segmentation' {_shown(seg)}, expected polygons (lists of x, y "
                "numbers) or an RLE {'size': [height, width], 'counts': ...}"
            )


def _finite_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _segmentation_ok(seg: Any) -> bool:
    if type(seg) is list:
        return all(type(p) is list and all(_finite_number(v) for v in p) for p in seg)
    if type(seg) is dict:
        size, counts = seg.get("size"), seg.get("counts")
        size_ok = type(size) is list and len(size) == 2 and all(type(v) is int for v in size)
        counts_ok = type(counts) is str or (
            type(counts) is list and all(type(c) is int and c >= 0 for c in counts)
        )
        return size_ok and counts_ok
    return False


def _shown(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _inside(root: Path, file_name: str, where: str) -> Path:
    """``root / file_name`` for a relative name that stays inside ``root`` (no ``..`` out of it,
    not absolute: Detectron2 would join an absolute name to nothing)."""
    norm = os.path.normpath(file_name)
    if os.path.isabs(file_name) or norm == ".." or norm.startswith(".." + os.sep):
        raise ValueError(
            f"{where}: file_name {file_name!r} is outside the image folder {str(root)!r} "
            "(names must be relative to it, without '..')"
        )
    return root / norm


# EXIF orientations that turn the image by 90 degrees (Detectron2's read_image applies them, so
# the recorded width and height are those of the turned image).
_TRANSPOSED = (5, 6, 7, 8)


def _check_image(path: Path, record: dict, where: str) -> tuple[int, int]:
    """The image at ``path`` exists, is an image within the limits (header read), is whole
    (:func:`_check_whole`) and has the ``width`` x ``height`` its record states (Detectron2
    stops training with a ``SizeMismatchError`` otherwise). Returns its (width, height)."""
    from nasnet_det.limits import open_image

    if not path.exists():
        raise FileNotFoundError(f"{where}: image {str(path)!r} does not exist")
    with open_image(path, f"{where}: image") as im:
        width, height = im.size
        try:
            orientation = im.getexif().get(0x0112)
        except Exception:  # a damaged EXIF block: Detectron2 ignores it as well
            orientation = None
        _check_whole(im, path, where)
    if orientation in _TRANSPOSED:
        width, height = height, width
    if "width" in record or "height" in record:
        stated = record.get("width"), record.get("height")
        if not all(type(v) is int and v > 0 for v in stated):
            raise ValueError(f"{where} has width/height {stated[0]!r}x{stated[1]!r}, expected "
                             "positive integers")  # fmt: skip
        if stated != (width, height):
            raise ValueError(
                f"{where} records {stated[0]}x{stated[1]} but its image {str(path)!r} is "
                f"{width}x{height} (width x height); fix the record or the image"
            )
    return width, height


#: The bytes a whole file of a format ends with; a file cut short lacks them.
_END_MARKERS = {"JPEG": b"\xff\xd9", "PNG": b"IEND\xaeB`\x82"}


def _check_whole(im, path: Path, where: str) -> None:
    """The image's data is all there, not cut short after its header (PIL then fails with
    "image file is truncated" when Detectron2 decodes it, mid-training). A JPEG or PNG that
    ends with its end marker is whole (JPEG scan data never holds 0xFF 0xD9; PNG's marker is
    the 12-byte IEND chunk), which costs one small read; one that does not (cut short, or with
    data appended after the end) is decoded to tell, a JPEG at 1/8 scale. Other formats are
    decoded (bounded by the pixel limit)."""
    from nasnet_det.cli import first_line

    end = _END_MARKERS.get(im.format)
    if end is not None:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - len(end)))
            if f.read() == end:
                return
    try:
        if im.format == "JPEG":
            im.draft(None, (max(1, im.width // 8), max(1, im.height // 8)))
        im.load()
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise ValueError(
            f"{where}: image {str(path)!r} cannot be decoded ({first_line(e)}): cut short or "
            "damaged; replace the file or drop its record"
        ) from None


def _read_lines(path: Path, what: str) -> list[str]:
    """The non-empty lines of a UTF-8 text file (bounded read), one message naming it if not."""
    from nasnet_det.limits import read_input_bytes

    data = read_input_bytes(path, "text", what)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(
            f"{what} {str(path)!r} is not UTF-8 text (byte {e.start}); save it as UTF-8"
        ) from None
    return [line.strip() for line in text.splitlines() if line.strip()]


def _voc_number(obj: ET.Element, key: str, where: str) -> float:
    node = obj.find(key)
    try:
        value = float(node.text)  # type: ignore[union-attr,arg-type]
    except (AttributeError, TypeError, ValueError):
        text = None if node is None else node.text
        raise ValueError(f"{where}: <{key}> is {text!r}, expected a number") from None
    if not math.isfinite(value):  # inf, nan, 1e400
        raise ValueError(f"{where}: <{key}> is {node.text.strip()!r}, expected a finite number")
    return value


def load_voc(folder: str, image_set: str, classes: list[str], what: str = "VOC") -> list[dict]:
    """Read and check a Pascal VOC folder's image set into Detectron2 records.

    ``folder`` holds ``Annotations/<id>.xml``, ``JPEGImages/<id>`` with one of
    :data:`IMAGE_EXTENSIONS` and ``ImageSets/Main/<image_set>.txt`` (one id a line). Boxes are
    converted as Detectron2's ``load_voc_instances`` does (VOC pixel indices start at 1, so
    ``xmin``/``ymin`` move by -1, clipped at 0); image ids are 1, 2, ... in image-set order.
    A box must lie inside its image (``0 <= xmin < xmax <= width``, same for y) and its label
    must be in ``classes``; the first violation raises one line naming the xml file and object.
    """
    root = _dir(folder, f"{what}: folder")
    ann_dir = _dir(str(root / "Annotations"), f"{what}: annotation folder")
    img_dir = _dir(str(root / "JPEGImages"), f"{what}: image folder")
    list_file = _file(root / "ImageSets" / "Main" / f"{image_set}.txt", f"{what}: image set")
    ids = [line.split()[0] for line in _read_lines(list_file, f"{what}: image set")]
    if not ids:
        raise ValueError(f"{what}: image set {str(list_file)!r} lists no images (an empty dataset)")
    index = {c: i for i, c in enumerate(classes)}
    records, num_boxes = [], 0
    for image_id, fileid in enumerate(ids, start=1):
        where = f"{what}: {list_file.name} line {image_id}"
        xml = _file(ann_dir / f"{fileid}.xml", f"{where}: annotation")
        image = next((img_dir / (fileid + e) for e in IMAGE_EXTENSIONS
                      if (img_dir / (fileid + e)).is_file()), None)  # fmt: skip
        if image is None:
            raise FileNotFoundError(
                f"{where}: no image {fileid}{{{','.join(IMAGE_EXTENSIONS)}}} in {str(img_dir)!r}"
            )
        record = _voc_record(xml, index, classes, what)
        _check_image(image, record, f"{where} ({xml.name})")
        record.update(file_name=str(image), image_id=image_id)
        num_boxes += len(record["annotations"])
        records.append(record)
    if not num_boxes:
        raise ValueError(
            f"{what}: the {len(ids)} images of {str(list_file)!r} have no objects "
            "(an empty dataset)"
        )
    return records


def _voc_record(xml: Path, index: dict[str, int], classes: list[str], what: str) -> dict:
    """One VOC xml file as a Detectron2 record (without file name and id), checked."""
    from nasnet_det.limits import read_input_bytes

    data = read_input_bytes(xml, "text", f"{what}: annotation")
    try:
        tree = ET.ElementTree(ET.fromstring(data))
    except ET.ParseError as e:
        raise ValueError(f"{what}: {str(xml)!r} is not valid XML: {e}") from None
    size = tree.find("size")
    if size is None:
        raise ValueError(f"{what}: {str(xml)!r} has no <size> (width, height)")
    width = _voc_number(size, "width", f"{what}: {str(xml)!r} <size>")
    height = _voc_number(size, "height", f"{what}: {str(xml)!r} <size>")
    if width <= 0 or height <= 0:
        raise ValueError(f"{what}: {str(xml)!r} has image size {width:g}x{height:g}")
    annotations = [
        _voc_object(obj, f"{what}: {str(xml)!r} object {k}", index, classes, width, height)
        for k, obj in enumerate(tree.findall("object"), start=1)
    ]
    return {"height": int(height), "width": int(width), "annotations": annotations}


def _voc_object(obj, where: str, index: dict[str, int], classes: list[str], width, height) -> dict:
    """One ``<object>``: its label must be a class, its box inside the image."""
    label = (obj.findtext("name") or "").strip()
    if label not in index:
        raise ValueError(f"{where} has label {label!r}, which is not in the class list {classes}")
    bndbox = obj.find("bndbox")
    if bndbox is None:
        raise ValueError(f"{where} ({label}) has no <bndbox>")
    x0, y0, x1, y1 = [_voc_number(bndbox, key, f"{where} ({label})")
                      for key in ("xmin", "ymin", "xmax", "ymax")]  # fmt: skip
    if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
        raise ValueError(
            f"{where} ({label}) has box [xmin {x0:g}, ymin {y0:g}, xmax {x1:g}, "
            f"ymax {y1:g}] outside the {width:g}x{height:g} image (or empty)"
        )
    # As Detectron2's load_voc_instances: VOC pixel indices start at 1.
    return {
        "bbox": [max(x0 - 1.0, 0.0), max(y0 - 1.0, 0.0), x1, y1],
        "bbox_mode": BoxMode.XYXY_ABS,
        "category_id": index[label],
        "iscrowd": 0,
    }


def _voc_classes(folder: str, classes: str, what: str) -> list[str]:
    if classes.strip():
        names = [c.strip() for c in classes.split(",")]
        source = "the class list"
    else:
        labels = _file(Path(folder) / "labels.txt", f"{what}: class list (no class names given)")
        names = _read_lines(labels, f"{what}: class list")
        source = str(labels)
    if not names or not all(names):
        raise ValueError(f"{what}: {source} {classes!r} has an empty class name")
    if len(set(names)) != len(names):
        raise ValueError(f"{what}: {source} names a class twice: {names}")
    return names


def register_voc(name: str, folder: str, image_set: str, classes: str = "") -> list[dict]:
    """Register a Pascal VOC folder's ``image_set`` as ``name`` (see :func:`load_voc`).

    ``classes``: comma-separated class names, or ``""`` to read ``<folder>/labels.txt``.
    Evaluated with COCO metrics (Detectron2's ``COCOEvaluator`` converts the records).
    """
    what = f"DATASETS.VOC {name!r}"
    _free_name(name, what)
    names = _voc_classes(folder, classes, what)
    records = load_voc(folder, image_set, names, what)
    _register(
        name,
        ("DATASETS.VOC", name, str(folder), image_set, classes),
        records,
        thing_classes=names,
        dirname=str(folder),
        split=image_set,
    )
    logger.info(
        "dataset %s: %d images, %d boxes, %d classes from %s (%s)",
        name,
        len(records),
        sum(len(r["annotations"]) for r in records),
        len(names),
        folder,
        image_set,
    )
    return records


def _entries(cfg, key: str, sizes: tuple[int, ...], shape: str) -> list[list[str]]:
    out = []
    for i, entry in enumerate(cfg.DATASETS.get(key, [])):
        if (
            not isinstance(entry, (list, tuple))
            or len(entry) not in sizes
            or not all(isinstance(v, str) for v in entry)
            or not entry[0]
        ):
            raise ValueError(f"DATASETS.{key}[{i}] must be {shape} (strings), got {entry!r}")
        out.append(list(entry))
    names = [e[0] for e in out]
    return out if len(set(names)) == len(names) else _duplicate(key, names)


def _duplicate(key: str, names: list[str]) -> list:
    twice = sorted({n for n in names if names.count(n) > 1})
    raise ValueError(f"DATASETS.{key} names {twice} more than once")


def register_from_config(cfg, need: tuple[str, ...] = ("TRAIN", "TEST")) -> list[str]:
    """Register every ``DATASETS.COCO_JSON`` and ``DATASETS.VOC`` entry, then check that
    ``DATASETS.TRAIN``/``TEST`` name registered datasets and that the class count matches
    (:func:`check_num_classes`). The datasets of the ``need`` keys that are registered
    elsewhere (Detectron2's built-in ones) must have their files. Returns the names registered
    here."""
    coco = _entries(cfg, "COCO_JSON", (3,), "[name, annotation json, image folder]")
    voc = _entries(cfg, "VOC", (3, 4), "[name, folder, image set, class names]")
    both = [e[0] for e in coco] + [e[0] for e in voc]
    if len(set(both)) != len(both):
        _duplicate("COCO_JSON and DATASETS.VOC", both)
    for name, json_file, image_root in coco:
        register_coco_json(name, json_file, image_root)
    for name, folder, image_set, *classes in voc:
        register_voc(name, folder, image_set, classes[0] if classes else "")
    known = set(DatasetCatalog.list())
    for key in ("TRAIN", "TEST"):
        for name in cfg.DATASETS[key]:
            if name not in known:
                raise ValueError(
                    f"DATASETS.{key} names {name!r}, which is not registered; register it with "
                    "DATASETS.COCO_JSON or DATASETS.VOC, or use a built-in name "
                    "(nasnet_digits_train, coco_2017_train, ...)"
                )
    builtin_coco = set()
    for key in need:
        for name in dict.fromkeys(cfg.DATASETS[key]):
            if name not in _FROM_CONFIG and name not in builtin_coco:
                if _check_builtin(name, f"DATASETS.{key}"):
                    builtin_coco.add(name)
    check_num_classes(cfg, also=builtin_coco)
    if "TRAIN" in need:
        _check_trainable(list(dict.fromkeys(cfg.DATASETS.TRAIN)))
    return both


def _check_builtin(name: str, key: str) -> bool:
    """A dataset registered elsewhere (Detectron2's ``coco_2017_train``, ``voc_2007_trainval``)
    is loaded lazily, after the output folder and the model exist, so it is checked now: its
    files must exist, and a COCO one (``evaluator_type`` "coco": Detectron2 registers those with
    ``register_coco_instances``) gets the checks of ``DATASETS.COCO_JSON``, plus its categories
    against the metadata Detectron2 recorded for the name (its loader asserts they agree).
    Returns whether it was checked as COCO. The digits set is generated on first use."""
    meta = MetadataCatalog.get(name)
    if meta.get("digits_spec") is not None:
        return False
    for attr, noun in (("json_file", "annotation file"), ("image_root", "image folder"),
                       ("dirname", "folder")):  # fmt: skip
        path = meta.get(attr)
        if isinstance(path, str) and not os.path.exists(path):
            root = os.environ.get("DETECTRON2_DATASETS", "datasets")
            raise FileNotFoundError(
                f"{key} names {name!r}, whose {noun} {path!r} does not exist (Detectron2's "
                f"built-in datasets are read from $DETECTRON2_DATASETS, now {root!r}; or "
                "register your files with DATASETS.COCO_JSON or DATASETS.VOC)"
            )
    json_file, image_root = meta.get("json_file"), meta.get("image_root")
    if meta.get("evaluator_type") != "coco" or not (json_file and image_root):
        return False
    gt = check_coco_json(json_file, image_root, f"{key} {name!r}")
    _check_builtin_categories(gt["categories"], meta, f"{key} {name!r}: {json_file}")
    ids = {im["id"] for im in gt["images"]}
    usable = {a["image_id"] for a in gt["annotations"] if a.get("iscrowd", 0) == 0} & ids
    _USABLE[name] = (len(ids), len(usable))
    return True


def _check_builtin_categories(cats: list[dict], meta, where: str) -> None:
    """The file's categories (ordered by id, as Detectron2's loader orders them) are the
    ``thing_classes`` and ids Detectron2's metadata holds for the name, when it holds them."""
    cats = sorted(cats, key=lambda c: c["id"])
    names, ids = [c["name"] for c in cats], [c["id"] for c in cats]
    classes = meta.get("thing_classes")
    mapping = meta.get("thing_dataset_id_to_contiguous_id")
    if classes is not None and list(classes) != names:
        raise ValueError(
            f"{where} has categories {_shown(names)}, but Detectron2 registered this name with "
            f"the {len(classes)} classes {_shown(list(classes))}; put your files under another "
            "name with DATASETS.COCO_JSON"
        )
    if mapping is not None and dict(mapping) != {v: i for i, v in enumerate(ids)}:
        expected = sorted(mapping)
        k = next((i for i, (a, b) in enumerate(zip(ids, expected)) if a != b), None)
        if k is not None:
            differ = f"category {names[k]!r} has id {ids[k]} where Detectron2's metadata for "
            differ += f"this name has {expected[k]}"
        else:
            differ = f"{len(ids)} category ids where Detectron2's metadata for this name has "
            differ += f"{len(expected)}"
        raise ValueError(
            f"{where}: {differ}; put your files under another name with DATASETS.COCO_JSON"
        )


def check_num_classes(cfg, also: set[str] | frozenset[str] = frozenset()) -> None:
    """Raise if the detector's class count differs from a config-registered dataset's (or
    from one of the ``also`` names': the built-in COCO datasets checked before).

    Reads ``MODEL.RETINANET.NUM_CLASSES`` for RetinaNet, ``MODEL.ROI_HEADS.NUM_CLASSES``
    otherwise. Other datasets registered elsewhere are the user's responsibility.
    """
    retina = cfg.MODEL.META_ARCHITECTURE == "RetinaNet"
    key = "MODEL.RETINANET.NUM_CLASSES" if retina else "MODEL.ROI_HEADS.NUM_CLASSES"
    num = cfg.MODEL.RETINANET.NUM_CLASSES if retina else cfg.MODEL.ROI_HEADS.NUM_CLASSES
    for name in (*cfg.DATASETS.TRAIN, *cfg.DATASETS.TEST):
        if name not in _FROM_CONFIG and name not in also:
            continue
        classes = MetadataCatalog.get(name).thing_classes
        if len(classes) != num:
            shown = ", ".join(classes[:8]) + (", ..." if len(classes) > 8 else "")
            raise ValueError(
                f"{key} is {num} but dataset {name!r} has {len(classes)} categories ({shown}); "
                f"set {key} {len(classes)}"
            )


register_nasnet_digits()
