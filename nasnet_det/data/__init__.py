"""Built-in data that needs no download: the digits detection set (:mod:`.digits`).

Registering it with Detectron2 (``nasnet_digits_train`` etc.) happens in
:mod:`nasnet_det.detection.datasets`, on ``import nasnet_det.detection``.
"""

from nasnet_det.data.digits import (
    CLASSES,
    SPLITS,
    DigitCrops,
    DigitsSpec,
    build_digits_dataset,
    centred_window,
    default_root,
    digit_pool,
)

__all__ = [
    "CLASSES",
    "SPLITS",
    "DigitCrops",
    "DigitsSpec",
    "build_digits_dataset",
    "centred_window",
    "default_root",
    "digit_pool",
]
