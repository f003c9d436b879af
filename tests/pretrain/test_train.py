"""Pretraining end to end on a generated class-folder dataset (CPU, instant_test.yaml)."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nasnet_det.pretrain import CHECKPOINT_NAME, load_config, train

ROOT = Path(__file__).resolve().parents[2]
INSTANT = ROOT / "configs/ImageNet/instant_test.yaml"
TOOL = ROOT / "tools/pretrain_imagenet.py"


def _tool(*args: str, **kw) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, str(TOOL), *args]
    return subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw
    )


def test_one_epoch_cpu_finite_loss_and_accuracy(dataset, tmp_path):
    lines: list[str] = []
    cfg = load_config(INSTANT, ["train.epochs", "1"])
    metrics = train(cfg, dataset, tmp_path / "out", log=lines.append, progress=False)
    assert math.isfinite(metrics["train_loss"]) and metrics["train_loss"] > 0
    assert 0 <= metrics["top1"] <= metrics["top5"] <= 100 and metrics["val_images"] == 6
    assert any("val top1" in s and "EMA top1" in s for s in lines)
    ckpt = torch.load(tmp_path / "out" / CHECKPOINT_NAME, weights_only=True)
    assert ckpt["epoch"] == 1 and ckpt["step"] == 6 and ckpt["batch"] == 0
    assert set(ckpt["model"]) == set(ckpt["ema"])
    # ScheduledDropPath was driven by the step: 5 of 6 steps done when the last batch ran.
    assert ckpt["scheduler"]["step_count"] == 6
    assert (tmp_path / "out" / "metrics.jsonl").is_file()


@pytest.mark.slow
def test_kill_9_mid_epoch_then_resume_gives_identical_weights(dataset, tmp_path):
    cfg = load_config(INSTANT)
    train(cfg, dataset, tmp_path / "ref", log=lambda s: None, progress=False)
    ref = torch.load(tmp_path / "ref" / CHECKPOINT_NAME, weights_only=True)
    total = ref["step"]

    out = tmp_path / "killed"
    args = ["--config", str(INSTANT), "--data", str(dataset), "--output", str(out), "--no-progress"]
    proc = _tool(*args)
    for line in proc.stdout:  # kill right after the checkpoint at step 8 (epoch 2, batch 2)
        if line.startswith("checkpoint:") and line.split()[-1] == "8":
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    killed = torch.load(out / CHECKPOINT_NAME, weights_only=True)
    assert 8 <= killed["step"] < total and killed["batch"] > 0  # really stopped mid-epoch

    proc = _tool(*args, "--resume")
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    assert "resumed from" in stdout
    got = torch.load(out / CHECKPOINT_NAME, weights_only=True)
    assert got["step"] == total
    for key in ("model", "ema"):
        for name, value in ref[key].items():
            assert torch.equal(got[key][name], value), f"{key}.{name} differs after resume"
    assert got["metrics"] == ref["metrics"]
    # one line per epoch, as in the uninterrupted run (the killed run had written none of epoch 2)
    ref_lines = (tmp_path / "ref" / "metrics.jsonl").read_text()
    assert (out / "metrics.jsonl").read_text() == ref_lines and ref_lines.count("\n") == 2
    assert not [p.name for p in out.iterdir() if ".tmp" in p.name]


def test_corrupt_and_truncated_images_are_skipped_and_counted(dataset, tmp_path):
    (dataset / "train/class0/garbage.png").write_bytes(b"not an image at all")
    good = (dataset / "train/class1/0.png").read_bytes()
    (dataset / "train/class1/truncated.png").write_bytes(good[: len(good) // 2])
    (dataset / "val/class2/broken.jpg").write_bytes(b"\xff\xd8\xff broken")
    cfg = load_config(INSTANT, ["train.epochs", "1", "optim.batch_size", "13"])  # 26 = 2 x 13
    with pytest.warns(UserWarning, match="skipping unreadable image") as rec:
        metrics = train(cfg, dataset, tmp_path / "out", log=lambda s: None, progress=False)
    assert metrics["skipped_images"] == 2 and metrics["val_skipped"] == 1
    assert {Path(str(w.message).split()[3]).name for w in rec} >= {"garbage.png", "truncated.png"}
    assert math.isfinite(metrics["train_loss"]) and metrics["val_images"] == 6


@pytest.mark.slow
def test_torchrun_two_cpu_processes(dataset, tmp_path):
    """DistributedDataParallel on CPU (gloo): each rank takes half of every global batch, and
    the evaluation is summed over ranks."""
    out = tmp_path / "ddp"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
        "--master_port", str(29500 + os.getpid() % 1000), str(TOOL), "--config", str(INSTANT),
        "--data", str(dataset), "--output", str(out), "--no-progress", "train.epochs", "1",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.count("epoch 1/1") == 1  # one process reports
    ckpt = torch.load(out / CHECKPOINT_NAME, weights_only=True)
    assert ckpt["step"] == 3  # 24 images / (4 per rank x 2 ranks)
    assert ckpt["metrics"]["val_images"] == 6 and math.isfinite(ckpt["metrics"]["train_loss"])
