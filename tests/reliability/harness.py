"""Run a tool as a user would and check that bad input fails cleanly.

A clean failure: exit code 2, one line on stderr naming the problem (after start-up noise, none
here), no traceback, and the output folder exactly as it was (no new, changed or temporary files).
Tools run in-process through ``runpy`` (fast: no interpreter start-up per case); ``subprocess=True``
runs a fresh interpreter for cases that need one (signals, import-time behaviour).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import runpy
import subprocess
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TOOLS = REPO / "tools"


@dataclass
class Result:
    rc: int
    stdout: str
    stderr: str


def run_tool(
    tool: str,
    *args: str,
    cwd: str | os.PathLike | None = None,
    subprocess_: bool = False,
    timeout: float = 600,
) -> Result:
    """Run ``tools/<tool>`` (e.g. ``"train_net.py"``) with ``args``; never raises."""
    script = TOOLS / tool
    if subprocess_:
        p = subprocess.run(
            [sys.executable, str(script), *map(str, args)],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return Result(p.returncode, p.stdout, p.stderr)
    out, err = io.StringIO(), io.StringIO()
    old_argv, old_cwd = sys.argv, os.getcwd()
    sys.argv = [str(script), *map(str, args)]
    rc = 0
    try:
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                runpy.run_path(str(script), run_name="__main__")
            except SystemExit as e:
                rc = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            except BaseException:  # a traceback the user would have seen
                err.write(traceback.format_exc())
                rc = 1
    finally:
        sys.argv = old_argv
        os.chdir(old_cwd)
    return Result(rc, out.getvalue(), err.getvalue())


def snapshot(folder: str | os.PathLike) -> dict[str, str]:
    """``{relative path: sha256}`` of every file under ``folder`` (empty if it does not exist)."""
    folder = Path(folder)
    if not folder.exists():
        return {}
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def assert_clean_failure(
    result: Result,
    message: str,
    before: dict[str, str] | None = None,
    folder: str | os.PathLike | None = None,
) -> None:
    """Exit 2, ``message`` in the last stderr line, that line the only error line, no traceback,
    and ``folder`` unchanged since ``before`` (its :func:`snapshot`)."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.rc == 2, f"exit {result.rc}, expected 2; stderr:\n{result.stderr}"
    assert "Traceback" not in result.stderr, result.stderr
    assert lines, "nothing on stderr"
    assert message.lower() in lines[-1].lower(), f"{message!r} not in last line {lines[-1]!r}"
    errors = [line for line in lines if "error" in line.lower()]
    assert len(errors) <= 1, f"more than one error line:\n{result.stderr}"
    if folder is not None:
        after = snapshot(folder)
        assert after == (before or {}), (
            f"output folder changed: before {sorted(before or {})}, after {sorted(after)}"
        )


class Payload:
    """Unpickling this runs ``cmd`` in a shell: what a hostile file carries (tests write one
    that creates a marker file, then check that the marker never appears)."""

    def __init__(self, cmd: str) -> None:
        self.cmd = cmd

    def __reduce__(self):
        return (os.system, (self.cmd,))


def make_read_only(monkeypatch, folder: str | os.PathLike) -> None:
    """``chmod 555`` on ``folder``; as root (who writes anywhere) ``os.access`` also answers for
    it as for another user. Undo with ``monkeypatch.undo()`` and ``chmod`` back."""
    folder = Path(folder)
    folder.chmod(0o555)
    if os.geteuid() == 0:
        real = os.access

        def access(path, mode, *args, **kw):
            if Path(path).resolve() == folder.resolve() and mode & os.W_OK:
                return False
            return real(path, mode, *args, **kw)

        monkeypatch.setattr(os, "access", access)
