"""Cell diagrams in the style of the paper's Fig. 4, laid out to avoid crossing edges.

A cell is drawn bottom-up: the two inputs (``h_i``, the previous cell's output, and
``h_{i-1}``) at the bottom, each block's two op boxes side by side under its combiner, a block
one level above the highest state it reads, and the output concat at the top. Edges are
straight lines. :func:`layout_cell` tries every left-to-right order of the blocks (at most 5!
= 120), each with the inputs under their readers and at 20 other pairs of positions, and keeps
the layout with the fewest edge crossings (an edge drawn through a box counts as one), then
the shortest edges (an input that is concatenated goes round the outside):
whenever a crossing-free straight-line drawing of this shape exists among those orders, it is
the one drawn.
"""

from __future__ import annotations

import io
import itertools
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nasnet_det.genotypes import Block, Genotype
from nasnet_det.io import atomic_write_bytes

__all__ = ["CellLayout", "count_crossings", "draw_cell", "draw_genotype", "layout_cell"]

_OP_LABELS = {
    "identity": "identity",
    "conv_1x3_3x1": "1x3 then 3x1\nconv",
    "conv_1x7_7x1": "1x7 then 7x1\nconv",
    "dil_conv_3x3": "3x3 dilated\nconv",
    "avg_pool_3x3": "3x3 avg",
    "max_pool_3x3": "3x3 max",
    "max_pool_5x5": "5x5 max",
    "max_pool_7x7": "7x7 max",
    "conv_1x1": "1x1 conv",
    "conv_3x3": "3x3 conv",
    "sep_conv_3x3": "sep\n3x3",
    "sep_conv_5x5": "sep\n5x5",
    "sep_conv_7x7": "sep\n7x7",
}

# Box sizes in layout units; a block's column is _COLUMN wide, levels are _LEVEL apart.
_OP_W, _OP_H = 1.0, 0.55
_ADD_W, _ADD_H = 0.8, 0.4
_IN_W, _IN_H = 1.3, 0.5
_OUT_W, _OUT_H = 1.4, 0.45
_COLUMN, _LEVEL, _OP_DX = 2.5, 1.0, 0.56
# Input positions tried besides the barycentres (fractions of the width).
_GRID = [(a, b) for a in (0.1, 0.3, 0.5, 0.7, 0.9) for b in (0.1, 0.3, 0.5, 0.7, 0.9) if a != b]


def _op_color(op: str) -> str:
    if op.startswith("sep"):
        return "#f6d55c"
    if "pool" in op:
        return "#7fb3d5"
    if op == "identity":
        return "#e0e0e0"
    return "#f0a07a"


@dataclass
class CellLayout:
    """Node boxes ``name -> (x, y, w, h)`` and edges ``(source, target)`` of one cell.

    Names: ``"in0"``/``"in1"`` (hidden states 0 and 1), ``"op{k}L"``/``"op{k}R"`` (block k's
    op boxes), ``"add{k}"`` (its combiner), ``"out"`` (the concat). ``paths`` holds each
    edge's drawn polyline; ``crossings`` and ``box_hits`` are what the layout minimised.
    """

    boxes: dict[str, tuple[float, float, float, float]]
    edges: list[tuple[str, str]]
    paths: list[list[tuple[float, float]]]
    crossings: int
    box_hits: int


def _state_node(s: int) -> str:
    return f"in{s}" if s < 2 else f"add{s - 2}"


def _edges(blocks: Sequence[Block], concat: Sequence[int]) -> list[tuple[str, str]]:
    edges = []
    for k, b in enumerate(blocks):
        for side, br in (("L", b.left), ("R", b.right)):
            edges.append((_state_node(br.input), f"op{k}{side}"))
            edges.append((f"op{k}{side}", f"add{k}"))
    edges += [(_state_node(s), "out") for s in concat]
    return edges


def _levels(blocks: Sequence[Block]) -> list[int]:
    """Level of each block: one above the highest state it reads (inputs are level 0)."""
    level = [0, 0]
    for b in blocks:
        level.append(1 + max(level[b.left.input], level[b.right.input]))
    return level[2:]


def _paths(boxes, edges) -> list[list[tuple[float, float]]]:
    """Each edge as a polyline. Edges leave a box's top and enter a box's bottom, spread along
    the box edge in the order of the other ends' x so that edges sharing a box do not meet
    there; an input that is itself concatenated goes round the outside of the cell into the
    concat's side instead of cutting through the blocks."""
    around = {i for i, (s, t) in enumerate(edges) if s.startswith("in") and t == "out"}
    outs: dict[str, list[int]] = {}
    ins: dict[str, list[int]] = {}
    for i, (s, t) in enumerate(edges):
        if i not in around:
            outs.setdefault(s, []).append(i)
            ins.setdefault(t, []).append(i)
    start: dict[int, tuple[float, float]] = {}
    end: dict[int, tuple[float, float]] = {}
    for table, other, top, out in ((outs, 1, 1, start), (ins, 0, -1, end)):
        for name, ids in table.items():
            x, y, w, h = boxes[name]
            ids = sorted(ids, key=lambda i: (boxes[edges[i][other]][0], boxes[edges[i][other]][1]))
            n = len(ids)
            for j, i in enumerate(ids):
                dx = 0.0 if n == 1 else 0.7 * w * (j / (n - 1) - 0.5)
                out[i] = (x + dx, y + top * h / 2)
    paths = [[start[i], end[i]] if i not in around else [] for i in range(len(edges))]
    xs = [x for x, _, _, _ in boxes.values()]
    cx, ox, oy, ow, _ = (sum(xs) / len(xs), *boxes["out"])
    for i in around:
        x, y, w, _ = boxes[edges[i][0]]
        side = -1.0 if x < cx else 1.0
        outer = (min(xs) - 1.1) if side < 0 else (max(xs) + 1.1)
        paths[i] = [(x + side * w / 2, y), (outer, y), (outer, oy), (ox + side * ow / 2, oy)]
    return paths


def _segments(paths) -> list[tuple[float, float, float, float]]:
    return [(*p[j], *p[j + 1]) for p in paths for j in range(len(p) - 1)]


def count_crossings(segments: Sequence[tuple[float, float, float, float]]) -> int:
    """Pairs of segments that cross at a point inside both (touching end points do not count)."""
    if len(segments) < 2:
        return 0
    s = np.asarray(segments, dtype=float)
    p, r = s[:, None, :2], (s[:, 2:] - s[:, :2])[:, None, :]
    q, t = s[None, :, :2], (s[:, 2:] - s[:, :2])[None, :, :]

    def cross(a, b):
        return a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]

    denom = cross(r, t)
    qp = q - p
    with np.errstate(divide="ignore", invalid="ignore"):
        u = cross(qp, t) / denom
        v = cross(qp, r) / denom
    eps = 1e-6
    hit = (np.abs(denom) > 1e-12) & (u > eps) & (u < 1 - eps) & (v > eps) & (v < 1 - eps)
    return int(np.triu(hit, 1).sum())


def _box_hits(boxes, edges, paths) -> int:
    """Edges that pass through a box other than their own two ends."""
    names = list(boxes)
    index = {n: i for i, n in enumerate(names)}
    rect = np.array([boxes[n] for n in names], dtype=float)
    lo = rect[:, :2] - rect[:, 2:] / 2 - 0.05
    hi = rect[:, :2] + rect[:, 2:] / 2 + 0.05
    owner = [i for i, p in enumerate(paths) for _ in range(len(p) - 1)]
    seg = np.asarray(_segments(paths), dtype=float)
    ts = np.linspace(0.02, 0.98, 25)[None, :, None]
    pts = seg[:, None, :2] + ts * (seg[:, None, 2:] - seg[:, None, :2])  # [E, T, 2]
    inside = ((pts[:, :, None] > lo) & (pts[:, :, None] < hi)).all(-1).any(1)  # [E, B]
    rows = np.arange(len(owner))
    inside[rows, [index[edges[i][0]] for i in owner]] = False
    inside[rows, [index[edges[i][1]] for i in owner]] = False
    return int(inside.sum())


def _place(blocks, concat, order, in_x, swap_sides) -> tuple[dict, list]:
    levels = _levels(blocks)
    top = max(levels, default=0)
    boxes: dict[str, tuple[float, float, float, float]] = {}
    for col, k in enumerate(order):
        xc = (col + 0.5) * _COLUMN
        yo = (2 * levels[k] - 1) * _LEVEL
        left, right = (xc + _OP_DX, xc - _OP_DX) if swap_sides[k] else (xc - _OP_DX, xc + _OP_DX)
        boxes[f"op{k}L"] = (left, yo, _OP_W, _OP_H)
        boxes[f"op{k}R"] = (right, yo, _OP_W, _OP_H)
        boxes[f"add{k}"] = (xc, yo + _LEVEL, _ADD_W, _ADD_H)
    width = len(blocks) * _COLUMN
    boxes["in0"] = (in_x[0] * width, -_LEVEL, _IN_W, _IN_H)
    boxes["in1"] = (in_x[1] * width, -_LEVEL, _IN_W, _IN_H)
    boxes["out"] = (width / 2, (2 * top + 1) * _LEVEL, _OUT_W, _OUT_H)
    edges = _edges(blocks, concat)
    return boxes, edges


def layout_cell(blocks: Sequence[Block], concat: Sequence[int]) -> CellLayout:
    """The crossing-minimising layout of one cell (see the module docstring)."""
    nb = len(blocks)
    if nb == 0:
        raise ValueError("a cell diagram needs at least one block")
    edges = _edges(blocks, concat)
    readers = {
        s: [k for k, b in enumerate(blocks) if s in (b.left.input, b.right.input)] for s in (0, 1)
    }
    best, best_key = None, None
    for order in itertools.permutations(range(nb)):
        # Inputs under their readers (barycentre, pushed apart), or at the two ends.
        col = {k: (c + 0.5) / nb for c, k in enumerate(order)}
        bary = [float(np.mean([col[k] for k in readers[s]])) if readers[s] else 0.5 for s in (0, 1)]
        lo, hi = sorted(bary)
        mid, gap = (lo + hi) / 2, max(hi - lo, 0.3) / 2
        pushed = (mid - gap, mid + gap) if bary[0] <= bary[1] else (mid + gap, mid - gap)
        for in_x in {pushed, (pushed[1], pushed[0]), *_GRID}:
            # Each block's two op boxes: the one whose source lies further left goes left.
            boxes, _ = _place(blocks, concat, order, in_x, [False] * nb)
            swap = [
                boxes[_state_node(b.left.input)][0] > boxes[_state_node(b.right.input)][0]
                for b in blocks
            ]
            boxes, _ = _place(blocks, concat, order, in_x, swap)
            paths = _paths(boxes, edges)
            segs = _segments(paths)
            crossings = count_crossings(segs)
            # An edge drawn through a box reads as a wrong connection: it counts as a crossing.
            if best_key is not None and crossings > best_key[0]:
                continue
            hits = _box_hits(boxes, edges, paths)
            length = sum(np.hypot(s[2] - s[0], s[3] - s[1]) for s in segs)
            key = (crossings + hits, hits, round(length, 6))
            if best_key is None or key < best_key:
                best_key, best = key, CellLayout(boxes, edges, paths, crossings, hits)
    assert best is not None
    return best


def draw_cell(ax, blocks: Sequence[Block], concat: Sequence[int], title: str) -> CellLayout:
    """Draw one cell into the matplotlib axes ``ax``; returns the layout used."""
    from matplotlib.patches import FancyBboxPatch

    lay = layout_cell(blocks, concat)
    labels = {"in0": "h_i", "in1": "h_i-1", "out": "concat"}
    colors = {"in0": "#cfe8cf", "in1": "#cfe8cf", "out": "#f4b6c2"}
    for k, b in enumerate(blocks):
        for side, br in (("L", b.left), ("R", b.right)):
            labels[f"op{k}{side}"] = _OP_LABELS.get(br.op, br.op)
            colors[f"op{k}{side}"] = _op_color(br.op)
        labels[f"add{k}"] = "add" if b.combine == "add" else "concat"
        colors[f"add{k}"] = "#9ccc9c"
    for (_, t), path in zip(lay.edges, lay.paths):
        color = "#a33" if t == "out" else "#444"
        if len(path) > 2:
            px, py = zip(*path[:-1])
            ax.plot(px, py, color=color, lw=0.8, solid_joinstyle="round")
        ax.annotate(
            "",
            xy=path[-1],
            xytext=path[-2],
            arrowprops={
                "arrowstyle": "-|>",
                "lw": 0.8,
                "color": color,
                "shrinkA": 0,
                "shrinkB": 0,
                "mutation_scale": 7,
            },
        )
    for name, (x, y, w, h) in lay.boxes.items():
        ax.add_patch(
            FancyBboxPatch(
                (x - w / 2, y - h / 2),
                w,
                h,
                boxstyle="round,pad=0.03",
                fc=colors[name],
                ec="black",
                lw=0.8,
                zorder=3,
            )
        )
        ax.text(x, y, labels[name], ha="center", va="center", fontsize=7, zorder=4)
    xs = [x for p in lay.paths for x, _ in p] + [x for x, _, _, _ in lay.boxes.values()]
    ys = [y for _, y, _, _ in lay.boxes.values()]
    ax.set_xlim(min(xs) - 1.0, max(xs) + 1.0)
    ax.set_ylim(min(ys) - 0.6, max(ys) + 0.6)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(title, fontsize=11)
    return lay


def draw_genotype(genotype: Genotype, stem: str | os.PathLike) -> list[Path]:
    """Diagrams of the normal and reduction cell: ``<stem>_normal.png/.svg`` and
    ``<stem>_reduction.png/.svg`` (written atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stem = Path(stem)
    written = []
    for field, title in (("normal", "Normal Cell"), ("reduce", "Reduction Cell")):
        blocks = getattr(genotype, field)
        levels = max(_levels(blocks), default=1)
        width, height = _COLUMN * len(blocks) + 2.0, (2 * levels + 2) * _LEVEL + 1.2
        fig, ax = plt.subplots(figsize=(0.75 * width + 0.4, 0.75 * height + 0.7), dpi=130)
        name = f" ({genotype.name})" if genotype.name else ""
        draw_cell(ax, blocks, getattr(genotype, field + "_concat"), title + name)
        fig.tight_layout()
        suffix = "normal" if field == "normal" else "reduction"
        for fmt in ("png", "svg"):
            p = stem.with_name(f"{stem.name}_{suffix}.{fmt}")
            buf = io.BytesIO()
            fig.savefig(buf, format=fmt)
            atomic_write_bytes(p, buf.getvalue(), what="cell diagram")
            written.append(p)
        plt.close(fig)
    return written
