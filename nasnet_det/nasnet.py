"""NASNet: copies of a searched cell pair stacked into a network of any size (``N@F``).

:func:`build_nasnet` is the entry point; the presets reproduce TF-slim's ``nasnet.py`` hyper-
parameter sets. The module offers timm's surface (``forward_features``, ``forward_head``,
``feature_info``) so detection can cut it after any cell.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from nasnet_det.cells import Cell
from nasnet_det.drop_path import scheduled_keep_prob
from nasnet_det.genotypes import Genotype, get_genotype
from nasnet_det.ops import OpConfig, SameConv2d

__all__ = ["NASNet", "NASNetConfig", "NASNetOutput", "PRESETS", "build_nasnet", "list_presets"]


@dataclass(frozen=True)
class NASNetConfig:
    """Every argument of :class:`NASNet` (checkpoints store it, presets are instances of it).

    ``num_cells`` is N, the normal cells per stack (the network has 3N normal cells);
    ``num_conv_filters`` is TF-slim's: the penultimate width is F = 24 x num_conv_filters for
    NASNet-A.
    """

    genotype: str = "nasnet_a"
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

    def __post_init__(self) -> None:
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
        if not 0.0 < self.drop_path_keep_prob <= 1.0:
            raise ValueError(
                f"drop_path_keep_prob must be in (0, 1], got {self.drop_path_keep_prob}"
            )
        if not 0.0 < self.dense_dropout_keep_prob <= 1.0:
            raise ValueError(
                f"dense_dropout_keep_prob must be in (0, 1], got {self.dense_dropout_keep_prob}"
            )


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


class NASNet(nn.Module):
    """A NASNet built from a genotype; see :class:`NASNetConfig` for the arguments.

    ``cells`` holds every cell in forward order (ImageNet stem cells, normal and reduction
    cells); ``prev_index[i]`` says which earlier output cell ``i`` reads as its second input
    (outputs are numbered from the stem conv, 0). ``feature_info[j]`` describes output ``j``:
    ``num_chs``, ``reduction`` (stride) and ``module``.
    """

    def __init__(self, cfg: NASNetConfig, genotype: Genotype | None = None) -> None:
        super().__init__()
        self.config = cfg
        self.genotype = genotype if genotype is not None else get_genotype(cfg.genotype)
        g = self.genotype
        ocfg = OpConfig(bn_eps=cfg.bn_eps, bn_momentum=cfg.bn_momentum, pool_pad=cfg.pool_pad)
        self.num_classes = cfg.num_classes
        total_normal = 3 * cfg.num_cells
        reduction_at = [
            int(k / (cfg.num_reduction_layers + 1) * total_normal)
            for k in range(1, cfg.num_reduction_layers + 1)
        ]

        # Output 0 is the stem conv. Track channels and stride of every output.
        stem_filters = int(
            (32 if cfg.stem == "imagenet" else cfg.num_conv_filters) * cfg.stem_multiplier
        )
        if cfg.stem == "imagenet":
            conv = nn.Conv2d(cfg.in_chans, stem_filters, 3, stride=2, padding=0, bias=False)
            stride, spatial = 2, (cfg.image_size - 3) // 2 + 1
        else:
            conv = SameConv2d(cfg.in_chans, stem_filters, 3, 1)
            stride, spatial = 1, cfg.image_size
        self.stem = nn.Sequential()
        self.stem.add_module("conv", conv)
        self.stem.add_module("bn", ocfg.bn(stem_filters))
        chans, strides, sizes = [stem_filters], [stride], [spatial]
        feature_info = [dict(num_chs=stem_filters, reduction=stride, module="stem")]

        self.cells = nn.ModuleList()
        prev_index: list[int | None] = []
        cell_names: list[str] = []

        def add_cell(prev: int | None, c: int, reduction: bool, name: str) -> None:
            cur = len(chans) - 1
            cell = Cell(
                g.reduce if reduction else g.normal,
                g.reduce_concat if reduction else g.normal_concat,
                c_cur=chans[cur],
                c_prev=None if prev is None else chans[prev],
                prev_larger=prev is not None and strides[prev] < strides[cur],
                c=c,
                reduction=reduction,
                cfg=ocfg,
            )
            self.cells.append(cell)
            prev_index.append(prev)
            cell_names.append(name)
            chans.append(cell.out_channels)
            strides.append(strides[cur] * (2 if reduction else 1))
            sizes.append(math.ceil(sizes[cur] / 2) if reduction else sizes[cur])
            feature_info.append(
                dict(num_chs=cell.out_channels, reduction=strides[-1],
                     module=f"cells.{len(self.cells) - 1}", name=name)
            )  # fmt: skip

        # TF-slim keeps a list of outputs, None standing for "no cell before the stem".
        outputs: list[int | None] = [None, 0]
        if cfg.stem == "imagenet":
            scaling = 1.0 / cfg.filter_scaling_rate**2
            for j in range(2):
                add_cell(outputs[-2], int(cfg.num_conv_filters * scaling), True, f"cell_stem_{j}")
                outputs.append(len(chans) - 1)
                scaling *= cfg.filter_scaling_rate
        scaling = 1.0
        self.aux_after: int | None = None
        aux_cell = reduction_at[1] - 1 if len(reduction_at) >= 2 else None
        for n in range(total_normal):
            prev = outputs[-2]
            if n in reduction_at:
                scaling *= cfg.filter_scaling_rate
                add_cell(
                    outputs[-2], int(cfg.num_conv_filters * scaling), True,
                    f"reduction_cell_{reduction_at.index(n)}",
                )  # fmt: skip
                outputs.append(len(chans) - 1)
            if not cfg.skip_reduction_layer_input:
                prev = outputs[-2]
            add_cell(prev, int(cfg.num_conv_filters * scaling), False, f"cell_{n}")
            outputs.append(len(chans) - 1)
            if n == aux_cell:
                self.aux_after = len(self.cells) - 1

        self.prev_index = prev_index
        self.cell_names = cell_names
        self.feature_info = feature_info
        self.num_features = chans[-1]
        self.aux_head: AuxHead | None = None
        if cfg.use_aux_head and cfg.num_classes > 0 and self.aux_after is not None:
            j = self.aux_after + 1
            self.aux_head = AuxHead(chans[j], cfg.num_classes, sizes[j], ocfg)
        self.dropout = nn.Dropout(1.0 - cfg.dense_dropout_keep_prob)
        self.classifier = (
            nn.Linear(self.num_features, cfg.num_classes) if cfg.num_classes > 0 else nn.Identity()
        )
        self.set_drop_path_progress(0.0)

    # ------------------------------------------------------------------ drop path
    def set_drop_path_progress(self, progress: float) -> None:
        """Set ScheduledDropPath's ``t = min(1, step / total_training_steps)`` for every cell."""
        self._drop_path_progress = float(progress)
        for i, cell in enumerate(self.cells):
            cell.drop_path_keep_prob = scheduled_keep_prob(
                self.config.drop_path_keep_prob, i, len(self.cells), progress
            )

    @property
    def drop_path_progress(self) -> float:
        return self._drop_path_progress

    # ------------------------------------------------------------------ forward
    def run_cells(
        self, x: torch.Tensor, end: int | None = None, collect: bool = False
    ) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor | None]:
        """Run the stem and cells ``0 .. end-1`` (all by default).

        Returns the last output, all outputs (stem first) when ``collect`` or when needed for
        skip inputs, and the auxiliary head's input (or ``None``).
        """
        end = len(self.cells) if end is None else end
        outs = [self.stem(x)]
        aux_in = None
        for i in range(end):
            p = self.prev_index[i]
            outs.append(self.cells[i](outs[-1], None if p is None else outs[p]))
            if i == self.aux_after:
                aux_in = outs[-1]
            if not collect:
                # Only the last three outputs can still be read (skip_reduction_layer_input).
                keep = {len(outs) - 1} | {
                    q for q in self.prev_index[i + 1 : i + 3] if q is not None
                }
                outs = [o if j in keep else None for j, o in enumerate(outs)]  # type: ignore
        return outs[-1], outs, aux_in  # type: ignore[return-value]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``[N, 3, H, W]`` to the final ReLU'd feature map ``[N, num_features, H/32, W/32]``."""
        y, _, _ = self.run_cells(x)
        return F.relu(y)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        x = self.dropout(x)
        return x if pre_logits else self.classifier(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor | NASNetOutput:
        y, _, aux_in = self.run_cells(x)
        logits = self.forward_head(F.relu(y))
        if self.training and self.aux_head is not None and aux_in is not None:
            return NASNetOutput(logits, self.aux_head(aux_in))
        return logits


def build_nasnet(preset: str = "nasnet_a_mobile", **overrides: Any) -> NASNet:
    """Build a NASNet from a preset and keyword overrides of :class:`NASNetConfig`.

    ``genotype`` may be a :class:`Genotype`, a registered name or a ``.json`` path. Example::

        model = build_nasnet("nasnet_a_mobile", num_classes=10, num_cells=2)
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; expected one of {', '.join(list_presets())}")
    fields = set(NASNetConfig.__dataclass_fields__)
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ValueError(
            f"unknown build_nasnet argument(s) {unknown}; expected some of {sorted(fields)}"
        )
    genotype = overrides.pop("genotype", None)
    geno_obj = None
    if genotype is not None:
        geno_obj = get_genotype(genotype)
        if isinstance(genotype, Genotype):
            overrides["genotype"] = genotype.name or "<object>"
        else:
            overrides["genotype"] = os.fspath(genotype)
    cfg = replace(PRESETS[preset], **overrides)
    return NASNet(cfg, geno_obj)
