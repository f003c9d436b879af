"""Our presets as timm models: ``import nasnet_det.timm`` registers them with ``timm.create_model``.

After the import, ``timm.create_model("nasnet_a_mobile" | "nasnet_a_large" | "nasnet_a_cifar",
pretrained=..., features_only=..., out_indices=..., num_classes=..., ...)`` builds a
:class:`~nasnet_det.nasnet.NASNet` through timm's own builder, so everything timm does with a
model (feature extraction through ``forward_intermediates``, classifier reset, input-channel
adaptation of pretrained weights, layer-decay groups, its training script) works on ours.

``pretrained=True`` resolves the preset's published weights through :mod:`nasnet_det.convert.hub`
(``nasnet://pretrainedmodels/nasnetamobile``, ``nasnet://timm/nasnetalarge``): downloaded once
and converted into the cache, or a file placed there by hand; without network the error names the
URL and where to place the file. ``pretrained_cfg_overlay=dict(file=PATH)`` loads a converted
checkpoint of ours instead. ``features_only=True`` returns the last output at each stride by
default (stem, ``cell_stem_0`` and the last cell before each reduction, as timm's
``nasnetalarge``); ``out_indices`` index :attr:`NASNet.feature_info` (the stem and every cell).

timm's keyword names map to ours: ``drop_rate`` (head dropout), ``drop_path_rate`` (1 - the
ScheduledDropPath keep probability), ``img_size``; any :class:`NASNetConfig` field is accepted as
well. The auxiliary head is off unless ``use_aux_head=True`` (timm's training script expects one
output).
"""

from __future__ import annotations

import functools
from dataclasses import fields
from typing import Any

import torch
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model

from nasnet_det.convert.hub import declared, parse_weight_name, resolve_weights_path
from nasnet_det.nasnet import (
    NASNet,
    NASNetConfig,
    default_pretrained_cfg,
    nasnet_config,
    plan_nasnet,
)

__all__ = ["PRETRAINED_WEIGHTS", "create_nasnet", "default_out_indices"]

#: The published weights each preset loads with ``pretrained=True`` (timm tag: the source).
PRETRAINED_WEIGHTS = {
    "nasnet_a_mobile": "nasnet://pretrainedmodels/nasnetamobile",
    "nasnet_a_large": "nasnet://timm/nasnetalarge",
}


def _cfg(preset: str, weights: str | None) -> dict[str, Any]:
    cfg = default_pretrained_cfg(nasnet_config(preset))
    if weights is not None:
        decl = declared(*parse_weight_name(weights))
        cfg.update(
            url=weights, input_size=decl.input_size, mean=decl.mean, std=decl.std,
            interpolation=decl.interpolation, crop_pct=decl.crop_pct,
            num_classes=decl.num_classes,
        )  # fmt: skip
    return cfg


default_cfgs = generate_default_cfgs(
    {
        "nasnet_a_mobile.pretrainedmodels_in1k": _cfg(
            "nasnet_a_mobile", PRETRAINED_WEIGHTS["nasnet_a_mobile"]
        ),
        "nasnet_a_large.timm_in1k": _cfg("nasnet_a_large", PRETRAINED_WEIGHTS["nasnet_a_large"]),
        "nasnet_a_cifar": _cfg("nasnet_a_cifar", None),
    }
)


def _timm_overrides(kwargs: dict[str, Any]) -> dict[str, Any]:
    """timm's keyword names to :class:`NASNetConfig` fields (the others pass unchanged)."""
    out = dict(kwargs)
    if (rate := out.pop("drop_rate", None)) is not None:
        out["dense_dropout_keep_prob"] = 1.0 - float(rate)
    if (rate := out.pop("drop_path_rate", None)) is not None:
        out["drop_path_keep_prob"] = 1.0 - float(rate)
    if (size := out.pop("img_size", None)) is not None:
        out["image_size"] = size if isinstance(size, int) else int(size[-1])
    out.setdefault("use_aux_head", False)
    return out


def _build(preset: str, device: Any = None, dtype: Any = None, **kwargs: Any) -> NASNet:
    model = NASNet(nasnet_config(preset, **_timm_overrides(kwargs)))
    return model.to(device=device, dtype=dtype) if device or dtype else model


def default_out_indices(preset: str, **kwargs: Any) -> tuple[int, ...]:
    """The ``features_only`` default: the last output at each stride (indices of
    ``feature_info``)."""
    info = plan_nasnet(nasnet_config(preset, **_timm_overrides(kwargs))).feature_info
    last: dict[int, int] = {}
    for j, f in enumerate(info):
        last[f["reduction"]] = j
    return tuple(sorted(last.values()))


def _filter(state_dict: dict[str, torch.Tensor], model: NASNet) -> dict[str, torch.Tensor]:
    # Our converted checkpoints carry no auxiliary head; a model asked to have one keeps its
    # fresh initialisation (timm loads the rest strictly).
    if model.aux_head is not None:
        state_dict = dict(state_dict)
        for k, v in model.state_dict().items():
            if k.startswith("aux_head."):
                state_dict.setdefault(k, v)
    return state_dict


def create_nasnet(preset: str, pretrained: bool = False, **kwargs: Any) -> NASNet:
    """timm's entry for ``preset`` (what ``timm.create_model(preset, ...)`` calls)."""
    overlay = dict(kwargs.pop("pretrained_cfg_overlay", None) or {})
    if pretrained and not overlay.get("file"):
        if preset not in PRETRAINED_WEIGHTS:
            raise ValueError(
                f"{preset} has no published weights; pretrained=True needs one of "
                f"{sorted(PRETRAINED_WEIGHTS)} or pretrained_cfg_overlay=dict(file=PATH)"
            )
        overlay["file"] = resolve_weights_path(PRETRAINED_WEIGHTS[preset])
    arch = {k: v for k, v in kwargs.items() if k in _ARCH_KEYS}
    feature_cfg = dict(feature_cls="getter", out_indices=default_out_indices(preset, **arch))
    return build_model_with_cfg(
        functools.partial(_build, preset), preset, pretrained,
        pretrained_cfg_overlay=overlay or None, feature_cfg=feature_cfg,
        pretrained_filter_fn=_filter, **kwargs,
    )  # fmt: skip


#: Keywords that change the network's layout (the others go to timm's builder or the head).
_ARCH_KEYS = {f.name for f in fields(NASNetConfig)} - {"num_classes", "global_pool"} | {"img_size"}


@register_model
def nasnet_a_mobile(pretrained: bool = False, **kwargs: Any) -> NASNet:
    """NASNet-A Mobile (4@1056), ImageNet 224 px; weights: pretrainedmodels' nasnetamobile."""
    return create_nasnet("nasnet_a_mobile", pretrained, **kwargs)


@register_model
def nasnet_a_large(pretrained: bool = False, **kwargs: Any) -> NASNet:
    """NASNet-A Large (6@4032), ImageNet 331 px; weights: timm's nasnetalarge."""
    return create_nasnet("nasnet_a_large", pretrained, **kwargs)


@register_model
def nasnet_a_cifar(pretrained: bool = False, **kwargs: Any) -> NASNet:
    """NASNet-A CIFAR-10 (6@768), 32 px; no published weights."""
    return create_nasnet("nasnet_a_cifar", pretrained, **kwargs)
