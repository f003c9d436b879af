"""timm's ``nasnetalarge`` (Cadene's port with TF SAME padding) to our layout.

timm names its cells exactly as TF-slim does (``cell_stem_0``, ``cell_0`` .. ``cell_17``,
``reduction_cell_0/1``), in the same forward order as our ``NASNet.cell_names``; only the module
names inside a cell differ.
"""

from __future__ import annotations

import re

import torch

from nasnet_det.convert import Converted, PretrainedCfg, check_against_model, rename_keys

ARCHS = ("nasnetalarge",)

#: timm's published weights (``timm.models.nasnet.default_cfgs['nasnetalarge.tf_in1k']``; the
#: Hugging Face copy is ``timm/nasnetalarge.tf_in1k``). The name's ``dc4a7b8b`` is the start of
#: the file's sha256 (timm names its releases so); no full digest is published. Inception mean
#: and std, 1000 classes.
PRETRAINED = {
    "nasnetalarge": PretrainedCfg(
        url="https://github.com/rwightman/pytorch-image-models/releases/download/v0.1-weights/"
        "nasnetalarge-dc4a7b8b.pth",
        input_size=(3, 331, 331),
        interpolation="bicubic",
        crop_pct=0.911,
    ),
}

_BRANCH = r"comb_iter_(\d)_(left|right)\."
_INNER = [
    (r"conv_1x1\.conv\.", "pre0.conv."),
    (r"conv_1x1\.bn\.", "pre0.bn."),
    (r"conv_prev_1x1\.conv\.", "pre1.conv."),
    (r"conv_prev_1x1\.bn\.", "pre1.bn."),
    (r"path_1\.conv\.", "pre1.path1."),
    (r"path_2\.conv\.", "pre1.path2."),
    (r"final_path_bn\.", "pre1.bn."),
    (_BRANCH + r"separable_(\d)\.depthwise_conv2d\.", r"blocks.\1.\2.sep\3.depthwise."),
    (_BRANCH + r"separable_(\d)\.pointwise_conv2d\.", r"blocks.\1.\2.sep\3.pointwise."),
    (_BRANCH + r"bn_sep_(\d)\.", r"blocks.\1.\2.bn\3."),
]


def map_key(key: str, cell_index: dict[str, int]) -> str | None:
    """Our name for one timm key, or ``None`` when it has no counterpart."""
    if key.startswith("conv0."):
        return "stem." + key[len("conv0.") :]
    if key.startswith("last_linear."):
        return "classifier." + key[len("last_linear.") :]
    cell, _, rest = key.partition(".")
    if cell not in cell_index:
        return None
    for pat, rep in _INNER:
        new, n = re.subn("^" + pat, rep, rest)
        if n:
            return f"cells.{cell_index[cell]}.{new}"
    return None


def convert(state_dict: dict[str, torch.Tensor], arch: str) -> Converted:
    num_classes = (
        state_dict["last_linear.weight"].shape[0] if "last_linear.weight" in state_dict else 0
    )
    out = Converted({}, "nasnet_a_large", {"num_classes": num_classes, "use_aux_head": False})
    model = out.build_model()
    cell_index = {name: i for i, name in enumerate(model.cell_names)}
    out.state_dict = rename_keys(state_dict, map_key, cell_index, f"timm's {arch}")
    check_against_model(out.state_dict, model, f"converted timm {arch} checkpoint")
    return out
