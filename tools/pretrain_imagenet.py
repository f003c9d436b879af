#!/usr/bin/env python
"""ImageNet pretraining of a NASNet with the paper's recipe, or evaluation of imported weights.

Train (one process, or several GPUs/machines with torchrun):

    python tools/pretrain_imagenet.py --config configs/ImageNet/nasnet_a_mobile.yaml \
        --data DIR --output OUT [--resume | --overwrite] [KEY VALUE ...]
    torchrun --nproc_per_node 8 tools/pretrain_imagenet.py --config ... --data DIR --output OUT

DIR holds train/ and val/ in ImageNet's class-folder layout. KEY VALUE pairs override the config
(e.g. optim.lr 0.02 train.epochs 10 model.overrides.num_cells 2). An OUT that already holds a run
needs --resume (continue it) or --overwrite (start over). Evaluate weights with their source's
preprocessing:

    python tools/pretrain_imagenet.py --eval-only --weights W --data DIR \
        [--source timm --arch nasnetalarge] [--no-ema]
"""

from __future__ import annotations

import argparse
import json
import os
import sys

PROG = "pretrain_imagenet"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG, description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    p.add_argument("--config", help="configs/ImageNet/<name>.yaml")
    p.add_argument("--data", required=True, help="DIR with train/ and val/ class folders")
    p.add_argument("--output", help="OUT directory (checkpoint last.pth, metrics, TensorBoard)")
    p.add_argument("--resume", action="store_true", help="continue the run in OUT from last.pth")
    p.add_argument("--overwrite", action="store_true", help="discard the run in OUT, start over")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--eval-only", action="store_true", help="evaluate --weights on DIR/val")
    p.add_argument("--weights", help="checkpoint to evaluate (ours, converted, or a source's own)")
    p.add_argument(
        "--source", help="with --eval-only: source of --weights (timm, pretrainedmodels)"
    )
    p.add_argument("--arch", help="with --source: the source's architecture name")
    p.add_argument("--no-ema", action="store_true", help="evaluate the raw, not the EMA, weights")
    p.add_argument("--batch-size", type=int, default=32, help="with --eval-only")
    p.add_argument("--workers", type=int, help="with --eval-only: loader processes (default: "
                   "4, at most the CPUs this process may use)")  # fmt: skip
    p.add_argument("--allow-pickle", action="store_true", help="unpickle --weights (trusted only)")
    p.add_argument("overrides", nargs="*", metavar="KEY VALUE", help="config overrides")
    return p


def _eval_only(args: argparse.Namespace) -> int:
    from nasnet_det.pretrain import evaluate_weights

    if not args.weights:
        raise ValueError("--eval-only needs --weights")
    if args.workers is None:  # torch warns when the workers outnumber the usable CPUs
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
        args.workers = min(4, cpus or os.cpu_count() or 1)
    if args.batch_size < 1 or args.workers < 0:
        raise ValueError("--batch-size must be >= 1 and --workers >= 0")
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


def _main(argv: list[str] | None) -> int:
    args = _parser().parse_args(argv)
    if args.eval_only:
        return _eval_only(args)
    if not args.output:
        raise ValueError("--output is required for training")
    if not args.config and not args.resume:
        raise ValueError("--config is required (unless --resume)")
    if args.resume and args.overwrite:
        raise ValueError("--resume and --overwrite exclude each other")

    from nasnet_det.pretrain import load_config, train

    cfg = load_config(args.config, args.overrides)
    train(
        cfg,
        args.data,
        args.output,
        resume=args.resume,
        overwrite=args.overwrite,
        progress=not args.no_progress,
        log=lambda s: print(s, flush=True),
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    """Exit status of the tool: 0, or 2 with one line on stderr for bad input."""
    from nasnet_det.cli import quiet_warnings, run_tool

    quiet_warnings()
    return run_tool(PROG, lambda: _main(argv))


if __name__ == "__main__":
    sys.exit(main())
