"""NASNet as a Detectron2 backbone: the first stage of the paper's Faster R-CNN, or FPN inputs.

The paper (TF Object Detection API, ``faster_rcnn_nas_feature_extractor.py``) cuts the network
after the last normal cell of the middle stack. The RPN map is the channel concat of the cells
that the second stage reads: the last two cells of that stack (stride 16). The second stage
(:class:`~nasnet_det.detection.roi_heads.NASNetROIHeads`) splits ROI crops of it back into
those hidden states. Both halves take their modules from one :func:`build_nasnet` model, so any
genotype and any ``N@F`` work and parameter names mirror the classification model
(``stem.*``, ``cells.{i}.*``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from detectron2.config import CfgNode
from detectron2.layers import FrozenBatchNorm2d, ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY, Backbone
from detectron2.modeling.backbone.fpn import FPN, LastLevelMaxPool
from torch import nn

from nasnet_det.detection.config import NORMS
from nasnet_det.drop_path import scheduled_keep_prob
from nasnet_det.nasnet import NASNet, build_nasnet

__all__ = [
    "C4_FEATURE",
    "FPN_FEATURES",
    "NASNetBackbone",
    "SecondStageLayout",
    "build_nasnet_backbone",
    "build_nasnet_fpn_backbone",
    "convert_norm",
    "nasnet_from_cfg",
    "second_stage_layout",
]

#: Name of the paper's RPN feature map (concat of the middle stack's last two cells).
C4_FEATURE = "nasnet_16"
#: Names of the last cell output at stride 4, 8, 16, 32 (FPN's C2..C5).
FPN_FEATURES = {"c2": 4, "c3": 8, "c4": 16, "c5": 32}


def nasnet_from_cfg(cfg: CfgNode) -> NASNet:
    """Build the classification-shaped :class:`NASNet` that ``cfg.MODEL.NASNET`` describes.

    Both detector halves take their modules from such a model; the classifier is left out.
    """
    n = cfg.MODEL.NASNET
    if n.NORM not in NORMS:
        raise ValueError(f"MODEL.NASNET.NORM must be one of {', '.join(NORMS)}, got {n.NORM!r}")
    extra = {}
    if n.POOL_PAD:
        extra["pool_pad"] = n.POOL_PAD
    return build_nasnet(
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


@dataclass(frozen=True)
class SecondStageLayout:
    """Where the paper's split falls in a :class:`NASNet`.

    ``start``: index of the first second-stage cell (the last reduction cell). ``inputs``: the
    output indices (stem = 0, cell ``i`` = ``i + 1``) that second-stage cells read from the first
    stage, in concat order; ``channels``: their widths; ``stride``: their common stride.
    """

    start: int
    inputs: tuple[int, ...]
    channels: tuple[int, ...]
    stride: int


def second_stage_layout(model: NASNet) -> SecondStageLayout:
    """Find the split for any genotype, N@F and skip_reduction_layer_input setting.

    The second stage starts at the last reduction cell. It reads the output before it and,
    through ``prev_index``, possibly older ones (with skip_reduction_layer_input the cell after
    the reduction reads the output two steps back): all of them go into the RPN concat.
    """
    reductions = [i for i, name in enumerate(model.cell_names) if name.startswith("reduction_cell")]
    if not reductions:
        raise ValueError("the network has no reduction cell to start the second stage at")
    start = reductions[-1]
    needed = {start}  # the reduction cell's current input: output `start` (cell start - 1)
    for i in range(start, len(model.cells)):
        p = model.prev_index[i]
        if p is not None and p <= start:
            needed.add(p)
    inputs = tuple(sorted(needed))
    strides = {model.feature_info[j]["reduction"] for j in inputs}
    if len(strides) != 1:
        raise ValueError(
            f"second-stage inputs {inputs} have different strides {sorted(strides)}; "
            "they cannot be concatenated into one RPN map"
        )
    channels = tuple(model.feature_info[j]["num_chs"] for j in inputs)
    return SecondStageLayout(start, inputs, channels, strides.pop())


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


class NASNetBackbone(Backbone):
    """The stem and the first cells of a :class:`NASNet`, returning named feature maps.

    Args:
        model: a NASNet (its classifier is ignored); its stem and cells are taken over.
        out_features: any of ``"nasnet_16"`` (the paper's RPN map, concat of the hidden states
            the second stage reads) and ``"c2"``..``"c5"`` (last output at stride 4..32).
        freeze_at: freeze the first ``freeze_at`` outputs (stem conv, then cells).
        drop_path_keep_prob: ScheduledDropPath's final keep probability.

    ``forward`` maps ``[N, 3, H, W]`` to ``{name: [N, C, ~H/s, ~W/s]}``; ``output_shape()``
    gives each name's channels and nominal stride.
    """

    def __init__(
        self,
        model: NASNet,
        out_features: Sequence[str] = (C4_FEATURE,),
        freeze_at: int = 0,
        drop_path_keep_prob: float = 1.0,
    ) -> None:
        super().__init__()
        if not out_features:
            raise ValueError("out_features must name at least one feature")
        info = model.feature_info
        self._feature_outputs: dict[str, tuple[int, ...]] = {}
        self._out_feature_channels: dict[str, int] = {}
        self._out_feature_strides: dict[str, int] = {}
        for name in out_features:
            if name == C4_FEATURE:
                layout = second_stage_layout(model)
                outs = layout.inputs
            elif name in FPN_FEATURES:
                at = [j for j, f in enumerate(info) if f["reduction"] == FPN_FEATURES[name]]
                if not at:
                    raise ValueError(f"the network has no output at stride {FPN_FEATURES[name]}")
                outs = (at[-1],)
            else:
                raise ValueError(
                    f"unknown NASNet feature {name!r}; expected {C4_FEATURE!r} or one of "
                    f"{', '.join(FPN_FEATURES)}"
                )
            self._feature_outputs[name] = outs
            self._out_feature_channels[name] = sum(info[j]["num_chs"] for j in outs)
            self._out_feature_strides[name] = info[outs[-1]]["reduction"]
        self._out_features = list(out_features)

        end = max(max(o) for o in self._feature_outputs.values())  # outputs 0..end are needed
        if not 0 <= freeze_at <= end + 1:
            raise ValueError(
                f"freeze_at must be in 0..{end + 1} for this backbone, got {freeze_at}"
            )
        self.stem = model.stem
        self.cells = nn.ModuleList(model.cells[:end])
        self.prev_index = list(model.prev_index[:end])
        self.cell_names = list(model.cell_names[:end])
        self.total_cells = len(model.cells)
        self.drop_path_keep_prob = drop_path_keep_prob
        # Last cell that reads each output, so forward can drop the rest early.
        wanted = {j for o in self._feature_outputs.values() for j in o}
        self._last_use = {j: (end if j in wanted else j) for j in range(end + 1)}
        for i, p in enumerate(self.prev_index):
            if p is not None:
                self._last_use[p] = max(self._last_use[p], i)
        if freeze_at >= 1:
            self.stem = _freeze(self.stem)
        for i in range(max(0, freeze_at - 1)):
            self.cells[i] = _freeze(self.cells[i])
        self.set_drop_path_progress(0.0)

    def set_drop_path_progress(self, progress: float) -> None:
        """ScheduledDropPath's ``t``; cells keep their classification-network indices."""
        for i, cell in enumerate(self.cells):
            cell.drop_path_keep_prob = scheduled_keep_prob(
                self.drop_path_keep_prob, i, self.total_cells, progress
            )

    @property
    def size_divisibility(self) -> int:
        # FPN's top-down sums need exact halvings; the C4 map does not care.
        return 32 if any(n in FPN_FEATURES for n in self._out_features) else 0

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        outs: dict[int, torch.Tensor] = {0: self.stem(x)}
        for i, cell in enumerate(self.cells):
            p = self.prev_index[i]
            outs[i + 1] = cell(outs[i], None if p is None else outs[p])
            for j in [j for j in outs if self._last_use[j] <= i]:
                del outs[j]
        return {
            name: outs[o[0]] if len(o) == 1 else torch.cat([outs[j] for j in o], 1)
            for name, o in self._feature_outputs.items()
        }

    def output_shape(self) -> dict[str, ShapeSpec]:
        return {
            name: ShapeSpec(
                channels=self._out_feature_channels[name],
                stride=self._out_feature_strides[name],
            )
            for name in self._out_features
        }


def _backbone_from_cfg(cfg: CfgNode, out_features: Sequence[str]) -> NASNetBackbone:
    n = cfg.MODEL.NASNET
    backbone = NASNetBackbone(
        nasnet_from_cfg(cfg),
        out_features=out_features,
        freeze_at=n.FREEZE_AT,
        drop_path_keep_prob=float(n.DROP_PATH_KEEP_PROB),
    )
    return convert_norm(backbone, n.NORM)


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
