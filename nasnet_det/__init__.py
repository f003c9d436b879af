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
