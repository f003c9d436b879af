"""A small offline detection dataset: handwritten digits pasted onto crops of real photographs.

Everything comes from files that ship inside installed packages: scikit-learn's 1,797 8x8
handwritten digits (10 classes) and the photographs bundled with scikit-image (astronaut,
coffee, chelsea, rocket) and scikit-learn (china, flower). Each image is a random crop of a
photograph with 1..4 digits pasted at several scales, in a colour that contrasts with the
local background. Train and val use disjoint digit samples. The result depends only on the
seed and is written once, atomically, as COCO-format json plus PNG images.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["CLASSES", "DigitsSpec", "build_digits_dataset", "default_root"]

#: Category names, in category-id order (id = digit + 1).
CLASSES = [str(d) for d in range(10)]
SPLITS = ("train", "val", "val_mini")
_FORMAT_VERSION = 1


@dataclass(frozen=True)
class DigitsSpec:
    """What the generator draws; the cache records it and refuses a different one."""

    num_train: int = 1000
    num_val: int = 200
    num_val_mini: int = 16  # the first val images, for smoke tests
    image_size: int = 128
    digit_sizes: tuple[int, ...] = (16, 24, 32, 48)  # pixels, each jittered by +-10%
    max_digits: int = 4
    seed: int = 0
    photos: tuple[str, ...] = field(
        default=("astronaut", "coffee", "chelsea", "rocket", "china", "flower")
    )

    def __post_init__(self) -> None:
        for key in ("num_train", "num_val", "image_size", "max_digits"):
            if int(getattr(self, key)) < 1:
                raise ValueError(f"DigitsSpec.{key} must be >= 1, got {getattr(self, key)}")
        if not 0 <= self.num_val_mini <= self.num_val:
            raise ValueError("DigitsSpec.num_val_mini must be in 0..num_val")
        if max(self.digit_sizes) * 1.1 >= self.image_size:
            raise ValueError("DigitsSpec.digit_sizes must be smaller than image_size")


def default_root() -> Path:
    """``$NASNET_DET_CACHE`` or ``./datasets/nasnet_digits``, made absolute."""
    return Path(os.environ.get("NASNET_DET_CACHE", "./datasets/nasnet_digits")).resolve()


def _photos(names: tuple[str, ...]) -> list[np.ndarray]:
    import skimage.data
    from sklearn.datasets import load_sample_images

    sk = {"china": 0, "flower": 1}
    samples = None
    out = []
    for name in names:
        if name in sk:
            samples = samples if samples is not None else load_sample_images().images
            img = samples[sk[name]]
        elif hasattr(skimage.data, name):
            img = getattr(skimage.data, name)()
        else:
            raise ValueError(
                f"unknown photo {name!r}; expected a skimage.data image or china/flower"
            )
        if img.ndim == 2:
            img = np.stack([img] * 3, -1)
        out.append(np.ascontiguousarray(img[..., :3], dtype=np.uint8))
    return out


def _iou(a: list[float], b: list[float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _render_split(
    rng: np.random.Generator,
    n: int,
    spec: DigitsSpec,
    photos: list[np.ndarray],
    digits: np.ndarray,
    labels: np.ndarray,
    image_dir: Path,
    split: str,
) -> dict:
    import cv2

    s = spec.image_size
    images, annotations = [], []
    for idx in range(n):
        photo = photos[rng.integers(len(photos))]
        h, w = photo.shape[:2]
        side = int(rng.uniform(0.35, 1.0) * min(h, w))
        y0, x0 = rng.integers(h - side + 1), rng.integers(w - side + 1)
        img = cv2.resize(
            photo[y0 : y0 + side, x0 : x0 + side], (s, s), interpolation=cv2.INTER_AREA
        )
        img = img.astype(np.float32)
        boxes: list[list[float]] = []
        for _ in range(rng.integers(1, spec.max_digits + 1)):
            size = int(round(rng.choice(spec.digit_sizes) * rng.uniform(0.9, 1.1)))
            for _try in range(20):
                x, y = int(rng.integers(0, s - size + 1)), int(rng.integers(0, s - size + 1))
                cand = [x, y, x + size, y + size]
                if all(_iou(cand, b) == 0.0 for b in boxes):
                    break
            else:
                continue
            k = rng.integers(len(digits))
            alpha = cv2.resize(digits[k], (size, size), interpolation=cv2.INTER_LINEAR)
            alpha = np.clip(alpha * 1.5, 0.0, 1.0)
            ys, xs = np.nonzero(alpha > 0.25)
            if len(xs) == 0:
                continue
            patch = img[y : y + size, x : x + size]
            # Dark digits on bright surroundings and vice versa, with a random hue.
            bright = patch.mean() < 128
            base = rng.uniform(190, 255, 3) if bright else rng.uniform(0, 60, 3)
            patch[:] = patch * (1 - alpha[..., None]) + base * alpha[..., None]
            box = [x + xs.min(), y + ys.min(), x + xs.max() + 1, y + ys.max() + 1]
            boxes.append(cand)
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": idx + 1,
                    "category_id": int(labels[k]) + 1,
                    "bbox": [float(box[0]), float(box[1]), float(box[2] - box[0]),
                             float(box[3] - box[1])],
                    "area": float((box[2] - box[0]) * (box[3] - box[1])),
                    "iscrowd": 0,
                }
            )  # fmt: skip
        name = f"{split}/{idx:05d}.png"
        out = np.clip(img, 0, 255).astype(np.uint8)
        if not cv2.imwrite(str(image_dir / name), cv2.cvtColor(out, cv2.COLOR_RGB2BGR)):
            raise OSError(f"could not write {image_dir / name}")
        images.append({"id": idx + 1, "file_name": name, "height": s, "width": s})
    return {
        "info": {"description": f"nasnet_det digits {split}", "version": _FORMAT_VERSION},
        "images": images,
        "annotations": annotations,
        "categories": [{"id": i + 1, "name": c} for i, c in enumerate(CLASSES)],
    }


def _spec_dict(spec: DigitsSpec) -> dict:
    d = asdict(spec)
    d["digit_sizes"] = list(spec.digit_sizes)
    d["photos"] = list(spec.photos)
    d["format_version"] = _FORMAT_VERSION
    return d


def build_digits_dataset(root: str | os.PathLike | None = None, spec: DigitsSpec | None = None):
    """Write the dataset under ``root`` unless it is already there; return ``root``.

    Layout: ``root/{train,val,val_mini}.json`` (COCO) with images under ``root/train`` and
    ``root/val`` (``val_mini`` lists the first val images). Generation goes to a temporary
    folder renamed into place, so concurrent or interrupted runs never leave half a dataset.
    A cache built from another spec raises ``ValueError``.
    """
    from sklearn.datasets import load_digits

    root = Path(root) if root is not None else default_root()
    spec = spec or DigitsSpec()
    meta_path = root / "meta.json"
    if meta_path.is_file():
        found = json.loads(meta_path.read_text())
        if found != _spec_dict(spec):
            raise ValueError(
                f"dataset cache {str(root)!r} was built with other settings ({found}); delete it "
                "or point NASNET_DET_CACHE elsewhere"
            )
        return root
    if root.exists() and any(root.iterdir()):
        raise ValueError(f"dataset cache {str(root)!r} exists but has no meta.json; delete it")

    tmp = root.parent / f".{root.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        for split in ("train", "val"):
            (tmp / split).mkdir(parents=True)
        digits_all = load_digits()
        images = digits_all.images.astype(np.float32) / 16.0
        labels = digits_all.target
        perm = np.random.default_rng(spec.seed).permutation(len(images))
        cut = int(0.8 * len(perm))  # disjoint digit samples for train and val
        photos = _photos(spec.photos)
        for k, (split, n, pool) in enumerate(
            (("train", spec.num_train, perm[:cut]), ("val", spec.num_val, perm[cut:]))
        ):
            rng = np.random.default_rng([spec.seed, k])
            coco = _render_split(rng, n, spec, photos, images[pool], labels[pool], tmp, split)
            (tmp / f"{split}.json").write_text(json.dumps(coco))
            if split == "val":
                keep = {im["id"] for im in coco["images"][: spec.num_val_mini]}
                mini = dict(coco)
                mini["images"] = [im for im in coco["images"] if im["id"] in keep]
                mini["annotations"] = [a for a in coco["annotations"] if a["image_id"] in keep]
                (tmp / "val_mini.json").write_text(json.dumps(mini))
        (tmp / "meta.json").write_text(json.dumps(_spec_dict(spec)))
        root.parent.mkdir(parents=True, exist_ok=True)
        if root.exists():
            root.rmdir()  # empty (checked above)
        try:
            os.replace(tmp, root)
        except OSError:
            if not (root / "meta.json").is_file():  # lost a race only if the winner finished
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root
