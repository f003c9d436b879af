"""Datasets registered with Detectron2 on ``import nasnet_det.detection``.

``nasnet_digits_train``, ``nasnet_digits_val`` and ``nasnet_digits_val_mini`` (16 val images):
handwritten digits on real photographs (see :mod:`nasnet_det.data.digits`), generated on
first use into ``$NASNET_DET_CACHE`` or ``./datasets/nasnet_digits``. Real COCO is registered by
Detectron2 itself (``coco_2017_train`` etc. under ``$DETECTRON2_DATASETS``).
"""

from __future__ import annotations

import os
from pathlib import Path

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets import load_coco_json

from nasnet_det.data import CLASSES, SPLITS, DigitsSpec, build_digits_dataset, default_root

__all__ = ["register_nasnet_digits"]


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
        )
    return names


register_nasnet_digits()
