"""Published weights by name, served from a local folder (file:// URLs): nothing touches the
internet. The served file is a Cadene ``nasnetamobile`` with random weights."""

import hashlib
import os
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from nasnet_det.convert import hub
from nasnet_det.convert import pretrainedmodels as cadene_source

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "reliability"))
from harness import run_tool  # noqa: E402


@pytest.fixture(scope="module")
def cadene_file(tmp_path_factory):
    """A Cadene NASNet-A Mobile state dict saved as the publisher's file, and its model."""
    from pretrainedmodels.models.nasnet_mobile import NASNetAMobile

    torch.manual_seed(0)
    model = NASNetAMobile(num_classes=1000).eval()
    folder = tmp_path_factory.mktemp("served")
    path = folder / "nasnetamobile-served.pth"
    torch.save(model.state_dict(), path)
    return path, model


@pytest.fixture
def served(cadene_file, tmp_path, monkeypatch):
    """Declare ``nasnetamobile`` at a file:// URL with the file's true sha256 prefix; the cache
    is a fresh folder. Returns a function re-declaring it with other fields."""
    path, _ = cadene_file
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    monkeypatch.setenv(hub.CACHE_ENV, str(tmp_path / "cache"))
    base = replace(
        cadene_source.PRETRAINED["nasnetamobile"],
        url=path.as_uri(),
        file_name="nasnetamobile-served.pth",
        sha256_prefix=digest[:8],
    )

    def declare(**fields):
        decl = replace(base, **fields)
        monkeypatch.setitem(cadene_source.PRETRAINED, "nasnetamobile", decl)
        return decl

    declare()
    return declare, digest


def test_names_parse_and_unknown_names_list_the_known_ones(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert hub.parse_weight_name("nasnet://timm/nasnetalarge") == ("timm", "nasnetalarge")
    assert hub.parse_weight_name("pretrainedmodels:nasnetamobile") == (
        "pretrainedmodels",
        "nasnetamobile",
    )
    assert hub.parse_weight_name("weights/model.pth") is None
    with pytest.raises(ValueError, match="nasnet://pretrainedmodels/nasnetamobile"):
        hub.parse_weight_name("nasnet://timm/nasnetamobile")
    # A file that happens to be called like a short name is a file.
    (tmp_path / "timm:nasnetalarge").write_bytes(b"x")
    assert hub.parse_weight_name("timm:nasnetalarge") is None


def test_download_check_convert_load_keeps_cadenes_tensors(served, cadene_file, tmp_path):
    _, digest = served
    _, cadene = cadene_file
    w = hub.load_weights("nasnet://pretrainedmodels/nasnetamobile", progress=False)
    assert w.source == "pretrainedmodels:nasnetamobile"
    assert w.preprocessing == {
        "image_size": 224,
        "crop_pct": 0.875,
        "interpolation": "bilinear",
        "mean": [0.5, 0.5, 0.5],
        "std": [0.5, 0.5, 0.5],
    }
    cached = tmp_path / "cache" / "hub" / "pretrainedmodels" / "nasnetamobile-served.pth"
    assert cached.is_file()
    # The full sha256 is pinned on first use.
    assert cached.with_name(cached.name + ".sha256").read_text().strip() == digest
    # The tensors are Cadene's, under our names (the mapping itself is checked against
    # Cadene's logits in test_pretrainedmodels.py).
    ref = cadene.state_dict()
    torch.testing.assert_close(w.state_dict["stem.conv.weight"], ref["conv0.conv.weight"])
    torch.testing.assert_close(w.state_dict["classifier.weight"], ref["last_linear.weight"])
    assert len(w.state_dict) == len(ref)
    model = w.build_model()
    model.load_state_dict(w.state_dict)  # strict: every tensor has its place


def test_downloaded_once_then_used_from_the_cache(served, monkeypatch):
    declare, _ = served
    hub.fetch("pretrainedmodels", "nasnetamobile", progress=False)
    # The URL now points nowhere: the cached file is used.
    declare(url="http://127.0.0.1:9/nasnetamobile-served.pth")
    path = hub.fetch("pretrainedmodels", "nasnetamobile", progress=False)
    assert path.is_file()


def test_wrong_checksum_is_refused_and_nothing_is_kept(served, tmp_path):
    declare, digest = served
    wrong = "0" * 8 if not digest.startswith("0" * 8) else "1" * 8
    declare(sha256_prefix=wrong)
    with pytest.raises(ValueError, match="does not match its checksum"):
        hub.load_weights("pretrainedmodels:nasnetamobile", progress=False)
    folder = tmp_path / "cache" / "hub" / "pretrainedmodels"
    assert list(folder.iterdir()) == []
    # A full recorded sha256 is checked on a placed file too.
    declare(sha256="f" * 64, sha256_prefix=digest[:8])
    (folder / "nasnetamobile-served.pth").write_bytes(b"not the published file")
    with pytest.raises(ValueError, match="expected f{64}"):
        hub.fetch("pretrainedmodels", "nasnetamobile", progress=False)


def test_right_full_sha256_passes(served):
    declare, digest = served
    declare(sha256=digest)
    path = hub.fetch("pretrainedmodels", "nasnetamobile", progress=False)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest


def test_a_changed_cached_file_no_longer_matches_its_pin(served):
    path = hub.fetch("pretrainedmodels", "nasnetamobile", progress=False)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="pinned in .* on first download"):
        hub.fetch("pretrainedmodels", "nasnetamobile", progress=False)


def test_offline_error_names_url_and_place_and_a_placed_file_is_used(served, cadene_file):
    declare, _ = served
    path, _ = cadene_file
    url = "http://127.0.0.1:9/nasnetamobile-served.pth"
    declare(url=url)
    with pytest.raises(ValueError) as err:
        hub.fetch("pretrainedmodels", "nasnetamobile", progress=False)
    target = hub.cache_dir() / "hub" / "pretrainedmodels" / "nasnetamobile-served.pth"
    assert url in str(err.value) and str(target) in str(err.value)
    assert "\n" not in str(err.value)
    target.write_bytes(path.read_bytes())  # placed by hand
    assert hub.fetch("pretrainedmodels", "nasnetamobile", progress=False) == target


def test_resolve_weights_path_gives_a_converted_checkpoint_the_detector_reads(served):
    out = hub.resolve_weights_path("nasnet://pretrainedmodels/nasnetamobile", progress=False)
    obj = torch.load(out, map_location="cpu", weights_only=True)
    assert obj["meta"]["source"] == "pretrainedmodels:nasnetamobile"
    assert obj["meta"]["preprocessing"]["image_size"] == 224
    assert any(k.startswith("cells.") for k in obj["model"])
    mtime = os.stat(out).st_mtime_ns
    # Converted once: the second call reuses the file.
    assert hub.resolve_weights_path("pretrainedmodels:nasnetamobile", progress=False) == out
    assert os.stat(out).st_mtime_ns == mtime
    assert hub.resolve_weights_path("output/model_final.pth") == "output/model_final.pth"


def test_convert_weights_input_name_uses_the_cache(served, tmp_path):
    out = tmp_path / "mobile.pth"
    name = "nasnet://pretrainedmodels/nasnetamobile"
    r = run_tool("convert_weights.py", "--source", "pretrainedmodels", "--input", name,
                 "--output", out)  # fmt: skip
    assert r.rc == 0, r.stderr
    assert torch.load(out, weights_only=True)["meta"]["source"] == "pretrainedmodels:nasnetamobile"
    r = run_tool("convert_weights.py", "--source", "timm", "--input", name, "--output", out)
    assert r.rc == 2 and "is pretrainedmodels's nasnetamobile" in r.stderr


def test_model_weights_name_loads_into_the_detector(served, cadene_file):
    from detectron2.modeling import build_model

    from nasnet_det.detection import NASNetCheckpointer
    from nasnet_det.detection.engine import load_config

    _, cadene = cadene_file
    cfg = load_config(
        "configs/quick_schedules/faster_rcnn_nasnet_a_mobile_instant_test.yaml",
        ["MODEL.DEVICE", "cpu", "MODEL.WEIGHTS", "pretrainedmodels:nasnetamobile"],
    )
    model = build_model(cfg)
    NASNetCheckpointer(model, cfg=cfg).load(cfg.MODEL.WEIGHTS)
    torch.testing.assert_close(
        model.backbone.stem.conv.weight, cadene.state_dict()["conv0.conv.weight"]
    )


def test_sources_declare_their_files_once_and_import_no_hub():
    """Each source's declaration names its published file; the file name's hex is the sha256
    prefix checked on download. The sources import the package, never the hub (no circle)."""
    from nasnet_det.convert import timm as timm_source

    got = {
        (src, arch): (d.file_name, d.sha256_prefix, d.preprocessing()["image_size"])
        for src, mod in (("timm", timm_source), ("pretrainedmodels", cadene_source))
        for arch, d in mod.PRETRAINED.items()
    }
    assert got == {
        ("timm", "nasnetalarge"): ("nasnetalarge-dc4a7b8b.pth", "dc4a7b8b", 331),
        ("pretrainedmodels", "nasnetamobile"): ("nasnetamobile-7e03cead.pth", "7e03cead", 224),
        ("pretrainedmodels", "nasnetalarge"): ("nasnetalarge-a1897284.pth", "a1897284", 331),
    }
    code = (
        "import sys, nasnet_det.convert.timm, nasnet_det.convert.pretrainedmodels, "
        "nasnet_det.convert.ours; print('nasnet_det.convert.hub' in sys.modules)"
    )
    import subprocess

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
