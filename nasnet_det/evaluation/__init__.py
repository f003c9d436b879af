"""COCO detection / instance-segmentation evaluation, as ``tools/eval_coco.py`` runs it.

Three steps, one module each:

1. :mod:`.inputs` loads GT (a COCO annotation file) and DT (a COCO results list, e.g. Detectron2's
   ``coco_instances_results.json``) and checks both before any evaluation work; every problem is
   one :class:`EvalInputError` line naming the first offending entry.
2. :mod:`.evaluator` runs the standard protocol through a backend of :mod:`.backends`
   (``pycocotools``, the reference, or ``faster-coco-eval``, same numbers), in one process or
   over groups of categories in several.
3. :mod:`.report` holds the result: the twelve pycocotools numbers, Detectron2's metric names on
   a 0-100 scale, a per-category table, ``metrics.json`` and precision-recall plots.

Importing this package loads numpy only; the backends and matplotlib load when used.
"""

from .backends import BACKENDS, available_backends, default_backend
from .evaluator import evaluate, evaluate_checked, evaluate_files, load_inputs, validate_inputs
from .inputs import IOU_TYPES, EvalInputError, GtIndex, load_json_file, validate_dt, validate_gt
from .report import STAT_KEYS, CocoEvalResult, plot_pr_curves

__all__ = [
    "BACKENDS",
    "IOU_TYPES",
    "STAT_KEYS",
    "CocoEvalResult",
    "EvalInputError",
    "GtIndex",
    "available_backends",
    "default_backend",
    "evaluate",
    "evaluate_checked",
    "evaluate_files",
    "load_inputs",
    "load_json_file",
    "plot_pr_curves",
    "validate_dt",
    "validate_gt",
    "validate_inputs",
]
