#!/usr/bin/env python
"""fvcore's FLOP count of each classification preset, split by operator, beside the paper's
mult-adds (Table 1 and 2): what ``tools/analyze_model.py`` counts, checked against the paper.

    OMP_NUM_THREADS=1 python bench/classifier_flops.py

fvcore counts one flop per multiply-add; batch norm is counted (one per element), pooling is not.
"""

from __future__ import annotations

from nasnet_det.cli import quiet_warnings

quiet_warnings()  # fvcore's import scripts a function, and torch calls jit.script deprecated

import torch  # noqa: E402
from fvcore.nn import FlopCountAnalysis  # noqa: E402

from nasnet_det import build_nasnet  # noqa: E402
from nasnet_det.summary import PAPER  # noqa: E402


def main() -> int:
    torch.set_num_threads(1)
    print(
        "| preset | image | fvcore total | conv + linear | batch norm | paper "
        "| conv + linear / paper |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, (_, _, paper) in PAPER.items():
        model = build_nasnet(name, use_aux_head=False).eval()
        s = model.config.image_size
        fca = FlopCountAnalysis(model, torch.randn(1, model.config.in_chans, s, s))
        fca.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        ops = fca.by_operator()
        cl = ops.get("conv", 0) + ops.get("linear", 0)
        ratio = f"{cl / paper:.4f}" if paper else "-"
        ref = f"{paper / 1e6:,.0f}M" if paper else "-"
        print(f"| {name} | {s} | {fca.total() / 1e6:,.1f}M | {cl / 1e6:,.1f}M | "
              f"{ops.get('batch_norm', 0) / 1e6:,.1f}M | {ref} | {ratio} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
