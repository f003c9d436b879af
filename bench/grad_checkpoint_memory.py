"""Peak resident memory of one NASNet-A Large training step (forward + backward) on CPU, with
and without grad checkpointing: ``python bench/grad_checkpoint_memory.py [--checkpoint]``.

Prints one line: the rise of the process's peak RSS over its RSS after building the model and
the input (the peak is reset first through /proc/self/clear_refs), and the step's time.
"""

import argparse
import time

import torch

from nasnet_det import build_nasnet


def rss_mib(field: str) -> float:
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) / 1024
    raise RuntimeError(field)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", action="store_true")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--size", type=int, default=331)
    args = ap.parse_args()
    torch.manual_seed(0)
    model = build_nasnet("nasnet_a_large").train()
    model.set_grad_checkpointing(args.checkpoint)
    x = torch.randn(args.batch, 3, args.size, args.size)
    base = rss_mib("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM to the current RSS
    t = time.perf_counter()
    out = model(x)
    (out.logits.sum() + out.aux_logits.sum()).backward()
    dt = time.perf_counter() - t
    peak = rss_mib("VmHWM")
    print(
        f"checkpoint={args.checkpoint} batch={args.batch} size={args.size} "
        f"peak_rise_mib={peak - base:.0f} step_s={dt:.1f} "
        f"logit0={out.logits[0, 0].item():.6f}"
    )


if __name__ == "__main__":
    main()
