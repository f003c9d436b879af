"""A NASNet that does less work at inference: batch norm folded into the convolution before it.

In eval mode (or with frozen weights) a batch norm is a fixed per-channel affine map
``y = x * scale + shift``; applied right after a convolution it can be folded into that
convolution's weight and bias, removing one pass over every activation it touches (NASNet has a
BN after every pointwise and 1x1 conv, about 40% of its ops). The folded network computes the
same function up to float rounding.

Usage (after loading weights: folded modules no longer match a checkpoint's BN keys)::

    model = build_nasnet("nasnet_a_mobile").eval()
    fuse_for_inference(model)                      # a classifier
    fuse_for_inference(detector.eval())            # a Detectron2 detector with NASNet parts
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["channels_last_pays", "fast_inference", "fold_bn", "fuse_for_inference"]


def _affine(bn: nn.Module) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``(scale, shift)`` of a batch norm that is a fixed affine map now, else ``None``.

    Detectron2's ``FrozenBatchNorm2d`` always is; ``nn.BatchNorm2d`` (and SyncBN) only in eval
    mode with running statistics. GroupNorm and training-mode BN are not.
    """
    if type(bn).__name__ == "FrozenBatchNorm2d":  # Detectron2's, without importing it
        weight, bias = bn.weight, bn.bias
    elif isinstance(bn, nn.modules.batchnorm._BatchNorm):
        if bn.training or bn.running_mean is None:
            return None
        weight = bn.weight if bn.weight is not None else torch.ones_like(bn.running_mean)
        bias = bn.bias if bn.bias is not None else torch.zeros_like(bn.running_mean)
    else:
        return None
    scale = weight.detach().double() / torch.sqrt(bn.running_var.double() + bn.eps)
    shift = bias.detach().double() - bn.running_mean.double() * scale
    return scale, shift


def fold_bn(convs: list[nn.Conv2d], bn: nn.Module) -> bool:
    """Fold ``bn`` into ``convs`` (whose outputs, concatenated in order, are its input).

    Each conv's weight is scaled per output channel and gets the matching bias (an existing bias
    is scaled and shifted too). Returns ``False`` and changes nothing when ``bn`` is not a fixed
    affine map or a conv is still training (folding would change what its gradient trains).
    """
    affine = _affine(bn)
    if affine is None or any(c.training and c.weight.requires_grad for c in convs):
        return False
    scale, shift = affine
    if sum(c.out_channels for c in convs) != scale.numel():
        raise ValueError(
            f"cannot fold a {scale.numel()}-channel batch norm into convolutions with "
            f"{[c.out_channels for c in convs]} output channels"
        )
    start = 0
    for conv in convs:
        sl = slice(start, start + conv.out_channels)
        start = sl.stop
        s, t = scale[sl], shift[sl]
        w = conv.weight.detach()
        b = torch.zeros_like(s) if conv.bias is None else conv.bias.detach().double()
        new_w = (w.double() * s.view(-1, *([1] * (w.dim() - 1)))).to(w.dtype)
        new_b = (b * s + t).to(w.dtype)
        grad = conv.weight.requires_grad
        with torch.no_grad():
            conv.weight.copy_(new_w)
        conv.bias = nn.Parameter(new_b.to(conv.weight.device), requires_grad=grad)
    return True


def _get(module: nn.Module, dotted: str) -> nn.Module:
    for part in dotted.split("."):
        module = getattr(module, part)
    return module


def _set(module: nn.Module, dotted: str, value: nn.Module) -> None:
    *parents, name = dotted.split(".")
    for part in parents:
        module = getattr(module, part)
    setattr(module, name, value)


def _pairs(module: nn.Module) -> list[tuple[list[str], str]]:
    """The (conv names, BN name) pairs inside ``module`` that may be folded."""
    pairs = [(list(convs), bn) for convs, bn in getattr(module, "bn_folds", ())]
    if isinstance(module, nn.Sequential):
        # A stem (or any Sequential) where a BN directly follows a Conv2d.
        names = list(module._modules)
        for a, b in zip(names, names[1:]):
            if isinstance(module._modules[a], nn.Conv2d) and _affine(module._modules[b]):
                pairs.append(([a], b))
    return pairs


def fuse_for_inference(model: nn.Module, *, channels_last: bool = False) -> nn.Module:
    """Fold every foldable batch norm of ``model`` into its convolution, in place.

    Foldable: a BN declared by its module right after a convolution (``bn_folds`` of the NASNet
    ops, ``conv``/``bn`` pairs of a ``Sequential`` stem) that is a fixed affine map: eval mode,
    or Detectron2's ``FrozenBatchNorm2d`` before a conv whose weight is frozen. The BN is
    replaced by ``nn.Identity``. Works on a :class:`~nasnet_det.nasnet.NASNet` and on any
    module holding NASNet parts (a Detectron2 detector's backbone and ROI heads). Call it after
    loading weights. ``channels_last`` also converts the weights to channels-last memory format
    and makes the detector's NASNet parts convert their inputs (a classifier wants
    channels-last inputs: ``x.to(memory_format=torch.channels_last)``); on CPU this is several
    times faster for NASNet's pooling and depthwise convolutions (docs/BENCHMARKS.md).
    Returns ``model``; ``model.fused_bn_count`` says how many BNs were folded.
    """
    count = 0
    for module in list(model.modules()):
        for conv_names, bn_name in _pairs(module):
            bn = _get(module, bn_name)
            if isinstance(bn, nn.Identity):
                continue  # folded by an earlier call
            if fold_bn([_get(module, c) for c in conv_names], bn):
                _set(module, bn_name, nn.Identity())
                count += 1
    if channels_last:
        model.to(memory_format=torch.channels_last)
        for module in model.modules():
            # Detector parts that receive NCHW tensors from Detectron2 convert them on entry.
            if hasattr(module, "input_memory_format"):
                module.input_memory_format = torch.channels_last
    model.fused_bn_count = count
    return model


def channels_last_pays(device: torch.device | str) -> bool:
    """Whether channels_last speeds NASNet inference up on ``device``.

    CPU: yes, on both kinds measured (AVX-512 + AMX, and the AVX2 kernels that
    ``ONEDNN_MAX_CPU_ISA=AVX2`` selects): PyTorch vectorises its CPU pooling kernels for
    channels_last only (docs/BENCHMARKS.md, the CPU-kind matrix). Elsewhere (CUDA): not
    measured in fp32, so no.
    """
    return torch.device(device).type == "cpu"


def fast_inference(model: nn.Module, *, channels_last: bool | None = None) -> nn.Module:
    """``model`` (in place) in eval mode with its batch norms folded and, where
    :func:`channels_last_pays` for its parameters' device (``channels_last=None``), in
    channels_last. The outputs equal the plain model's up to float rounding. Marks the model
    (``model.fast_inference = True``) so that a second call returns it unchanged."""
    if getattr(model, "fast_inference", False):
        return model
    model.eval()
    if channels_last is None:
        param = next(model.parameters(), None)
        channels_last = param is not None and channels_last_pays(param.device)
    fuse_for_inference(model, channels_last=channels_last)
    model.fast_inference = True
    return model
