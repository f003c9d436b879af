"""``add_nasnet_config(cfg)``: the ``MODEL.NASNET`` node of a Detectron2 config.

Only the registered builders read it (``build_nasnet_backbone``, ``build_nasnet_fpn_backbone``,
``NASNetROIHeads``); they translate it into :func:`nasnet_det.nasnet.build_nasnet` arguments.
"""

from __future__ import annotations

from detectron2.config import CfgNode as CN
from detectron2.config import get_cfg

from nasnet_det.genotypes import GENOTYPES, Genotype, get_genotype
from nasnet_det.nasnet import NASNetConfig, nasnet_config

__all__ = [
    "NORMS",
    "add_nasnet_config",
    "get_nasnet_cfg",
    "nasnet_config_from_cfg",
    "resolve_genotype",
]

#: Values accepted by ``MODEL.NASNET.NORM``.
NORMS = ("FrozenBN", "BN", "SyncBN", "GN")


def add_nasnet_config(cfg: CN) -> CN:
    """Add ``cfg.MODEL.NASNET`` (defaults: NASNet-A Mobile 4@1056, as the paper's detector).

    Idempotent: calling it twice leaves existing values alone. Returns ``cfg``.
    """
    if "NASNET" in cfg.MODEL:
        return cfg
    _C = cfg
    _C.MODEL.NASNET = CN()
    # Hyperparameter set of build_nasnet() that supplies what the keys below do not:
    # stem type, BN epsilon and average-pool padding ("nasnet_a_mobile" or "nasnet_a_large").
    _C.MODEL.NASNET.PRESET = "nasnet_a_mobile"
    # The cell pair: a registered genotype name ("nasnet_a") or a path to a genotype .json file
    # (e.g. written by the cell search), so a searched cell is one config line away.
    _C.MODEL.NASNET.GENOTYPE = "nasnet_a"
    # N: normal cells per stack (the network has 3 stacks; Mobile 4, Large 6).
    _C.MODEL.NASNET.NUM_CELLS = 4
    # TF-slim num_conv_filters; the penultimate width F is 24x this for NASNet-A
    # (Mobile 44 -> 1056, Large 168 -> 4032).
    _C.MODEL.NASNET.NUM_CONV_FILTERS = 44
    # Width multiplier of the 3x3 stem conv (32 x this filters; Mobile 1.0, Large 3.0).
    _C.MODEL.NASNET.STEM_MULTIPLIER = 1.0
    # The normal cell after a reduction reads the cell two steps back as its second input
    # (TF-slim skip_reduction_layer_input; True for Large).
    _C.MODEL.NASNET.SKIP_REDUCTION_LAYER_INPUT = False
    # ScheduledDropPath final keep probability (1.0 = off; the paper's Large detector uses 0.7).
    _C.MODEL.NASNET.DROP_PATH_KEEP_PROB = 1.0
    # Iterations over which drop path ramps up to DROP_PATH_KEEP_PROB; 0 means SOLVER.MAX_ITER.
    _C.MODEL.NASNET.DROP_PATH_TOTAL_STEPS = 0
    # Normalization of every cell and the stem: "FrozenBN" (the paper: moving averages of the
    # ImageNet checkpoint, frozen), "BN", "SyncBN" or "GN" (GroupNorm with gcd(32, C) groups).
    _C.MODEL.NASNET.NORM = "FrozenBN"
    # BN momentum (PyTorch convention, 1 - TF decay) when NORM is "BN" or "SyncBN".
    _C.MODEL.NASNET.BN_MOMENTUM = 0.1
    # How stride-2 average pools treat SAME padding: "tf" (TensorFlow: padding left out of the
    # average; Cadene's ports and our own pretraining), "timm" (counted, as timm's nasnetalarge
    # weights expect), or "" for the preset's choice (mobile "tf", large "timm"). Match the
    # checkpoint in MODEL.WEIGHTS.
    _C.MODEL.NASNET.POOL_PAD = ""
    # Freeze the first FREEZE_AT outputs of the backbone: 0 trains everything, 1 freezes the
    # stem conv, k > 1 also freezes the first k - 1 cells (cell_stem_0, cell_stem_1, cell_0, ...).
    # Frozen parts get FrozenBN whatever NORM says.
    _C.MODEL.NASNET.FREEZE_AT = 0
    # Backbone outputs. "nasnet_16": the paper's RPN map, the channel concat of the last two
    # cells of the middle stack (stride 16) for the C4-style detector. "c2".."c5": the last
    # cell output at stride 4, 8, 16, 32 (for FPN).
    _C.MODEL.NASNET.OUT_FEATURES = ["nasnet_16"]
    # Inference (tools/predict.py, train_net --eval-only, evaluation during training, export)
    # runs the detector with every eval/frozen BN folded into its conv and, on CPU, in
    # channels_last: the same detections up to float rounding, faster (docs/BENCHMARKS.md).
    # During training a folded copy is evaluated; the trained model is left alone. False: run
    # the model as built (tools/predict.py --no-fast-inference says the same).
    _C.MODEL.NASNET.FAST_INFERENCE = True
    return _add_dataset_config(cfg)


def _add_dataset_config(cfg: CN) -> CN:
    """``DATASETS.COCO_JSON`` and ``DATASETS.VOC`` (part of :func:`add_nasnet_config`)."""
    _C = cfg
    # Datasets registered from the config (nasnet_det.detection.datasets.register_from_config,
    # called by tools/train_net.py and tools/predict.py before anything runs), so that a custom
    # dataset needs no Python and the config.yaml dumped to OUTPUT_DIR re-creates the run. Each
    # entry is a list; the names then go into DATASETS.TRAIN / DATASETS.TEST. Relative paths are
    # relative to the working directory, as Detectron2's own "datasets/" folder is.
    # COCO format: [name, annotation json, image folder], e.g.
    #   COCO_JSON: [["trees_train", "datasets/trees/train.json", "datasets/trees/images"]]
    _C.DATASETS.COCO_JSON = []
    # Pascal VOC layout: [name, folder, image set, class names], the folder holding
    # Annotations/<id>.xml, JPEGImages/<id>.jpg|.jpeg|.png and ImageSets/Main/<image set>.txt;
    # the class names are comma separated ("Tree" or "cat,dog"), or "" to read one name a line
    # from <folder>/labels.txt. E.g.
    #   VOC: [["trees_val", "datasets/trees_voc", "val", "Tree"]]
    _C.DATASETS.VOC = []
    return cfg


def get_nasnet_cfg() -> CN:
    """Detectron2's default config plus ``MODEL.NASNET`` and the training options."""
    from nasnet_det.detection.training import add_training_config

    return add_training_config(add_nasnet_config(get_cfg()))


def resolve_genotype(cfg: CN) -> Genotype:
    """Read ``MODEL.NASNET.GENOTYPE`` once, where a run's config is made (the tools' and the
    demo's :func:`~nasnet_det.detection.engine.load_config`): a ``.json`` path is replaced by
    the genotype itself (:meth:`Genotype.inline`), so every later :func:`nasnet_config_from_cfg`
    (the config check, both detector halves, the checkpointer, the predictor) works from what
    was read here and the run's ``config.yaml`` records the cell, not a path."""
    n = cfg.MODEL.NASNET
    try:
        genotype = get_genotype(n.GENOTYPE)
    except ValueError as e:
        raise ValueError(f"MODEL.NASNET.GENOTYPE: {e}") from None
    if n.GENOTYPE not in GENOTYPES:
        n.GENOTYPE = genotype.inline()
    return genotype


def nasnet_config_from_cfg(cfg: CN) -> NASNetConfig:
    """The one translation of ``cfg.MODEL.NASNET`` into a :class:`NASNetConfig` (classifier off).

    The genotype is resolved here, once; everything downstream (both detector halves, the
    checkpointer, the weight converter) takes the returned object.
    """
    n = cfg.MODEL.NASNET
    if n.NORM not in NORMS:
        raise ValueError(f"MODEL.NASNET.NORM must be one of {', '.join(NORMS)}, got {n.NORM!r}")
    extra = {"pool_pad": n.POOL_PAD} if n.POOL_PAD else {}
    try:
        return nasnet_config(
            n.PRESET,
            **extra,
            genotype=n.GENOTYPE,
            num_cells=n.NUM_CELLS,
            num_conv_filters=n.NUM_CONV_FILTERS,
            stem_multiplier=float(n.STEM_MULTIPLIER),
            skip_reduction_layer_input=bool(n.SKIP_REDUCTION_LAYER_INPUT),
            drop_path_keep_prob=float(n.DROP_PATH_KEEP_PROB),
            bn_momentum=float(n.BN_MOMENTUM),
            num_classes=0,
            use_aux_head=False,
        )
    except ValueError as e:
        # "stem_multiplier must be ..." names its key: MODEL.NASNET.STEM_MULTIPLIER.
        field = str(e).split(" ", 1)[0]
        if field.upper() in n:
            raise ValueError(f"MODEL.NASNET.{field.upper()}{str(e)[len(field) :]}") from None
        raise ValueError(f"MODEL.NASNET: {e}") from None
