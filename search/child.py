"""Training one child network and turning every outcome into a result record.

:func:`run_child` is what a worker executes (a local process or a Ray task): it trains with the
task's training function and returns a plain dict whatever happens, so a child that raises,
diverges to NaN or runs out of memory is recorded as ``failed`` and the search goes on.

Training functions are looked up by name in :data:`TRAIN_FNS` (``execution.train_fn`` in a
config). A config can only name a registered function, never import one: users add theirs in
Python with :func:`register_train_fn`, as they add strategies.
"""

from __future__ import annotations

import math
import time
import traceback
from collections.abc import Callable
from typing import Any

import torch
from nasnet_det.search.data import cached_dataset

from nasnet_det.cli import first_line
from nasnet_det.engine import DropPathHook, SimpleTrainer, cosine, top1_accuracy
from nasnet_det.genotypes import Genotype

__all__ = [
    "CHILD_DEFAULTS",
    "TRAIN_FNS",
    "get_train_fn",
    "register_train_fn",
    "run_child",
    "train_child",
]

#: The proxy training of a child (the ``child:`` config section). Paper: N = 2, 20 epochs,
#: cosine schedule; the remaining values follow TF-slim's CIFAR recipe.
CHILD_DEFAULTS: dict[str, Any] = {
    "num_cells": 2,  # N, normal cells per stack
    "num_conv_filters": 32,
    "stem_multiplier": 3.0,
    "drop_path_keep_prob": 1.0,  # off for 20-epoch proxies
    "epochs": 20,
    "batch_size": 32,
    "eval_batch_size": 500,
    "lr": 0.025,
    "momentum": 0.9,
    "weight_decay": 5e-4,
    "schedule": "cosine",  # or "constant"
    "grad_clip": 5.0,
    "deterministic": True,
    "device": "cpu",  # "cuda", or "auto" (cuda when available); workers share the GPU
}

#: ``train_fn(genotype, child_cfg, data_cfg, seed) -> {"reward": float, "params": int}``
TrainFn = Callable[[Genotype, dict, dict, int], dict]

#: Child-training functions a config may name (``execution.train_fn``).
TRAIN_FNS: dict[str, TrainFn] = {}


def register_train_fn(name: str) -> Callable[[TrainFn], TrainFn]:
    """Decorator: make a function available to configs as ``execution.train_fn: <name>``.

    With local worker processes or Ray the function travels to the workers by reference, so it
    must be defined at the top level of an importable module (not a lambda or a closure).
    """

    def register(fn: TrainFn) -> TrainFn:
        TRAIN_FNS[name] = fn
        return fn

    return register


def get_train_fn(name: str) -> TrainFn:
    """The registered training function ``name``; an unknown name is one ``ValueError``."""
    if not isinstance(name, str) or name not in TRAIN_FNS:
        raise ValueError(
            f"execution.train_fn {name!r} is not a registered training function; expected one "
            f"of {', '.join(sorted(TRAIN_FNS))} (add one in Python with register_train_fn)"
        )
    return TRAIN_FNS[name]


@register_train_fn("train_child")
def train_child(genotype: Genotype, child_cfg: dict, data_cfg: dict, seed: int) -> dict:
    """Train the CIFAR-style NASNet of ``genotype`` on the proxy; ``{"reward", "params"}``.

    Reward: top-1 accuracy on the held-out split. Raises ``FloatingPointError`` when the loss
    turns NaN or infinite.
    """
    from nasnet_det.nasnet import build_nasnet

    cfg = {**CHILD_DEFAULTS, **child_cfg}
    (xt, yt), (xv, yv) = cached_dataset(data_cfg)
    device = cfg["device"]
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(seed)
    model = build_nasnet(
        "nasnet_a_cifar",
        genotype=genotype,
        num_cells=cfg["num_cells"],
        num_conv_filters=cfg["num_conv_filters"],
        stem_multiplier=cfg["stem_multiplier"],
        num_classes=int(max(int(yt.max()), int(yv.max())) + 1),
        use_aux_head=False,
        drop_path_keep_prob=cfg["drop_path_keep_prob"],
        image_size=int(xt.shape[-1]),
    )
    params = sum(p.numel() for p in model.parameters())
    model.to(device)
    xt, yt, xv, yv = (t.to(device) for t in (xt, yt, xv, yv))
    opt = torch.optim.SGD(
        model.parameters(),
        lr=cfg["lr"],
        momentum=cfg["momentum"],
        weight_decay=cfg["weight_decay"],
        nesterov=True,
    )
    bs = cfg["batch_size"]
    steps_per_epoch = max(1, math.ceil(len(xt) / bs))
    total = cfg["epochs"] * steps_per_epoch
    gen = torch.Generator().manual_seed(seed)
    perm: list[torch.Tensor] = []

    def batches(step: int) -> tuple[torch.Tensor, torch.Tensor]:
        epoch_step = step % steps_per_epoch
        if epoch_step == 0:  # a new order every epoch
            perm[:] = [torch.randperm(len(xt), generator=gen).to(device)]
        idx = perm[0][epoch_step * bs : (epoch_step + 1) * bs]
        return xt[idx], yt[idx]

    trainer = SimpleTrainer(
        model, opt, batches,
        lr=cosine(cfg["lr"]) if cfg["schedule"] == "cosine" else None,
        clip_grad_norm=cfg["grad_clip"] or 0.0,
    )  # fmt: skip
    trainer.register_hooks([DropPathHook(total)])
    model.train()
    trainer.train(0, total)
    model.eval()
    return {"reward": top1_accuracy(model, xv, yv, cfg["eval_batch_size"]), "params": params}


def worker_init(num_threads: int = 1) -> None:
    """Initializer of local worker processes: one torch thread, and exit when the search
    process dies (after ``kill -9`` a pool's workers would otherwise live on as orphans)."""
    import os
    import threading

    torch.set_num_threads(num_threads)
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def run_child(task: dict, train_fn: TrainFn | None = None) -> dict:
    """Train one child described by ``task`` and return its result record (never raises).

    ``task``: ``child_id``, ``genotype`` (dict), ``child`` and ``data`` config, ``seed``,
    ``train_fn`` (a callable, or the name of a registered one), ``num_threads``. ``train_fn``
    given here takes precedence over the task's.
    """
    # Restored on return: in-process execution must not change the caller's torch settings.
    saved = (
        torch.get_num_threads(),
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    torch.set_num_threads(task.get("num_threads", 1))
    if task.get("child", {}).get("deterministic", True):
        torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        return _run_child(task, train_fn)
    finally:
        torch.set_num_threads(saved[0])
        torch.use_deterministic_algorithms(saved[1], warn_only=saved[2])


def _run_child(task: dict, train_fn: TrainFn | None) -> dict:
    start = time.time()
    rec: dict[str, Any] = {
        "child_id": task["child_id"],
        "reward": None,
        "params": None,
        "status": "ok",
        "error": "",
    }
    try:
        fn = train_fn or task.get("train_fn") or "train_child"
        fn = fn if callable(fn) else get_train_fn(fn)
        out = fn(Genotype.from_dict(task["genotype"]), task["child"], task["data"], task["seed"])
        reward = float(out["reward"])
        if not math.isfinite(reward):
            raise FloatingPointError(f"reward is {reward}")
        rec["reward"] = reward
        rec["params"] = out.get("params")
    except torch.OutOfMemoryError as e:
        rec.update(status="failed", error=f"out of memory: {first_line(e)}")
    except Exception as e:  # noqa: BLE001 - a child's failure must not stop the search
        last = traceback.extract_tb(e.__traceback__)[-1:]
        where = f" ({last[0].filename.rsplit('/', 1)[-1]}:{last[0].lineno})" if last else ""
        rec.update(status="failed", error=f"{type(e).__name__}: {e}{where}"[:500])
    rec["seconds"] = time.time() - start
    return rec
