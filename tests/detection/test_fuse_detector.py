"""The detector's inference fast paths give the plain detector's detections.

BN folded (FrozenBN and eval BN), channels_last, the default inference path of every entry
point (MODEL.NASNET.FAST_INFERENCE on and off), the second stage in proposal chunks, and the
compiled path's fallback: boxes within 1e-3 of the plain path's on the instant-test detector.
"""

import copy
import warnings

import pytest
import torch
from detectron2.modeling import build_model
from torch import nn

from nasnet_det.compile import compile_detector, compile_status
from nasnet_det.detection import model_zoo
from nasnet_det.detection.fast import inference_model
from nasnet_det.fuse import fuse_for_inference

INSTANT = "quick_schedules/faster_rcnn_nasnet_a_mobile_instant_test.yaml"


def _randomize_norms(model: nn.Module) -> None:
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if hasattr(m, "running_var") and m.running_var is not None:
            n = m.running_var.numel()
            m.running_mean.copy_((torch.rand(n, generator=g) - 0.5) * 0.2)
            m.running_var.copy_(torch.rand(n, generator=g) * 0.5 + 0.75)
            with torch.no_grad():
                m.weight.copy_(torch.rand(n, generator=g) * 0.5 + 0.75)
                m.bias.copy_((torch.rand(n, generator=g) - 0.5) * 0.1)


def config(norm: str):
    cfg = model_zoo.get_config(INSTANT)
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.NASNET.NORM = norm
    cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = 0.05
    cfg.TEST.DETECTIONS_PER_IMAGE = 1000  # no cut at a rank where near-equal scores could swap
    return cfg


def detector(norm: str):
    """The instant-test detector (the real NASNet-A Mobile network, 128 px), random weights."""
    torch.manual_seed(0)
    model = build_model(config(norm))
    _randomize_norms(model)
    _spread_predictions(model)
    return model.eval()


def _spread_predictions(model: nn.Module) -> None:
    """Fresh predictors score every region almost alike (std 0.01 / 0.001 weights); spread the
    scores and boxes so that float rounding (1e-6) cannot reorder proposals or NMS survivors."""
    with torch.no_grad():
        model.proposal_generator.rpn_head.objectness_logits.weight.mul_(100)
        model.roi_heads.box_predictor.cls_score.weight.mul_(300)
        model.roi_heads.box_predictor.bbox_pred.weight.mul_(100)


def images():
    g = torch.Generator().manual_seed(0)
    return [{"image": torch.rand(3, 128, 160, generator=g) * 255, "height": 128, "width": 160}]


def run(model):
    with torch.no_grad():
        return model(images())[0]["instances"]


def assert_same_detections(out, ref):
    assert len(ref) > 10  # not vacuous
    assert len(out) == len(ref)
    torch.testing.assert_close(out.pred_boxes.tensor, ref.pred_boxes.tensor, atol=1e-3, rtol=0)
    torch.testing.assert_close(out.scores, ref.scores, atol=1e-4, rtol=0)
    assert torch.equal(out.pred_classes, ref.pred_classes)


@pytest.fixture(scope="module")
def frozen_pair():
    plain = detector("FrozenBN")
    return plain, run(plain)


def test_folded_frozen_bn_detector_gives_the_plain_boxes(frozen_pair):
    plain, ref = frozen_pair
    fused = fuse_for_inference(copy.deepcopy(plain))
    n_frozen = sum(type(m).__name__ == "FrozenBatchNorm2d" for m in plain.modules())
    assert fused.fused_bn_count == n_frozen > 100  # backbone and second stage alike
    assert not any(type(m).__name__ == "FrozenBatchNorm2d" for m in fused.modules())
    assert_same_detections(run(fused), ref)


def test_folded_eval_bn_detector_with_channels_last_gives_the_plain_boxes():
    plain = detector("BN")
    ref = run(plain)
    fused = fuse_for_inference(copy.deepcopy(plain), channels_last=True)
    assert fused.fused_bn_count > 100
    assert fused.backbone.input_memory_format == torch.channels_last
    assert_same_detections(run(fused), ref)


def _n_frozen(model):
    return sum(type(m).__name__ == "FrozenBatchNorm2d" for m in model.modules())


@pytest.mark.parametrize("fast", [True, False])
def test_predictor_default_path_gives_the_plain_boxes(frozen_pair, tmp_path, fast):
    """tools/predict.py's Predictor folds and goes channels_last by default (CPU); with
    MODEL.NASNET.FAST_INFERENCE False it runs the model as built. Same detections either way."""
    from detectron2.engine import DefaultPredictor

    from nasnet_det.detection.predict import Predictor

    plain, _ = frozen_pair
    weights = tmp_path / "model.pth"
    torch.save({"model": plain.state_dict()}, weights)
    cfg = config("FrozenBN")
    cfg.MODEL.WEIGHTS = str(weights)
    reference = DefaultPredictor.__new__(DefaultPredictor)  # Detectron2's __call__, plain model
    reference.model, reference.cfg, reference.input_format = plain, cfg, cfg.INPUT.FORMAT
    cfg.MODEL.NASNET.FAST_INFERENCE = fast
    predictor = Predictor(cfg)
    reference.aug = predictor.aug
    assert getattr(predictor.model, "fast_inference", False) is fast
    assert _n_frozen(predictor.model) == (0 if fast else _n_frozen(plain))
    stem_conv = next(m for m in predictor.model.backbone.modules() if isinstance(m, nn.Conv2d))
    layout = torch.channels_last if fast else torch.contiguous_format
    assert stem_conv.weight.is_contiguous(memory_format=layout)
    bgr = (images()[0]["image"].permute(1, 2, 0).numpy()).astype("uint8")
    assert_same_detections(predictor(bgr)["instances"], reference(bgr)["instances"])


def test_evaluation_during_training_runs_a_folded_copy(frozen_pair, monkeypatch):
    """Trainer.test (periodic, final and EMA evaluation) evaluates a folded copy and leaves the
    trained model as it was: not folded, still training, same weights."""
    from detectron2.engine import DefaultTrainer

    from nasnet_det.detection.engine import Trainer

    plain, ref = frozen_pair
    model = copy.deepcopy(plain).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    seen = []
    record = classmethod(lambda cls, cfg, m, evaluators=None: seen.append(m))
    monkeypatch.setattr(DefaultTrainer, "test", record)
    Trainer.test(config("FrozenBN"), model)
    (evaluated,) = seen
    assert evaluated is not model and evaluated.fast_inference and not evaluated.training
    assert _n_frozen(evaluated) == 0 and _n_frozen(model) == _n_frozen(plain)
    assert model.training and not hasattr(model, "fast_inference")
    assert model.state_dict().keys() == before.keys()
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert_same_detections(run(evaluated), ref)
    # --eval-only folds its own model in place; Trainer.test then evaluates that one, no copy.
    in_place = inference_model(copy.deepcopy(plain), config("FrozenBN"))
    Trainer.test(config("FrozenBN"), in_place)
    assert seen[-1] is in_place


def test_fast_inference_off_leaves_the_model_as_built(frozen_pair):
    plain, _ = frozen_pair
    cfg = config("FrozenBN")
    cfg.MODEL.NASNET.FAST_INFERENCE = False
    assert inference_model(plain, cfg) is plain and inference_model(plain, cfg, copy=True) is plain
    assert _n_frozen(plain) > 100 and not hasattr(plain, "fast_inference")


def test_training_detector_keeps_trainable_convs_unfolded():
    model = detector("FrozenBN").train()
    fuse_for_inference(model)
    # FREEZE_AT 0: every conv trains, so no FrozenBN may be folded into one.
    assert model.fused_bn_count == 0


def test_second_stage_in_proposal_chunks_gives_the_one_pass_boxes(frozen_pair):
    plain, ref = frozen_pair
    assert plain.roi_heads.proposal_chunk >= 50  # the reference ran its 50 regions in one pass
    model = copy.deepcopy(plain)
    model.roi_heads.proposal_chunk = 7  # 7 full chunks and a last one of 1
    assert_same_detections(run(model), ref)


def test_proposal_chunk_must_be_positive():
    from nasnet_det.detection.roi_heads import NASNetROIHeads

    cfg = model_zoo.get_config(INSTANT)
    cfg.MODEL.DEVICE = "cpu"
    model = build_model(cfg)
    kwargs = NASNetROIHeads.from_config(cfg, model.backbone.output_shape())
    with pytest.raises(ValueError, match="proposal_chunk must be a positive integer, got 0"):
        NASNetROIHeads(**kwargs, proposal_chunk=0)


def _failing_backend(gm, example_inputs):
    raise RuntimeError("no compiler here")


@pytest.mark.slow  # Dynamo traces backbone and second stage before the backend fails
def test_compiled_detector_falls_back_cleanly(frozen_pair):
    plain, ref = frozen_pair
    model = compile_detector(fuse_for_inference(copy.deepcopy(plain)), backend=_failing_backend)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = run(model)
    assert compile_status(model.backbone).startswith("fallback")
    assert compile_status(model.roi_heads.second_stage).startswith("fallback")
    assert_same_detections(out, ref)


@pytest.mark.parametrize("name", ["faster_rcnn_nasnet_a_mobile_FPN_1x",
                                  "faster_rcnn_nasnet_a_mobile_FPN_lite_1x"])  # fmt: skip
def test_fpn_detectors_default_path_gives_the_plain_boxes(name):
    """The FPN detectors (256- and 128-channel necks) as predict/eval/export run them: folded
    NASNet body, channels_last where it pays; the same detections as the model as built."""
    cfg = model_zoo.get_config(f"COCO-Detection/{name}.yaml")
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.NASNET.NUM_CELLS, cfg.MODEL.NASNET.NUM_CONV_FILTERS = 1, 8  # small, same wiring
    cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = 0.05
    cfg.TEST.DETECTIONS_PER_IMAGE = 1000
    torch.manual_seed(0)
    plain = build_model(cfg)
    _randomize_norms(plain)
    _spread_predictions(plain)
    plain.eval()
    ref = run(plain)
    fast = inference_model(plain, cfg, copy=True)
    # Every FrozenBN folded in the copy; the model as built still has them all.
    assert fast is not plain and fast.fused_bn_count == _n_frozen(plain) > 20
    assert_same_detections(run(fast), ref)
