"""Cell diagrams (nasnet_det.search.diagram): crossing count, planar layouts found, files."""

from __future__ import annotations

import itertools

import pytest
from nasnet_det.search.diagram import count_crossings, draw_genotype, layout_cell

from nasnet_det.genotypes import Genotype


def _cell(blocks, concat):
    return Genotype.from_dict(
        {"normal": blocks, "normal_concat": concat, "reduce": blocks, "reduce_concat": concat}
    )


def _brute_force_crossings(segments):
    """Textbook orientation test, pair by pair (the reference for the vectorised count)."""

    def orient(a, b, c):
        v = (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])
        return (v > 1e-12) - (v < -1e-12)

    n = 0
    for s, t in itertools.combinations(segments, 2):
        p1, p2, q1, q2 = s[:2], s[2:], t[:2], t[2:]
        if {p1, p2} & {q1, q2}:
            continue  # segments that share an end point do not cross
        o = (orient(p1, p2, q1), orient(p1, p2, q2), orient(q1, q2, p1), orient(q1, q2, p2))
        n += o[0] * o[1] < 0 and o[2] * o[3] < 0
    return n


def test_count_crossings_matches_orientation_test():
    segments = [
        (0.0, 0.0, 2.0, 2.0),
        (0.0, 2.0, 2.0, 0.0),  # an X with the first: 1
        (3.0, 0.0, 3.0, 2.0),  # apart: 0
        (2.0, 2.0, 4.0, 0.0),  # touches the first at its end point: 0, crosses the third: 1
        (-1.0, 1.0, 5.0, 1.0),  # crosses all four: 4
    ]
    assert _brute_force_crossings(segments) == 6
    assert count_crossings(segments) == 6
    assert count_crossings(segments[:1]) == 0


def test_a_planar_cell_is_drawn_without_crossings():
    # In block order, with h_i left of h_i-1, the edges into blocks 0 and 1 cross (block 0 reads
    # only h_i-1, block 1 only h_i); block 2 reads both blocks. Swapping the inputs or the
    # blocks gives a drawing without crossings, which the layout must find.
    g = _cell(
        [
            {"left": ["sep_conv_3x3", 1], "right": ["identity", 1]},
            {"left": ["avg_pool_3x3", 0], "right": ["max_pool_3x3", 0]},
            {"left": ["conv_1x1", 2], "right": ["identity", 3]},
        ],
        [4],
    )
    lay = layout_cell(g.normal, g.normal_concat)
    assert (lay.crossings, lay.box_hits) == (0, 0)
    y = {name: box[1] for name, box in lay.boxes.items()}
    assert y["in0"] == y["in1"] == min(y.values())  # inputs at the bottom
    assert y["out"] == max(y.values())  # the concat at the top
    for k in range(3):  # op boxes under their combiner, the reader above what it reads
        assert y[f"op{k}L"] == y[f"op{k}R"] < y[f"add{k}"]
    assert y["op2L"] > y["add0"] and y["op2L"] > y["add1"]
    flat = [(*p[j], *p[j + 1]) for p in lay.paths for j in range(len(p) - 1)]
    assert _brute_force_crossings(flat) == 0


def test_nasnet_a_normal_cell_has_a_single_unavoidable_crossing():
    # Blocks 0, 3 and 4 read both inputs and 1, 2 one each; with both inputs on the bottom row
    # and straight edges, two blocks that mix inputs force at least one crossing.
    from nasnet_det.genotypes import get_genotype

    g = get_genotype("nasnet_a")
    lay = layout_cell(g.normal, g.normal_concat)
    assert lay.box_hits == 0
    assert lay.crossings == 1


def test_draw_genotype_writes_png_and_svg(tmp_path):
    import matplotlib.image

    g = _cell([{"left": ["sep_conv_3x3", 0], "right": ["identity", 1]}], [0, 2])
    files = draw_genotype(g, tmp_path / "cell")
    assert sorted(p.name for p in files) == [
        "cell_normal.png",
        "cell_normal.svg",
        "cell_reduction.png",
        "cell_reduction.svg",
    ]
    img = matplotlib.image.imread(tmp_path / "cell_normal.png")
    assert img.shape[0] > 200 and img.shape[1] > 300
    assert "<svg" in (tmp_path / "cell_reduction.svg").read_text()
    assert not list(tmp_path.glob("*.tmp*"))


def test_layout_refuses_an_empty_cell():
    with pytest.raises(ValueError, match="at least one block"):
        layout_cell([], [])
