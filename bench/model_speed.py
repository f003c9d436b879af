#!/usr/bin/env python
"""Our nasnet_a_large against timm's nasnetalarge, same weights, in one run.

    python bench/model_speed.py --threads 2            # CPU
    python bench/model_speed.py --device cuda --amp    # GPU, mixed precision
    python bench/model_speed.py --alternate --threads 1 --repeats 7   # inference, in turn

``--alternate``: batch-1 inference of timm, timm channels_last, ours, ours with
``fuse_for_inference(channels_last=True)`` (and, with ``--compile``, both compiled) in ONE
process, timed in turn round by round, ratios against timm per round (median and range).

Measures batch-1 inference latency at 331x331, the time of one batch-2 training step (forward,
backward, SGD update) and the peak memory of that step. Each (model, measurement) runs in its own
subprocess so peak memory is the process's own (CPU: max RSS; GPU: max allocated). Prints a
Markdown table with our/timm ratios.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time


def build(which: str, channels_last: bool, device: str):
    import torch

    from nasnet_det import build_nasnet

    torch.manual_seed(0)
    if which == "timm":
        import timm

        model = timm.create_model("nasnetalarge", pretrained=False)
    else:
        model = build_nasnet("nasnet_a_large", num_classes=1000, use_aux_head=False)
    model = model.to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def worker(args) -> dict:
    import resource

    import torch

    torch.set_num_threads(args.threads)
    dev = args.device
    model = build(args.model, args.channels_last, dev)
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    amp = torch.autocast(dev, dtype=torch.bfloat16 if dev == "cpu" else torch.float16,
                         enabled=args.amp)  # fmt: skip

    def sync():
        if dev == "cuda":
            torch.cuda.synchronize()

    times = []
    if args.mode == "infer":
        model.eval()
        x = torch.randn(1, 3, args.size, args.size, device=dev).to(memory_format=fmt)
        with torch.inference_mode(), amp:
            for i in range(args.warmup + args.repeats):
                sync()
                t = time.perf_counter()
                model(x)
                sync()
                if i >= args.warmup:
                    times.append(time.perf_counter() - t)
    else:
        model.train()
        opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
        x = torch.randn(2, 3, args.size, args.size, device=dev).to(memory_format=fmt)
        y = torch.tensor([1, 2], device=dev)
        scaler = torch.amp.GradScaler(enabled=args.amp and dev == "cuda")
        if dev == "cuda":
            torch.cuda.reset_peak_memory_stats()
        for i in range(args.warmup + args.repeats):
            sync()
            t = time.perf_counter()
            with amp:
                loss = torch.nn.functional.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            sync()
            if i >= args.warmup:
                times.append(time.perf_counter() - t)
    if dev == "cuda":
        peak_mb = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"median_s": statistics.median(times), "min_s": min(times), "peak_mb": peak_mb}


def alternate(args) -> None:
    import copy
    import os

    import torch

    from nasnet_det.compile import compile_module, compile_status
    from nasnet_det.fuse import fuse_for_inference

    torch.set_num_threads(args.threads)
    dev, cl = args.device, torch.channels_last
    timm_m = build("timm", False, dev).eval()
    ours = build("ours", False, dev).eval()
    contenders = {
        "timm": (timm_m, False),
        "timm channels_last": (copy.deepcopy(timm_m).to(memory_format=cl), True),
        "ours": (ours, False),
        "ours fused channels_last": (fuse_for_inference(copy.deepcopy(ours), channels_last=True),
                                     True),
    }  # fmt: skip
    if args.compile:
        contenders["timm compiled channels_last"] = (
            torch.compile(copy.deepcopy(timm_m).to(memory_format=cl)),
            True,
        )
        contenders["ours fused channels_last compiled"] = (
            compile_module(fuse_for_inference(copy.deepcopy(ours), channels_last=True)),
            True,
        )
    amp = torch.autocast(dev, dtype=torch.bfloat16 if dev == "cpu" else torch.float16,
                         enabled=args.amp)  # fmt: skip
    x = torch.randn(1, 3, args.size, args.size, device=dev)
    times = {n: [] for n in contenders}

    def once(m, channels_last):
        xi = x.to(memory_format=cl) if channels_last else x
        if dev == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        m(xi)
        if dev == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t

    with torch.inference_mode(), amp:
        for n, (m, c) in contenders.items():
            for _ in range(args.warmup):
                once(m, c)
            print(f"warm: {n}", file=sys.stderr, flush=True)
        for _ in range(args.repeats):
            for n, (m, c) in contenders.items():
                times[n].append(once(m, c))
    print(f"device={dev} threads={args.threads} amp={args.amp} size={args.size} batch=1 "
          f"rounds={args.repeats} load average at end {os.getloadavg()[0]:.1f}")  # fmt: skip
    print("| contender | median ms | range ms | vs timm (median of rounds) | range |")
    print("| --- | --- | --- | --- | --- |")
    for n, ts in times.items():
        r = [a / b for a, b in zip(ts, times["timm"])]
        note = ""
        if "compiled" in n and n.startswith("ours"):
            note = f" ({compile_status(contenders[n][0])})"
        spread = f"{min(ts) * 1e3:.1f}-{max(ts) * 1e3:.1f}"
        ratio = f"{statistics.median(r):.2f}x | {min(r):.2f}-{max(r):.2f}"
        print(f"| {n}{note} | {statistics.median(ts) * 1e3:.1f} | {spread} | {ratio} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--amp", action="store_true")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument(
        "--ours-channels-last",
        action="store_true",
        help="channels_last for ours only (timm stays in its default format)",
    )
    p.add_argument("--rounds", type=int, default=1, help="timm/ours process pairs, in turn")
    p.add_argument("--modes", nargs="+", default=["infer", "train"], choices=["infer", "train"])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--alternate", action="store_true", help="inference contenders in turn")
    p.add_argument("--compile", action="store_true", help="--alternate: add compiled contenders")
    p.add_argument("--size", type=int, default=331)
    p.add_argument("--worker", nargs=2, metavar=("MODEL", "MODE"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.alternate:
        alternate(args)
        return
    if args.worker:
        args.model, args.mode = args.worker
        print(json.dumps(worker(args)))
        return

    # Each (model, mode) in its own process (its own peak memory); the timm/ours pair runs
    # --rounds times in turn and the ratio is taken round by round.
    results: dict = {}
    for mode in args.modes:
        for _ in range(args.rounds):
            for model in ("timm", "ours"):
                cmd = [sys.executable, __file__, "--worker", model, mode, "--device", args.device,
                       "--threads", str(args.threads), "--repeats", str(args.repeats),
                       "--warmup", str(args.warmup), "--size", str(args.size)]  # fmt: skip
                last = args.channels_last or (args.ours_channels_last and model == "ours")
                cmd += ["--amp"] * args.amp + ["--channels-last"] * last
                out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
                res = json.loads(out.strip().splitlines()[-1])
                results.setdefault((model, mode), []).append(res)
                print(model, mode, res, file=sys.stderr, flush=True)

    def row(name, key, mode, unit, scale):
        t = [r[key] for r in results[("timm", mode)]]
        o = [r[key] for r in results[("ours", mode)]]
        ratios = [b / a for a, b in zip(t, o)]
        med = statistics.median
        return (f"| {name} | {med(t) * scale:.1f} {unit} | {med(o) * scale:.1f} {unit} | "
                f"{med(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f}) |")  # fmt: skip

    import os

    print(f"device={args.device} threads={args.threads} amp={args.amp} size={args.size} "
          f"channels_last={args.channels_last} ours_channels_last={args.ours_channels_last} "
          f"repeats={args.repeats} rounds={args.rounds} "
          f"load average at end {os.getloadavg()[0]:.1f}")  # fmt: skip
    print("| measure | timm nasnetalarge | nasnet_det nasnet_a_large | ours / timm (range) |")
    print("| --- | --- | --- | --- |")
    if "infer" in args.modes:
        print(row(f"batch-1 inference, {args.size}px (median)", "median_s", "infer", "ms", 1e3))
    if "train" in args.modes:
        print(row(f"batch-2 train step, {args.size}px (median)", "median_s", "train", "ms", 1e3))
        print(row("peak memory of the train step", "peak_mb", "train", "MiB", 1))


if __name__ == "__main__":
    main()
