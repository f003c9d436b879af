"""Model-zoo access like ``detectron2.model_zoo``: config files by their path under configs/.

Configs live in the repository's top-level ``configs/`` folder (Detectron2's layout). An
installed copy of the package finds them in ``nasnet_det/configs/`` when setup.py maps the
folder there (``package_dir={"nasnet_det.configs": "configs"}`` plus ``package_data``), the way
it already maps ``search/``: no symlink, no copy at run time. A source checkout (editable
install included) falls back to ``<repo>/configs``.
"""

from __future__ import annotations

from pathlib import Path

from detectron2.config import CfgNode
from omegaconf import DictConfig

#: Sub-folders of configs/ holding Detectron2 configs (Detectron2's model-zoo layout).
DETECTION_FOLDERS = ("COCO-Detection", "quick_schedules", "Demo")

__all__ = ["DETECTION_FOLDERS", "config_root", "get_config", "get_config_file", "list_configs"]


def config_root() -> Path:
    """The folder holding the model-zoo configs (installed copy first, then the checkout)."""
    here = Path(__file__).resolve().parents[1]  # the nasnet_det package
    for root in (here / "configs", here.parent / "configs"):
        if (root / "Base-NASNet-C4.yaml").is_file():
            return root
    raise FileNotFoundError(
        f"model-zoo configs not found in {here / 'configs'} or {here.parent / 'configs'}"
    )


def list_configs(kind: str = "yaml") -> list[str]:
    """Every Detectron2 config that :func:`get_config_file` lists, e.g. ``COCO-Detection/...``:
    the YAML configs (``kind="yaml"``) or their LazyConfig twins (``kind="py"``).

    Only ``Base-*.yaml`` and the detection folders count: configs/ also holds the settings of
    other tools (``search/``, ``ImageNet/``), which are not Detectron2 configs.
    """
    if kind not in ("yaml", "py"):
        raise ValueError(f"kind must be 'yaml' or 'py', got {kind!r}")
    root = config_root()
    paths = (
        [p.relative_to(root).as_posix() for p in root.glob("Base-*.yaml")] if kind == "yaml" else []
    )
    for folder in DETECTION_FOLDERS:
        paths += [p.relative_to(root).as_posix() for p in (root / folder).rglob(f"*.{kind}")]
    return sorted(paths)


def get_config_file(config_path: str) -> str:
    """Absolute path of a model-zoo config.

    ``config_path`` is relative to configs/, e.g.
    ``"COCO-Detection/faster_rcnn_nasnet_a_mobile_1x.yaml"``.
    """
    path = config_root() / config_path
    if not path.is_file():
        known = list_configs() + list_configs("py")
        raise FileNotFoundError(
            f"{config_path!r} is not a model-zoo config; available: {', '.join(known)}"
        )
    return str(path)


def get_config(config_path: str) -> CfgNode | DictConfig:
    """A model-zoo config, as ``detectron2.model_zoo.get_config`` returns it: for a ``.yaml``
    file Detectron2's default config plus ``MODEL.NASNET`` merged with the file; for a ``.py``
    file the LazyConfig (``instantiate(cfg.model)`` builds the detector)."""
    if config_path.endswith(".py"):
        from detectron2.config import LazyConfig

        return LazyConfig.load(get_config_file(config_path))
    from nasnet_det.config import merge_config_file
    from nasnet_det.detection.config import get_nasnet_cfg

    cfg = get_nasnet_cfg()
    merge_config_file(cfg, get_config_file(config_path), "model-zoo config")
    return cfg
