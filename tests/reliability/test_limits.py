"""Unbounded inputs: each tool refuses them before reading them whole.

The tool cases run in one fresh interpreter under a memory cap (``RLIMIT_AS`` at its size after
imports plus 3 GiB), so a regression that reads ``/dev/zero`` or expands a YAML bomb fails with a
MemoryError instead of exhausting the machine. Each case: exit 2, the message in the one error
line, no traceback, no file created in its output folder. API cases run in-process.
"""

from __future__ import annotations

import json
import math
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from harness import Result, assert_clean_failure  # noqa: E402

ROOT = HERE.parents[1]
D2 = ROOT / "configs/quick_schedules/faster_rcnn_nasnet_a_mobile_instant_test.yaml"
PRE = ROOT / "configs/ImageNet/instant_test.yaml"
SEARCH = ROOT / "configs/search/instant_test.yaml"
TAIL = ["MODEL.DEVICE", "cpu", "OUTPUT_DIR", "{out}", "MODEL.NASNET.NUM_CELLS", "1"]


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` (its pixel data is one empty row)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00")
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def yaml_bomb(levels: int = 9) -> str:
    """Billion laughs: each level's list repeats the previous one ten times (10**levels values)."""
    lines = ['a0: &a0 ["lol"]']
    for k in range(1, levels + 1):
        lines.append(f"a{k}: &a{k} [{', '.join([f'*a{k - 1}'] * 10)}]")
    return "\n".join(lines) + "\n"


def _files(tmp: Path) -> dict[str, Path]:
    gt = {"images": [{"id": 1, "width": 8, "height": 8}], "annotations": [],
          "categories": [{"id": 1, "name": "a"}]}  # fmt: skip
    (tmp / "gt.json").write_text(json.dumps(gt))
    (tmp / "dt.json").write_text("[]")
    (tmp / "bomb.png").write_bytes(png_header(40000, 40000))
    (tmp / "laughs.yaml").write_text(f'_BASE_: "{D2}"\n' + yaml_bomb())
    (tmp / "big.yaml").write_text(f'_BASE_: "{D2}"\n' + "# padding\n" * 500_000)
    (tmp / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    (tmp / "cycle.yaml").write_text("_BASE_: cycle.yaml\n")
    (tmp / "w.pth").write_bytes(b"PK" + b"\0" * 98)  # 100 bytes: refused by size, unread
    (tmp / "bombset").mkdir()  # a COCO dataset whose one image claims 40000x40000
    (tmp / "bombset" / "bomb.png").write_bytes(png_header(40000, 40000))
    bombset = {"images": [{"id": 1, "file_name": "bomb.png", "width": 40000, "height": 40000}],
               "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 9, 9],
                                "area": 81, "iscrowd": 0}],
               "categories": [{"id": 1, "name": "a"}]}  # fmt: skip
    (tmp / "bombset.json").write_text(json.dumps(bombset))
    for split in ("train", "val"):  # a one-image ImageNet layout for pretraining
        (tmp / "data" / split / "a").mkdir(parents=True)
        (tmp / "data" / split / "a" / "0.png").write_bytes(png_header(1, 1))
    return {k: tmp / k for k in ("gt.json", "dt.json", "bomb.png", "deep.json")}


# (id, tool, arguments, message). {t}: the scratch folder, {out}: the case's output folder.
CASES = [
    ("eval-gt-dev-zero", "eval_coco.py", ["--gt", "/dev/zero", "--dt", "{t}/dt.json"],
     "'/dev/zero' is a character device, expected a regular file"),
    ("eval-gt-dev-null", "eval_coco.py", ["--gt", "/dev/null", "--dt", "{t}/dt.json"],
     "'/dev/null' is a character device"),
    ("eval-dt-dev-zero", "eval_coco.py", ["--gt", "{t}/gt.json", "--dt", "/dev/zero"],
     "is a character device"),
    ("yaml-billion-laughs", "train_net.py", ["--config-file", "{t}/laughs.yaml", *TAIL],
     "values through YAML aliases (raise the limit with NASNET_DET_MAX_YAML_VALUES"),
    ("yaml-too-big", "train_net.py", ["--config-file", "{t}/big.yaml", *TAIL],
     "over the 4.0 MB limit for yaml files (raise it with NASNET_DET_MAX_YAML_MB"),
    ("yaml-base-cycle", "train_net.py", ["--config-file", "{t}/cycle.yaml", *TAIL],
     "inherits from itself (a cycle)"),
    ("genotype-100k-deep", "train_net.py",
     ["--config-file", str(D2), *TAIL, "MODEL.NASNET.GENOTYPE", "{t}/deep.json"],
     "deep.json' is nested too deeply"),
    ("stem-multiplier-1e308", "train_net.py",
     ["--config-file", str(D2), *TAIL, "MODEL.NASNET.STEM_MULTIPLIER", "1e308"],
     "MODEL.NASNET.STEM_MULTIPLIER must be a number in (0, 2048], got 1e+308"),
    ("min-size-test-huge", "train_net.py",
     ["--config-file", str(D2), *TAIL, "INPUT.MIN_SIZE_TEST", "1000000"],
     "INPUT.MIN_SIZE_TEST must be an integer in [0, 4096]"),
    ("weights-dev-zero", "train_net.py",
     ["--config-file", str(D2), *TAIL, "MODEL.WEIGHTS", "/dev/zero"], "is a character device"),
    ("dataset-pixel-bomb", "train_net.py",
     ["--config-file", str(D2), *TAIL, "DATASETS.COCO_JSON",
      "[['bombset', '{t}/bombset.json', '{t}/bombset']]", "DATASETS.TRAIN", "('bombset',)",
      "MODEL.ROI_HEADS.NUM_CLASSES", "1"],
     "bomb.png' is 40000x40000 = 1600.0 megapixels, over the 100 megapixel limit"),
    ("predict-pixel-bomb", "predict.py",
     ["--config-file", str(D2), "--input", "{t}/bomb.png", "--output", "{out}", "MODEL.DEVICE",
      "cpu", "MODEL.WEIGHTS", "{t}/none.pth"],
     "is 40000x40000 = 1600.0 megapixels, over the 100 megapixel limit"),
    ("export-pixel-bomb", "export_model.py",
     ["--config-file", str(D2), "--format", "onnx", "--output", "{out}/m.onnx",
      "--sample-image", "{t}/bomb.png", "--random-weights", "MODEL.DEVICE", "cpu"],
     "megapixel limit"),
    ("export-image-size-huge", "export_model.py",
     ["--weights", "nasnet_a_mobile", "--format", "onnx", "--output", "{out}/m.onnx",
      "--image-size", "1000000"], "--image-size must be in [32, 4096], got 1000000"),
    ("pretrain-stem-multiplier-1e308", "pretrain_imagenet.py",
     ["--config", str(PRE), "--data", "{t}/data", "--output", "{out}", "--no-progress",
      "model.overrides.stem_multiplier", "1e308"], "stem_multiplier must be a number in (0, 2048]"),
    ("pretrain-aux-head-string", "pretrain_imagenet.py",
     ["--config", str(PRE), "--data", "{t}/data", "--output", "{out}", "--no-progress",
      "model.overrides.use_aux_head", "no"], "use_aux_head must be true or false, got 'no'"),
    ("search-image-size-huge", "search_cells.py",
     ["--config", str(SEARCH), "--output", "{out}", "--no-progress", "data.image_size", "100000"],
     "data.image_size must be an integer in [1, 4096], got 100000"),
    # One per kind of file, its limit lowered for the case (ENV below): the size is checked
    # before the file is parsed, and the message names the variable that raises it.
    ("json-over-its-limit", "eval_coco.py", ["--gt", "{t}/gt.json", "--dt", "{t}/dt.json"],
     "over the 52 bytes limit for json files (raise it with NASNET_DET_MAX_JSON_MB=<MB>)"),
    ("image-over-its-limit", "predict.py",
     ["--config-file", str(D2), "--input", "{t}/bomb.png", "--output", "{out}", "MODEL.DEVICE",
      "cpu", "MODEL.WEIGHTS", "{t}/none.pth"],
     "over the 10 bytes limit for image files (raise it with NASNET_DET_MAX_IMAGE_MB=<MB>)"),
    ("checkpoint-over-its-limit", "train_net.py",
     ["--config-file", str(D2), *TAIL, "MODEL.WEIGHTS", "{t}/w.pth"],
     "over the 10 bytes limit for checkpoint files (raise it with NASNET_DET_MAX_CHECKPOINT_MB"),
    ("yaml-over-a-raised-limit", "train_net.py", ["--config-file", "{t}/big.yaml", *TAIL],
     "over the 2.0 MB limit for yaml files (raise it with NASNET_DET_MAX_YAML_MB"),
    ("limit-variable-not-a-number", "eval_coco.py", ["--gt", "{t}/gt.json", "--dt", "{t}/dt.json"],
     "NASNET_DET_MAX_JSON_MB='lots' must be a positive number of MB"),
]  # fmt: skip

#: Environment of the cases that lower (or mistype) a limit.
ENV = {
    "json-over-its-limit": {"NASNET_DET_MAX_JSON_MB": "0.00005"},
    "image-over-its-limit": {"NASNET_DET_MAX_IMAGE_MB": "0.00001"},
    "checkpoint-over-its-limit": {"NASNET_DET_MAX_CHECKPOINT_MB": "0.00001"},
    "yaml-over-a-raised-limit": {"NASNET_DET_MAX_YAML_MB": "2"},  # big.yaml is 4.8 MB
    "limit-variable-not-a-number": {"NASNET_DET_MAX_JSON_MB": "lots"},
}

# Runs in the capped interpreter (headroom: argv[2] bytes over its size after imports): every
# case in turn, with its environment, results as JSON lines on stdout.
_RUNNER = r"""
import json, os, resource, sys
sys.path.insert(0, sys.argv[1])
import torch, detectron2.engine, nasnet_det.detection.engine  # the imports, before the cap
import pycocotools.coco, nasnet_det.evaluation.inputs
from harness import run_tool, snapshot
size = int(open("/proc/self/statm").read().split()[0]) * resource.getpagesize()
resource.setrlimit(resource.RLIMIT_AS, (size + int(sys.argv[2]), resource.RLIM_INFINITY))
for line in sys.stdin:
    case = json.loads(line)
    os.environ.update(case["env"])
    r = run_tool(case["tool"], *case["args"], cwd=case["out"])
    for key in case["env"]:
        del os.environ[key]
    print(json.dumps({"rc": r.rc, "stdout": r.stdout, "stderr": r.stderr,
                      "files": sorted(snapshot(case["out"]))}), flush=True)
"""


def run_capped(jobs: list[dict], headroom: int) -> list[dict]:
    """Run ``jobs`` (``tool``, ``args``, ``out``, ``env``) in one interpreter whose address
    space may grow ``headroom`` bytes past its size after imports; one result dict per job."""
    p = subprocess.run(
        [sys.executable, "-c", _RUNNER, str(HERE), str(headroom)],
        input="".join(json.dumps(j) + "\n" for j in jobs),
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    rows = [json.loads(line) for line in p.stdout.splitlines() if line.startswith("{")]
    assert len(rows) == len(jobs), f"runner stopped after {len(rows)} cases:\n{p.stderr[-3000:]}"
    return rows


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict[str, tuple[Result, list[str]]]:
    tmp = tmp_path_factory.mktemp("limits")
    _files(tmp)
    jobs = []
    for name, tool, args, _ in CASES:
        out = tmp / "out" / name
        out.mkdir(parents=True)
        args = [a.replace("{t}", str(tmp)).replace("{out}", str(out)) for a in args]
        jobs.append({"tool": tool, "args": args, "out": str(out), "env": ENV.get(name, {})})
    rows = run_capped(jobs, 3 << 30)
    return {
        c[0]: (Result(r["rc"], r["stdout"], r["stderr"]), r["files"]) for c, r in zip(CASES, rows)
    }


@pytest.mark.parametrize("name,message", [(c[0], c[3]) for c in CASES], ids=[c[0] for c in CASES])
def test_unbounded_input_is_refused_under_a_memory_cap(results, name, message):
    result, files = results[name]
    assert_clean_failure(result, message)
    assert files == [], f"{name} wrote {files}"


def test_json_that_does_not_fit_in_memory_names_the_file(tmp_path):
    """A JSON file within its size limit that parses to more than memory holds (5M empty
    objects: 15 MB on disk, about 400 MB parsed) under a 256 MB headroom: one line naming the
    file and its size, not a bare MemoryError."""
    gt = tmp_path / "objects.json"
    gt.write_text("[" + "{}," * 5_000_000 + "{}]")
    (tmp_path / "dt.json").write_text("[]")
    out = tmp_path / "out"
    out.mkdir()
    job = {"tool": "eval_coco.py", "args": ["--gt", str(gt), "--dt", str(tmp_path / "dt.json")],
           "out": str(out), "env": {}}  # fmt: skip
    (row,) = run_capped([job], 256 << 20)
    result = Result(row["rc"], row["stdout"], row["stderr"])
    assert_clean_failure(result, "objects.json (14.3 MB) does not fit in memory once parsed")
    assert row["files"] == []


# ------------------------------------------------------------------------------ the API
def test_nasnet_config_refuses_non_finite_and_huge_values():
    from nasnet_det import NASNetConfig

    for kw, msg in [
        ({"stem_multiplier": math.inf}, "stem_multiplier must be a number in (0, 2048], got inf"),
        ({"stem_multiplier": math.nan}, "stem_multiplier must be a number"),
        ({"filter_scaling_rate": 1e308}, "filter_scaling_rate must be a number in (0, 16]"),
        ({"num_conv_filters": 10**9}, "num_conv_filters must be a positive integer <= 65536"),
        ({"image_size": 100_000}, "image_size must be a positive integer <= 16384"),
        ({"use_aux_head": "no"}, "use_aux_head must be true or false, got 'no'"),
        ({"skip_reduction_layer_input": 2}, "skip_reduction_layer_input must be true or false"),
        ({"bn_eps": -1.0}, "bn_eps must be a number in [0, 1]"),
    ]:
        with pytest.raises(ValueError) as e:
            NASNetConfig(**kw)
        assert msg in str(e.value), (kw, str(e.value))


def test_limits_read_their_environment_variable(tmp_path, monkeypatch):
    from nasnet_det.limits import LimitError, limit, read_input_bytes

    f = tmp_path / "x.json"
    f.write_bytes(b"[" + b"0," * 600_000 + b"0]")  # 1.2 MB
    monkeypatch.setenv("NASNET_DET_MAX_JSON_MB", "1")
    with pytest.raises(LimitError, match=r"is 1\.1 MB, over the 1\.0 MB limit for json files"):
        read_input_bytes(f, "json", "GT file")
    monkeypatch.setenv("NASNET_DET_MAX_JSON_MB", "2")
    assert len(read_input_bytes(f, "json")) == f.stat().st_size
    monkeypatch.setenv("NASNET_DET_MAX_IMAGE_MEGAPIXELS", "inf")
    with pytest.raises(LimitError, match="NASNET_DET_MAX_IMAGE_MEGAPIXELS='inf' must be a posit"):
        limit("pixels")


def test_bounded_read_of_a_file_that_grew_since_it_was_sized(tmp_path, monkeypatch):
    """The first read asks for the size the file had (not the limit: ``read(n)`` reserves n
    bytes); a file that grew since is read on, up to the bound and no further."""
    import os

    from nasnet_det import limits

    f = tmp_path / "grown.json"
    f.write_bytes(bytes(range(100)))
    real = os.fstat
    monkeypatch.setattr(limits.os, "fstat", lambda fd: os.stat_result((*real(fd)[:6], 10, 0, 0, 0)))
    with open(f, "rb") as fh:
        assert limits._read_at_most(fh, 51) == bytes(range(51))
    with open(f, "rb") as fh:
        assert limits._read_at_most(fh, 10**12) == bytes(range(100))


def test_readme_lists_every_limit_with_its_default_and_variable():
    """README "Safety and recovery" is where a user looks for the limit that stopped a run."""
    from nasnet_det.limits import LIMITS

    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Safety and recovery") :]
    section = section[: section.index("\n## ", 1)]
    rows = {line.split("|")[-2].strip(" `"): line for line in section.splitlines()
            if line.strip().startswith("|") and "NASNET_DET_" in line}  # fmt: skip
    for kind, spec in LIMITS.items():
        assert spec.env in rows, f"README's limits table has no row for {spec.env} ({kind})"
        default = f"{spec.default:,}" if spec.unit == "values" else f"{spec.default:g}"
        assert default in rows[spec.env], (spec.env, default, rows[spec.env])


def test_yaml_that_contains_itself_is_refused(tmp_path):
    from nasnet_det.config import ConfigError, load_config
    from nasnet_det.pretrain.config import get_cfg

    f = tmp_path / "self.yaml"
    f.write_text("optim: &a\n  x: *a\n")
    with pytest.raises(ConfigError, match="contains itself through a YAML alias"):
        load_config(get_cfg(), f)


def test_pixel_limit_is_checked_from_the_header_before_decoding(tmp_path, monkeypatch):
    from nasnet_det.limits import LimitError, open_image

    f = tmp_path / "wide.png"
    f.write_bytes(png_header(3000, 2000))  # 6 MP: a header only, its pixel data is missing
    monkeypatch.setenv("NASNET_DET_MAX_IMAGE_MEGAPIXELS", "5")
    with pytest.raises(LimitError, match=r"3000x2000 = 6\.0 megapixels, over the 5 megapixel"):
        open_image(f, "--input")
    monkeypatch.setenv("NASNET_DET_MAX_IMAGE_MEGAPIXELS", "7")
    with open_image(f) as im:
        assert im.size == (3000, 2000)
