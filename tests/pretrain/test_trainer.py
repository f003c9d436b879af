"""TrainerBase/HookBase: the order hooks run in, and after_train on failure."""

from __future__ import annotations

import pytest

from nasnet_det.pretrain.trainer import HookBase, TrainerBase


class _Recorder(HookBase):
    def __init__(self, name: str, calls: list) -> None:
        self.name, self.calls = name, calls

    def before_train(self) -> None:
        self.calls.append((self.name, "before_train", self.trainer.iter))

    def after_train(self) -> None:
        self.calls.append((self.name, "after_train", self.trainer.iter))

    def before_step(self) -> None:
        self.calls.append((self.name, "before_step", self.trainer.iter))

    def after_step(self) -> None:
        self.calls.append((self.name, "after_step", self.trainer.iter))


class _Counting(TrainerBase):
    def __init__(self, fail_at: int | None = None) -> None:
        super().__init__()
        self.steps: list[int] = []
        self.fail_at = fail_at

    def run_step(self) -> None:
        if self.iter == self.fail_at:
            raise FloatingPointError("loss is nan")
        self.steps.append(self.iter)


def test_hooks_run_in_order_around_each_step_from_start_iter():
    calls: list = []
    t = _Counting()
    t.register_hooks([_Recorder("a", calls), None, _Recorder("b", calls)])
    t.train(start_iter=2, max_iter=4)
    assert t.steps == [2, 3] and t.iter == 4 and len(t.hooks) == 2
    assert calls == [
        ("a", "before_train", 2), ("b", "before_train", 2),
        ("a", "before_step", 2), ("b", "before_step", 2),
        ("a", "after_step", 2), ("b", "after_step", 2),
        ("a", "before_step", 3), ("b", "before_step", 3),
        ("a", "after_step", 3), ("b", "after_step", 3),
        ("a", "after_train", 4), ("b", "after_train", 4),
    ]  # fmt: skip


def test_after_train_runs_when_a_step_fails_and_nothing_when_done():
    calls: list = []
    t = _Counting(fail_at=1)
    t.register_hooks([_Recorder("a", calls)])
    with pytest.raises(FloatingPointError):
        t.train(0, 5)
    assert t.steps == [0] and calls[-1] == ("a", "after_train", 1)
    calls.clear()
    t = _Counting()
    t.register_hooks([_Recorder("a", calls)])
    t.train(3, 3)  # a finished run resumed: no step
    assert t.steps == [] and [c[1] for c in calls] == ["before_train", "after_train"]
