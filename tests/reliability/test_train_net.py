"""tools/train_net.py under bad input and faults: exit 2, one line naming the problem (the key,
the file), no traceback, the output folder as it was (none created), no payload ever runs.

Bad inputs run in-process (one Detectron2 import for the table); every check happens before
Detectron2's ``default_setup`` writes to OUTPUT_DIR, so no case trains. A full disk is a failing
``fsync`` during a checkpoint write (in-process, two tiny iterations); kill -9 during the write of
a periodic and of the final checkpoint runs in subprocesses (``slow``).
"""

from __future__ import annotations

import errno
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # harness.py (no package here)
from harness import (  # noqa: E402
    Payload,
    assert_clean_failure,
    make_read_only,
    run_tool,
    snapshot,
)

ROOT = Path(__file__).resolve().parents[2]
INSTANT = ROOT / "configs/quick_schedules/faster_rcnn_nasnet_a_mobile_instant_test.yaml"
TOOL = "train_net.py"
# One cell per stack, 8 filters, no evaluation: a case that got past the checks would train fast.
TINY = ["MODEL.NASNET.NUM_CELLS", "1", "MODEL.NASNET.NUM_CONV_FILTERS", "8", "DATASETS.TEST", "()"]
TAIL = ["MODEL.DEVICE", "cpu", "OUTPUT_DIR", "{out}", *TINY]
RUN = ["--config-file", "{cfg}"]


# (id, arguments, expected substring of the one error line, state of OUT before the run).
# Placeholders: {cfg} the instant-test config, {out} OUT, {tmp} scratch files. OUT is "none"
# (absent: must stay absent), "file" (a file), "read-only", or a prepared run folder: "redirect"
# (last_checkpoint points outside), "pkl-inside" (names a .pkl in OUT), "all-damaged".
CASES = [
    ("yaml-python-tag", ["--config-file", "{tmp}/evil.yaml", *TAIL], "builds Python objects",
     "none"),
    ("yaml-empty", ["--config-file", "{tmp}/empty.yaml", *TAIL], "is empty", "none"),
    ("yaml-broken", ["--config-file", "{tmp}/broken.yaml", *TAIL], "is not valid YAML", "none"),
    ("yaml-a-list", ["--config-file", "{tmp}/list.yaml", *TAIL], "expected a mapping", "none"),
    ("yaml-not-utf8", ["--config-file", "{tmp}/latin1.yaml", *TAIL], "is not UTF-8", "none"),
    ("yaml-missing", ["--config-file", "{tmp}/nope.yaml", *TAIL], "does not exist", "none"),
    ("yaml-folder", ["--config-file", "{tmp}", *TAIL], "is a folder", "none"),
    ("yaml-missing-base", ["--config-file", "{tmp}/no_base.yaml", *TAIL], "_BASE_", "none"),
    ("yaml-base-two-file-cycle", ["--config-file", "{tmp}/cycle_a.yaml", *TAIL],
     "_BASE_ 'cycle_a.yaml' inherits from itself (a cycle)", "none"),
    ("yaml-base-not-utf8", ["--config-file", "{tmp}/top_latin1.yaml", *TAIL],
     "/latin1.yaml' is not UTF-8 text", "none"),
    ("yaml-base-python-tag", ["--config-file", "{tmp}/top_evil.yaml", *TAIL],
     "/evil.yaml' uses a YAML tag that builds Python objects", "none"),
    ("yaml-unknown-key", ["--config-file", "{tmp}/unknown.yaml", *TAIL],
     "unknown config key MODEL.NASNET.NUM_CELL", "none"),
    ("model-zoo-unknown", ["--config-file", "COCO-Detection/nope.yaml", *TAIL],
     "neither a path nor a model-zoo config", "none"),
    ("cli-unknown-key", [*RUN, *TAIL, "SOLVER.MAX_ITERS", "3"],
     "unknown config key SOLVER.MAX_ITERS", "none"),
    ("cli-odd-overrides", [*RUN, *TAIL, "SOLVER.MAX_ITER"], "KEY VALUE pairs", "none"),
    ("cli-wrong-type", [*RUN, *TAIL, "MODEL.NASNET.NUM_CELLS", "four"],
     "MODEL.NASNET.NUM_CELLS expects a int", "none"),
    ("cli-unknown-flag", [*RUN, "--bogus", *TAIL], "unrecognized arguments: --bogus", "none"),
    ("stem-multiplier-negative", [*RUN, *TAIL, "MODEL.NASNET.STEM_MULTIPLIER", "-1.0"],
     "MODEL.NASNET.STEM_MULTIPLIER must be a number in (0, 2048], got -1.0", "none"),
    ("num-cells-0", [*RUN, *TAIL, "MODEL.NASNET.NUM_CELLS", "0"],
     "MODEL.NASNET.NUM_CELLS must be a positive integer, got 0", "none"),
    ("keep-prob-0", [*RUN, *TAIL, "MODEL.NASNET.DROP_PATH_KEEP_PROB", "0.0"],
     "MODEL.NASNET.DROP_PATH_KEEP_PROB must be in (0, 1]", "none"),
    ("norm-unknown", [*RUN, *TAIL, "MODEL.NASNET.NORM", "LN"],
     "MODEL.NASNET.NORM must be one of", "none"),
    ("out-features-unknown", [*RUN, *TAIL, "MODEL.NASNET.OUT_FEATURES", "['c9']"],
     "MODEL.NASNET.OUT_FEATURES must be some of", "none"),
    ("genotype-unknown", [*RUN, *TAIL, "MODEL.NASNET.GENOTYPE", "nasnet_z"],
     "unknown genotype 'nasnet_z'", "none"),
    ("genotype-not-utf8", [*RUN, *TAIL, "MODEL.NASNET.GENOTYPE", "{tmp}/latin1.json"],
     "latin1.json' is not UTF-8", "none"),
    ("genotype-folder", [*RUN, *TAIL, "MODEL.NASNET.GENOTYPE", "{tmp}/cells.json"],
     "cells.json' is a folder", "none"),
    ("max-iter-0", [*RUN, *TAIL, "SOLVER.MAX_ITER", "0"],
     "SOLVER.MAX_ITER must be an integer >= 1, got 0", "none"),
    ("base-lr-negative", [*RUN, *TAIL, "SOLVER.BASE_LR", "-0.1"],
     "SOLVER.BASE_LR must be a number > 0", "none"),
    ("ims-per-batch-0", [*RUN, *TAIL, "SOLVER.IMS_PER_BATCH", "0"],
     "SOLVER.IMS_PER_BATCH must be an integer >= 1", "none"),
    ("checkpoint-period-0", [*RUN, *TAIL, "SOLVER.CHECKPOINT_PERIOD", "0"],
     "SOLVER.CHECKPOINT_PERIOD must be an integer >= 1", "none"),
    ("num-classes-0", [*RUN, *TAIL, "MODEL.ROI_HEADS.NUM_CLASSES", "0"],
     "MODEL.ROI_HEADS.NUM_CLASSES must be an integer >= 1", "none"),
    ("min-size-train-empty", [*RUN, *TAIL, "INPUT.MIN_SIZE_TRAIN", "()"],
     "INPUT.MIN_SIZE_TRAIN must be one or more sizes", "none"),
    ("device-unknown", [*RUN, *TAIL, "MODEL.DEVICE", "tpu"],
     "MODEL.DEVICE must be 'cpu' or 'cuda'", "none"),
    ("num-gpus-too-many", [*RUN, "--num-gpus", "64", *TAIL], "--num-gpus 64 asks for more GPUs",
     "none"),
    ("num-gpus-0", [*RUN, "--num-gpus", "0", *TAIL], "--num-gpus must be >= 1", "none"),
    ("dataset-unknown", [*RUN, *TAIL, "DATASETS.TRAIN", "('my_set',)"],
     "DATASETS.TRAIN names 'my_set', which is not registered", "none"),
    ("weights-missing", [*RUN, *TAIL, "MODEL.WEIGHTS", "{tmp}/nope.pth"], "does not exist",
     "none"),
    ("weights-unknown-name", [*RUN, *TAIL, "MODEL.WEIGHTS", "timm:nasnet_z"],
     "unknown weight name 'timm:nasnet_z'", "none"),
    ("weights-folder", [*RUN, *TAIL, "MODEL.WEIGHTS", "{tmp}"], "is a folder", "none"),
    ("weights-text", [*RUN, *TAIL, "MODEL.WEIGHTS", "{tmp}/text.pth"],
     "is not a PyTorch or safetensors weights file", "none"),
    ("weights-empty", [*RUN, *TAIL, "MODEL.WEIGHTS", "{tmp}/empty.pth"], "is empty", "none"),
    ("weights-truncated", [*RUN, *TAIL, "MODEL.WEIGHTS", "{tmp}/truncated.pth"],
     "is truncated or damaged", "none"),
    ("weights-flipped", [*RUN, *TAIL, "MODEL.WEIGHTS", "{tmp}/flipped.pth"],
     "fails its CRC-32 check", "none"),
    ("weights-pkl-payload", [*RUN, *TAIL, "MODEL.WEIGHTS", "{tmp}/evil.pkl"],
     "Use NASNET_DET_ALLOW_PICKLE=1 (or train_net.py --allow-pickle)", "none"),
    ("weights-pth-payload", [*RUN, *TAIL, "MODEL.WEIGHTS", "{tmp}/evil.pth"],
     "refusing to unpickle it", "none"),
    ("train-datasets-empty", [*RUN, *TAIL, "DATASETS.TRAIN", "()"], "DATASETS.TRAIN is empty",
     "none"),
    ("eval-only-no-weights", [*RUN, "--eval-only", *TAIL], "--eval-only needs MODEL.WEIGHTS",
     "none"),
    ("eval-only-truncated", [*RUN, "--eval-only", *TAIL, "MODEL.WEIGHTS",
     "{tmp}/truncated.pth"], "is truncated or damaged", "none"),
    ("output-is-a-file", [*RUN, *TAIL], "is a file, expected a folder", "file"),
    ("output-read-only", [*RUN, *TAIL], "is not writable", "read-only"),
    ("resume-redirected", [*RUN, "--resume", *TAIL], "which is not a file inside OUTPUT_DIR",
     "redirect"),
    ("resume-pkl-inside", [*RUN, "--resume", *TAIL], "Use NASNET_DET_ALLOW_PICKLE=1", "pkl-inside"),
    ("resume-all-damaged", [*RUN, "--resume", *TAIL], "no usable checkpoint to resume from",
     "all-damaged"),
]  # fmt: skip


def _weights(path: Path) -> bytes:
    torch.manual_seed(0)
    torch.save({"model": {"w": torch.randn(64, 1024)}}, path)
    return path.read_bytes()


def _scratch(tmp: Path) -> None:
    """Hostile and broken files; each payload would create ``tmp/marker``."""
    cmd = f"touch {tmp / 'marker'}"
    (tmp / "evil.yaml").write_text(
        f'_BASE_: "{INSTANT}"\nX: !!python/object/apply:os.system ["{cmd}"]\n'
    )
    (tmp / "empty.yaml").write_text("")
    (tmp / "broken.yaml").write_text("MODEL: {NASNET: [\n")
    (tmp / "list.yaml").write_text("- 1\n- 2\n")
    (tmp / "latin1.yaml").write_bytes(f'_BASE_: "{INSTANT}"\n# caf\xe9\n'.encode("latin-1"))
    (tmp / "no_base.yaml").write_text('_BASE_: "missing_base.yaml"\n')
    (tmp / "cycle_a.yaml").write_text("_BASE_: cycle_b.yaml\n")
    (tmp / "cycle_b.yaml").write_text("_BASE_: cycle_a.yaml\n")
    (tmp / "top_latin1.yaml").write_text("_BASE_: latin1.yaml\n")
    (tmp / "top_evil.yaml").write_text("_BASE_: evil.yaml\n")
    (tmp / "unknown.yaml").write_text(f'_BASE_: "{INSTANT}"\nMODEL:\n  NASNET:\n    NUM_CELL: 2\n')
    (tmp / "latin1.json").write_bytes('{"normal": "caf\xe9"}'.encode("latin-1"))
    (tmp / "cells.json").mkdir()
    (tmp / "text.pth").write_text("these are not weights\n")
    (tmp / "empty.pth").write_bytes(b"")
    blob = _weights(tmp / "good.pth")
    (tmp / "truncated.pth").write_bytes(blob[: len(blob) // 2])
    middle = len(blob) // 2
    flipped = blob[:middle] + bytes(b ^ 0xFF for b in blob[middle : middle + 4096])
    (tmp / "flipped.pth").write_bytes(flipped + blob[middle + 4096 :])
    (tmp / "evil.pkl").write_bytes(pickle.dumps({"model": Payload(cmd), "__author__": "x"}))
    torch.save({"model": {"w": torch.zeros(1)}, "extra": Payload(cmd)}, tmp / "evil.pth")


def _prepare(how: str, out: Path, tmp: Path, monkeypatch) -> None:
    if how == "none":
        return
    if how == "file":
        out.write_text("a file where the output folder should be\n")
        return
    out.mkdir()
    if how == "read-only":
        make_read_only(monkeypatch, out)
    elif how == "redirect":
        (out / "last_checkpoint").write_text("../scratch/evil.pkl")
    elif how == "pkl-inside":
        (out / "model_0000009.pkl").write_bytes((tmp / "evil.pkl").read_bytes())
        (out / "last_checkpoint").write_text("model_0000009.pkl")
    elif how == "all-damaged":
        (out / "model_final.pth").write_bytes((tmp / "truncated.pth").read_bytes())
        (out / "model_0000001.pth").write_bytes((tmp / "flipped.pth").read_bytes())
        (out / "last_checkpoint").write_text("model_final.pth")


@pytest.mark.parametrize("args,message,how", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_fails_cleanly(tmp_path, monkeypatch, args, message, how):
    tmp, out = tmp_path / "scratch", tmp_path / "out"
    tmp.mkdir()
    _scratch(tmp)
    _prepare(how, out, tmp, monkeypatch)
    before, scratch_before = snapshot(out), snapshot(tmp)
    values = {"cfg": INSTANT, "out": out, "tmp": tmp}
    result = run_tool(TOOL, *(a.format(**values) for a in args), cwd=tmp_path)
    monkeypatch.undo()
    if how == "read-only":
        out.chmod(0o755)
    assert_clean_failure(result, message, before, out if out.is_dir() else None)
    assert snapshot(tmp) == scratch_before  # nothing written beside OUT either
    assert not (tmp / "marker").exists()  # no yaml tag or pickle ran
    if how == "none":
        assert not out.exists()
    if how == "file":
        assert out.read_text().startswith("a file")


def test_table_covers_at_least_twenty_five_inputs():
    assert len(CASES) >= 25 and len({c[0] for c in CASES}) == len(CASES)


def test_a_loss_of_exactly_0_from_the_start_stops_with_one_line(tmp_path):
    """Both heads' losses switched off (no RPN weight, no sampled ROI): every gradient is 0, so
    the run would "succeed" without learning. It stops at the third iteration with one line
    and leaves no model_final.pth (a tiny COCO set, so nothing is generated)."""
    sys.path.insert(0, str(ROOT / "tests" / "detection"))
    from tiny_datasets import write_coco

    ann, images = write_coco(tmp_path / "data", num_images=2)
    out = tmp_path / "out"
    args = ["--config-file", str(INSTANT), *(a.format(out=out) for a in TAIL),
            "DATASETS.COCO_JSON", f"[['tc', '{ann}', '{images}']]", "DATASETS.TRAIN", "('tc',)",
            "MODEL.ROI_HEADS.NUM_CLASSES", "2", "SOLVER.MAX_ITER", "6", "MODEL.RPN.LOSS_WEIGHT",
            "0.0", "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE", "0"]  # fmt: skip
    result = run_tool(TOOL, *args, cwd=tmp_path)
    assert_clean_failure(result, "the training loss is exactly 0 at each of iterations 0 to 2")
    assert not (out / "model_final.pth").exists()


def _fail_fsync_on(match: str, after: int = 0):
    """``os.fsync`` that fails like a full disk for files whose name holds ``match``, after
    ``after`` successful such writes."""
    real, seen = os.fsync, []

    def fsync(fd):
        if match in os.readlink(f"/proc/self/fd/{fd}"):
            seen.append(fd)
            if len(seen) > after:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd)

    return fsync


def test_disk_full_during_a_checkpoint_is_one_line_and_keeps_the_last_one(tmp_path, monkeypatch):
    out = tmp_path / "out"
    monkeypatch.setenv("NASNET_DET_CACHE", str(tmp_path / "cache"))
    # Iteration 0 writes model_0000000.pth; the disk is full when iteration 1 writes its own.
    monkeypatch.setattr(os, "fsync", _fail_fsync_on(".pth", after=1))
    args = ["--config-file", str(INSTANT), "MODEL.DEVICE", "cpu", "OUTPUT_DIR", str(out), *TINY]
    result = run_tool(TOOL, *args, "SOLVER.MAX_ITER", "3", "SOLVER.CHECKPOINT_PERIOD", "1")
    monkeypatch.undo()
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.rc == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert lines[-1].startswith("train_net.py: error: cannot write checkpoint")
    assert "model_0000001.pth" in lines[-1] and "no space left on the device" in lines[-1]
    assert not [p.name for p in out.iterdir() if ".tmp" in p.name]
    assert not (out / "model_0000001.pth").exists()
    assert (out / "last_checkpoint").read_text() == "model_0000000.pth"
    saved = torch.load(out / "model_0000000.pth", map_location="cpu", weights_only=True)
    assert saved["iteration"] == 0 and saved["model"]


_DRIVER = """
import os, runpy, sys, time
import torch
target, flag = os.environ["KILL_DURING"], os.environ["FLAG"]
real = torch.save

def slow_save(obj, f, *a, **k):
    name = getattr(f, "name", str(f))
    if isinstance(name, int):
        name = os.readlink(f"/proc/self/fd/{name}")
    if target in os.path.basename(str(name)):
        import io
        buf = io.BytesIO()
        real(obj, buf, *a, **k)
        f.write(buf.getvalue()[: len(buf.getvalue()) // 2])
        f.flush()
        open(flag, "w").close()
        time.sleep(600)  # killed here, half written
    return real(obj, f, *a, **k)

torch.save = slow_save
sys.argv = ["train_net.py", *sys.argv[1:]]
runpy.run_path(sys.argv.pop(1), run_name="__main__")
"""


def _train(
    tmp_path: Path, out: Path, *extra: str, kill_during: str | None = None, max_iter: int = 5
):
    env = {**os.environ, "NASNET_DET_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    flag = tmp_path / "writing"
    flag.unlink(missing_ok=True)
    env.update(KILL_DURING=kill_during or "<no such file>", FLAG=str(flag))
    driver = tmp_path / "driver.py"
    driver.write_text(_DRIVER)
    args = ["--config-file", str(INSTANT), *extra, "MODEL.DEVICE", "cpu", "OUTPUT_DIR", str(out)]
    args += [*TINY, "SOLVER.MAX_ITER", str(max_iter), "SOLVER.CHECKPOINT_PERIOD", "2"]
    p = subprocess.Popen(
        [sys.executable, str(driver), str(ROOT / "tools" / TOOL), *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    if kill_during is None:
        _, err = p.communicate(timeout=600)
        return p.returncode, err
    deadline = time.monotonic() + 600
    while not flag.exists():
        assert p.poll() is None, p.communicate()[1][-3000:]
        assert time.monotonic() < deadline
        time.sleep(0.2)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    return p.returncode, ""


@pytest.mark.slow
def test_kill_during_periodic_and_final_checkpoint_then_resume(tmp_path):
    out = tmp_path / "out"
    # MAX_ITER 5, period 2: model_0000001, model_0000003, then model_final at iteration 4.
    rc, _ = _train(tmp_path, out, kill_during="model_0000003")
    assert rc == -signal.SIGKILL
    assert (out / "last_checkpoint").read_text() == "model_0000001.pth"
    assert not (out / "model_0000003.pth").exists()  # the half-written file never got its name
    rc, _ = _train(tmp_path, out, "--resume", kill_during="model_final")
    assert rc == -signal.SIGKILL
    assert (out / "last_checkpoint").read_text() == "model_0000003.pth"
    assert not (out / "model_final.pth").exists()
    rc, err = _train(tmp_path, out, "--resume")
    assert rc == 0, err[-3000:]
    final = torch.load(out / "model_final.pth", map_location="cpu", weights_only=True)
    assert final["iteration"] == 4  # as an uninterrupted run of SOLVER.MAX_ITER 5
    assert (out / "last_checkpoint").read_text() == "model_final.pth"
    assert not [p.name for p in out.iterdir() if ".tmp" in p.name]  # the kills' leftovers went
    # Killed while writing model_final right after a periodic checkpoint of the same step
    # (MAX_ITER 4: model_0000003 and model_final at iteration 3): resuming starts at MAX_ITER,
    # trains nothing and must still leave model_final.pth.
    (out / "model_final.pth").unlink()
    (out / "last_checkpoint").write_text("model_0000003.pth")
    rc, err = _train(tmp_path, out, "--resume", max_iter=4)
    assert rc == 0, err[-3000:]
    final = torch.load(out / "model_final.pth", map_location="cpu", weights_only=True)
    periodic = torch.load(out / "model_0000003.pth", map_location="cpu", weights_only=True)
    assert final["iteration"] == 3
    assert all(torch.equal(final["model"][k], v) for k, v in periodic["model"].items())
