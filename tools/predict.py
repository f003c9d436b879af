#!/usr/bin/env python
"""Run a trained detector on pictures or a video: drawn outputs and one COCO-results JSON.

    python tools/predict.py --config-file output/trees/config.yaml \
        --input datasets/trees/JPEGImages --output output/trees/predictions \
        MODEL.WEIGHTS output/trees/model_final.pth
    python tools/predict.py --config-file CFG --input 'photos/*.jpg' --confidence-threshold 0.3 ...
    python tools/predict.py --config-file CFG --input clip.mp4 ...   # frame by frame
    python tools/predict.py --config-file CFG --input IMAGES --dataset trees_val ...

IMG|DIR|GLOB|VIDEO; pictures keep their names, a video becomes <stem>.mp4 (mp4v) with
<stem>.json (COCO results, image id = frame number). Images give coco_instances_results.json with
every detection (the threshold only thins what is drawn); with --dataset NAME its image and
category ids are that dataset's, its ground truth is drawn beside the detections, and the command
to score it with tools/eval_coco.py is printed. Small pictures are enlarged to a readable size
(--scale auto: a 512 px longer side; or a factor); an image where nothing passes the threshold
gets one printed line.
Config datasets (DATASETS.COCO_JSON / VOC) are registered as in tools/train_net.py. Bad input is
one line on stderr and exit 2 before any output. The logic lives in nasnet_det/detection/predict.py.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from nasnet_det.cli import quiet_warnings, run_tool

quiet_warnings()

PROG = "predict.py"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("--config-file", required=True, metavar="FILE", help="detector config (yaml)")
    p.add_argument("--input", required=True, help="an image, a folder, a glob pattern or a video")
    p.add_argument(
        "--output", metavar="DIR", help="output folder (default: OUTPUT_DIR/predictions)"
    )
    p.add_argument(
        "--confidence-threshold",
        type=float,
        default=0.5,
        help="draw detections scoring at least this (default 0.5; the JSON keeps all)",
    )
    p.add_argument(
        "--dataset",
        metavar="NAME",
        help="a registered dataset the input images belong to: its image and category ids go "
        "into the JSON so that its annotations score it",
    )
    p.add_argument(
        "--scale",
        default="auto",
        help="drawing scale of pictures: 'auto' (default: enlarge small images to a 512 px "
        "longer side so that labels fit) or a factor such as 1",
    )
    p.add_argument(
        "--no-fast-inference",
        action="store_true",
        help="run the detector as built, batch norms not folded and not in channels_last "
        "(MODEL.NASNET.FAST_INFERENCE False; the detections are the same up to rounding)",
    )
    p.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides: KEY VALUE ...")
    return p


def main() -> int:
    args = build_parser().parse_args()
    if not 0.0 <= args.confidence_threshold <= 1.0:
        raise ValueError(
            f"--confidence-threshold must be in [0, 1], got {args.confidence_threshold}"
        )
    from nasnet_det.detection.visualize import parse_scale

    scale = parse_scale(args.scale)
    from detectron2.data import MetadataCatalog
    from detectron2.utils.logger import setup_logger

    from nasnet_det.detection import engine
    from nasnet_det.detection import predict as P
    from nasnet_det.detection.checkpoint import allow_pickle_from_env
    from nasnet_det.detection.datasets import register_from_config
    from nasnet_det.detection.engine import load_config
    from nasnet_det.io import check_output_dir

    setup_logger(name="nasnet_det")
    cfg = load_config(args.config_file, args.opts)
    if args.no_fast_inference:
        cfg.MODEL.NASNET.FAST_INFERENCE = False
    engine.check_device(cfg.MODEL.DEVICE)  # cuda without a GPU: one line, not torch's error
    register_from_config(cfg, need=())  # the training data is not needed here
    cfg.freeze()
    inputs = P.collect_inputs(args.input)
    if args.dataset:
        if args.dataset not in P.DatasetCatalog.list():
            raise ValueError(
                f"--dataset {args.dataset!r} is not registered (DATASETS.COCO_JSON / VOC in the "
                "config, or a built-in name)"
            )
        if inputs.kind == "video":
            raise ValueError("--dataset maps images to a dataset's ids; the input is a video")
    if inputs.kind == "video":
        P.open_video(inputs.paths[0])[0].release()  # a first frame, before any output exists
    image_ids = P.dataset_image_ids(args.dataset, inputs.paths) if args.dataset else None
    meta_name = args.dataset or (cfg.DATASETS.TEST[0] if cfg.DATASETS.TEST else "__predict__")
    metadata = MetadataCatalog.get(meta_name)
    # NASNET_DET_ALLOW_PICKLE=1: MODEL.WEIGHTS may be a trusted pickle, as in train_net.py.
    predictor = P.Predictor(cfg, allow_pickle=allow_pickle_from_env())
    out_dir = Path(args.output or os.path.join(cfg.OUTPUT_DIR, "predictions"))
    created = not out_dir.exists()
    check_output_dir(out_dir, "--output folder")
    try:
        return _predict(args, P, predictor, inputs, out_dir, metadata, image_ids, scale)
    except BaseException:
        if created and out_dir.is_dir() and not any(out_dir.iterdir()):
            out_dir.rmdir()  # a failed run leaves no empty --output behind
        raise


def _predict(args, P, predictor, inputs, out_dir: Path, metadata, image_ids, scale) -> int:
    if inputs.kind == "video":
        video, results = P.predict_video(
            predictor, inputs.paths[0], out_dir, metadata, args.confidence_threshold
        )
        json_path = P.write_results(out_dir / f"{inputs.paths[0].stem}.json", results)
        print(f"wrote {video} and {json_path} ({len(results)} detections)")
        return 0
    truth = P.dataset_records(args.dataset, image_ids) if args.dataset else None
    results = P.predict_images(
        predictor, inputs.paths, out_dir, metadata, args.confidence_threshold, image_ids,
        scale=scale, ground_truth=truth,
    )  # fmt: skip
    for note in P.no_detection_notes(results, inputs.paths, args.confidence_threshold, image_ids):
        print(note)
    json_path = P.write_results(out_dir / "coco_instances_results.json", results)
    print(f"wrote {len(inputs.paths)} pictures to {out_dir}")
    print(f"wrote {json_path} ({len(results)} detections on {len(inputs.paths)} images)")
    if args.dataset:
        gt, exists = P.dataset_json(args.dataset)
        if not exists:
            gt = str(
                P.write_dataset_json(args.dataset, out_dir / f"{args.dataset}_coco_format.json")
            )
            print(f"wrote {gt} (the annotations of {args.dataset} as COCO JSON)")
        print(f"score it: python tools/eval_coco.py --gt {gt} --dt {json_path}")
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(PROG, main))
