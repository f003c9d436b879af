"""A tiny ImageNet-layout dataset of generated PNG files, and the instant_test config."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
INSTANT = ROOT / "configs/ImageNet/instant_test.yaml"


def make_dataset(root: Path, classes: int = 3, train: int = 8, val: int = 2) -> Path:
    """``root/train/class{c}/{i}.png`` and ``root/val/...``; each class has its own colour."""
    rng = np.random.default_rng(0)
    for split, n in (("train", train), ("val", val)):
        for c in range(classes):
            d = root / split / f"class{c}"
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                h, w = 40 + 8 * c, 48 + 4 * i
                img = rng.random((h, w, 3)) * 60
                img[..., c % 3] += 150
                Image.fromarray(img.astype(np.uint8)).save(d / f"{i}.png")
    return root


@pytest.fixture
def dataset(tmp_path) -> Path:
    return make_dataset(tmp_path / "data")


@pytest.fixture
def make_data():
    return make_dataset
