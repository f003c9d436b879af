"""Evaluation utilities: COCO detection/segmentation metrics (see ``coco_eval``)."""

from .coco_eval import (
    BACKENDS,
    IOU_TYPES,
    STAT_KEYS,
    CocoEvalResult,
    EvalInputError,
    available_backends,
    default_backend,
    evaluate,
    evaluate_files,
    load_json_file,
    plot_pr_curves,
    synthetic_coco,
    validate_dt,
    validate_gt,
)

__all__ = [
    "BACKENDS",
    "IOU_TYPES",
    "STAT_KEYS",
    "CocoEvalResult",
    "EvalInputError",
    "available_backends",
    "default_backend",
    "evaluate",
    "evaluate_files",
    "load_json_file",
    "plot_pr_curves",
    "synthetic_coco",
    "validate_dt",
    "validate_gt",
]
