"""The weight-sharing network is the children's network: with a standalone child's weights
copied in, its path for that child computes the child's logits (core NASNet as reference)."""

import numpy as np
import pytest
import torch
from nasnet_det.search.space import SearchSpace
from nasnet_det.search.weight_sharing import SharedNet

from nasnet_det import build_nasnet

OPS = ("identity", "avg_pool_3x3", "max_pool_3x3", "sep_conv_3x3", "conv_1x3_3x1", "conv_1x1")


def _scatter_inputs(w: torch.Tensor, shape: torch.Size, concat, c: int) -> torch.Tensor:
    """A child's weight over its concat (state ``s`` -> input channels of its position) placed
    into the shared layout (state ``s`` at channels ``(s - 2) * c``), zeros elsewhere."""
    out = torch.zeros(shape)
    for j, s in enumerate(concat):
        out[:, (s - 2) * c : (s - 1) * c] = w[:, j * c : (j + 1) * c]
    return out


def _transplant(child, net: SharedNet, space: SearchSpace, decisions) -> None:
    g = space.decode(decisions)
    shared = net.state_dict()
    layout = child.layout
    for name, value in child.state_dict().items():
        if name.rsplit(".", 1)[-1] in ("running_mean", "running_var", "num_batches_tracked"):
            continue  # the shared network keeps no running statistics
        parts = name.split(".")
        target = name
        if parts[0] == "cells":
            i, where = int(parts[1]), parts[2]
            plan = layout.cells[i]
            if where == "blocks":
                k, side = int(parts[3]), parts[4]
                block = (g.reduce if plan.reduction else g.normal)[k]
                br = block.left if side == "left" else block.right
                stride = 2 if plan.reduction and br.input < 2 else 1
                op_key = f"{k}{'a' if side == 'left' else 'b'}_{br.op}_{stride}"
                target = ".".join(["cells", str(i), "ops", op_key, *parts[5:]])
            # 1x1 convs reading a cell output: scatter the child's concat into the shared one.
            src = plan.index if where == "pre0" else plan.prev
            if where in ("pre0", "pre1") and value.dim() == 4 and src is not None and src > 0:
                src_plan = layout.cells[src - 1]
                src_g = g.reduce_concat if src_plan.reduction else g.normal_concat
                value = _scatter_inputs(value, shared[target].shape, src_g, src_plan.c)
        elif name == "classifier.weight":
            last = layout.cells[-1]
            concat = g.reduce_concat if last.reduction else g.normal_concat
            value = _scatter_inputs(value, shared[target].shape, concat, last.c)
        assert target in shared, f"no shared parameter for {name} ({target})"
        assert shared[target].shape == value.shape, name
        shared[target] = value
    net.load_state_dict(shared)


def _child(space: SearchSpace, rng: np.random.Generator):
    """A random child with add combiners (a concat block is squeezed in the shared network)
    whose cells all preprocess a cell output with a 1x1 conv: a child cell whose previous-but-one
    output already has the cell's width passes it on untouched (core rule), which a shared cell,
    whose inputs always have room for every block, cannot do."""
    while True:
        d = list(space.sample(rng))
        for cell in range(2):
            for k in range(space.num_blocks):
                d[cell * 5 * space.num_blocks + 5 * k + 4] = space.combiners.index("add")
        child = build_nasnet(
            "nasnet_a_cifar", genotype=space.decode(d), num_cells=1, num_conv_filters=4,
            stem_multiplier=1.0, num_classes=5, use_aux_head=False, drop_path_keep_prob=1.0,
            image_size=12,
        )  # fmt: skip
        if all(p.prev is None or p.prev_larger or p.c_prev != p.c for p in child.layout.cells):
            return d, child


@pytest.mark.parametrize("seed", range(3))
def test_shared_path_computes_the_standalone_child(seed):
    torch.manual_seed(seed)
    space = SearchSpace(num_blocks=3, ops=OPS)
    d, child = _child(space, np.random.default_rng(seed))
    net = SharedNet(space, num_cells=1, num_conv_filters=4, num_classes=5, image_size=12)
    _transplant(child, net, space, d)
    child.train()  # batch statistics, as the shared network always uses
    x = torch.randn(6, 3, 12, 12)
    with torch.no_grad():
        ref = child(x)
        out = net(x, d)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-4)
    # Another child's path through the same weights computes something else.
    other = list(d)
    other[2] = (other[2] + 1) % len(OPS)
    with torch.no_grad():
        assert not torch.allclose(net(x, other), ref, atol=1e-3)


def test_shared_net_refuses_a_bad_child():
    space = SearchSpace(num_blocks=2, ops=OPS)
    net = SharedNet(space, num_cells=1, num_conv_filters=2, num_classes=3, image_size=8)
    with pytest.raises(ValueError, match="expected 20 decisions"):
        net(torch.randn(1, 3, 8, 8), (0,) * 19)


def test_recalibrated_statistics_match_the_standalone_childs():
    """Per-child BN recalibration: statistics averaged over the same batches give the logits the
    standalone child gives in eval mode with its statistics estimated the same way."""
    from nasnet_det.search.weight_sharing import _child_statistics

    torch.manual_seed(0)
    space = SearchSpace(num_blocks=3, ops=OPS)
    d, child = _child(space, np.random.default_rng(5))
    net = SharedNet(space, num_cells=1, num_conv_filters=4, num_classes=5, image_size=12)
    _transplant(child, net, space, d)
    batches = [torch.randn(8, 3, 12, 12) for _ in range(3)]
    x = torch.randn(4, 3, 12, 12)
    with torch.no_grad():
        for m in child.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.reset_running_stats()
                m.momentum = None  # cumulative average
        child.train()
        for b in batches:
            child(b)
        child.eval()
        ref = child(x)
        with _child_statistics(net, True):
            for b in batches:
                net(b, d)
            net.eval()
            out = net(x, d)
        torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-4)
        # Afterwards the shared network is back to batch statistics and train mode.
        assert net.training and net.stem.bn.running_mean is None
        assert not torch.allclose(net(x, d), ref, atol=1e-3)
