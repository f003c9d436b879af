"""ENAS-style weight sharing (Pham et al., 2018): one over-parameterised network over the space.

Every block of every cell holds one instance of every op for each of its two branches (and a
strided twin for the reduction cell's ops that read the cell's inputs); a child is a path
through it. A round trains the shared weights on the round's children (one child per
minibatch, in turn) and then scores each child on the same held-out batches with the shared
weights: an estimate of its standalone accuracy at a tiny fraction of the cost. The runner
retrains the best few standalone at the end.

Differences from a standalone child, kept deliberately simple: a ``concat`` block is brought back
to ``c`` channels by a shared 1x1 convolution, and a cell's output has room for every block
(unused ones are zeros), so the next cell's 1x1 input convolution has fixed weights (ENAS does
the same by slicing). Batch norm always uses batch statistics (the running averages of many
children mixed together would describe none of them).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from nasnet_det.search.space import Decisions, SearchSpace
from torch import nn

from nasnet_det.ops import FactorizedReduction, OpConfig, ReLUConvBN, build_op

__all__ = ["SharedNet", "SharedScorer"]

CellArch = list[tuple[int, int, int, int, int]]


class SharedCell(nn.Module):
    def __init__(
        self,
        space: SearchSpace,
        c_cur: int,
        c_prev: int,
        prev_larger: bool,
        c: int,
        reduction: bool,
        cfg: OpConfig,
    ) -> None:
        super().__init__()
        self.space, self.c, self.reduction = space, c, reduction
        self.pre0 = ReLUConvBN(c_cur, c, 1, 1, cfg)
        self.pre1 = (
            FactorizedReduction(c_prev, c, cfg, stride=2, relu=True)
            if prev_larger
            else ReLUConvBN(c_prev, c, 1, 1, cfg)
        )
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

    def forward(self, x: torch.Tensor, x_prev: torch.Tensor, arch: CellArch) -> torch.Tensor:
        states = [self.pre0(x), self.pre1(x_prev)]
        used: set[int] = set()
        for k, (ia, ib, oa, ob, cb) in enumerate(arch):
            outs = []
            for side, i, o in (("a", ia, oa), ("b", ib, ob)):
                stride = 2 if self.reduction and i < 2 else 1
                outs.append(self.ops[f"{k}{side}_{self.space.ops[o]}_{stride}"](states[i]))
                used.add(i)
            if self.space.combiners[cb] == "add":
                states.append(outs[0] + outs[1])
            else:
                states.append(self.squeeze[k](torch.cat(outs, 1)))
        ref = states[-1]
        zeros = ref.new_zeros(ref.shape)
        return torch.cat([s if j + 2 not in used else zeros for j, s in enumerate(states[2:])], 1)


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
    ) -> None:
        super().__init__()
        self.space = space
        cfg = OpConfig(bn_eps=1e-5, bn_momentum=0.1)
        c = num_conv_filters
        c_stem = int(c * stem_multiplier)
        self.stem = nn.Sequential(nn.Conv2d(3, c_stem, 3, padding=1, bias=False), cfg.bn(c_stem))
        self.cells = nn.ModuleList()
        c_cur = c_prev = c_stem
        prev_larger = False
        for stack in range(3):
            if stack > 0:
                c *= 2
                cell = SharedCell(space, c_cur, c_prev, prev_larger, c, True, cfg)
                self.cells.append(cell)
                c_prev, c_cur, prev_larger = c_cur, cell.out_channels, True
            for _ in range(num_cells):
                cell = SharedCell(space, c_cur, c_prev, prev_larger, c, False, cfg)
                self.cells.append(cell)
                c_prev, c_cur, prev_larger = c_cur, cell.out_channels, False
        self.classifier = nn.Linear(c_cur, num_classes)
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.track_running_stats = False
                m.running_mean = m.running_var = m.num_batches_tracked = None

    def forward(self, x: torch.Tensor, decisions: Sequence[int]) -> torch.Tensor:
        half = 5 * self.space.num_blocks
        cells = []
        for c in range(2):
            d = decisions[c * half : (c + 1) * half]
            cells.append([tuple(d[5 * k : 5 * k + 5]) for k in range(self.space.num_blocks)])
        x = self.stem(x)
        x_prev = x
        for cell in self.cells:
            x, x_prev = cell(x, x_prev, cells[1] if cell.reduction else cells[0]), x
        return self.classifier(F.adaptive_avg_pool2d(F.relu(x), 1).flatten(1))


class SharedScorer:
    """Trains the shared network round by round and scores children on it (in this process)."""

    def __init__(self, space: SearchSpace, ws_cfg: dict, data_cfg: dict, seed: int) -> None:
        from nasnet_det.search.child import _data

        self.cfg = ws_cfg
        (self.xt, self.yt), (self.xv, self.yv) = _data(data_cfg)
        num_classes = int(max(int(self.yt.max()), int(self.yv.max())) + 1)
        torch.manual_seed(seed)
        device = ws_cfg["device"]
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.net = SharedNet(space, ws_cfg["num_cells"], ws_cfg["num_conv_filters"], num_classes)
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

    def train_round(self, proposals: Sequence[Decisions]) -> None:
        self.net.train()
        bs = self.cfg["batch_size"]
        for step in range(self.cfg["steps_per_round"]):
            idx = torch.randint(len(self.xt), (bs,), generator=self.gen).to(self.device)
            loss = F.cross_entropy(
                self.net(self.xt[idx], proposals[step % len(proposals)]), self.yt[idx]
            )
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(self.net.parameters(), self.cfg["grad_clip"])
            self.opt.step()

    @torch.no_grad()
    def score(self, decisions: Decisions) -> float:
        x, y = self.val
        correct = 0
        for i in range(0, len(x), self.cfg["batch_size"]):
            logits = self.net(x[i : i + self.cfg["batch_size"]], decisions)
            correct += int((logits.argmax(1) == y[i : i + self.cfg["batch_size"]]).sum())
        return correct / len(x)

    def run_round(self, proposals: Sequence[Decisions], todo: Sequence[dict]) -> Iterator[dict]:
        """Train on the whole round (also when resuming it: the replay gives the same weights),
        then score the children in ``todo``; yields result records like a child executor."""
        import time

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
