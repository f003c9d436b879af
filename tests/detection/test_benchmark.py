"""nasnet_det.detection.benchmark (tools/benchmark.py): exactly the asked warm-up and timed
iterations run, each task on the tiny detector and a tiny COCO-json dataset."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "reliability"))
from harness import run_tool  # noqa: E402
from tiny_datasets import CONFIG, TINY, dataset_opts, write_coco  # noqa: E402

REPO = HERE.parents[1]


@pytest.fixture(scope="module")
def cfg(tmp_path_factory):
    from nasnet_det.detection.datasets import register_from_config
    from nasnet_det.detection.engine import load_config

    coco = write_coco(tmp_path_factory.mktemp("bench"))
    cfg = load_config(CONFIG, [*TINY, *dataset_opts(coco, None, "tc", "tc"),
                               "SOLVER.IMS_PER_BATCH", "2"])  # fmt: skip
    register_from_config(cfg)
    cfg.freeze()
    return cfg


@pytest.mark.parametrize("task", ["train", "eval"])
def test_counts_are_exact(cfg, task, monkeypatch):
    import torch
    from detectron2.modeling import GeneralizedRCNN

    from nasnet_det.detection.benchmark import benchmark

    torch.set_num_threads(1)  # two threads on a busy 2-core machine run 20x slower
    calls = []
    forward = GeneralizedRCNN.forward

    def counted(self, batched_inputs):
        calls.append((self.training, len(batched_inputs)))
        return forward(self, batched_inputs)

    monkeypatch.setattr(GeneralizedRCNN, "forward", counted)
    cfg = cfg.clone()
    cfg.defrost()
    cfg.INPUT.MIN_SIZE_TRAIN, cfg.INPUT.MAX_SIZE_TRAIN = (64,), 64  # a faster training step
    r = benchmark(cfg, task, iterations=2, warmup=1)
    # train: 2 images per batch; eval: one test image per iteration, model in eval mode.
    assert calls == [(task == "train", 2 if task == "train" else 1)] * 3
    assert r.iterations == 2 and len(r.seconds) == 2 and all(s > 0 for s in r.seconds)
    assert r.images_per_iteration == (2 if task == "train" else 1)
    assert min(r.seconds) <= r.median <= max(r.seconds)


def test_tool_data_task_and_json(cfg, tmp_path):
    coco = write_coco(tmp_path / "coco")
    out = tmp_path / "b.json"
    r = run_tool("benchmark.py", "--config-file", CONFIG, "--task", "data", "--iterations", "4",
                 "--warmup", "1", "--json", str(out), *TINY,
                 *dataset_opts(coco, None, "tc", "tc"), cwd=REPO)  # fmt: skip
    assert r.rc == 0, r.stderr[-3000:]
    assert r.stdout.startswith("data: 4 iterations timed after 1 warm-up, 2 images each: median ")
    saved = json.loads(out.read_text())
    assert len(saved["seconds"]) == 4 and saved["warmup"] == 1


def test_tool_bad_counts(tmp_path):
    r = run_tool("benchmark.py", "--config-file", CONFIG, "--task", "train", "--iterations",
                 "0", *TINY, cwd=REPO)  # fmt: skip
    assert r.rc == 2
    assert r.stderr.strip().splitlines()[-1] == (
        "benchmark.py: error: iterations must be an integer >= 1, got 0"
    )
