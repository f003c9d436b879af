#!/usr/bin/env python
"""Convert published NASNet weights to nasnet_det's layout.

    python tools/convert_weights.py --source timm --arch nasnetalarge \
        --input nasnetalarge.pth --output nasnet_a_large.pth

The output holds ``{"model": state_dict, "meta": {...}}`` (loadable with
``torch.load(..., weights_only=True)``) or, for a ``.safetensors`` name, the tensors with the
meta as JSON metadata.

Our own pretraining checkpoints (EMA weights unless --no-ema; the architecture is read from it):

    python tools/convert_weights.py --source nasnet_det --input OUT/last.pth --output mobile.pth

For Detectron2 (MODEL.WEIGHTS of the NASNet Faster R-CNN; backbone and second stage named as the
detector's; the preset's model-zoo config unless --det-config):

    python tools/convert_weights.py --source pretrainedmodels --arch nasnetamobile \
        --input nasnetamobile.pth --output nasnet_a_mobile_d2.pth --for detectron2
"""

from __future__ import annotations

import argparse
import os
import sys


def main(argv: list[str] | None = None) -> int:
    """The tool: exit code 0, or 2 with one line on stderr for bad input or a failing output."""
    from nasnet_det.cli import quiet_warnings, run_tool

    quiet_warnings()
    return run_tool("convert_weights", lambda: _convert(argv))


def _convert(argv: list[str] | None) -> int:
    from nasnet_det.convert import SOURCES, save_checkpoint

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--source", required=True, choices=sorted(SOURCES))
    p.add_argument(
        "--arch",
        help="required with --source timm or pretrainedmodels (e.g. nasnetalarge); with "
        "--source nasnet_det optional (a preset, checked against the checkpoint's)",
    )
    p.add_argument("--input", required=True, help="checkpoint of the source (.pth or .safetensors)")
    p.add_argument("--output", required=True, help="OUT.pth or OUT.safetensors")
    p.add_argument(
        "--allow-pickle",
        action="store_true",
        help="unpickle arbitrary objects in --input (runs code: only for files you trust)",
    )
    p.add_argument("--no-ema", action="store_true", help="nasnet_det: raw, not EMA, weights")
    p.add_argument("--for", dest="target", choices=["detectron2"], help="name keys for this use")
    p.add_argument("--det-config", help="with --for detectron2: the detector's config file")
    args = p.parse_args(argv)
    from nasnet_det.convert.hub import load_weights, resolve_raw_input
    from nasnet_det.io import check_output_file

    # Every argument is checked before the (slow) conversion; the output is written atomically.
    if not args.output.endswith((".pth", ".pt", ".safetensors")):
        raise ValueError(f"--output {args.output!r} must end in .pth, .pt or .safetensors")
    if args.target == "detectron2" and not args.output.endswith((".pth", ".pt")):
        raise ValueError("--for detectron2 writes a .pth file (Detectron2 reads no safetensors)")
    if args.det_config and args.target != "detectron2":
        raise ValueError("--det-config is used only with --for detectron2")
    if args.det_config and not os.path.isfile(args.det_config):
        what = "is a folder" if os.path.isdir(args.det_config) else "does not exist"
        raise ValueError(f"--det-config {args.det_config!r} {what}; expected a .yaml file")
    check_output_file(args.output, "--output")
    if os.path.exists(args.input) and os.path.exists(args.output):
        if os.path.samefile(args.input, args.output):
            raise ValueError(
                f"--output {args.output!r} is the --input file; write the converted weights to "
                "another path (the input would be replaced)"
            )
    args.input, args.arch = resolve_raw_input(args.input, args.source, args.arch)  # names
    converted = load_weights(args.input, source=args.source, arch=args.arch, what="--input",
                             allow_pickle=args.allow_pickle, ema=not args.no_ema)  # fmt: skip
    state_dict, meta = converted.state_dict, converted.meta()
    if args.target == "detectron2":
        from nasnet_det.detection.convert import to_detectron2

        state_dict, cfg = to_detectron2(converted, args.det_config)
        meta["for"] = "detectron2"
    save_checkpoint(args.output, state_dict, meta)
    n = sum(v.numel() for k, v in state_dict.items() if "num_batches" not in k)
    how = (
        "MODEL.WEIGHTS of the NASNet Faster R-CNN"
        if args.target
        else f"build_nasnet({converted.preset!r}, **{converted.overrides})"
    )
    print(f"wrote {args.output}: {len(state_dict)} tensors, {n:,} values; for {how}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
