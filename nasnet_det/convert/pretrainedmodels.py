"""Cadene's ``pretrainedmodels`` ``nasnetamobile`` and ``nasnetalarge`` to our layout.

Cadene's module names inside a cell are timm's (timm's port descends from this one), but the
normal cells are numbered with gaps where the reduction cells sit (mobile: ``cell_0..3``,
``cell_6..9``, ``cell_12..15``; large happens to be gap-free), so cells are matched by forward
order, not by name.

Padding. Cadene emulates TensorFlow's SAME padding with fixed symmetric paddings plus, in some
cells, a "pad one row/column before, convolve, crop the first row/column" trick
(``BranchSeparablesReduction``, ``BranchSeparables(name='specific')``, ``MaxPoolPad``,
``AvgPoolPad``). Symmetric padding equals SAME for a stride-2 op only on an odd input side; the
trick equals SAME only on an even one. Cadene chose each cell's variant for the native input
size, so at 224 (mobile) and 331 (large) every op matches our TF-SAME ops exactly, with
average pools excluding the padding (``pool_pad='tf'``). At other sizes the two differ:

* a symmetric stride-2 op on an even side (mobile ``cell_stem_0``; large ``cell_stem_0``,
  ``cell_stem_1``, ``reduction_cell_1``) samples one pixel later than SAME (same output size,
  windows shifted by one) - our ops cannot reproduce that;
* the pad-and-crop trick on an odd side (mobile ``cell_stem_1`` and both reduction cells; large
  ``reduction_cell_0``) yields ``(H - 1) / 2`` rows where SAME gives ``(H + 1) / 2``, and
  Cadene's own forward then fails on mismatched shapes.

Cadene's network therefore agrees with ours (and with TensorFlow) for input sides
``H = 32k`` or ``32k - 1`` (mobile) and ``H = 32k + 11`` or ``32k + 12`` (large), and at no other
size. Its logits also hard-code the final average pool (7 for mobile, 11 for large); ours pool
globally.
"""

from __future__ import annotations

import re

import torch

from nasnet_det.convert import Converted, PretrainedCfg, check_against_model, rename_keys
from nasnet_det.convert.timm import map_key

ARCHS = ("nasnetamobile", "nasnetalarge")

#: Cadene's published weights (``pretrainedmodels.pretrained_settings[arch]['imagenet']``). The
#: hex in each file name is the start of its sha256 (torch.hub's naming); no full digest is
#: published. The crop is ``pretrainedmodels.utils.TransformImage``'s default: resize the short
#: side to size / 0.875 (bilinear), centre-crop size. Inception mean and std, 1000 classes.
_URL = "http://data.lip6.fr/cadene/pretrainedmodels/"
PRETRAINED = {
    arch: PretrainedCfg(_URL + file, input_size=(3, size, size), interpolation="bilinear",
                        crop_pct=0.875)
    for arch, file, size in (
        ("nasnetamobile", "nasnetamobile-7e03cead.pth", 224),
        ("nasnetalarge", "nasnetalarge-a1897284.pth", 331),
    )
}  # fmt: skip

_PRESETS = {"nasnetamobile": "nasnet_a_mobile", "nasnetalarge": "nasnet_a_large"}
_NORMAL = re.compile(r"^cell_(\d+)$")


def cell_order(cell_names: list[str]) -> list[str]:
    """Cadene's cell module names in forward order (stem, normal cells with reductions between).

    Normal cells are sorted by number; ``reduction_cell_k`` follows the last normal cell of
    stack ``k``.
    """
    normal = sorted((n for n in cell_names if _NORMAL.match(n)), key=lambda n: int(n[5:]))
    stems = sorted(n for n in cell_names if n.startswith("cell_stem_"))
    reductions = sorted(n for n in cell_names if n.startswith("reduction_cell_"))
    if not normal or len(normal) % (len(reductions) + 1):
        raise ValueError(
            f"expected the normal cells to split evenly into {len(reductions) + 1} stacks, "
            f"found {len(normal)} normal cells"
        )
    per_stack = len(normal) // (len(reductions) + 1)
    order = list(stems)
    for k in range(len(reductions) + 1):
        order += normal[k * per_stack : (k + 1) * per_stack]
        if k < len(reductions):
            order.append(reductions[k])
    return order


def convert(state_dict: dict[str, torch.Tensor], arch: str) -> Converted:
    """Map a Cadene ``arch`` state dict (1000 or 1001 classes) to ``build_nasnet(preset)``.

    The classifier keeps its rows (a 1001-class checkpoint keeps Cadene's background class 0).
    """
    if "last_linear.weight" not in state_dict or "conv0.conv.weight" not in state_dict:
        raise ValueError(
            f"expected a pretrainedmodels {arch} state dict with 'conv0.conv.weight' and "
            f"'last_linear.weight'; got keys like {', '.join(list(state_dict)[:3])}"
        )
    num_classes = state_dict["last_linear.weight"].shape[0]
    # Cadene's average pools exclude the padding everywhere (see the module docstring).
    overrides = {"num_classes": num_classes, "use_aux_head": False, "pool_pad": "tf"}
    out = Converted({}, _PRESETS[arch], overrides)
    model = out.build_model()

    heads = {k.split(".", 1)[0] for k in state_dict}
    theirs = cell_order(sorted(h for h in heads if h.startswith(("cell_", "reduction_cell_"))))
    if len(theirs) != len(model.cell_names):
        raise ValueError(
            f"pretrainedmodels {arch} checkpoint has {len(theirs)} cells, the architecture "
            f"{len(model.cell_names)}; is it really Cadene's {arch}?"
        )
    for t, o in zip(theirs, model.cell_names):
        kind = lambda n: "stem" if "stem" in n else "reduction" if "reduction" in n else "normal"
        if kind(t) != kind(o):
            raise ValueError(f"pretrainedmodels {arch}: cell {t!r} sits where we expect {o!r}")
    cell_index = {name: i for i, name in enumerate(theirs)}
    out.state_dict = rename_keys(state_dict, map_key, cell_index, f"Cadene's {arch}")
    check_against_model(out.state_dict, model, f"converted pretrainedmodels {arch} checkpoint")
    return out
