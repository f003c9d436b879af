"""The paper's optimiser pieces: TensorFlow's RMSProp, the staircase exponential schedule with a
linear warm-up, and TF-slim's weight EMA."""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
from torch import nn

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


class ExponentialWarmup:
    """``lr * decay ** floor(epoch / decay_epochs)`` after a linear warm-up from ``warmup_lr``.

    Stepped once per optimiser step; ``epoch`` is fractional (``step / steps_per_epoch``).
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        lr: float,
        steps_per_epoch: int,
        decay: float = 0.97,
        decay_epochs: float = 2.4,
        warmup_epochs: float = 0.0,
        warmup_lr: float = 1e-6,
    ) -> None:
        self.optimizer = optimizer
        self.base_lr, self.steps_per_epoch = lr, steps_per_epoch
        self.decay, self.decay_epochs = decay, decay_epochs
        self.warmup_epochs, self.warmup_lr = warmup_epochs, warmup_lr
        self.step_count = 0
        self._apply()

    def lr_at(self, step: int) -> float:
        epoch = step / self.steps_per_epoch
        if epoch < self.warmup_epochs:
            return self.warmup_lr + (self.base_lr - self.warmup_lr) * epoch / self.warmup_epochs
        return self.base_lr * self.decay ** math.floor(epoch / self.decay_epochs)

    def _apply(self) -> None:
        lr = self.lr_at(self.step_count)
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def step(self) -> None:
        self.step_count += 1
        self._apply()

    def get_last_lr(self) -> float:
        return self.lr_at(self.step_count)

    def state_dict(self) -> dict[str, Any]:
        return {"step_count": self.step_count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step_count = int(state["step_count"])
        self._apply()


class ModelEma:
    """Exponential moving average of every floating-point parameter and buffer (TF-slim averages
    the model variables, batch-norm moving statistics included). TF's ``num_updates`` warm-up:
    the decay used is ``min(decay, (1 + n) / (10 + n))``."""

    def __init__(self, model: nn.Module, decay: float = 0.9999) -> None:
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.decay = decay
        self.num_updates = 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        d = min(self.decay, (1 + self.num_updates) / (10 + self.num_updates))
        self.num_updates += 1
        src = model.state_dict()
        for k, v in self.module.state_dict().items():
            if v.dtype.is_floating_point:
                v.mul_(d).add_(src[k].detach(), alpha=1 - d)
            else:
                v.copy_(src[k])

    def state_dict(self) -> dict[str, Any]:
        return self.module.state_dict()
