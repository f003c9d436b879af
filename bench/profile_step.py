#!/usr/bin/env python
"""Where the time of one training step goes: ours vs timm's nasnetalarge, by op and shape.

python bench/profile_step.py --threads 2 --top 15
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.profiler import ProfilerActivity, profile


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--top", type=int, default=15)
    p.add_argument("--size", type=int, default=331)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    import timm

    from nasnet_det import build_nasnet

    x = torch.randn(2, 3, args.size, args.size)
    models = {
        "timm": timm.create_model("nasnetalarge", pretrained=False),
        "ours": build_nasnet("nasnet_a_large", num_classes=1000, use_aux_head=False),
    }
    for name, model in models.items():
        model.train()
        model(x).sum().backward()  # warm-up
        with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
            t = time.perf_counter()
            model(x).sum().backward()
            wall = time.perf_counter() - t
        print(f"== {name}: {wall:.2f} s")
        table = prof.key_averages(group_by_input_shape=True).table(
            sort_by="self_cpu_time_total", row_limit=args.top, max_name_column_width=30,
            max_shapes_column_width=70,
        )  # fmt: skip
        print(table)


if __name__ == "__main__":
    main()
