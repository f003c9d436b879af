"""The children's datasets: CIFAR-10 read without running code, checked once before a search."""

import pickle

import numpy as np
import pytest
from nasnet_det.search import run_search
from nasnet_det.search.data import cached_dataset, check_dataset, load_dataset


def _fake_cifar(root, n=20, bad=None):
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(1, 6):
        batch = {
            "data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            "labels": [int(v) for v in rng.integers(0, 10, n)],
        }
        (d / f"data_batch_{i}").write_bytes(pickle.dumps(bad if bad and i == 3 else batch))
    return d


def test_missing_or_incomplete_cifar(tmp_path, instant_config):
    cfg = instant_config(
        "data.name", "cifar10", "data.root", str(tmp_path / "nope"), "max_children", "1"
    )
    # One clear error before anything is trained or written.
    with pytest.raises(ValueError, match="cifar-10-batches-py"):
        run_search(cfg, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    from nasnet_det.search.data import load_dataset

    d = tmp_path / "c" / "cifar-10-batches-py"
    d.mkdir(parents=True)
    (d / "data_batch_1").write_bytes(b"x")
    with pytest.raises(ValueError, match="incomplete: missing .*data_batch_2"):
        load_dataset("cifar10", root=str(tmp_path / "c"))


def test_cifar_reader_on_a_fake_folder(tmp_path):
    import pickle

    import numpy as np
    from nasnet_det.search.data import load_dataset

    d = tmp_path / "cifar-10-batches-py"
    d.mkdir()
    rng = np.random.default_rng(0)
    for i in range(1, 6):
        batch = {
            "data": rng.integers(0, 256, (20, 3072), dtype=np.uint8),
            "labels": [int(v) for v in rng.integers(0, 10, 20)],
        }
        (d / f"data_batch_{i}").write_bytes(pickle.dumps(batch))
    (xt, yt), (xv, yv) = load_dataset(
        "cifar10", str(tmp_path), image_size=16, train_size=90, val_size=10
    )
    assert xt.shape == (90, 3, 16, 16) and xv.shape == (10, 3, 16, 16)
    assert set(yt.tolist()) | set(yv.tolist()) <= set(range(10))
    # A pickle that would run code is refused.
    (d / "data_batch_3").write_bytes(pickle.dumps({"data": print, "labels": []}))
    with pytest.raises(ValueError, match="data_batch_3.*corrupt"):
        load_dataset("cifar10", str(tmp_path))


class _Payload:
    """Unpickling this runs ``os.system``: what a hostile 'CIFAR batch' would carry."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_wrong_pickles_are_one_error_at_start_and_run_nothing(tmp_path, instant_config):
    marker = tmp_path / "PWNED"
    _fake_cifar(tmp_path / "c", bad={"data": _Payload(marker), "labels": [1]})
    # Check that the payload is real: a plain unpickler would run it.
    raw = (tmp_path / "c" / "cifar-10-batches-py" / "data_batch_3").read_bytes()
    pickle.loads(raw)
    assert marker.exists()
    marker.unlink()

    cfg = instant_config(
        "data.name", "cifar10", "data.root", str(tmp_path / "c"), "data.train_size", "80",
        "data.val_size", "10",
    )  # fmt: skip
    calls = []
    with pytest.raises(
        ValueError, match=r"data_batch_3.*corrupt or not a CIFAR batch.*refusing to load .*system"
    ):
        run_search(cfg, tmp_path / "out", train_fn=lambda *a: calls.append(a))
    assert not marker.exists() and not calls and not (tmp_path / "out").exists()


def test_cifar_batches_are_checked_for_shape_labels_and_size(tmp_path):
    bad_labels = {"data": np.zeros((2, 3072), np.uint8), "labels": [0, 10]}
    _fake_cifar(tmp_path / "a", bad=bad_labels)
    with pytest.raises(ValueError, match="data_batch_3.*labels outside 0..9"):
        check_dataset("cifar10", str(tmp_path / "a"))
    _fake_cifar(tmp_path / "b", bad={"data": np.zeros((2, 100), np.uint8), "labels": [0, 1]})
    with pytest.raises(ValueError, match="data_batch_3.*corrupt"):
        check_dataset("cifar10", str(tmp_path / "b"))
    _fake_cifar(tmp_path / "c", n=20)  # 100 images in all
    check_dataset("cifar10", str(tmp_path / "c"), train_size=90, val_size=10)
    with pytest.raises(ValueError, match="at most 100, got 95 \\+ 10"):
        check_dataset("cifar10", str(tmp_path / "c"), train_size=95, val_size=10)
    with pytest.raises(ValueError, match="at most 1797"):
        check_dataset("digits", train_size=1797, val_size=1)


def test_digits_split_and_cache():
    cfg = {"name": "digits", "image_size": 8, "train_size": 100, "val_size": 50, "split_seed": 0}
    (xt, yt), (xv, yv) = cached_dataset(cfg)
    assert xt.shape == (100, 3, 8, 8) and xv.shape == (50, 3, 8, 8)
    assert cached_dataset(dict(cfg))[0][0] is xt  # loaded once per process
    # The validation images are fixed by the split seed whatever the train size.
    (_, _), (xv2, _) = load_dataset(**{**cfg, "train_size": 10})
    assert torch_equal(xv, xv2)


def torch_equal(a, b):
    return bool((a == b).all())


def test_digit_crops_are_the_detection_domain_rendered_as_digit_crops_seed_for_seed():
    from nasnet_det.search.data import DIGIT_CROPS_SCALE

    from nasnet_det.data import DigitCrops, DigitsSpec, digit_pool

    (xt, yt), (xv, yv) = load_dataset(
        "digit_crops", image_size=16, train_size=24, val_size=12, split_seed=3
    )
    assert xt.shape == (24, 3, 16, 16) and xv.shape == (12, 3, 16, 16)
    assert -1.0 <= float(xt.min()) and float(xt.max()) <= 1.0 and yt.dtype == yv.dtype
    # Exactly what DigitCrops renders from the train pool (val: the held-out pool), per seed.
    ref, labels = DigitCrops(DigitsSpec(), "train", DIGIT_CROPS_SCALE).sample(
        24, 16, np.random.default_rng([3, 0])
    )
    assert np.array_equal(yt.numpy(), labels)
    assert np.allclose(xt.permute(0, 2, 3, 1).numpy(), ref / 127.5 - 1.0, atol=1e-6)
    _, val_labels = DigitCrops(DigitsSpec(), "val", DIGIT_CROPS_SCALE).sample(
        12, 16, np.random.default_rng([3, 1])
    )
    assert np.array_equal(yv.numpy(), val_labels)
    # The two pools hold disjoint digit samples.
    train_pool, val_pool = digit_pool(DigitsSpec(), "train")[0], digit_pool(DigitsSpec(), "val")[0]
    train_set = {a.tobytes() for a in train_pool}
    assert not any(a.tobytes() in train_set for a in val_pool)
    with pytest.raises(ValueError, match=r"train_size must be in 1\.\.100000, got 0"):
        check_dataset("digit_crops", train_size=0)
