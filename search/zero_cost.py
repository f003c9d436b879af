"""Zero-cost scores of an untrained network, from one minibatch at initialisation.

The scores the zero-cost proxy literature ranks architectures with before training them
(Abdelfattah et al., "Zero-Cost Proxies for Lightweight NAS", ICLR 2021; Mellor et al., "Neural
Architecture Search without Training", ICML 2021), as their reference code computes them, over
the weights of every ``Conv2d`` and ``Linear`` layer:

* :func:`synflow`: ``sum |theta * dR/dtheta|`` with every parameter and buffer replaced by its
  absolute value, in double precision, batch norm in eval mode (a fresh BN is then the identity
  up to ``eps``: the reference builds the net without BN), on an all-ones input, ``R`` the sum
  of the outputs (Tanaka et al. 2020). Data-free.
* :func:`naswot`: ``log |det K|``, ``K[i, j]`` = the number of ReLU units on which images ``i``
  and ``j`` of the minibatch fall on the same side of zero, summed over every ReLU. The cells
  call ``F.relu`` (no modules to hook), so the activation patterns are read with a
  :class:`~torch.overrides.TorchFunctionMode` that sees every ``relu`` call.
* :func:`grad_norm`: ``sum ||dL/dW||_2`` per layer, ``L`` the cross-entropy of the minibatch.
* :func:`param_count`: the baseline every cheap score has to beat.

Each function works on a copy: the caller's network (weights, BN statistics, gradients) is left
untouched.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

__all__ = ["grad_norm", "naswot", "param_count", "synflow", "zero_cost_scores"]

_RELUS = {F.relu, F.relu_, torch.relu, torch.relu_, torch.Tensor.relu, torch.Tensor.relu_}


def _weighted(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def param_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def synflow(model: nn.Module, input_shape: tuple[int, ...]) -> float:
    """SynFlow of ``model`` for inputs of shape ``input_shape`` (without the batch axis)."""
    net = copy.deepcopy(model).double().eval()
    with torch.no_grad():
        for t in net.state_dict().values():
            if t.is_floating_point():
                t.abs_()
    net.zero_grad(set_to_none=True)
    net(torch.ones((1, *input_shape), dtype=torch.float64)).sum().backward()
    with torch.no_grad():
        # A layer the output does not depend on has no gradient: it adds nothing.
        layers = [m for m in _weighted(net) if m.weight.grad is not None]
        return float(sum((m.weight * m.weight.grad).abs().sum() for m in layers))


class _ReluCodes(TorchFunctionMode):
    """Records, for every ``relu`` call, which inputs are positive: ``[batch, units]``."""

    def __init__(self, batch: int) -> None:
        super().__init__()
        self.batch = batch
        self.codes: list[torch.Tensor] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in _RELUS:
            self.codes.append((args[0].detach().reshape(self.batch, -1) > 0).double())
        return func(*args, **(kwargs or {}))


def naswot(model: nn.Module, x: torch.Tensor) -> float:
    """NASWOT's ``log |det K|`` on the minibatch ``x`` (``-inf`` when two images share every
    activation pattern)."""
    net = copy.deepcopy(model).train()
    mode = _ReluCodes(len(x))
    with torch.no_grad(), mode:
        net(x)
    if not mode.codes:
        raise ValueError("naswot: the network calls no relu")
    k = sum(c @ c.T + (1 - c) @ (1 - c).T for c in mode.codes)
    return float(torch.linalg.slogdet(k)[1])


def grad_norm(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Sum over layers of the L2 norm of the cross-entropy's gradient on ``(x, y)``."""
    net = copy.deepcopy(model).train()
    net.zero_grad(set_to_none=True)
    F.cross_entropy(net(x), y).backward()
    norms = [m.weight.grad.norm() for m in _weighted(net) if m.weight.grad is not None]
    return float(sum(norms))


def zero_cost_scores(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    """Every score of this module on one minibatch ``(x, y)``."""
    return {
        "synflow": synflow(model, tuple(x.shape[1:])),
        "naswot": naswot(model, x),
        "grad_norm": grad_norm(model, x, y),
        "params": float(param_count(model)),
    }
