"""What one user file may cost, stated once and checked where each file is read.

Every reader of a user's file checks it here before parsing: it must be a regular file (not a
folder, not a device such as ``/dev/zero``) no larger than the limit for its kind, and it is read
with a bounded ``read`` (a file that grows while it is read stops at the limit). Images are
bounded in pixels from their header, before decoding; YAML is bounded in the number of values it
expands to (aliases may repeat a subtree: a 600-byte file can stand for billions of values).

Each limit can be raised for one run with an environment variable (megabytes, megapixels or a
count); the defaults fit COCO train2017 (a 448 MB annotation file) and NASNet-A Large checkpoints
with their optimiser state.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "LIMITS",
    "LimitError",
    "check_input_file",
    "check_yaml_size",
    "download_timeout",
    "limit",
    "open_image",
    "max_image_side",
    "read_input_bytes",
]

_MB = 1 << 20


class LimitError(ValueError):
    """An input over one of the limits (or not a regular file); the message names the file, its
    size, the limit and the environment variable that raises it."""


@dataclass(frozen=True)
class Limit:
    """One limit: its default, the unit its environment variable counts in, and that variable."""

    default: float
    unit: str  # "MB", "megapixels", "values", "pixels" or "seconds"
    env: str

    @property
    def scale(self) -> int:
        return {"MB": _MB, "megapixels": 1_000_000}.get(self.unit, 1)


#: The limits, by kind of input (README "Safety and recovery" lists them).
LIMITS: dict[str, Limit] = {
    "json": Limit(2048, "MB", "NASNET_DET_MAX_JSON_MB"),
    "yaml": Limit(4, "MB", "NASNET_DET_MAX_YAML_MB"),
    "text": Limit(256, "MB", "NASNET_DET_MAX_TEXT_MB"),  # VOC xml and image-set lists
    "image": Limit(256, "MB", "NASNET_DET_MAX_IMAGE_MB"),
    "checkpoint": Limit(16384, "MB", "NASNET_DET_MAX_CHECKPOINT_MB"),
    "pixels": Limit(100, "megapixels", "NASNET_DET_MAX_IMAGE_MEGAPIXELS"),
    "yaml_values": Limit(1_000_000, "values", "NASNET_DET_MAX_YAML_VALUES"),
    # The side of a network's input (export's --image-size, search and pretraining image sizes,
    # INPUT.MIN/MAX_SIZE_*): activation memory grows with its square.
    "image_side": Limit(4096, "pixels", "NASNET_DET_MAX_IMAGE_SIDE"),
    # How long a weight download waits for the server before it gives up (urllib waits forever).
    "download_timeout": Limit(60, "seconds", "NASNET_DET_DOWNLOAD_TIMEOUT_S"),
}


def _value(kind: str) -> float:
    """The limit for ``kind`` in its unit times its scale (the environment variable, if set)."""
    spec = LIMITS[kind]
    raw = os.environ.get(spec.env, "").strip()
    if not raw:
        return spec.default * spec.scale
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not (value > 0 and value < 1e12):  # also refuses nan and inf
        raise LimitError(f"{spec.env}={raw!r} must be a positive number of {spec.unit}")
    return value * spec.scale


def limit(kind: str) -> int:
    """The limit for ``kind`` in bytes, pixels or values (the environment variable, if set)."""
    return int(_value(kind))


def max_image_side() -> int:
    """The largest network input side in pixels (see :data:`LIMITS` ``image_side``)."""
    return limit("image_side")


def download_timeout() -> float:
    """Seconds a download waits for the server (see :data:`LIMITS` ``download_timeout``)."""
    return _value("download_timeout")


def _size_text(n: int) -> str:
    return f"{n / _MB:.1f} MB" if n >= _MB else f"{n} bytes"


def _over(path: str | os.PathLike, size: int, kind: str, what: str) -> LimitError:
    spec = LIMITS[kind]
    return LimitError(
        f"{what} {str(path)!r} is {_size_text(size)}, over the {_size_text(limit(kind))} limit "
        f"for {kind} files (raise it with {spec.env}=<{spec.unit}>)"
    )


_KINDS_OF_FILE = {
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFIFO: "a pipe",
    stat.S_IFSOCK: "a socket",
}


def check_input_file(path: str | os.PathLike, kind: str, what: str = "input file") -> Path:
    """``path`` as a regular file within the size limit for ``kind``; raises ``ValueError``
    (:class:`LimitError` for the limit) naming ``what`` and ``path`` otherwise."""
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise LimitError(f"{what} {str(p)!r} does not exist") from None
    except OSError as e:
        raise LimitError(f"{what} {str(p)!r} cannot be read: {e.strerror or e}") from None
    if stat.S_ISDIR(st.st_mode):
        raise LimitError(f"{what} {str(p)!r} is a folder, expected a file")
    if not stat.S_ISREG(st.st_mode):
        kind_of = _KINDS_OF_FILE.get(stat.S_IFMT(st.st_mode), "not a regular file")
        raise LimitError(f"{what} {str(p)!r} is {kind_of}, expected a regular file")
    if st.st_size > limit(kind):
        raise _over(p, st.st_size, kind, what)
    return p


def read_input_bytes(path: str | os.PathLike, kind: str, what: str = "input file") -> bytes:
    """The bytes of ``path`` after :func:`check_input_file`, read with a bound."""
    p = check_input_file(path, kind, what)
    cap = limit(kind)
    try:
        with open(p, "rb") as f:
            data = _read_at_most(f, cap + 1)
    except OSError as e:
        raise LimitError(f"{what} {str(p)!r} cannot be read: {e.strerror or e}") from None
    except MemoryError:
        size = _size_text(p.stat().st_size)
        raise LimitError(f"{what} {str(p)!r} ({size}) does not fit in memory") from None
    if len(data) > cap:  # grew since stat
        raise _over(p, len(data), kind, what)
    return data


def _read_at_most(f, n: int) -> bytes:
    """Up to ``n`` bytes of ``f``. ``read(n)`` reserves ``n`` bytes before it reads (the limit,
    gigabytes), so the first read asks for the file's size plus one byte; a file that grew
    since is read on in 16 MB pieces up to ``n``."""
    want = min(n, os.fstat(f.fileno()).st_size + 1)
    parts, total = [], 0
    while total < n:
        part = f.read(min(want, n - total))
        if not part:
            break
        parts.append(part)
        total += len(part)
        want = 16 * _MB
    return parts[0] if len(parts) == 1 else b"".join(parts)


def check_pixels(width: int, height: int, path: str | os.PathLike, what: str = "image") -> None:
    """Refuse an image whose header claims more pixels than the limit, before decoding it."""
    cap = limit("pixels")
    if width * height > cap:
        spec = LIMITS["pixels"]
        raise LimitError(
            f"{what} {str(path)!r} is {width}x{height} = {width * height / 1e6:.1f} megapixels, "
            f"over the {cap / 1e6:g} megapixel limit (raise it with {spec.env}=<megapixels>)"
        )


def open_image(path: str | os.PathLike, what: str = "image"):
    """A lazily opened PIL image (header read, pixels not decoded) within the file-size and
    pixel limits. PIL's own bomb check is set to the same limit, so Detectron2's
    ``read_image`` and PIL's decoders never decode more than it either."""
    from PIL import Image, UnidentifiedImageError

    p = check_input_file(path, "image", what)
    cap = limit("pixels")
    # Opening reads the header only; our check below names the size. Other readers (Detectron2's
    # read_image) keep PIL's check at our limit (PIL raises above twice it).
    Image.MAX_IMAGE_PIXELS = None
    try:
        im = Image.open(p)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise ValueError(f"{what} {str(p)!r} is not a readable image: {e}") from None
    finally:
        Image.MAX_IMAGE_PIXELS = cap
    try:
        check_pixels(*im.size, p, what)
    except LimitError:
        im.close()
        raise
    return im


def check_yaml_size(data: Any, path: str | os.PathLike, what: str = "config file") -> None:
    """Refuse YAML whose aliases expand to more values than the limit, or that contains itself.

    ``yaml.safe_load`` shares an aliased subtree instead of copying it, so loading is cheap; the
    copies happen later (config merging deep-copies). The expanded count is computed once per
    shared object."""
    cap = limit("yaml_values")
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def count(obj: Any) -> int:
        if not isinstance(obj, (dict, list)):
            return 1
        key = id(obj)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise LimitError(f"{what} {str(path)!r} contains itself through a YAML alias")
        active.add(key)
        items = [*obj.keys(), *obj.values()] if isinstance(obj, dict) else obj
        total = 1
        for item in items:
            total += count(item)
            if total > cap:
                raise LimitError(
                    f"{what} {str(path)!r} expands to more than {cap} values through YAML "
                    f"aliases (raise the limit with {LIMITS['yaml_values'].env}=<values>)"
                )
        active.discard(key)
        sizes[key] = total
        return total

    try:
        count(data)
    except RecursionError:
        raise LimitError(f"{what} {str(path)!r} is nested too deeply to read") from None
