"""Shared test settings: CPU, few threads, deterministic seeds."""

import random

import pytest
import torch

from nasnet_det import OP_NAMES, Block, Branch, Genotype


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    torch.set_num_threads(2)
    yield


def _random_genotype(rng: random.Random, num_blocks: int = 5) -> Genotype:
    def cell():
        blocks = []
        for k in range(num_blocks):
            blocks.append(
                Block(
                    Branch(rng.choice(OP_NAMES), rng.randrange(k + 2)),
                    Branch(rng.choice(OP_NAMES), rng.randrange(k + 2)),
                    rng.choice(["add", "concat"]),
                )
            )
        used = {b.left.input for b in blocks} | {b.right.input for b in blocks}
        concat = tuple(s for s in range(2, num_blocks + 2) if s not in used)
        return tuple(blocks), concat

    n, nc = cell()
    r, rc = cell()
    return Genotype(n, nc, r, rc, name="random")


@pytest.fixture
def random_genotype():
    """``random_genotype(rng, num_blocks)``: a valid genotype over all 13 ops and both combiners."""
    return _random_genotype


@pytest.fixture
def tiny_detector_cfg():
    """``tiny_detector_cfg(config="Base-NASNet-C4.yaml", **nasnet)``: a model-zoo config with
    the paper's split on CPU, its NASNet-A shrunk to one cell per stack and 8 filters (the wiring
    is under test, not the size); keyword arguments set ``MODEL.NASNET`` keys (``NORM="BN"``).
    Detectron2 loads only when a test asks for it."""

    def make(config: str = "Base-NASNet-C4.yaml", **nasnet):
        from nasnet_det.detection import model_zoo
        from nasnet_det.detection.config import get_nasnet_cfg

        cfg = get_nasnet_cfg()
        cfg.merge_from_file(model_zoo.get_config_file(config))
        cfg.MODEL.DEVICE = "cpu"
        cfg.MODEL.NASNET.NUM_CELLS = 1
        cfg.MODEL.NASNET.NUM_CONV_FILTERS = 8
        for key, value in nasnet.items():
            cfg.MODEL.NASNET[key] = value
        return cfg

    return make
