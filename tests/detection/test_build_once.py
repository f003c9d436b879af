"""A detector resolves its network once: each cell is constructed exactly once, by the half
that keeps it, and finding the split builds nothing."""

import pytest
import torch
from detectron2.modeling import build_backbone
from detectron2.modeling.roi_heads import build_roi_heads

from nasnet_det import cells as cells_module
from nasnet_det.detection import classification_to_detectron2
from nasnet_det.detection.model_zoo import get_config
from nasnet_det.nasnet import build_nasnet


@pytest.fixture
def constructed(monkeypatch):
    """Count Cell constructions by the cell's plan (c, reduction, input widths)."""
    calls = []
    original = cells_module.Cell.__init__

    def counting(self, *args, **kwargs):
        calls.append(1)
        original(self, *args, **kwargs)

    monkeypatch.setattr(cells_module.Cell, "__init__", counting)
    return calls


def test_large_detector_builds_each_cell_once(constructed):
    cfg = get_config("COCO-Detection/faster_rcnn_nasnet_a_large_1x.yaml")
    with torch.device("meta"):  # shapes only: the Large detector has 85M parameters
        backbone = build_backbone(cfg)
        heads = build_roi_heads(cfg, backbone.output_shape())
    # NASNet-A Large: 2 stem cells + 18 normal + 2 reduction cells = 22, split 15 | 7: the
    # second stage starts at reduction_cell_1 (index 2 + 6 + 1 + 6 = 15), as the TF detector.
    assert len(constructed) == 22
    assert backbone.cells.indices == list(range(15))
    assert heads.second_stage.cells.indices == list(range(15, 22))
    # Mapping classification weights to this detector builds no cell at all.
    with torch.device("meta"):
        sd = build_nasnet("nasnet_a_large", num_cells=1, num_conv_filters=4).state_dict()
    constructed.clear()
    cfg.defrost()
    cfg.MODEL.NASNET.NUM_CELLS, cfg.MODEL.NASNET.NUM_CONV_FILTERS = 1, 4
    mapped = classification_to_detectron2(sd, cfg)
    assert constructed == []
    assert any(k.startswith("roi_heads.second_stage.cells.") for k in mapped)
