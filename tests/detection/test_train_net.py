"""tools/train_net.py end to end on CPU: the instant-test config trains and writes COCO metrics."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CONFIG = "configs/quick_schedules/faster_rcnn_nasnet_a_mobile_instant_test.yaml"
# The tool path is under test, not the network's size: one cell per stack, 8 filters.
TINY = ["MODEL.DEVICE", "cpu", "MODEL.NASNET.NUM_CELLS", "1", "MODEL.NASNET.NUM_CONV_FILTERS", "8"]


def run(args, cache, timeout=300):
    env = {**os.environ, "NASNET_DET_CACHE": str(cache), "OMP_NUM_THREADS": "2"}
    return subprocess.run(
        [sys.executable, str(REPO / "tools" / "train_net.py"), *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.slow
def test_instant_test_trains_evaluates_and_reloads(tmp_path):
    out = tmp_path / "out"
    r = run(
        ["--config-file", CONFIG, *TINY, "SOLVER.MAX_ITER", "1", "OUTPUT_DIR", str(out)],
        tmp_path / "cache",
    )
    assert r.returncode == 0, r.stderr[-3000:]
    metrics = json.loads((out / "coco_metrics.json").read_text())
    bbox = metrics["bbox"]
    assert {"AP", "AP50", "AP75", "APs", "APm"} <= set(bbox)
    assert all(v is None or (0.0 <= v <= 100.0 and not math.isnan(v)) for v in bbox.values())
    assert (out / "model_final.pth").is_file()
    # --eval-only reloads the trained weights (a Detectron2 checkpoint) and gives the same AP.
    r2 = run(
        ["--config-file", CONFIG, "--eval-only", *TINY, "MODEL.WEIGHTS",
         str(out / "model_final.pth"), "OUTPUT_DIR", str(tmp_path / "eval")],
        tmp_path / "cache",
    )  # fmt: skip
    assert r2.returncode == 0, r2.stderr[-3000:]
    again = json.loads((tmp_path / "eval" / "coco_metrics.json").read_text())["bbox"]
    assert again["AP"] == pytest.approx(bbox["AP"], abs=1e-6)


def test_bad_config_gives_one_line_error(tmp_path):
    r = run(["--config-file", "configs/nope.yaml", "MODEL.DEVICE", "cpu"], tmp_path / "cache")
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1].startswith("train_net.py: error: config file")


def test_wrong_type_override_is_one_value_error():
    from nasnet_det.detection.engine import load_config

    with pytest.raises(ValueError, match="MODEL.NASNET.NUM_CELLS expects a int"):
        load_config(str(REPO / CONFIG), ["MODEL.NASNET.NUM_CELLS", "four"])
    with pytest.raises(ValueError, match="KEY VALUE pairs"):
        load_config(str(REPO / CONFIG), ["MODEL.NASNET.NUM_CELLS"])
