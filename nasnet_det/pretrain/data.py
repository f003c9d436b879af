"""ImageNet-layout data (``DIR/train/<class>/*.jpg``, ``DIR/val/<class>/*.jpg``) for pretraining.

Augmentation draws its randomness from a per-sample generator seeded by ``(seed, epoch, index)``,
so a batch is the same whichever process, worker or resumed run loads it. Unreadable images
(corrupt, truncated, not an image) are skipped: the collate function drops them, and the
training loop warns and counts them.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torchvision.transforms.functional as TF
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Sampler
from torchvision.transforms import InterpolationMode

from nasnet_det.limits import open_image

__all__ = [
    "IMG_EXTENSIONS",
    "scan_split",
    "scan_imagenet",
    "Preprocess",
    "ImageFolderDataset",
    "EpochSampler",
    "collate_skip",
    "first_readable",
    "make_loader",
]

IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def scan_split(root: str | Path) -> tuple[list[str], list[tuple[str, int]]]:
    """Class names (sorted folder names) and ``(path, label)`` of every image under ``root``."""
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"{str(root)!r} is not a directory (expected <class>/<image> folders)")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    samples = []
    for label, name in enumerate(classes):
        for p in sorted((root / name).rglob("*")):
            if p.suffix.lower() in IMG_EXTENSIONS and p.is_file():
                samples.append((str(p), label))
    if not samples:
        raise ValueError(
            f"no images found in {str(root)!r}: expected {root}/<class>/<image> files with "
            f"extensions {', '.join(IMG_EXTENSIONS)}"
        )
    return classes, samples


def scan_imagenet(data_dir: str | Path) -> tuple[list[str], list, list]:
    """Scan ``train/`` and ``val/``; both must hold the same classes."""
    data_dir = Path(data_dir)
    classes, train = scan_split(data_dir / "train")
    val_classes, val = scan_split(data_dir / "val")
    if val_classes != classes:
        missing = sorted(set(classes) - set(val_classes))
        extra = sorted(set(val_classes) - set(classes))
        parts = []
        if missing:
            parts.append(f"missing from val/: {', '.join(missing[:5])}")
        if extra:
            parts.append(f"not in train/: {', '.join(extra[:5])}")
        raise ValueError(
            f"train/ and val/ of {str(data_dir)!r} must hold the same classes; " + "; ".join(parts)
        )
    val_labels = {label for _, label in val}
    empty = [classes[i] for i in range(len(classes)) if i not in val_labels]
    if empty:
        raise ValueError(
            f"val/ of {str(data_dir)!r} has no images for class(es) {', '.join(empty[:5])}"
        )
    return classes, train, val


@dataclass(frozen=True)
class Preprocess:
    """Inception-style training crops or resize + center-crop evaluation, then normalisation."""

    image_size: int = 224
    train: bool = True
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    hflip: float = 0.5
    crop_pct: float = 0.875
    interpolation: str = "bilinear"
    mean: tuple[float, ...] = (0.5, 0.5, 0.5)
    std: tuple[float, ...] = (0.5, 0.5, 0.5)

    @classmethod
    def from_config(cls, data: dict, train: bool) -> Preprocess:
        keys = ("image_size", "hflip", "crop_pct", "interpolation")
        return cls(
            train=train,
            scale=tuple(data["scale"]),
            ratio=tuple(data["ratio"]),
            mean=tuple(data["mean"]),
            std=tuple(data["std"]),
            **{k: data[k] for k in keys},
        )

    def crop_box(self, width: int, height: int, rng: random.Random) -> tuple[int, int, int, int]:
        """torchvision's ``RandomResizedCrop.get_params`` with an explicit generator."""
        area = width * height
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(10):
            target = area * rng.uniform(*self.scale)
            aspect = math.exp(rng.uniform(*log_ratio))
            w = int(round(math.sqrt(target * aspect)))
            h = int(round(math.sqrt(target / aspect)))
            if 0 < w <= width and 0 < h <= height:
                return rng.randint(0, height - h), rng.randint(0, width - w), h, w
        in_ratio = width / height
        if in_ratio < min(self.ratio):
            w, h = width, int(round(width / min(self.ratio)))
        elif in_ratio > max(self.ratio):
            h, w = height, int(round(height * max(self.ratio)))
        else:
            w, h = width, height
        return (height - h) // 2, (width - w) // 2, h, w

    def __call__(self, img: Image.Image, rng: random.Random | None = None) -> torch.Tensor:
        interp = InterpolationMode(self.interpolation)
        size = self.image_size
        if self.train:
            rng = rng or random.Random()
            top, left, h, w = self.crop_box(img.width, img.height, rng)
            img = TF.resized_crop(img, top, left, h, w, [size, size], interp, antialias=True)
            if rng.random() < self.hflip:
                img = TF.hflip(img)
        else:
            img = TF.resize(img, int(math.floor(size / self.crop_pct)), interp, antialias=True)
            img = TF.center_crop(img, [size, size])
        return TF.normalize(TF.to_tensor(img), self.mean, self.std)


class ImageFolderDataset(Dataset):
    """``(path, label)`` samples through a :class:`Preprocess`; ``None`` for unreadable files.

    ``set_epoch`` changes the augmentation stream; item ``i`` of epoch ``e`` is always the same.
    """

    def __init__(self, samples: Sequence[tuple[str, int]], preprocess: Preprocess, seed: int = 0):
        self.samples = list(samples)
        self.preprocess = preprocess
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        path, label = self.samples[index]
        try:
            with open_image(path) as im:
                img = im.convert("RGB")  # forces decoding: truncated files fail here
        except (OSError, ValueError, SyntaxError) as e:
            return None, path, f"{type(e).__name__}: {e}"
        rng = random.Random(f"{self.seed}/{self.epoch}/{index}")
        return self.preprocess(img, rng), label, path


def first_readable(samples: Sequence[tuple[str, int]], where: str, tries: int = 100) -> str:
    """The first of ``samples`` that decodes (trying at most ``tries``): a training set whose
    images are all unreadable would otherwise train on empty batches with a loss of 0 (cheap
    when the data is good: one image is read)."""
    reason = ""
    for path, _ in samples[:tries]:
        try:
            with open_image(path) as im:
                im.convert("RGB")  # decodes: a truncated file fails here
            return path
        except (OSError, ValueError, SyntaxError) as e:
            reason = reason or f"{path}: {type(e).__name__}: {e}"
    n = min(len(samples), tries)
    raise ValueError(
        f"none of the first {n} training images in {where} can be read (the first: {reason}); "
        "nothing to train on"
    )


def collate_skip(batch):
    """Stack readable samples; returns ``(images, labels, skipped)`` with ``skipped`` a list of
    ``(path, reason)``. ``images`` is ``None`` when the whole batch was unreadable."""
    good = [b for b in batch if b[0] is not None]
    skipped = [(b[1], b[2]) for b in batch if b[0] is None]
    if not good:
        return None, None, skipped
    images = torch.stack([b[0] for b in good])
    labels = torch.tensor([b[1] for b in good], dtype=torch.long)
    return images, labels, skipped


class EpochSampler(Sampler[int]):
    """A seeded permutation per epoch, this rank's share of it, from batch ``start`` on.

    Training (``shuffle``) keeps whole global batches only (``drop_last``): every rank takes
    ``num_batches`` batches of ``batch_size``. Evaluation takes every item exactly once,
    ``rank::world``.
    """

    def __init__(
        self,
        n: int,
        batch_size: int,
        seed: int = 0,
        rank: int = 0,
        world: int = 1,
        shuffle: bool = True,
    ) -> None:
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.rank, self.world, self.shuffle = rank, world, shuffle
        self.epoch, self.start = 0, 0

    @property
    def num_batches(self) -> int:
        return self.n // (self.batch_size * self.world)

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.epoch, self.start = epoch, start_batch

    def indices(self) -> list[int]:
        if not self.shuffle:
            return list(range(self.rank, self.n, self.world))
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        perm = torch.randperm(self.n, generator=g).tolist()
        per_rank = self.num_batches * self.batch_size
        mine = perm[: per_rank * self.world][self.rank :: self.world]
        return mine[self.start * self.batch_size :]

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices())

    def __len__(self) -> int:
        return len(self.indices())


def make_loader(
    dataset: Dataset, sampler: EpochSampler, batch_size: int, workers: int, seed: int, pin: bool
) -> DataLoader:
    """A loader of ``(images, labels, skipped)`` batches in ``sampler``'s order.

    The loader's own generator seeds its workers, so creating an iterator draws nothing from the
    global RNG (dropout, drop path): a run resumed mid-epoch stays exact.
    """
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        collate_fn=collate_skip,
        pin_memory=pin,
        generator=torch.Generator().manual_seed(seed),
        drop_last=False,
        persistent_workers=False,
    )
