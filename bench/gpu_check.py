#!/usr/bin/env python
"""Every GPU measurement in one go, printed as one Markdown table.

    bash bench/gpu_check.sh                        # on a machine with one CUDA GPU, < 8 minutes
    python bench/gpu_check.py --device cpu --tiny  # dry run of every section on CPU, tiny sizes

Sections (each timed separately; a failing or over-budget section becomes a row saying so, the
others still run):

* ``classify``: NASNet-A Large (ours) against timm ``nasnetalarge`` at 331 px, batch-1 inference
  in fp32, AMP, AMP + channels_last and compiled (AMP + channels_last), ours through
  ``fuse_for_inference``; batch-2 training step in fp32 and AMP; peak memory of the steps.
* ``det_train``: one Faster R-CNN training iteration with AMP at 800 px, Mobile and Large.
* ``det_infer``: batch-1 detector latency with AMP, ours (fused, channels_last) against
  Detectron2's R50-C4 and R50-FPN, timed in turn; 300 proposals each (``*_low``: 50).
* ``pretrain``: one step of ``nasnet_det.pretrain.train`` (AMP + channels_last on CUDA) on
  generated JPEGs, NASNet-A Mobile at 224, batch 32.
* ``search``: one search child (``search.child.train_child``) trained on CUDA for one epoch.

Ratios are ours / peer from the same process (lower is faster).
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

ROWS: list[tuple[str, str, str, str, str]] = []  # section, measure, ours, peer, ours/peer


def row(section: str, measure: str, ours: str, peer: str = "-", ratio: str = "-") -> None:
    ROWS.append((section, measure, ours, peer, ratio))
    print(f"  {section} | {measure} | {ours} | {peer} | {ratio}", file=sys.stderr, flush=True)


class Timer:
    """Median wall time of ``fn`` after ``warmup`` calls, synchronising CUDA around each."""

    def __init__(self, device: str, warmup: int, repeats: int) -> None:
        self.device, self.warmup, self.repeats = device, warmup, repeats

    def sync(self) -> None:
        if self.device == "cuda":
            torch.cuda.synchronize()

    def __call__(self, fn) -> float:
        for _ in range(self.warmup):
            fn()
        times = []
        for _ in range(self.repeats):
            self.sync()
            t = time.perf_counter()
            fn()
            self.sync()
            times.append(time.perf_counter() - t)
        return statistics.median(times)

    def pair(self, a, b) -> tuple[float, float, float]:
        """Medians of ``a`` and ``b`` timed in turn, and the median of the per-round ratios."""
        for _ in range(self.warmup):
            a(), b()
        ta, tb = [], []
        for _ in range(self.repeats):
            for fn, ts in ((a, ta), (b, tb)):
                self.sync()
                t = time.perf_counter()
                fn()
                self.sync()
                ts.append(time.perf_counter() - t)
        return (
            statistics.median(ta),
            statistics.median(tb),
            statistics.median(x / y for x, y in zip(ta, tb)),
        )


def peak_reset(device: str) -> None:
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def peak_mib(device: str) -> str:
    if device == "cuda":
        return f"{torch.cuda.max_memory_allocated() / 2**20:.0f} MiB"
    import resource

    return f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB (max RSS)"


def autocast(device: str, enabled: bool):
    """float16 autocast on CUDA; off on CPU (bfloat16 autocast is slower there: a dry run)."""
    return torch.autocast(device, dtype=torch.float16, enabled=enabled and device == "cuda")


def ms(t: float) -> str:
    return f"{t * 1e3:.1f} ms"


# ---------------------------------------------------------------------------------- sections
def classify(args) -> None:
    import timm

    from nasnet_det import build_nasnet
    from nasnet_det.compile import compile_module, compile_status
    from nasnet_det.fuse import fuse_for_inference

    dev, size, cl = args.device, args.cls_size, torch.channels_last
    timer = Timer(dev, args.warmup, args.repeats)
    torch.manual_seed(0)
    timm_m = timm.create_model("nasnetalarge", pretrained=False).to(dev).eval()
    ours = build_nasnet("nasnet_a_large", num_classes=1000, use_aux_head=False).to(dev).eval()
    ours_fused = fuse_for_inference(copy.deepcopy(ours))
    x = torch.randn(1, 3, size, size, device=dev)
    variants = [("fp32", False, False), ("AMP", True, False), ("AMP + channels_last", True, True)]
    if dev == "cpu":  # CPU autocast (bfloat16) is no fast path here: a dry run skips it
        variants = [("fp32", False, False), ("channels_last", False, True)]
    with torch.inference_mode():
        for name, amp, last in variants:
            fmt = cl if last else torch.contiguous_format
            t_m, o_m = copy.deepcopy(timm_m).to(memory_format=fmt), copy.deepcopy(ours_fused)
            o_m.to(memory_format=fmt)
            xi = x.contiguous(memory_format=fmt)
            with autocast(dev, amp):
                o, t, r = timer.pair(lambda o_m=o_m, xi=xi: o_m(xi), lambda t_m=t_m, xi=xi: t_m(xi))
            row("classify", f"batch-1 inference {size}px, {name} (ours fused)", ms(o), ms(t),
                f"{r:.2f}x")  # fmt: skip
        if args.compile:
            t_c = torch.compile(copy.deepcopy(timm_m).to(memory_format=cl))
            o_c = compile_module(fuse_for_inference(copy.deepcopy(ours), channels_last=True))
            xi = x.contiguous(memory_format=cl)
            with autocast(dev, True):
                start = time.perf_counter()
                o_c(xi), t_c(xi)  # compile both (not timed)
                compile_s = time.perf_counter() - start
                o, t, r = timer.pair(lambda: o_c(xi), lambda: t_c(xi))
            row("classify", f"batch-1 inference {size}px, compiled AMP + channels_last "
                f"(ours: {compile_status(o_c)}; both compiled in {compile_s:.0f} s)", ms(o),
                ms(t), f"{r:.2f}x")  # fmt: skip
    # Training step, batch 2: each model alone for its own peak memory.
    del ours_fused
    xb = torch.randn(2, 3, size, size, device=dev)
    y = torch.tensor([1, 2], device=dev)
    for name, amp in (("fp32", False), ("AMP", True))[: 1 if dev == "cpu" else 2]:
        res = {}
        for who, model in (("ours", ours), ("timm", timm_m)):
            model.train()
            opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
            scaler = torch.amp.GradScaler(enabled=amp and dev == "cuda")

            def step(model=model, opt=opt, scaler=scaler, amp=amp):
                with autocast(dev, amp):
                    loss = torch.nn.functional.cross_entropy(model(xb), y)
                opt.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()

            peak_reset(dev)
            res[who] = (timer(step), peak_mib(dev))
            del opt
        (o, om), (t, tm) = res["ours"], res["timm"]
        row("classify", f"batch-2 train step {size}px, {name}", ms(o), ms(t), f"{o / t:.2f}x")
        row("classify", f"peak memory of that step, {name}", om, tm,
            f"{float(om.split()[0]) / float(tm.split()[0]):.2f}x")  # fmt: skip


def _detection_speed(args):
    import detection_speed as ds

    ds.SIZE, ds.PROPOSALS, ds.DEVICE = args.det_size, args.proposals, args.device
    return ds


def det_train(args) -> None:
    from detectron2.utils.events import EventStorage

    ds = _detection_speed(args)
    dev = args.device
    for name in args.det_models:
        peak_reset(dev)
        model = ds.build(name, train=True)
        opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-4)
        scaler = torch.amp.GradScaler(enabled=dev == "cuda")
        batch = ds.inputs(True)

        def step(model=model, opt=opt, scaler=scaler, batch=batch):
            with EventStorage(), autocast(dev, True):
                loss = sum(model(batch).values())
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()

        t = Timer(dev, 1, max(1, args.repeats // 4))(step)
        amp = "AMP" if dev == "cuda" else "fp32 (CPU)"
        row("det_train", f"{name}: training iteration, {amp}, {args.det_size}px, batch 1", ms(t))
        row("det_train", f"{name}: peak memory of that iteration", peak_mib(dev))
        del model, opt


def det_infer(args) -> None:
    ds = _detection_speed(args)
    ds.FAST, ds.ALTERNATING = {"fuse", "channels_last"}, True
    names = ["r50_c4", "r50_fpn"] + [f"{m}+fast" for m in args.det_models]
    names += [f"{m}_low+fast" for m in args.det_models]
    models = {n: ds.build(n, train=False) for n in names}
    batch = ds.inputs(False)
    timer = Timer(args.device, args.warmup, args.repeats)
    times = {n: [] for n in names}
    with torch.no_grad(), autocast(args.device, True):
        for n in names:
            for _ in range(args.warmup):
                models[n](batch)
        for _ in range(args.repeats):
            for n in names:
                timer.sync()
                t = time.perf_counter()
                models[n](batch)
                timer.sync()
                times[n].append(time.perf_counter() - t)
    for n in names[2:]:
        med = statistics.median(times[n])
        for ref in ("r50_c4", "r50_fpn"):
            r = statistics.median(a / b for a, b in zip(times[n], times[ref]))
            props = 50 if "_low" in n else args.proposals
            amp = "AMP" if args.device == "cuda" else "fp32 (CPU)"
            row("det_infer", f"{n} vs {ref}: latency, {amp}, {args.det_size}px, {props} proposals",
                ms(med), ms(statistics.median(times[ref])), f"{r:.2f}x")  # fmt: skip


def pretrain(args) -> None:
    import pretrain_speed as ps

    peak_reset(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ps.make_images(tmp / "data", args.pre_batch * 2)
        ips = ps.time_ours(tmp / "data", tmp / "out", args.pre_size, args.pre_batch, 1, 4)
    amp = "AMP + channels_last" if args.device == "cuda" else "CPU: no AMP"
    row(
        "pretrain",
        f"one step of nasnet_det.pretrain.train, Mobile {args.pre_size}px, batch "
        f"{args.pre_batch}, {amp}",
        f"{ips:.0f} images/s ({args.pre_batch / ips * 1e3:.0f} ms)",
    )
    row("pretrain", "peak memory (trainer process)", peak_mib(args.device))  # fmt: skip


def search_child(args) -> None:
    from nasnet_det.search.child import train_child

    from nasnet_det.genotypes import get_genotype

    child = {"device": args.device, "epochs": 1, **args.child}
    data = {"name": "digits", "image_size": 32 if not args.tiny else 16}
    if args.tiny:
        data.update(train_size=64, val_size=32)
    peak_reset(args.device)
    t = time.perf_counter()
    res = train_child(get_genotype("nasnet_a"), child, data, seed=0)
    t = time.perf_counter() - t
    row("search", f"one child (NASNet-A, N={child.get('num_cells', 2)}, "
        f"F={child.get('num_conv_filters', 32)}, 1 epoch on digits, {args.device})",
        f"{t:.1f} s, reward {res['reward']:.3f}")  # fmt: skip
    row("search", "peak memory of the child", peak_mib(args.device))


SECTIONS = {
    "classify": classify,
    "det_train": det_train,
    "det_infer": det_infer,
    "pretrain": pretrain,
    "search": search_child,
}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    p.add_argument("--tiny", action="store_true", help="tiny sizes: a dry run of every section")
    p.add_argument("--sections", nargs="+", default=list(SECTIONS), choices=SECTIONS)
    p.add_argument("--no-compile", dest="compile", action="store_false")
    p.add_argument("--budget", type=float, default=450, help="seconds; later sections skipped")
    p.add_argument("--threads", type=int, default=1, help="CPU threads (--device cpu)")
    args = p.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        print("gpu_check: error: no CUDA device (use --device cpu --tiny for a dry run)",
              file=sys.stderr)  # fmt: skip
        return 2
    torch.set_num_threads(args.threads)
    torch.backends.cudnn.benchmark = True
    big = not args.tiny
    args.cls_size = 331 if big else 64
    args.det_size = 800 if big else 128
    args.proposals = 300 if big else 20
    args.det_models = ["mobile", "large"] if big else ["mobile"]
    args.warmup, args.repeats = (3, 20) if big else (1, 1)
    args.pre_size, args.pre_batch = (224, 32) if big else (128, 4)  # 128: the aux head's minimum
    args.child = {} if big else {"num_cells": 1, "num_conv_filters": 8, "batch_size": 16}
    start = time.perf_counter()
    spent = {}
    for name in args.sections:
        if time.perf_counter() - start > args.budget:
            row(name, "skipped: over the time budget", "-")
            continue
        t = time.perf_counter()
        print(f"== {name}", file=sys.stderr, flush=True)
        try:
            SECTIONS[name](args)
        except Exception as e:  # noqa: BLE001 - one section's failure is a row, not the end
            traceback.print_exc()
            row(name, f"FAILED: {type(e).__name__}: {str(e).splitlines()[0][:120]}", "-")
        spent[name] = time.perf_counter() - t
    dev = torch.cuda.get_device_name() if args.device == "cuda" else platform.processor() or "CPU"
    print(f"\n{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {dev}, torch "
          f"{torch.__version__}, {'tiny dry run' if args.tiny else 'full sizes'}, "
          f"{args.repeats} timed repeats; sections took "
          + ", ".join(f"{k} {v:.0f} s" for k, v in spent.items())
          + f"; load average {os.getloadavg()[0]:.1f}\n")  # fmt: skip
    print("| section | measure | ours | peer | ours / peer |")
    print("| --- | --- | --- | --- | --- |")
    for r in ROWS:
        print("| " + " | ".join(r) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
