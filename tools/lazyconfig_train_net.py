#!/usr/bin/env python
"""Train or evaluate a NASNet detector from a Python LazyConfig, as Detectron2's
``tools/lazyconfig_train_net.py`` does (its ViTDet and new-baseline configs' entry point).

    python tools/lazyconfig_train_net.py \
        --config-file configs/COCO-Detection/faster_rcnn_nasnet_a_mobile_1x.py \
        train.init_checkpoint=nasnet://ours/nasnet_a_mobile
    python tools/lazyconfig_train_net.py \
        --config-file configs/quick_schedules/faster_rcnn_nasnet_a_mobile_instant_test.py \
        train.device=cpu train.output_dir=output/lazy_instant
    python tools/lazyconfig_train_net.py --config-file CFG.py --eval-only \
        train.init_checkpoint=output/model_final.pth

Overrides are ``key=value`` (LazyConfig's syntax). A Python config runs its code: use files you
trust. The logic lives in nasnet_det.detection.lazy; COCO metrics land in
train.output_dir/coco_metrics.json.
"""

import sys


def main() -> int:
    from nasnet_det.cli import quiet_warnings

    quiet_warnings()  # before Detectron2 and torch load
    from detectron2.engine import default_argument_parser, launch

    parser = default_argument_parser()
    parser.add_argument("--allow-pickle", action="store_true",
                        help="let train.init_checkpoint unpickle a .pkl file (runs code: only "
                        "files you trust)")  # fmt: skip
    args = parser.parse_args()
    import nasnet_det.detection  # noqa: F401  (registers the NASNet parts and datasets)
    from nasnet_det.cli import without_pycocotools_prints
    from nasnet_det.detection import engine, lazy

    engine.check_num_gpus(args.num_gpus)
    with without_pycocotools_prints():
        launch(lazy.main, args.num_gpus, num_machines=args.num_machines,
               machine_rank=args.machine_rank, dist_url=args.dist_url, args=(args,))  # fmt: skip
    return 0


if __name__ == "__main__":
    from nasnet_det.cli import run_tool

    sys.exit(run_tool("lazyconfig_train_net.py", main))
