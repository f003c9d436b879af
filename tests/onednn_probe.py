"""Run forward and backward of our convolutions on the CPU, for the crash test in test_cpu_kernels.

``python tests/onednn_probe.py ops``: every op of the search space (both memory formats, strides 1
and 2, 1..32 channels, the spatial sizes the demo and the detector use), the factorized reduction
and a small NASNet (stem, cell preprocessing, reduction cells) in channels_last and NCHW.
``python tests/onednn_probe.py raw``: the bare strided channels_last 1x1 convolution of oneDNN's
upstream bug, without our route. Run under ``ONEDNN_VERBOSE=1`` the parent reads which oneDNN
kernels ran; a heap corruption shows as a non-zero (negative) exit code.
"""

from __future__ import annotations

import faulthandler
import sys

import torch
import torch.nn.functional as F

# Spatial sizes of cell inputs: the demo detector's 192 px input reaches cells at 48 and 24 (the
# repro's 48 is the size seen crashing), and an odd size (13) for TF SAME's asymmetric case.
SIZES = (13, 24, 48)
CHANNELS = range(1, 33)


def _run(module: torch.nn.Module, x: torch.Tensor) -> None:
    x = x.detach().requires_grad_()
    module(x).sum().backward()


def probe_ops() -> int:
    from nasnet_det.ops import OP_NAMES, FactorizedReduction, OpConfig, build_op

    cfg = OpConfig()
    count = 0
    for fmt in (torch.contiguous_format, torch.channels_last):
        for name in OP_NAMES:
            for stride in (1, 2):
                for c in CHANNELS:
                    op = build_op(name, c, c, stride, cfg).to(memory_format=fmt)
                    for size in SIZES:
                        _run(op, torch.randn(2, c, size, size).to(memory_format=fmt))
                        count += 1
        for c in range(2, 33):
            for stride in (1, 2):
                red = FactorizedReduction(c, c, cfg, stride=stride).to(memory_format=fmt)
                for size in SIZES:
                    _run(red, torch.randn(2, c, size, size).to(memory_format=fmt))
                    count += 1
    return count + probe_network()


def probe_network() -> int:
    from nasnet_det.nasnet import build_nasnet

    count = 0
    for fmt in (torch.contiguous_format, torch.channels_last):
        for filters, stem in ((8, 1.0), (12, 0.5)):
            net = build_nasnet("nasnet_a_mobile", num_cells=1, num_conv_filters=filters,
                               stem_multiplier=stem, num_classes=10, use_aux_head=False)
            net = net.to(memory_format=fmt)
            for size in (64, 96):
                _run(net, torch.randn(2, 3, size, size).to(memory_format=fmt))
                count += 1
    return count


def probe_raw() -> int:
    # The upstream reproduction: stride-2 1x1 convolution, channels_last, 12 input channels.
    x = torch.randn(4, 12, 48, 48).to(memory_format=torch.channels_last)
    w = torch.randn(12, 12, 1, 1).to(memory_format=torch.channels_last).requires_grad_()
    for _ in range(10):
        torch.autograd.grad(F.conv2d(x, w, stride=2).sum(), w)
    return 10


if __name__ == "__main__":
    faulthandler.enable()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    n = {"ops": probe_ops, "raw": probe_raw}[sys.argv[1]]()
    print(f"probe finished: {n} forward/backward passes", file=sys.stderr)
