#!/usr/bin/env python
"""Train or evaluate a NASNet Faster R-CNN with Detectron2's command line.

    python tools/train_net.py --num-gpus 8 \
        --config-file configs/COCO-Detection/faster_rcnn_nasnet_a_mobile_1x.yaml \
        MODEL.WEIGHTS checkpoints/nasnet_a_mobile.pth
    python tools/train_net.py \
        --config-file configs/quick_schedules/faster_rcnn_nasnet_a_mobile_instant_test.yaml \
        MODEL.DEVICE cpu OUTPUT_DIR output/instant
    python tools/train_net.py --config-file <cfg> --eval-only MODEL.WEIGHTS output/model_final.pth

The logic lives in nasnet_det.detection.engine; COCO metrics land in OUTPUT_DIR/coco_metrics.json.
"""

import sys


def main() -> int:
    from nasnet_det.cli import quiet_warnings

    quiet_warnings()  # before Detectron2 and torch load
    from detectron2.engine import default_argument_parser, launch

    parser = default_argument_parser()
    parser.add_argument(
        "--allow-pickle",
        action="store_true",
        help="let MODEL.WEIGHTS / --resume unpickle a .pkl file (runs code: only files you "
        "trust; also NASNET_DET_ALLOW_PICKLE=1)",
    )
    args = parser.parse_args()
    from nasnet_det.cli import without_pycocotools_prints
    from nasnet_det.detection import engine

    engine.check_num_gpus(args.num_gpus)
    with without_pycocotools_prints():
        launch(
            engine.main,
            args.num_gpus,
            num_machines=args.num_machines,
            machine_rank=args.machine_rank,
            dist_url=args.dist_url,
            args=(args,),
        )
    return 0


if __name__ == "__main__":
    from nasnet_det.cli import run_tool

    sys.exit(run_tool("train_net.py", main))
