"""Benchmark results in SQLite: WAL mode, one transaction per finished cell, nothing ever lost.

A run that is killed at any point leaves every finished cell committed; starting it again skips
them by their content key. Each cell row records the versions, device and spec hash it ran with.
"""
from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

from ..errors import FvoptError

SCHEMA = """
CREATE TABLE IF NOT EXISTS cells (
    key TEXT PRIMARY KEY,
    spec_name TEXT, spec_hash TEXT,
    model TEXT, target TEXT, strategy TEXT, strategy_name TEXT, options TEXT,
    param TEXT, param_used TEXT, param_dim INTEGER, seed INTEGER, size INTEGER, budget TEXT, transforms TEXT,
    status TEXT, stop_reason TEXT, error TEXT,
    forwards INTEGER, backwards INTEGER, seconds REAL, steps INTEGER, max_step_seconds REAL,
    final TEXT, trace TEXT, extra TEXT, image BLOB,
    fvopt_version TEXT, torch_version TEXT, device TEXT, finished_at REAL
);
"""
COLUMNS = ("key", "spec_name", "spec_hash", "model", "target", "strategy", "strategy_name", "options", "param",
           "param_used", "param_dim", "seed", "size", "budget", "transforms", "status", "stop_reason", "error",
           "forwards", "backwards", "seconds", "steps", "max_step_seconds", "final", "trace", "extra", "image",
           "fvopt_version", "torch_version", "device", "finished_at")
JSON_COLUMNS = ("options", "budget", "final", "trace", "extra")


class Store:
    """fvopt's results database. A file that is not one (another program's SQLite database, any
    other file) is refused before a single byte of it changes; `readonly` never writes at all."""

    def __init__(self, path: str | Path, readonly: bool = False) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            raise FvoptError(f"results database '{self.path}' is a folder, not a file")
        exists = self.path.is_file() and self.path.stat().st_size > 0
        if readonly and not exists:
            what = "is empty" if self.path.is_file() else "does not exist"
            raise FvoptError(f"results database '{self.path}' {what}: run `fvopt bench SPEC --db {self.path}` first")
        if exists:
            self._check_is_ours()
        try:
            if readonly:
                self.db = sqlite3.connect(f"file:{self.path.resolve()}?mode=ro", uri=True, timeout=30)
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path, timeout=30)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(SCHEMA)
        except (sqlite3.DatabaseError, OSError) as err:
            raise FvoptError(f"cannot open results database '{self.path}': {err}") from None

    def _check_is_ours(self) -> None:
        """Read-only: the file must be SQLite holding fvopt's `cells` table and nothing else."""
        try:
            probe = sqlite3.connect(f"file:{self.path.resolve()}?mode=ro", uri=True, timeout=30)
            try:
                tables = {r[0] for r in probe.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
                columns = {r[1] for r in probe.execute("PRAGMA table_info(cells)")} if "cells" in tables else set()
            finally:
                probe.close()
        except sqlite3.DatabaseError as err:
            raise FvoptError(f"'{self.path}' is not an fvopt results database ({err}); it was left unchanged: "
                             "give --db a new file name") from None
        foreign = sorted(tables - {"cells"})
        if foreign or (tables and not set(COLUMNS) <= columns):
            detail = f"tables {', '.join(foreign)}" if foreign else "a 'cells' table of another shape"
            raise FvoptError(f"'{self.path}' is another program's SQLite database ({detail}); it was left "
                             "unchanged: give --db a new file name")

    def done_keys(self) -> set[str]:
        return {row[0] for row in self.db.execute("SELECT key FROM cells WHERE status = 'done'")}

    def save(self, row: dict) -> None:
        """Write one finished cell in its own transaction."""
        values = dict(row)
        values.setdefault("finished_at", time.time())
        for col in JSON_COLUMNS:
            if col in values and not isinstance(values[col], str):
                values[col] = json.dumps(values[col])
        cols = [c for c in COLUMNS if c in values]
        with self.db:
            self.db.execute(f"INSERT OR REPLACE INTO cells ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                            [values[c] for c in cols])

    def rows(self, status: str | None = "done") -> list[dict]:
        query = "SELECT * FROM cells" + (" WHERE status = ?" if status else "") + " ORDER BY target, strategy, param, seed"
        cur = self.db.execute(query, (status,) if status else ())
        names = [d[0] for d in cur.description]
        out = []
        for values in cur.fetchall():
            row = dict(zip(names, values))
            for col in JSON_COLUMNS:
                if row.get(col):
                    row[col] = json.loads(row[col])
            out.append(row)
        return out

    def close(self) -> None:
        self.db.close()
