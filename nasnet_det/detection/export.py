"""Export the NASNet Faster R-CNN: traced through Detectron2's ``TracingAdapter`` (ONNX,
TorchScript) or scripted with ``scripting_with_instances`` (TorchScript).

As Detectron2's ``tools/deploy/export_model.py`` does for its "tracing" method: the adapter
flattens ``model.inference([{"image": ...}], do_postprocess=False)`` into tensors
(``pred_boxes``, ``pred_classes``, ``scores``, in the adapter's schema order), traced on one
sample image. Boxes are in the coordinates of the (resized) input image; the graph is fixed to
that image's size. The ONNX graph's outputs are named ``boxes``, ``classes``, ``scores`` and
``image_size`` (the adapter's order), not the tracer's ``boxes.23`` / ``onnx::Split_339``.

Scripting (Detectron2's ``export_model.py --export-method scripting``) compiles the whole
detector, control flow included: the scripted file takes images of any size and returns, per
image, a dict of ``pred_boxes``, ``scores`` and ``pred_classes`` tensors.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch
from detectron2.export import TracingAdapter, scripting_with_instances
from detectron2.structures import Boxes
from torch import nn

from nasnet_det.export import FORMATS, OPSET, save_torchscript, write_through_python
from nasnet_det.io import atomic_call

__all__ = [
    "METHODS",
    "SCRIPT_FIELDS",
    "ScriptableAdapter",
    "export_detector",
    "script_detector",
    "tracing_adapter",
]

#: ``--method`` values.
METHODS = ("tracing", "scripting")
#: Every ``Instances`` field the detector uses at inference (Detectron2's export_model.py
#: list, boxes only): scripting needs them declared.
SCRIPT_FIELDS = {
    "proposal_boxes": Boxes,
    "objectness_logits": torch.Tensor,
    "pred_boxes": Boxes,
    "scores": torch.Tensor,
    "pred_classes": torch.Tensor,
}


def _inference(model, inputs):
    instances = model.inference(inputs, do_postprocess=False)[0]
    return [{"instances": instances}]


def tracing_adapter(model: torch.nn.Module, image: torch.Tensor) -> TracingAdapter:
    """``TracingAdapter`` over ``model`` (eval mode) for one ``[3, H, W]`` image."""
    return TracingAdapter(model.eval(), [{"image": image}], _inference).eval()


# Instances fields -> ONNX output names.
OUTPUT_NAMES = {"pred_boxes": "boxes", "pred_classes": "classes", "scores": "scores"}


def output_names(adapter: TracingAdapter) -> list[str]:
    """Names of the adapter's flat outputs, in order (it must have run once): each Instances
    field by :data:`OUTPUT_NAMES`, then ``image_size``, which Detectron2's schema appends."""
    from detectron2.export.flatten import InstancesSchema

    def walk(schema):
        if isinstance(schema, InstancesSchema):
            # Fields flatten as one tensor each (boxes as their tensor); the image size last.
            return [OUTPUT_NAMES.get(k, k) for k in schema.keys] + ["image_size"]
        return [n for sub in getattr(schema, "schemas", []) for n in walk(sub)]

    return walk(adapter.outputs_schema)


class ScriptableAdapter(nn.Module):
    """Detectron2's scripting adapter: ``model.inference(inputs, do_postprocess=False)`` with
    each image's ``Instances`` returned as a dict of tensors (boxes as ``[R, 4]``), since a
    scripted ``Instances`` class cannot leave the process that made it (pytorch#46944)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.eval()

    def forward(self, inputs: tuple[dict[str, torch.Tensor]]) -> list[dict[str, torch.Tensor]]:
        instances = self.model.inference(inputs, do_postprocess=False)
        return [i.get_fields() for i in instances]


def script_detector(model: nn.Module) -> torch.jit.ScriptModule:
    """``model`` (eval mode) scripted: called with ``({"image": [3, H, W] tensor},)``, any
    ``H, W``, it returns ``[{"pred_boxes", "scores", "pred_classes"}]``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.script is deprecated
        warnings.simplefilter("ignore", UserWarning)
        return scripting_with_instances(ScriptableAdapter(model.eval()), SCRIPT_FIELDS)


def export_detector(
    model: torch.nn.Module, image: torch.Tensor, path: str | os.PathLike, fmt: str
) -> tuple[Path, TracingAdapter]:
    """Trace ``model`` on ``image`` and write it to ``path`` atomically; returns the path and
    the adapter (``adapter.outputs_schema`` turns flat outputs back into ``Instances``)."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    adapter = tracing_adapter(model, image)
    inputs = adapter.flattened_inputs
    with torch.no_grad():
        flat = adapter(*inputs)  # sets adapter.outputs_schema
    names = output_names(adapter)
    if len(names) != len(flat):  # a schema we do not know: keep the tracer's names
        names = None

    def write(tmp: str) -> None:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.simplefilter("ignore", UserWarning)
            if fmt == "torchscript":
                save_torchscript(torch.jit.trace(adapter, inputs), tmp)
            else:
                write_through_python(tmp, lambda buffer: torch.onnx.export(
                    adapter, inputs, buffer, dynamo=False, opset_version=OPSET,
                    input_names=["image"], output_names=names))  # fmt: skip

    return atomic_call(path, write, what=f"{fmt} file"), adapter


def sample_image(cfg, path: str | None = None) -> torch.Tensor:
    """The ``[3, H, W]`` float image the detector is traced on: ``path`` read and resized as
    ``DefaultPredictor`` does (``INPUT.MIN/MAX_SIZE_TEST``, ``INPUT.FORMAT``), or without a
    path a fixed random square image of ``INPUT.MIN_SIZE_TEST`` pixels."""
    size = int(cfg.INPUT.MIN_SIZE_TEST)
    if path is None:
        g = torch.Generator().manual_seed(0)
        return (torch.rand(3, size, size, generator=g) * 255).round()
    from detectron2.data import transforms as T
    from detectron2.data.detection_utils import read_image

    from nasnet_det.limits import open_image

    open_image(path, "--sample-image").close()  # file size and pixels, before decoding
    try:
        image = read_image(path, format=cfg.INPUT.FORMAT)
    except (OSError, ValueError) as e:
        raise ValueError(f"--sample-image {path!r} cannot be read as an image: {e}") from None
    aug = T.ResizeShortestEdge([size, size], cfg.INPUT.MAX_SIZE_TEST)
    image = aug.get_transform(image).apply_image(image)
    return torch.as_tensor(image.astype("float32").transpose(2, 0, 1))


def check_method(method: str, fmt: str) -> None:
    """``--method`` and ``--format`` together: scripting writes TorchScript only."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if method == "scripting" and fmt != "torchscript":
        raise ValueError(
            f"--method scripting writes TorchScript: use --format torchscript, not {fmt}"
        )


def script_and_check(model: nn.Module, sample: torch.Tensor, path: str | os.PathLike) -> dict:
    """Script ``model``, write it to ``path`` atomically, load the file back, run it on
    ``sample`` and compare its detections with ``model.inference``."""
    from nasnet_det.export import load_exported, max_abs_difference, run_exported

    scripted = script_detector(model)
    out = atomic_call(path, lambda tmp: save_torchscript(scripted, tmp), what="torchscript file")
    with torch.no_grad():
        ref = model.inference([{"image": sample}], do_postprocess=False)[0]
    got = run_exported(load_exported(out), ({"image": sample},))[0]
    fields = ("pred_boxes", "scores", "pred_classes")
    mine = [ref.pred_boxes.tensor, ref.scores, ref.pred_classes]
    return {
        "path": str(out),
        "image_size": list(sample.shape[1:]),
        "detections": len(ref),
        "max_abs_diff": max_abs_difference(mine, [got[f] for f in fields]),
    }


def export_from_config(
    cfg,
    path: str | os.PathLike,
    fmt: str,
    image: str | None = None,
    method: str = "tracing",
    *,
    allow_pickle: bool = False,
) -> dict:
    """Build the detector of ``cfg`` (``MODEL.WEIGHTS`` loaded; a pickle only with
    ``allow_pickle``), export it (traced on :func:`sample_image`, or scripted), run the
    exported file on that image and compare with PyTorch."""
    from detectron2.modeling import build_model

    from nasnet_det.detection.checkpoint import NASNetCheckpointer
    from nasnet_det.detection.fast import inference_model
    from nasnet_det.export import load_exported, max_abs_difference, run_exported

    check_method(method, fmt)
    model = build_model(cfg).eval()
    if cfg.MODEL.WEIGHTS:
        NASNetCheckpointer(model, cfg=cfg, allow_pickle=allow_pickle).load(cfg.MODEL.WEIGHTS)
    # MODEL.NASNET.FAST_INFERENCE: BN folded (an exported graph has no memory format to keep).
    model = inference_model(model, cfg, channels_last=False)
    sample = sample_image(cfg, image)
    if method == "scripting":
        return script_and_check(model, sample, path)
    out, adapter = export_detector(model, sample, path, fmt)
    with torch.no_grad():
        ref = list(adapter(*adapter.flattened_inputs))
    got = run_exported(load_exported(out), *adapter.flattened_inputs)
    return {
        "path": str(out),
        "image_size": list(sample.shape[1:]),
        "detections": int(ref[0].shape[0]),
        "max_abs_diff": max_abs_difference(ref, got),
    }
