"""The search history: one SQLite file in WAL mode that survives ``kill -9``.

Every finished child is committed the moment it finishes (``synchronous=FULL``: the commit is on
disk when :meth:`History.add_child` returns). The strategy's state is checkpointed at the end of
each round in the same file, in one transaction with the round counter, so a checkpoint is
either entirely there or not at all. The stored config lets ``--resume`` refuse a changed search.
"""

from __future__ import annotations

import io
import json
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from nasnet_det.io import OutputError

__all__ = ["History", "HistoryError", "CHILD_COLUMNS"]

FORMAT = "nasnet_det.search.history/1"

CHILD_COLUMNS = (
    "child_id",
    "round",
    "key",
    "genotype",
    "reward",
    "status",
    "error",
    "seconds",
    "params",
    "duplicate_of",
    "phase",
    "finished_at",
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS children (
    child_id INTEGER PRIMARY KEY, round INTEGER NOT NULL, key TEXT NOT NULL,
    genotype TEXT NOT NULL, reward REAL, status TEXT NOT NULL, error TEXT NOT NULL DEFAULT '',
    seconds REAL, params INTEGER, duplicate_of INTEGER, phase TEXT NOT NULL,
    finished_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS checkpoint (
    id INTEGER PRIMARY KEY CHECK (id = 0), round INTEGER NOT NULL,
    num_children INTEGER NOT NULL, state BLOB NOT NULL);
"""


class HistoryError(ValueError):
    """The history file is missing, corrupt, or belongs to a different search."""


class History:
    def __init__(self, path: str | Path, create: bool = True) -> None:
        self.path = Path(path)
        if not create and not self.path.is_file():
            raise HistoryError(f"no search history at {str(self.path)!r} to resume")
        try:
            self.db = sqlite3.connect(self.path, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            existing = {r[0] for r in self.db.execute("SELECT name FROM sqlite_master")}
            if create and not existing:
                self.db.executescript(_SCHEMA)
                self.db.execute("INSERT INTO meta VALUES ('format', ?)", (FORMAT,))
            fmt = self.db.execute("SELECT value FROM meta WHERE key='format'").fetchone()
            if fmt is None or fmt[0] != FORMAT:
                raise HistoryError(
                    f"search history {str(self.path)!r} has format "
                    f"{fmt and fmt[0]!r}; expected {FORMAT!r}"
                )
            self.db.execute(
                "SELECT c.child_id, c.round, k.num_children FROM children c, checkpoint k LIMIT 0"
            )
        except sqlite3.DatabaseError as e:
            if _is_io_error(e):
                raise OutputError(f"cannot write search history {str(self.path)!r}: {e}") from None
            raise HistoryError(
                f"search history {str(self.path)!r} is corrupt or not a search history ({e})"
            ) from None

    def _write(self, sql: str, params: Sequence[Any]) -> None:
        """One committed statement; a failure to write (disk full, read-only) is one line."""
        try:
            self.db.execute(sql, params)
        except sqlite3.DatabaseError as e:
            raise OutputError(f"cannot write search history {str(self.path)!r}: {e}") from None

    def close(self) -> None:
        self.db.close()

    # ------------------------------------------------------------------ meta
    def get_meta(self, key: str) -> Any:
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def set_meta(self, key: str, value: Any) -> None:
        self._write("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))

    # ------------------------------------------------------------------ children
    def add_child(self, rec: dict[str, Any]) -> None:
        """Store one finished child durably (one committed transaction)."""
        row = {c: rec.get(c) for c in CHILD_COLUMNS}
        row["error"] = row["error"] or ""
        row["finished_at"] = row["finished_at"] or time.time()
        self._write(
            f"INSERT INTO children ({', '.join(CHILD_COLUMNS)}) VALUES "
            f"({', '.join('?' for _ in CHILD_COLUMNS)})",
            [row[c] for c in CHILD_COLUMNS],
        )

    def children(self) -> list[dict[str, Any]]:
        cur = self.db.execute(f"SELECT {', '.join(CHILD_COLUMNS)} FROM children ORDER BY child_id")
        return [dict(zip(CHILD_COLUMNS, r)) for r in cur]

    # ------------------------------------------------------------------ strategy checkpoint
    def save_checkpoint(self, round_: int, num_children: int, state: dict[str, Any]) -> None:
        buf = io.BytesIO()
        torch.save(state, buf)
        self._write(
            "INSERT OR REPLACE INTO checkpoint VALUES (0, ?, ?, ?)",
            (round_, num_children, buf.getvalue()),
        )

    def load_checkpoint(self) -> tuple[int, int, dict[str, Any]] | None:
        """``(next_round, children_before_it, state)`` of the last completed round, or ``None``."""
        row = self.db.execute("SELECT round, num_children, state FROM checkpoint").fetchone()
        if row is None:
            return None
        try:
            state = torch.load(io.BytesIO(row[2]), weights_only=True)
        except Exception as e:  # noqa: BLE001
            raise HistoryError(
                f"search history {str(self.path)!r}: the strategy checkpoint is corrupt ({e})"
            ) from None
        return int(row[0]), int(row[1]), state


def _is_io_error(e: sqlite3.DatabaseError) -> bool:
    text = str(e).lower()
    return any(w in text for w in ("unable to open", "readonly", "read-only", "disk", "i/o"))
