"""Datasets the children train on: CIFAR-10 from a local folder, scikit-learn's digits, or
crops of the built-in detection images.

Both return in-memory float tensors ``x [n, 3, S, S]`` (normalised) and int64 labels ``y [n]``
for a train and a held-out validation split; the reward is accuracy on the latter.

CIFAR-10 is read from torchvision's layout (``ROOT/cifar-10-batches-py/data_batch_1..5``); the
50k training images are split 45k/5k with a fixed permutation, as in the paper. The batches are
Python pickles, so they are read with an unpickler whose ``find_class`` admits only numpy's array
and dtype reconstructors (dicts, lists, bytes and strings are plain pickle opcodes): no other
class or function can be named, so no code runs. :func:`check_dataset` reads every batch once
before a search starts, so a wrong file is one error up front, not a failure in every child.
The digits dataset (1,797 8x8 images, shipped inside scikit-learn) is upscaled to ``S`` px and
copied to three channels: a search on it runs anywhere with no download.
``digit_crops`` are ``S`` px windows of the built-in detection domain (one handwritten digit pasted
on a crop of a real photograph, as :class:`nasnet_det.data.DigitCrops` renders them; a window of
``S / DIGIT_CROPS_SCALE`` image pixels, so the largest digits fit): harder than clean digits and
closer to what the detector sees, still offline. Train crops draw from the training digits, val
crops from the held-out ones (disjoint samples), each from its own fixed seed.
"""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "CIFAR_FILES",
    "DATASETS",
    "cached_dataset",
    "check_dataset",
    "digit_crops",
    "load_dataset",
]

CIFAR_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
_CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
_CIFAR_STD = (0.2470, 0.2435, 0.2616)

DATASETS = ("cifar10", "digits", "digit_crops")
DIGITS_SIZE = 1797  # images in scikit-learn's digits
DIGIT_CROPS_MAX = 100_000  # crops rendered per split at most
DIGIT_CROPS_SCALE = 2 / 3  # a 32 px crop shows a 48 px window: the largest digit sizes fit


class _NumpyOnlyUnpickler(pickle.Unpickler):
    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def _cifar_dir(root: str | os.PathLike) -> Path:
    root = Path(root)
    d = root if root.name == "cifar-10-batches-py" else root / "cifar-10-batches-py"
    if not d.is_dir():
        raise ValueError(
            f"CIFAR-10 folder {str(d)!r} does not exist; expected torchvision's "
            f"layout ROOT/cifar-10-batches-py/data_batch_1..5"
        )
    missing = [f for f in CIFAR_FILES if not (d / f).is_file()]
    if missing:
        raise ValueError(f"CIFAR-10 folder {str(d)!r} is incomplete: missing {missing}")
    return d


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        raw = _NumpyOnlyUnpickler(io.BytesIO(path.read_bytes()), encoding="latin1").load()
        data = np.asarray(raw["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        labels = np.asarray(raw["labels"], dtype=np.int64).reshape(-1)
    except Exception as e:  # noqa: BLE001 - any failure means the file is not a CIFAR batch
        why = " ".join(str(e).split()) or type(e).__name__
        raise ValueError(
            f"CIFAR-10 batch {str(path)!r} is corrupt or not a CIFAR batch "
            f"(a dict of 'data' uint8 [n, 3072] and 'labels'): {why}"
        ) from None
    if len(labels) != len(data) or not len(data):
        raise ValueError(f"CIFAR-10 batch {str(path)!r}: {len(data)} images, {len(labels)} labels")
    if labels.min() < 0 or labels.max() > 9:
        raise ValueError(f"CIFAR-10 batch {str(path)!r}: labels outside 0..9")
    return data, labels


def _resize(x: torch.Tensor, size: int) -> torch.Tensor:
    if x.shape[-1] == size:
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)


def _check_split(n: int, train_size: int, val_size: int, what: str) -> None:
    if train_size < 1 or val_size < 1 or train_size + val_size > n:
        raise ValueError(
            f"{what}: train_size + val_size must be positive and at most {n}, got "
            f"{train_size} + {val_size}"
        )


def _split(
    n: int, train_size: int, val_size: int, seed: int, what: str
) -> tuple[np.ndarray, np.ndarray]:
    _check_split(n, train_size, val_size, what)
    perm = np.random.default_rng(seed).permutation(n)
    # The validation images are fixed by the seed whatever the train subset size.
    return perm[val_size : val_size + train_size], perm[:val_size]


def check_dataset(
    name: str,
    root: str | None = None,
    train_size: int | None = None,
    val_size: int | None = None,
    **_: Any,
) -> None:
    """Fail early, before any child trains, on an unknown dataset, a missing, incomplete or
    corrupt CIFAR-10 folder, or splits larger than the data (one ``ValueError``)."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}")
    if name == "cifar10":
        if not root:
            raise ValueError(
                "data.root: the CIFAR-10 dataset needs the folder holding cifar-10-batches-py"
            )
        d = _cifar_dir(root)
        n = sum(len(_read_cifar_batch(d / f)[1]) for f in CIFAR_FILES)
        _check_split(n, train_size or 45000, val_size or 5000, "data (cifar10)")
    elif name == "digits":
        _check_split(DIGITS_SIZE, train_size or 1497, val_size or 300, "data (digits)")
    else:
        for key, v in (("train_size", train_size), ("val_size", val_size)):
            if v is not None and not 1 <= v <= DIGIT_CROPS_MAX:
                raise ValueError(
                    f"data (digit_crops): {key} must be in 1..{DIGIT_CROPS_MAX}, got {v}"
                )


def cached_dataset(data_cfg: dict) -> Any:
    """:func:`load_dataset` of ``data_cfg`` (the ``data:`` config section), loaded once per
    process: a worker trains many children on the same data."""
    key = repr(sorted(data_cfg.items()))
    if key not in _CACHE:
        _CACHE.clear()
        _CACHE[key] = load_dataset(**data_cfg)
    return _CACHE[key]


_CACHE: dict[str, Any] = {}


def load_dataset(
    name: str,
    root: str | None = None,
    image_size: int = 32,
    train_size: int | None = None,
    val_size: int | None = None,
    split_seed: int = 0,
) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """``((x_train, y_train), (x_val, y_val))`` for ``name`` in :data:`DATASETS`."""
    if name == "cifar10":
        if not root:
            raise ValueError(
                "data.root: the CIFAR-10 dataset needs the folder holding cifar-10-batches-py"
            )
        d = _cifar_dir(root)
        parts = [_read_cifar_batch(d / f) for f in CIFAR_FILES]
        images = np.concatenate([p[0] for p in parts])
        labels = np.concatenate([p[1] for p in parts])
        x = torch.from_numpy(images).float().div_(255.0)
        mean = torch.tensor(_CIFAR_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(_CIFAR_STD).view(1, 3, 1, 1)
        x = (x - mean) / std
        tr, va = _split(len(x), train_size or 45000, val_size or 5000, split_seed, "cifar10")
    elif name == "digits":
        from sklearn.datasets import load_digits

        ds = load_digits()
        x = torch.from_numpy(ds.images.astype(np.float32) / 16.0)[:, None]
        x = (x - 0.5) / 0.5
        x = x.expand(-1, 3, -1, -1).contiguous()
        labels = ds.target.astype(np.int64)
        tr, va = _split(len(x), train_size or 1497, val_size or 300, split_seed, "digits")
    elif name == "digit_crops":
        check_dataset(name, train_size=train_size, val_size=val_size)
        return digit_crops(image_size, train_size or 5000, val_size or 1000, split_seed)
    else:
        raise ValueError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}")
    y = torch.from_numpy(labels)
    tr_t, va_t = torch.from_numpy(tr), torch.from_numpy(va)
    # Resize only the selected images (the CIFAR subsets of proxies are small).
    return (
        (_resize(x[tr_t], image_size), y[tr_t]),
        (_resize(x[va_t], image_size), y[va_t]),
    )


def digit_crops(
    image_size: int, train_size: int, val_size: int, seed: int
) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """``train_size`` and ``val_size`` rendered crops of the detection domain (see the module
    docstring), normalised to [-1, 1]; the same arguments give the same tensors."""
    from nasnet_det.data import DigitCrops, DigitsSpec

    out = []
    for split, n, offset in (("train", train_size, 0), ("val", val_size, 1)):
        source = DigitCrops(DigitsSpec(), split, scale=DIGIT_CROPS_SCALE)
        images, labels = source.sample(n, image_size, np.random.default_rng([seed, offset]))
        x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)
        out.append((x.contiguous(), torch.from_numpy(labels)))
    return out[0], out[1]
