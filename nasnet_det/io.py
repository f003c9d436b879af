"""Atomic outputs: every file the library writes appears whole or not at all.

One mechanism for all writers (checkpoints, JSON, plots, genotype files): write to a temporary file
in the destination's folder, flush and fsync it, then ``os.replace`` it over the destination. A kill
at any moment leaves the previous file (or none) and no temporary file from a finished or failed
call. A failure to write (the path is a folder, the folder is read-only, the disk is full) raises
:class:`OutputError`, one line naming the path and the cause.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

__all__ = [
    "OutputError",
    "RunFolder",
    "RunFolderError",
    "atomic_call",
    "atomic_open",
    "atomic_save_torch",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "check_output_dir",
    "check_output_file",
    "describe_os_error",
]


class OutputError(OSError):
    """An output could not be written; ``str(err)`` is one line naming the path and the cause."""


_CAUSES = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EROFS: "read-only file system",
    errno.EISDIR: "it is a folder, not a file",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.ENAMETOOLONG: "the name is too long",
    errno.EFBIG: "file too large (over the file-size limit, see ulimit -f)",
}


def describe_os_error(err: OSError) -> str:
    """A short cause for ``err`` (the strerror, or our wording for common cases)."""
    return _CAUSES.get(err.errno or 0, err.strerror or str(err) or type(err).__name__)


def check_output_file(path: str | os.PathLike, what: str = "output file") -> Path:
    """Refuse, before any work, an output file path that cannot be written.

    The path may not exist yet; its folder is created if missing. Raises :class:`OutputError`
    when the path is a folder, a parent is a file, or the folder is not writable.
    """
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{what} {str(path)!r} is a folder, expected a file path")
    check_output_dir(path.parent if str(path.parent) else Path("."), f"folder of {what}")
    return path


def check_output_dir(path: str | os.PathLike, what: str = "output folder") -> Path:
    """Create ``path`` if needed and check that files can be created in it."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{what} {str(path)!r} is a file, expected a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(
            f"{what} {str(path)!r} cannot be created: {describe_os_error(e)}"
        ) from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise OutputError(f"{what} {str(path)!r} is not writable: permission denied")
    return path


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", what: str = "output") -> Iterator[IO]:
    """Open a temporary file beside ``path`` for writing; on success it replaces ``path``.

    ``mode`` is ``"w"`` (text, UTF-8) or ``"wb"``. On any exception the temporary file is removed,
    ``path`` is left as it was, and an ``OSError`` becomes :class:`OutputError`.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"mode must be 'w' or 'wb', got {mode!r}")
    path = Path(path)
    with _replacing(path, what, f".{path.name}.", ".tmp") as (fd, _):
        with os.fdopen(fd, mode, **({"encoding": "utf-8"} if mode == "w" else {})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())


@contextlib.contextmanager
def _replacing(path: Path, what: str, prefix: str, suffix: str) -> Iterator[tuple[int, str]]:
    """The one temp-file-then-rename mechanism: yields ``(fd, name)`` of a new temporary file in
    ``path``'s folder; when the body returns (having written and synced it), the file replaces
    ``path``. On any exception it is removed and an ``OSError`` becomes :class:`OutputError`."""
    if path.is_dir():
        raise OutputError(f"{what} {str(path)!r} is a folder, expected a file path")
    folder = _folder_of(path, what)
    try:
        fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=folder)
    except OSError as e:
        raise OutputError(f"cannot write {what} {str(path)!r}: {describe_os_error(e)}") from None
    try:
        yield fd, tmp
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as e:
        _remove(tmp)
        if isinstance(e, OutputError):
            raise
        raise OutputError(f"cannot write {what} {str(path)!r}: {describe_os_error(e)}") from None
    except BaseException:
        _remove(tmp)
        raise


def _folder_of(path: Path, what: str) -> Path:
    """The folder ``path`` goes into, created if missing; a file in the way is one line."""
    folder = path.parent if str(path.parent) else Path(".")
    for parent in (folder, *folder.parents):
        if parent.exists():
            if not parent.is_dir():
                raise OutputError(
                    f"cannot write {what} {str(path)!r}: {str(parent)!r} is a file, not a folder"
                )
            break
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot write {what} {str(path)!r}: {describe_os_error(e)}") from None
    return folder


def _remove(tmp: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(tmp)


def atomic_write_bytes(path: str | os.PathLike, data: bytes, what: str = "output") -> Path:
    with atomic_open(path, "wb", what) as f:
        f.write(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str, what: str = "output") -> Path:
    with atomic_open(path, "w", what) as f:
        f.write(text)
    return Path(path)


def atomic_write_json(path: str | os.PathLike, obj: Any, what: str = "output", **kw) -> Path:
    """Strict JSON (``allow_nan=False``; map NaN to ``None`` before calling), indented."""
    text = json.dumps(obj, indent=kw.pop("indent", 2), allow_nan=False, **kw) + "\n"
    return atomic_write_text(path, text, what)


def atomic_save_torch(obj: Any, path: str | os.PathLike, what: str = "checkpoint") -> Path:
    """``torch.save(obj)`` through :func:`atomic_open` (a kill leaves the old file or none)."""
    import torch

    with atomic_open(path, "wb", what) as f:
        writer = _RecordingWriter(f)
        try:
            torch.save(obj, writer)
        except RuntimeError:
            # torch's zip writer reports a failed write (a full disk) as a RuntimeError
            # ("unexpected pos"); the OSError underneath is the cause to name.
            if writer.error is not None:
                raise writer.error from None
            raise
    return Path(path)


class _RecordingWriter:
    """A binary file's ``write``/``flush`` that keeps the first ``OSError`` it raised."""

    def __init__(self, f: IO) -> None:
        self.f, self.error = f, None

    @property
    def name(self):  # the temporary file's, as torch.save would see it on the file itself
        return self.f.name

    def write(self, data) -> int:
        try:
            return self.f.write(data)
        except OSError as e:
            self.error = self.error or e
            raise

    def flush(self) -> None:
        self.f.flush()


def atomic_call(
    path: str | os.PathLike, writer: Callable[[str], None], what: str = "output"
) -> Path:
    """For writers that need a file name (matplotlib ``savefig``, safetensors): ``writer(tmp)``
    writes a temporary file named like ``path`` (same suffix), which then replaces ``path``."""
    path = Path(path)
    with _replacing(path, what, f".{path.stem}.", f".tmp{path.suffix}") as (fd, tmp):
        os.close(fd)
        writer(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
    return path


class RunFolderError(ValueError):
    """An output folder cannot take the run as asked (it holds one, or holds none to resume)."""


class RunFolder:
    """The output folder of a resumable run (pretraining, a search, a transfer study).

    ``files`` are the names the run writes there (files or folders), the only ones that
    ``--overwrite`` removes; ``marker`` is the one whose presence means "a run is here" (default:
    any of ``files``). :meth:`check` writes nothing, so every refusal comes before any output;
    :meth:`create` then makes the folder (and clears the old run when overwriting).
    """

    def __init__(
        self, path: str | os.PathLike, files: tuple[str, ...], what: str, marker: str = ""
    ) -> None:
        self.path, self.files, self.what, self.marker = Path(path), tuple(files), what, marker

    def holds_run(self) -> bool:
        names = (self.marker,) if self.marker else self.files
        return any((self.path / name).exists() for name in names)

    def check(self, resume: bool, overwrite: bool) -> None:
        """Refuse ``resume`` with ``overwrite``, a file in the folder's place, ``resume`` of
        nothing, and starting over a run without ``overwrite``."""
        if resume and overwrite:
            raise RunFolderError("--resume and --overwrite exclude each other")
        if self.path.exists() and not self.path.is_dir():
            raise RunFolderError(f"output folder {str(self.path)!r} is a file, expected a folder")
        if resume and not self.holds_run():
            missing = f" ({self.marker} is missing)" if self.marker else ""
            raise RunFolderError(
                f"--resume: no {self.what} to continue in {str(self.path)!r}{missing}"
            )
        if not resume and not overwrite and self.holds_run():
            raise self.conflict("", "pass --resume to continue it or --overwrite to start over")

    def conflict(self, detail: str, fix: str = "use another --output") -> RunFolderError:
        """The error for a folder that already holds another run (``detail`` says how)."""
        what = f"{self.what} {detail}".strip()
        return RunFolderError(f"{str(self.path)!r} already holds a {what}; {fix}")

    def create(self, overwrite: bool = False) -> Path:
        """Make the folder (checked writable) and, with ``overwrite``, remove the run's files."""
        check_output_dir(self.path)
        if overwrite:
            self.clear()
        return self.path

    def clear(self) -> None:
        """Remove the run's files (only those, never the user's)."""
        import shutil

        for name in self.files:
            target = self.path / name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            else:
                target.unlink(missing_ok=True)

    def remove_stale_temporaries(self) -> list[str]:
        """Temporary files of the run's own atomic writers (``.last.pth.<random>.tmp``) left by a
        kill; call it before any writer of this run starts. Returns the names removed."""
        removed = []
        for name in self.files:
            for tmp in self.path.glob(f".{name}.*.tmp"):
                if tmp.is_file():
                    tmp.unlink()
                    removed.append(tmp.name)
        return removed
