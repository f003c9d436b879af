#!/usr/bin/env python
"""ImageNet pretraining of a NASNet with the paper's recipe, or evaluation of imported weights.

Train (one process, or several GPUs/machines with torchrun):

    python tools/pretrain_imagenet.py --config configs/ImageNet/nasnet_a_mobile.yaml \
        --data DIR --output OUT [--resume] [KEY VALUE ...]
    torchrun --nproc_per_node 8 tools/pretrain_imagenet.py --config ... --data DIR --output OUT

DIR holds train/ and val/ in ImageNet's class-folder layout. KEY VALUE pairs override the config
(e.g. optim.lr 0.02 train.epochs 10). Evaluate weights with their source's preprocessing:

    python tools/pretrain_imagenet.py --eval-only --weights W --data DIR \
        [--source timm --arch nasnetalarge] [--no-ema]
"""

from __future__ import annotations

import argparse
import json
import sys


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--config", help="configs/ImageNet/<name>.yaml")
    p.add_argument("--data", required=True, help="DIR with train/ and val/ class folders")
    p.add_argument("--output", help="OUT directory (checkpoint last.pth, metrics, TensorBoard)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pth")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--eval-only", action="store_true", help="evaluate --weights on DIR/val")
    p.add_argument("--weights", help="checkpoint to evaluate (ours, converted, or a source's own)")
    p.add_argument(
        "--source", help="with --eval-only: source of --weights (timm, pretrainedmodels)"
    )
    p.add_argument("--arch", help="with --source: the source's architecture name")
    p.add_argument("--no-ema", action="store_true", help="evaluate the raw, not the EMA, weights")
    p.add_argument("--batch-size", type=int, default=32, help="with --eval-only")
    p.add_argument("--workers", type=int, default=4, help="with --eval-only")
    p.add_argument("--allow-pickle", action="store_true", help="unpickle --weights (trusted only)")
    p.add_argument("overrides", nargs="*", metavar="KEY VALUE", help="config overrides")
    args = p.parse_args(argv)

    from nasnet_det.pretrain import evaluate_weights, load_config, train

    try:
        if args.eval_only:
            if not args.weights:
                raise ValueError("--eval-only needs --weights")
            r = evaluate_weights(
                args.weights,
                args.data,
                args.source,
                args.arch,
                not args.no_ema,
                args.batch_size,
                args.workers,
                args.allow_pickle,
            )
            print(
                f"{args.weights} ({r['source']}): top1 {r['top1']:.2f} top5 {r['top5']:.2f} on "
                f"{r['images']} images ({r['skipped']} unreadable skipped); preprocessing "
                f"{json.dumps(r['preprocessing'])}"
            )
            return 0
        if not args.output:
            raise ValueError("--output is required for training")
        if not args.config and not args.resume:
            raise ValueError("--config is required (unless --resume)")
        cfg = load_config(args.config, args.overrides)
        train(
            cfg,
            args.data,
            args.output,
            resume=args.resume,
            progress=not args.no_progress,
            log=lambda s: print(s, flush=True),
        )
    except ValueError as e:
        print(f"pretrain_imagenet: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
