"""A NASNet cell built from one half of a genotype (normal or reduction).

Follows TF-slim's ``NasNetABaseCell``: hidden state 0 is ReLU-1x1 conv-BN of the previous cell's
output; hidden state 1 is the cell before it, brought to the same shape (factorized reduction if
larger, ReLU-1x1 conv-BN if only the channels differ, untouched otherwise). Each block applies two
ops and combines them; the listed states are concatenated, input states first reduced to the
output's shape when needed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from nasnet_det.drop_path import drop_path, scheduled_keep_prob
from nasnet_det.genotypes import Block
from nasnet_det.ops import FactorizedReduction, OpConfig, ReLUConvBN, build_op, script_unused

__all__ = ["Cell", "CellBlock", "CellStack", "cell_out_channels"]


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
        states: list[torch.Tensor],
        keep_prob: float,
        relus: list[torch.Tensor | None] | None = None,
    ) -> torch.Tensor:
        """``relus[i]``, when given, is ``relu(states[i])``, shared by ops starting with a ReLU.

        Written for TorchScript too: an op is called through ``forward_relu`` only when it has
        one (``hasattr`` on a submodule is decided when the script compiles)."""
        i, j = self.inputs
        ri = None if relus is None else relus[i]
        rj = None if relus is None else relus[j]
        if hasattr(self.left, "forward_relu") and ri is not None:
            a = self.left.forward_relu(ri)
        else:
            a = self.left(states[i])
        if hasattr(self.right, "forward_relu") and rj is not None:
            b = self.right.forward_relu(rj)
        else:
            b = self.right(states[j])
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
        self.shared_relu = [n > 1 for n in readers]
        # Whether each input (x, x_prev) is read only through a leading ReLU: then a CellStack
        # may hand it over already rectified, once for all the cells that read it.
        reads_prev = self.pre1 is not None  # else x_prev is not read and x is state 1 as is
        self.reads_rectified = (
            reads_prev and _starts_with_relu(self.pre0),
            reads_prev and _starts_with_relu(self.pre1),
        )
        self.drop_path_keep_prob = 1.0  # set by CellStack.set_drop_path_progress

    def hidden_inputs(
        self,
        x: torch.Tensor,
        x_prev: torch.Tensor | None,
        x_rectified: bool = False,
        prev_rectified: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Hidden states 0 and 1 (``pre0(x)`` and ``pre1(x_prev)``). ``x_rectified`` /
        ``prev_rectified``: that input is already ``relu(input)``, allowed only where
        :attr:`reads_rectified` says the cell reads it through a ReLU alone."""
        s0 = self.pre0.forward_relu(x) if x_rectified else self.pre0(x)
        if self.pre1 is None:
            return s0, x
        assert x_prev is not None, "this cell reads the cell before the previous one"
        if prev_rectified and hasattr(self.pre1, "forward_relu"):
            return s0, self.pre1.forward_relu(x_prev)
        return s0, self.pre1(x_prev)

    def forward(
        self,
        x: torch.Tensor,
        x_prev: torch.Tensor | None,
        x_rectified: bool = False,
        prev_rectified: bool = False,
    ) -> torch.Tensor:
        """``[N, c_cur, H, W]`` (and ``x_prev``) to the cell's output; the flags as in
        :meth:`hidden_inputs`."""
        s0, s1 = self.hidden_inputs(x, x_prev, x_rectified, prev_rectified)
        states = [s0, s1]
        shared = self.shared_relu
        relus: list[torch.Tensor | None] = [
            F.relu(s0) if shared[0] else None,
            F.relu(s1) if shared[1] else None,
        ]
        for k, block in enumerate(self.blocks):
            s = block(states, self.drop_path_keep_prob, relus)
            states.append(s)
            relus.append(F.relu(s) if shared[k + 2] else None)
        out: list[torch.Tensor] = []
        for s, key in self._concat_keys:
            state = states[s]
            # A loop over the (at most two) reductions instead of a lookup by key: TorchScript
            # indexes a ModuleDict by literal keys only.
            for name, reduce in self.concat_reduce.items():
                if name == key:
                    state = reduce(state)
            out.append(state)
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
        # The last cell of this span that reads each output: after it, the output can go. And
        # the outputs read by two or more cells of the span, each through a leading ReLU alone
        # (the next cell's pre0 and the one after's pre1): ``forward`` rectifies them once.
        self._last_read: dict[int, int] = {}
        through_relu: dict[int, list[bool]] = {}
        for i in self.indices:
            relu_reads = getattr(cells[i], "reads_rectified", (False, False))
            for j, relu in zip((i, self.prev_index[i]), relu_reads):
                if j is not None:
                    self._last_read[j] = i
                    through_relu.setdefault(j, []).append(relu)
        # Led by -1, which no output has: TorchScript cannot type an empty list attribute.
        self._rectifiable = [-1] + sorted(
            j for j, r in through_relu.items() if len(r) > 1 and all(r)
        )
        self._rectify_once = list(self._rectifiable)
        self.set_drop_path_progress(0.0)

    def rectify_shared_outputs(self, enabled: bool = True) -> CellStack:
        """Rectify each output that all its readers ReLU first once (the default), or let each
        reader ReLU it itself (``False``: the same results, the arithmetic as written)."""
        self._rectify_once = list(self._rectifiable) if enabled else [-1]
        return self

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
        self, outs: dict[int, torch.Tensor], keep: list[int] = (), stop: int | None = None
    ) -> dict[int, torch.Tensor]:
        """Run the span over the hidden states ``outs`` (output index -> tensor).

        Returns the states after the span: the last cell's output, the outputs in ``keep``, and
        nothing else (each output is dropped once no later cell of the span reads it, which
        bounds memory in inference). ``stop``: run only the cells before cell ``stop``.

        With ``grad_checkpointing`` on (and gradients enabled) every cell runs under
        :func:`torch.utils.checkpoint.checkpoint`: backward recomputes a cell's inside instead of
        keeping it, and drop path draws the same masks again (the RNG state is restored).
        The same code runs under ``torch.jit.script`` (no checkpointing there).
        """
        outs = dict(outs)
        ckpt = (
            self.grad_checkpointing
            and torch.is_grad_enabled()
            and not torch.jit.is_scripting()
            and self._may_checkpoint()
        )
        # Outputs that all their readers ReLU first are rectified once, in place where nothing
        # needs them raw afterwards (no gradients, not kept, not returned). Exact: ReLU is
        # idempotent. Not under checkpointing, which would keep the ReLU'd copies.
        once = not ckpt
        inplace = once and stop is None and not torch.is_grad_enabled()
        rect = self._rectified_inputs(outs, once)
        # Cells in index order (the ModuleDict's order): TorchScript iterates a ModuleDict but
        # cannot index it by a computed key.
        for k, cell in enumerate(self.values()):
            i = self.indices[k]
            if stop is None or i < stop:
                p = self.prev_index[i]
                prev: torch.Tensor | None = None
                prev_r = False
                if p is not None:
                    prev_r = p in rect
                    prev = rect[p] if prev_r else outs[p]
                x_r = i in rect
                x = rect[i] if x_r else outs[i]
                out = self._checkpointed(k, x, prev) if ckpt else cell(x, prev, x_r, prev_r)
                if once and i + 1 in self._rectify_once:
                    if inplace and i + 1 not in keep:
                        out = F.relu(out, inplace=True)
                        rect[i + 1] = out
                    else:
                        rect[i + 1] = F.relu(out)
                outs[i + 1] = out
                self._release(outs, rect, i, keep)
        return outs

    def _rectified_inputs(
        self, outs: dict[int, torch.Tensor], once: bool
    ) -> dict[int, torch.Tensor]:
        """``relu`` of the span's inputs that are rectified once (not in place: the caller's)."""
        rect: dict[int, torch.Tensor] = {}
        if once:
            for j in self._rectify_once:
                if j in outs:
                    rect[j] = F.relu(outs[j])
        return rect

    def _release(
        self, outs: dict[int, torch.Tensor], rect: dict[int, torch.Tensor], i: int, keep: list[int]
    ) -> None:
        """Drop what no cell after cell ``i`` reads (except ``keep`` and cell ``i``'s output)."""
        for j in list(outs.keys()):
            if j != i + 1 and j not in keep and self._last_read.get(j, -1) <= i:
                del outs[j]
        for j in list(rect.keys()):
            if self._last_read.get(j, -1) <= i:
                del rect[j]

    @script_unused
    def _may_checkpoint(self) -> bool:
        return not torch.jit.is_tracing() and not torch.fx._symbolic_trace.is_fx_symbolic_tracing()

    @script_unused
    def _checkpointed(
        self, k: int, x: torch.Tensor, x_prev: torch.Tensor | None
    ) -> torch.Tensor:
        return checkpoint(self[self.indices[k]], x, x_prev, use_reentrant=False)
