"""Detector export through Detectron2's TracingAdapter: on the instant-test model (tiny widths,
scores kept down to 0 so there are many boxes) the exported boxes, scores and classes equal
PyTorch's within 1e-3, in ONNX Runtime and TorchScript."""

import pytest
import torch
from detectron2.modeling import build_model

from nasnet_det.detection.engine import load_config
from nasnet_det.detection.export import export_detector, sample_image
from nasnet_det.export import load_exported, run_exported

CONFIG = "configs/quick_schedules/faster_rcnn_nasnet_a_mobile_instant_test.yaml"
TINY = ["MODEL.DEVICE", "cpu", "MODEL.NASNET.NUM_CELLS", "1", "MODEL.NASNET.NUM_CONV_FILTERS", "8",
        "MODEL.ROI_HEADS.SCORE_THRESH_TEST", "0.0"]  # fmt: skip


@pytest.fixture(scope="module")
def detector():
    cfg = load_config(CONFIG, TINY)
    torch.manual_seed(0)
    return build_model(cfg).eval(), sample_image(cfg)


@pytest.fixture(scope="module")
def exported(detector, tmp_path_factory):
    """``exported(fmt)``: the detector exported once per format (path, adapter)."""
    done = {}
    folder = tmp_path_factory.mktemp("export")

    def get(fmt):
        if fmt not in done:
            model, image = detector
            suffix = ".onnx" if fmt == "onnx" else ".ts"
            done[fmt] = export_detector(model, image, folder / f"det{suffix}", fmt)
        return done[fmt]

    return get


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_exported_detections_match_pytorch(detector, exported, fmt):
    model, image = detector
    path, adapter = exported(fmt)
    got = run_exported(load_exported(path), *adapter.flattened_inputs)
    # PyTorch's own detections, from the model (not the adapter).
    with torch.no_grad():
        ref = model.inference([{"image": image}], do_postprocess=False)[0]
    inst = adapter.outputs_schema(got)[0]["instances"]
    assert len(ref) > 10
    torch.testing.assert_close(inst.pred_boxes.tensor, ref.pred_boxes.tensor, atol=1e-3, rtol=0)
    torch.testing.assert_close(inst.scores, ref.scores, atol=1e-3, rtol=0)
    assert torch.equal(inst.pred_classes, ref.pred_classes)


def test_onnx_outputs_are_named(detector, exported):
    import onnxruntime as ort

    model, image = detector
    path, _ = exported("onnx")
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["image"]
    names = [o.name for o in sess.get_outputs()]
    assert names == ["boxes", "classes", "scores", "image_size"]
    out = dict(zip(names, sess.run(None, {"image": image.numpy()})))
    with torch.no_grad():
        ref = model.inference([{"image": image}], do_postprocess=False)[0]
    # Each name holds what it says (read by name, not by position).
    torch.testing.assert_close(torch.from_numpy(out["boxes"]), ref.pred_boxes.tensor, atol=1e-3,
                               rtol=0)  # fmt: skip
    torch.testing.assert_close(torch.from_numpy(out["scores"]), ref.scores, atol=1e-3, rtol=0)
    assert torch.equal(torch.from_numpy(out["classes"]), ref.pred_classes)
    assert out["image_size"].tolist() == list(image.shape[1:])
