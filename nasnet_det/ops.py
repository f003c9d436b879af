"""The paper's 13 operations, TF-compatible "SAME" padding and the cells' plumbing layers.

Every op is built by a factory with one signature, ``factory(c_in, c_out, stride, cfg)``, and maps
an ``[N, c_in, H, W]`` tensor to ``[N, c_out, ceil(H / stride), ceil(W / stride)]``, exactly as
TF-slim's ``nasnet_utils`` does (its SAME padding is asymmetric for stride 2; the published
weights were trained with it, so the ports that carry them emulate it and so do we).
The search space's vocabulary is this registry's keys.
"""

from __future__ import annotations

import functools
import math
import typing
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "OpConfig",
    "OPS",
    "OP_NAMES",
    "build_op",
    "same_pad_amounts",
    "script_unused",
    "SameConv2d",
    "SamePool2d",
    "ReLUConvBN",
    "SepConvBranch",
    "FactorizedReduction",
]


@dataclass(frozen=True)
class OpConfig:
    """Settings shared by all ops of a network.

    ``pool_pad``: how a stride-2 average pool treats TF SAME padding. ``"tf"`` excludes the padded
    zeros from the average (TensorFlow's behaviour); ``"timm"`` counts them (timm's
    ``nasnetalarge`` port, which is how its published weights are evaluated).
    """

    bn_eps: float = 1e-3
    bn_momentum: float = 0.0003  # PyTorch's convention: 1 - TF's decay (0.9997)
    pool_pad: str = "tf"

    def __post_init__(self) -> None:
        if self.pool_pad not in ("tf", "timm"):
            raise ValueError(f"pool_pad must be 'tf' or 'timm', got {self.pool_pad!r}")

    def bn(self, channels: int) -> nn.BatchNorm2d:
        return nn.BatchNorm2d(channels, eps=self.bn_eps, momentum=self.bn_momentum)


def same_pad_amounts(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TF SAME padding (before, after) along one axis: the extra pixel goes after."""
    if torch.jit.is_tracing():
        # A traced size is a tensor: use its value, so an exported graph (ONNX, TorchScript,
        # Detectron2's TracingAdapter) keeps the static SAME padding of the traced input size.
        size = int(size)
    total = max((math.ceil(size / stride) - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def _compute_pad_plan(
    h: int, w: int, kernel: tuple[int, int], stride: tuple[int, int], dilation: tuple[int, int]
) -> tuple[tuple[int, int], tuple[int, int, int, int] | None]:
    """SAME padding for one input size, computed once per (size, op geometry).

    Returns ``(conv_padding, extra_pad)``: symmetric amounts for the op itself and, when SAME is
    asymmetric, the ``F.pad`` amounts ``(left, right, top, bottom)`` instead (padding ``(0, 0)``).
    Every stride-2 op of a network asks this for every forward; the arithmetic runs once.
    """
    ph = same_pad_amounts(h, kernel[0], stride[0], dilation[0])
    pw = same_pad_amounts(w, kernel[1], stride[1], dilation[1])
    if ph[0] == ph[1] and pw[0] == pw[1]:
        return (ph[0], pw[0]), None
    return (0, 0), (pw[0], pw[1], ph[0], ph[1])


def script_unused(fn: Callable) -> Callable:
    """``torch.jit.unused`` for a function of a module with postponed annotations (``from
    __future__ import annotations``): TorchScript reads an unused function's signature from its
    annotations, which must then be types, not strings."""
    fn.__annotations__ = typing.get_type_hints(fn)
    return torch.jit.unused(fn)


_pad_plan = script_unused(functools.lru_cache(maxsize=4096)(_compute_pad_plan))


class SameConv2d(nn.Conv2d):
    """``nn.Conv2d`` with TF SAME padding; built without bias (every conv here is followed by BN;
    :func:`nasnet_det.fuse.fuse_for_inference` gives it one when it folds that BN in).

    Symmetric padding is passed to the convolution itself; only the asymmetric stride-2 case
    pays for an explicit pad. The amounts are looked up per input size (:func:`_pad_plan`).

    A strided 1x1 convolution is computed as a subsample then a stride-1 1x1 convolution. For a
    1x1 kernel SAME needs no padding, so ``x[:, :, ::s, ::s]`` picks exactly the pixels the
    strided kernel reads: the result is the same and costs less. It also keeps every strided 1x1
    convolution away from oneDNN, whose 1x1 weight-gradient kernel (``jit_1x1``,
    ``backward_weights``) writes past its scratch buffer for a strided channels_last input with
    few channels (fewer than 16 on AVX-512, 8 on AVX2) and corrupts the heap (oneDNN 3.12, the
    one torch 2.14 ships; the process dies later with SIGSEGV or ``double free``).
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        dilation: int = 1,
        groups: int = 1,
    ) -> None:
        super().__init__(
            c_in, c_out, kernel_size, stride, 0, dilation=dilation, groups=groups, bias=False
        )
        kh, kw = self.kernel_size
        sh, sw = self.stride
        # Static padding when SAME is symmetric for every input size (stride 1, odd kernel).
        self._static = (
            sh == 1
            and sw == 1
            and (dilation * (kh - 1)) % 2 == 0
            and (dilation * (kw - 1)) % 2 == 0
        )
        if self._static:
            self.padding = (dilation * (kh - 1) // 2, dilation * (kw - 1) // 2)
        self._subsample = (kh, kw) == (1, 1) and (sh, sw) != (1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._static:
            return self._conv_forward(x, self.weight, self.bias)  # nn.Conv2d.forward
        if self._subsample:
            sh, sw = self.stride
            return F.conv2d(x[:, :, ::sh, ::sw], self.weight, self.bias, 1, 0, 1, self.groups)
        x, padding = same_pad_input(x, self.kernel_size, self.stride, self.dilation)
        return F.conv2d(x, self.weight, self.bias, self.stride, padding, self.dilation, self.groups)


def same_pad_input(
    x: torch.Tensor, kernel: tuple[int, int], stride: tuple[int, int], dilation: tuple[int, int]
) -> tuple[torch.Tensor, tuple[int, int]]:
    """``(x, conv padding)`` for a SAME convolution: ``x`` explicitly padded when SAME is
    asymmetric. Its arithmetic depends on the input size, so ``torch.fx`` records it as one call
    (:func:`torch.fx.wrap`) and the traced graph keeps SAME padding for every input size."""
    # The cache (every stride-2 op asks for every forward) is plain Python: TorchScript and
    # torch.compile compute the plan instead.
    h, w = x.shape[-2], x.shape[-1]
    if torch.jit.is_scripting() or torch.compiler.is_compiling():
        padding, extra = _compute_pad_plan(h, w, kernel, stride, dilation)
    else:
        padding, extra = _pad_plan(h, w, kernel, stride, dilation)
    if extra is not None:
        x = F.pad(x, extra)
    return x, padding


torch.fx.wrap("same_pad_input")


def _compute_pool_plan(h: int, w: int, k: int, s: int, count_pad: bool) -> tuple[str, list[int]]:
    """How :class:`SamePool2d` pads an ``h x w`` input, computed once per size: ``("sym" |
    "ceil", (ph, pw))`` pooling padding, or ``("pad" | "count_pad", (l, r, t, b))`` for F.pad."""
    ph, pw = same_pad_amounts(h, k, s), same_pad_amounts(w, k, s)
    full = [pw[0], pw[1], ph[0], ph[1]]
    if count_pad:
        return "count_pad", full
    sym_h, sym_w = ph[0] == ph[1], pw[0] == pw[1]
    if sym_h == sym_w:
        return ("sym" if sym_h else "ceil"), [ph[0], pw[0]]
    return "pad", full


_pool_plan = script_unused(functools.lru_cache(maxsize=4096)(_compute_pool_plan))


class SamePool2d(nn.Module):
    """Max or average pooling with TF SAME padding (padding never counted in TF mode).

    The asymmetric stride-2 case (one more padded pixel after than before) is computed without a
    padded copy: ``ceil_mode`` lets the last window run one pixel past the edge, and PyTorch
    averages over the pixels inside the input only, exactly as TensorFlow does.
    """

    def __init__(self, kind: str, kernel_size: int, stride: int, count_pad: bool = False) -> None:
        super().__init__()
        if kind not in ("max", "avg"):
            raise ValueError(f"pool kind must be 'max' or 'avg', got {kind!r}")
        self.kind, self.k, self.stride, self.count_pad = kind, kernel_size, stride, count_pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return same_pool(x, self.kind, self.k, self.stride, self.kind == "avg" and self.count_pad)

    def extra_repr(self) -> str:
        return (
            f"{self.kind}, kernel_size={self.k}, stride={self.stride}, count_pad={self.count_pad}"
        )


def same_pool(x: torch.Tensor, kind: str, k: int, s: int, count_pad: bool) -> torch.Tensor:
    """:class:`SamePool2d`'s computation (``torch.fx`` records it as one call: its padding
    depends on the input size)."""
    h, w = x.shape[-2], x.shape[-1]
    if torch.jit.is_scripting() or torch.compiler.is_compiling():
        how, pad = _compute_pool_plan(h, w, k, s, count_pad)
    else:  # cached: see same_pad_input
        how, pad = _pool_plan(h, w, k, s, count_pad)
    if how == "count_pad":
        # timm's port: explicit zero padding, every window divided by k * k.
        return F.avg_pool2d(F.pad(x, pad), k, s, 0, False, True)
    if how != "pad":
        # Both symmetric: plain padding. Both one pixel heavier after: ceil_mode.
        ceil = how == "ceil"
        if kind == "max":
            return F.max_pool2d(x, k, s, pad, ceil_mode=ceil)
        return F.avg_pool2d(x, k, s, pad, ceil_mode=ceil, count_include_pad=False)
    # One axis symmetric, the other not (non-square inputs): pad explicitly.
    if kind == "max":
        return F.max_pool2d(F.pad(x, pad, value=float("-inf")), k, s, 0)
    ones = F.pad(torch.ones_like(x[:1, :1]), pad)
    return F.avg_pool2d(F.pad(x, pad), k, s, 0) / F.avg_pool2d(ones, k, s, 0)


torch.fx.wrap("same_pool")


#: ``bn_folds`` on a module lists ``(conv names, bn name)`` pairs where the BN directly follows
#: the conv(s) (several convs: the BN's channels split over their concatenated outputs in order);
#: :func:`nasnet_det.fuse.fuse_for_inference` folds them.
BnFolds = tuple[tuple[tuple[str, ...], str], ...]


class ReLUConvBN(nn.Module):
    """ReLU, convolution (SAME), batch norm: TF-slim's building block."""

    starts_with_relu = True
    bn_folds: BnFolds = ((("conv",), "bn"),)

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int],
        cfg: OpConfig,
        dilation: int = 1,
    ) -> None:
        super().__init__()
        self.conv = SameConv2d(c_in, c_out, kernel_size, stride, dilation)
        self.bn = cfg.bn(c_out)

    def forward_relu(self, xr: torch.Tensor) -> torch.Tensor:
        """Forward on an input that is already ReLU'd (cells share one ReLU per state)."""
        return self.bn(self.conv(xr))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_relu(F.relu(x))


class SeparableConv(nn.Module):
    """Depthwise then pointwise convolution (TF ``separable_conv2d`` with depth multiplier 1)."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, stride: int) -> None:
        super().__init__()
        self.depthwise = SameConv2d(c_in, c_in, kernel_size, stride, groups=c_in)
        self.pointwise = nn.Conv2d(c_in, c_out, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


class SepConvBranch(nn.Module):
    """NASNet's separable op: (ReLU, separable conv, BN) twice; only the first one strides."""

    starts_with_relu = True
    bn_folds: BnFolds = ((("sep1.pointwise",), "bn1"), (("sep2.pointwise",), "bn2"))

    def __init__(self, c_in: int, c_out: int, kernel_size: int, stride: int, cfg: OpConfig):
        super().__init__()
        self.sep1 = SeparableConv(c_in, c_out, kernel_size, stride)
        self.bn1 = cfg.bn(c_out)
        self.sep2 = SeparableConv(c_out, c_out, kernel_size, 1)
        self.bn2 = cfg.bn(c_out)

    def forward_relu(self, xr: torch.Tensor) -> torch.Tensor:
        # In place: batch norm's backward needs its input, not its output.
        x = F.relu(self.bn1(self.sep1(xr)), inplace=True)
        return self.bn2(self.sep2(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_relu(F.relu(x))


class ConvPair(nn.Module):
    """ReLU, 1xk conv, kx1 conv, BN (the paper's "1x7 then 7x1" family)."""

    starts_with_relu = True
    bn_folds: BnFolds = ((("conv2",), "bn"),)

    def __init__(self, c_in: int, c_out: int, k: int, stride: int, cfg: OpConfig) -> None:
        super().__init__()
        self.conv1 = SameConv2d(c_in, c_out, (1, k), (1, stride))
        self.conv2 = SameConv2d(c_out, c_out, (k, 1), (stride, 1))
        self.bn = cfg.bn(c_out)

    def forward_relu(self, xr: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv2(self.conv1(xr)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_relu(F.relu(x))


class PoolBranch(nn.Module):
    """Pooling (SAME); a 1x1 conv and BN follow when channels must change, as in TF-slim."""

    def __init__(self, kind: str, k: int, c_in: int, c_out: int, stride: int, cfg: OpConfig):
        super().__init__()
        count_pad = kind == "avg" and stride > 1 and cfg.pool_pad == "timm"
        self.pool = SamePool2d(kind, k, stride, count_pad=count_pad)
        if c_in != c_out:
            self.conv = nn.Conv2d(c_in, c_out, 1, bias=False)
            self.bn = cfg.bn(c_out)
            self.bn_folds: BnFolds = ((("conv",), "bn"),)
        else:
            self.conv = None
            self.bn_folds = ()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(x)
        if self.conv is not None:
            x = self.bn(self.conv(x))
        return x


def _identity(c_in: int, c_out: int, stride: int, cfg: OpConfig) -> nn.Module:
    # TF-slim: a strided or channel-changing identity becomes ReLU, 1x1 conv, BN.
    if stride > 1 or c_in != c_out:
        return ReLUConvBN(c_in, c_out, 1, stride, cfg)
    return nn.Identity()


OpFactory = Callable[[int, int, int, OpConfig], nn.Module]

OPS: dict[str, OpFactory] = {
    "identity": _identity,
    "conv_1x3_3x1": lambda ci, co, s, cfg: ConvPair(ci, co, 3, s, cfg),
    "conv_1x7_7x1": lambda ci, co, s, cfg: ConvPair(ci, co, 7, s, cfg),
    "dil_conv_3x3": lambda ci, co, s, cfg: ReLUConvBN(ci, co, 3, s, cfg, dilation=2),
    "avg_pool_3x3": lambda ci, co, s, cfg: PoolBranch("avg", 3, ci, co, s, cfg),
    "max_pool_3x3": lambda ci, co, s, cfg: PoolBranch("max", 3, ci, co, s, cfg),
    "max_pool_5x5": lambda ci, co, s, cfg: PoolBranch("max", 5, ci, co, s, cfg),
    "max_pool_7x7": lambda ci, co, s, cfg: PoolBranch("max", 7, ci, co, s, cfg),
    "conv_1x1": lambda ci, co, s, cfg: ReLUConvBN(ci, co, 1, s, cfg),
    "conv_3x3": lambda ci, co, s, cfg: ReLUConvBN(ci, co, 3, s, cfg),
    "sep_conv_3x3": lambda ci, co, s, cfg: SepConvBranch(ci, co, 3, s, cfg),
    "sep_conv_5x5": lambda ci, co, s, cfg: SepConvBranch(ci, co, 5, s, cfg),
    "sep_conv_7x7": lambda ci, co, s, cfg: SepConvBranch(ci, co, 7, s, cfg),
}

#: The 13 op names of the paper's search space, in a fixed order (the search encodes by index).
OP_NAMES: tuple[str, ...] = tuple(OPS)


def build_op(name: str, c_in: int, c_out: int, stride: int, cfg: OpConfig) -> nn.Module:
    """Instantiate op ``name``; unknown names raise a ``ValueError`` listing the known ones."""
    try:
        factory = OPS[name]
    except KeyError:
        raise ValueError(f"unknown op {name!r}; expected one of {', '.join(OP_NAMES)}") from None
    return factory(c_in, c_out, stride, cfg)


class FactorizedReduction(nn.Module):
    """TF-slim ``factorized_reduction``: halve the resolution without losing half the pixels.

    Two 1x1 convolutions see the even and the odd pixel grid (the second shifted by one, with a
    zero row and column added after the end) and are concatenated, then batch-normed. With
    ``stride=1`` it is a plain 1x1 convolution and BN. ``relu`` applies TF's leading ReLU.
    """

    def __init__(self, c_in: int, c_out: int, cfg: OpConfig, stride: int = 2, relu: bool = True):
        super().__init__()
        # starts_with_relu: TF's leading ReLU; cells read it to hand over a rectified input.
        self.stride, self.starts_with_relu = stride, relu
        if stride == 1:
            self.conv = nn.Conv2d(c_in, c_out, 1, bias=False)
            self.bn_folds: BnFolds = ((("conv",), "bn"),)
        else:
            self.path1 = nn.Conv2d(c_in, c_out // 2, 1, bias=False)
            self.path2 = nn.Conv2d(c_in, c_out - c_out // 2, 1, bias=False)
            self.bn_folds = ((("path1", "path2"), "bn"),)
        self.bn = cfg.bn(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_relu(F.relu(x) if self.starts_with_relu else x)

    def forward_relu(self, x: torch.Tensor) -> torch.Tensor:
        """Forward after the leading ReLU: on an input already ReLU'd (or, with ``relu=False``,
        the raw input)."""
        if hasattr(self, "conv"):  # stride 1 (hasattr: TorchScript compiles only this branch)
            return self.bn(self.conv(x))
        p1 = self.path1(x[:, :, ::2, ::2])
        # Shifted grid: pixels 1, 3, 5, ...; for an odd size TF's zero padding after the end
        # supplies the last one.
        p2 = self.path2(pad_to_match(x[:, :, 1::2, 1::2], p1))
        return self.bn(torch.cat([p1, p2], 1))


def pad_to_match(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``x`` zero-padded after its end to ``like``'s height and width (one ``torch.fx`` call)."""
    h, w = like.shape[-2], like.shape[-1]
    if x.shape[-2] != h or x.shape[-1] != w:
        x = F.pad(x, (0, w - x.shape[-1], 0, h - x.shape[-2]))
    return x


torch.fx.wrap("pad_to_match")
