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


def test_fair_paths_give_every_op_once_per_run_and_uniform_is_the_spaces_sampler():
    from nasnet_det.search.weight_sharing import fair_paths, training_paths

    space = SearchSpace(num_blocks=2, ops=OPS[:3])
    paths = fair_paths(space, np.random.default_rng(0), 7)  # two runs of 3, then one more
    assert len(paths) == 7 and all(space.validate(p) == p for p in paths)
    op_slots = [c * 10 + 5 * k + j for c in range(2) for k in range(2) for j in (2, 3)]
    for run in (paths[0:3], paths[3:6]):
        for slot in op_slots:
            assert sorted(p[slot] for p in run) == [0, 1, 2]
    # Inputs are still drawn (block 1's first input has 3 choices), not pinned.
    many = fair_paths(space, np.random.default_rng(1), 60)
    assert {p[5] for p in many} == {0, 1, 2}
    # Uniform sampling is the space's own sampler, step by step.
    rng, ref = np.random.default_rng(3), np.random.default_rng(3)
    assert training_paths(space, "uniform", rng, 4) == [space.sample(ref) for _ in range(4)]
    with pytest.raises(ValueError, match="expected one of"):
        training_paths(space, "greedy", rng, 4)


def _tiny_scorer(space):
    from nasnet_det.search.weight_sharing import SharedScorer

    ws = {"num_cells": 1, "num_conv_filters": 4, "steps_per_round": 50, "batch_size": 8,
          "lr": 0.05, "momentum": 0.9, "weight_decay": 1e-4, "grad_clip": 5.0,
          "eval_batches": 2, "retrain_top": 0, "device": "cpu"}  # fmt: skip
    data = {"name": "digits", "image_size": 8, "train_size": 64, "val_size": 16}
    return SharedScorer(space, ws, data, seed=0)


def test_scores_over_training_trains_in_slices_as_one_run_and_scores_every_child():
    """Training to checkpoints 2 then 5 (the draws asked for are (0, 2) and (2, 3)) leaves the
    weights of one 5-step run on the same children, so the final scores are that run's."""
    from nasnet_det.search.weight_sharing import scores_over_training

    space = SearchSpace(num_blocks=2, ops=OPS[:3])
    rng = np.random.default_rng(0)
    paths = [space.sample(rng) for _ in range(5)]
    kids = paths[:3]
    calls = []

    def draw(done, n):
        calls.append((done, n))
        return paths[done : done + n]

    res = scores_over_training(_tiny_scorer(space), kids, draw, [2, 5], recal=2)
    assert calls == [(0, 2), (2, 3)] and res["recal_batches"] == 2
    last = res["checkpoints"]["5"]
    assert set(last["scores"]) == set(last["recal_scores"]) == {space.key(d) for d in kids}
    assert last["train_cpu_s"] >= res["checkpoints"]["2"]["train_cpu_s"] > 0
    ref = _tiny_scorer(space)
    ref.train_round(paths, steps=5)
    for d in kids:
        assert last["scores"][space.key(d)] == ref.score(d)
        assert last["recal_scores"][space.key(d)] == ref.score(d, recalibrate=2)
        assert last["scores"][space.key(d)] in {i / 16 for i in range(17)}  # 16 held-out images
    no_plain = scores_over_training(_tiny_scorer(space), kids, draw, [0], recal=1, plain=False)
    assert set(no_plain["checkpoints"]["0"]) == {"train_cpu_s", "recal_scores", "recal_cpu_s"}
    with pytest.raises(ValueError, match="increasing step counts"):
        scores_over_training(_tiny_scorer(space), kids, draw, [5, 2], recal=0)
