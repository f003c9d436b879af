#!/usr/bin/env python
"""Export a NASNet classifier or the NASNet Faster R-CNN to ONNX or TorchScript.

Classifier (weights by name or file; traced at the source's input size unless --image-size):

    python tools/export_model.py --format onnx --weights nasnet://timm/nasnetalarge \
        --output nasnetalarge.onnx

Detector (through Detectron2's TracingAdapter; traced on --sample-image, resized as at test
time, or a fixed random image; KEY VALUE pairs override the config):

    python tools/export_model.py --format torchscript --config-file CFG \
        --output detector.ts MODEL.WEIGHTS output/model_final.pth MODEL.DEVICE cpu

Detector scripted (Detectron2's scripting export: control flow compiled, any image size;
TorchScript only):

    python tools/export_model.py --method scripting --format torchscript --config-file CFG \
        --output detector_scripted.ts MODEL.WEIGHTS output/model_final.pth MODEL.DEVICE cpu

The exported file is run once on the sample input and compared with PyTorch; the largest
difference is printed. Traced graphs are fixed to the traced image size.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    from nasnet_det.cli import quiet_warnings

    quiet_warnings()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--format", required=True, choices=["onnx", "torchscript"])
    p.add_argument("--output", required=True, help="file to write (e.g. model.onnx, model.ts)")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--weights", help="classifier: a weight name or checkpoint file")
    what.add_argument("--config-file", help="detector: a config file or model-zoo name")
    p.add_argument("--method", default="tracing", choices=["tracing", "scripting"],
                   help="detector: trace on the sample image (default) or script the whole "
                   "model (torchscript only)")  # fmt: skip
    p.add_argument("--image-size", type=int, help="classifier: input side (default: source's)")
    p.add_argument("--sample-image", help="detector: image to trace on")
    p.add_argument("--no-fast-inference", action="store_true",
                   help="export the model as built, batch norms not folded into the convs "
                   "(detector: MODEL.NASNET.FAST_INFERENCE False)")  # fmt: skip
    p.add_argument("--random-weights", action="store_true",
                   help="detector: export even though MODEL.WEIGHTS is empty (random weights, "
                   "for testing the export itself)")  # fmt: skip
    p.add_argument("opts", nargs=argparse.REMAINDER, help="detector: KEY VALUE config overrides")
    args = p.parse_args(argv)
    if args.weights and (args.opts or args.sample_image or args.random_weights):
        p.error("KEY VALUE overrides, --sample-image and --random-weights apply to --config-file "
                "only")  # fmt: skip
    if args.method == "scripting" and (args.weights or args.format != "torchscript"):
        p.error("--method scripting exports the detector (--config-file) to --format torchscript")
    from nasnet_det.limits import LIMITS, max_image_side

    if args.image_size is not None and not 32 <= args.image_size <= max_image_side():
        p.error(
            f"--image-size must be in [32, {max_image_side()}], got {args.image_size} (raise the "
            f"upper limit with {LIMITS['image_side'].env})"
        )

    if args.weights:
        from nasnet_det.export import export_weights

        report = export_weights(args.weights, args.output, args.format, args.image_size,
                                fast=not args.no_fast_inference)  # fmt: skip
        what = f"{report['source']} classifier at {report['image_size']} px"
    else:
        from nasnet_det.detection import engine
        from nasnet_det.detection.checkpoint import allow_pickle_from_env
        from nasnet_det.detection.engine import load_config
        from nasnet_det.detection.export import export_from_config

        cfg = load_config(args.config_file, args.opts)
        engine.check_device(cfg.MODEL.DEVICE)
        if not cfg.MODEL.WEIGHTS and not args.random_weights:
            raise ValueError(
                "MODEL.WEIGHTS is empty: the detector would be exported with random weights; "
                "add MODEL.WEIGHTS <trained checkpoint> (or --random-weights to export them anyway)"
            )
        if args.no_fast_inference:
            cfg.MODEL.NASNET.FAST_INFERENCE = False
        cfg.freeze()
        # NASNET_DET_ALLOW_PICKLE=1: MODEL.WEIGHTS may be a trusted pickle, as in train_net.py.
        report = export_from_config(cfg, args.output, args.format, args.sample_image, args.method,
                                    allow_pickle=allow_pickle_from_env())  # fmt: skip
        h, w = report["image_size"]
        what = f"detector at {h}x{w} px, {report['detections']} detections on the sample"
        if args.method == "scripting":
            what = f"detector scripted (any image size), {report['detections']} detections on " \
                f"the {h}x{w} px sample"
    print(f"wrote {report['path']} ({args.format}): {what}; "
          f"max |exported - PyTorch| = {report['max_abs_diff']:.2e}")  # fmt: skip
    return 0


if __name__ == "__main__":
    from nasnet_det.cli import run_tool

    sys.exit(run_tool("export_model.py", main))
