"""A NASNet cell built from one half of a genotype (normal or reduction).

Follows TF-slim's ``NasNetABaseCell``: hidden state 0 is ReLU-1x1 conv-BN of the previous cell's
output; hidden state 1 is the cell before it, brought to the same shape (factorized reduction if
larger, ReLU-1x1 conv-BN if only the channels differ, untouched otherwise). Each block applies two
ops and combines them; the listed states are concatenated, input states first reduced to the
output's shape when needed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from nasnet_det.drop_path import drop_path, scheduled_keep_prob
from nasnet_det.genotypes import Block
from nasnet_det.ops import FactorizedReduction, OpConfig, ReLUConvBN, build_op

__all__ = ["Cell", "CellBlock", "CellStack", "cell_out_channels"]


def _apply(op: nn.Module, states, relus, i: int) -> torch.Tensor:
    if relus is not None and relus[i] is not None and getattr(op, "starts_with_relu", False):
        return op.forward_relu(relus[i])
    return op(states[i])


def _starts_with_relu(op: nn.Module) -> bool:
    return getattr(op, "starts_with_relu", False)


def cell_out_channels(blocks: Sequence[Block], concat: Sequence[int], c: int) -> int:
    """Output width of a cell with filter count ``c``, known without building it.

    Input states joining the concat are always brought to ``c`` channels; a block contributes
    ``c`` (add) or ``2c`` (concat).
    """
    return sum(c if s < 2 else (2 * c if blocks[s - 2].combine == "concat" else c) for s in concat)


class CellBlock(nn.Module):
    """Two ops (``left``, ``right``) applied to two hidden states, then added or concatenated."""

    def __init__(
        self, spec: Block, state_channels: Sequence[int], c: int, reduction: bool, cfg: OpConfig
    ) -> None:
        super().__init__()
        self.inputs = (spec.left.input, spec.right.input)
        self.combine = spec.combine
        ops = []
        for br in (spec.left, spec.right):
            # TF-slim: only ops reading the cell's inputs stride in a reduction cell.
            stride = 2 if reduction and br.input < 2 else 1
            ops.append(build_op(br.op, state_channels[br.input], c, stride, cfg))
        self.left, self.right = ops
        # Identity is never dropped, even when a stride turns it into a 1x1 conv (TF-slim).
        self.drop = (spec.left.op != "identity", spec.right.op != "identity")
        self.out_channels = 2 * c if spec.combine == "concat" else c

    def forward(
        self,
        states: Sequence[torch.Tensor],
        keep_prob: float,
        relus: Sequence[torch.Tensor | None] | None = None,
    ) -> torch.Tensor:
        """``relus[i]``, when given, is ``relu(states[i])``, shared by ops starting with a ReLU."""
        a = _apply(self.left, states, relus, self.inputs[0])
        b = _apply(self.right, states, relus, self.inputs[1])
        if self.training and keep_prob < 1.0:
            if self.drop[0]:
                a = drop_path(a, keep_prob, True)
            if self.drop[1]:
                b = drop_path(b, keep_prob, True)
        return a + b if self.combine == "add" else torch.cat([a, b], 1)


class Cell(nn.Module):
    """One normal or reduction cell.

    Args:
        blocks, concat: one half of a :class:`~nasnet_det.genotypes.Genotype`.
        c_cur: channels of the previous cell's output (hidden state 0's source).
        c_prev: channels of the cell before it, or ``None`` when there is none (TF-slim then
            uses the previous output itself, unprocessed, as hidden state 1).
        prev_larger: the cell before is at twice the resolution of the previous output.
        c: the cell's filter count (TF-slim ``filter_size``).
        reduction: halve the resolution (ops on the input states use stride 2).

    ``forward(x, x_prev)`` maps ``[N, c_cur, H, W]`` (and ``x_prev``) to
    ``[N, out_channels, H', W']`` with ``H' = ceil(H / 2)`` for a reduction cell.
    """

    def __init__(
        self,
        blocks: Sequence[Block],
        concat: Sequence[int],
        c_cur: int,
        c_prev: int | None,
        prev_larger: bool,
        c: int,
        reduction: bool,
        cfg: OpConfig,
    ) -> None:
        super().__init__()
        self.reduction = reduction
        self.pre0 = ReLUConvBN(c_cur, c, 1, 1, cfg)
        if c_prev is None:
            self.pre1: nn.Module | None = None
            c1 = c_cur
        elif prev_larger:
            self.pre1 = FactorizedReduction(c_prev, c, cfg, stride=2, relu=True)
            c1 = c
        elif c_prev != c:
            self.pre1 = ReLUConvBN(c_prev, c, 1, 1, cfg)
            c1 = c
        else:
            self.pre1 = nn.Identity()
            c1 = c
        channels = [c, c1]
        self.blocks = nn.ModuleList()
        for spec in blocks:
            block = CellBlock(spec, channels, c, reduction, cfg)
            self.blocks.append(block)
            channels.append(block.out_channels)
        self.concat = tuple(concat)
        # Input states joining the output must match its resolution and width (TF-slim's
        # _combine_unused_states: a factorized reduction without the leading ReLU).
        self.concat_reduce = nn.ModuleDict()
        for s in self.concat:
            if s < 2 and (reduction or channels[s] != c):
                self.concat_reduce[str(s)] = FactorizedReduction(
                    channels[s], c, cfg, stride=2 if reduction else 1, relu=False
                )
                channels[s] = c
        self.out_channels = sum(channels[s] for s in self.concat)
        self._concat_keys = tuple((s, str(s)) for s in self.concat)
        # States read by more than one op that starts with a ReLU: compute that ReLU once. It
        # saves the time and, in training, the memory of the duplicate activations.
        readers = [0] * len(channels)
        for block in self.blocks:
            for op, i in ((block.left, block.inputs[0]), (block.right, block.inputs[1])):
                readers[i] += _starts_with_relu(op)
        self.shared_relu = tuple(n > 1 for n in readers)
        self.drop_path_keep_prob = 1.0  # set by CellStack.set_drop_path_progress

    def forward(self, x: torch.Tensor, x_prev: torch.Tensor | None) -> torch.Tensor:
        s0 = self.pre0(x)
        s1 = x if self.pre1 is None else self.pre1(x_prev)
        states = [s0, s1]
        relus = [F.relu(s) if shared else None for s, shared in zip(states, self.shared_relu)]
        for k, block in enumerate(self.blocks):
            states.append(block(states, self.drop_path_keep_prob, relus))
            relus.append(F.relu(states[-1]) if self.shared_relu[k + 2] else None)
        reduce = self.concat_reduce._modules  # plain dict lookups: this runs per cell call
        out = [reduce[k](states[s]) if k in reduce else states[s] for s, k in self._concat_keys]
        return torch.cat(out, 1)


class CellStack(nn.ModuleDict):
    """A span of a NASNet's cells, keyed by their index in the whole network, and the one place
    cells are run.

    Hidden states are numbered as network outputs: the stem is output 0 and cell ``i`` writes
    output ``i + 1``, reading output ``i`` and output ``prev_index[i]`` (or nothing). Keys are
    ``str(i)``, so parameter names read ``cells.{i}.*`` in the classifier and in each detector
    half alike; ``stack[i]`` also takes an int. The stack owns ScheduledDropPath's schedule for
    its cells (``set_drop_path_progress``), counted over ``total_cells`` of the whole network.
    """

    def __init__(
        self,
        cells: Mapping[int, Cell],
        prev_index: Mapping[int, int | None],
        total_cells: int,
        drop_path_keep_prob: float = 1.0,
    ) -> None:
        super().__init__({str(i): cell for i, cell in sorted(cells.items())})
        self.indices = sorted(cells)
        self.prev_index = {i: prev_index[i] for i in self.indices}
        self.total_cells = int(total_cells)
        self.drop_path_keep_prob = float(drop_path_keep_prob)
        self.grad_checkpointing = False
        # The last cell of this span that reads each output: after it, the output can go.
        self._last_read: dict[int, int] = {}
        for i in self.indices:
            for j in (i, self.prev_index[i]):
                if j is not None:
                    self._last_read[j] = i
        self.set_drop_path_progress(0.0)

    def __getitem__(self, key: int | str) -> nn.Module:
        return super().__getitem__(str(key))

    def __setitem__(self, key: int | str, module: nn.Module) -> None:
        super().__setitem__(str(key), module)

    def set_drop_path_progress(self, progress: float) -> None:
        """ScheduledDropPath's ``t = min(1, step / total_steps)`` for every cell of the span."""
        self.drop_path_progress = float(progress)
        for i in self.indices:
            self[i].drop_path_keep_prob = scheduled_keep_prob(
                self.drop_path_keep_prob, i, self.total_cells, progress
            )

    def forward(
        self, outs: Mapping[int, torch.Tensor], keep: Iterable[int] = (), stop: int | None = None
    ) -> dict[int, torch.Tensor]:
        """Run the span over the hidden states ``outs`` (output index -> tensor).

        Returns the states after the span: the last cell's output, the outputs in ``keep``, and
        nothing else (each output is dropped once no later cell of the span reads it, which
        bounds memory in inference). ``stop``: run only the cells before cell ``stop``.

        With ``grad_checkpointing`` on (and gradients enabled) every cell runs under
        :func:`torch.utils.checkpoint.checkpoint`: backward recomputes a cell's inside instead of
        keeping it, and drop path draws the same masks again (the RNG state is restored).
        """
        keep = set(keep)
        outs = dict(outs)
        ckpt = (
            self.grad_checkpointing
            and torch.is_grad_enabled()
            and not torch.jit.is_tracing()
            and not torch.fx._symbolic_trace.is_fx_symbolic_tracing()
        )
        for i in self.indices:
            if stop is not None and i >= stop:
                break
            p = self.prev_index[i]
            args = (outs[i], None if p is None else outs[p])
            cell = self[i]
            outs[i + 1] = checkpoint(cell, *args, use_reentrant=False) if ckpt else cell(*args)
            for j in [j for j in outs if j not in keep and j != i + 1]:
                if self._last_read.get(j, -1) <= i:
                    del outs[j]
        return outs
