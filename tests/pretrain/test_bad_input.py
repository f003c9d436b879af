"""Bad input to pretraining: one clear error each, nothing written to OUT."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import torch

from nasnet_det.pretrain import load_config, train

ROOT = Path(__file__).resolve().parents[2]
INSTANT = ROOT / "configs/ImageNet/instant_test.yaml"


def _tool():
    spec = importlib.util.spec_from_file_location(
        "pretrain_imagenet", ROOT / "tools/pretrain_imagenet.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _fails(tool, capsys, *args, match: str) -> None:
    assert tool.main(list(args)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("pretrain_imagenet: error:") and len(err.splitlines()) == 1, err
    assert match in err, err


def test_data_folder_without_images(tmp_path, capsys):
    for split in ("train", "val"):
        (tmp_path / "data" / split / "cat").mkdir(parents=True)
        (tmp_path / "data" / split / "cat" / "notes.txt").write_text("no images here")
    out = tmp_path / "out"
    args = ["--config", str(INSTANT), "--data", str(tmp_path / "data"), "--output", str(out)]
    _fails(_tool(), capsys, *args, match="no images found")
    assert not out.exists()
    _fails(
        _tool(),
        capsys,
        "--config",
        str(INSTANT),
        "--data",
        str(tmp_path / "nowhere"),
        "--output",
        str(out),
        match="is not a directory",
    )
    assert not out.exists()


def test_class_missing_from_val(dataset, tmp_path, capsys):
    shutil.rmtree(dataset / "val" / "class1")
    out = tmp_path / "out"
    args = ["--config", str(INSTANT), "--data", str(dataset), "--output", str(out)]
    _fails(_tool(), capsys, *args, match="missing from val/: class1")
    assert not out.exists()


def test_bad_config_and_overrides(dataset, tmp_path, capsys):
    out = tmp_path / "out"
    base = ["--config", str(INSTANT), "--data", str(dataset), "--output", str(out)]
    _fails(_tool(), capsys, *base, "optim.lrr", "0.1", match="unknown config key optim.lrr")
    _fails(_tool(), capsys, *base, "optim.lr", match="KEY VALUE pairs")
    _fails(_tool(), capsys, *base, "model.overrides.num_cells", "0", match="num_cells")
    _fails(_tool(), capsys, *base, "model.preset", "nasnet_b", match="unknown preset")
    assert not out.exists()


def test_resume_refuses_missing_and_pickled_checkpoints(dataset, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["--config", str(INSTANT), "--data", str(dataset), "--output", str(out), "--resume"]
    _fails(_tool(), capsys, *args, match="no training run to continue")
    out.mkdir()
    torch.save({"model": {}, "hook": _Opaque()}, out / "last.pth")
    _fails(_tool(), capsys, *args, match="could not be read")
    assert [p.name for p in out.iterdir()] == ["last.pth"]


def test_eval_only_refuses_pickle_and_unknown_weights(dataset, tmp_path, capsys):
    pickled = tmp_path / "w.pth"
    torch.save({"model": {"stem.conv.weight": torch.zeros(1)}, "x": _Opaque()}, pickled)
    base = ["--eval-only", "--data", str(dataset), "--weights"]
    _fails(_tool(), capsys, *base, str(pickled), match="--allow-pickle")
    bare = tmp_path / "bare.pth"
    torch.save({"conv0.conv.weight": torch.zeros(1)}, bare)
    _fails(_tool(), capsys, *base, str(bare), match="pass --source and --arch")


def test_training_checkpoint_of_another_architecture_is_refused(dataset, tmp_path, capsys):
    cfg = load_config(INSTANT, ["train.epochs", "1", "train.max_steps", "1"])
    train(cfg, dataset, tmp_path / "run", log=lambda s: None, progress=False)
    ckpt = tmp_path / "run" / "last.pth"
    base = ["--eval-only", "--data", str(dataset), "--weights", str(ckpt)]
    _fails(_tool(), capsys, *base, "--arch", "nasnet_a_large", match="not 'nasnet_a_large'")
    # The same checkpoint evaluates fine with its own architecture and preprocessing.
    assert _tool().main([*base, "--workers", "0"]) == 0
    printed = capsys.readouterr().out
    assert "top1" in printed and '"image_size": 96' in printed


class _Opaque:
    pass
