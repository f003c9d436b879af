"""Installation surface: a light core, Detectron2 parts registered by their own subpackage,
search shipped inside the package."""

import importlib
import subprocess
import sys


def _modules_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_core_import_loads_no_detectron2():
    mods = _modules_after("import nasnet_det; nasnet_det.build_nasnet('nasnet_a_mobile')")
    assert "torch" in mods
    heavy = sorted(m for m in mods if m.split(".")[0] in ("detectron2", "fvcore", "timm", "cv2"))
    assert heavy == []


def test_detection_import_registers_detectron2_parts():
    from detectron2.data import DatasetCatalog
    from detectron2.modeling import BACKBONE_REGISTRY, ROI_HEADS_REGISTRY

    import nasnet_det.detection

    assert BACKBONE_REGISTRY.get("build_nasnet_backbone") is not None
    assert BACKBONE_REGISTRY.get("build_nasnet_fpn_backbone") is not None
    assert ROI_HEADS_REGISTRY.get("NASNetROIHeads") is not None
    assert "nasnet_digits_train" in DatasetCatalog.list()
    assert callable(nasnet_det.detection.add_nasnet_config)


def test_search_folder_installs_as_nasnet_det_search():
    mod = importlib.import_module("nasnet_det.search")
    # package_dir maps the repository's top-level search/ folder into the package.
    assert mod.__file__.replace("\\", "/").endswith("search/__init__.py")
    assert "nasnet_det/search" not in mod.__file__.replace("\\", "/")


def test_every_config_file_ships_in_the_wheel():
    """setup.py's package_data globs (``*`` stops at ``/``, as setuptools matches them) cover every
    YAML config and every LazyConfig .py twin under configs/, however deep."""
    import ast
    import fnmatch
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    tree = ast.parse((root / "setup.py").read_text())
    call = next(
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "setup"
    )
    data = next(k.value for k in call.keywords if k.arg == "package_data")
    globs = next(
        ast.literal_eval(v)
        for k, v in zip(data.keys, data.values)
        if ast.unparse(k) == "configs_package"
    )
    files = [
        p.relative_to(root / "configs").as_posix()
        for p in (root / "configs").rglob("*")
        if p.suffix in (".yaml", ".py")
    ]
    assert any(f.endswith(".py") for f in files) and any(f.endswith(".yaml") for f in files)

    def shipped(rel):
        return any(fnmatch.fnmatch(rel, g) and rel.count("/") == g.count("/") for g in globs)

    assert [f for f in files if not shipped(f)] == []
