"""Worker processes: a spawned search worker trains children without importing Detectron2."""

import json
import sys

import pytest
from nasnet_det.search import run_search
from nasnet_det.search.child import TRAIN_FNS

PROBE = """
import json
import os
import sys

from nasnet_det.search.child import train_child


def train(genotype, child_cfg, data_cfg, seed):
    out = train_child(genotype, child_cfg, data_cfg, seed)
    mods = sorted(m for m in sys.modules if m.split(".")[0] == "detectron2")
    mods += sorted(m for m in sys.modules if m.startswith("nasnet_det.detection"))
    path = os.path.join(os.environ["PROBE_DIR"], f"{os.getpid()}.json")
    with open(path, "w") as f:
        json.dump({"modules": mods, "trained": "nasnet_det.nasnet" in sys.modules}, f)
    return out
"""


@pytest.mark.slow
def test_a_spawned_worker_imports_no_detectron2(tmp_path, monkeypatch, instant_config):
    (tmp_path / "probe_mod.py").write_text(PROBE)
    monkeypatch.syspath_prepend(str(tmp_path))  # spawned workers get the parent's sys.path
    monkeypatch.setenv("PROBE_DIR", str(tmp_path))
    import probe_mod

    monkeypatch.setitem(TRAIN_FNS, "probe", probe_mod.train)
    cfg = instant_config(
        "max_children", "1", "strategy.batch_size", "1", "execution.num_workers", "1",
        "execution.train_fn", "probe", "outputs.plot", "false", "outputs.diagrams", "false",
    )  # fmt: skip
    res = run_search(cfg, tmp_path / "out")
    assert [c["status"] for c in res.children] == ["ok"], res.children[0]["error"]
    reports = sorted(tmp_path.glob("*.json"))
    assert len(reports) == 1 and reports[0].stem != str(__import__("os").getpid())
    report = json.loads(reports[0].read_text())
    assert report["trained"] and report["modules"] == [], report["modules"][:10]


def test_importing_the_search_imports_no_detectron2():
    import subprocess

    code = (
        "import sys, nasnet_det.search, nasnet_det.search.child, nasnet_det.search.runner; "
        "print([m for m in sys.modules if m.split('.')[0] == 'detectron2'])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout[:500]
