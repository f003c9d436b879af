"""Our pretraining checkpoints to plain and Detectron2 weights (tools/convert_weights.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from nasnet_det.convert import Converted, load_state_dict_file
from nasnet_det.genotypes import NASNET_A
from nasnet_det.nasnet import build_nasnet

ROOT = Path(__file__).resolve().parents[2]


def _tool():
    path = ROOT / "tools/convert_weights.py"
    spec = importlib.util.spec_from_file_location("convert_weights", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _training_checkpoint(path: Path, preset: str = "nasnet_a_mobile", **overrides) -> dict:
    """The layout nasnet_det.pretrain writes: raw and EMA weights differ."""
    overrides = {"num_cells": 1, "num_conv_filters": 8, "num_classes": 5, **overrides}
    torch.manual_seed(0)
    raw = build_nasnet(preset, **overrides).state_dict()
    ema = {k: v + 1 if v.is_floating_point() else v for k, v in raw.items()}
    arch = {"preset": preset, "overrides": {**overrides, "genotype": NASNET_A.to_dict()}}
    data = {"image_size": 96, "crop_pct": 0.875, "interpolation": "bilinear"}
    ckpt = {"model": raw, "ema": ema, "arch": arch, "config": {"data": data}, "step": 3}
    torch.save(ckpt, path)
    return ckpt


def test_ema_by_default_and_raw_on_request(tmp_path):
    ckpt = _training_checkpoint(tmp_path / "last.pth")
    tool = _tool()
    for flag, key in (([], "ema"), (["--no-ema"], "model")):
        out = tmp_path / f"{key}.pth"
        args = ["--source", "nasnet_det", "--input", str(tmp_path / "last.pth")]
        assert tool.main([*args, "--output", str(out), *flag]) == 0
        saved = torch.load(out, weights_only=True)
        assert all(torch.equal(saved["model"][k], v) for k, v in ckpt[key].items())
        meta = saved["meta"]
        assert meta["source"] == "nasnet_det:nasnet_a_mobile"
        assert meta["preprocessing"]["image_size"] == 96
        conv = Converted(saved["model"], meta["preset"], meta["overrides"])
        conv.build_model().load_state_dict(saved["model"], strict=True)


def test_another_architecture_is_refused_and_nothing_written(tmp_path, capsys):
    _training_checkpoint(tmp_path / "last.pth")
    out = tmp_path / "out" / "w.pth"
    args = ["--source", "nasnet_det", "--input", str(tmp_path / "last.pth"), "--output", str(out)]
    assert _tool().main([*args, "--arch", "nasnet_a_large"]) == 2
    assert "not 'nasnet_a_large'" in capsys.readouterr().err
    # A bare state dict checked against a preset of another width.
    bare = tmp_path / "bare.pth"
    torch.save(build_nasnet("nasnet_a_mobile", num_cells=1, num_conv_filters=8).state_dict(), bare)
    args = ["--source", "nasnet_det", "--input", str(bare), "--output", str(out)]
    assert _tool().main([*args, "--arch", "nasnet_a_mobile"]) == 2
    assert "does not match the architecture" in capsys.readouterr().err
    assert not out.parent.exists() or not any(out.parent.iterdir())


def _detector_keys_loaded(path: Path, cfg) -> None:
    from detectron2.modeling import build_model

    from nasnet_det.detection import NASNetCheckpointer

    cfg.MODEL.DEVICE = "cpu"
    model = build_model(cfg)
    saved = load_state_dict_file(path)["model"]
    wanted = [
        k for k in model.state_dict() if k.startswith(("backbone.", "roi_heads.second_stage."))
    ]
    assert any(k.startswith("roi_heads.second_stage.cells.") for k in wanted)
    missing = [k for k in wanted if k not in saved]
    assert not missing, missing[:5]
    result = NASNetCheckpointer(model, cfg=cfg).load(str(path))
    assert result is not None
    got = model.state_dict()
    assert all(torch.equal(got[k], saved[k]) for k in wanted)


def test_detectron2_checkpoint_loads_into_mobile_detector(tmp_path):
    """Cadene's full-width NASNet-A Mobile -> detector weights -> the mobile model-zoo config."""
    pretrainedmodels = pytest.importorskip("pretrainedmodels")
    from nasnet_det.detection.config import get_nasnet_cfg
    from nasnet_det.detection.convert import DETECTION_CONFIGS
    from nasnet_det.detection.model_zoo import get_config_file

    src = tmp_path / "cadene.pth"
    torch.save(pretrainedmodels.nasnetamobile(num_classes=1000, pretrained=None).state_dict(), src)
    out = tmp_path / "d2.pth"
    args = ["--source", "pretrainedmodels", "--arch", "nasnetamobile", "--input", str(src)]
    assert _tool().main([*args, "--output", str(out), "--for", "detectron2"]) == 0
    cfg = get_nasnet_cfg()
    cfg.merge_from_file(get_config_file(DETECTION_CONFIGS["nasnet_a_mobile"]))
    _detector_keys_loaded(out, cfg)


def test_detectron2_checkpoint_loads_into_large_detector_tiny(tmp_path):
    from nasnet_det.detection.config import get_nasnet_cfg
    from nasnet_det.detection.convert import DETECTION_CONFIGS
    from nasnet_det.detection.model_zoo import get_config_file

    _training_checkpoint(tmp_path / "last.pth", "nasnet_a_large", use_aux_head=False)
    out = tmp_path / "d2.pth"
    args = ["--source", "nasnet_det", "--input", str(tmp_path / "last.pth"), "--output", str(out)]
    assert _tool().main([*args, "--for", "detectron2"]) == 0
    cfg = get_nasnet_cfg()
    cfg.merge_from_file(get_config_file(DETECTION_CONFIGS["nasnet_a_large"]))
    cfg.MODEL.NASNET.NUM_CELLS, cfg.MODEL.NASNET.NUM_CONV_FILTERS = 1, 8
    _detector_keys_loaded(out, cfg)
    # A detection config of another width is refused before anything is written.
    wrong = tmp_path / "wrong.pth"
    det_cfg = get_config_file(DETECTION_CONFIGS["nasnet_a_large"])
    assert (
        _tool().main([*args[:-1], str(wrong), "--for", "detectron2", "--det-config", det_cfg]) == 2
    )
    assert not wrong.exists()
