"""Ops: shapes of all 13, and TF SAME padding checked against TensorFlow's definition."""

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from nasnet_det.ops import (
    OP_NAMES,
    FactorizedReduction,
    OpConfig,
    SameConv2d,
    SamePool2d,
    build_op,
    same_pad_amounts,
)


def tf_same_pad(x, k, s, value=0.0):
    """TensorFlow's SAME: out = ceil(in / s); total pad split with the extra pixel after."""
    pads = []
    for size in reversed(x.shape[-2:]):
        total = max((math.ceil(size / s) - 1) * s + k - size, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads, value=value)


def tf_pool(x, kind, k, s):
    if kind == "max":
        return F.max_pool2d(tf_same_pad(x, k, s, -math.inf), k, s)
    # TF averages over the pixels inside the image only.
    num = F.avg_pool2d(tf_same_pad(x, k, s), k, s, divisor_override=1)
    den = F.avg_pool2d(tf_same_pad(torch.ones_like(x), k, s), k, s, divisor_override=1)
    return num / den


@pytest.mark.parametrize("kind", ["max", "avg"])
def test_same_pool_matches_tensorflow(kind):
    for h, w, k, s in itertools.product([5, 6, 11, 42, 83], [6, 9, 21], [3, 5, 7], [1, 2]):
        x = torch.randn(2, 3, h, w)
        got = SamePool2d(kind, k, s)(x)
        want = tf_pool(x, kind, k, s)
        assert got.shape == (2, 3, math.ceil(h / s), math.ceil(w / s))
        torch.testing.assert_close(got, want, rtol=0, atol=1e-6)


def test_timm_pool_counts_padding():
    # timm's AvgPool2dSame pads zeros explicitly and divides every window by k*k.
    x = torch.ones(1, 1, 4, 4)
    got = SamePool2d("avg", 3, 2, count_pad=True)(x)
    # 4 -> 2 outputs, pad (0, 1): the last window sees 2 of 3 rows/cols.
    expected = torch.tensor([[1.0, 6 / 9], [6 / 9, 4 / 9]])
    torch.testing.assert_close(got[0, 0], expected)
    assert torch.allclose(SamePool2d("avg", 3, 2)(x), torch.ones(1, 1, 2, 2))


def test_same_conv_matches_tensorflow():
    for h, k, s, d in itertools.product([7, 8, 21, 42], [1, 3, 5, 7], [1, 2], [1, 2]):
        conv = SameConv2d(3, 4, k, s, dilation=d)
        x = torch.randn(1, 3, h, h + 1)
        ek = (k - 1) * d + 1
        want = F.conv2d(tf_same_pad(x, ek, s), conv.weight, None, s, 0, d)
        got = conv(x)
        assert got.shape[-2:] == (math.ceil(h / s), math.ceil((h + 1) / s))
        torch.testing.assert_close(got, want)


def test_same_pad_amounts_examples():
    # Hand-computed: 42 -> 21 with k=3 needs 1 pixel, after; 165 -> 83 with k=5 needs 4, split.
    assert same_pad_amounts(42, 3, 2) == (0, 1)
    assert same_pad_amounts(165, 5, 2) == (2, 2)
    assert same_pad_amounts(42, 7, 2) == (2, 3)
    assert same_pad_amounts(21, 3, 1) == (1, 1)


@pytest.mark.parametrize("name", OP_NAMES)
@pytest.mark.parametrize("stride", [1, 2])
def test_every_op_shape(name, stride):
    cfg = OpConfig()
    for c_in, c_out in [(8, 8), (12, 8)]:
        op = build_op(name, c_in, c_out, stride, cfg)
        for h in (7, 8):
            y = op(torch.randn(2, c_in, h, h))
            assert y.shape == (2, c_out, math.ceil(h / stride), math.ceil(h / stride))


def test_unknown_op_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown op 'conv_9x9'; expected one of identity"):
        build_op("conv_9x9", 4, 4, 1, OpConfig())


def test_factorized_reduction_is_tf_slims():
    fr = FactorizedReduction(6, 7, OpConfig(), stride=2, relu=True).eval()
    for h in (7, 8):
        x = torch.randn(2, 6, h, h)
        xr = F.relu(x)
        # TF: path1 = 1x1 avg pool stride 2; path2 = pad after by one, drop first row/col, pool.
        p1 = F.conv2d(F.avg_pool2d(xr, 1, 2), fr.path1.weight)
        shifted = F.pad(xr, (0, 1, 0, 1))[:, :, 1:, 1:]
        p2 = F.conv2d(F.avg_pool2d(shifted, 1, 2), fr.path2.weight)
        want = fr.bn(torch.cat([p1, p2], 1))
        torch.testing.assert_close(fr(x), want)
    # Odd filter counts: TF gives path2 the remainder.
    assert fr.path1.out_channels == 3 and fr.path2.out_channels == 4
