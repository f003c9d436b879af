"""TorchScript scripting (``torch.jit.script``, Detectron2's ``scripting_with_instances``) of the
NASNet backbone, the second stage and the whole detector: scripted outputs equal eager PyTorch's
(boxes within 1e-3) on a tiny model, at image sizes the script never saw (odd sizes exercise
the asymmetric SAME padding, which a traced graph would have frozen)."""

import pytest
import torch
from detectron2.modeling import build_model

from nasnet_det.detection.backbone import NASNetBackbone
from nasnet_det.detection.engine import load_config
from nasnet_det.detection.export import export_from_config, sample_image, script_detector
from nasnet_det.detection.roi_heads import NASNetSecondStage
from nasnet_det.nasnet import nasnet_config

CONFIG = "configs/quick_schedules/faster_rcnn_nasnet_a_mobile_instant_test.yaml"
TINY = ["MODEL.DEVICE", "cpu", "MODEL.NASNET.NUM_CELLS", "1", "MODEL.NASNET.NUM_CONV_FILTERS", "8",
        "MODEL.ROI_HEADS.SCORE_THRESH_TEST", "0.0"]  # fmt: skip


def _tiny(preset: str):
    return nasnet_config(preset, num_cells=1, num_conv_filters=4, num_classes=0,
                         use_aux_head=False)  # fmt: skip


@pytest.mark.parametrize("preset", ["nasnet_a_mobile", "nasnet_a_large"])
@pytest.mark.parametrize("features", [("nasnet_16",), ("c2", "c3", "c4", "c5")])
def test_scripted_backbone_equals_eager(preset, features):
    torch.manual_seed(0)
    eager = NASNetBackbone(_tiny(preset), out_features=features).eval()
    scripted = torch.jit.script(eager)
    for h, w in ((67, 75), (96, 64)):
        x = torch.randn(2, 3, h, w)
        with torch.no_grad():
            ref, got = eager(x), scripted(x)
        assert sorted(got) == sorted(features)
        for name in features:
            torch.testing.assert_close(got[name], ref[name], atol=1e-5, rtol=0)


def test_scripted_second_stage_equals_eager():
    torch.manual_seed(0)
    eager = NASNetSecondStage(_tiny("nasnet_a_mobile")).eval()
    scripted = torch.jit.script(eager)
    crops = torch.randn(5, eager.in_channels, 7, 7)
    with torch.no_grad():
        torch.testing.assert_close(scripted(crops), eager(crops), atol=1e-5, rtol=0)


@pytest.fixture(scope="module")
def detector():
    cfg = load_config(CONFIG, TINY)
    torch.manual_seed(0)
    return cfg, build_model(cfg).eval()


def _detections_match(model, scripted, image):
    with torch.no_grad():
        ref = model.inference([{"image": image}], do_postprocess=False)[0]
        got = scripted(({"image": image},))[0]
    assert len(ref) > 10
    torch.testing.assert_close(got["pred_boxes"], ref.pred_boxes.tensor, atol=1e-3, rtol=0)
    torch.testing.assert_close(got["scores"], ref.scores, atol=1e-3, rtol=0)
    assert torch.equal(got["pred_classes"], ref.pred_classes)


def test_scripted_detector_equals_eager_at_any_size(detector):
    cfg, model = detector
    scripted = script_detector(model)
    _detections_match(model, scripted, sample_image(cfg))  # 128 x 128
    g = torch.Generator().manual_seed(1)
    _detections_match(model, scripted, (torch.rand(3, 97, 141, generator=g) * 255).round())


def test_export_from_config_scripting_writes_a_matching_file(tmp_path):
    cfg = load_config(CONFIG, TINY)
    cfg.freeze()
    report = export_from_config(cfg, tmp_path / "det.ts", "torchscript", method="scripting")
    assert report["detections"] > 10
    assert report["max_abs_diff"] <= 1e-3  # BN folded (FAST_INFERENCE) in both
    loaded = torch.jit.load(report["path"])
    out = loaded(({"image": sample_image(cfg)},))
    assert sorted(out[0]) == ["pred_boxes", "pred_classes", "scores"]


def test_scripting_refuses_onnx(tmp_path):
    cfg = load_config(CONFIG, TINY)
    with pytest.raises(ValueError, match="--method scripting writes TorchScript"):
        export_from_config(cfg, tmp_path / "det.onnx", "onnx", method="scripting")
    assert not (tmp_path / "det.onnx").exists()
