"""Import published NASNet weights into :func:`nasnet_det.build_nasnet` models.

Each source (a reference port, or our own checkpoints) lives in its own module exposing
``ARCHS`` (the architecture names it knows), ``PRETRAINED`` (its published files, one
:class:`PretrainedCfg` each: where the file lives and the preprocessing it expects, declared once)
and ``convert(state_dict, arch) -> Converted``. This module imports none of them, so the sources
and :mod:`nasnet_det.convert.hub` (which reads weights by name or file) form no import circle.
Checkpoint files are read without unpickling arbitrary objects (``weights_only=True``) unless the
caller opts in, and written atomically as ``.pth`` (Detectron2's ``{"model": ...}`` layout) or
``.safetensors``.
"""

from __future__ import annotations

import importlib
import json
import os
import pickle
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from nasnet_det.cli import first_line
from nasnet_det.limits import check_input_file

__all__ = [
    "Converted",
    "INCEPTION_MEAN",
    "INCEPTION_STD",
    "PretrainedCfg",
    "SOURCES",
    "check_weights_file",
    "convert_state_dict",
    "load_state_dict_file",
    "save_checkpoint",
    "check_against_model",
    "rename_keys",
    "unwrap_state_dict",
]

#: source name -> module implementing it.
SOURCES: dict[str, str] = {
    "timm": "nasnet_det.convert.timm",
    "pretrainedmodels": "nasnet_det.convert.pretrainedmodels",
    "nasnet_det": "nasnet_det.convert.ours",
}


#: TF-slim's Inception preprocessing (RGB in [0, 1] mapped to [-1, 1]): every NASNet source's.
INCEPTION_MEAN = (0.5, 0.5, 0.5)
INCEPTION_STD = (0.5, 0.5, 0.5)


@dataclass(frozen=True)
class PretrainedCfg:
    """Where a published checkpoint lives and what it expects (declared once, by its source).

    ``file_name`` defaults to the URL's last part; ``sha256_prefix`` to the hex after its last
    ``-`` (torch.hub's ``name-<sha256 prefix>.pth`` naming). ``sha256`` is the full digest when
    the publisher records one. ``mean``/``std`` apply to RGB scaled to [0, 1]; ``crop_pct`` is
    the centre crop's share of the resized short side at evaluation.
    """

    url: str
    input_size: tuple[int, int, int]
    interpolation: str
    crop_pct: float
    mean: tuple[float, float, float] = INCEPTION_MEAN
    std: tuple[float, float, float] = INCEPTION_STD
    num_classes: int = 1000
    file_name: str = ""
    sha256_prefix: str = ""
    sha256: str | None = None

    def __post_init__(self) -> None:
        name = self.file_name or self.url.rsplit("/", 1)[-1]
        object.__setattr__(self, "file_name", name)
        if not self.sha256_prefix:
            object.__setattr__(self, "sha256_prefix", Path(name).stem.rpartition("-")[2])

    def preprocessing(self) -> dict[str, Any]:
        """The evaluation preprocessing, in the keys our training checkpoints use."""
        return {
            "image_size": self.input_size[-1],
            "crop_pct": self.crop_pct,
            "interpolation": self.interpolation,
            "mean": list(self.mean),
            "std": list(self.std),
        }


@dataclass
class Converted:
    """A state dict in our layout, the builder call that accepts it, its source
    (``"timm:nasnetalarge"``, ``"file:PATH"``, ...) and the evaluation preprocessing that source
    was trained with (``None`` until :func:`nasnet_det.convert.hub.load_weights` fills it in)."""

    state_dict: dict[str, torch.Tensor]
    preset: str
    overrides: dict[str, Any] = field(default_factory=dict)
    source: str = ""
    preprocessing: dict[str, Any] | None = None

    def build_model(self):
        from nasnet_det.nasnet import build_nasnet

        return build_nasnet(self.preset, **self.overrides)

    def meta(self) -> dict[str, Any]:
        meta = {"preset": self.preset, "overrides": self.overrides, "source": self.source}
        if self.preprocessing:
            meta["preprocessing"] = self.preprocessing
        return meta


def _source_module(source: str):
    if source not in SOURCES:
        raise ValueError(f"unknown weight source {source!r}; expected one of {', '.join(SOURCES)}")
    try:
        return importlib.import_module(SOURCES[source])
    except ModuleNotFoundError as e:  # pragma: no cover - depends on what is installed
        raise ValueError(f"weight source {source!r} is not available: {e}") from None


def convert_state_dict(source: str, arch: str, state_dict: dict[str, torch.Tensor]) -> Converted:
    """Map ``state_dict`` of ``source``'s ``arch`` to our layout (errors name the bad keys)."""
    mod = _source_module(source)
    if arch not in mod.ARCHS:
        raise ValueError(
            f"unknown architecture {arch!r} for source {source!r}; expected one of "
            f"{', '.join(mod.ARCHS)}"
        )
    out = mod.convert(state_dict, arch)
    out.source = f"{source}:{arch}"
    return out


def check_weights_file(path: str | os.PathLike, what: str = "checkpoint") -> str:
    """Check a weights file before anything reads it; returns its kind.

    The kind is ``"safetensors"``, ``"zip"`` (a PyTorch file: a zip archive whose members all
    pass their CRC-32 check, so truncated or flipped bytes are found here) or ``"pickle"`` (a
    legacy PyTorch file or Detectron2's ``.pkl``). A folder, a missing or empty file, a damaged
    archive or a file of another kind raises one ``ValueError`` naming ``path``.
    """
    p = check_input_file(path, "checkpoint", what)
    try:
        size = p.stat().st_size
        with open(p, "rb") as f:
            head = f.read(8)
    except OSError as e:
        raise ValueError(f"{what} {str(p)!r} cannot be read: {e.strerror}") from None
    if size == 0:
        raise ValueError(f"{what} {str(p)!r} is empty (0 bytes)")
    if p.suffix == ".safetensors":
        return "safetensors"  # its header carries sizes; safetensors checks them on load
    if head.startswith(b"PK"):
        try:
            with zipfile.ZipFile(p) as z:
                bad = z.testzip()
        except Exception as e:  # BadZipFile, zlib/struct errors, EOF: all mean damage
            raise ValueError(
                f"{what} {str(p)!r} is truncated or damaged: its zip archive cannot be read "
                f"({first_line(e)})"
            ) from None
        if bad is not None:
            raise ValueError(
                f"{what} {str(p)!r} is corrupt: archive member {bad!r} fails its CRC-32 check "
                "(flipped or overwritten bytes)"
            )
        return "zip"
    if head[:1] == b"\x80":
        return "pickle"
    raise ValueError(
        f"{what} {str(p)!r} is not a PyTorch or safetensors weights file "
        f"(starts with {head[:4]!r}, expected a zip archive or a pickle)"
    )


def load_state_dict_file(
    path: str | os.PathLike,
    allow_pickle: bool = False,
    what: str = "checkpoint",
    opt_in: str = "--allow-pickle",
) -> dict[str, Any]:
    """Read a ``.pth``/``.pt``/``.bin`` or ``.safetensors`` file into a dict.

    The file is checked first (:func:`check_weights_file`: CRCs of a PyTorch zip). Pickled
    objects other than tensors and plain containers are refused unless ``allow_pickle`` (only for
    files you trust: unpickling runs code); ``opt_in`` names how the user grants it.
    """
    path = Path(path)
    kind = check_weights_file(path, what)
    if kind == "safetensors":
        from safetensors.torch import load_file

        try:
            return dict(load_file(str(path)))
        except Exception as e:
            raise ValueError(
                f"{what} {str(path)!r} is not a valid safetensors file: {first_line(e)}"
            ) from None
    try:
        with warnings.catch_warnings():
            # A hostile legacy pickle draws torch's "Detected pickle protocol" warning before
            # the refusal below says what matters.
            warnings.filterwarnings("ignore", message=".*pickle protocol.*")
            obj = torch.load(path, map_location="cpu", weights_only=not allow_pickle)
    except pickle.UnpicklingError as e:
        raise ValueError(
            f"{what} {str(path)!r} holds pickled objects beyond tensors and plain containers; "
            f"refusing to unpickle it (that can run code). Use {opt_in} only if you trust the "
            f"file ({first_line(e)})"
        ) from None
    except Exception as e:
        raise ValueError(f"{what} {str(path)!r} could not be read: {first_line(e)}") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{what} {str(path)!r}: expected a dict, got {type(obj).__name__}")
    return obj


def unwrap_state_dict(obj: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Accept a bare state dict or one nested under ``model``/``state_dict``/``model_ema``."""
    for key in ("model", "state_dict"):
        if key in obj and isinstance(obj[key], dict):
            obj = obj[key]
            break
    sd = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not sd:
        raise ValueError("checkpoint holds no tensors (expected a state dict)")
    # DataParallel / DistributedDataParallel prefixes
    if all(k.startswith("module.") for k in sd):
        sd = {k[len("module.") :]: v for k, v in sd.items()}
    return sd


def rename_keys(
    state_dict: dict[str, torch.Tensor], map_key, cell_index: dict[str, int], what: str
) -> dict[str, torch.Tensor]:
    """Rename every key with ``map_key(key, cell_index)``; keys it cannot place (``None``) are
    gathered into one ``ValueError`` asking whether ``what`` is really that checkpoint."""
    out, unknown = {}, []
    for k, v in state_dict.items():
        new = map_key(k, cell_index)
        if new is None:
            unknown.append(k)
        else:
            out[new] = v
    if unknown:
        raise ValueError(
            f"{what} checkpoint has {len(unknown)} key(s) with no counterpart, e.g. "
            f"{', '.join(unknown[:5])}; is it really {what}?"
        )
    return out


def check_against_model(state_dict: dict[str, torch.Tensor], model: torch.nn.Module, what: str):
    """Raise one ``ValueError`` listing missing, unexpected and mis-shaped keys."""
    target = model.state_dict()
    missing = sorted(set(target) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(target))
    shapes = sorted(
        f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(target[k].shape)}"
        for k in set(target) & set(state_dict)
        if state_dict[k].shape != target[k].shape
    )
    if missing or unexpected or shapes:
        parts = []
        for name, items in (("missing", missing), ("unexpected", unexpected), ("shape", shapes)):
            if items:
                more = f" (+{len(items) - 5} more)" if len(items) > 5 else ""
                parts.append(f"{len(items)} {name}: {', '.join(items[:5])}{more}")
        raise ValueError(f"{what} does not match the architecture: " + "; ".join(parts))


def save_checkpoint(
    path: str | os.PathLike, state_dict: dict[str, torch.Tensor], meta: dict[str, Any]
) -> None:
    """Write atomically: ``.safetensors`` (meta as JSON metadata) or ``.pth``
    ``{"model": state_dict, "meta": meta}``, loadable with ``weights_only=True``."""
    from nasnet_det.io import atomic_save_torch, atomic_write_bytes

    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import save

        # Serialised in memory, written by our writer: safetensors' own file writer turns a
        # full disk into a SafetensorError (not an OSError) after creating the file.
        tensors = {k: v.contiguous() for k, v in state_dict.items()}
        data = save(tensors, metadata={"meta": json.dumps(meta)})
        atomic_write_bytes(path, data, "output")
    else:
        atomic_save_torch({"model": state_dict, "meta": meta}, path, "output")
