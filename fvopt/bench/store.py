"""Benchmark results in SQLite: WAL mode, one transaction per finished cell, nothing ever lost.

A run that is killed at any point leaves every finished cell committed; starting it again skips
them by their content key. Each cell row records the versions, device and spec hash it ran with.

Every database records its schema version (SQLite's `user_version`). A database of an earlier
version opens: read as it is (columns it lacks read as None), or, opened to write, migrated
forward after a backup copy beside it (`results.sqlite.bak-v0`), said in one line. A database of
a later version is refused naming both versions: this fvopt cannot know what its columns mean.

Versions: 0 (no version recorded): the cells table as first written; 1: `traceback` of a failed cell;
2: `image_exact` (the final images as lossless float32, a compressed .npz beside the 8-bit PNG in
`image`) and `quality` (fvopt.quality's measures of the cell, JSON; rewritten by `fvopt bench rescore`);
3: `median_step_seconds` (beside `max_step_seconds`: the step-time distribution, read by the report's
slow-step flag) and `warmup_seconds` (the run's untimed warm-up, fvopt/warmup.py); a cell of an
earlier version reads None in both (the report derives the median from the cell's trace).
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
from pathlib import Path
from urllib.parse import quote

from ..errors import FvoptError

log = logging.getLogger(__name__)

SCHEMA_VERSION = 3
SCHEMA = """
CREATE TABLE IF NOT EXISTS cells (
    key TEXT PRIMARY KEY,
    spec_name TEXT, spec_hash TEXT,
    model TEXT, target TEXT, strategy TEXT, strategy_name TEXT, options TEXT,
    param TEXT, param_used TEXT, param_dim INTEGER, seed INTEGER, size INTEGER, budget TEXT, transforms TEXT,
    status TEXT, stop_reason TEXT, error TEXT,
    forwards INTEGER, backwards INTEGER, seconds REAL, steps INTEGER, max_step_seconds REAL,
    final TEXT, trace TEXT, extra TEXT, image BLOB,
    fvopt_version TEXT, torch_version TEXT, device TEXT, finished_at REAL, traceback TEXT,
    image_exact BLOB, quality TEXT,
    median_step_seconds REAL, warmup_seconds REAL
);
"""
V0_COLUMNS = (
    "key",
    "spec_name",
    "spec_hash",
    "model",
    "target",
    "strategy",
    "strategy_name",
    "options",
    "param",
    "param_used",
    "param_dim",
    "seed",
    "size",
    "budget",
    "transforms",
    "status",
    "stop_reason",
    "error",
    "forwards",
    "backwards",
    "seconds",
    "steps",
    "max_step_seconds",
    "final",
    "trace",
    "extra",
    "image",
    "fvopt_version",
    "torch_version",
    "device",
    "finished_at",
)
# what each version adds to the one before it: (column, SQL type); a migration adds them in order
ADDED = {
    1: (("traceback", "TEXT"),),
    2: (("image_exact", "BLOB"), ("quality", "TEXT")),
    3: (("median_step_seconds", "REAL"), ("warmup_seconds", "REAL")),
}
COLUMNS = V0_COLUMNS + tuple(name for version in sorted(ADDED) for name, _ in ADDED[version])
JSON_COLUMNS = ("options", "budget", "final", "trace", "extra", "quality")


def columns_of(version: int) -> tuple[str, ...]:
    """The cells table's columns in schema `version`."""
    return V0_COLUMNS + tuple(name for v in sorted(ADDED) if v <= version for name, _ in ADDED[v])


SQLITE_HEADER = b"SQLite format 3\x00"


def _read_only_uri(path: Path) -> str:
    """A read-only SQLite URI for `path`, percent-encoded: a '?', '#' or '%' in a file name would
    otherwise be read as URI syntax (and `mode=ro` silently dropped, or another file opened).
    Without a `-wal` file beside it, the database is opened `immutable`, so that reading it
    creates no `-wal`/`-shm` files either (SQLite makes them for a read-only WAL database)."""
    uri = f"file:{quote(str(path.resolve()))}?mode=ro"
    return uri if Path(f"{path}-wal").exists() else uri + "&immutable=1"


class Store:
    """fvopt's results database. A file that is not one (another program's SQLite database, any
    other file) is refused before a single byte of it changes; `readonly` never writes at all."""

    def __init__(self, path: str | Path, readonly: bool = False) -> None:
        self.path = Path(path)
        exists = self.check(self.path, readonly)
        try:
            if readonly:
                self.db = sqlite3.connect(_read_only_uri(self.path), uri=True, timeout=30)
                self.version = _user_version(self.db)
                return
            if not exists:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path, timeout=30)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            if exists and _has_cells(self.db):
                self._migrate()
            else:
                self.db.executescript(SCHEMA)
            # a committed write now, not at the first finished cell: a database that cannot be written
            # (read-only file or disk, locked by another writer) is refused before any cell runs
            self.db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            self.version = SCHEMA_VERSION
        except (sqlite3.Error, OSError) as err:
            raise FvoptError(
                f"cannot open results database '{self.path}' to write: {_reason(err)}; nothing was run"
            ) from None

    def _migrate(self) -> None:
        """Bring a database of an earlier version to this one: a backup copy first (SQLite's online
        backup, so a WAL file's content is in it), then the columns each later version added, and
        the new version, in one transaction."""
        old = _user_version(self.db)
        if old >= SCHEMA_VERSION:
            return
        backup = self.path.with_name(f"{self.path.name}.bak-v{old}")
        if not backup.exists():
            copy = sqlite3.connect(backup)
            try:
                self.db.backup(copy)
            finally:
                copy.close()
        with self.db:
            for version in sorted(v for v in ADDED if v > old):
                for name, kind in ADDED[version]:
                    self.db.execute(f"ALTER TABLE cells ADD COLUMN {name} {kind}")
            self.db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        log.warning(
            "results database '%s' migrated from schema version %d to %d (its columns kept; a copy as it was: '%s')",
            self.path,
            old,
            SCHEMA_VERSION,
            backup,
        )

    @staticmethod
    def check(path: str | Path, readonly: bool = False) -> bool:
        """Refuse `path` unless it is fvopt's results database or (when writing) a new or empty
        file in a folder that can hold it; reads only. Returns whether it holds a database."""
        if not str(path).strip():
            raise FvoptError("the results database needs a file name, not an empty one (e.g. --db results.sqlite)")
        path = Path(path)
        if path.is_dir():
            raise FvoptError(f"results database '{path}' is a folder, not a file")
        if path.exists() and not path.is_file():
            raise FvoptError(f"results database '{path}' is not a regular file")
        exists = path.is_file() and path.stat().st_size > 0
        if readonly and not exists:
            what = "is empty" if path.is_file() else "does not exist"
            raise FvoptError(f"results database '{path}' {what}: run `fvopt bench run SPEC --db {path}` first")
        if exists:
            Store._check_is_ours(path, readonly)
        elif not readonly:
            parent = next((p for p in [path.parent, *path.parent.parents] if p.exists()), None)
            if parent is not None and not parent.is_dir():
                raise FvoptError(f"results database '{path}' cannot be created: '{parent}' is a file, not a folder")
        if not readonly:
            Store._check_writable(path, exists)
        return exists

    @staticmethod
    def _check_writable(path: Path, exists: bool) -> None:
        """Refuse, before any cell runs, a database this process cannot write: the file (read-only,
        immutable, on a read-only disk) or the folder SQLite writes its journal into (`-wal`, `-shm`)."""
        folder = next((p for p in [path.parent, *path.parent.parents] if p.exists()), Path("."))
        if exists and not os.access(path, os.W_OK):
            raise FvoptError(
                f"results database '{path}' cannot be written (a read-only file, or on a read-only disk): "
                "nothing was run; make it writable, or work on a copy in a writable folder"
            )
        if not os.access(folder, os.W_OK | os.X_OK):
            raise FvoptError(
                f"results database '{path}' cannot be written: its folder '{folder}' is read-only (SQLite "
                "writes its journal beside the database); nothing was run; use a file in a writable folder"
            )

    @staticmethod
    def _check_is_ours(path: Path, readonly: bool = False) -> None:
        """Read-only: the file must be SQLite holding fvopt's `cells` table (and its indexes) only."""
        left = "it was left unchanged: " + (
            "give the database an `fvopt bench` run wrote" if readonly else "give --db a new file name"
        )
        try:
            with open(path, "rb") as fh:
                header = fh.read(len(SQLITE_HEADER))
        except OSError as err:
            raise FvoptError(f"cannot read results database '{path}': {_reason(err)}") from None
        if header != SQLITE_HEADER:
            raise FvoptError(f"'{path}' is not an SQLite database, so not an fvopt results database; {left}")
        try:
            probe = sqlite3.connect(_read_only_uri(path), uri=True, timeout=30)
            try:
                entries = probe.execute("SELECT type, name, tbl_name FROM sqlite_master").fetchall()
                columns = {r[1] for r in probe.execute("PRAGMA table_info(cells)")}
                version = _user_version(probe)
            finally:
                probe.close()
        except sqlite3.Error as err:
            raise FvoptError(f"'{path}' is not an fvopt results database ({_reason(err)}); {left}") from None
        foreign = sorted(
            {f"{kind} {name}" for kind, name, table in entries if table != "cells" or kind not in ("table", "index")}
        )
        if not foreign and version > SCHEMA_VERSION:
            from ..version import __version__

            raise FvoptError(
                f"results database '{path}' has schema version {version}, written by a later fvopt; "
                f"this fvopt ({__version__}) reads up to schema version {SCHEMA_VERSION}: upgrade fvopt "
                "to read it (it was left unchanged)"
            )
        if foreign or (entries and columns != set(columns_of(version))):
            detail = (
                ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
                if foreign
                else "a 'cells' table of another shape"
            )
            raise FvoptError(f"'{path}' is another program's SQLite database ({detail}); {left}")

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
        try:
            with self.db:
                self.db.execute(
                    f"INSERT OR REPLACE INTO cells ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                    [values[c] for c in cols],
                )
        except sqlite3.Error as err:  # disk full, database locked by another writer, file removed
            raise FvoptError(
                f"cannot write a finished cell to '{self.path}': {_reason(err)}; the cells committed before it are kept"
            ) from None

    def set_quality(self, key: str, quality: dict) -> None:
        """Replace one finished cell's `quality` column in its own transaction (`fvopt bench rescore`):
        nothing else of the row changes, and an interrupt leaves either the old value or the new one."""
        try:
            with self.db:
                changed = self.db.execute(
                    "UPDATE cells SET quality = ? WHERE key = ? AND status = 'done'", (json.dumps(quality), key)
                ).rowcount
        except sqlite3.Error as err:
            raise FvoptError(
                f"cannot write the quality of cell {key} to '{self.path}': {_reason(err)}; the cells "
                "rescored before it are kept"
            ) from None
        if changed != 1:
            raise FvoptError(f"cell {key} is not a finished cell of '{self.path}'")

    def rows(self, status: str | None = "done") -> list[dict]:
        query = (
            "SELECT * FROM cells"
            + (" WHERE status = ?" if status else "")
            + " ORDER BY model, target, strategy, param, seed"
        )
        cur = self.db.execute(query, (status,) if status else ())
        names = [d[0] for d in cur.description]
        out = []
        for values in cur.fetchall():
            row = dict.fromkeys(COLUMNS)  # a column an older database lacks reads as None
            row.update(zip(names, values))
            for col in JSON_COLUMNS:
                if row.get(col):
                    row[col] = json.loads(row[col])
            out.append(row)
        return out

    def close(self) -> None:
        self.db.close()


def _user_version(db: sqlite3.Connection) -> int:
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def _has_cells(db: sqlite3.Connection) -> bool:
    return db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'cells'").fetchone() is not None


def _reason(err: BaseException) -> str:
    return getattr(err, "strerror", None) or str(err)
