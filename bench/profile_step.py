#!/usr/bin/env python
"""Where the time goes, by op: the NASNet detector's inference (first vs second stage), or one
classifier training step (ours vs timm's nasnetalarge).

    python bench/profile_step.py detector --threads 1                       # Mobile, 600 px, 300
    python bench/profile_step.py detector --fast fuse,channels_last         # after the fixes
    python bench/profile_step.py detector --model mobile_low --fast fuse,channels_last
    python bench/profile_step.py classifier --threads 2 --top 15            # vs timm, train step
    python bench/profile_step.py detector --train --model mobile            # one SGD iteration

Detector: random weights, built as in bench/detection_speed.py (exactly --proposals regions, RPN
NMS off). One warm-up, then one profiled forward under torch.profiler (CPU); prints the wall time
of each stage (backbone, RPN, ROI heads split into ROIAlign, second-stage cells and box
predictor) and the top ops by self CPU time for the whole forward and for the second stage.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile, record_function

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _table(prof, top: int, shapes: bool = False) -> str:
    return prof.key_averages(group_by_input_shape=shapes).table(
        sort_by="self_cpu_time_total", row_limit=top, max_name_column_width=34,
        max_shapes_column_width=60,
    )  # fmt: skip


def _wrap(module: torch.nn.Module, label: str) -> None:
    """Time every call of ``module`` under a named profiler range."""
    fwd = module.forward

    def timed(*a, **k):
        with record_function(label):
            return fwd(*a, **k)

    module.forward = timed


def detector(args) -> None:
    import detection_speed as ds

    ds.SIZE, ds.PROPOSALS = args.size, args.proposals
    ds.FAST = {f for f in args.fast.split(",") if f}
    model = ds.build(args.model, train=False)
    _wrap(model.backbone, "## backbone (first stage)")
    if hasattr(model.backbone, "bottom_up"):  # FPN: the body alone (the rest is the FPN neck)
        _wrap(model.backbone.bottom_up, "## backbone body without FPN")
    _wrap(model.proposal_generator, "## RPN")
    _wrap(model.roi_heads, "## ROI heads")
    if hasattr(model.roi_heads, "second_stage"):
        _wrap(model.roi_heads.second_stage, "## second-stage cells")
    _wrap(model.roi_heads.box_predictor, "## box predictor")
    batch = ds.inputs(False)
    with torch.no_grad():
        model(batch)  # warm-up
        with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
            t = time.perf_counter()
            model(batch)
            wall = time.perf_counter() - t
    fast, threads = args.fast or "-", torch.get_num_threads()
    print(f"== {args.model} detector, {args.size} px, {args.proposals} proposals, "
          f"--fast {fast}, {threads} thread(s): {wall:.2f} s")  # fmt: skip
    stages = [e for e in prof.key_averages() if e.key.startswith("## ")]
    print("| stage | CPU s | share |\n|---|---|---|")
    for e in sorted(stages, key=lambda e: -e.cpu_time_total):
        print(
            f"| {e.key[3:]} | {e.cpu_time_total / 1e6:.2f} | {e.cpu_time_total / 1e6 / wall:.0%} |"
        )
    print(_table(prof, args.top))


def _fwd_bwd_seconds(fn, x, repeats: int = 3) -> float:
    """Median seconds of ``fn(x)`` forward plus backward of the sum of its output(s); ``x`` a
    tensor or a list of tensors (each a fresh leaf that requires grad if it is a float)."""
    times = []
    for _ in range(repeats + 1):  # the first is a warm-up
        xs = [x] if isinstance(x, torch.Tensor) else list(x)
        xg = [t.detach().clone().requires_grad_(t.is_floating_point()) for t in xs]
        xg = xg[0] if isinstance(x, torch.Tensor) else xg
        t = time.perf_counter()
        out = fn(xg)
        outs = out.values() if isinstance(out, dict) else [out]
        sum(o.float().sum() for o in outs).backward()
        times.append(time.perf_counter() - t)
    return sorted(times[1:])[len(times[1:]) // 2]


def detector_train(args) -> None:
    """One SGD iteration (batch 2): its wall time, the forward shares by stage, and each stage's
    forward + backward timed alone on the very tensors the step gave it (the backbone on the
    batch's padded images, the second stage on the step's sampled crops)."""
    import detection_speed as ds
    from detectron2.utils.events import EventStorage

    ds.SIZE = args.size
    model = ds.build(args.model, train=True)
    seen: dict[str, torch.Tensor] = {}

    def keep(key: str):
        def hook(module, inp, out) -> None:  # returns None: the output is left as it is
            seen.setdefault(key, inp)

        return hook

    if hasattr(model.roi_heads, "second_stage"):
        model.roi_heads.second_stage.register_forward_hook(keep("crops"))
    model.backbone.register_forward_hook(keep("images"))
    if hasattr(model.roi_heads, "pooler"):
        model.roi_heads.pooler.register_forward_hook(keep("pooler"))
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    batch = ds.inputs(True, batch=2)
    steps = []
    for _ in range(args.repeats + 1):
        with EventStorage():
            t = time.perf_counter()
            loss = sum(model(batch).values())
            opt.zero_grad()
            loss.backward()
            opt.step()
            steps.append(time.perf_counter() - t)
    step = sorted(steps[1:])[len(steps[1:]) // 2]
    print(f"== {args.model} training iteration, batch 2, {args.size} px, "
          f"{torch.get_num_threads()} thread(s): median {step:.2f} s of {args.repeats} "
          f"(range {min(steps[1:]):.2f}-{max(steps[1:]):.2f})")  # fmt: skip
    images = seen["images"][0]
    rows = [("first stage (backbone) fwd+bwd", _fwd_bwd_seconds(model.backbone, images))]
    if hasattr(model.backbone, "bottom_up"):  # FPN: the body alone (the first row holds it)
        body = _fwd_bwd_seconds(model.backbone.bottom_up, images)
        rows.append(("  of which the body without FPN (not added below)", body))
    if "pooler" in seen:
        feats, boxes = seen["pooler"]
        pool = _fwd_bwd_seconds(lambda xs: model.roi_heads.pooler(xs, boxes), feats)
        rows.append((f"ROI pooler fwd+bwd ({type(model.roi_heads.pooler).__name__})", pool))
    if "crops" in seen:
        crops = seen["crops"][0]
        rows.append((f"second stage cells fwd+bwd on {crops.shape[0]} crops "
                     f"{tuple(crops.shape[1:])}",
                     _fwd_bwd_seconds(model.roi_heads.second_stage, crops)))  # fmt: skip
    print("| part of the step | s (median of 3) | share of the step |\n|---|---|---|")
    for label, sec in rows:
        print(f"| {label} | {sec:.2f} | {sec / step:.0%} |")
    rest = step - sum(sec for label, sec in rows if not label.startswith("  "))
    print(f"| the rest (RPN, box head or predictor, losses, SGD update) | {rest:.2f} | "
          f"{rest / step:.0%} |")  # fmt: skip


def classifier(args) -> None:
    import timm

    from nasnet_det import build_nasnet

    x = torch.randn(2, 3, args.size, args.size)
    models = {
        "timm": timm.create_model("nasnetalarge", pretrained=False),
        "ours": build_nasnet("nasnet_a_large", num_classes=1000, use_aux_head=False),
    }
    for name, model in models.items():
        model.train()
        model(x).sum().backward()  # warm-up
        with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
            t = time.perf_counter()
            model(x).sum().backward()
            wall = time.perf_counter() - t
        print(f"== {name}: {wall:.2f} s")
        print(_table(prof, args.top, shapes=True))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("target", choices=["detector", "classifier"])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--top", type=int, default=15)
    p.add_argument("--size", type=int, default=None, help="600 (detector) / 331 (classifier)")
    p.add_argument("--model", default="mobile", help="detector: a bench/detection_speed.py name")
    p.add_argument("--proposals", type=int, default=300)
    p.add_argument("--fast", default="", help="detector: as bench/detection_speed.py --fast")
    p.add_argument(
        "--train",
        action="store_true",
        help="detector: profile one training iteration (batch 2) instead",
    )
    p.add_argument("--repeats", type=int, default=3, help="--train: timed iterations")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.target == "detector":
        args.size = args.size or 600
        (detector_train if args.train else detector)(args)
    else:
        args.size = args.size or 331
        classifier(args)


if __name__ == "__main__":
    main()
