"""ScheduledDropPath, TF-slim's "v3" variant, as a pure function plus its schedule.

``keep = 1 - t * l * (1 - drop_path_keep_prob)`` where ``l = (cell_index + 1) / total_cells``
grows with depth and ``t = min(1, step / total_training_steps)`` grows with training. Every branch
op except identity is dropped per example (mask ``[N, 1, 1, 1]``) and rescaled by ``1 / keep``.
"""

from __future__ import annotations

import torch

__all__ = ["drop_path", "scheduled_keep_prob", "training_progress"]


def scheduled_keep_prob(
    drop_path_keep_prob: float, cell_index: int, total_cells: int, progress: float
) -> float:
    """Keep probability of cell ``cell_index`` (0-based, stem cells counted) at ``progress``."""
    if not 0.0 < drop_path_keep_prob <= 1.0:
        raise ValueError(f"drop_path_keep_prob must be in (0, 1], got {drop_path_keep_prob}")
    if not 0 <= cell_index < total_cells:
        raise ValueError(f"cell_index {cell_index} out of range for {total_cells} cells")
    layer_ratio = (cell_index + 1) / total_cells
    t = min(1.0, max(0.0, float(progress)))
    return 1.0 - t * layer_ratio * (1.0 - drop_path_keep_prob)


def training_progress(step: int, total_training_steps: int) -> float:
    """``t = min(1, step / total_training_steps)``, the schedule's time axis."""
    if total_training_steps <= 0:
        raise ValueError(f"total_training_steps must be positive, got {total_training_steps}")
    return min(1.0, max(0, step) / total_training_steps)


def drop_path(
    x: torch.Tensor, keep_prob: float, training: bool, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Zero whole examples with probability ``1 - keep_prob``; scale the kept ones by 1/keep.

    Identity at evaluation or when ``keep_prob >= 1``. Never modifies ``x`` in place.
    """
    if not training or keep_prob >= 1.0:
        return x
    shape = [x.shape[0]] + [1] * (x.dim() - 1)
    noise = torch.rand(shape, dtype=x.dtype, device=x.device, generator=generator)
    mask = torch.floor(keep_prob + noise)
    return x * (mask / keep_prob)
