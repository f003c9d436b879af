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

from detectron2.engine import default_argument_parser, launch


def main() -> int:
    args = default_argument_parser().parse_args()
    from nasnet_det.detection import engine

    try:
        launch(
            engine.main,
            args.num_gpus,
            num_machines=args.num_machines,
            machine_rank=args.machine_rank,
            dist_url=args.dist_url,
            args=(args,),
        )
    except (ValueError, FileNotFoundError, KeyError) as e:
        print(f"train_net.py: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
