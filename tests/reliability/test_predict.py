"""tools/predict.py under bad input: exit 2, one line naming the problem, no
traceback, and the output folder exactly as before (here it holds an earlier picture)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "detection"))
from harness import assert_clean_failure, run_tool, snapshot  # noqa: E402
from tiny_datasets import CONFIG, TINY, dataset_opts, write_coco  # noqa: E402

REPO = HERE.parents[1]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from tiny_datasets import random_checkpoint

    tmp = tmp_path_factory.mktemp("predict_bad")
    ann, images = write_coco(tmp / "coco", num_images=2)
    weights = random_checkpoint(tmp / "weights.pth", [])
    (tmp / "empty").mkdir()
    (tmp / "notes.txt").write_text("not a picture")
    (tmp / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    (tmp / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 not really a video")
    (tmp / "a_file").write_text("x")
    (tmp / "twins" / "one").mkdir(parents=True)
    (tmp / "twins" / "two").mkdir()
    for sub in ("one", "two"):
        (tmp / "twins" / sub / "same.jpg").write_bytes((images / "img000.jpg").read_bytes())
    jpeg = (images / "img001.jpg").read_bytes()
    (tmp / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])  # a whole header, half the data
    other = tmp / "other.jpg"
    other.write_bytes((images / "img001.jpg").read_bytes())
    return tmp, ann, images, weights


# (arguments, expected message); {img}, {images}, {w}, {t}: the fixture's paths
CASES = [
    (["--input", "{t}/nope.jpg"], "does not exist"),
    (["--input", "/dev/null"], "--input '/dev/null' is not a regular file, a folder or a pattern"),
    (["--input", "/dev/zero"], "'/dev/zero' is not a regular file"),
    (["--input", "{t}/empty"], "has no images"),
    (["--input", "{t}/nothing*.jpg"], "matches no image files"),
    (["--input", "{t}/notes.txt"], "is neither an image"),
    (["--input", "{t}/broken.jpg"], "is not a readable image"),
    (["--input", "{t}/broken.mp4"], "is not a video OpenCV can read"),
    (["--input", "{t}/twins/*/same.jpg"], "both give the picture 'same.jpg'"),
    (["--input", "{img}", "--confidence-threshold", "1.5"], "must be in [0, 1], got 1.5"),
    (["--input", "{img}", "MODEL.WEIGHTS", ""], "MODEL.WEIGHTS is empty"),
    (["--input", "{img}", "MODEL.WEIGHTS", "{t}/gone.pth"], "gone.pth"),
    (["--input", "{img}", "--dataset", "nope"], "--dataset 'nope' is not registered"),
    (["--input", "{t}/other.jpg", "--dataset", "tc"], "is not one of the 2 images of dataset"),
    (["--input", "{t}/broken.mp4", "--dataset", "tc"], "the input is a video"),
    (["--input", "{img}", "--output", "{t}/a_file"], "is a file, expected a folder"),
    (["--input", "{img}", "MODEL.NASNET.NUM_CELLS"], "KEY VALUE"),
    (["--input", "{img}", "DATASETS.COCO_JSON", "[['tc', '{t}/no.json', '{images}']]"],
     "no.json' does not exist"),
    (["--input", "{img}", "--config-file", "{t}/none.yaml"], "none.yaml"),
]  # fmt: skip


@pytest.mark.parametrize("args, message", CASES, ids=[f"case{i}" for i in range(len(CASES))])
def test_bad_input_fails_cleanly(world, tmp_path, args, message):
    tmp, ann, images, weights = world
    out = tmp_path / "out"
    out.mkdir()
    (out / "earlier.jpg").write_bytes(b"an earlier result")
    subs = {"{t}": str(tmp), "{img}": str(images / "img000.jpg"), "{images}": str(images)}
    for k, v in subs.items():
        args = [a.replace(k, v) for a in args]
    base = ["--config-file", CONFIG, "--output", str(out)]
    opts = [*TINY, *dataset_opts((ann, images), None, "tc", "tc"), "MODEL.WEIGHTS", str(weights)]
    # Overrides come last on the command line (argparse REMAINDER); the case's go after ours.
    cfg_keys = [i for i, a in enumerate(args) if a.split(".")[0] in ("MODEL", "DATASETS")]
    extra = args[cfg_keys[0] :] if cfg_keys else []
    flags = args[: cfg_keys[0]] if cfg_keys else args
    before = snapshot(out)
    r = run_tool("predict.py", *base, *flags, *opts, *extra, cwd=REPO)
    assert_clean_failure(r, message, before, out)


@pytest.mark.parametrize("name", ["broken.mp4", "truncated.jpg"])
def test_unreadable_input_leaves_no_output_folder(world, tmp_path, name):
    """An unreadable video, or a JPEG whose header is whole but its data cut, used to leave an
    empty --output folder: the first frame is read, and every image decoded, before it exists."""
    tmp, ann, images, weights = world
    out = tmp_path / "out"
    opts = [*TINY, *dataset_opts((ann, images), None, "tc", "tc"), "MODEL.WEIGHTS", str(weights)]
    r = run_tool("predict.py", "--config-file", CONFIG, "--output", str(out), "--input",
                 str(tmp / name), *opts, cwd=REPO)  # fmt: skip
    message = "is not a video OpenCV can read" if name.endswith(".mp4") else "not a readable image"
    assert_clean_failure(r, message)
    assert not out.exists()


def _pkl(path: Path, state: dict, **extra) -> Path:
    """A Detectron2-format ``.pkl`` (numpy arrays, ``__author__``) holding ``state``."""
    import pickle

    model = {k: v.numpy() for k, v in state.items()}
    path.write_bytes(pickle.dumps({"model": model, "__author__": "tests", **extra}))
    return path


def test_predict_honours_the_allow_pickle_variable(world, tmp_path, monkeypatch):
    """``NASNET_DET_ALLOW_PICKLE=1`` (the opt-in the refusal advises) lets predict read a trusted
    Detectron2 ``.pkl``, as it does for train_net; it used to be ignored, so the advice led
    nowhere. Without it a ``.pkl`` is refused before any output and its payload never runs."""
    import torch
    from harness import Payload

    tmp, ann, images, weights = world
    state = torch.load(weights, map_location="cpu", weights_only=True)["model"]
    trusted = _pkl(tmp_path / "trusted.pkl", state)
    evil = _pkl(tmp_path / "evil.pkl", state, x=Payload(f"touch {tmp_path}/marker"))
    opts = [*TINY, *dataset_opts((ann, images), None, "tc", "tc")]

    def predict(out: Path, w: Path):
        return run_tool("predict.py", "--config-file", CONFIG, "--output", str(out), "--input",
                        str(images), *opts, "MODEL.WEIGHTS", str(w), cwd=REPO)  # fmt: skip

    monkeypatch.delenv("NASNET_DET_ALLOW_PICKLE", raising=False)
    r = predict(tmp_path / "refused", evil)
    assert_clean_failure(r, "is a pickle (Detectron2's .pkl format); unpickling can run code")
    assert "Use NASNET_DET_ALLOW_PICKLE=1" in r.stderr
    assert not (tmp_path / "refused").exists() and not (tmp_path / "marker").exists()
    r = predict(tmp_path / "pth", weights)
    assert r.rc == 0, r.stderr[-2000:]
    monkeypatch.setenv("NASNET_DET_ALLOW_PICKLE", "1")
    r = predict(tmp_path / "pkl", trusted)
    assert r.rc == 0, r.stderr[-2000:]
    # The same weights: the same detections as from the .pth (not a random detector's).
    name = "coco_instances_results.json"
    assert json.loads((tmp_path / "pth" / name).read_text())  # some detections to compare
    assert (tmp_path / "pkl" / name).read_text() == (tmp_path / "pth" / name).read_text()
