#!/usr/bin/env python
"""Time and peak memory of building a NASNet Faster R-CNN from a model-zoo config.

    python bench/build_detector.py COCO-Detection/faster_rcnn_nasnet_a_large_1x.yaml

One fresh process per measurement: imports first (not counted), then Detectron2's
``build_model`` on CPU. Prints build seconds, peak RSS growth during the build (MiB, from
``getrusage``), parameters and Cell constructions. Works on any checkout of nasnet_det (it finds
the model-zoo config through whichever ``model_zoo`` module that checkout has), so a commit
before and after a change can be compared with ``PYTHONPATH=<checkout>``.
"""

from __future__ import annotations

import resource
import sys
import time


def main(config: str) -> None:
    import torch

    torch.set_num_threads(1)
    try:
        from nasnet_det.detection import model_zoo  # after the light-core change
    except ImportError:
        from nasnet_det import model_zoo  # before it
    from detectron2.modeling import build_model

    import nasnet_det.cells as cells

    cfg = model_zoo.get_config(config)
    cfg.MODEL.DEVICE = "cpu"
    count = [0]
    init = cells.Cell.__init__

    def counting(self, *a, **k):
        count[0] += 1
        init(self, *a, **k)

    cells.Cell.__init__ = counting
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    model = build_model(cfg)
    dt = time.perf_counter() - t0
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    params = sum(p.numel() for p in model.parameters())
    print(
        f"build {dt:.2f} s, peak RSS +{(rss1 - rss0) / 1024:.0f} MiB, {params:,} parameters, "
        f"{count[0]} Cell constructions"
    )


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "COCO-Detection/faster_rcnn_nasnet_a_large_1x.yaml")
