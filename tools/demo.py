#!/usr/bin/env python
"""`make demo`: the whole pipeline on built-in data, on CPU, in about 15 minutes.

1. The preset table: our NASNets' sizes beside the paper's.
2. A short cell search on the built-in digits (nasnet_det.search), ending in a genotype JSON.
3. A NASNet Faster R-CNN with that cell trained and evaluated on the built-in detection dataset.

Outputs go to ``output/demo`` (or ``--output``).
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path


def _optional(module: str):
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name and module.startswith(e.name):
            return None
        raise


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--output", default="output/demo")
    p.add_argument("--search-minutes", type=float, default=4.0)
    p.add_argument("--detection-minutes", type=float, default=9.0)
    p.add_argument("--skip-search", action="store_true")
    p.add_argument("--skip-detection", action="store_true")
    args = p.parse_args(argv)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()

    from nasnet_det.summary import preset_table

    print("== NASNet presets (parameters without the auxiliary head) ==")
    print(preset_table())

    genotype = "nasnet_a"
    search_demo = None if args.skip_search else _optional("nasnet_det.search.demo")
    if search_demo is not None:
        print(f"\n== Cell search on built-in digits (budget {args.search_minutes:.0f} min) ==")
        res = search_demo.run_demo(str(out / "search"), max_minutes=args.search_minutes)
        genotype = res["best_genotype"]
        print(
            f"searched {res['num_children']} children; best held-out accuracy "
            f"{100 * res['best_reward']:.1f}%; cell: {genotype}"
        )

    det_demo = None if args.skip_detection else _optional("nasnet_det.detection.demo")
    if det_demo is not None:
        print(f"\n== Faster R-CNN with cell {genotype} on the built-in detection dataset ==")
        res = det_demo.run_demo(
            str(out / "detection"), genotype=genotype, max_minutes=args.detection_minutes
        )
        print(f"detections drawn in {res['image']}")
    print(f"\ndemo finished in {(time.time() - t0) / 60:.1f} min; outputs in {out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
