"""``torch.compile`` as an opt-in that falls back to eager where the compiler cannot run.

Inductor needs a working C++ compiler on CPU and Triton on GPU; Dynamo does not run on every
Python. :func:`compile_module` compiles a module's ``forward`` in place (parameter names and the
module's type stay as they are, so checkpoints and Detectron2 keep working) and, if compiling or
running the compiled code fails with a compiler error, warns once and runs eager from then on.
Errors that eager raises too (a bad input) are raised as they are.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

__all__ = ["compile_module", "compile_detector", "compile_status"]


class _FallbackForward:
    """``module.forward`` replaced by a compiled version that can fall back to the eager one."""

    def __init__(self, module: nn.Module, backend: str | Callable, mode: str | None) -> None:
        self.eager = module.forward
        self.name = type(module).__name__
        self.compiled = torch.compile(self.eager, backend=backend, mode=mode, dynamic=False)
        self.failed: str | None = None
        self.calls = 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.failed is not None:
            return self.eager(*args, **kwargs)
        try:
            out = self.compiled(*args, **kwargs)
        except Exception as e:  # noqa: BLE001 - decided below whether it is the compiler's
            if not self._compiler_error(e):
                raise
            out = self.eager(*args, **kwargs)  # raises here if the input itself is bad
            lines = str(e).strip().splitlines() or [""]
            self.failed = f"{type(e).__name__}: {lines[0][:200]}"
            warnings.warn(
                f"torch.compile of {self.name} failed ({self.failed}); running eager",
                RuntimeWarning,
                stacklevel=2,
            )
            return out
        self.calls += 1
        return out

    def _compiler_error(self, e: Exception) -> bool:
        from torch._dynamo import exc

        if isinstance(e, exc.BackendCompilerFailed | exc.InternalTorchDynamoError):
            return True
        # Before the first success anything may be the compiler's (Dynamo unsupported here, a
        # missing toolchain); eager then decides: it re-raises a real error of the input.
        return self.calls == 0


def compile_module(
    module: nn.Module, *, backend: str | Callable = "inductor", mode: str | None = None
) -> nn.Module:
    """Compile ``module.forward`` in place with a clean fallback to eager; returns ``module``.

    ``backend``/``mode`` are ``torch.compile``'s. Shapes are compiled static (a detector's
    second stage sees one crop shape; a new input size recompiles).
    """
    if isinstance(module.forward, _FallbackForward):
        return module
    module.forward = _FallbackForward(module, backend, mode)
    return module


def compile_detector(
    model: nn.Module, *, backend: str | Callable = "inductor", mode: str | None = None
) -> nn.Module:
    """Compile the tensor-only parts of a Detectron2 detector: the backbone and, for
    ``NASNetROIHeads``, the second stage (proposal bookkeeping stays eager). Returns ``model``."""
    compile_module(model.backbone, backend=backend, mode=mode)
    second = getattr(model.roi_heads, "second_stage", None)
    if second is not None:
        compile_module(second, backend=backend, mode=mode)
    return model


def compile_status(module: nn.Module) -> str:
    """``"eager"`` (never compiled), ``"compiled"``, or ``"fallback: <reason>"``."""
    fwd = module.__dict__.get("forward")
    if not isinstance(fwd, _FallbackForward):
        return "eager"
    return "compiled" if fwd.failed is None else f"fallback: {fwd.failed}"
