import numpy as np
import pytest
from nasnet_det.search.space import SearchSpace, loose_ends

from nasnet_det import NASNET_A, OP_NAMES, build_nasnet, get_genotype
from nasnet_det.genotypes import Block, Branch, Genotype


def test_paper_space_shape():
    space = SearchSpace()
    # The paper: 2 x 5B softmax decisions; 13 ops; block k reads one of k + 2 states.
    assert space.num_decisions == 50
    assert len(space.ops) == 13 and space.ops == OP_NAMES
    assert space.num_choices()[:10] == [2, 2, 13, 13, 2, 3, 3, 13, 13, 2]
    # Per cell: prod_k (k+2)^2 * 13^2 * 2 for k = 0..4 -> (2*3*4*5*6)^2 * 169^5 * 32.
    per_cell = (2 * 3 * 4 * 5 * 6) ** 2 * 169**5 * 2**5
    assert space.size() == pytest.approx(float(per_cell) ** 2, rel=1e-9)


@pytest.mark.parametrize("blocks,ops", [(5, None), (2, ("identity", "sep_conv_3x3")), (1, None)])
def test_encode_decode_round_trip(blocks, ops):
    space = SearchSpace(num_blocks=blocks, **({"ops": ops} if ops else {}))
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(2000):
        d = space.sample(rng)
        g = space.decode(d)
        assert space.encode(g) == d
        assert space.decode(space.encode(g)) == g
        seen.add(d)
        # Genotype JSON survives as well.
        assert Genotype.from_dict(g.to_dict()) == g
    assert len(seen) > 1000 or blocks == 1  # not trivially the same sample


def test_decode_hand_example():
    space = SearchSpace(num_blocks=2, ops=("identity", "avg_pool_3x3", "sep_conv_3x3"))
    # normal: block0 = (sep3x3 on 0) add (identity on 1); block1 = (avg on 2) concat (sep on 0)
    # reduce: block0 = (avg on 1) add (avg on 1); block1 = (identity on 0) add (sep on 1)
    d = (0, 1, 2, 0, 0, 2, 0, 1, 2, 1) + (1, 1, 1, 1, 0, 0, 1, 0, 2, 0)
    g = space.decode(d)
    assert g.normal == (
        Block(Branch("sep_conv_3x3", 0), Branch("identity", 1), "add"),
        Block(Branch("avg_pool_3x3", 2), Branch("sep_conv_3x3", 0), "concat"),
    )
    assert g.normal_concat == (3,)  # block 0's output is read by block 1
    assert g.reduce_concat == (2, 3)  # neither block output is read
    assert space.encode(g) == d


def test_nasnet_a_encodes_loosely():
    space = SearchSpace()
    d = space.encode(NASNET_A, strict=False)
    assert d[:5] == (0, 1, OP_NAMES.index("sep_conv_5x5"), OP_NAMES.index("sep_conv_3x3"), 0)
    # NASNet-A concatenates a cell input too, which this space (loose ends only) does not.
    with pytest.raises(ValueError, match="normal_concat"):
        space.encode(NASNET_A)
    assert loose_ends(NASNET_A.normal) == (2, 3, 4, 5, 6)


def test_decoded_genotype_builds_and_loads(tmp_path):
    space = SearchSpace()
    g = space.decode(space.sample(np.random.default_rng(1)), name="sample")
    path = tmp_path / "g.json"
    g.to_json(path)
    assert get_genotype(str(path)) == g
    import torch

    m = build_nasnet(
        "nasnet_a_cifar",
        genotype=g,
        num_cells=1,
        num_conv_filters=2,
        num_classes=10,
        use_aux_head=False,
        image_size=8,
    )
    assert m(torch.randn(2, 3, 8, 8)).shape == (2, 10)


def test_mutate_changes_exactly_one_decision():
    space = SearchSpace(num_blocks=3)
    rng = np.random.default_rng(0)
    for _ in range(200):
        d = space.sample(rng)
        m = space.mutate(d, rng)
        assert sum(a != b for a, b in zip(d, m)) == 1
        space.validate(m)


def test_bad_space_and_decisions():
    with pytest.raises(ValueError, match="unknown op 'conv_9x9'"):
        SearchSpace(ops=("identity", "conv_9x9"))
    with pytest.raises(ValueError, match="num_blocks"):
        SearchSpace(num_blocks=0)
    with pytest.raises(ValueError, match="unknown key"):
        SearchSpace.from_config({"blocks": 5})
    space = SearchSpace(num_blocks=1)
    with pytest.raises(ValueError, match="expected 10 decisions"):
        space.decode((0,) * 9)
    with pytest.raises(ValueError, match="decision 0 is 2; expected 0..1"):
        space.decode((2,) + (0,) * 9)
    small = SearchSpace(ops=("identity",))
    with pytest.raises(ValueError, match="not in this search space"):
        small.encode(NASNET_A, strict=False)


def test_searched_genotype_plugs_into_the_detector(tmp_path):
    # The search's output file is what MODEL.NASNET.GENOTYPE takes.
    pytest.importorskip("detectron2")
    import torch
    from detectron2.modeling import build_model

    from nasnet_det.detection.demo import demo_config

    space = SearchSpace(num_blocks=3)
    d = list(space.sample(np.random.default_rng(3)))
    d[4] = 1  # a concat combiner in the normal cell
    path = tmp_path / "best_genotype.json"
    space.decode(d, name="searched").to_json(path)
    cfg = demo_config(str(path))
    cfg.MODEL.DEVICE = "cpu"
    model = build_model(cfg).eval()
    with torch.no_grad():
        out = model([{"image": torch.rand(3, 64, 64) * 255, "height": 64, "width": 64}])
    assert "instances" in out[0]
