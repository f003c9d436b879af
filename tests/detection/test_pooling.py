"""GridSampleROIAlign against torchvision's roi_align (aligned=True): values and gradients."""

import pytest
import torch
from torchvision.ops import roi_align

from nasnet_det.detection.pooling import GridSampleROIAlign, use_grid_sample_pooler


def _inputs(seed: int, n: int = 3, c: int = 5, h: int = 12, w: int = 10, r: int = 40):
    g = torch.Generator().manual_seed(seed)
    feature = torch.randn(n, c, h, w, generator=g, dtype=torch.float64)
    scale = 1 / 16
    # Boxes inside the image (as clipped proposals are), some thinner than one feature cell.
    xy = torch.rand(r, 2, generator=g, dtype=torch.float64) * torch.tensor([w, h]) / scale * 0.9
    wh = torch.rand(r, 2, generator=g, dtype=torch.float64) * 80 + 2
    x1y1 = torch.minimum(xy + wh, torch.tensor([w, h], dtype=torch.float64) / scale)
    index = torch.randint(0, n - 1, (r, 1), generator=g).double()  # image n-1 gets no box
    return feature, torch.cat([index, xy, x1y1], 1), scale


@pytest.mark.parametrize("ratio,size", [(1, 8), (2, 7), (3, (4, 6))])
def test_values_and_gradients_match_torchvision(ratio, size):
    feature, rois, scale = _inputs(ratio)
    ours_in = feature.clone().requires_grad_()
    ref_in = feature.clone().requires_grad_()
    ours = GridSampleROIAlign(size, scale, ratio)(ours_in, rois)
    ref = roi_align(ref_in, rois, size, scale, ratio, aligned=True)
    assert ours.shape == ref.shape
    torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-10)
    weights = torch.randn(ref.shape, generator=torch.Generator().manual_seed(9), dtype=ref.dtype)
    (ours * weights).sum().backward()
    (ref * weights).sum().backward()
    torch.testing.assert_close(ours_in.grad, ref_in.grad, rtol=1e-10, atol=1e-10)
    assert ours_in.grad[-1].abs().max() == 0  # the image without boxes gets no gradient


def test_adaptive_sampling_is_refused():
    with pytest.raises(ValueError, match="fixed sampling_ratio >= 1"):
        GridSampleROIAlign(8, 1 / 16, 0)


def test_swapped_into_the_demo_detector():
    from detectron2.modeling import build_model

    from nasnet_det.detection.demo import demo_config

    cfg = demo_config("nasnet_a", ["MODEL.NASNET.NUM_CONV_FILTERS", "4"])
    model = build_model(cfg)
    assert use_grid_sample_pooler(model) == 1
    layer = model.roi_heads.pooler.level_poolers[0]
    assert isinstance(layer, GridSampleROIAlign)
    assert layer.output_size == (8, 8) and layer.sampling_ratio == 1
    assert use_grid_sample_pooler(model) == 0  # nothing left to replace
