"""ROIAlignV2 computed with ``F.grid_sample``: the same numbers, a much faster CPU gradient.

torchvision's CPU ``roi_align`` backward walks every sample point in a scalar loop; in the demo
detector's training step it was the second most expensive kernel (profile: 34 ms of 233 ms per
iteration, 64 regions). Sampling the same points with ``grid_sample`` gives identical values for
boxes inside the feature map (Detectron2's proposals are clipped to the image) and a vectorised
gradient. :func:`use_grid_sample_pooler` swaps it into a built detector.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["GridSampleROIAlign", "use_grid_sample_pooler"]


class GridSampleROIAlign(nn.Module):
    """``ROIAlign(output_size, spatial_scale, sampling_ratio, aligned=True)`` for a fixed
    ``sampling_ratio`` >= 1 (samples per bin and side).

    ``forward(input [N, C, H, W], rois [R, 5] = (image index, x0, y0, x1, y1))`` returns
    ``[R, C, out_h, out_w]``. Sample points are clamped to the map's border, as ROIAlign does
    for points up to one pixel outside; ROIAlign returns 0 for points further out, which clipped
    proposals never reach.
    """

    def __init__(
        self, output_size: int | tuple[int, int], spatial_scale: float, sampling_ratio: int
    ):
        super().__init__()
        if isinstance(output_size, int):
            output_size = (output_size, output_size)
        if int(sampling_ratio) < 1:
            raise ValueError(
                f"GridSampleROIAlign needs a fixed sampling_ratio >= 1, got {sampling_ratio} "
                "(0, adaptive per box, is what torchvision's ROIAlign is for)"
            )
        self.output_size = tuple(int(v) for v in output_size)
        self.spatial_scale = float(spatial_scale)
        self.sampling_ratio = int(sampling_ratio)

    def _grid(self, rois: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """Normalised sample coordinates ``[R, out_h * s, out_w * s, 2]`` (x, y)."""
        s = self.sampling_ratio
        out_h, out_w = self.output_size
        boxes = rois[:, 1:] * self.spatial_scale - 0.5  # aligned: pixel centres at integers
        x0, y0, x1, y1 = boxes.unbind(1)
        tx = (torch.arange(out_w * s, dtype=rois.dtype, device=rois.device) + 0.5) / s
        ty = (torch.arange(out_h * s, dtype=rois.dtype, device=rois.device) + 0.5) / s
        xs = x0[:, None] + tx[None] * ((x1 - x0) / out_w)[:, None]
        ys = y0[:, None] + ty[None] * ((y1 - y0) / out_h)[:, None]
        # grid_sample with align_corners=False puts pixel i's centre at (2i + 1) / size - 1.
        gx = (2 * xs + 1) / width - 1
        gy = (2 * ys + 1) / height - 1
        r = len(rois)
        return torch.stack(
            [
                gx[:, None, :].expand(r, len(ty), len(tx)),
                gy[:, :, None].expand(r, len(ty), len(tx)),
            ],
            dim=-1,
        )

    def forward(self, input: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
        n, c, h, w = input.shape
        grid = self._grid(rois.to(input.dtype), h, w)
        hs, ws = grid.shape[1:3]
        index = rois[:, 0].long()
        out = input.new_zeros((len(rois), c, hs, ws))
        for b in range(n):
            pick = index == b
            k = int(pick.sum())
            if k == 0:
                continue
            # One call per image: the image's boxes stacked along the height of one grid.
            sampled = F.grid_sample(
                input[b : b + 1],
                grid[pick].reshape(1, k * hs, ws, 2),
                mode="bilinear",
                padding_mode="border",
                align_corners=False,
            )
            out[pick] = sampled.reshape(c, k, hs, ws).transpose(0, 1)
        if self.sampling_ratio > 1:
            out = F.avg_pool2d(out, self.sampling_ratio)
        return out

    def extra_repr(self) -> str:
        return (
            f"output_size={self.output_size}, spatial_scale={self.spatial_scale}, "
            f"sampling_ratio={self.sampling_ratio}, aligned=True"
        )


def use_grid_sample_pooler(model: nn.Module) -> int:
    """Replace every single-level ``ROIAlignV2`` pooler of ``model`` with a fixed sampling
    ratio by :class:`GridSampleROIAlign`; returns how many were replaced."""
    from detectron2.layers import ROIAlign
    from detectron2.modeling.poolers import ROIPooler

    replaced = 0
    for module in model.modules():
        if not isinstance(module, ROIPooler):
            continue
        for i, layer in enumerate(module.level_poolers):
            if isinstance(layer, ROIAlign) and layer.aligned and layer.sampling_ratio > 0:
                module.level_poolers[i] = GridSampleROIAlign(
                    layer.output_size, layer.spatial_scale, layer.sampling_ratio
                )
                replaced += 1
    return replaced
