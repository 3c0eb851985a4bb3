"""A results database that cannot be written is refused before any cell runs or is judged.

`bench run` and `bench rescore` used to compute a cell (or judge one) and only then fail to save
it. Now the file and the folder SQLite writes its journal into are checked where the database
enters (fvopt.bench.store.Store.check), and opening it to write makes one committed write: one
line, exit 2, the database unchanged.
"""

import hashlib
import os
import shutil
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest

from test_bench import ONE_THREAD

FIXTURES = Path(__file__).parent / "fixtures"


@contextmanager
def unwritable(path: Path):
    """`path` made unwritable for this process: read-only for a user, immutable (chattr) for root."""
    if os.geteuid() != 0:
        mode = path.stat().st_mode
        path.chmod(0o555 if path.is_dir() else 0o444)
        try:
            yield
        finally:
            path.chmod(mode)
        return
    if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode:
        pytest.skip("running as root without chattr +i: nothing here is unwritable for this process")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fvopt(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "fvopt.cli", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=ONE_THREAD, timeout=300)


@pytest.fixture
def db(tmp_path) -> Path:
    """A database holding finished cells (seed 0), and a spec with cells it does not hold (seed 1)."""
    folder = tmp_path / "results"
    folder.mkdir()
    path = folder / "r.sqlite"
    shutil.copyfile(FIXTURES / "bench_v0.sqlite", path)
    raw = (FIXTURES / "bench_v0.toml").read_text().replace("seeds = [0]", "seeds = [0, 1]")
    (tmp_path / "spec.toml").write_text(raw)
    return path


@pytest.mark.parametrize("what", ["file", "folder"])
@pytest.mark.parametrize("command", ["run", "rescore"])
def test_a_database_that_cannot_be_written_is_refused_before_any_cell(db, what, command):
    args = (
        ["bench", "run", str(db.parent.parent / "spec.toml"), "--db", str(db), "--quiet"]
        if command == "run"
        else ["bench", "rescore", str(db), "--reference", "builtin", "--quiet"]
    )
    before, files = sha(db), sorted(db.parent.iterdir())
    with unwritable(db if what == "file" else db.parent):
        done = fvopt(*args)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert str(db if what == "file" else db.parent) in lines[0] and "cannot be written" in lines[0]
    assert "nothing was run" in lines[0]
    assert sha(db) == before and sorted(db.parent.iterdir()) == files, "the database and its folder are unchanged"
