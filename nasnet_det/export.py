"""Export a classification network to ONNX or TorchScript, and run the exported file.

Both formats are traced at one input size: the SAME padding of every stride-2 op is baked in
for that size (:func:`nasnet_det.ops.same_pad_amounts`), so the exported graph expects images
of exactly ``image_size`` (the batch size may vary). ONNX uses the TorchScript-based exporter
(``dynamo=False``; the dynamo exporter would need ``onnxscript``) at opset :data:`OPSET`.
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from nasnet_det.io import atomic_call

__all__ = [
    "FORMATS",
    "OPSET",
    "export_classifier",
    "load_exported",
    "run_exported",
    "save_torchscript",
    "write_through_python",
]

#: ``--format`` values.
FORMATS = ("onnx", "torchscript")
#: ONNX opset (16: ``GridSample``/``RoiAlign`` with half-pixel alignment for the detector).
OPSET = 17


def save_torchscript(module: torch.jit.ScriptModule, path: str) -> None:
    """Write a TorchScript module to ``path`` through Python's file writes (see
    :func:`write_through_python`): TorchScript's C++ writer turns a write error (a full disk)
    into ``std::terminate``, which aborts the process and leaves its file."""
    write_through_python(path, lambda buffer: torch.jit.save(module, buffer))


def write_through_python(path: str, serialise: Callable[[io.BytesIO], None]) -> None:
    """``serialise`` into memory, then write the bytes to ``path`` with Python, whose failed
    write is an ``OSError`` the atomic writer cleans up after (TorchScript's C++ writer aborts
    the process instead). Both export formats take this one path."""
    buffer = io.BytesIO()
    serialise(buffer)
    with open(path, "wb") as f:
        f.write(buffer.getbuffer())


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")


def export_classifier(
    model: nn.Module, path: str | os.PathLike, fmt: str, image_size: int | tuple[int, int]
) -> Path:
    """Write ``model`` (eval mode, logits out) traced at ``image_size`` to ``path`` atomically.

    The ONNX graph has input ``images`` ``[N, 3, H, W]`` and output ``logits`` ``[N, classes]``
    with a dynamic batch axis.
    """
    _check_format(fmt)
    h, w = (image_size, image_size) if isinstance(image_size, int) else image_size
    model = model.eval()
    x = torch.zeros(1, 3, h, w)

    def write(tmp: str) -> None:
        with torch.no_grad(), warnings.catch_warnings():
            # TracerWarnings say the traced sizes become constants: exactly what we want.
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            if fmt == "torchscript":
                save_torchscript(torch.jit.trace(model, x), tmp)
                return
            write_through_python(tmp, lambda buffer: torch.onnx.export(
                model, (x,), buffer, dynamo=False, opset_version=OPSET,
                input_names=["images"], output_names=["logits"],
                dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}},
            ))  # fmt: skip

    return atomic_call(path, write, what=f"{fmt} file")


def load_exported(path: str | os.PathLike):
    """An ONNX Runtime CPU session (``.onnx``) or a TorchScript module (anything else)."""
    path = str(path)
    if path.endswith(".onnx"):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = torch.get_num_threads()
        return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    return torch.jit.load(path, map_location="cpu")


def run_exported(exported, *inputs: torch.Tensor) -> list[torch.Tensor]:
    """Run a session or TorchScript module from :func:`load_exported`; outputs as tensors."""
    if isinstance(exported, torch.jit.ScriptModule):
        # The profiling executor would spend its first runs optimising (a minute here for a
        # single call); one call of a fixed graph gains nothing from it.
        with torch.no_grad(), torch.jit.optimized_execution(False):
            out = exported(*inputs)
        return list(out) if isinstance(out, (tuple, list)) else [out]
    names = [i.name for i in exported.get_inputs()]
    feed = {n: t.detach().cpu().numpy() for n, t in zip(names, inputs)}
    return [torch.from_numpy(o) for o in exported.run(None, feed)]


def max_abs_difference(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    """Largest elementwise difference over paired outputs (shapes must agree)."""
    if len(a) != len(b) or any(x.shape != y.shape for x, y in zip(a, b)):
        shapes = [tuple(x.shape) for x in a], [tuple(y.shape) for y in b]
        raise ValueError(f"exported outputs have shapes {shapes[1]}, PyTorch's {shapes[0]}")
    diffs = [(x.double() - y.double()).abs().max().item() for x, y in zip(a, b) if x.numel()]
    return max(diffs, default=0.0)


# The loader's advice names convert_weights.py's flags; export_model.py has none of them, so
# it points to that tool instead.
_ADVICE = (
    ("pass --source and --arch (source=/arch= in Python) to say which network it holds, or "
     "convert it with tools/convert_weights.py",
     "say which network it holds (convert it first: tools/convert_weights.py --source SOURCE "
     "--arch ARCH)"),
    ("Use --allow-pickle only if you trust the file",
     "If you trust the file, convert it first with tools/convert_weights.py --allow-pickle"),
)  # fmt: skip


def _export_advice(message: str) -> str:
    for theirs, ours in _ADVICE:
        message = message.replace(theirs, ours)
    return message


def export_weights(
    spec: str,
    path: str | os.PathLike,
    fmt: str,
    image_size: int | None = None,
    *,
    fast: bool = True,
    **load_kw,
) -> dict:
    """Export the classifier that :func:`nasnet_det.convert.hub.load_weights` reads from
    ``spec`` (a weight name or file), traced at ``image_size`` (default: the source's
    preprocessing, else the preset's), with its batch norms folded unless ``fast`` is False.
    Returns what happened, parity with PyTorch included."""
    from nasnet_det.convert.hub import load_weights

    _check_format(fmt)
    try:
        weights = load_weights(spec, **load_kw)
    except ValueError as e:
        raise ValueError(_export_advice(str(e))) from None
    model = weights.build_model().eval()
    model.load_state_dict(weights.state_dict)
    if fast:
        from nasnet_det.fuse import fast_inference

        fast_inference(model, channels_last=False)  # a traced graph has no memory format
    size = image_size or (weights.preprocessing or {}).get("image_size") or model.config.image_size
    out = export_classifier(model, path, fmt, int(size))
    x = torch.randn(2, 3, int(size), int(size), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = [model(x)]
    diff = max_abs_difference(ref, run_exported(load_exported(out), x))
    return {"path": str(out), "source": weights.source, "image_size": int(size),
            "max_abs_diff": diff}  # fmt: skip
