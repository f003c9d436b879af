"""NASNet as a Detectron2 backbone: the first stage of the paper's Faster R-CNN, or FPN inputs.

The paper (TF Object Detection API, ``faster_rcnn_nas_feature_extractor.py``) cuts the network
after the last normal cell of the middle stack. The RPN map is the channel concat of the cells
that the second stage reads: the last two cells of that stack (stride 16). The second stage
(:class:`~nasnet_det.detection.roi_heads.NASNetROIHeads`) splits ROI crops of it back into
those hidden states. Each half builds only its own cells from one
:class:`~nasnet_det.nasnet.NASNetConfig` (the split comes from the layout arithmetic), so any
genotype and any ``N@F`` work and parameter names mirror the classification model
(``stem.*``, ``cells.{i}.*``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from detectron2.config import CfgNode
from detectron2.layers import FrozenBatchNorm2d, ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY, Backbone
from detectron2.modeling.backbone.fpn import FPN, LastLevelMaxPool
from torch import nn

from nasnet_det.detection.config import NORMS, nasnet_config_from_cfg
from nasnet_det.nasnet import NASNetConfig, build_cells, build_stem, plan_nasnet
from nasnet_det.ops import script_unused

__all__ = [
    "C4_FEATURE",
    "FPN_FEATURES",
    "InputMemoryFormat",
    "NASNetBackbone",
    "build_nasnet_backbone",
    "build_nasnet_fpn_backbone",
    "convert_norm",
    "nasnet_backbone",
]

#: Name of the paper's RPN feature map (concat of the middle stack's last two cells).
C4_FEATURE = "nasnet_16"
#: Names of the last cell output at stride 4, 8, 16, 32 (FPN's C2..C5).
FPN_FEATURES = {"c2": 4, "c3": 8, "c4": 16, "c5": 32}


def _group_norm(bn: nn.BatchNorm2d) -> nn.GroupNorm:
    # Cell widths need not divide by 32 (Mobile has 11-channel stem cells): use gcd groups.
    return nn.GroupNorm(math.gcd(32, bn.num_features), bn.num_features, eps=bn.eps)


def convert_norm(module: nn.Module, norm: str) -> nn.Module:
    """Replace every ``nn.BatchNorm2d`` inside ``module`` according to ``norm`` (see NORMS)."""
    if norm == "FrozenBN":
        return FrozenBatchNorm2d.convert_frozen_batchnorm(module)
    if norm == "BN":
        return module
    if norm == "SyncBN":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    if norm == "GN":
        if isinstance(module, nn.BatchNorm2d):
            return _group_norm(module)
        for name, child in module.named_children():
            new = convert_norm(child, norm)
            if new is not child:
                setattr(module, name, new)
        return module
    raise ValueError(f"norm must be one of {', '.join(NORMS)}, got {norm!r}")


def _freeze(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        p.requires_grad_(False)
    return FrozenBatchNorm2d.convert_frozen_batchnorm(module)


class InputMemoryFormat:
    """``input_memory_format``: the memory format a module brings its input to (channels_last:
    see :func:`nasnet_det.fuse.fuse_for_inference`). A scripted module takes its input as it
    comes: TorchScript has no memory-format attributes."""

    input_memory_format = torch.contiguous_format

    def _formatted(self, x: torch.Tensor) -> torch.Tensor:
        if torch.jit.is_scripting():
            return x
        return self._to_memory_format(x)

    @script_unused
    def _to_memory_format(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=self.input_memory_format)


class NASNetBackbone(InputMemoryFormat, Backbone):
    """The stem and the first cells of a NASNet, returning named feature maps.

    Args:
        cfg: the network (its classifier settings are ignored); only the stem and the cells up
            to the last requested output are built.
        out_features: any of ``"nasnet_16"`` (the paper's RPN map, concat of the hidden states
            the second stage reads) and ``"c2"``..``"c5"`` (last output at stride 4..32).
        freeze_at: freeze the first ``freeze_at`` outputs (stem conv, then cells).

    ``forward`` maps ``[N, 3, H, W]`` to ``{name: [N, C, ~H/s, ~W/s]}``; ``output_shape()``
    gives each name's channels and nominal stride.
    """

    def __init__(
        self, cfg: NASNetConfig, out_features: Sequence[str] = (C4_FEATURE,), freeze_at: int = 0
    ) -> None:
        super().__init__()
        if not out_features:
            raise ValueError("out_features must name at least one feature")
        layout = plan_nasnet(cfg)
        info = layout.feature_info
        # Lists, not tuples: TorchScript types a dict's values alike (1 or 2 outputs a name).
        self._feature_outputs = {
            name: list(_feature_outputs(name, layout)) for name in out_features
        }
        self._out_feature_channels = {
            name: sum(info[j]["num_chs"] for j in outs)
            for name, outs in self._feature_outputs.items()
        }
        self._out_feature_strides = {
            name: info[outs[-1]]["reduction"] for name, outs in self._feature_outputs.items()
        }
        self._out_features = list(out_features)
        end = max(max(o) for o in self._feature_outputs.values())  # outputs 0..end are needed
        if not 0 <= freeze_at <= end + 1:
            raise ValueError(
                f"freeze_at must be in 0..{end + 1} for this backbone, got {freeze_at}"
            )
        self.stem = build_stem(cfg, layout)
        self.cells = build_cells(cfg, layout, range(end))
        self.cell_names = [c.name for c in layout.cells[:end]]
        self._keep = sorted({j for o in self._feature_outputs.values() for j in o})
        # FPN's top-down sums need exact halvings; the C4 map does not care.
        self._size_divisibility = 32 if any(n in FPN_FEATURES for n in out_features) else 0
        if freeze_at >= 1:
            self.stem = _freeze(self.stem)
        for i in range(max(0, freeze_at - 1)):
            self.cells[i] = _freeze(self.cells[i])

    @property
    def size_divisibility(self) -> int:
        return self._size_divisibility

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self._formatted(x)
        outs = self.cells({0: self.stem(x)}, keep=self._keep)
        features: dict[str, torch.Tensor] = {}  # a loop, not a comprehension: TorchScript
        for name, o in self._feature_outputs.items():
            features[name] = outs[o[0]] if len(o) == 1 else torch.cat([outs[j] for j in o], 1)
        return features

    def output_shape(self) -> dict[str, ShapeSpec]:
        return {
            name: ShapeSpec(
                channels=self._out_feature_channels[name],
                stride=self._out_feature_strides[name],
            )
            for name in self._out_features
        }


def _feature_outputs(name: str, layout) -> tuple[int, ...]:
    """The output indices a feature name stands for (several for the concat ``nasnet_16``)."""
    if name == C4_FEATURE:
        return layout.second_stage_split().inputs
    if name in FPN_FEATURES:
        at = [j for j, f in enumerate(layout.feature_info) if f["reduction"] == FPN_FEATURES[name]]
        if not at:
            raise ValueError(f"the network has no output at stride {FPN_FEATURES[name]}")
        return (at[-1],)
    raise ValueError(
        f"unknown NASNet feature {name!r}; expected {C4_FEATURE!r} or one of "
        f"{', '.join(FPN_FEATURES)}"
    )


def nasnet_backbone(
    *,
    nasnet: NASNetConfig,
    out_features: Sequence[str] = (C4_FEATURE,),
    freeze_at: int = 0,
    norm: str = "FrozenBN",
) -> NASNetBackbone:
    """A :class:`NASNetBackbone` with its batch norms converted to ``norm`` (see NORMS): what
    ``MODEL.NASNET`` builds, by keyword (the LazyConfig configs call it)."""
    backbone = NASNetBackbone(nasnet, out_features=out_features, freeze_at=freeze_at)
    return convert_norm(backbone, norm)


def _backbone_from_cfg(cfg: CfgNode, out_features: Sequence[str]) -> NASNetBackbone:
    return nasnet_backbone(
        nasnet=nasnet_config_from_cfg(cfg),
        out_features=out_features,
        freeze_at=cfg.MODEL.NASNET.FREEZE_AT,
        norm=cfg.MODEL.NASNET.NORM,
    )


@BACKBONE_REGISTRY.register()
def build_nasnet_backbone(cfg: CfgNode, input_shape: ShapeSpec) -> NASNetBackbone:
    """``MODEL.BACKBONE.NAME: build_nasnet_backbone``: the paper's first stage (C4-style)."""
    if input_shape.channels != 3:
        raise ValueError(f"NASNet expects 3 input channels, got {input_shape.channels}")
    return _backbone_from_cfg(cfg, cfg.MODEL.NASNET.OUT_FEATURES)


@BACKBONE_REGISTRY.register()
def build_nasnet_fpn_backbone(cfg: CfgNode, input_shape: ShapeSpec) -> FPN:
    """``MODEL.BACKBONE.NAME: build_nasnet_fpn_backbone``: Detectron2's FPN over NASNet cells.

    ``MODEL.NASNET.OUT_FEATURES`` picks the bottom-up maps (e.g. ``["c2", "c3", "c4", "c5"]``);
    ``MODEL.FPN.*`` configures the pyramid as for ResNet-FPN, with a max-pooled P6.
    """
    if input_shape.channels != 3:
        raise ValueError(f"NASNet expects 3 input channels, got {input_shape.channels}")
    features = list(cfg.MODEL.NASNET.OUT_FEATURES)
    bad = [f for f in features if f not in FPN_FEATURES]
    if bad:
        raise ValueError(
            f"MODEL.NASNET.OUT_FEATURES for FPN must be among {', '.join(FPN_FEATURES)}, got {bad}"
        )
    bottom_up = _backbone_from_cfg(cfg, features)
    return FPN(
        bottom_up=bottom_up,
        in_features=cfg.MODEL.FPN.IN_FEATURES,
        out_channels=cfg.MODEL.FPN.OUT_CHANNELS,
        norm=cfg.MODEL.FPN.NORM,
        top_block=LastLevelMaxPool(),
        fuse_type=cfg.MODEL.FPN.FUSE_TYPE,
    )
