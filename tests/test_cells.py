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


def _relu_per_reader(stack: CellStack) -> CellStack:
    """The same cells, each ReLUing its inputs itself (no output rectified once for all)."""
    other = CellStack({i: stack[i] for i in stack.indices}, stack.prev_index, stack.total_cells)
    return other.rectify_shared_outputs(False)


def test_shared_outputs_are_rectified_once_and_nothing_else_changes():
    # A cell output read by the next cell's pre0 and the one after's pre1 is ReLU'd once, in
    # place without gradients: the kept outputs, the caller's tensors and the results stay raw.
    torch.manual_seed(0)
    m = build_nasnet("nasnet_a_mobile", num_cells=2, num_conv_filters=8, num_classes=0).eval()
    n = len(m.cells)
    assert len(m.cells._rectify_once) > n // 2  # most outputs have two ReLU-only readers
    stem = m.stem(torch.randn(2, 3, 64, 64)).detach()
    keep = [3, 5]
    with torch.no_grad():
        outs = m.cells({0: stem.clone()}, keep=keep)
        ref = _relu_per_reader(m.cells)({0: stem.clone()}, keep=keep)
        upto = m.cells({0: stem}, stop=4)  # stop: outputs read after it come back raw
        ref_upto = _relu_per_reader(m.cells)({0: stem}, stop=4)
    assert sorted(outs) == sorted(ref) == [3, 5, n]
    for j in outs:
        assert (outs[j] < 0).any()  # raw, not rectified in place
        torch.testing.assert_close(outs[j], ref[j], rtol=0, atol=0)
    assert sorted(upto) == sorted(ref_upto)
    for j in upto:
        torch.testing.assert_close(upto[j], ref_upto[j], rtol=0, atol=0)
    assert (stem < 0).any()  # the caller's input untouched


def test_rectified_once_gives_the_same_gradients():
    torch.manual_seed(0)
    m = build_nasnet("nasnet_a_mobile", num_cells=1, num_conv_filters=8, num_classes=0).train()
    x = torch.randn(2, 3, 64, 64)
    grads = []
    for stack in (m.cells, _relu_per_reader(m.cells)):
        m.zero_grad()
        out = stack({0: m.stem(x)})[len(m.cells)]
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        grads.append([p.grad.clone() for p in m.cells.parameters()])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
