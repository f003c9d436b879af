"""Top-1 accuracy on tensors in memory (search children, the weight-sharing net, the demo's
crop classifier)."""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["top1_accuracy"]


@torch.no_grad()
def top1_accuracy(
    forward: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int,
) -> float:
    """Fraction of ``x`` whose highest logit of ``forward(batch)`` is the label in ``y``, in
    batches of ``batch_size``. The caller sets train/eval mode."""
    correct = 0
    for i in range(0, len(x), batch_size):
        correct += int((forward(x[i : i + batch_size]).argmax(1) == y[i : i + batch_size]).sum())
    return correct / len(x)
