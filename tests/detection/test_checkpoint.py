"""MODEL.WEIGHTS: classification checkpoints load into the detector; wrong ones fail clearly."""

import pickle

import pytest
import torch
from detectron2.modeling import build_model

from nasnet_det.detection import NASNetCheckpointer, classification_to_detectron2
from nasnet_det.detection.checkpoint import CheckpointMismatchError
from nasnet_det.nasnet import build_nasnet


def classification_checkpoint(path, **overrides):
    torch.manual_seed(1)
    args = {"num_cells": 1, "num_conv_filters": 8, **overrides}
    net = build_nasnet("nasnet_a_mobile", **args)
    for m in net.modules():  # non-trivial BN statistics, so loading them is visible
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
    torch.save({"model": net.state_dict(), "epoch": 3}, path)
    return net.state_dict()


def test_key_mapping_splits_at_reduction_cell_1(tiny_detector_cfg):
    cfg = tiny_detector_cfg()
    net = build_nasnet("nasnet_a_mobile", num_cells=1, num_conv_filters=8)
    mapped = classification_to_detectron2(net.state_dict(), cfg)
    assert "backbone.stem.conv.weight" in mapped
    # N=1: cells 0..4 form the first stage, 5 (reduction_cell_1) and 6 (cell_2) the second.
    assert "backbone.cells.4.pre0.conv.weight" in mapped
    assert "roi_heads.second_stage.cells.5.pre0.conv.weight" in mapped
    assert not any(k.startswith(("backbone.cells.5", "classifier", "aux_head")) for k in mapped)
    assert not any("classifier" in k or "aux_head" in k for k in mapped)
    # Exactly the NASNet tensors of Detectron2's model: its FrozenBatchNorm2d (made from BN)
    # keeps num_batches_tracked in 0.7.2, so the counters are mapped too; GN keeps no stats.
    for norm in ("FrozenBN", "GN"):
        cfg = tiny_detector_cfg(NORM=norm)
        mapped = classification_to_detectron2(net.state_dict(), cfg)
        want = {
            k
            for k in build_model(cfg).state_dict()
            if k.startswith(("backbone.", "roi_heads.second_stage."))
        }
        assert set(mapped) == want


@pytest.mark.parametrize("norm", ["FrozenBN", "GN"])
def test_classification_checkpoint_loads_into_detector(tmp_path, norm, tiny_detector_cfg):
    path = tmp_path / "imagenet.pth"
    sd = classification_checkpoint(path)
    cfg = tiny_detector_cfg(NORM=norm)
    model = build_model(cfg)
    NASNetCheckpointer(model, cfg=cfg).load(str(path))
    got = model.state_dict()
    for key in (
        "stem.conv.weight",
        "cells.3.pre0.conv.weight",
        "cells.6.blocks.0.left.sep1.depthwise.weight",
    ):
        dst = ("roi_heads.second_stage." if key.startswith("cells.6") else "backbone.") + key
        assert torch.equal(got[dst], sd[key])
    if norm == "FrozenBN":
        assert torch.equal(
            got["backbone.cells.2.pre0.bn.running_var"], sd["cells.2.pre0.bn.running_var"]
        )


def test_checkpoint_of_another_architecture_is_refused(tmp_path, tiny_detector_cfg):
    path = tmp_path / "wide.pth"
    classification_checkpoint(path, num_conv_filters=12)
    cfg = tiny_detector_cfg()
    model = build_model(cfg)
    with pytest.raises(CheckpointMismatchError, match="different architecture"):
        NASNetCheckpointer(model, cfg=cfg).load(str(path))


def test_unsafe_or_missing_checkpoint(tmp_path, tiny_detector_cfg):
    cfg = tiny_detector_cfg()
    model = build_model(cfg)
    ckpt = NASNetCheckpointer(model, cfg=cfg)
    with pytest.raises(ValueError, match="does not exist"):
        ckpt.load(str(tmp_path / "nope.pth"))
    evil = tmp_path / "evil.pth"
    evil.write_bytes(pickle.dumps({"model": object()}))
    with pytest.raises(ValueError, match="refusing to unpickle"):
        ckpt.load(str(evil))


def _saved_run(tmp_path, tiny_detector_cfg):
    """A run folder written by the checkpointer itself: model_0000001, model_final."""
    cfg = tiny_detector_cfg()
    model = build_model(cfg)
    out = tmp_path / "run"
    out.mkdir()
    ckpt = NASNetCheckpointer(model, str(out), cfg=cfg)
    ckpt.save("model_0000001", iteration=1)
    ckpt.save("model_final", iteration=3)
    return cfg, model, out


def test_saves_are_atomic_and_tagged(tmp_path, tiny_detector_cfg):
    cfg, model, out = _saved_run(tmp_path, tiny_detector_cfg)
    assert sorted(p.name for p in out.iterdir()) == [
        "last_checkpoint",
        "model_0000001.pth",
        "model_final.pth",
    ]  # no temporary file beside them
    assert (out / "last_checkpoint").read_text() == "model_final.pth"
    saved = torch.load(out / "model_final.pth", map_location="cpu", weights_only=True)
    assert saved["iteration"] == 3
    assert all(torch.equal(saved["model"][k], v) for k, v in model.state_dict().items())


def test_resume_skips_a_damaged_checkpoint_for_the_newest_good_one(
    tmp_path, caplog, tiny_detector_cfg
):
    cfg, model, out = _saved_run(tmp_path, tiny_detector_cfg)
    blob = (out / "model_final.pth").read_bytes()
    (out / "model_final.pth").write_bytes(blob[: len(blob) // 2])  # an old, non-atomic write
    (out / ".model_final.pth.abc123.tmp").write_bytes(b"left by a kill")
    ckpt = NASNetCheckpointer(build_model(cfg), str(out), cfg=cfg)
    with caplog.at_level("WARNING", logger="nasnet_det.detection.checkpoint"):
        extra = ckpt.resume_or_load("", resume=True)
    assert extra["iteration"] == 1
    assert "model_final.pth' is truncated or damaged" in caplog.text
    assert "resuming from the newest good checkpoint" in caplog.text
    assert not (out / ".model_final.pth.abc123.tmp").exists()
    # Nothing whole left: one error, no silent start from scratch.
    (out / "model_0000001.pth").write_bytes(b"")
    with pytest.raises(ValueError, match="no usable checkpoint to resume from"):
        ckpt.resume_or_load("", resume=True)


def test_last_checkpoint_may_not_leave_the_output_folder(tmp_path, tiny_detector_cfg):
    cfg, model, out = _saved_run(tmp_path, tiny_detector_cfg)
    ckpt = NASNetCheckpointer(model, str(out), cfg=cfg)
    for name in ("../elsewhere/evil.pkl", "/etc/passwd", ".", ""):
        (out / "last_checkpoint").write_text(name)
        with pytest.raises(ValueError, match="not a file inside OUTPUT_DIR"):
            ckpt.resume_or_load("", resume=True)
    (tmp_path / "evil.pth").write_bytes((out / "model_final.pth").read_bytes())
    (out / "link.pth").symlink_to(tmp_path / "evil.pth")  # a link out of the folder, too
    (out / "last_checkpoint").write_text("link.pth")
    with pytest.raises(ValueError, match="not a file inside OUTPUT_DIR"):
        ckpt.resume_or_load("", resume=True)


class _Marker:
    """Unpickling this creates a file: proof that code ran."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_pkl_needs_the_opt_in(tmp_path, monkeypatch, tiny_detector_cfg):
    cfg = tiny_detector_cfg()
    model = build_model(cfg)
    marker = tmp_path / "marker"
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps({"model": {"x": _Marker(marker)}, "__author__": "x"}))
    with pytest.raises(
        ValueError, match=r"Use NASNET_DET_ALLOW_PICKLE=1 \(or train_net.py --allow-pickle\)"
    ):
        NASNetCheckpointer(model, cfg=cfg).load(str(evil))
    assert not marker.exists()
    # Detectron2's own .pkl layout (numpy arrays) loads once the user opts in.
    sd = {k: v.numpy() for k, v in model.state_dict().items() if k.startswith("backbone.stem")}
    sd = {k: v + 1 for k, v in sd.items() if v.dtype.kind == "f"}
    good = tmp_path / "d2.pkl"
    good.write_bytes(pickle.dumps({"model": sd, "__author__": "Detectron2 Model Zoo"}))
    with pytest.raises(ValueError, match="--allow-pickle"):
        NASNetCheckpointer(model, cfg=cfg).load(str(good))
    monkeypatch.setenv("NASNET_DET_ALLOW_PICKLE", "1")
    from nasnet_det.detection.checkpoint import allow_pickle_from_env

    NASNetCheckpointer(model, cfg=cfg, allow_pickle=allow_pickle_from_env()).load(str(good))
    for k, v in sd.items():
        assert torch.equal(model.state_dict()[k], torch.from_numpy(v))


def test_best_checkpoint_is_no_resume_point(tmp_path, tiny_detector_cfg):
    cfg, model, out = _saved_run(tmp_path, tiny_detector_cfg)
    NASNetCheckpointer(model, str(out), cfg=cfg).save("model_best", iteration=1)
    assert (out / "model_best.pth").is_file()
    assert (out / "last_checkpoint").read_text() == "model_final.pth"
