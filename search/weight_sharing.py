"""ENAS-style weight sharing (Pham et al., 2018): one over-parameterised network over the space.

Every block of every cell holds one instance of every op for each of its two branches (and a
strided twin for the reduction cell's ops that read the cell's inputs); a child is a path
through it. A round trains the shared weights on the round's children (one child per
minibatch, in turn) and then scores each child on the same held-out batches with the shared
weights: an estimate of its standalone accuracy at a tiny fraction of the cost. The runner
retrains the best few standalone at the end.

The shared network is the children's network as far as sharing allows: its skeleton comes from
the core's layout (:func:`~nasnet_det.nasnet.plan_nasnet` of the CIFAR preset: stem, which
cells reduce, which earlier output each cell reads), each cell's input preprocessing is the core
:class:`~nasnet_det.cells.Cell`'s, the cells run through a :class:`~nasnet_det.cells.CellStack`,
and a child's decisions become blocks and concat lists through the search space's
:meth:`~nasnet_det.search.space.SearchSpace.decode`.

Differences from a standalone child, kept deliberately simple: a ``concat`` block is brought back
to ``c`` channels by a shared 1x1 convolution, and a cell's output has room for every block
(blocks outside the child's concat list are zeros), so the next cell's 1x1 input convolution has
fixed weights (ENAS does the same by slicing); for the same reason a cell always preprocesses its
second input with that convolution, where a child whose earlier output already has the cell's
width passes it on untouched. Batch norm always uses batch statistics (the
running averages of many children mixed together would describe none of them).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from nasnet_det.search.data import cached_dataset
from nasnet_det.search.space import Decisions, SearchSpace
from torch import nn

from nasnet_det.cells import Cell, CellStack
from nasnet_det.engine import SimpleTrainer, top1_accuracy
from nasnet_det.genotypes import Block, Branch, Genotype
from nasnet_det.nasnet import CellPlan, build_stem, nasnet_config, op_config, plan_nasnet
from nasnet_det.ops import OpConfig, ReLUConvBN, build_op

__all__ = [
    "SCHEDULES",
    "SharedNet",
    "SharedScorer",
    "fair_paths",
    "scores_over_training",
    "training_paths",
]

#: How the children a shared network trains on are drawn, one per step: ``uniform`` (a uniformly
#: random child each step, as random search with weight sharing and single-path one-shot NAS
#: train) or ``fair`` (:func:`fair_paths`).
SCHEDULES = ("uniform", "fair")


def _shared_loss(net: nn.Module, batch: tuple[torch.Tensor, torch.Tensor, Decisions]):
    x, y, decisions = batch
    return F.cross_entropy(net(x, decisions), y)


def _full_width_genotype(num_blocks: int) -> Genotype:
    """A stand-in genotype for the layout: cells that output every block, added (``B x c``
    channels), the width of a shared cell whatever the child."""
    block = Block(Branch("identity", 0), Branch("identity", 1), "add")
    blocks = (block,) * num_blocks
    concat = tuple(range(2, num_blocks + 2))
    return Genotype(blocks, concat, blocks, concat, name="shared-width")


class SharedCell(Cell):
    """A cell holding every op of the space in every branch; ``active`` (blocks and concat list
    of one cell of a child's genotype) says which path ``forward(x, x_prev)`` runs.

    The core :class:`Cell` (built without blocks) provides the input preprocessing.
    """

    def __init__(self, space: SearchSpace, plan: CellPlan, cfg: OpConfig) -> None:
        c, reduction = plan.c, plan.reduction
        super().__init__((), (), plan.c_cur, plan.c_prev, plan.prev_larger, c, reduction, cfg)
        self.space = space
        self.ops = nn.ModuleDict()
        for k in range(space.num_blocks):
            for side in ("a", "b"):
                for op in space.ops:
                    self.ops[f"{k}{side}_{op}_1"] = build_op(op, c, c, 1, cfg)
                    if reduction:
                        self.ops[f"{k}{side}_{op}_2"] = build_op(op, c, c, 2, cfg)
        self.squeeze = nn.ModuleList(
            ReLUConvBN(2 * c, c, 1, 1, cfg) for _ in range(space.num_blocks)
        )
        self.out_channels = space.num_blocks * c
        self.active: tuple[Sequence[Block], Sequence[int]] | None = None

    def forward(
        self,
        x: torch.Tensor,
        x_prev: torch.Tensor | None,
        x_rectified: bool = False,
        prev_rectified: bool = False,
    ) -> torch.Tensor:
        if self.active is None:
            raise RuntimeError("SharedCell: no child path set (SharedNet.forward sets it)")
        blocks, concat = self.active
        states = list(self.hidden_inputs(x, x_prev, x_rectified, prev_rectified))
        for k, b in enumerate(blocks):
            outs = []
            for side, br in (("a", b.left), ("b", b.right)):
                # As in the core's CellBlock: only ops reading the cell's inputs stride.
                stride = 2 if self.reduction and br.input < 2 else 1
                outs.append(self.ops[f"{k}{side}_{br.op}_{stride}"](states[br.input]))
            if b.combine == "add":
                states.append(outs[0] + outs[1])
            else:
                states.append(self.squeeze[k](torch.cat(outs, 1)))
        zeros = states[-1].new_zeros(states[-1].shape)
        return torch.cat([states[s] if s in concat else zeros for s in range(2, len(states))], 1)


class SharedNet(nn.Module):
    """The CIFAR-style NASNet skeleton (N normal cells per stack, two reductions) over shared
    cells. ``forward(x, decisions)`` runs the child ``decisions`` (a full decision sequence)."""

    def __init__(
        self,
        space: SearchSpace,
        num_cells: int,
        num_conv_filters: int,
        num_classes: int,
        stem_multiplier: float = 1.0,
        image_size: int = 32,
    ) -> None:
        super().__init__()
        self.space = space
        cfg = nasnet_config(
            "nasnet_a_cifar",
            genotype=_full_width_genotype(space.num_blocks),
            num_cells=num_cells,
            num_conv_filters=num_conv_filters,
            stem_multiplier=stem_multiplier,
            num_classes=num_classes,
            use_aux_head=False,
            drop_path_keep_prob=1.0,
            image_size=image_size,
        )
        layout = plan_nasnet(cfg)
        ocfg = op_config(cfg)
        self.stem = build_stem(cfg, layout)
        self.cells = CellStack(
            {p.index: SharedCell(space, p, ocfg) for p in layout.cells},
            {p.index: p.prev for p in layout.cells},
            len(layout.cells),
        )
        self.classifier = nn.Linear(layout.num_features, num_classes)
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.track_running_stats = False
                m.running_mean = m.running_var = m.num_batches_tracked = None

    def forward(self, x: torch.Tensor, decisions: Sequence[int]) -> torch.Tensor:
        g = self.space.decode(decisions)
        for i in self.cells.indices:
            cell = self.cells[i]
            cell.active = (
                (g.reduce, g.reduce_concat) if cell.reduction else (g.normal, g.normal_concat)
            )
        y = self.cells({0: self.stem(x)})[len(self.cells)]
        return self.classifier(F.adaptive_avg_pool2d(F.relu(y), 1).flatten(1))


def fair_paths(space: SearchSpace, rng: np.random.Generator, n: int) -> list[Decisions]:
    """``n`` children with FairNAS' strict fairness for the ops (Chu et al., 2021), in sequence:
    in every run of ``len(space.ops)`` consecutive children each op decision takes every op
    exactly once (an independent permutation per decision and run); inputs and combiners are
    drawn as :meth:`SearchSpace.sample` draws them. (FairNAS sums the gradients of such a run
    into one update; here each child is one step, as in uniform sampling.)"""
    is_op = [k % 5 in (2, 3) for k in range(space.num_decisions)]  # input, input, op, op, combine
    m = len(space.ops)
    paths: list[Decisions] = []
    while len(paths) < n:
        perms = [rng.permutation(m) if op else None for op in is_op]
        for j in range(m):
            d = space.sample(rng)
            paths.append(tuple(int(p[j]) if p is not None else x for p, x in zip(perms, d)))
    return paths[:n]


def training_paths(space: SearchSpace, schedule: str, rng: np.random.Generator, n: int):
    """``n`` training children of ``space`` drawn by ``schedule`` (one of :data:`SCHEDULES`)."""
    if schedule == "uniform":
        return [space.sample(rng) for _ in range(n)]
    if schedule == "fair":
        return fair_paths(space, rng, n)
    raise ValueError(f"weight-sharing schedule: expected one of {SCHEDULES}, got {schedule!r}")


@contextlib.contextmanager
def _child_statistics(net: nn.Module, enabled: bool) -> Iterator[None]:
    """Within the block, every batch norm of ``net`` accumulates fresh running statistics (an
    equal-weight average over the batches it sees in train mode) and uses them in eval mode;
    afterwards the network is as before (no running statistics, its train/eval mode)."""
    if not enabled:
        yield
        return
    bns = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    training, momenta = net.training, [m.momentum for m in bns]
    for m in bns:
        p = next(m.parameters(), None)
        device = p.device if p is not None else None
        m.running_mean = torch.zeros(m.num_features, device=device)
        m.running_var = torch.ones(m.num_features, device=device)
        m.num_batches_tracked = torch.zeros((), dtype=torch.long, device=device)
        m.track_running_stats, m.momentum = True, None
    net.train()
    try:
        yield
    finally:
        for m, momentum in zip(bns, momenta):
            m.running_mean = m.running_var = m.num_batches_tracked = None
            m.track_running_stats, m.momentum = False, momentum
        net.train(training)


class SharedScorer:
    """Trains the shared network round by round and scores children on it (in this process)."""

    def __init__(self, space: SearchSpace, ws_cfg: dict, data_cfg: dict, seed: int) -> None:
        self.cfg = ws_cfg
        (self.xt, self.yt), (self.xv, self.yv) = cached_dataset(data_cfg)
        num_classes = int(max(int(self.yt.max()), int(self.yv.max())) + 1)
        torch.manual_seed(seed)
        device = ws_cfg["device"]
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.net = SharedNet(
            space,
            ws_cfg["num_cells"],
            ws_cfg["num_conv_filters"],
            num_classes,
            image_size=int(self.xt.shape[-1]),
        )
        self.net.to(device)
        self.xt, self.yt, self.xv, self.yv = (
            t.to(device) for t in (self.xt, self.yt, self.xv, self.yv)
        )
        self.device = device
        self.opt = torch.optim.SGD(
            self.net.parameters(),
            lr=ws_cfg["lr"],
            momentum=ws_cfg["momentum"],
            nesterov=True,
            weight_decay=ws_cfg["weight_decay"],
        )
        self.gen = torch.Generator().manual_seed(seed)
        n_val = min(len(self.xv), ws_cfg["eval_batches"] * ws_cfg["batch_size"])
        self.val = (self.xv[:n_val], self.yv[:n_val])

    def train_round(self, proposals: Sequence[Decisions], steps: int | None = None) -> None:
        """``steps`` (default ``steps_per_round``) steps on random training batches, child
        ``k % len(proposals)`` at step ``k``."""
        bs = self.cfg["batch_size"]

        def batches(step: int) -> tuple[torch.Tensor, torch.Tensor, Decisions]:
            idx = torch.randint(len(self.xt), (bs,), generator=self.gen).to(self.device)
            return self.xt[idx], self.yt[idx], proposals[step % len(proposals)]

        clip = self.cfg["grad_clip"]
        trainer = SimpleTrainer(
            self.net, self.opt, batches, _shared_loss, clip_grad_norm=clip, check_finite=False
        )
        self.net.train()
        trainer.train(0, self.cfg["steps_per_round"] if steps is None else steps)

    @torch.no_grad()
    def score(self, decisions: Decisions, recalibrate: int = 0) -> float:
        """Held-out accuracy of the child's path with the shared weights.

        Batch norm normalises each held-out batch with its own statistics, unless
        ``recalibrate`` > 0: then the child's statistics are first estimated on that many
        training batches (the first ones, so scoring draws no random numbers) and every batch
        norm uses them, as a trained standalone child is evaluated.
        """
        x, y = self.val
        bs = self.cfg["batch_size"]
        with _child_statistics(self.net, recalibrate > 0):
            if recalibrate > 0:
                for i in range(0, min(len(self.xt), recalibrate * bs), bs):
                    self.net(self.xt[i : i + bs], decisions)
                self.net.eval()
            return top1_accuracy(lambda xb: self.net(xb, decisions), x, y, bs)

    def run_round(self, proposals: Sequence[Decisions], todo: Sequence[dict]) -> Iterator[dict]:
        """Train on the whole round (also when resuming it: the replay gives the same weights),
        then score the children in ``todo``; yields result records like a child executor."""
        start = time.time()
        self.train_round(proposals)
        per_child = (time.time() - start) / max(1, len(proposals))
        for t in todo:
            t0 = time.time()
            rec = {"child_id": t["child_id"], "params": None, "status": "ok", "error": ""}
            try:
                reward = self.score(tuple(t["decisions"]))
                if reward != reward:
                    raise FloatingPointError("reward is nan")
                rec["reward"] = reward
            except Exception as e:  # noqa: BLE001 - one child's failure must not stop the search
                rec.update(reward=None, status="failed", error=f"{type(e).__name__}: {e}"[:500])
            rec["seconds"] = per_child + time.time() - t0
            yield rec

    def state_dict(self) -> dict[str, Any]:
        return {
            "net": self.net.state_dict(),
            "opt": self.opt.state_dict(),
            "gen": self.gen.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["net"])
        self.opt.load_state_dict(state["opt"])
        self.gen.set_state(state["gen"])


def scores_over_training(
    scorer: SharedScorer,
    kids: Sequence[Decisions],
    draw: Callable[[int, int], Sequence[Decisions]],
    checkpoints: Sequence[int],
    recal: int,
    plain: bool = True,
) -> dict[str, Any]:
    """Train ``scorer``'s shared network to each step count of ``checkpoints`` in turn (the next
    ``n`` steps after ``done`` train on the children ``draw(done, n)``) and there score every
    child of ``kids`` (keyed by :meth:`SearchSpace.key`): with each held-out batch's own batch
    statistics (``scores``, when ``plain``) and with the child's statistics re-estimated on
    ``recal`` training batches (``recal_scores``, when ``recal`` > 0). Process CPU-seconds:
    ``train_cpu_s`` of all training so far, ``score_cpu_s`` / ``recal_cpu_s`` of the scorings."""
    if list(checkpoints) != sorted(set(checkpoints)) or not checkpoints or checkpoints[0] < 0:
        raise ValueError(f"checkpoints: expected increasing step counts, got {list(checkpoints)}")
    space = scorer.net.space
    out: dict[str, Any] = {"checkpoints": {}, "recal_batches": recal}
    done, train_cpu = 0, 0.0
    for target in checkpoints:
        t0 = time.process_time()
        scorer.train_round(draw(done, target - done), steps=target - done)
        train_cpu += time.process_time() - t0
        done = target
        row: dict[str, Any] = {"train_cpu_s": train_cpu}
        kinds = (
            ("scores", "score_cpu_s", 0, plain),
            ("recal_scores", "recal_cpu_s", recal, recal > 0),
        )
        for name, cpu_name, r, wanted in kinds:
            if wanted:
                t1 = time.process_time()
                row[name] = {space.key(d): scorer.score(d, recalibrate=r) for d in kids}
                row[cpu_name] = time.process_time() - t1
        out["checkpoints"][str(target)] = row
    return out
