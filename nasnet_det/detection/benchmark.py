"""Training, inference and data-loading speed of a config, as Detectron2's
``tools/benchmark.py`` measures it; behind our ``tools/benchmark.py``.

Counts, not wall-clock budgets: each task runs ``warmup`` iterations that are not timed (first-call
allocation, oneDNN kernel selection, the data loader filling its workers), then exactly
``iterations`` timed ones. ``train`` and ``eval`` draw their inputs from batches read before the
clock starts, so they time the model and not the loader (as Detectron2's does); ``data`` times
the training loader alone. Each iteration is timed on its own, so the report gives the median as
well as the mean, which one slow iteration (another process on the machine) can move.
"""

from __future__ import annotations

import itertools
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from detectron2.utils.events import EventStorage

__all__ = ["TASKS", "BenchmarkResult", "benchmark", "time_iterations"]

TASKS = ("train", "eval", "data")


@dataclass
class BenchmarkResult:
    """Seconds per timed iteration and what one iteration holds (images)."""

    task: str
    warmup: int
    iterations: int
    images_per_iteration: int
    seconds: list
    threads: int

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.seconds)

    def summary(self) -> str:
        s = self.seconds
        return (
            f"{self.task}: {self.iterations} iterations timed after {self.warmup} warm-up, "
            f"{self.images_per_iteration} images each: median {self.median:.4f} s/iter "
            f"(mean {self.mean:.4f}, min {min(s):.4f}, max {max(s):.4f}), "
            f"{1 / self.median:.2f} iter/s, {self.images_per_iteration / self.median:.1f} "
            f"images/s; torch threads {self.threads}"
        )

    def to_json(self) -> dict:
        d = asdict(self)
        d.update(median=self.median, mean=self.mean)
        return d


def time_iterations(step: Callable[[], None], warmup: int, iterations: int) -> list[float]:
    """Call ``step`` ``warmup`` times untimed, then ``iterations`` times, each timed."""
    for _ in range(warmup):
        step()
    seconds = []
    for _ in range(iterations):
        t0 = time.perf_counter()
        step()
        seconds.append(time.perf_counter() - t0)
    return seconds


def _check_counts(warmup: int, iterations: int) -> None:
    if not (isinstance(iterations, int) and iterations >= 1):
        raise ValueError(f"iterations must be an integer >= 1, got {iterations!r}")
    if not (isinstance(warmup, int) and warmup >= 0):
        raise ValueError(f"warm-up iterations must be an integer >= 0, got {warmup!r}")


def _cached_batches(loader, n: int) -> list:
    """The first ``n`` batches (at most 20 distinct ones, then repeated), read up front."""
    return list(itertools.islice(loader, min(n, 20)))


def _train(cfg, warmup: int, iterations: int) -> tuple[list[float], int]:
    from detectron2.engine import SimpleTrainer

    from nasnet_det.detection import training
    from nasnet_det.detection.engine import Trainer

    model = Trainer.build_model(cfg)
    optimizer = Trainer.build_optimizer(cfg, model)
    batches = _cached_batches(Trainer.build_train_loader(cfg), warmup + iterations)
    trainer = training.autocast_trainer(
        SimpleTrainer(model, itertools.cycle(batches), optimizer), cfg
    )
    model.train()
    with EventStorage(0) as storage:
        trainer.storage = storage

        def step() -> None:
            trainer.run_step()
            storage.iter += 1
            trainer.iter = storage.iter

        return time_iterations(step, warmup, iterations), len(batches[0])


def _eval(cfg, warmup: int, iterations: int) -> tuple[list[float], int]:
    from nasnet_det.detection.checkpoint import NASNetCheckpointer
    from nasnet_det.detection.engine import Trainer
    from nasnet_det.detection.fast import inference_model

    if not cfg.DATASETS.TEST:
        raise ValueError("--task eval needs DATASETS.TEST")
    model = Trainer.build_model(cfg)
    if cfg.MODEL.WEIGHTS:
        NASNetCheckpointer(model, cfg=cfg).load(cfg.MODEL.WEIGHTS)
    model = inference_model(model.eval(), cfg)
    inputs = _cached_batches(Trainer.build_test_loader(cfg, cfg.DATASETS.TEST[0]), 1_000_000)
    cycle = itertools.cycle(inputs[: warmup + iterations])

    def step() -> None:
        with torch.no_grad():
            model(next(cycle))

    return time_iterations(step, warmup, iterations), len(inputs[0])


def _data(cfg, warmup: int, iterations: int) -> tuple[list[float], int]:
    from nasnet_det.detection.engine import Trainer

    loader = iter(Trainer.build_train_loader(cfg))
    sizes = []

    def step() -> None:
        sizes.append(len(next(loader)))

    return time_iterations(step, warmup, iterations), sizes[-1]


_TASKS = {"train": _train, "eval": _eval, "data": _data}


def benchmark(cfg, task: str, *, iterations: int = 20, warmup: int = 5) -> BenchmarkResult:
    """Time ``task`` (``train``: forward, backward and optimizer step on cached batches;
    ``eval``: inference on cached test images, one per iteration; ``data``: the training
    loader) for ``iterations`` after ``warmup`` untimed ones."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    _check_counts(warmup, iterations)
    seconds, per_iter = _TASKS[task](cfg, warmup, iterations)
    return BenchmarkResult(task, warmup, iterations, per_iter, seconds, torch.get_num_threads())
