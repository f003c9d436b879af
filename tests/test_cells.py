"""Cells and CellStack: one way to run a span of cells, widths known before building."""

import random

import torch

from nasnet_det.cells import CellStack
from nasnet_det.nasnet import build_nasnet, nasnet_config, plan_nasnet


def test_planned_widths_are_the_real_ones(random_genotype):
    # The layout is computed without modules; the tensors a built network produces must agree.
    rng = random.Random(3)
    for _ in range(4):
        g = random_genotype(rng, num_blocks=4)
        m = build_nasnet(
            "nasnet_a_mobile",
            genotype=g,
            num_cells=1,
            num_conv_filters=4,
            image_size=64,
            use_aux_head=False,
        ).eval()
        outs = m.forward_outputs(torch.randn(1, 3, 64, 64), keep=range(len(m.cells) + 1))
        for plan in m.layout.cells:
            assert outs[plan.index + 1].shape[1] == plan.out_channels
            assert outs[plan.index + 1].shape[2] == plan.size


def test_two_stacks_equal_one_network():
    # The detector runs the first cells in one stack and the rest in another: same numbers as
    # the whole classifier running its stack, with the same modules.
    torch.manual_seed(0)
    m = build_nasnet("nasnet_a_large", num_cells=1, num_conv_filters=4, num_classes=0).eval()
    split = m.layout.second_stage_split()
    n = len(m.cells)
    first = CellStack({i: m.cells[i] for i in range(split.start)}, m.prev_index, n)
    second = CellStack({i: m.cells[i] for i in range(split.start, n)}, m.prev_index, n)
    x = torch.randn(2, 3, 75, 75)
    with torch.no_grad():
        whole = m.forward_outputs(x)[n]
        mid = first({0: m.stem(x)}, keep=split.inputs)
        assert sorted(mid) == sorted(set(split.inputs) | {split.start})
        out = second({j: mid[j] for j in split.inputs})
    assert sorted(out) == [n]  # every intermediate state was released
    torch.testing.assert_close(out[n], whole, rtol=0, atol=0)


def test_stack_owns_the_drop_path_schedule():
    cfg = nasnet_config("nasnet_a_cifar", num_conv_filters=4, drop_path_keep_prob=0.6)
    layout = plan_nasnet(cfg)
    m = build_nasnet("nasnet_a_cifar", num_conv_filters=4, drop_path_keep_prob=0.6)
    assert len(layout.cells) == len(m.cells) == 20
    half = CellStack({i: m.cells[i] for i in range(10, 20)}, m.prev_index, 20, 0.6)
    half.set_drop_path_progress(0.5)
    # TF-slim v3: keep = 1 - t * (i + 1) / total * (1 - keep_prob), counted over the network.
    for i in range(10, 20):
        assert half[i].drop_path_keep_prob == 1 - 0.5 * (i + 1) / 20 * 0.4
