#!/usr/bin/env python
"""Convert published NASNet weights to nasnet_det's layout.

    python tools/convert_weights.py --source timm --arch nasnetalarge \
        --input nasnetalarge.pth --output nasnet_a_large.pth

The output holds ``{"model": state_dict, "meta": {...}}`` (loadable with
``torch.load(..., weights_only=True)``) or, for a ``.safetensors`` name, the tensors with the
meta as JSON metadata.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    from nasnet_det.convert import (
        SOURCES,
        convert_state_dict,
        load_state_dict_file,
        save_checkpoint,
        unwrap_state_dict,
    )

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--source", required=True, choices=sorted(SOURCES))
    p.add_argument("--arch", required=True, help="e.g. nasnetalarge (timm)")
    p.add_argument("--input", required=True, help="checkpoint of the source (.pth or .safetensors)")
    p.add_argument("--output", required=True, help="OUT.pth or OUT.safetensors")
    p.add_argument(
        "--allow-pickle",
        action="store_true",
        help="unpickle arbitrary objects in --input (runs code: only for files you trust)",
    )
    args = p.parse_args(argv)
    try:
        obj = load_state_dict_file(args.input, allow_pickle=args.allow_pickle)
        converted = convert_state_dict(args.source, args.arch, unwrap_state_dict(obj))
        save_checkpoint(args.output, converted.state_dict, converted.meta())
    except ValueError as e:
        print(f"convert_weights: error: {e}", file=sys.stderr)
        return 2
    n = sum(v.numel() for k, v in converted.state_dict.items() if "num_batches" not in k)
    print(
        f"wrote {args.output}: {len(converted.state_dict)} tensors, {n:,} values; build with "
        f"build_nasnet({converted.preset!r}, **{converted.overrides})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
