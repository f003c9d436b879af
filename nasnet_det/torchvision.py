"""NASNet in torchvision's Faster R-CNN: the paper's split, without Detectron2.

:func:`fasterrcnn_nasnet` builds ``torchvision.models.detection.FasterRCNN`` whose backbone is
the first stage of the paper's detector (stem and cells up to the last reduction cell; the RPN
map is the concat of the hidden states the second stage reads, stride 16) and whose box head
runs the remaining cells on ``MultiScaleRoIAlign`` crops, then ReLU and mean pooling. The split
comes from :meth:`~nasnet_det.nasnet.NASNetLayout.second_stage_split`, so any genotype and any
``N@F`` work. The RPN head (one 3x3 conv of ``rpn_conv_dim`` channels) and the box predictor
(class-specific deltas for the foreground classes only) have the shapes of Detectron2's
``StandardRPNHead`` and ``FastRCNNOutputLayers``, so the parameter count equals the Detectron2
model's for the same settings (``nasnet_det.detection``, ``Base-NASNet-C4.yaml``).

Weights: classification weights in our layout (:func:`nasnet_det.convert.hub.load_weights`: a
``nasnet://`` name, a converted checkpoint, one of our training checkpoints) go to both halves
under the classification model's names (``backbone.stem.*``, ``backbone.cells.{i}.*``,
``roi_heads.box_head.cells.{i}.*``). Training and evaluation follow torchvision's detection
references: :class:`CocoDetection` yields ``(image, target)`` pairs, :func:`train_one_epoch`
and :func:`evaluate_coco` are their loops (the metrics come from
:func:`nasnet_det.evaluation.evaluate`, pycocotools' numbers). The drop-path schedule is set
with :func:`nasnet_det.engine.hooks.set_drop_path_progress`.
"""

from __future__ import annotations

import math
import os
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.ops import FrozenBatchNorm2d, MultiScaleRoIAlign

from nasnet_det.nasnet import NASNetConfig, build_cells, build_stem, nasnet_config, plan_nasnet

__all__ = [
    "CocoDetection",
    "NASNetBoxHead",
    "NASNetBoxPredictor",
    "NASNetFirstStage",
    "NASNetRPNHead",
    "PAPER_DEFAULTS",
    "collate",
    "evaluate_coco",
    "fasterrcnn_nasnet",
    "freeze_batch_norm",
    "train_one_epoch",
]

#: The paper's detector settings (TF reference, as ``configs/Base-NASNet-C4.yaml``), as
#: ``FasterRCNN`` keyword arguments; :func:`fasterrcnn_nasnet` takes any of them as overrides.
PAPER_DEFAULTS: dict[str, Any] = dict(
    min_size=800, max_size=1333, image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5],
    rpn_pre_nms_top_n_train=12000, rpn_pre_nms_top_n_test=6000, rpn_post_nms_top_n_train=500,
    rpn_post_nms_top_n_test=500, rpn_nms_thresh=0.7, box_batch_size_per_image=128,
    box_detections_per_img=100,
)  # fmt: skip


def freeze_batch_norm(module: nn.Module) -> nn.Module:
    """Every ``nn.BatchNorm2d`` in ``module`` replaced by torchvision's ``FrozenBatchNorm2d``
    with the same statistics, affine values and epsilon (Detectron2's ``FrozenBN``)."""
    if isinstance(module, nn.BatchNorm2d):
        frozen = FrozenBatchNorm2d(module.num_features, eps=module.eps)
        with torch.no_grad():
            if module.affine:
                frozen.weight.copy_(module.weight)
                frozen.bias.copy_(module.bias)
            if module.running_mean is not None:
                frozen.running_mean.copy_(module.running_mean)
                frozen.running_var.copy_(module.running_var)
        return frozen
    for name, child in module.named_children():
        new = freeze_batch_norm(child)
        if new is not child:
            setattr(module, name, new)
    return module


class NASNetFirstStage(nn.Module):
    """The stem and the cells before the split; ``forward`` maps ``[N, 3, H, W]`` to
    ``{"0": [N, out_channels, ~H/16, ~W/16]}``, the concat of the hidden states the second
    stage reads (``out_channels`` is their summed width, as ``FasterRCNN`` requires)."""

    def __init__(self, cfg: NASNetConfig) -> None:
        super().__init__()
        layout = plan_nasnet(cfg)
        self.split = layout.second_stage_split()
        self.out_channels = sum(self.split.channels)
        self.stem = build_stem(cfg, layout)
        self.cells = build_cells(cfg, layout, range(self.split.start))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        inputs = self.split.inputs
        outs = self.cells({0: self.stem(x)}, keep=inputs)
        return OrderedDict([("0", torch.cat([outs[j] for j in inputs], 1))])


class NASNetBoxHead(nn.Module):
    """The cells from the split on, on ROI crops ``[R, in_channels, S, S]``: the crops are
    split back into the hidden states they were concatenated from, run through the cells, then
    ReLU and mean pooling give ``[R, out_channels]``.

    Without gradients the regions run ``proposal_chunk`` at a time, so the cells' activations
    held at once are bounded by the chunk, not the proposal count (the same numbers).
    """

    def __init__(self, cfg: NASNetConfig, proposal_chunk: int = 64) -> None:
        super().__init__()
        if isinstance(proposal_chunk, bool) or not isinstance(proposal_chunk, int):
            raise ValueError(f"proposal_chunk must be a positive integer, got {proposal_chunk!r}")
        if proposal_chunk < 1:
            raise ValueError(f"proposal_chunk must be a positive integer, got {proposal_chunk}")
        layout = plan_nasnet(cfg)
        self.split = layout.second_stage_split()
        self.in_channels = sum(self.split.channels)
        self.out_channels = layout.num_features
        self.cells = build_cells(cfg, layout, range(self.split.start, len(layout.cells)))
        self._last = len(layout.cells)
        self.proposal_chunk = proposal_chunk

    def _pooled(self, x: torch.Tensor) -> torch.Tensor:
        halves = torch.split(x, list(self.split.channels), dim=1)
        states = dict(zip(self.split.inputs, halves))
        return F.relu(self.cells(states)[self._last]).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() or len(x) <= self.proposal_chunk:
            return self._pooled(x)
        return torch.cat([self._pooled(c) for c in torch.split(x, self.proposal_chunk)])


class NASNetRPNHead(nn.Module):
    """Detectron2's ``StandardRPNHead`` in torchvision's ``RPNHead`` interface: a 3x3 conv to
    ``conv_dim`` channels (the TF reference's 512, not the RPN map's width) and ReLU, then 1x1
    convs to ``num_anchors`` objectness logits and ``4 * num_anchors`` box deltas per place."""

    def __init__(self, in_channels: int, num_anchors: int, conv_dim: int = 512) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, conv_dim, 3, padding=1)
        self.cls_logits = nn.Conv2d(conv_dim, num_anchors, 1)
        self.bbox_pred = nn.Conv2d(conv_dim, 4 * num_anchors, 1)
        for layer in (self.conv, self.cls_logits, self.bbox_pred):
            nn.init.normal_(layer.weight, std=0.01)
            nn.init.constant_(layer.bias, 0)

    def forward(self, x: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        hidden = [F.relu(self.conv(f)) for f in x]
        return [self.cls_logits(h) for h in hidden], [self.bbox_pred(h) for h in hidden]


class NASNetBoxPredictor(nn.Module):
    """Detectron2's ``FastRCNNOutputLayers`` in torchvision's ``FastRCNNPredictor`` interface.

    ``cls_score``: ``num_classes`` logits (torchvision's count, background at 0); ``bbox_pred``:
    deltas for the foreground classes only (or one shared set with ``class_agnostic``), as
    Detectron2 has them. ``forward`` returns ``(logits [R, K], deltas [R, 4K])`` in torchvision's
    layout: zeros stand in for the background's deltas (never used: torchvision's loss and
    post-processing read foreground deltas only), a shared set is repeated per class.
    """

    def __init__(self, in_channels: int, num_classes: int, class_agnostic: bool = False) -> None:
        super().__init__()
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(
                f"num_classes must be an integer >= 2 (torchvision counts the background), "
                f"got {num_classes!r}"
            )
        self.num_classes = num_classes
        self.class_agnostic = bool(class_agnostic)
        self.cls_score = nn.Linear(in_channels, num_classes)
        self.bbox_pred = nn.Linear(in_channels, 4 if class_agnostic else 4 * (num_classes - 1))
        nn.init.normal_(self.cls_score.weight, std=0.01)
        nn.init.normal_(self.bbox_pred.weight, std=0.001)
        for layer in (self.cls_score, self.bbox_pred):
            nn.init.constant_(layer.bias, 0)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = x.flatten(start_dim=1)
        deltas = self.bbox_pred(x)
        if self.class_agnostic:
            deltas = deltas.repeat(1, self.num_classes - 1)
        return self.cls_score(x), torch.cat([deltas.new_zeros(len(x), 4), deltas], dim=1)


def _resolve(config: NASNetConfig | str | None, weights: Any) -> tuple[NASNetConfig, Any]:
    """The network's config and, if ``weights`` names any, the loaded :class:`Weights`."""
    loaded = None
    if weights is not None:
        from nasnet_det.convert.hub import load_weights

        loaded = load_weights(weights, what="weights")
    if config is None:
        config = nasnet_config(loaded.preset, **loaded.overrides) if loaded else "nasnet_a_mobile"
    if isinstance(config, str):
        config = nasnet_config(config)
    if not isinstance(config, NASNetConfig):
        raise ValueError(
            f"config must be a NASNetConfig or a preset name, got {type(config).__name__}"
        )
    return config, loaded


def _load_halves(backbone: nn.Module, head: nn.Module, state_dict: dict, source: str) -> None:
    """Classification weights (``stem.*``, ``cells.{i}.*``) into both halves; the classifier
    and auxiliary head are dropped, anything else missing or left over is an error."""
    own = {f"backbone.{k}" for k in backbone.state_dict()} | {
        f"head.{k}" for k in head.state_dict()
    }
    mapped, first = {}, set(backbone.cells.indices)
    for k, v in state_dict.items():
        if k.startswith(("classifier.", "aux_head.")):
            continue
        index = int(k.split(".")[1]) if k.startswith("cells.") else None
        mapped[("head." if index is not None and index not in first else "backbone.") + k] = v
    missing, extra = sorted(own - set(mapped)), sorted(set(mapped) - own)
    if missing or extra:
        raise ValueError(
            f"weights {source!r} do not fit the network: missing {missing[:3]}, unexpected "
            f"{extra[:3]} ({len(missing)} and {len(extra)} keys); build with the weights' config"
        )
    shapes = {f"backbone.{k}": v.shape for k, v in backbone.state_dict().items()}
    shapes.update({f"head.{k}": v.shape for k, v in head.state_dict().items()})
    bad = [k for k, v in mapped.items() if tuple(v.shape) != tuple(shapes[k])]
    if bad:
        raise ValueError(f"weights {source!r} do not fit the network: shape of {bad[0]} differs")
    backbone.load_state_dict({k[9:]: v for k, v in mapped.items() if k.startswith("backbone.")})
    head.load_state_dict({k[5:]: v for k, v in mapped.items() if k.startswith("head.")})


def fasterrcnn_nasnet(
    config: NASNetConfig | str | None = None,
    *,
    num_classes: int,
    weights: str | os.PathLike | None = None,
    norm: str = "FrozenBN",
    anchor_sizes: Sequence[int] = (64, 128, 256, 512),
    aspect_ratios: Sequence[float] = (0.5, 1.0, 2.0),
    rpn_conv_dim: int = 512,
    pooler_resolution: int = 17,
    pooler_sampling_ratio: int = 0,
    class_agnostic_bbox_reg: bool = False,
    proposal_chunk: int = 64,
    **kwargs: Any,
) -> FasterRCNN:
    """torchvision's ``FasterRCNN`` with a NASNet split as in the paper.

    Args:
        config: the network (a :class:`NASNetConfig`, e.g. ``nasnet_config("nasnet_a_mobile",
            genotype=...)``, or a preset name); ``None``: the weights' network, else Mobile.
        num_classes: torchvision's count, the background included (10 digits: 11).
        weights: classification weights for both halves (``nasnet://SOURCE/ARCH`` or a file,
            read by :func:`~nasnet_det.convert.hub.load_weights`); ``None``: random.
        norm: ``"FrozenBN"`` (the paper: the checkpoint's statistics, frozen) or ``"BN"``.
        anchor_sizes, aspect_ratios: the stride-16 anchors (height / width ratios).
        rpn_conv_dim: width of the RPN head's 3x3 conv (Detectron2's ``RPN.CONV_DIMS``).
        pooler_resolution, pooler_sampling_ratio: ``MultiScaleRoIAlign``'s crop size.
        class_agnostic_bbox_reg: one set of box deltas shared by all classes.
        kwargs: ``FasterRCNN`` arguments over :data:`PAPER_DEFAULTS` (``min_size``,
            ``rpn_post_nms_top_n_test``, ``box_score_thresh``, ...).

    Images go in as torchvision's: RGB floats in [0, 1]; ``image_mean = image_std = 0.5`` maps
    them to [-1, 1] as the ImageNet weights expect.
    """
    if norm not in ("FrozenBN", "BN"):
        raise ValueError(f"norm must be 'FrozenBN' or 'BN', got {norm!r}")
    cfg, loaded = _resolve(config, weights)
    cfg = replace(cfg, num_classes=0, use_aux_head=False)  # the detector has neither head
    backbone, box_head = NASNetFirstStage(cfg), NASNetBoxHead(cfg, proposal_chunk)
    if loaded is not None:
        _load_halves(backbone, box_head, loaded.state_dict, str(weights))
    if norm == "FrozenBN":
        backbone, box_head = freeze_batch_norm(backbone), freeze_batch_norm(box_head)
    anchors = AnchorGenerator(sizes=(tuple(anchor_sizes),), aspect_ratios=(tuple(aspect_ratios),))
    options = {**PAPER_DEFAULTS, **kwargs}
    return FasterRCNN(
        backbone,
        rpn_anchor_generator=anchors,
        rpn_head=NASNetRPNHead(backbone.out_channels, len(anchor_sizes) * len(aspect_ratios),
                               rpn_conv_dim),
        box_roi_pool=MultiScaleRoIAlign(["0"], pooler_resolution, pooler_sampling_ratio),
        box_head=box_head,
        box_predictor=NASNetBoxPredictor(box_head.out_channels, num_classes,
                                         class_agnostic_bbox_reg),
        **options,
    )  # fmt: skip


# ---------------------------------------------------------------------- references-style loops
class CocoDetection(torch.utils.data.Dataset):
    """A COCO annotation file and its image folder as torchvision's detection references read
    them: ``(image [3, H, W] float in [0, 1], target)`` with ``boxes`` (x0, y0, x1, y1),
    ``labels`` (1..K, categories in id order) and ``image_id``; crowd boxes are left out.
    ``gt`` is the file's dict (for :func:`evaluate_coco`); ``category_ids[label - 1]`` maps
    a label back."""

    def __init__(self, annotation_file: str | os.PathLike, image_dir: str | os.PathLike) -> None:
        from nasnet_det.evaluation import load_json_file, validate_gt

        self.gt = load_json_file(annotation_file, "annotation file")
        validate_gt(self.gt, "bbox", label=str(annotation_file))
        self.image_dir = Path(image_dir)
        self.images = sorted(self.gt["images"], key=lambda im: im["id"])
        self.category_ids = sorted(c["id"] for c in self.gt["categories"])
        label = {c: k + 1 for k, c in enumerate(self.category_ids)}
        self._boxes: dict[Any, list] = {im["id"]: [] for im in self.images}
        for a in self.gt["annotations"]:
            if not a.get("iscrowd", 0):
                x, y, w, h = a["bbox"]
                self._boxes[a["image_id"]].append(([x, y, x + w, y + h], label[a["category_id"]]))

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, dict[str, Any]]:
        info = self.images[i]
        mode = torchvision.io.ImageReadMode.RGB
        image = torchvision.io.read_image(str(self.image_dir / info["file_name"]), mode)
        objs = self._boxes[info["id"]]
        target = {
            "boxes": torch.tensor([b for b, _ in objs], dtype=torch.float32).reshape(-1, 4),
            "labels": torch.tensor([c for _, c in objs], dtype=torch.int64),
            "image_id": info["id"],
        }
        return image.float() / 255.0, target


def collate(batch: list) -> tuple:
    """The references' ``utils.collate_fn``: a batch of images and one of targets."""
    return tuple(zip(*batch))


def train_one_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loader: Iterable,
    *,
    max_iters: int | None = None,
    clip_grad_norm: float | None = 10.0,
) -> list[dict[str, float]]:
    """The references' ``train_one_epoch``: the summed losses back-propagated per batch (the
    gradient norm clipped at ``clip_grad_norm``, as the TF reference). Returns each step's
    losses; stops after ``max_iters`` batches if given. A non-finite loss raises."""
    model.train()
    device = next(model.parameters()).device
    history = []
    for it, (images, targets) in enumerate(loader):
        if max_iters is not None and it >= max_iters:
            break
        images = [im.to(device) for im in images]
        targets = [{k: (v.to(device) if torch.is_tensor(v) else v) for k, v in t.items()}
                   for t in targets]  # fmt: skip
        losses = model(images, targets)
        total = sum(losses.values())
        value = float(total.detach())
        if not math.isfinite(value):
            raise FloatingPointError(f"loss is {value} at iteration {it}: {losses}")
        optimizer.zero_grad()
        total.backward()
        if clip_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip_grad_norm)
        optimizer.step()
        history.append({k: float(v.detach()) for k, v in losses.items()} | {"loss": value})
    return history


@torch.no_grad()
def evaluate_coco(model: nn.Module, loader: Iterable, dataset: CocoDetection) -> dict[str, float]:
    """Detections on ``loader`` as a COCO results list, scored against ``dataset.gt`` by
    :func:`nasnet_det.evaluation.evaluate` (pycocotools' protocol); returns Detectron2-style
    metrics (AP, AP50, AP75, APs, APm, APl, AP-<category>, AR...) on a 0-100 scale."""
    from nasnet_det.evaluation import evaluate

    model.eval()
    device = next(model.parameters()).device
    results = []
    for images, targets in loader:
        outputs = model([im.to(device) for im in images])
        for target, out in zip(targets, outputs):
            for box, score, label in zip(out["boxes"].tolist(), out["scores"].tolist(),
                                         out["labels"].tolist()):  # fmt: skip
                x0, y0, x1, y1 = box
                results.append({
                    "image_id": target["image_id"], "score": score,
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "category_id": dataset.category_ids[label - 1],
                })  # fmt: skip
    return evaluate(dataset.gt, results, "bbox", workers=1).metrics()
