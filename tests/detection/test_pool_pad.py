"""MODEL.NASNET.POOL_PAD reaches the network's stride-2 average pools."""

import pytest

from nasnet_det.detection.config import get_nasnet_cfg, nasnet_config_from_cfg
from nasnet_det.nasnet import NASNet
from nasnet_det.ops import PoolBranch


def _count_pad(net) -> set[bool]:
    return {
        m.pool.count_pad
        for m in net.modules()
        if isinstance(m, PoolBranch) and m.pool.kind == "avg" and m.pool.stride == 2
    }


@pytest.mark.parametrize("pool_pad, expected", [("", {True}), ("tf", {False}), ("timm", {True})])
def test_pool_pad_key(pool_pad, expected):
    cfg = get_nasnet_cfg()
    cfg.MODEL.NASNET.PRESET = "nasnet_a_large"
    cfg.MODEL.NASNET.NUM_CELLS = 1
    cfg.MODEL.NASNET.NUM_CONV_FILTERS = 4
    cfg.MODEL.NASNET.POOL_PAD = pool_pad
    # Empty keeps the preset's choice (Large follows timm's port).
    assert _count_pad(NASNet(nasnet_config_from_cfg(cfg))) == expected


def test_bad_pool_pad_is_one_clear_error():
    cfg = get_nasnet_cfg()
    cfg.MODEL.NASNET.POOL_PAD = "reflect"
    with pytest.raises(ValueError, match="MODEL.NASNET.POOL_PAD must be 'tf' or 'timm'"):
        nasnet_config_from_cfg(cfg)
