"""Messages that name the file, key and fix, advise only flags the tool has, and no library
noise at the entry points. In-process unless said otherwise."""

from __future__ import annotations

import importlib.util
import os
import pickle
import sys
import warnings
from pathlib import Path

import pytest
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "detection"))
from harness import Payload, assert_clean_failure, run_tool  # noqa: E402
from tiny_datasets import write_coco  # noqa: E402

from nasnet_det.genotypes import NASNET_A  # noqa: E402
from nasnet_det.nasnet import build_nasnet  # noqa: E402

ROOT = HERE.parents[1]
INSTANT = ROOT / "configs/quick_schedules/faster_rcnn_nasnet_a_mobile_instant_test.yaml"
TINY = {"num_cells": 1, "num_conv_filters": 8}


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("messages")
    torch.manual_seed(0)
    torch.save(build_nasnet("nasnet_a_mobile", **TINY).state_dict(), tmp / "bare.pth")
    torch.save({"model": {"w": torch.zeros(1)}, "x": Payload(f"touch {tmp}/marker")},
               tmp / "evil.pth")  # fmt: skip
    over = {**TINY, "num_classes": 3}
    sd = build_nasnet("nasnet_a_mobile", **over).state_dict()
    arch = {"preset": "nasnet_a_mobile", "overrides": {**over, "genotype": NASNET_A.to_dict()}}
    torch.save({"model": sd, "ema": sd, "arch": arch}, tmp / "ckpt.pth")
    return tmp


@pytest.mark.parametrize(
    "name,message",
    [
        ("bare.pth", "(convert it first: tools/convert_weights.py --source SOURCE --arch ARCH)"),
        ("evil.pth", "If you trust the file, convert it first with tools/convert_weights.py "
         "--allow-pickle"),
    ],
)  # fmt: skip
def test_export_advises_the_tool_that_has_the_flag(files, tmp_path, name, message):
    """export_model.py has no --source, --arch or --allow-pickle: it names convert_weights.py."""
    out = tmp_path / "m.onnx"
    r = run_tool("export_model.py", "--format", "onnx", "--weights", files / name, "--output", out)
    assert_clean_failure(r, message)
    assert "(source=/arch=, --source/--arch)" not in r.stderr
    assert "Use --allow-pickle" not in r.stderr
    assert not out.exists() and not (files / "marker").exists()


@pytest.mark.parametrize("tool", ["predict.py", "export_model.py"])
def test_cuda_device_without_a_gpu_is_one_line(tmp_path, monkeypatch, tool):
    """Was torch's "Found no NVIDIA driver" traceback (the configs' default device is cuda)."""
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    ann, images = write_coco(tmp_path / "coco", num_images=1)
    if tool == "predict.py":
        args = ["--config-file", INSTANT, "--input", images, "--output", tmp_path / "out"]
    else:
        args = ["--format", "onnx", "--config-file", INSTANT, "--output", tmp_path / "out/m.onnx",
                "--random-weights"]  # fmt: skip
    r = run_tool(tool, *args, "MODEL.DEVICE", "cuda", "MODEL.WEIGHTS" if tool == "predict.py"
                 else "MODEL.NASNET.NUM_CELLS", str(tmp_path / "w.pth") if tool == "predict.py"
                 else "1")  # fmt: skip
    monkeypatch.undo()
    assert_clean_failure(r, "MODEL.DEVICE is 'cuda' but no CUDA GPU is available")
    assert not (tmp_path / "out").exists()


def test_export_refuses_random_weights_unless_asked(tmp_path):
    out = tmp_path / "m.onnx"
    r = run_tool("export_model.py", "--format", "onnx", "--config-file", INSTANT, "--output", out,
                 "MODEL.DEVICE", "cpu")  # fmt: skip
    assert_clean_failure(
        r,
        "MODEL.WEIGHTS is empty: the detector would be exported with random "
        "weights; add MODEL.WEIGHTS <trained checkpoint> (or --random-weights",
    )
    assert not out.exists()


def test_export_detector_honours_the_allow_pickle_variable(tmp_path, monkeypatch):
    """``export_model --config-file`` reads ``MODEL.WEIGHTS`` as train_net does: a Detectron2
    ``.pkl`` is refused (advising ``NASNET_DET_ALLOW_PICKLE=1``) and, with that variable,
    exported (the variable used to be ignored here)."""
    from tiny_datasets import TINY as TINY_DET
    from tiny_datasets import random_checkpoint

    state = torch.load(random_checkpoint(tmp_path / "w.pth", []), weights_only=True)["model"]
    pkl = tmp_path / "w.pkl"
    pkl.write_bytes(pickle.dumps({"model": {k: v.numpy() for k, v in state.items()},
                                  "__author__": "tests"}))  # fmt: skip
    out = tmp_path / "m.onnx"
    args = ["--format", "onnx", "--config-file", INSTANT, "--output", out, *TINY_DET,
            "MODEL.WEIGHTS", pkl]  # fmt: skip
    monkeypatch.delenv("NASNET_DET_ALLOW_PICKLE", raising=False)
    r = run_tool("export_model.py", *args)
    assert_clean_failure(r, "is a pickle (Detectron2's .pkl format); unpickling can run code")
    assert "Use NASNET_DET_ALLOW_PICKLE=1" in r.stderr and not out.exists()
    monkeypatch.setenv("NASNET_DET_ALLOW_PICKLE", "1")
    r = run_tool("export_model.py", *args)
    assert r.rc == 0, r.stderr[-2000:]
    assert out.is_file() and "max |exported - PyTorch|" in r.stdout


def test_convert_weights_help_and_error_agree_on_arch(files, tmp_path):
    r = run_tool("convert_weights.py", "--help")
    assert r.rc == 0
    assert "required with --source timm or pretrainedmodels" in " ".join(r.stdout.split())
    r = run_tool("convert_weights.py", "--source", "timm", "--input", files / "bare.pth",
                 "--output", tmp_path / "y.pth")  # fmt: skip
    assert_clean_failure(r, "--arch is required for --source timm")


def test_digits_cache_never_says_delete_a_folder_with_weights(tmp_path):
    """NASNET_DET_CACHE is also where weights are placed: the message must not advise deleting
    that folder."""
    from nasnet_det.data.digits import build_digits_dataset

    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "nasnetamobile.pth").write_bytes(b"placed weights")
    with pytest.raises(ValueError) as e:
        build_digits_dataset(tmp_path)
    assert "point NASNET_DET_CACHE at an empty or new folder" in str(e.value)
    assert "delete" not in str(e.value)
    assert (tmp_path / "raw" / "nasnetamobile.pth").read_bytes() == b"placed weights"


def test_pretrain_eval_only_uses_no_more_workers_than_cpus(files, tmp_path, monkeypatch):
    """On a one-CPU process the default --workers is 1: torch's "This DataLoader will create 4
    worker processes in total. Our suggested max number of worker ..." warning is not drawn."""
    spec = importlib.util.spec_from_file_location("pt_data", ROOT / "tests/pretrain/conftest.py")
    data = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(data)
    root = data.make_dataset(tmp_path / "data", classes=3, train=1, val=2)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        r = run_tool("pretrain_imagenet.py", "--eval-only", "--weights", files / "ckpt.pth",
                     "--data", root, "--batch-size", "2")  # fmt: skip
    monkeypatch.undo()
    assert r.rc == 0, r.stderr
    assert "on 6 images" in r.stdout
    assert "DataLoader will create" not in r.stderr and "worker" not in r.stderr.lower()


def test_train_net_prints_no_library_noise(tmp_path):
    """A CPU AMP run on a COCO file with category ids 3 and 7, evaluated: none of torch's CUDA
    lines, Detectron2's category-id mapping warning or pycocotools' progress prints; the AP
    table (Detectron2's and pycocotools' summary) is still there. A fresh interpreter: the
    warnings and the one-time log lines as a user meets them."""
    import subprocess

    ann, images = write_coco(tmp_path / "coco", num_images=2)
    opts = ["MODEL.DEVICE", "cpu", "OUTPUT_DIR", str(tmp_path / "out"), "MODEL.NASNET.NUM_CELLS",
            "1", "MODEL.NASNET.NUM_CONV_FILTERS", "8", "SOLVER.MAX_ITER", "1",
            "SOLVER.AMP.ENABLED", "True", "DATASETS.COCO_JSON", f"[['tc', '{ann}', '{images}']]",
            "DATASETS.TRAIN", "('tc',)", "DATASETS.TEST", "('tc',)",
            "MODEL.ROI_HEADS.NUM_CLASSES", "2"]  # fmt: skip
    p = subprocess.run(
        [sys.executable, str(ROOT / "tools/train_net.py"), "--config-file", str(INSTANT), *opts],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    both = p.stdout + p.stderr
    assert p.returncode == 0, both[-3000:]
    for noise in ("No CUDA runtime is found", "GradScaler is enabled, but CUDA is not available",
                  "Category ids in annotations are not in", "index created!",
                  "Running per image evaluation", "Accumulating evaluation results",
                  "Loading and preparing results"):  # fmt: skip
        assert noise not in both, noise
    assert "Average Precision  (AP) @[ IoU=0.50:0.95" in p.stdout
    assert (tmp_path / "out" / "coco_metrics.json").is_file()


def test_payload_helper_is_a_pickle():  # the hostile file above really would run its command
    assert b"system" in pickle.dumps(Payload("true"))
