"""Detectron2's ``tools/analyze_model.py`` for our configs: FLOPs, parameters, activations and
structure of a config's model, through fvcore (as Detectron2's own tool).

Convention: fvcore counts one "flop" per multiply-add (a fused MAC), so its totals are
mult-adds, the unit of the NASNet paper's tables; batch norm is counted too (one per element)
when the model is not fused. For the classifier presets this gives 573M for NASNet-A Mobile at
224 px against the paper's 564M (convolutions and the classifier alone: 564M) and 23.9G for
Large at 331 px against 23.8G (tested). For a detector the input is one image of
``INPUT.MIN_SIZE_TEST`` square (``--size`` to change it), so the count covers the proposals
the model actually makes on it; that depends on the weights only through the number of boxes.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["TASKS", "analyze_model", "classifier_mult_adds"]

TASKS = ("flop", "parameter", "activation", "structure")


def _inputs(size: int) -> list[dict[str, Any]]:
    g = torch.Generator().manual_seed(0)
    image = torch.randint(0, 256, (3, size, size), generator=g).float()
    return [{"image": image, "height": size, "width": size}]


def analyze_model(cfg: Any, tasks: tuple[str, ...], size: int | None = None) -> dict[str, str]:
    """``{task: text}`` for each of ``tasks`` on the model ``cfg`` builds (random weights:
    counts do not depend on them except through the number of proposals)."""
    from detectron2.modeling import build_model
    from detectron2.utils.analysis import FlopCountAnalysis, activation_count_operators
    from fvcore.nn import flop_count_table, parameter_count_table

    unknown = [t for t in tasks if t not in TASKS]
    if unknown or not tasks:
        raise ValueError(f"--tasks: expected some of {', '.join(TASKS)}, got {list(tasks)}")
    model = build_model(cfg).eval()
    side = int(size or cfg.INPUT.MIN_SIZE_TEST)
    out: dict[str, str] = {}
    with torch.no_grad():
        for task in tasks:
            if task == "flop":
                fca = FlopCountAnalysis(model, _inputs(side))
                fca.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
                out[task] = (
                    f"input {side}x{side}: {fca.total() / 1e9:.3f} G mult-adds (fvcore flops)\n"
                    + flop_count_table(fca, max_depth=3)
                )
            elif task == "activation":
                ops = activation_count_operators(model, _inputs(side))
                rows = [f"  {op}: {n:.2f} M" for op, n in sorted(ops.items(), key=lambda t: -t[1])]
                out[task] = (
                    f"input {side}x{side}: {sum(ops.values()):.2f} M activations (outputs of "
                    "each operator, Detectron2's count)\n" + "\n".join(rows)
                )
            elif task == "parameter":
                out[task] = parameter_count_table(model, max_depth=3)
            else:
                out[task] = str(model)
    return out


def classifier_mult_adds(preset: str, image_size: int | None = None) -> float:
    """fvcore's count (mult-adds, batch norm included) for a classification preset."""
    from fvcore.nn import FlopCountAnalysis

    from nasnet_det.nasnet import build_nasnet

    model = build_nasnet(preset, use_aux_head=False).eval()
    s = image_size or model.config.image_size
    fca = FlopCountAnalysis(model, torch.randn(1, model.config.in_chans, s, s))
    fca.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    return float(fca.total())
