"""The paper's optimiser pieces: TensorFlow's RMSProp and TF-slim's parameter groups. The
staircase exponential schedule with a linear warm-up and TF-slim's weight EMA live in the engine
(:mod:`nasnet_det.engine`) and are importable here too."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from nasnet_det.engine.ema import ModelEma
from nasnet_det.engine.schedules import ExponentialWarmup

__all__ = ["RMSPropTF", "ExponentialWarmup", "ModelEma", "param_groups"]


class RMSPropTF(torch.optim.Optimizer):
    """``tf.train.RMSPropOptimizer`` (TF-slim's ``rmsprop``), which PyTorch's RMSprop is not:

    ``ms = decay * ms + (1 - decay) * g**2`` with ``ms`` starting at 1, then
    ``mom = momentum * mom + lr * g / sqrt(ms + eps)`` (epsilon inside the root, learning rate
    inside the momentum) and ``p -= mom``. ``weight_decay`` adds ``wd * p`` to the gradient
    (TF's L2 regulariser ``wd / 2 * ||p||**2``).
    """

    def __init__(
        self,
        params,
        lr: float,
        decay: float = 0.9,
        momentum: float = 0.9,
        eps: float = 1.0,
        weight_decay: float = 0.0,
    ) -> None:
        if lr <= 0 or not 0 <= decay < 1 or not 0 <= momentum < 1 or eps <= 0:
            raise ValueError(
                f"RMSPropTF: need lr > 0, 0 <= decay < 1, 0 <= momentum < 1, eps > 0; got "
                f"lr={lr}, decay={decay}, momentum={momentum}, eps={eps}"
            )
        defaults = dict(lr=lr, decay=decay, momentum=momentum, eps=eps, weight_decay=weight_decay)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                if group["weight_decay"]:
                    g = g.add(p, alpha=group["weight_decay"])
                state = self.state[p]
                if not state:
                    state["square_avg"] = torch.ones_like(p)
                    state["momentum_buffer"] = torch.zeros_like(p)
                ms, mom = state["square_avg"], state["momentum_buffer"]
                ms.mul_(group["decay"]).addcmul_(g, g, value=1 - group["decay"])
                mom.mul_(group["momentum"]).addcdiv_(
                    g, ms.add(group["eps"]).sqrt_(), value=group["lr"]
                )
                p.sub_(mom)
        return loss


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on conv and linear weights only (TF-slim regularises ``weights``, not BN
    parameters or biases)."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.dim() > 1 else no_decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
