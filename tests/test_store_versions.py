"""Results databases outlive fvopt versions: a schema version in every database, older ones read
as they are or migrated after a backup, newer ones refused naming both versions; failed cells
keep their traceback and the report shows and counts them.

tests/fixtures/bench_v0.sqlite was written by fvopt before schema versions existed (from
tests/fixtures/bench_v0.toml: two finished cells, plus one failed cell stored the way that
version stored failures), and is kept unchanged as the oldest database fvopt must open.
"""

import hashlib
import logging
import shutil
import sqlite3
from pathlib import Path

import pytest

from fvopt.bench import runner
from fvopt.bench.report import write_report
from fvopt.bench.runner import run_spec
from fvopt.bench.spec import load_spec, parse_spec
from fvopt.bench.store import SCHEMA_VERSION, Store
from fvopt.errors import FvoptError

FIXTURES = Path(__file__).parent / "fixtures"
V0 = FIXTURES / "bench_v0.sqlite"


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def version_of(path: Path) -> int:
    con = sqlite3.connect(path)
    try:
        return con.execute("PRAGMA user_version").fetchone()[0]
    finally:
        con.close()


@pytest.fixture
def old_db(tmp_path) -> Path:
    copy = tmp_path / "old.sqlite"
    shutil.copyfile(V0, copy)
    return copy


def test_the_fixture_is_a_database_of_the_first_version():
    assert version_of(V0) == 0 and SCHEMA_VERSION >= 1


def test_an_old_database_is_read_as_it_is_and_left_unchanged(old_db):
    before, siblings = sha(old_db), set(old_db.parent.iterdir())
    store = Store(old_db, readonly=True)
    try:
        done, failed = store.rows("done"), store.rows("failed")
        assert store.version == 0
    finally:
        store.close()
    assert sorted(r["strategy"] for r in done) == ["adam", "cmaes"]
    assert all(r["stop_reason"] == "passes" and r["trace"] and r["traceback"] is None for r in done)
    assert [r["error"] for r in failed] == ["RuntimeError: a failure kept as today's runner keeps it"]
    assert sha(old_db) == before and set(old_db.parent.iterdir()) == siblings


def dump(path: Path) -> list[str]:
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return list(con.iterdump())
    finally:
        con.close()


def test_opening_an_old_database_to_write_migrates_it_after_a_backup_in_one_line(old_db, caplog):
    before = dump(V0)
    with caplog.at_level(logging.INFO, logger="fvopt"):
        store = Store(old_db)
    try:
        assert store.version == SCHEMA_VERSION
        assert len(store.rows("done")) == 2 and len(store.rows("failed")) == 1
    finally:
        store.close()
    backup = old_db.with_name(old_db.name + ".bak-v0")
    assert dump(backup) == before and version_of(backup) == 0 and version_of(old_db) == SCHEMA_VERSION
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and str(backup) in lines[0] and f"version 0 to {SCHEMA_VERSION}" in lines[0], lines
    Store(old_db).close()  # a second opening has nothing to migrate: no second backup, no line
    assert len(caplog.records) == 1


def test_a_database_of_a_later_version_is_refused_naming_both_versions(old_db):
    con = sqlite3.connect(old_db)
    con.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 3}")
    con.commit()
    con.close()
    before = sha(old_db)
    for readonly in (True, False):
        with pytest.raises(
            FvoptError, match=rf"schema version {SCHEMA_VERSION + 3}.*reads up to schema version {SCHEMA_VERSION}"
        ):
            Store(old_db, readonly=readonly)
    assert sha(old_db) == before


def test_a_new_database_records_the_current_version(tmp_path):
    Store(tmp_path / "new.sqlite").close()
    assert version_of(tmp_path / "new.sqlite") == SCHEMA_VERSION


@pytest.mark.slow
def test_an_old_database_resumes_running_only_the_new_cells(old_db, tmp_path):
    raw = (FIXTURES / "bench_v0.toml").read_text().replace("seeds = [0]", "seeds = [0, 1]")
    (tmp_path / "spec.toml").write_text(raw)
    summary = run_spec(load_spec(tmp_path / "spec.toml"), old_db, progress=False)
    assert (summary.total, summary.skipped, summary.ran, summary.failed) == (4, 2, 2, 0)
    store = Store(old_db, readonly=True)
    try:
        assert sorted((r["strategy"], r["seed"]) for r in store.rows("done")) == [
            ("adam", 0),
            ("adam", 1),
            ("cmaes", 0),
            ("cmaes", 1),
        ]
    finally:
        store.close()


@pytest.mark.slow
def test_a_failed_cell_keeps_its_traceback_and_the_report_counts_and_shows_it(old_db, tmp_path, monkeypatch):
    def broken_cell(cell, threads=None):
        raise ZeroDivisionError("a cell that divides by zero")

    monkeypatch.setattr(runner, "run_cell", broken_cell)
    spec = parse_spec(
        {
            "bench": {
                "name": "broken",
                "size": 64,
                "seeds": [5],
                "targets": ["class:8"],
                "params": ["fft"],
                "budget": {"passes": 12},
            },
            "strategies": [{"name": "adam"}],
        }
    )
    summary = run_spec(spec, old_db, progress=False)
    assert summary.failed == 1
    store = Store(old_db, readonly=True)
    try:
        mine = [r for r in store.rows("failed") if r["seed"] == 5]
    finally:
        store.close()
    assert mine[0]["error"] == "ZeroDivisionError: a cell that divides by zero"
    assert "in broken_cell" in mine[0]["traceback"] and "Traceback (most recent call last)" in mine[0]["traceback"]
    out = tmp_path / "report"
    write_report(old_db, out, html=True, exports=False)
    failed = (out / "failed.md").read_text()
    assert "2 cells failed" in failed and "<details>" in failed and "in broken_cell" in failed
    page = (out / "report.html").read_text()
    assert "<details>" in page and "in broken_cell" in page and "1 failed" not in page and "2 failed" in page
