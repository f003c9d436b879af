"""LazyConfig (.py) model-zoo configs build the same detectors as their YAML twins: the same
parameters (names, shapes, count), the same settings of every module, the same outputs and
losses for the same weights; and tools/lazyconfig_train_net.py's logic trains on the digits."""

import argparse
import json
import numbers

import pytest
import torch
from detectron2.config import instantiate
from detectron2.modeling import build_model
from detectron2.structures import Boxes, Instances
from detectron2.utils.events import EventStorage
from omegaconf import DictConfig, ListConfig

from nasnet_det.config import ConfigError
from nasnet_det.detection import lazy, model_zoo
from nasnet_det.detection.engine import load_config

NAMES = ["faster_rcnn_nasnet_a_mobile_1x", "faster_rcnn_nasnet_a_mobile_lowproposals",
         "faster_rcnn_nasnet_a_mobile_FPN_1x", "faster_rcnn_nasnet_a_mobile_FPN_lite_1x",
         "faster_rcnn_nasnet_a_large_1x",
         "faster_rcnn_nasnet_a_large_lowproposals"]  # fmt: skip


def _pair(name, yaml_opts=(), lazy_opts=()):
    yaml_cfg = load_config(f"COCO-Detection/{name}.yaml", ["MODEL.DEVICE", "cpu", *yaml_opts])
    lazy_cfg = lazy.load_lazy_config(f"COCO-Detection/{name}.py", list(lazy_opts))
    torch.manual_seed(0)
    a = build_model(yaml_cfg)
    b = instantiate(lazy_cfg.model)
    return a, b


def _settings(model):
    """Every plain setting of every module (thresholds, top-k, sizes, flags), by module name;
    sequences as lists (LazyConfig passes ``ListConfig`` where YAML passes lists)."""
    out = {}
    for name, m in model.named_modules():
        for key, v in vars(m).items():
            if isinstance(v, (numbers.Number, str, bool)):
                out[f"{name}.{key}"] = v
            elif isinstance(v, (tuple, list, ListConfig)) and all(
                isinstance(x, (numbers.Number, str)) for x in v
            ):
                out[f"{name}.{key}"] = list(v)
    return out


SLOW_LARGE = [pytest.param(n, marks=pytest.mark.slow) if "large" in n else n for n in NAMES]


@pytest.mark.parametrize("name", SLOW_LARGE)
def test_lazy_config_builds_the_yaml_network(name):
    a, b = _pair(name)
    sa, sb = a.state_dict(), b.state_dict()
    assert {k: v.shape for k, v in sa.items()} == {k: v.shape for k, v in sb.items()}
    assert sum(p.numel() for p in a.parameters()) == sum(p.numel() for p in b.parameters())
    assert _settings(a) == _settings(b)
    assert str(a) == str(b)


TINY_YAML = ["MODEL.NASNET.NUM_CELLS", "1", "MODEL.NASNET.NUM_CONV_FILTERS", "8",
             "MODEL.ROI_HEADS.SCORE_THRESH_TEST", "0.0"]  # fmt: skip


def _tiny_lazy(name):
    net = "model.backbone.bottom_up.nasnet" if "FPN" in name else "model.backbone.nasnet"
    return [f"{net}.num_cells=1", f"{net}.num_conv_filters=8",
            "model.roi_heads.box_predictor.test_score_thresh=0.0"]  # fmt: skip


def _image():
    g = torch.Generator().manual_seed(0)
    return (torch.rand(3, 96, 128, generator=g) * 255).round()


@pytest.mark.parametrize("name", NAMES)
def test_same_weights_same_detections_and_losses(name):
    a, b = _pair(name, TINY_YAML, _tiny_lazy(name))
    b.load_state_dict(a.state_dict())
    inputs = [{"image": _image()}]
    a.eval(), b.eval()
    with torch.no_grad():
        ra, rb = a(inputs)[0]["instances"], b(inputs)[0]["instances"]
    assert len(ra) > 5
    torch.testing.assert_close(rb.pred_boxes.tensor, ra.pred_boxes.tensor, atol=0, rtol=0)
    torch.testing.assert_close(rb.scores, ra.scores, atol=0, rtol=0)
    # Training settings (samplers, matchers, loss weights): the same losses from the same seed.
    target = Instances((96, 128), gt_boxes=Boxes(torch.tensor([[10.0, 20.0, 60.0, 80.0]])),
                       gt_classes=torch.tensor([3]))  # fmt: skip
    losses = []
    for m in (a, b):
        m.train()
        torch.manual_seed(1)
        with EventStorage():
            losses.append(m([{"image": _image(), "instances": target}]))
    assert losses[0].keys() == losses[1].keys()
    for k in losses[0]:
        torch.testing.assert_close(losses[1][k], losses[0][k], atol=0, rtol=0)


@pytest.mark.slow
def test_full_width_mobile_lowproposals_same_outputs():
    a, b = _pair("faster_rcnn_nasnet_a_mobile_lowproposals",
                 ["MODEL.ROI_HEADS.SCORE_THRESH_TEST", "0.0"],
                 ["model.roi_heads.box_predictor.test_score_thresh=0.0"])  # fmt: skip
    b.load_state_dict(a.state_dict())
    a.eval(), b.eval()
    with torch.no_grad():
        ra, rb = (m([{"image": _image()}])[0]["instances"] for m in (a, b))
    assert len(ra) > 5
    torch.testing.assert_close(rb.pred_boxes.tensor, ra.pred_boxes.tensor, atol=0, rtol=0)


def test_model_zoo_lists_and_loads_lazy_configs():
    listed = model_zoo.list_configs("py")
    assert not [c for c in model_zoo.list_configs() if c.endswith(".py")]
    for name in NAMES:
        assert f"COCO-Detection/{name}.py" in listed
    cfg = model_zoo.get_config("COCO-Detection/faster_rcnn_nasnet_a_large_1x.py")
    assert isinstance(cfg, DictConfig)
    assert set(lazy.LAZY_KEYS) <= set(cfg)
    assert cfg.model.backbone.nasnet.num_conv_filters == 168
    # The channel counts follow the network: Large's RPN map is Cell_10 + Cell_11 = 2016 + 2016
    # channels (TF's faster_rcnn_nas feature extractor), its second stage ends at F = 4032.
    assert instantiate(cfg.model.proposal_generator.head.in_channels) == 4032
    assert instantiate(cfg.model.roi_heads.box_predictor.input_shape).channels == 4032


def test_bad_lazy_config_is_one_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="neither a path nor a model-zoo config"):
        lazy.load_lazy_config("COCO-Detection/nope.py")
    with pytest.raises(ConfigError, match="not a LazyConfig .py file"):
        lazy.load_lazy_config("COCO-Detection/faster_rcnn_nasnet_a_mobile_1x.yaml")
    bad = tmp_path / "bad.py"
    bad.write_text("model = dict(a=1)\n")
    with pytest.raises(ConfigError, match="needs dataloader, optimizer, lr_multiplier, train"):
        lazy.load_lazy_config(str(bad))


INSTANT = "configs/quick_schedules/faster_rcnn_nasnet_a_mobile_instant_test.py"


def _args(config, opts, eval_only=False):
    return argparse.Namespace(config_file=config, opts=opts, eval_only=eval_only, resume=False,
                              num_gpus=1, allow_pickle=False)  # fmt: skip


def test_pre_output_checks_name_the_key(tmp_path):
    out = tmp_path / "run"
    opts = ["train.device=cpu", f"train.output_dir={out}",
            "dataloader.train.dataset.names=no_such_set"]  # fmt: skip
    with pytest.raises(ConfigError, match="dataloader.train: dataset 'no_such_set'"):
        lazy.main(_args(INSTANT, opts))
    assert not out.exists()  # nothing written before the check


def test_lazy_train_two_iterations_on_digits(tmp_path):
    out = tmp_path / "run"
    opts = ["train.device=cpu", f"train.output_dir={out}", "train.max_iter=2",
            "model.backbone.nasnet.num_cells=1",
            "model.backbone.nasnet.num_conv_filters=4"]  # fmt: skip
    results = lazy.main(_args(INSTANT, opts))
    assert "AP" in results["bbox"]
    assert (out / "model_final.pth").is_file()
    metrics = json.loads((out / "coco_metrics.json").read_text())
    assert set(metrics["bbox"]) >= {"AP", "AP50"}
    # --eval-only on the trained weights evaluates the same model again.
    again = lazy.main(_args(INSTANT, [*opts, f"train.init_checkpoint={out / 'model_final.pth'}"],
                            eval_only=True))  # fmt: skip
    assert again["bbox"]["AP"] == pytest.approx(results["bbox"]["AP"], abs=1e-6)
