"""Installation surface: the package imports, registers its Detectron2 parts, ships search."""

import importlib


def test_import_registers_detectron2_parts():
    import nasnet_det

    assert nasnet_det.HAS_DETECTRON2
    from detectron2.modeling import BACKBONE_REGISTRY, ROI_HEADS_REGISTRY

    assert BACKBONE_REGISTRY.get("build_nasnet_backbone") is not None
    assert ROI_HEADS_REGISTRY.get("NASNetROIHeads") is not None
    assert callable(nasnet_det.add_nasnet_config)


def test_search_folder_installs_as_nasnet_det_search():
    mod = importlib.import_module("nasnet_det.search")
    # package_dir maps the repository's top-level search/ folder into the package.
    assert mod.__file__.replace("\\", "/").endswith("search/__init__.py")
    assert "nasnet_det/search" not in mod.__file__.replace("\\", "/")
