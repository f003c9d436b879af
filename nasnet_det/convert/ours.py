"""Our own pretraining checkpoints (``nasnet_det.pretrain``) to a plain model checkpoint.

A training checkpoint stores the builder call (``arch``: preset plus overrides, the genotype
inlined) and both the raw and the EMA weights; the EMA weights are exported by default, as
TF-slim evaluates its moving averages.

``convert(state_dict, arch)`` serves the generic path (a bare state dict of a preset
architecture); :func:`convert_checkpoint` takes the whole training checkpoint.
"""

from __future__ import annotations

from typing import Any

import torch

from nasnet_det.convert import Converted, check_against_model
from nasnet_det.genotypes import Genotype
from nasnet_det.nasnet import PRESETS

__all__ = ["ARCHS", "convert", "convert_checkpoint", "is_training_checkpoint"]

ARCHS = tuple(sorted(PRESETS))


class OursConverted(Converted):
    """:class:`Converted` whose overrides may hold a genotype dict (searched cells), and which
    records the evaluation preprocessing the network was trained for."""

    preprocessing: dict[str, Any] | None = None

    def meta(self) -> dict[str, Any]:
        meta = super().meta()
        if self.preprocessing:
            meta["preprocessing"] = self.preprocessing
        return meta

    def build_model(self):
        from nasnet_det.nasnet import build_nasnet

        overrides = dict(self.overrides)
        if isinstance(overrides.get("genotype"), dict):
            overrides["genotype"] = Genotype.from_dict(overrides["genotype"], "checkpoint genotype")
        return build_nasnet(self.preset, **overrides)


def is_training_checkpoint(obj: Any) -> bool:
    return isinstance(obj, dict) and isinstance(obj.get("arch"), dict) and "model" in obj


def convert(state_dict: dict[str, torch.Tensor], arch: str) -> Converted:
    """A bare state dict of ``build_nasnet(arch)`` (classes and aux head read from its keys)."""
    if "classifier.weight" not in state_dict:
        raise ValueError(
            "expected a nasnet_det state dict with 'classifier.weight'; got keys like "
            + ", ".join(list(state_dict)[:3])
        )
    overrides = {
        "num_classes": int(state_dict["classifier.weight"].shape[0]),
        "use_aux_head": any(k.startswith("aux_head.") for k in state_dict),
    }
    out = OursConverted(dict(state_dict), arch, overrides)
    check_against_model(out.state_dict, out.build_model(), f"nasnet_det {arch} checkpoint")
    return out


def convert_checkpoint(obj: dict[str, Any], ema: bool = True, arch: str | None = None) -> Converted:
    """Weights of a training checkpoint (EMA by default) with the builder call it stores.

    ``arch``, if given, must be the checkpoint's preset (guards against exporting the wrong
    network).
    """
    if not is_training_checkpoint(obj):
        raise ValueError(
            "not a nasnet_det training checkpoint (expected 'arch' and 'model' entries, as "
            "written by tools/pretrain_imagenet.py)"
        )
    spec = obj["arch"]
    if arch is not None and arch != spec["preset"]:
        raise ValueError(f"checkpoint holds a {spec['preset']!r} network, not {arch!r}")
    key = "ema" if ema else "model"
    if key not in obj:
        raise ValueError(f"training checkpoint has no {key!r} weights")
    out = OursConverted(
        {k: v for k, v in obj[key].items() if isinstance(v, torch.Tensor)},
        spec["preset"],
        dict(spec["overrides"]),
        source=f"nasnet_det:{spec['preset']}",
    )
    out.preprocessing = preprocessing(obj)
    check_against_model(out.state_dict, out.build_model(), f"nasnet_det checkpoint ({key})")
    return out


def preprocessing(obj: dict[str, Any]) -> dict[str, Any] | None:
    """The evaluation preprocessing a training checkpoint was trained for."""
    data = obj.get("config", {}).get("data") if isinstance(obj.get("config"), dict) else None
    if not data:
        return None
    keys = ("image_size", "crop_pct", "interpolation", "mean", "std")
    return {k: data[k] for k in keys if k in data}


#: The model-zoo detection config of each preset (``--for detectron2`` without ``--det-config``).
DETECTION_CONFIGS = {
    "nasnet_a_mobile": "COCO-Detection/faster_rcnn_nasnet_a_mobile_1x.yaml",
    "nasnet_a_large": "COCO-Detection/faster_rcnn_nasnet_a_large_1x.yaml",
}


def to_detectron2(conv: Converted, config_file: str | None = None):
    """Rename converted classification weights for the NASNet Faster R-CNN.

    Without ``config_file`` the preset's model-zoo config is used, with ``MODEL.NASNET`` set to
    the weights' N@F; with one, its ``MODEL.NASNET`` must describe the same network. Returns
    ``(state_dict, cfg)``: the state dict uses the detector's names (backbone and second
    stage), as :func:`nasnet_det.detection.checkpoint.classification_to_detectron2` maps them.
    """
    from nasnet_det import model_zoo
    from nasnet_det.detection.backbone import nasnet_from_cfg
    from nasnet_det.detection.checkpoint import classification_to_detectron2
    from nasnet_det.detection.config import get_nasnet_cfg
    from nasnet_det.genotypes import GENOTYPES

    cfg = get_nasnet_cfg()
    if config_file is not None:
        try:
            cfg.merge_from_file(config_file)
        except (OSError, KeyError, AssertionError, ValueError) as e:
            raise ValueError(f"detection config {config_file!r} could not be read: {e}") from None
    else:
        if conv.preset not in DETECTION_CONFIGS:
            raise ValueError(
                f"no detection config for preset {conv.preset!r}; pass a Detectron2 config "
                "(--det-config)"
            )
        cfg.merge_from_file(model_zoo.get_config_file(DETECTION_CONFIGS[conv.preset]))
        model = conv.build_model()
        c = model.config
        cells = lambda g: (g.normal, g.normal_concat, g.reduce, g.reduce_concat)  # noqa: E731
        names = [n for n, g in GENOTYPES.items() if cells(g) == cells(model.genotype)]
        if not names:
            raise ValueError(
                "the weights use an unregistered genotype: pass a Detectron2 config whose "
                "MODEL.NASNET.GENOTYPE points to its .json file (--det-config)"
            )
        n = cfg.MODEL.NASNET
        n.PRESET, n.GENOTYPE = conv.preset, names[0]
        n.NUM_CELLS, n.NUM_CONV_FILTERS = c.num_cells, c.num_conv_filters
        n.STEM_MULTIPLIER = float(c.stem_multiplier)
        n.SKIP_REDUCTION_LAYER_INPUT = bool(c.skip_reduction_layer_input)
    trunk = {
        k: v for k, v in conv.state_dict.items() if not k.startswith(("classifier.", "aux_head."))
    }  # noqa: E501
    check_against_model(trunk, nasnet_from_cfg(cfg), "weights for the detection config")
    out = classification_to_detectron2(conv.state_dict, cfg)
    # detectron2 >= 0.7's FrozenBatchNorm2d.convert_frozen_batchnorm keeps num_batches_tracked,
    # which the mapping drops for FrozenBN: put the counters back wherever the running
    # statistics went, so the detector reports no missing keys.
    prefixes = ("backbone.", "backbone.bottom_up.", "roi_heads.second_stage.")
    for key, value in conv.state_dict.items():
        if key.endswith(".num_batches_tracked"):
            stats = key[: -len("num_batches_tracked")] + "running_mean"
            for prefix in prefixes:
                if prefix + stats in out and prefix + key not in out:
                    out[prefix + key] = value
    return out, cfg
