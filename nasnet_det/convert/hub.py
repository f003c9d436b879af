"""Published ImageNet weights by name, and the one weight-loading entry.

A *weight name* is ``nasnet://SOURCE/ARCH`` (the short form ``SOURCE:ARCH`` is accepted too),
for every ``ARCH`` that a source module declares in its ``PRETRAINED`` dict (as timm declares
pretrained configs): ``nasnet://timm/nasnetalarge``, ``nasnet://pretrainedmodels/nasnetamobile``,
``nasnet://pretrainedmodels/nasnetalarge``. The published file is downloaded once into the cache
folder (``$NASNET_DET_CACHE``, else ``~/.cache/nasnet_det``), under ``hub/<SOURCE>/<file name>``,
checked against its recorded checksum, converted to our layout and cached again as
``converted/<SOURCE>_<ARCH>.pth``. A file placed there by hand is used as is (after the check).

Checksums. None of the three publishers records a full sha256; each file name carries the first
hex digits of its sha256 (the ``torch.hub`` naming convention, ``name-<sha256 prefix>.pth``).
That prefix is checked on every use; on the first successful check the full sha256 is pinned in
``<file>.sha256`` beside it, and every later use must match the pin (trust on first use).
A declaration with a full ``sha256`` is checked against it instead.

:func:`load_weights` is the one entry that reads weights for a classification network: a name,
a converted checkpoint (``tools/convert_weights.py`` output), one of our training checkpoints,
or a source's raw file. It returns :class:`Weights`: the state dict in our layout, its source
and that source's evaluation preprocessing, always filled in: a published file's from its
:class:`~nasnet_det.convert.PretrainedCfg`, our own network's from its checkpoint over the
pretraining recipe (:func:`nasnet_det.convert.ours.preprocessing`).
"""

from __future__ import annotations

import hashlib
import http.client
import importlib
import json
import os
import re
import socket
import urllib.error
from pathlib import Path
from typing import Any

import torch

from nasnet_det.convert import (
    SOURCES,
    Converted,
    PretrainedCfg,
    convert_state_dict,
    load_state_dict_file,
    ours,
    save_checkpoint,
    unwrap_state_dict,
)
from nasnet_det.io import atomic_write_text
from nasnet_det.limits import download_timeout

__all__ = [
    "CACHE_ENV",
    "SCHEME",
    "PretrainedCfg",
    "Weights",
    "cache_dir",
    "declared",
    "fetch",
    "load_weights",
    "parse_weight_name",
    "read_meta",
    "resolve_raw_input",
    "resolve_weights_path",
]

#: Prefix of a weight name (as Detectron2's ``detectron2://``).
SCHEME = "nasnet://"
#: Environment variable naming the cache folder.
CACHE_ENV = "NASNET_DET_CACHE"

_SHORT = re.compile(r"^([a-z_]+):([a-z0-9_]+)$")


#: What :func:`load_weights` returns: a :class:`~nasnet_det.convert.Converted` whose
#: ``preprocessing`` is filled in.
Weights = Converted


def cache_dir() -> Path:
    """``$NASNET_DET_CACHE``, else ``~/.cache/nasnet_det``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "nasnet_det")


def _declarations(source: str) -> dict[str, PretrainedCfg]:
    if source not in SOURCES:
        return {}
    return getattr(importlib.import_module(SOURCES[source]), "PRETRAINED", {})


def parse_weight_name(name: str) -> tuple[str, str] | None:
    """``(source, arch)`` for a weight name, ``None`` for anything else (a path).

    A name with a known scheme but an unknown source or architecture raises ``ValueError``
    listing the names there are.
    """
    if not isinstance(name, str):
        return None
    if name.startswith(SCHEME):
        source, _, arch = name[len(SCHEME) :].partition("/")
    else:
        m = _SHORT.match(name)
        if not m or m.group(1) not in SOURCES or os.path.exists(name):
            return None
        source, arch = m.groups()
    if arch not in _declarations(source):
        known = ", ".join(f"{SCHEME}{s}/{a}" for s in SOURCES for a in _declarations(s))
        raise ValueError(f"unknown weight name {name!r}; published weights: {known}")
    return source, arch


def declared(source: str, arch: str) -> PretrainedCfg:
    """The declaration of ``source``'s published ``arch``."""
    decl = _declarations(source).get(arch)
    if decl is None:
        raise ValueError(f"{source!r} declares no published weights for {arch!r}")
    return decl


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _verify(path: Path, decl: PretrainedCfg) -> None:
    """Check ``path`` against the declared sha256 (or prefix and pin); pin on first success."""
    digest = _sha256(path)
    pin = path.with_name(path.name + ".sha256")
    expected = decl.sha256 or (pin.read_text().strip() if pin.is_file() else None)
    if expected and digest != expected:
        why = "recorded" if decl.sha256 else f"pinned in {pin} on first download"
        raise ValueError(
            f"{path} has sha256 {digest}, expected {expected} ({why}); delete it to download "
            f"{decl.url} again"
        )
    if not digest.startswith(decl.sha256_prefix):
        raise ValueError(
            f"{path} has sha256 {digest[:12]}..., but the published name {decl.file_name!r} "
            f"says it starts with {decl.sha256_prefix}; the file is damaged or another file: "
            f"delete it to download {decl.url} again"
        )
    if not decl.sha256 and not pin.is_file():
        atomic_write_text(pin, digest + "\n")


def fetch(source: str, arch: str, *, progress: bool = True) -> Path:
    """The published file of ``source``'s ``arch`` in the cache, downloaded once and checked.

    Without network (an unreachable host, an HTTP error, no answer within
    ``$NASNET_DET_DOWNLOAD_TIMEOUT_S``), the error names the weight name, the URL and where to
    place the file by hand.
    """
    decl = declared(source, arch)
    path = cache_dir() / "hub" / source / decl.file_name
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        name = f"{SCHEME}{source}/{arch}"
        _download(name, decl, partial, path, progress)
        try:
            _verify(partial, decl)
        except ValueError:
            partial.unlink(missing_ok=True)
            partial.with_name(partial.name + ".sha256").unlink(missing_ok=True)
            raise ValueError(
                f"download of weights {name} from {decl.url} does not match its checksum "
                f"(sha256 prefix {decl.sha256_prefix}); nothing was kept in {path.parent}"
            ) from None
        pin = partial.with_name(partial.name + ".sha256")
        if pin.is_file():
            os.replace(pin, path.with_name(path.name + ".sha256"))
        os.replace(partial, path)
    else:
        _verify(path, decl)
    return path


def _download(name: str, decl: PretrainedCfg, partial: Path, path: Path, progress: bool) -> None:
    """``decl.url`` into ``partial`` (torch.hub's downloader removes its own temporary file on
    failure); a failure is one ``ValueError`` saying how to use the weights offline."""
    # torch.hub's urlopen has no timeout: a server that accepts and never answers would hang
    # the tool, so the socket default is set for the download's duration.
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(download_timeout())
    try:
        torch.hub.download_url_to_file(decl.url, str(partial), progress=progress)
    except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as e:
        partial.unlink(missing_ok=True)
        raise ValueError(
            f"could not download weights {name} from {decl.url} ({_reason(e)}); to use them "
            f"offline, download {decl.file_name} elsewhere and place it at {path} (the cache is "
            f"${CACHE_ENV}, else ~/.cache/nasnet_det)"
        ) from None
    finally:
        socket.setdefaulttimeout(old)


def _reason(e: BaseException) -> str:
    """Why a download failed, in a few words (``HTTP 404 Not Found``, ``timed out``, ...)."""
    if isinstance(e, urllib.error.HTTPError):
        return f"HTTP {e.code} {e.reason}"
    reason = getattr(e, "reason", None) if isinstance(e, urllib.error.URLError) else None
    if isinstance(reason, TimeoutError) or isinstance(e, TimeoutError):
        return f"no answer within {download_timeout():g} s (raise NASNET_DET_DOWNLOAD_TIMEOUT_S)"
    reason = reason or e
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    return str(reason).strip().splitlines()[0] if str(reason).strip() else type(reason).__name__


def _from_name(source: str, arch: str, progress: bool) -> Weights:
    raw = fetch(source, arch, progress=progress)
    obj = load_state_dict_file(raw)  # weights_only=True: published files hold tensors only
    return _with_preprocessing(convert_state_dict(source, arch, unwrap_state_dict(obj)))


def _with_preprocessing(conv: Converted, recorded: dict[str, Any] | None = None) -> Weights:
    """``conv`` with its evaluation preprocessing: what the file records (``recorded``) over
    the source's published declaration, else over our recipe's for the network."""
    source, _, arch = conv.source.partition(":")
    decl = _declarations(source).get(arch)
    base = decl.preprocessing() if decl else ours.preprocessing(conv.preset, conv.overrides)
    conv.preprocessing = {**base, **(conv.preprocessing or {}), **(recorded or {})}
    return conv


def read_meta(path: str | os.PathLike, obj: dict[str, Any]) -> dict[str, Any] | None:
    """The ``meta`` that :func:`~nasnet_det.convert.save_checkpoint` wrote with the weights (a
    ``.pth`` entry, or ``.safetensors`` metadata), ``None`` when there is none."""
    if isinstance(obj.get("meta"), dict):
        return obj["meta"]
    if Path(path).suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), "pt") as f:
            raw = (f.metadata() or {}).get("meta")
        meta = json.loads(raw) if raw else None
        return meta if isinstance(meta, dict) else None
    return None


def _from_file(
    path: str, source: str | None, arch: str | None, allow_pickle: bool, ema: bool, what: str
) -> Weights:
    obj = load_state_dict_file(path, allow_pickle=allow_pickle, what=what)
    if ours.is_training_checkpoint(obj) and source in (None, "nasnet_det"):
        return _with_preprocessing(ours.convert_checkpoint(obj, ema=ema, arch=arch))
    meta = read_meta(path, obj)
    if meta and "preset" in meta and source is None:
        # Written by tools/convert_weights.py: our layout plus the builder call and its source.
        conv = Converted(unwrap_state_dict(obj), meta["preset"], dict(meta.get("overrides", {})),
                         str(meta.get("source") or f"file:{path}"))  # fmt: skip
        return _with_preprocessing(conv, meta.get("preprocessing"))
    if source is not None and arch is None:
        raise ValueError(f"{what} {path!r} is a bare state dict: --arch is required for --source "
                         f"{source}")  # fmt: skip
    if source is None:
        raise ValueError(
            f"{what} {path!r} is a bare state dict: pass --source and --arch (source=/arch= in "
            "Python) to say which network it holds, or convert it with tools/convert_weights.py"
        )
    return _with_preprocessing(convert_state_dict(source, arch, unwrap_state_dict(obj)))


def load_weights(
    spec: str | os.PathLike,
    *,
    source: str | None = None,
    arch: str | None = None,
    allow_pickle: bool = False,
    ema: bool = True,
    progress: bool = True,
    what: str = "checkpoint",
) -> Weights:
    """Weights for :func:`nasnet_det.build_nasnet` from a name or a file (the one entry).

    ``spec``: a weight name (downloaded, checked, converted); a converted checkpoint; one of
    our training checkpoints (EMA weights unless ``ema=False``); or a raw file of ``source``'s
    ``arch``. Errors are one ``ValueError`` naming the file (as ``what``) or name.
    """
    spec = os.fspath(spec)
    parsed = parse_weight_name(spec)
    if parsed is not None:
        if (source, arch) != (None, None) and (source, arch) != parsed:
            raise ValueError(f"{spec!r} is {parsed[0]}'s {parsed[1]}, not {source}'s {arch}")
        return _from_name(*parsed, progress=progress)
    return _from_file(spec, source, arch, allow_pickle, ema, what)


def resolve_weights_path(spec: str, *, progress: bool = True) -> str:
    """A local file for ``spec``: a weight name becomes its converted checkpoint in the cache
    (``{"model": ..., "meta": ...}``, built once); anything else is returned unchanged."""
    parsed = parse_weight_name(spec)
    if parsed is None:
        return spec
    source, arch = parsed
    out = cache_dir() / "converted" / f"{source}_{arch}.pth"
    raw = fetch(source, arch, progress=progress)
    # The converted file remembers which raw file it came from (its checked sha256).
    digest = declared(source, arch).sha256 or raw.with_name(raw.name + ".sha256").read_text()
    stamp = out.with_name(out.name + ".from")
    if not out.is_file() or not stamp.is_file() or stamp.read_text() != digest:
        weights = _from_name(source, arch, progress=progress)
        save_checkpoint(out, weights.state_dict, weights.meta())
        atomic_write_text(stamp, digest)
    return str(out)


def resolve_raw_input(spec: str, source: str, arch: str | None) -> tuple[str, str]:
    """``(local raw file, arch)`` for ``tools/convert_weights.py --input``: a weight name is
    fetched (it must belong to ``--source``; ``--arch`` defaults to the name's); a path stays."""
    parsed = parse_weight_name(spec)
    if parsed is None:
        return spec, arch
    if parsed[0] != source or (arch is not None and arch != parsed[1]):
        raise ValueError(
            f"--input {spec} is {parsed[0]}'s {parsed[1]}, but --source {source} --arch {arch}"
        )
    return str(fetch(*parsed)), parsed[1]
