"""NASNet: copies of a searched cell pair stacked into a network of any size (``N@F``).

:func:`build_nasnet` is the entry point; the presets reproduce TF-slim's ``nasnet.py`` hyper-
parameter sets. The module offers timm's surface (``forward_features``, ``forward_head``,
``feature_info``) so detection can cut it after any cell.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from nasnet_det.cells import Cell, CellStack, cell_out_channels
from nasnet_det.genotypes import NASNET_A, Genotype, get_genotype
from nasnet_det.ops import OpConfig, SameConv2d

__all__ = [
    "CellPlan",
    "GLOBAL_POOLS",
    "GlobalPool",
    "NASNet",
    "NASNetConfig",
    "NASNetLayout",
    "NASNetOutput",
    "PRESETS",
    "SecondStageSplit",
    "build_cells",
    "build_nasnet",
    "build_stem",
    "default_pretrained_cfg",
    "list_presets",
    "nasnet_config",
    "plan_nasnet",
    "take_indices",
]


#: The head's global pooling, by timm's names: output width as a multiple of ``num_features``
#: (``""``: no pooling, the head returns the feature map).
GLOBAL_POOLS = {"avg": 1, "max": 1, "avgmax": 1, "catavgmax": 2, "": 1}


@dataclass(frozen=True)
class NASNetConfig:
    """Every argument of :class:`NASNet` (checkpoints store it, presets are instances of it).

    ``genotype`` is resolved on construction: a :class:`Genotype`, a registered name, a ``.json``
    path or an inline dict all become the :class:`Genotype` object, so the config alone rebuilds
    the network (:meth:`to_dict` writes the genotype inline). ``num_cells`` is N, the normal cells
    per stack (the network has 3N normal cells); ``num_conv_filters`` is TF-slim's: the
    penultimate width is F = 24 x num_conv_filters for NASNet-A.
    """

    genotype: Genotype = NASNET_A
    num_cells: int = 4
    num_conv_filters: int = 44
    stem: str = "imagenet"  # "imagenet" (3x3/2 conv + two reduction cells) or "cifar"
    stem_multiplier: float = 1.0
    filter_scaling_rate: float = 2.0
    num_reduction_layers: int = 2
    skip_reduction_layer_input: bool = False
    num_classes: int = 1000
    use_aux_head: bool = True
    dense_dropout_keep_prob: float = 0.5
    drop_path_keep_prob: float = 1.0
    image_size: int = 224  # fixes the aux head's last conv (it spans the whole feature map)
    in_chans: int = 3
    bn_eps: float = 1e-3
    bn_momentum: float = 0.0003
    pool_pad: str = "tf"
    global_pool: str = "avg"  # the head's pooling (timm's names; "" keeps the feature map)

    def __post_init__(self) -> None:
        object.__setattr__(self, "genotype", get_genotype(self.genotype))
        if self.global_pool not in GLOBAL_POOLS:
            raise ValueError(
                f"global_pool must be one of {sorted(GLOBAL_POOLS)}, got {self.global_pool!r}"
            )
        if self.pool_pad not in ("tf", "timm"):
            raise ValueError(f"pool_pad must be 'tf' or 'timm', got {self.pool_pad!r}")
        if self.stem not in ("imagenet", "cifar"):
            raise ValueError(f"stem must be 'imagenet' or 'cifar', got {self.stem!r}")
        for key in ("num_cells", "num_conv_filters", "num_classes", "image_size", "in_chans"):
            v = getattr(self, key)
            if (
                isinstance(v, bool)
                or not isinstance(v, int)
                or v < (0 if key == "num_classes" else 1)
            ):
                raise ValueError(f"{key} must be a positive integer, got {v!r}")
        _check_limits(self)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values; the genotype inline (see :meth:`Genotype.to_dict`)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["genotype"] = self.genotype.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "NASNet config") -> NASNetConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error naming them."""
        if not isinstance(data, dict):
            raise ValueError(f"{source}: expected a mapping, got {type(data).__name__}")
        _check_fields(data, f"{source}: unknown key(s)")
        return cls(**data)


#: Upper bounds where memory follows from a value (a 1e308 multiplier is a typo, not a model).
MAX_IMAGE_SIZE = 16384
MAX_CELLS = 1000
MAX_FILTERS = 1 << 16


def _check_limits(cfg: NASNetConfig) -> None:
    """Types and ranges of the numeric and boolean fields; one ``ValueError`` naming the field."""

    def number(key: str, ok: Callable[[float], bool], expected: str) -> None:
        v = getattr(cfg, key)
        good = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
        if not (good and ok(v)):
            raise ValueError(f"{key} must be {expected}, got {v!r}")

    for key, top in (("num_cells", MAX_CELLS), ("num_conv_filters", MAX_FILTERS),
                     ("image_size", MAX_IMAGE_SIZE)):  # fmt: skip
        number(key, lambda v, top=top: v <= top, f"a positive integer <= {top}")
    number("stem_multiplier", lambda v: 0 < v and v * 32 <= MAX_FILTERS,
           f"a number in (0, {MAX_FILTERS // 32}]")  # fmt: skip
    number("filter_scaling_rate", lambda v: 0 < v <= 16, "a number in (0, 16]")
    for key in ("drop_path_keep_prob", "dense_dropout_keep_prob"):
        number(key, lambda v: 0.0 < v <= 1.0, "in (0, 1]")
    number("num_reduction_layers", lambda v: isinstance(v, int) and 0 <= v <= 16,
           "an integer in [0, 16]")  # fmt: skip
    for key in ("bn_eps", "bn_momentum"):
        number(key, lambda v: 0 <= v <= 1, "a number in [0, 1]")
    for key in ("use_aux_head", "skip_reduction_layer_input"):
        if not isinstance(getattr(cfg, key), bool):
            raise ValueError(f"{key} must be true or false, got {getattr(cfg, key)!r}")


def _check_fields(names: Any, what: str) -> None:
    known = {f.name for f in fields(NASNetConfig)}
    unknown = sorted(set(names) - known)
    if unknown:
        raise ValueError(f"{what} {unknown}; expected some of {sorted(known)}")


#: TF-slim's three hyperparameter sets (``cifar_config``, ``mobile_imagenet_config``,
#: ``large_imagenet_config``), with num_cells counted per stack. The large preset counts
#: stride-2 average-pool padding as timm's port does, so the published weights it carries give
#: timm's logits; the others follow TensorFlow (which Cadene's mobile port reproduces).
PRESETS: dict[str, NASNetConfig] = {
    "nasnet_a_cifar": NASNetConfig(
        num_cells=6, num_conv_filters=32, stem="cifar", stem_multiplier=3.0,
        num_classes=10, dense_dropout_keep_prob=1.0, drop_path_keep_prob=0.6, image_size=32,
        bn_eps=1e-5, bn_momentum=0.1,
    ),
    "nasnet_a_mobile": NASNetConfig(
        num_cells=4, num_conv_filters=44, stem_multiplier=1.0, num_classes=1000,
        dense_dropout_keep_prob=0.5, drop_path_keep_prob=1.0, image_size=224,
    ),
    "nasnet_a_large": NASNetConfig(
        num_cells=6, num_conv_filters=168, stem_multiplier=3.0, skip_reduction_layer_input=True,
        num_classes=1000, dense_dropout_keep_prob=0.5, drop_path_keep_prob=0.7, image_size=331,
        pool_pad="timm",
    ),
}  # fmt: skip


def list_presets() -> list[str]:
    return sorted(PRESETS)


class GlobalPool(nn.Module):
    """timm's ``SelectAdaptivePool2d`` pool types with flattening: ``avg``, ``max``, ``avgmax``
    (their mean), ``catavgmax`` (both, concatenated) or ``""`` (the map passes through)."""

    def __init__(self, pool_type: str = "avg") -> None:
        super().__init__()
        if pool_type not in GLOBAL_POOLS:
            raise ValueError(
                f"global_pool must be one of {sorted(GLOBAL_POOLS)}, got {pool_type!r}"
            )
        self.pool_type = pool_type

    def feat_mult(self) -> int:
        return GLOBAL_POOLS[self.pool_type]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pool_type == "":
            return x
        if self.pool_type == "avg":
            return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        mx = torch.flatten(F.adaptive_max_pool2d(x, 1), 1)
        if self.pool_type == "max":
            return mx
        avg = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return 0.5 * (avg + mx) if self.pool_type == "avgmax" else torch.cat([avg, mx], 1)

    def extra_repr(self) -> str:
        return f"pool_type={self.pool_type!r}"


class NASNetOutput(NamedTuple):
    """Training-mode output when the auxiliary head is on (as torchvision's Inception3)."""

    logits: torch.Tensor
    aux_logits: torch.Tensor


class AuxHead(nn.Module):
    """TF-slim ``_build_aux_head``: ReLU, avgpool 5/3, 1x1 conv 128, BN, ReLU, full conv 768,
    BN, ReLU, FC. ``spatial`` is the input's side, which fixes the second conv's kernel."""

    def __init__(self, c_in: int, num_classes: int, spatial: int, cfg: OpConfig) -> None:
        super().__init__()
        pooled = (spatial - 5) // 3 + 1
        if pooled < 1:
            raise ValueError(
                f"image too small for the auxiliary head ({spatial}px feature map); "
                "build with use_aux_head=False"
            )
        self.proj = nn.Conv2d(c_in, 128, 1, bias=False)
        self.bn0 = cfg.bn(128)
        self.conv = nn.Conv2d(128, 768, pooled, bias=False)
        self.bn1 = cfg.bn(768)
        self.fc = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.avg_pool2d(F.relu(x), 5, 3)
        x = F.relu(self.bn0(self.proj(x)))
        x = F.relu(self.bn1(self.conv(x)))
        return self.fc(torch.flatten(x, 1))


@dataclass(frozen=True)
class CellPlan:
    """Where one cell sits and what it is built from; known without building anything.

    Outputs are numbered from the stem (0); cell ``index`` writes output ``index + 1`` and reads
    output ``index`` and output ``prev`` (``None``: no second input).
    """

    index: int
    name: str
    reduction: bool
    c: int  # TF-slim filter_size
    c_cur: int
    c_prev: int | None
    prev: int | None
    prev_larger: bool
    out_channels: int
    stride: int
    size: int


@dataclass(frozen=True)
class SecondStageSplit:
    """Where the paper's detector splits a NASNet (TF Object Detection API, Faster R-CNN).

    ``start``: index of the first second-stage cell (the last reduction cell). ``inputs``: the
    output indices that second-stage cells read from the first stage, in concat order;
    ``channels``: their widths; ``stride``: their common stride.
    """

    start: int
    inputs: tuple[int, ...]
    channels: tuple[int, ...]
    stride: int


@dataclass(frozen=True)
class NASNetLayout:
    """The arithmetic of a NASNet: stem width, every cell's plan, where the aux head reads.

    ``feature_info[j]`` describes output ``j`` as timm does: ``num_chs``, ``reduction``,
    ``module`` (and ``name`` for cells).
    """

    stem_filters: int
    stem_stride: int
    stem_size: int
    cells: tuple[CellPlan, ...]
    aux_after: int | None

    @property
    def num_features(self) -> int:
        return self.cells[-1].out_channels

    @property
    def feature_info(self) -> list[dict[str, Any]]:
        info = [dict(num_chs=self.stem_filters, reduction=self.stem_stride, module="stem")]
        for c in self.cells:
            info.append(
                dict(num_chs=c.out_channels, reduction=c.stride, module=f"cells.{c.index}",
                     name=c.name)
            )  # fmt: skip
        return info

    def second_stage_split(self) -> SecondStageSplit:
        """The split for any genotype, N@F and skip_reduction_layer_input setting.

        The second stage starts at the last reduction cell. It reads the output before it and,
        through ``prev``, possibly older ones (with skip_reduction_layer_input the cell after
        the reduction reads the output two steps back): all of them form the RPN concat.
        """
        reductions = [c.index for c in self.cells if c.name.startswith("reduction_cell")]
        if not reductions:
            raise ValueError("the network has no reduction cell to start the second stage at")
        start = reductions[-1]
        needed = {start} | {
            c.prev for c in self.cells[start:] if c.prev is not None and c.prev <= start
        }
        inputs = tuple(sorted(needed))
        info = self.feature_info
        strides = {info[j]["reduction"] for j in inputs}
        if len(strides) != 1:
            raise ValueError(
                f"second-stage inputs {inputs} have different strides {sorted(strides)}; "
                "they cannot be concatenated into one RPN map"
            )
        channels = tuple(info[j]["num_chs"] for j in inputs)
        return SecondStageSplit(start, inputs, channels, strides.pop())


def plan_nasnet(cfg: NASNetConfig) -> NASNetLayout:
    """Lay out the network ``cfg`` describes (TF-slim's ``_build_nasnet_base`` order)."""
    g = cfg.genotype
    total_normal = 3 * cfg.num_cells
    reduction_at = [
        int(k / (cfg.num_reduction_layers + 1) * total_normal)
        for k in range(1, cfg.num_reduction_layers + 1)
    ]
    imagenet = cfg.stem == "imagenet"
    stem_filters = int((32 if imagenet else cfg.num_conv_filters) * cfg.stem_multiplier)
    stem_size = (cfg.image_size - 3) // 2 + 1 if imagenet else cfg.image_size
    # Per output: channels, stride, spatial size (output 0 is the stem conv).
    chans, strides, sizes = [stem_filters], [2 if imagenet else 1], [stem_size]
    plans: list[CellPlan] = []

    def add(prev: int | None, c: int, reduction: bool, name: str) -> None:
        cur = len(chans) - 1
        blocks, concat = (g.reduce, g.reduce_concat) if reduction else (g.normal, g.normal_concat)
        plan = CellPlan(
            index=len(plans), name=name, reduction=reduction, c=c, c_cur=chans[cur],
            c_prev=None if prev is None else chans[prev], prev=prev,
            prev_larger=prev is not None and strides[prev] < strides[cur],
            out_channels=cell_out_channels(blocks, concat, c),
            stride=strides[cur] * (2 if reduction else 1),
            size=math.ceil(sizes[cur] / 2) if reduction else sizes[cur],
        )  # fmt: skip
        plans.append(plan)
        chans.append(plan.out_channels)
        strides.append(plan.stride)
        sizes.append(plan.size)

    # TF-slim keeps a list of outputs, None standing for "no cell before the stem".
    outputs: list[int | None] = [None, 0]
    if imagenet:
        scaling = 1.0 / cfg.filter_scaling_rate**2
        for j in range(2):
            add(outputs[-2], int(cfg.num_conv_filters * scaling), True, f"cell_stem_{j}")
            outputs.append(len(chans) - 1)
            scaling *= cfg.filter_scaling_rate
    scaling = 1.0
    aux_after = None
    aux_cell = reduction_at[1] - 1 if len(reduction_at) >= 2 else None
    for n in range(total_normal):
        prev = outputs[-2]
        if n in reduction_at:
            scaling *= cfg.filter_scaling_rate
            c = int(cfg.num_conv_filters * scaling)
            add(outputs[-2], c, True, f"reduction_cell_{reduction_at.index(n)}")
            outputs.append(len(chans) - 1)
        if not cfg.skip_reduction_layer_input:
            prev = outputs[-2]
        add(prev, int(cfg.num_conv_filters * scaling), False, f"cell_{n}")
        outputs.append(len(chans) - 1)
        if n == aux_cell:
            aux_after = len(plans) - 1
    return NASNetLayout(stem_filters, strides[0], stem_size, tuple(plans), aux_after)


def op_config(cfg: NASNetConfig) -> OpConfig:
    return OpConfig(bn_eps=cfg.bn_eps, bn_momentum=cfg.bn_momentum, pool_pad=cfg.pool_pad)


def build_stem(cfg: NASNetConfig, layout: NASNetLayout) -> nn.Sequential:
    """The 3x3 stem conv and its BN (stride 2 unpadded for ImageNet, SAME for CIFAR)."""
    f = layout.stem_filters
    if cfg.stem == "imagenet":
        conv: nn.Module = nn.Conv2d(cfg.in_chans, f, 3, stride=2, padding=0, bias=False)
    else:
        conv = SameConv2d(cfg.in_chans, f, 3, 1)
    stem = nn.Sequential()
    stem.add_module("conv", conv)
    stem.add_module("bn", op_config(cfg).bn(f))
    return stem


def build_cells(cfg: NASNetConfig, layout: NASNetLayout, indices: range) -> CellStack:
    """A :class:`CellStack` of the cells ``indices`` only (each detector half builds its own)."""
    g, ocfg = cfg.genotype, op_config(cfg)
    cells = {}
    for i in indices:
        p = layout.cells[i]
        cells[i] = Cell(
            g.reduce if p.reduction else g.normal,
            g.reduce_concat if p.reduction else g.normal_concat,
            c_cur=p.c_cur, c_prev=p.c_prev, prev_larger=p.prev_larger, c=p.c,
            reduction=p.reduction, cfg=ocfg,
        )  # fmt: skip
    prev_index = {i: layout.cells[i].prev for i in indices}
    return CellStack(cells, prev_index, len(layout.cells), cfg.drop_path_keep_prob)


class NASNet(nn.Module):
    """A NASNet built from a :class:`NASNetConfig` (its genotype included).

    ``cells`` (a :class:`CellStack`) holds every cell in forward order (ImageNet stem cells,
    normal and reduction cells); ``layout`` has each cell's plan and ``feature_info[j]``
    describes output ``j`` (``num_chs``, ``reduction``, ``module``).

    It has timm's model interface (``get_classifier``, ``reset_classifier``,
    ``forward_intermediates``, ``prune_intermediate_layers``, ``set_grad_checkpointing``,
    ``group_matcher``, ``pretrained_cfg``); ``import nasnet_det.timm`` registers the presets with
    ``timm.create_model``.
    """

    # Python-side descriptions: torch.jit.script compiles forward without them.
    __jit_unused_properties__ = ["genotype", "cell_names", "prev_index", "drop_path_progress"]

    def __init__(self, cfg: NASNetConfig) -> None:
        super().__init__()
        self.config = cfg
        self.layout = layout = plan_nasnet(cfg)
        self.num_classes = cfg.num_classes
        self.stem = build_stem(cfg, layout)
        self.cells = build_cells(cfg, layout, range(len(layout.cells)))
        self.aux_after = layout.aux_after
        self.feature_info = layout.feature_info
        self.num_features = layout.num_features
        self.dropout = nn.Dropout(1.0 - cfg.dense_dropout_keep_prob)
        self._build_head(cfg.num_classes, cfg.global_pool)
        self.pretrained_cfg = default_pretrained_cfg(cfg)
        self.default_cfg = self.pretrained_cfg  # timm's older name

    def _build_head(self, num_classes: int, global_pool: str) -> None:
        cfg = self.config
        self.global_pool = GlobalPool(global_pool)
        self.head_hidden_size = self.num_features * self.global_pool.feat_mult()
        self.aux_head: AuxHead | None = None
        aux = self.aux_after is not None and self.aux_after < len(self.cells)
        if cfg.use_aux_head and num_classes > 0 and aux:
            p = self.layout.cells[self.aux_after]
            self.aux_head = AuxHead(p.out_channels, num_classes, p.size, op_config(cfg))
        self.classifier = (
            nn.Linear(self.head_hidden_size, num_classes) if num_classes > 0 else nn.Identity()
        )

    @property
    def genotype(self) -> Genotype:
        return self.config.genotype

    @property
    def cell_names(self) -> list[str]:
        return [c.name for c in self.layout.cells]

    @property
    def prev_index(self) -> list[int | None]:
        return [c.prev for c in self.layout.cells]

    def set_drop_path_progress(self, progress: float) -> None:
        """Set ScheduledDropPath's ``t = min(1, step / total_training_steps)`` for every cell."""
        self.cells.set_drop_path_progress(progress)

    @property
    def drop_path_progress(self) -> float:
        return self.cells.drop_path_progress

    # ------------------------------------------------------------------ timm's interface
    def get_classifier(self) -> nn.Module:
        return self.classifier

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """A new (freshly initialised) classifier for ``num_classes`` (0: none, ``forward``
        returns pooled features) and, if given, a new head pooling (``""``: none, ``forward``
        returns the feature map). The auxiliary head follows ``num_classes``; ``config`` too."""
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 0:
            raise ValueError(f"num_classes must be a non-negative integer, got {num_classes!r}")
        pool = self.global_pool.pool_type if global_pool is None else global_pool
        self.config = replace(self.config, num_classes=num_classes, global_pool=pool)
        self.num_classes = num_classes
        device = next(self.parameters()).device
        self._build_head(num_classes, pool)
        self.global_pool.to(device).train(self.training)
        self.classifier.to(device).train(self.training)
        if self.aux_head is not None:
            self.aux_head.to(device).train(self.training)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each cell's inside in backward instead of keeping it (same outputs and
        gradients, less activation memory; see docs/BENCHMARKS.md)."""
        self.cells.grad_checkpointing = bool(enable)

    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        """timm's parameter groups (layer-wise LR decay): the stem conv and stem cells first,
        then one group per cell, or with ``coarse`` one per stride; the head is last."""
        stem_cells = [c.index for c in self.layout.cells if c.name.startswith("cell_stem")]
        stem = r"^stem\." + "".join(rf"|^cells\.{i}\." for i in stem_cells)
        if not coarse:
            return dict(stem=stem, blocks=r"^cells\.(\d+)\.")
        by_stride: dict[int, list[int]] = {}
        for c in self.layout.cells:
            if c.index not in stem_cells:
                by_stride.setdefault(c.stride, []).append(c.index)
        blocks = [
            (r"^cells\.(?:" + "|".join(map(str, ids)) + r")\.", (k,))
            for k, ids in enumerate(by_stride.values())
        ]
        return dict(stem=stem, blocks=blocks)

    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: int | Sequence[int] | None = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
    ) -> list[torch.Tensor] | tuple[torch.Tensor, list[torch.Tensor]]:
        """Outputs ``indices`` of ``feature_info`` (an int: the last n; ``None``: all) and the
        final features, as timm's ``forward_intermediates``.

        Output 0 is the stem (conv, BN); a cell's output is given ReLU'd, as every consumer
        reads it (timm's ``nasnetalarge`` taps the same places). ``norm`` has nothing to apply
        (no final norm layer). ``stop_early`` (or ``intermediates_only``) stops after the last
        output asked for.
        """
        if output_fmt != "NCHW":
            raise ValueError(f"output_fmt must be 'NCHW', got {output_fmt!r}")
        take, max_index = take_indices(len(self.feature_info), indices)
        stop = max_index if stop_early or intermediates_only else None
        outs = self.cells({0: self.stem(x)}, keep=take, stop=stop)
        inter = [outs[j] if j == 0 else F.relu(outs[j]) for j in take]
        if intermediates_only:
            return inter
        last = max(outs)
        return (outs[0] if last == 0 else F.relu(outs[last])), inter

    def prune_intermediate_layers(
        self, indices: int | Sequence[int] = 1, prune_norm: bool = False, prune_head: bool = True
    ) -> list[int]:
        """Drop the cells after the last output in ``indices`` (and the head, or all of it
        when cells go); returns the kept indices. ``prune_norm``: no norm layer to drop."""
        take, max_index = take_indices(len(self.feature_info), indices)
        if max_index < len(self.cells):
            old = self.cells
            kept = {i: old[i] for i in old.indices if i < max_index}
            self.cells = CellStack(
                kept, {i: old.prev_index[i] for i in kept}, old.total_cells,
                old.drop_path_keep_prob,
            )  # fmt: skip
            self.cells.set_drop_path_progress(old.drop_path_progress)
            self.cells.grad_checkpointing = old.grad_checkpointing
            self.feature_info = self.feature_info[: max_index + 1]
            self.num_features = self.feature_info[max_index]["num_chs"]
            prune_head = True
        if prune_head:
            self.reset_classifier(0, "")
        return take

    # ------------------------------------------------------------------ forward
    def forward_outputs(self, x: torch.Tensor, keep: list[int] = ()) -> dict[int, torch.Tensor]:
        """The stem and all cells; the last output plus the outputs in ``keep``."""
        return self.cells({0: self.stem(x)}, keep=keep)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``[N, 3, H, W]`` to the final ReLU'd feature map ``[N, num_features, H/32, W/32]``."""
        return F.relu(self.forward_outputs(x)[len(self.cells)])

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.dropout(self.global_pool(x))
        return x if pre_logits else self.classifier(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor | NASNetOutput:
        # The auxiliary head's test is written out twice (not kept in a variable) so that
        # torch.jit.script drops the branch when the model has no auxiliary head.
        keep: list[int] = []
        if self.training and self.aux_head is not None and self.aux_after is not None:
            keep.append(self.aux_after + 1)
        outs = self.forward_outputs(x, keep)
        logits = self.forward_head(F.relu(outs[len(self.cells)]))
        if self.training and self.aux_head is not None and self.aux_after is not None:
            return NASNetOutput(logits, self.aux_head(outs[self.aux_after + 1]))
        return logits


def take_indices(num: int, indices: int | Sequence[int] | None) -> tuple[list[int], int]:
    """timm's ``feature_take_indices``: ``(indices to return, the largest)`` out of ``num``
    outputs; an int ``n`` is the last ``n``, ``None`` all, a sequence may count from the end."""
    if indices is None:
        indices = num
    if isinstance(indices, int) and not isinstance(indices, bool):
        if not 0 < indices <= num:
            raise ValueError(f"indices: the last n outputs needs 0 < n <= {num}, got {indices}")
        take = list(range(num - indices, num))
    else:
        take = []
        for i in indices:
            if isinstance(i, bool) or not isinstance(i, int) or not -num <= i < num:
                raise ValueError(f"indices: expected integers in [-{num}, {num}), got {i!r}")
            take.append(i % num)
    if not take:
        raise ValueError("indices: expected at least one output index")
    return take, max(take)


def default_pretrained_cfg(cfg: NASNetConfig) -> dict[str, Any]:
    """timm's ``pretrained_cfg`` for a network built from ``cfg`` (no weights named: the timm
    registration in :mod:`nasnet_det.timm` adds them). Preprocessing is TF-slim's Inception one
    (mean = std = 0.5), which both published NASNet checkpoints use."""
    pool = math.ceil(cfg.image_size / (32 if cfg.stem == "imagenet" else 4))
    return dict(
        num_classes=cfg.num_classes, input_size=(cfg.in_chans, cfg.image_size, cfg.image_size),
        pool_size=(pool, pool), crop_pct=0.875, interpolation="bicubic", mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5), first_conv="stem.conv", classifier="classifier",
    )  # fmt: skip


def build_nasnet(preset: str = "nasnet_a_mobile", **overrides: Any) -> NASNet:
    """Build a NASNet from a preset and keyword overrides of :class:`NASNetConfig`.

    ``genotype`` may be a :class:`Genotype`, a registered name, a ``.json`` path or a dict.
    Example::

        model = build_nasnet("nasnet_a_mobile", num_classes=10, num_cells=2)
    """
    return NASNet(nasnet_config(preset, **overrides))


def nasnet_config(preset: str = "nasnet_a_mobile", **overrides: Any) -> NASNetConfig:
    """A preset's :class:`NASNetConfig` with keyword overrides (errors name unknown keys)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; expected one of {', '.join(list_presets())}")
    _check_fields(overrides, "unknown build_nasnet argument(s)")
    return replace(PRESETS[preset], **overrides)
