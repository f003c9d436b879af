"""The Python API under bad input: one ``ValueError`` whose message names what was wrong (the
argument, the file, the field), never a bare ``TypeError``/``KeyError`` from deep inside, and no
payload in a file ever runs."""

from __future__ import annotations

import json
import pickle
import re
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # harness.py (no package here)
from harness import Payload  # noqa: E402

from nasnet_det.genotypes import NASNET_A, Genotype, get_genotype  # noqa: E402
from nasnet_det.nasnet import NASNetConfig, build_nasnet  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
INSTANT = ROOT / "configs/quick_schedules/faster_rcnn_nasnet_a_mobile_instant_test.yaml"


def _genotype_with(**changes) -> dict:
    d = json.loads(json.dumps(NASNET_A.to_dict()))
    for key, value in changes.items():
        field, _, rest = key.partition("__")
        if rest:
            d[field][0][rest] = value
        else:
            d[field] = value
    return d


def _detection_load_config(*args):
    from nasnet_det.detection.engine import load_config

    return load_config(*args)


def _checkpointer_load(path: str, allow_pickle: bool = False):
    from detectron2.modeling import build_model

    from nasnet_det.detection import NASNetCheckpointer

    cfg = _detection_load_config(
        str(INSTANT),
        [
            "MODEL.DEVICE",
            "cpu",
            "MODEL.NASNET.NUM_CELLS",
            "1",
            "MODEL.NASNET.NUM_CONV_FILTERS",
            "8",
        ],
    )
    return NASNetCheckpointer(build_model(cfg), cfg=cfg, allow_pickle=allow_pickle).load(path)


def _safe_load_config(path: str):
    from nasnet_det.config import CfgNode, load_config

    defaults = CfgNode({"A": 1, "B": CfgNode({"C": 0.5})})
    return load_config(defaults, path)


def _load_weights(path: str):
    from nasnet_det.convert import load_state_dict_file

    return load_state_dict_file(path)


# (id, call taking the scratch folder, expected substring of the ValueError's message)
CASES = [
    ("build-unknown-preset", lambda t: build_nasnet("nasnet_z"), "unknown preset 'nasnet_z'"),
    ("build-num-cells-0", lambda t: build_nasnet("nasnet_a_mobile", num_cells=0),
     "num_cells must be a positive integer, got 0"),
    ("build-num-cells-float", lambda t: build_nasnet("nasnet_a_mobile", num_cells=1.5),
     "num_cells must be a positive integer, got 1.5"),
    ("build-stem-multiplier", lambda t: build_nasnet("nasnet_a_mobile", stem_multiplier=-1.0),
     "stem_multiplier must be a number in (0, 2048], got -1.0"),
    ("build-keep-prob", lambda t: build_nasnet("nasnet_a_mobile", drop_path_keep_prob=1.5),
     "drop_path_keep_prob must be in (0, 1]"),
    ("build-unknown-argument", lambda t: build_nasnet("nasnet_a_mobile", num_cell=2),
     "unknown build_nasnet argument(s) ['num_cell']"),
    ("build-image-too-small", lambda t: build_nasnet("nasnet_a_mobile", num_cells=1,
     num_conv_filters=8, image_size=8), "image too small for the auxiliary head"),
    ("config-pool-pad", lambda t: NASNetConfig(pool_pad="same"),
     "pool_pad must be 'tf' or 'timm', got 'same'"),
    ("config-stem", lambda t: NASNetConfig(stem="mnist"), "stem must be 'imagenet' or 'cifar'"),
    ("config-genotype-int", lambda t: NASNetConfig(genotype=42),
     "genotype must be a registered name, a .json path, a dict or a Genotype, got int"),
    ("config-from-dict-unknown", lambda t: NASNetConfig.from_dict({"bogus": 1}),
     "unknown key(s) ['bogus']"),
    ("genotype-unknown-name", lambda t: get_genotype("nasnet_z"), "unknown genotype 'nasnet_z'"),
    ("genotype-missing-file", lambda t: get_genotype(str(t / "nope.json")),
     "nope.json' does not exist"),
    ("genotype-folder", lambda t: get_genotype(str(t / "cells.json")),
     "cells.json' is a folder"),
    ("genotype-not-utf8", lambda t: Genotype.from_json(t / "latin1.json"),
     "latin1.json' is not UTF-8"),
    ("genotype-broken-json", lambda t: Genotype.from_json(t / "broken.json"),
     "broken.json' is not valid JSON"),
    ("genotype-unknown-op", lambda t: Genotype.from_dict(_genotype_with(
     normal__left=["conv_9x9", 0]), "g"), "block 0, left branch: unknown op 'conv_9x9'"),
    ("genotype-concat-range", lambda t: Genotype.from_dict(_genotype_with(
     normal_concat=[1, 99]), "g"), "'normal_concat', position 1: state 99 is out of range"),
    ("genotype-missing-field", lambda t: Genotype.from_dict({"normal": []}, "g"),
     "missing field 'normal_concat'"),
    ("load-config-python-tag", lambda t: _detection_load_config(str(t / "evil.yaml")),
     "builds Python objects"),
    ("load-config-unknown-key", lambda t: _detection_load_config(str(INSTANT),
     ["MODEL.NASNET.NUM_CELL", "2"]), "unknown config key MODEL.NASNET.NUM_CELL"),
    ("load-config-wrong-type", lambda t: _detection_load_config(str(INSTANT),
     ["SOLVER.MAX_ITER", "many"]), "SOLVER.MAX_ITER expects a int"),
    ("load-config-missing", lambda t: _detection_load_config(str(t / "nope.yaml")),
     "neither a path nor a model-zoo config"),
    ("safe-load-config-empty", lambda t: _safe_load_config(str(t / "empty.yaml")), "is empty"),
    ("safe-load-config-tag", lambda t: _safe_load_config(str(t / "evil.yaml")),
     "builds Python objects"),
    ("weights-flipped", lambda t: _load_weights(str(t / "flipped.pth")),
     "fails its CRC-32 check"),
    ("weights-payload", lambda t: _load_weights(str(t / "evil.pth")), "refusing to unpickle"),
    ("checkpointer-pkl-payload", lambda t: _checkpointer_load(str(t / "evil.pkl")),
     "Use NASNET_DET_ALLOW_PICKLE=1 (or train_net.py --allow-pickle)"),
    ("checkpointer-empty", lambda t: _checkpointer_load(str(t / "empty.pth")), "is empty"),
]  # fmt: skip


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("api_scratch")
    cmd = f"touch {tmp / 'marker'}"
    (tmp / "cells.json").mkdir()
    (tmp / "latin1.json").write_bytes('{"name": "caf\xe9"}'.encode("latin-1"))
    (tmp / "broken.json").write_text('{"normal": [')
    (tmp / "evil.yaml").write_text(f'A: !!python/object/apply:os.system ["{cmd}"]\n')
    (tmp / "empty.yaml").write_text("# nothing\n")
    torch.save({"w": torch.randn(64, 256)}, tmp / "good.pth")
    blob = (tmp / "good.pth").read_bytes()
    middle = len(blob) // 2
    flipped = blob[:middle] + bytes(b ^ 0xFF for b in blob[middle : middle + 4096])
    (tmp / "flipped.pth").write_bytes(flipped + blob[middle + 4096 :])
    torch.save({"w": torch.zeros(1), "x": Payload(cmd)}, tmp / "evil.pth")
    (tmp / "evil.pkl").write_bytes(pickle.dumps({"model": Payload(cmd), "__author__": "x"}))
    (tmp / "empty.pth").write_bytes(b"")
    return tmp


@pytest.mark.parametrize("call,message", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_value_error(scratch, call, message):
    with pytest.raises(ValueError) as info:
        call(scratch)
    text = str(info.value)
    assert message in text, text
    assert "\n" not in text.strip()
    assert not (scratch / "marker").exists()  # no yaml tag or pickle ran


def test_table_covers_at_least_ten_inputs():
    assert len(CASES) >= 10 and len({c[0] for c in CASES}) == len(CASES)


def test_register_genotype_refuses_built_ins_non_genotypes_and_path_like_names():
    from nasnet_det.genotypes import GENOTYPES, NASNET_A, register_genotype

    for args, msg in [
        (("nasnet_a", NASNET_A), "genotype name 'nasnet_a' is taken"),
        (("mine", NASNET_A.to_dict()), "needs a Genotype (Genotype.from_dict"),
        ((None, NASNET_A), "genotype name must be a non-empty string, not a path; got None"),
        (("cells/a.json", NASNET_A), "not a path"),
    ]:
        with pytest.raises(ValueError, match=re.escape(msg)):
            register_genotype(*args)
    assert GENOTYPES["nasnet_a"] is NASNET_A and "mine" not in GENOTYPES
