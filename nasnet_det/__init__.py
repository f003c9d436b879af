"""nasnet-det: NASNet (Zoph et al., CVPR 2018) as data, exact networks, Detectron2 parts.

``import nasnet_det`` is cheap: the core names below (genotypes, ops, the builder; torch) load on
first use (PEP 562), so tools that need none of them, such as COCO evaluation, start in a fraction
of a second. The Detectron2 parts register when ``nasnet_det.detection`` is imported, as
Detectron2 projects do.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: public name -> the core module that defines it
_LAZY = {
    "GENOTYPES": "nasnet_det.genotypes",
    "NASNET_A": "nasnet_det.genotypes",
    "Block": "nasnet_det.genotypes",
    "Branch": "nasnet_det.genotypes",
    "Genotype": "nasnet_det.genotypes",
    "get_genotype": "nasnet_det.genotypes",
    "register_genotype": "nasnet_det.genotypes",
    "NASNet": "nasnet_det.nasnet",
    "NASNetConfig": "nasnet_det.nasnet",
    "build_nasnet": "nasnet_det.nasnet",
    "list_presets": "nasnet_det.nasnet",
    "nasnet_config": "nasnet_det.nasnet",
    "OPS": "nasnet_det.ops",
    "OP_NAMES": "nasnet_det.ops",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'nasnet_det' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
