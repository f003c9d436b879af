"""Shared helpers of the search tests: the instant config, made even smaller and in-process."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from nasnet_det.search import apply_overrides, load_config

REPO = Path(__file__).resolve().parents[2]
INSTANT = REPO / "configs" / "search" / "instant_test.yaml"


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _instant_config(*overrides: str) -> dict:
    base = ["execution.num_workers", "0", "outputs.progress", "false"]
    return apply_overrides(load_config(INSTANT), base + list(overrides))


@pytest.fixture
def instant_config():
    """``instant_config(*KEY_VALUE)``: instant_test.yaml with children trained in the test
    process and no progress bar, plus the given overrides."""
    return _instant_config


@pytest.fixture
def bench_script():
    """``bench_script(name)``: the module of ``bench/<name>.py`` (scripts, not package modules)."""
    import importlib.util

    def load(name: str):
        spec = importlib.util.spec_from_file_location(name, REPO / "bench" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load
