"""nasnet-det: NASNet (Zoph et al., CVPR 2018) as data, exact networks, Detectron2 parts."""

from nasnet_det.genotypes import (
    GENOTYPES,
    NASNET_A,
    Block,
    Branch,
    Genotype,
    get_genotype,
    register_genotype,
)
from nasnet_det.nasnet import NASNet, NASNetConfig, build_nasnet, list_presets
from nasnet_det.ops import OP_NAMES, OPS

__version__ = "0.1.0"

__all__ = [
    "GENOTYPES",
    "NASNET_A",
    "OPS",
    "OP_NAMES",
    "Block",
    "Branch",
    "Genotype",
    "NASNet",
    "NASNetConfig",
    "build_nasnet",
    "get_genotype",
    "list_presets",
    "register_genotype",
]


def _register_detectron2_parts() -> bool:
    """Importing nasnet_det registers its Detectron2 backbone, ROI heads and built-in datasets
    when Detectron2 is installed (the core works without it)."""
    import warnings

    try:
        import detectron2  # noqa: F401
    except ImportError:
        return False
    with warnings.catch_warnings():
        # Detectron2 0.7.2 decorates functions with torch.jit.script, deprecated in this torch.
        warnings.filterwarnings("ignore", category=FutureWarning, message=".*torch.jit.script")
        import nasnet_det.detection  # noqa: F401

    return True


HAS_DETECTRON2 = _register_detectron2_parts()
if HAS_DETECTRON2:
    from nasnet_det.detection import add_nasnet_config as add_nasnet_config

    __all__.append("add_nasnet_config")
