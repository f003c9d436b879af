"""ZeroLossHook: a total loss of exactly 0 from a run's start stops it; any other loss does not.

The hook reads ``total_loss`` from Detectron2's ``EventStorage`` as Detectron2's own trainer
records it (``SimpleTrainer.write_metrics``); here the storage is filled by hand, step by step.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from detectron2.utils.events import EventStorage

from nasnet_det.detection.hooks import ZeroLossError, ZeroLossHook


def _run(losses: list[float | None], max_iter: int = 10, start_iter: int = 0) -> int:
    """Steps taken before the hook stopped the run (``len(losses)`` if it never did); ``None``
    is a step whose loss was not recorded (another process, a metrics period)."""
    hook = ZeroLossHook(iters=3)
    with EventStorage(start_iter) as storage:
        hook.trainer = SimpleNamespace(storage=storage, start_iter=start_iter, max_iter=max_iter)
        for k, loss in enumerate(losses):
            it = start_iter + k
            hook.trainer.iter = it
            storage.iter = it
            if loss is not None:
                storage.put_scalar("total_loss", loss, cur_iter=it)
            try:
                hook.after_step()
            except ZeroLossError:
                return k + 1
    return len(losses)


def test_three_zero_losses_stop_the_run_at_the_third_step():
    assert _run([0.0] * 6) == 3


def test_a_nonzero_loss_in_the_first_steps_means_the_run_goes_on():
    assert _run([0.0, 0.0, 1e-9, 0.0, 0.0, 0.0, 0.0]) == 7  # later zeros are not "from the start"
    assert _run([2.3, 0.0, 0.0, 0.0, 0.0]) == 5


def test_a_run_shorter_than_the_window_stops_at_its_last_step():
    assert _run([0.0, 0.0], max_iter=2) == 2


def test_steps_without_a_recorded_loss_are_not_counted():
    assert _run([None, 0.0, None, 0.0, None, 0.0, 0.0]) == 6


def test_the_message_names_the_iterations_and_the_keys_to_check():
    hook = ZeroLossHook(iters=2)
    with EventStorage(7) as storage:
        hook.trainer = SimpleNamespace(storage=storage, start_iter=7, max_iter=100)
        for it in (7, 8):
            hook.trainer.iter = storage.iter = it
            storage.put_scalar("total_loss", 0.0, cur_iter=it)
            if it == 7:
                hook.after_step()
        with pytest.raises(ZeroLossError, match=r"exactly 0 at each of iterations 7 to 8: nothing"):
            hook.after_step()
    assert isinstance(ZeroLossError("x"), ValueError)  # tools print it as one line, exit 2
