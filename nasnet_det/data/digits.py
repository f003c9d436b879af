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

__all__ = [
    "CLASSES",
    "DigitCrops",
    "DigitsSpec",
    "build_digits_dataset",
    "centred_window",
    "default_root",
    "digit_pool",
]

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


def _background(rng: np.random.Generator, photos: list[np.ndarray], s: int) -> np.ndarray:
    """A random square crop of a random photograph, resized to ``s`` x ``s`` (float32 RGB)."""
    import cv2

    photo = photos[rng.integers(len(photos))]
    h, w = photo.shape[:2]
    side = int(rng.uniform(0.35, 1.0) * min(h, w))
    y0, x0 = rng.integers(h - side + 1), rng.integers(w - side + 1)
    img = cv2.resize(photo[y0 : y0 + side, x0 : x0 + side], (s, s), interpolation=cv2.INTER_AREA)
    return img.astype(np.float32)


def _digit_size(rng: np.random.Generator, spec: DigitsSpec) -> int:
    return int(round(rng.choice(spec.digit_sizes) * rng.uniform(0.9, 1.1)))


def _paste(
    rng: np.random.Generator, img: np.ndarray, digit: np.ndarray, x: int, y: int, size: int
) -> list[int] | None:
    """Blend the 8x8 ``digit`` into ``img`` at ``(x, y)``, ``size`` px, in a colour that
    contrasts with the patch under it; returns the digit's tight XYXY box (None: blank)."""
    import cv2

    alpha = cv2.resize(digit, (size, size), interpolation=cv2.INTER_LINEAR)
    alpha = np.clip(alpha * 1.5, 0.0, 1.0)
    ys, xs = np.nonzero(alpha > 0.25)
    if len(xs) == 0:
        return None
    patch = img[y : y + size, x : x + size]
    # Dark digits on bright surroundings and vice versa, with a random hue.
    bright = patch.mean() < 128
    base = rng.uniform(190, 255, 3) if bright else rng.uniform(0, 60, 3)
    patch[:] = patch * (1 - alpha[..., None]) + base * alpha[..., None]
    return [x + int(xs.min()), y + int(ys.min()), x + int(xs.max()) + 1, y + int(ys.max()) + 1]


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
        img = _background(rng, photos, s)
        boxes: list[list[float]] = []
        for _ in range(rng.integers(1, spec.max_digits + 1)):
            size = _digit_size(rng, spec)
            for _try in range(20):
                x, y = int(rng.integers(0, s - size + 1)), int(rng.integers(0, s - size + 1))
                cand = [x, y, x + size, y + size]
                if all(_iou(cand, b) == 0.0 for b in boxes):
                    break
            else:
                continue
            k = rng.integers(len(digits))
            box = _paste(rng, img, digits[k], x, y, size)
            if box is None:
                continue
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


#: What a digits dataset consists of in its cache folder.
_OWN = "meta.json, train.json, val.json, val_mini.json, train/, val/"


def build_digits_dataset(root: str | os.PathLike | None = None, spec: DigitsSpec | None = None):
    """Write the dataset under ``root`` unless it is already there; return ``root``.

    Layout: ``root/{train,val,val_mini}.json`` (COCO) with images under ``root/train`` and
    ``root/val`` (``val_mini`` lists the first val images). Generation goes to a temporary
    folder renamed into place, so concurrent or interrupted runs never leave half a dataset.
    A cache built from another spec raises ``ValueError``.
    """
    root = Path(root) if root is not None else default_root()
    spec = spec or DigitsSpec()
    meta_path = root / "meta.json"
    if meta_path.is_file():
        found = json.loads(meta_path.read_text())
        if found != _spec_dict(spec):
            raise ValueError(
                f"dataset cache {str(root)!r} was built with other settings ({found}); remove "
                f"its dataset files ({_OWN}) or point NASNET_DET_CACHE elsewhere"
            )
        return root
    if root.exists() and any(root.iterdir()):
        # Not "delete it": NASNET_DET_CACHE may be the folder that holds downloaded weights.
        raise ValueError(
            f"dataset cache {str(root)!r} holds other files and no digits dataset (no "
            "meta.json); point NASNET_DET_CACHE at an empty or new folder"
        )

    tmp = root.parent / f".{root.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        for split in ("train", "val"):
            (tmp / split).mkdir(parents=True)
        photos = _photos(spec.photos)
        for k, (split, n) in enumerate((("train", spec.num_train), ("val", spec.num_val))):
            rng = np.random.default_rng([spec.seed, k])
            digits, labels = digit_pool(spec, split)
            coco = _render_split(rng, n, spec, photos, digits, labels, tmp, split)
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


def digit_pool(spec: DigitsSpec, split: str) -> tuple[np.ndarray, np.ndarray]:
    """The 8x8 handwritten digits a split draws from: ``(images [n, 8, 8] in [0, 1], labels
    [n])``. ``train`` holds 80% of scikit-learn's digits, ``val`` (and ``val_mini``) the
    other 20%: no digit sample appears in both."""
    from sklearn.datasets import load_digits

    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    digits_all = load_digits()
    perm = np.random.default_rng(spec.seed).permutation(len(digits_all.images))
    cut = int(0.8 * len(perm))
    pool = perm[:cut] if split == "train" else perm[cut:]
    return digits_all.images[pool].astype(np.float32) / 16.0, digits_all.target[pool]


class DigitCrops:
    """Endless classification samples drawn the way the detection images are: one digit of
    ``split``'s pool pasted on a photo crop, then a window of ``crop / scale`` image pixels
    centred on its tight box, resized to ``crop`` px. ``scale`` is the detector's input resize
    (1.5 for 128 px images seen at 192), so the pretrained features meet digits at the size the
    detector sees them. The pool and photographs are loaded once, here."""

    def __init__(self, spec: DigitsSpec | None = None, split: str = "train", scale: float = 1.0):
        if not scale > 0:
            raise ValueError(f"scale must be positive, got {scale}")
        self.spec = spec or DigitsSpec()
        self.scale = float(scale)
        self.digits, self.labels = digit_pool(self.spec, split)
        self.photos = _photos(self.spec.photos)

    def sample(self, n: int, crop: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``n`` fresh samples: ``(uint8 RGB [n, crop, crop, 3], labels [n] 0..9)``; the same
        ``rng`` state gives the same samples."""
        import cv2

        s, window = self.spec.image_size, max(1, int(round(crop / self.scale)))
        half = window // 2
        xs: list[np.ndarray] = []
        ys: list[int] = []
        while len(xs) < n:
            img = _background(rng, self.photos, s)
            size = _digit_size(rng, self.spec)
            x, y = int(rng.integers(0, s - size + 1)), int(rng.integers(0, s - size + 1))
            k = rng.integers(len(self.digits))
            box = _paste(rng, img, self.digits[k], x, y, size)
            if box is None:
                continue
            rgb = np.clip(img, 0, 255).astype(np.uint8)
            padded = cv2.copyMakeBorder(rgb, half, half, half, half, cv2.BORDER_REFLECT)
            centre = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
            xs.append(centred_window(padded, centre, window, crop))
            ys.append(int(self.labels[k]))
        return np.stack(xs), np.asarray(ys, dtype=np.int64)


def centred_window(
    padded: np.ndarray, centre: tuple[float, float], window: int, crop: int
) -> np.ndarray:
    """The ``window`` x ``window`` pixels centred on ``centre`` (x, y in the unpadded image) of
    an image reflect-padded by ``window // 2`` on every side, resized to ``crop`` x ``crop``."""
    import cv2

    cx, cy = int(round(centre[0])), int(round(centre[1]))
    win = padded[cy : cy + window, cx : cx + window]
    if window != crop:
        win = cv2.resize(win, (crop, crop), interpolation=cv2.INTER_LINEAR)
    return win
