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
