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
from nasnet_det.nasnet import PRESETS

__all__ = [
    "ARCHS",
    "PRETRAINED",
    "convert",
    "convert_checkpoint",
    "is_training_checkpoint",
    "preprocessing",
]

ARCHS = tuple(sorted(PRESETS))


#: Our own weights are not published: a training checkpoint carries its preprocessing (its
#: ``config.data``), and the recipe's defaults fill in what it lacks (:func:`preprocessing`).
PRETRAINED: dict = {}


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
    out = Converted(dict(state_dict), arch, overrides)
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
    out = Converted(
        {k: v for k, v in obj[key].items() if isinstance(v, torch.Tensor)},
        spec["preset"],
        dict(spec["overrides"]),
        source=f"nasnet_det:{spec['preset']}",
        preprocessing=preprocessing(spec["preset"], dict(spec["overrides"]), obj),
    )
    check_against_model(out.state_dict, out.build_model(), f"nasnet_det checkpoint ({key})")
    return out


def preprocessing(
    preset: str, overrides: dict[str, Any], obj: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The evaluation preprocessing of our ``preset`` network: what a training checkpoint
    ``obj`` stores (its ``config.data``) over the pretraining recipe's defaults, at the
    network's own image size unless the checkpoint says otherwise."""
    from nasnet_det.pretrain.config import get_cfg  # the recipe declares it (lazy: fvcore)

    keys = ("image_size", "crop_pct", "interpolation", "mean", "std")
    recipe = get_cfg().data
    size = overrides.get("image_size") or (PRESETS[preset].image_size if preset in PRESETS else 0)
    out = {k: recipe[k] for k in keys} | {"image_size": int(size or recipe.image_size)}
    config = obj.get("config") if isinstance(obj, dict) else None
    data = config.get("data") if isinstance(config, dict) else None
    if isinstance(data, dict):
        out |= {k: data[k] for k in keys if k in data}
    return {k: list(v) if isinstance(v, (list, tuple)) else v for k, v in out.items()}
