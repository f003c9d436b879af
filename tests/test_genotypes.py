"""Genotypes: NASNet-A as the paper draws it, JSON round trips, every malformed case."""

import json
import random

import pytest

from nasnet_det import NASNET_A, OP_NAMES, Genotype, get_genotype

# The paper's Fig. 4 / NASNET_FACTS.md tables: (left op, left input, right op, right input).
PAPER_NORMAL = [
    ("sep 5x5", 0, "sep 3x3", 1),
    ("sep 5x5", 1, "sep 3x3", 1),
    ("avg 3x3", 0, "identity", 1),
    ("avg 3x3", 1, "avg 3x3", 1),
    ("sep 3x3", 0, "identity", 0),
]
PAPER_REDUCE = [
    ("sep 5x5", 0, "sep 7x7", 1),
    ("max 3x3", 0, "sep 7x7", 1),
    ("avg 3x3", 0, "sep 5x5", 1),
    ("identity", 3, "avg 3x3", 2),
    ("sep 3x3", 2, "max 3x3", 0),
]
PAPER_NAME = {
    "sep_conv_3x3": "sep 3x3",
    "sep_conv_5x5": "sep 5x5",
    "sep_conv_7x7": "sep 7x7",
    "avg_pool_3x3": "avg 3x3",
    "max_pool_3x3": "max 3x3",
    "identity": "identity",
}


def _as_table(blocks):
    return [
        (PAPER_NAME[b.left.op], b.left.input, PAPER_NAME[b.right.op], b.right.input) for b in blocks
    ]


def test_nasnet_a_is_the_papers_cell():
    assert _as_table(NASNET_A.normal) == PAPER_NORMAL
    assert _as_table(NASNET_A.reduce) == PAPER_REDUCE
    assert NASNET_A.normal_concat == (1, 2, 3, 4, 5, 6)
    assert NASNET_A.reduce_concat == (3, 4, 5, 6)
    assert all(b.combine == "add" for b in NASNET_A.normal + NASNET_A.reduce)


def test_the_13_ops_of_the_paper():
    assert len(OP_NAMES) == 13
    assert set(OP_NAMES) == {
        "identity", "conv_1x3_3x1", "conv_1x7_7x1", "dil_conv_3x3", "avg_pool_3x3",
        "max_pool_3x3", "max_pool_5x5", "max_pool_7x7", "conv_1x1", "conv_3x3",
        "sep_conv_3x3", "sep_conv_5x5", "sep_conv_7x7",
    }  # fmt: skip


def test_json_round_trip(tmp_path, random_genotype):
    rng = random.Random(0)
    for i in range(50):
        g = random_genotype(rng, num_blocks=rng.randint(1, 6))
        path = tmp_path / f"g{i}.json"
        g.to_json(path)
        assert get_genotype(path) == g
        assert Genotype.from_dict(json.loads(g.to_json())) == g
    assert get_genotype("nasnet_a") is NASNET_A
    assert get_genotype(NASNET_A) is NASNET_A
    NASNET_A.to_json(tmp_path / "a.json")
    assert get_genotype(str(tmp_path / "a.json")) == NASNET_A


def _broken(mutate):
    d = NASNET_A.to_dict()
    mutate(d)
    return d


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda d: d["normal"][2].update(left=["conv_9x9", 0]),
         r"'normal', block 2, left branch: unknown op 'conv_9x9'"),
        (lambda d: d["normal"][1].update(right=["sep_conv_3x3", 3]),
         r"'normal', block 1, right branch: input 3 refers to the block itself"),
        (lambda d: d["reduce"][0].update(left=["sep_conv_3x3", 4]),
         r"'reduce', block 0, left branch: input 4 refers to a later block"),
        (lambda d: d["reduce"][3].update(right=["avg_pool_3x3", -1]),
         r"'reduce', block 3, right branch: input -1 is out of range"),
        (lambda d: d["reduce"][3].update(right=["avg_pool_3x3", "2"]),
         r"'reduce', block 3, right branch: input must be an integer"),
        (lambda d: d["reduce"].pop(),
         r"'reduce': expected 5 blocks \(as many as 'normal'\), got 4"),
        (lambda d: (d["normal"].clear(), d["reduce"].clear()),
         r"'normal': expected at least one block, got 0"),
        (lambda d: d.update(normal_concat=[]),
         r"'normal_concat': expected at least one state"),
        (lambda d: d.update(normal_concat=[1, 2, 7]),
         r"'normal_concat', position 2: state 7 is out of range 0..6"),
        (lambda d: d.update(reduce_concat=[3, 3, 4]),
         r"'reduce_concat', position 1: state 3 is listed twice"),
        (lambda d: d["normal"][0].update(combine="mul"),
         r"'normal', block 0: unknown combiner 'mul'"),
        (lambda d: d.pop("reduce_concat"), r"missing field 'reduce_concat'"),
        (lambda d: d["normal"][4].update(left="sep_conv_3x3"),
         r"'normal', block 4, left branch: expected \[op_name, input_index\]"),
    ],
)  # fmt: skip
def test_malformed_genotypes_name_field_and_position(tmp_path, mutate, expected):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(_broken(mutate)))
    with pytest.raises(ValueError, match=expected):
        get_genotype(path)


def test_invalid_json_and_bad_names(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"normal": [')
    with pytest.raises(ValueError, match=r"is not valid JSON: .* line 1, column"):
        get_genotype(path)
    with pytest.raises(ValueError, match=r"does not exist"):
        get_genotype(tmp_path / "missing.json")
    with pytest.raises(ValueError, match=r"unknown genotype 'nasnet_z'.*nasnet_a"):
        get_genotype("nasnet_z")
    path.write_text("[1, 2]")
    with pytest.raises(ValueError, match=r"expected a JSON object"):
        get_genotype(path)


def test_inline_genotype_round_trips_and_bad_inline_text_is_refused():
    from nasnet_det.genotypes import NASNET_A, get_genotype

    text = NASNET_A.inline()
    assert text.startswith("inline:") and "\n" not in text
    assert get_genotype(text).to_dict() == NASNET_A.to_dict()
    with pytest.raises(ValueError, match="inline genotype is not valid JSON"):
        get_genotype("inline:{not json")
    with pytest.raises(ValueError, match="inline genotype"):
        get_genotype('inline:{"normal": []}')
