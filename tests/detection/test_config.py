"""Model-zoo configs merge and build; bad config values give one clear error each."""

import json

import pytest
import torch
from detectron2.modeling import build_model

from nasnet_det.detection import model_zoo
from nasnet_det.detection.config import get_nasnet_cfg

from .test_backbone import TOY

CONFIGS = model_zoo.list_configs()


def test_expected_configs_ship():
    for name in (
        "Base-NASNet-C4.yaml",
        "COCO-Detection/faster_rcnn_nasnet_a_mobile_1x.yaml",
        "COCO-Detection/faster_rcnn_nasnet_a_large_1x.yaml",
        "COCO-Detection/faster_rcnn_nasnet_a_mobile_FPN_1x.yaml",
        "quick_schedules/faster_rcnn_nasnet_a_mobile_instant_test.yaml",
    ):
        assert name in CONFIGS


@pytest.mark.parametrize("name", CONFIGS)
def test_every_config_merges_and_builds(name):
    cfg = model_zoo.get_config(name)
    assert cfg.MODEL.PIXEL_MEAN == [127.5, 127.5, 127.5]  # inputs scaled to [-1, 1]
    assert cfg.INPUT.FORMAT == "RGB"
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.NASNET.NUM_CELLS = 1  # tiny: the architecture wiring is what is tested
    cfg.MODEL.NASNET.NUM_CONV_FILTERS = 4
    model = build_model(cfg)
    assert sum(p.numel() for p in model.parameters()) > 0
    if cfg.MODEL.BACKBONE.NAME == "build_nasnet_backbone":
        assert model.backbone.output_shape()["nasnet_16"].stride == 16
        assert cfg.MODEL.RPN.POST_NMS_TOPK_TEST == (50 if "lowproposals" in name else 500) or (
            "Demo" in name or "quick" in name
        )


def test_paper_settings_in_base():
    cfg = model_zoo.get_config("Base-NASNet-C4.yaml")
    assert cfg.MODEL.ANCHOR_GENERATOR.SIZES == [[64, 128, 256, 512]]  # 0.25..2 x 256
    assert cfg.MODEL.ANCHOR_GENERATOR.ASPECT_RATIOS == [[0.5, 1.0, 2.0]]
    assert cfg.MODEL.RPN.NMS_THRESH == 0.7
    assert cfg.MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION == 17
    assert cfg.MODEL.NASNET.NORM == "FrozenBN"


def test_config_pointing_at_genotype_json_builds_it(tmp_path):
    geno = tmp_path / "found.json"
    geno.write_text(json.dumps(TOY))
    yaml_path = tmp_path / "searched.yaml"
    base = model_zoo.get_config_file("COCO-Detection/faster_rcnn_nasnet_a_mobile_1x.yaml")
    yaml_path.write_text(
        f'_BASE_: "{base}"\nMODEL:\n  DEVICE: "cpu"\n  NASNET:\n    GENOTYPE: "{geno}"\n'
        "    NUM_CELLS: 1\n    NUM_CONV_FILTERS: 8\n"
    )
    cfg = get_nasnet_cfg()
    cfg.merge_from_file(str(yaml_path))
    model = build_model(cfg)
    cell = model.backbone.cells[2]  # cell_0
    assert [b.combine for b in cell.blocks] == ["add", "concat", "add"]
    assert model.backbone.output_shape()["nasnet_16"].channels == 80  # as the toy's hand count
    last = model.roi_heads.second_stage.cells["6"]
    assert len(last.blocks) == 3


def build_with(**nasnet):
    cfg = model_zoo.get_config("COCO-Detection/faster_rcnn_nasnet_a_mobile_1x.yaml")
    cfg.MODEL.DEVICE = "cpu"
    for k, v in nasnet.items():
        cfg.MODEL.NASNET[k] = v
    with torch.device("meta"):
        return build_model(cfg)


def test_bad_genotype_path():
    with pytest.raises(ValueError, match="does not exist"):
        build_with(GENOTYPE="/nonexistent/cell.json")


def test_unknown_preset():
    with pytest.raises(ValueError, match="unknown preset 'nasnet_b'"):
        build_with(PRESET="nasnet_b")


def test_wrong_type_config_key():
    cfg = get_nasnet_cfg()
    with pytest.raises(ValueError, match="Type mismatch.*MODEL.NASNET.NUM_CELLS"):
        cfg.merge_from_list(["MODEL.NASNET.NUM_CELLS", "four"])


def test_bad_norm_and_feature_names():
    with pytest.raises(ValueError, match="MODEL.NASNET.NORM must be one of"):
        build_with(NORM="LayerNorm")
    with pytest.raises(ValueError, match="unknown NASNet feature 'res4'"):
        build_with(OUT_FEATURES=["res4"])


def test_unknown_model_zoo_config():
    with pytest.raises(FileNotFoundError, match="not a model-zoo config"):
        model_zoo.get_config_file("COCO-Detection/nope.yaml")


def test_load_config_reads_the_genotype_file_once(tmp_path):
    """train_net's config reads MODEL.NASNET.GENOTYPE at load; the model, the config check and
    the saved config.yaml need no file after that (the run records the cell, not a path)."""
    from nasnet_det.detection.engine import check_config, load_config
    from nasnet_det.genotypes import Genotype, get_genotype

    geno = tmp_path / "found.json"
    geno.write_text(json.dumps(TOY))
    opts = ["MODEL.DEVICE", "cpu", "MODEL.NASNET.GENOTYPE", str(geno),
            "MODEL.NASNET.NUM_CELLS", "1", "MODEL.NASNET.NUM_CONV_FILTERS", "8"]  # fmt: skip
    cfg = load_config("COCO-Detection/faster_rcnn_nasnet_a_mobile_1x.yaml", opts)
    geno.unlink()
    check_config(cfg)
    model = build_model(cfg)
    assert [b.combine for b in model.backbone.cells[2].blocks] == ["add", "concat", "add"]
    saved = tmp_path / "config.yaml"
    saved.write_text(cfg.dump())
    again = load_config(str(saved))
    assert get_genotype(again.MODEL.NASNET.GENOTYPE) == Genotype.from_dict(TOY)
    # A registered name stays a name.
    cfg = load_config("COCO-Detection/faster_rcnn_nasnet_a_mobile_1x.yaml")
    assert cfg.MODEL.NASNET.GENOTYPE == "nasnet_a"
