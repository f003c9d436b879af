"""What every command-line tool shares: quiet start-up and one-line errors.

A tool's ``main`` is wrapped by :func:`run_tool`: an error the user can cause (a bad path, value,
config, file or output location) becomes ``<prog>: error: <one line>`` on stderr and exit code 2,
with no traceback. Third-party warnings that mean nothing to a user (deprecations inside
Detectron2, fvcore and torch) are filtered by :func:`quiet_warnings` before those libraries load.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import sys
import warnings
from collections.abc import Callable

__all__ = [
    "EXIT_USAGE",
    "UserError",
    "first_line",
    "without_pycocotools_prints",
    "quiet_library_logs",
    "quiet_warnings",
    "run_tool",
]

#: Exit code of a tool for bad input (argparse uses the same).
EXIT_USAGE = 2


class UserError(ValueError):
    """A problem with the user's input; the message is the whole story (one line)."""


#: Warning messages from libraries that a user cannot act on.
_NOISE = (
    r".*torch\.jit\.script.*",
    r".*torch\.meshgrid.*",
    r".*TypedStorage is deprecated.*",
    r".*pkg_resources is deprecated.*",
    r".*`torch\.cuda\.amp\..*` is deprecated.*",
    r".*Failed to load image Python extension.*",
    r".*functools\.partial will be a method descriptor.*",
    r".*is deprecated and will be removed.*",
    r".*fx.*tracing.*",
    r".*No CUDA runtime is found.*",
    r".*The given NumPy array is not writable.*",
    # Detectron2's DefaultTrainer builds a CUDA AMPTrainer before ours replaces it (CPU AMP).
    r".*GradScaler is enabled, but CUDA is not available.*",
)

#: Progress lines pycocotools prints while it loads and evaluates (Detectron2 logs the results).
_PYCOCOTOOLS_PRINTS = re.compile(
    r"(loading annotations into memory\.\.\.|Done \(t=[\d.]+s\)|creating index\.\.\.|"
    r"index created!|Loading and preparing results\.\.\.|DONE \(t=[\d.]+s\)\.?|"
    r"Running per image evaluation\.\.\.|Evaluate annotation type \*\w+\*|"
    r"Accumulating evaluation results\.\.\.)"
)


class _DetectronNoise(logging.Filter):
    """Detectron2 warns that it maps COCO category ids to 0..K-1: what our datasets expect."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Category ids in annotations are not in [1, #categories]" not in record.getMessage()


class _LineFilter(io.TextIOBase):
    """A text stream that forwards every whole line except those ``drop`` matches."""

    def __init__(self, stream, drop: re.Pattern) -> None:
        self.stream, self.drop, self.partial = stream, drop, ""

    def write(self, text: str) -> int:
        *lines, self.partial = (self.partial + text).split("\n")
        for line in lines:
            if not self.drop.fullmatch(line.strip()):
                self.stream.write(line + "\n")
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def close_line(self) -> None:
        if self.partial:
            self.stream.write(self.partial)
            self.partial = ""


@contextlib.contextmanager
def without_pycocotools_prints():
    """``sys.stdout`` without pycocotools' progress prints (inside train_net's evaluation)."""
    filtered = _LineFilter(sys.stdout, _PYCOCOTOOLS_PRINTS)
    with contextlib.redirect_stdout(filtered):
        try:
            yield
        finally:
            filtered.close_line()


def quiet_warnings() -> None:
    """Hide third-party deprecation and extension warnings (call before importing them)."""
    for msg in _NOISE:
        warnings.filterwarnings("ignore", message=msg)
    for category in (FutureWarning, DeprecationWarning):
        warnings.filterwarnings("ignore", category=category)
    quiet_library_logs()


def quiet_library_logs() -> None:
    """Raise the level of library loggers whose messages mean nothing to a user."""
    logging.getLogger("fvcore").setLevel(logging.WARNING)
    # Detectron2 asks torch.fx whether it is tracing; torch logs a deprecation about it.
    logging.getLogger("torch.fx._symbolic_trace").setLevel(logging.ERROR)
    # "No CUDA runtime is found, using CUDA_HOME=..." on every machine without a GPU.
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    coco = logging.getLogger("detectron2.data.datasets.coco")
    if not any(isinstance(f, _DetectronNoise) for f in coco.filters):
        coco.addFilter(_DetectronNoise())


def first_line(err: BaseException) -> str:
    """The first non-empty line of ``err``'s message, or its type name (library errors such as
    zlib's or torch's can run over many lines; a one-line message quotes only the first)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__


def _one_line(err: BaseException) -> str:
    text = str(err).strip()
    if isinstance(err, KeyError) and len(err.args) == 1:
        text = str(err.args[0])
    if isinstance(err, OSError) and err.filename and err.strerror:
        text = f"{err.filename}: {err.strerror}"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return " ".join(lines) if lines else type(err).__name__


def run_tool(prog: str, main: Callable[[], int | None]) -> int:
    """Run ``main()`` and turn a user error into one line on stderr and exit code 2.

    User errors are ``ValueError`` (including :class:`UserError`), ``OSError`` (missing files,
    output failures), ``KeyError`` from config lookups and ``MemoryError``/``RecursionError``
    from hostile input. Anything else is a bug and keeps its traceback.
    """
    try:
        rc = main()
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except (ValueError, OSError, KeyError, MemoryError, RecursionError) as e:
        sys.stdout.flush()
        print(f"{prog}: error: {_one_line(e)}", file=sys.stderr)
        return EXIT_USAGE
    return int(rc or 0)
