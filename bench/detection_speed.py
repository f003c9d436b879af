#!/usr/bin/env python
"""Faster R-CNN with NASNet-A Mobile (ours) against Detectron2's R50-C4 and R50-FPN, one run.

    python bench/detection_speed.py --threads 1                 # CPU, 600x600
    python bench/detection_speed.py --models mobile large --what train
    python bench/detection_speed.py --what alt --models r50_c4 r50_fpn mobile mobile+plain \
        mobile_fpn mobile_low --repeats 5           # inference, all in one process, in turn
    python bench/detection_speed.py --what alt-train --models r50_c4 r50_fpn mobile \
        mobile+grid mobile_fpn --repeats 3         # one training iteration, batch 2, in turn

Our detectors run as users get them: inference through ``inference_model`` (BN folded,
channels_last where it pays: what ``tools/predict.py``, ``--eval-only`` and export run);
``NAME+plain`` is the model as built (``MODEL.NASNET.FAST_INFERENCE False``), ``NAME+grid`` uses
the grid-sample ROIAlign (``MODEL.ROI_BOX_HEAD.POOLER_IMPL grid_sample``, 2 samples per bin),
``NAME+relu_each`` lets every reader of a cell output ReLU it itself (as the cells did before
they rectified a shared output once).

``--fast`` applies the inference fast paths to our detectors only (``fuse``: BN folded into the
convs; ``channels_last``; ``compile``: torch.compile of the backbone and second stage, falling
back to eager). ``*_low`` are the low-proposals configs: they keep their own 50 proposals.

All detectors have random weights and 80 classes, built from their model-zoo configs at a fixed
600x600 input (MIN_SIZE_TEST 600; training with one image and two boxes). Measures batch-1
inference latency (median of --repeats after one warm-up), mult-adds of inference (fvcore, via
detectron2.utils.analysis) and the peak memory of one training iteration (forward, backward,
SGD step). Each (model, measurement) runs in its own subprocess so the peak (max RSS on CPU) is
its own. Prints a Markdown table with ratios against R50-C4.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

MODELS = {
    "mobile": ("nasnet", "COCO-Detection/faster_rcnn_nasnet_a_mobile_1x.yaml"),
    "large": ("nasnet", "COCO-Detection/faster_rcnn_nasnet_a_large_1x.yaml"),
    "mobile_low": ("nasnet", "COCO-Detection/faster_rcnn_nasnet_a_mobile_lowproposals.yaml"),
    "large_low": ("nasnet", "COCO-Detection/faster_rcnn_nasnet_a_large_lowproposals.yaml"),
    "mobile_fpn": ("nasnet", "COCO-Detection/faster_rcnn_nasnet_a_mobile_FPN_1x.yaml"),
    "mobile_fpn_lite": ("nasnet", "COCO-Detection/faster_rcnn_nasnet_a_mobile_FPN_lite_1x.yaml"),
    "r50_c4": ("detectron2", "COCO-Detection/faster_rcnn_R_50_C4_1x.yaml"),
    "r50_fpn": ("detectron2", "COCO-Detection/faster_rcnn_R_50_FPN_1x.yaml"),
}
SIZE = 600
PROPOSALS = 300  # set by --proposals
FAST: set[str] = set()  # set by --fast
DEVICE = "cpu"  # set by --device
ALTERNATING = False  # --what alt: "+fast" names pick the contenders that get --fast


def build(name: str, train: bool):
    import torch
    from detectron2.modeling import build_model

    fast = name.endswith("+fast")  # alternating mode: the --fast paths for this contender only
    plain = name.endswith("+plain")  # the model as built, without the default inference path
    grid = name.endswith("+grid")  # the grid-sample ROIAlign
    relu_each = name.endswith("+relu_each")  # each reader ReLUs a cell output (before 2026-12-04)
    name = name.split("+")[0]
    source, path = MODELS[name]
    if source == "nasnet":
        from nasnet_det.detection import model_zoo

        cfg = model_zoo.get_config(path)
    else:
        from detectron2 import model_zoo as d2_zoo

        cfg = d2_zoo.get_config(path)
    cfg.MODEL.DEVICE = DEVICE
    cfg.MODEL.WEIGHTS = ""
    cfg.INPUT.MIN_SIZE_TEST = SIZE
    cfg.INPUT.MAX_SIZE_TEST = SIZE
    # Equal work for the box heads: exactly PROPOSALS regions each (random weights would
    # otherwise leave a data-dependent number after NMS); low-proposals configs keep theirs.
    cfg.MODEL.RPN.NMS_THRESH = 1.0
    if not name.endswith("_low"):
        cfg.MODEL.RPN.POST_NMS_TOPK_TEST = PROPOSALS
    cfg.MODEL.RPN.PRE_NMS_TOPK_TEST = max(
        cfg.MODEL.RPN.POST_NMS_TOPK_TEST, cfg.MODEL.RPN.PRE_NMS_TOPK_TEST
    )
    if grid:  # ROIAlignV2 with 2 samples per bin: what the grid-sample pooler replaces
        cfg.MODEL.ROI_BOX_HEAD.POOLER_TYPE = "ROIAlignV2"
        cfg.MODEL.ROI_BOX_HEAD.POOLER_SAMPLING_RATIO = 2
        cfg.MODEL.ROI_BOX_HEAD.POOLER_IMPL = "grid_sample"
    torch.manual_seed(0)
    model = build_model(cfg)
    # Random RPN deltas can collapse boxes to nothing (then dropped): zero them so the
    # proposals are anchors, all valid, and every detector's box head sees PROPOSALS regions.
    head = model.proposal_generator.rpn_head
    torch.nn.init.zeros_(head.anchor_deltas.weight)
    torch.nn.init.zeros_(head.anchor_deltas.bias)
    if grid:
        from nasnet_det.detection.training import prepare_model

        prepare_model(cfg, model)  # the grid-sample pooler in place of ROIAlign
    if relu_each:
        from nasnet_det.cells import CellStack

        for m in model.modules():
            if isinstance(m, CellStack):
                m.rectify_shared_outputs(False)
    model.train(train)
    if source == "nasnet" and not train and not plain and not FAST:
        from nasnet_det.detection.fast import inference_model

        model = inference_model(model, cfg)  # what predict / --eval-only / export run
    if source == "nasnet" and not train and FAST and (fast or not ALTERNATING):
        from nasnet_det.fuse import fuse_for_inference

        if "fuse" in FAST or "channels_last" in FAST:
            if "fuse" in FAST:
                fuse_for_inference(model, channels_last="channels_last" in FAST)
            else:  # channels_last alone: convert without folding
                model.to(memory_format=torch.channels_last)
                for m in model.modules():
                    if hasattr(m, "input_memory_format"):
                        m.input_memory_format = torch.channels_last
        if "compile" in FAST:
            from nasnet_det.compile import compile_detector

            compile_detector(model)
    return model


def inputs(train: bool, batch: int = 1):
    import torch
    from detectron2.structures import Boxes, Instances

    g = torch.Generator().manual_seed(0)
    out = []
    for _ in range(batch):
        d = {"image": torch.rand(3, SIZE, SIZE, generator=g) * 255, "height": SIZE, "width": SIZE}
        d["image"] = d["image"].to(DEVICE)
        if train:
            inst = Instances((SIZE, SIZE))
            inst.gt_boxes = Boxes(
                torch.tensor([[50.0, 60.0, 250.0, 300.0], [300.0, 200.0, 560.0, 580.0]])
            )
            inst.gt_classes = torch.tensor([3, 17])
            d["instances"] = inst
        out.append(d)
    return out


def _sync() -> None:
    import torch

    if DEVICE == "cuda":
        torch.cuda.synchronize()


def measure(name: str, what: str, repeats: int) -> dict:
    import torch

    out: dict = {"model": name, "what": what}
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if what == "infer":
        model = build(name, train=False)
        batch = inputs(False)
        with torch.no_grad():
            model(batch)
            times = []
            for _ in range(repeats):
                _sync()
                t = time.perf_counter()
                model(batch)
                _sync()
                times.append(time.perf_counter() - t)
        out["latency_s"] = statistics.median(times)
        out["latency_range_s"] = [min(times), max(times)]
    elif what == "flops":
        from detectron2.utils.analysis import FlopCountAnalysis

        model = build(name, train=False)
        fca = FlopCountAnalysis(model, inputs(False))
        fca.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        out["gmacs"] = fca.total() / 1e9
    elif what == "train":
        from detectron2.utils.events import EventStorage

        model = build(name, train=True)
        opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-4)
        rss_built = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t = time.perf_counter()
        with EventStorage():
            loss = sum(model(inputs(True)).values())
            loss.backward()
            opt.step()
        out["train_step_s"] = time.perf_counter() - t
        out["model_rss_mb"] = (rss_built - rss0) / 1024
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def _train_step(model, opt, batch) -> None:
    from detectron2.utils.events import EventStorage

    with EventStorage():
        loss = sum(model(batch).values())
        opt.zero_grad()
        loss.backward()
        opt.step()


def alternate(names: list[str], repeats: int, train: bool = False) -> dict:
    """All contenders in one process, timed in turn (A B C A B C ...) so that a drifting machine
    load hits them alike; ratios against the first contender are taken round by round. With
    ``train``, one SGD iteration (forward, backward, step) on a batch of 2 images."""
    import torch

    models = {n: build(n, train=train) for n in names}
    batch = inputs(train, batch=2 if train else 1)
    if train:
        opts = {n: torch.optim.SGD([p for p in m.parameters() if p.requires_grad], lr=1e-5)
                for n, m in models.items()}  # fmt: skip

        def run(n: str) -> None:
            _train_step(models[n], opts[n], batch)
    else:

        def run(n: str) -> None:
            with torch.no_grad():
                models[n](batch)

    times: dict[str, list[float]] = {n: [] for n in names}
    for n in names:
        run(n)  # warm-up
    for _ in range(repeats):
        for n in names:
            _sync()
            t = time.perf_counter()
            run(n)
            _sync()
            times[n].append(time.perf_counter() - t)
    print(json.dumps({"round_times_s": times}), file=sys.stderr)
    ref = names[0]
    out = {}
    for n in names:
        ratios = [a / b for a, b in zip(times[n], times[ref])]
        out[n] = {
            "median_s": statistics.median(times[n]),
            "range_s": [min(times[n]), max(times[n])],
            f"ratio_vs_{ref}": statistics.median(ratios),
            "ratio_range": [min(ratios), max(ratios)],
        }
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--models", nargs="+", default=["mobile", "r50_c4", "r50_fpn"],
                   help=f"of {', '.join(MODELS)}; with --what alt also NAME+fast")  # fmt: skip
    p.add_argument("--what", nargs="+", default=["infer", "flops", "train"],
                   help="infer flops train (own process each), or alt / alt-train: all in "
                   "one process, timed in turn")  # fmt: skip
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--size", type=int, default=600, help="input side in pixels (600)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--proposals", type=int, default=300, help="regions per image at inference")
    p.add_argument("--timeout", type=int, default=900, help="seconds per measurement")
    p.add_argument("--fast", default="", help="ours only: comma list of fuse,channels_last,compile")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--one", nargs=2, metavar=("MODEL", "WHAT"), help=argparse.SUPPRESS)
    args = p.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    global PROPOSALS, FAST, DEVICE, SIZE
    PROPOSALS, DEVICE, SIZE = args.proposals, args.device, args.size
    FAST = {f for f in args.fast.split(",") if f}
    bad = FAST - {"fuse", "channels_last", "compile"}
    if bad:
        p.error(f"--fast takes fuse, channels_last, compile; got {sorted(bad)}")
    if args.one:
        print(json.dumps(measure(args.one[0], args.one[1], args.repeats)))
        return 0
    if args.what in (["alt"], ["alt-train"]):
        global ALTERNATING
        ALTERNATING = True
        train = args.what == ["alt-train"]
        res = alternate(args.models, args.repeats, train=train)
        load = os.getloadavg()
        kind = "training iteration, batch 2" if train else "inference, batch 1"
        isa = os.environ.get("ONEDNN_MAX_CPU_ISA", "as-is")
        head = (
            f"{SIZE}x{SIZE}, {args.device} (oneDNN ISA {isa}), {args.threads} thread(s), "
            f"random weights, {kind}, "
            f"{args.proposals} proposals (*_low: 50), +fast = {args.fast or '-'}, "
            f"{args.repeats} alternating rounds, load average at end {load[0]:.1f}"
        )
        print(f"\n{head}\n")
        ref = args.models[0]
        print(f"| contender | median s | range s | vs {ref} (median of rounds) | range |")
        print("|---|---|---|---|---|")
        for n, r in res.items():
            lo, hi = r["range_s"]
            rlo, rhi = r["ratio_range"]
            print(f"| {n} | {r['median_s']:.2f} | {lo:.2f}-{hi:.2f} | "
                  f"{r[f'ratio_vs_{ref}']:.2f}x | {rlo:.2f}-{rhi:.2f} |")  # fmt: skip
        return 0
    rows: dict[str, dict] = {m: {} for m in args.models}
    for m in args.models:
        for w in args.what:
            cmd = [sys.executable, __file__, "--one", m, w, "--threads", str(args.threads),
                   "--repeats", str(args.repeats), "--proposals", str(args.proposals),
                   "--fast", args.fast, "--device", args.device]  # fmt: skip
            try:
                r = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
            except subprocess.TimeoutExpired:
                print(f"{m} {w}: over {args.timeout} s, skipped", file=sys.stderr)
                continue
            if r.returncode != 0:
                tail = r.stderr.strip().splitlines()[-1:] or ["?"]
                print(f"{m} {w}: failed ({tail[0]})", file=sys.stderr)
                continue
            res = json.loads(r.stdout.strip().splitlines()[-1])
            rows[m].update({k: v for k, v in res.items() if k not in ("model", "what")})
            if w == "train":
                rows[m]["train_peak_rss_mb"] = res["peak_rss_mb"]
            print(json.dumps(res), file=sys.stderr, flush=True)
    ref = rows.get("r50_c4", {})
    print(
        f"\n{SIZE}x{SIZE}, {args.device}, {args.threads} thread(s), random weights, batch 1, "
        f"{args.proposals} proposals at inference (*_low: 50), ours with "
        f"--fast {args.fast or '(none)'}\n"
    )
    print(
        "| model | latency s | vs R50-C4 | GMACs | vs R50-C4 | train step s | train peak RSS MB |"
    )
    print("|---|---|---|---|---|---|---|")
    for m, r in rows.items():

        def ratio(key: str, r=r) -> str:
            return f"{r[key] / ref[key]:.2f}x" if key in r and ref.get(key) else "-"

        def fmt(key: str, spec: str, r=r) -> str:
            return format(r[key], spec) if key in r else "-"

        print(
            f"| {m} | {fmt('latency_s', '.2f')} | {ratio('latency_s')} | {fmt('gmacs', '.1f')} "
            f"| {ratio('gmacs')} | {fmt('train_step_s', '.1f')} "
            f"| {fmt('train_peak_rss_mb', '.0f')} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
