"""Installs nasnet_det and maps the top-level search/ folder to nasnet_det.search.

Detectron2 does the same for its projects/ folders: the search code stays at the repository's top
level where users look for it, yet imports as one installed package, so nothing depends on the
current directory or on sys.path edits.
"""

from setuptools import find_packages, setup

packages = find_packages(include=["nasnet_det", "nasnet_det.*"])
search_packages = ["nasnet_det.search"] + [
    "nasnet_det.search." + p for p in find_packages(where="search")
]

# Configs ship inside the installed package too (nasnet_det.detection.model_zoo looks there
# first).
configs_package = "nasnet_det.configs"

setup(
    name="nasnet-det",
    version="0.1.0",
    description="NASNet (Zoph et al., CVPR 2018): cell search, exact networks, Detectron2 backbone",
    python_requires=">=3.10",
    packages=packages + search_packages + [configs_package],
    package_dir={"nasnet_det.search": "search", configs_package: "configs"},
    # The tabular benchmark ships as data (nasnet_det.search.tabular.TABLE_FILE).
    package_data={
        # The LazyConfig .py twins are data too: LazyConfig.load reads them by path.
        configs_package: ["*.yaml", "*/*.yaml", "*/*.py", "*/*/*.py"],
        "nasnet_det.search": ["tables/*.json.gz"],
    },
    install_requires=["torch", "torchvision", "numpy", "pyyaml", "tqdm", "fvcore"],
)
