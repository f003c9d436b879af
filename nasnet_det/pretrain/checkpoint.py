"""Training checkpoints: everything needed to continue bit-exactly.

Checkpoints are written with :func:`nasnet_det.io.atomic_save_torch` (a kill leaves the previous
file whole). A checkpoint is a plain dict loadable with ``torch.load(..., weights_only=True)``:
``model``, ``ema`` (state dicts), ``optimizer``, ``scheduler``, ``scaler``, ``epoch``,
``batch`` (next batch of that epoch), ``step``, ``rng``, ``config`` (the whole training config),
``arch`` (``{"preset", "overrides"}``, the genotype inlined as a dict), ``metrics`` and
``history`` (every epoch's metrics, the lines of ``metrics.jsonl``).
"""

from __future__ import annotations

import os
import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nasnet_det.cli import first_line
from nasnet_det.limits import check_input_file

__all__ = ["load_training_checkpoint", "rng_state", "set_rng_state"]

REQUIRED = ("model", "ema", "optimizer", "scheduler", "epoch", "batch", "step", "rng", "config")


def rng_state() -> dict[str, Any]:
    """Every random generator the training loop draws from (as weights-only-loadable values)."""
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].copy()), *np_state[2:]],
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    v = state["python"]
    random.setstate((v[0], tuple(v[1]), v[2]))
    n = state["numpy"]
    np.random.set_state((n[0], n[1].numpy(), *n[2:]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def load_training_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint written by :func:`nasnet_det.pretrain.train` (weights only)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no training checkpoint at {str(path)!r} to resume from")
    check_input_file(path, "checkpoint", "training checkpoint")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise ValueError(
            f"training checkpoint {str(path)!r} could not be read: it holds pickled objects "
            f"beyond tensors and plain containers, refused ({first_line(e)})"
        ) from None
    except Exception as e:
        raise ValueError(
            f"training checkpoint {str(path)!r} could not be read: {first_line(e)}"
        ) from None
    missing = [k for k in REQUIRED if not isinstance(ckpt, dict) or k not in ckpt]
    if missing:
        raise ValueError(
            f"{str(path)!r} is not a nasnet_det training checkpoint (missing {', '.join(missing)})"
        )
    return ckpt
