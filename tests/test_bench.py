"""The benchmark harness: specs, resumable runs, reproducibility, reports, executors."""

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fvopt.bench.report import write_report
from fvopt.bench.runner import run_spec
from fvopt.bench.spec import load_spec, parse_spec
from fvopt.bench.store import SCHEMA, Store
from fvopt.cli import main
from fvopt.errors import FvoptError

SPEC = """
[bench]
name = "tiny"
size = 64
seeds = [0, 1]
targets = ["class:8", "channel:blocks.3:5"]
params = ["fft"]
transfer_model = "lite0"
budget = {{ passes = {passes} }}

[[strategies]]
name = "adam"

[[strategies]]
name = "cmaes"
popsize = 6
"""


def write_spec(tmp_path: Path, passes: int = 30, extra: str = "") -> Path:
    path = tmp_path / "spec.toml"
    path.write_text(SPEC.format(passes=passes) + extra)
    return path


def finished(db: Path) -> dict[str, float]:
    """The done cells of a database another process may be writing (read-only: creates nothing)."""
    if not db.exists() or db.stat().st_size == 0:
        return {}
    con = read_only(db)
    try:
        return dict(con.execute("SELECT key, finished_at FROM cells WHERE status = 'done'").fetchall())
    except sqlite3.OperationalError:  # the writer has not created the table yet
        return {}
    finally:
        con.close()


def read_only(db: Path) -> sqlite3.Connection:
    """Reading a WAL database with mode=ro makes -wal/-shm files unless they exist: immutable then."""
    return sqlite3.connect(f"file:{db}?mode=ro" + ("" if Path(f"{db}-wal").exists() else "&immutable=1"), uri=True)


def bench_command(spec: Path, db: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "fvopt.cli", "bench", "run", str(spec), "--db", str(db), "--quiet", *extra]


# One thread per process: tests running beside each other on a small machine slow OpenMP's
# spinning threads down by tens of times, and these tests wait on real cells.
ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1"}


def test_spec_expands_into_cells_with_low_dimensional_zero_order_params(tmp_path):
    spec = load_spec(write_spec(tmp_path))
    assert len(spec.cells) == 8
    used = {(c.strategy, c.param_used) for c in spec.cells}
    assert used == {("adam", "fft"), ("cmaes", "fft:k=8")}
    assert len({c.key for c in spec.cells}) == 8


@pytest.mark.parametrize(
    "patch, message",
    [
        ({"bench": {"budget": {"passes": 10}, "targets": ["class:8"], "sizee": 3}}, "spec bench.sizee: unknown key"),
        (
            {"bench": {"budget": {"passes": -5}, "targets": ["class:8"]}},
            "spec bench.budget.passes: must be an integer >= 1, not -5",
        ),
        (
            {"bench": {"budget": {"passes": 10}, "targets": ["class:8"]}, "strategies": [{"name": "adma"}]},
            "spec strategies[0]: unknown optimizer 'adma'",
        ),
        (
            {
                "bench": {"budget": {"passes": 10}, "targets": ["class:8"]},
                "strategies": [{"name": "cmaes", "popsiz": 3}],
            },
            "spec strategies[0]: optimizer 'cmaes' does not take option 'popsiz'. Did you mean: popsize?",
        ),
        ({"bench": {"budget": {"passes": 10}, "targets": ["chanel:x:1"]}}, "spec bench.targets[0]"),
        ({"bench": {"budget": {"passes": 10}}}, "spec bench.targets: is required"),
    ],
)
def test_malformed_specs_name_the_key(patch, message):
    raw = {"strategies": [{"name": "adam"}], **patch}
    with pytest.raises(FvoptError) as err:
        parse_spec(raw)
    assert message in str(err.value)


def test_malformed_spec_exits_2_before_anything_runs(tmp_path, capsys):
    spec = tmp_path / "bad.toml"
    spec.write_text('[bench]\ntargets = ["class:8"]\nbudget = { seconds = -1 }\n[[strategies]]\nname = "adam"\n')
    db = tmp_path / "r.sqlite"
    assert main(["bench", "run", str(spec), "--db", str(db), "--quiet"]) == 2
    assert "bench.budget.seconds" in capsys.readouterr().err
    assert not db.exists()


@pytest.mark.slow
def test_killed_run_resumes_without_redoing_finished_cells(tmp_path):
    spec, db = write_spec(tmp_path, passes=60), tmp_path / "r.sqlite"  # cells of ~1.5 s: a stop lands mid-run
    cmd = bench_command(spec, db)
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ONE_THREAD)
    deadline = time.time() + 300
    while len(finished(db)) < 2 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = finished(db)
    assert 2 <= len(before) < 8, "the kill should land in the middle of the run"
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=ONE_THREAD).stdout
    after = finished(db)
    assert len(after) == 8
    assert f"{len(before)} already done, {8 - len(before)} ran" in out
    assert all(after[k] == t for k, t in before.items())  # finished cells were not redone


@pytest.mark.slow
def test_same_spec_and_seed_give_the_same_values_and_a_changed_spec_adds_only_new_cells(tmp_path):
    spec = load_spec(write_spec(tmp_path))
    values = []
    for name in ("a.sqlite", "b.sqlite"):
        store = Store(tmp_path / name)
        run_spec(spec, store, progress=False, log=lambda line: None)
        values.append({r["key"]: (r["final"]["value"], r["final"]["robust_value"]) for r in store.rows()})
        store.close()
    assert values[0] == values[1]
    grown = load_spec(write_spec(tmp_path, extra='\n[[strategies]]\nname = "ga"\npopsize = 6\n'))
    store = Store(tmp_path / "a.sqlite")
    summary = run_spec(grown, store, progress=False, log=lambda line: None)
    assert (summary.total, summary.skipped, summary.ran) == (12, 8, 4)


def test_report_files_and_one_table_row_per_cell(tmp_path):
    spec = load_spec(write_spec(tmp_path, passes=12))
    store = Store(tmp_path / "r.sqlite")
    run_spec(spec, store, progress=False, log=lambda line: None)
    store.close()
    out = tmp_path / "report"
    assert main(["bench", "report", str(tmp_path / "r.sqlite"), "--out", str(out)]) == 0
    names = {p.name for p in out.iterdir()}
    assert {
        "cells.csv",
        "cells.md",
        "summary.csv",
        "summary.md",
        "convergence_time.png",
        "convergence_passes.png",
        "images_class_8.jpg",
        "images_channel_blocks.3_5.jpg",
    } <= names
    cells = (out / "cells.csv").read_text().strip().splitlines()
    assert len(cells) == 1 + 8
    assert len((out / "cells.md").read_text().strip().splitlines()) == 4 + 8  # title, blank, header, rule
    assert len((out / "summary.csv").read_text().strip().splitlines()) == 1 + 4
    header = cells[0].split(",")
    row = dict(zip(header, cells[1].split(",")))
    assert float(row["high_freq_share"]) >= 0 and row["passes"]
    class_rows = [line for line in cells[1:] if line.startswith("class:8")]
    assert all(line.split(",")[header.index("transfer_prob")] for line in class_rows)


@pytest.mark.slow
def test_dask_executor_runs_cells_on_a_local_cluster(tmp_path):
    distributed = pytest.importorskip("distributed")
    spec = load_spec(write_spec(tmp_path, passes=12))
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        address = cluster.scheduler_address.replace("tcp://", "dask://")
        store = Store(tmp_path / "r.sqlite")
        summary = run_spec(spec, store, executor=address, progress=False, log=lambda line: None)
        rows = store.rows()
        store.close()
    assert (summary.ran, summary.failed) == (8, 0)
    assert len(rows) == 8 and all(r["forwards"] > 0 for r in rows)


def test_unknown_executor_is_a_clear_error(tmp_path):
    spec = load_spec(write_spec(tmp_path))
    with pytest.raises(FvoptError, match="unknown executor"):
        run_spec(spec, Store(tmp_path / "r.sqlite"), executor="ray://x", progress=False)


@pytest.mark.parametrize(
    "patch, message",
    [
        ({"seeds": [0, 0]}, "spec bench.seeds: 0 appears twice"),
        ({"params": ["fft", "fft"]}, "spec bench.params: 'fft' appears twice"),
        ({"targets": ["class:8", "class:8"]}, "spec bench.targets: 'class:8' appears twice"),
        ({"budget": {"seconds": float("nan")}}, "spec bench.budget.seconds: must be a number > 0, not nan"),
        ({"budget": {"seconds": float("inf")}}, "spec bench.budget.seconds: must be a number > 0, not inf"),
        ({"budget": {"steps": 2.5}}, "spec bench.budget.steps: must be an integer >= 1, not 2.5"),
        ({"size": 0}, "spec bench.size: must be an integer in [1, 16384], not 0"),
        ({"max_batch": 0}, "spec bench.max_batch: must be an integer >= 1"),
        ({"seeds": [-1]}, "spec bench.seeds[0]: must be an integer in [0, 2147483647], not -1"),
        ({"device": "gpu"}, "spec bench.device: 'gpu' is not allowed: must be auto, cpu, cuda, cuda:N or mps"),
        ({"budget": {"forwards": 3}}, "too small for one step of ga"),
        ({"models": ["lite0", "lite0"]}, "spec bench.models: 'lite0' appears twice"),
        ({"size": "64"}, "spec bench.size: must be an integer in [1, 16384], not the text '64'"),
        ({"size": 64.5}, "spec bench.size: must be an integer in [1, 16384], not 64.5"),
        ({"seeds": [2**31]}, "spec bench.seeds[0]: must be an integer in [0, 2147483647], not 2147483648"),
        ({"seeds": ["0"]}, "spec bench.seeds: must be a non-empty list of int"),
        ({"budget": {"passes": True}}, "spec bench.budget.passes: must be an integer >= 1, not True"),
        ({"budget": {"seconds": -float("inf")}}, "spec bench.budget.seconds: must be a number > 0, not -inf"),
        ({"budget": {"passes": 0}}, "spec bench.budget.passes: must be an integer >= 1, not 0"),
        ({"budget": {"forwards": 1.5}}, "spec bench.budget.forwards: must be an integer >= 1, not 1.5"),
        ({"max_batch": "all"}, "spec bench.max_batch: must be an integer >= 1, not the text 'all'"),
        ({"device": "cuda:x"}, "spec bench.device: 'cuda:x' is not allowed: must be auto, cpu, cuda, cuda:N or mps"),
        ({"device": 0}, "spec bench.device: 0 is not allowed: must be auto, cpu, cuda, cuda:N or mps"),
        ({"transforms": 5}, "spec bench.transforms: must be default, lucent, color, none, or a chain"),
        ({"name": ""}, "spec bench.name: must be a non-empty text, not ''"),
        ({"transfer_model": 1}, "spec bench.transfer_model: must be a model name, not 1"),
    ],
)
def test_spec_numbers_and_duplicates_are_refused_with_the_key_path(patch, message):
    raw = {"bench": {"targets": ["class:8"], "budget": {"passes": 100}, **patch}, "strategies": [{"name": "ga"}]}
    with pytest.raises(FvoptError) as err:
        parse_spec(raw)
    assert message in str(err.value)


@pytest.mark.parametrize(
    "entry, message",
    [
        ({"name": 5}, "spec strategies[0].name: must be an optimizer name (see `fvopt optimizers`), not 5"),
        ({"name": "ga", "label": ""}, "spec strategies[0].label: must be a non-empty text, not ''"),
        ({"name": "ga", "label": 3}, "spec strategies[0].label: must be a non-empty text, not 3"),
    ],
)
def test_strategy_entries_of_the_wrong_type_are_refused_with_the_key_path(entry, message):
    raw = {"bench": {"targets": ["class:8"], "budget": {"passes": 100}}, "strategies": [entry]}
    with pytest.raises(FvoptError) as err:
        parse_spec(raw)
    assert message in str(err.value)


def test_max_batch_auto_is_accepted_as_in_fvopt_viz():
    raw = {
        "bench": {"targets": ["class:8"], "budget": {"passes": 100}, "max_batch": "auto"},
        "strategies": [{"name": "ga"}],
    }
    assert {c.max_batch for c in parse_spec(raw).cells} == {"auto"}


def test_a_device_this_machine_lacks_is_refused_with_the_key_path():
    import torch

    device = "cuda:0" if not torch.cuda.is_available() else f"cuda:{torch.cuda.device_count()}"
    raw = {
        "bench": {"targets": ["class:8"], "budget": {"passes": 100}, "device": device},
        "strategies": [{"name": "ga"}],
    }
    with pytest.raises(FvoptError, match=r"^spec bench\.device: "):
        parse_spec(raw)


def test_two_strategy_entries_running_the_same_thing_are_refused():
    raw = {
        "bench": {"targets": ["class:8"], "budget": {"passes": 100}},
        "strategies": [{"name": "adam", "lr": 0.1}, {"name": "adam", "lr": 0.1, "label": "again"}],
    }
    with pytest.raises(
        FvoptError,
        match=r"strategies\[1\]: runs the same optimizer with the same options as "
        r"strategies\[0\]",
    ):
        parse_spec(raw)


def test_checked_numbers_keep_the_cell_keys_of_committed_studies():
    """Checking the budget must not rewrite it: cell keys hash the spec's values as written."""
    root = Path(__file__).resolve().parents[1]
    spec = load_spec(root / "studies" / "optimizer_choice" / "spec.toml")
    store = Store(root / "studies" / "optimizer_choice" / "results" / "results.sqlite", readonly=True)
    done = store.done_keys()
    store.close()
    assert {c.key for c in spec.cells} == done


def _sha(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


FOREIGN = {
    "foreign table": ["CREATE TABLE users (id INTEGER)"],
    "cells of another shape": ["CREATE TABLE cells (x TEXT)"],
    "fvopt's cells with one more column": [SCHEMA.replace("finished_at REAL", "finished_at REAL, note TEXT")],
    "fvopt's cells beside a foreign table": [SCHEMA, "CREATE TABLE users (id INTEGER)"],
    "a view only": ["CREATE VIEW answer AS SELECT 42"],
    "foreign table in WAL mode": ["PRAGMA journal_mode=WAL", "CREATE TABLE users (id INTEGER)"],
}


@pytest.mark.parametrize(
    "kind, name",
    [(k, "theirs.db") for k in FOREIGN]
    + [("not sqlite", "theirs.db"), ("foreign table", "the?ir#s%20.db"), ("not sqlite", "the?ir#s.db")],
)
def test_a_database_another_program_owns_is_refused_without_changing_a_byte(tmp_path, capsys, kind, name):
    db = tmp_path / name
    if kind == "not sqlite":
        db.write_text("name,score\nada,3\n")
    else:
        con = sqlite3.connect(db)
        for statement in FOREIGN[kind]:
            con.executescript(statement)
        con.commit()
        con.close()
    spec = write_spec(tmp_path)
    before, siblings = _sha(db), set(tmp_path.iterdir())
    assert main(["bench", "run", str(spec), "--db", str(db), "--quiet"]) == 2
    assert main(["bench", "report", str(db), "--out", str(tmp_path / "rep")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all("left unchanged" in line for line in err), err
    assert _sha(db) == before and set(tmp_path.iterdir()) == siblings  # no -wal, -shm or report folder either


def test_report_on_an_empty_or_missing_file_creates_nothing(tmp_path, capsys):
    empty = tmp_path / "empty.sqlite"
    empty.touch()
    assert main(["bench", "report", str(empty), "--out", str(tmp_path / "rep")]) == 2
    assert main(["bench", "report", str(tmp_path / "missing.sqlite"), "--out", str(tmp_path / "rep")]) == 2
    err = capsys.readouterr().err
    assert "is empty" in err and "does not exist" in err
    assert empty.stat().st_size == 0 and sorted(p.name for p in tmp_path.iterdir()) == ["empty.sqlite"]


def test_report_out_onto_an_existing_file_is_a_clear_error(tmp_path, capsys):
    target = tmp_path / "report.md"
    target.write_text("mine")
    assert main(["bench", "report", str(tmp_path / "x.sqlite"), "--out", str(target)]) == 2
    assert "is a file; --out names a folder" in capsys.readouterr().err and target.read_text() == "mine"


@pytest.mark.slow
@pytest.mark.parametrize("workers", ["1", "2"])
def test_ctrl_c_keeps_finished_cells_abandons_the_running_ones_and_says_how_to_resume(tmp_path, workers):
    spec, db = write_spec(tmp_path, passes=60), tmp_path / "r.sqlite"  # cells of ~1.5 s: a stop lands mid-run
    cmd = bench_command(spec, db, "--workers", workers)
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True, env=ONE_THREAD
    )
    deadline = time.time() + 300
    while not finished(db) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.1)
    assert proc.poll() is None, "the run ended before the first cell was stored"
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C reaches the whole process group, workers included
    sent = time.time()
    out, err = proc.communicate(timeout=120)
    assert time.time() - sent < 30, "the running cells are abandoned, not waited for"
    assert set(tmp_path.iterdir()) == {spec, db}, "the store was closed (no -wal/-shm left)"
    before = finished(db)
    assert proc.returncode == 130, err
    assert 1 <= len(before) < 8
    # exactly one line, with the count the database really holds
    assert err.strip() == (
        f"fvopt: interrupted: {len(before)} of 8 cells done in {db}, the running ones abandoned; "
        "run the same command again to resume"
    )
    con = read_only(db)
    rows = con.execute("SELECT status, final, image FROM cells").fetchall()  # no half cell: all finished and scored
    con.close()
    assert len(rows) == len(before) and all(status == "done" and final and image for status, final, image in rows)
    again = subprocess.run(cmd, capture_output=True, text=True, env=ONE_THREAD)
    assert again.returncode == 0, again.stderr
    assert f"8 cells, {len(before)} already done, {8 - len(before)} ran" in again.stdout
    assert all(finished(db)[k] == t for k, t in before.items())  # resumed: the finished cells were not redone


TINY = """
[bench]
name = "one"
size = {size}
targets = ["{target}"]
budget = {{ passes = 12 }}
{extra}

[[strategies]]
name = "adam"
"""


def one_cell_spec(tmp_path: Path, target: str = "channel:blocks.3:5", extra: str = "", size: int = 64) -> Path:
    path = tmp_path / "one.toml"
    path.write_text(TINY.format(target=target, extra=extra, size=size))
    return path


@pytest.mark.parametrize(
    "target, extra, size, message",
    [
        ("channel:blocks.3:5", 'models = ["lite0", "nomodel"]', 64, "spec bench.models[1]: unknown model 'nomodel'"),
        ("channel:blocks.3:5", 'transfer_model = "lite9"', 64, "spec bench.transfer_model: unknown model 'lite9'"),
        ("channel:blocks.3:999", "", 64, "spec bench.targets[0] on lite0: unit 999 is out of range: layer blocks.3"),
        ("channel:nolayer:1", "", 64, "spec bench.targets[0] on lite0: unknown layer 'nolayer'"),
        ("class:1000", "", 64, "spec bench.targets[0] on lite0: class 1000 is out of range"),
        (
            "channel:blocks.3:5-diversity:blocks.3",
            "",
            64,
            "spec bench.targets[0] on lite0: 'channel:blocks.3:5 + -1*diversity:blocks.3' has a diversity term",
        ),
        ("channel:blocks.3:5", "", 16, "spec bench.size: 16 px is too small for lite0: at least 32 px"),
        ("channel:blocks.3:5", "", 2048, "spec bench.size: 1 image(s) of 2048x2048 px need about"),
    ],
)
def test_what_only_the_model_can_tell_is_refused_before_the_database_is_created(
    tmp_path, capsys, monkeypatch, target, extra, size, message
):
    monkeypatch.setattr("fvopt.runtime.memory.available_bytes", lambda device: 2**30)  # a machine with 1 GB free
    db = tmp_path / "r.sqlite"
    spec = one_cell_spec(tmp_path, target, extra, size)
    assert main(["bench", "run", str(spec), "--db", str(db), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"fvopt: error: {message}") and len(err.splitlines()) == 1, err
    assert not db.exists()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--executor", "ray://x"], "unknown executor 'ray://x'"),
        (["--executor", "dask://host"], "unknown executor 'dask://host'"),
        (["--executor", "dask://host:99999"], "unknown executor 'dask://host:99999': use dask://HOST:PORT (a port in"),
        (["--workers", str((os.cpu_count() or 1) + 1)], "workers must be an integer in [1, "),
        (
            ["extra.sqlite"],
            "unexpected 'extra.sqlite' after the spec: name the results database with --db extra.sqlite",
        ),
        (["--out", "rep"], "--out belongs to `fvopt bench report`"),
    ],
)
def test_bench_options_are_checked_before_the_database_is_created(tmp_path, capsys, argv, message):
    db = tmp_path / "r.sqlite"
    spec = one_cell_spec(tmp_path)
    assert main(["bench", "run", str(spec), *argv, "--db", str(db), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert sorted(tmp_path.iterdir()) == [spec]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["bench", "run", "SPEC", "--db", ""], "the results database needs a file name"),
        (["bench", "run", "SPEC", "--db", "FOLDER"], "is a folder, not a file"),
        (["bench", "run", "SPEC", "--db", "SPEC/x.sqlite"], "cannot be created: '"),
        (["bench", "run", "FOLDER", "--db", "r.sqlite"], "spec file 'FOLDER' is a folder"),
        (["bench", "run", "missing.toml"], "spec file 'missing.toml' does not exist"),
        (["bench", "report"], "usage: fvopt bench report RESULTS.sqlite --out DIR"),
        (["bench", "report", "r.sqlite", "--db", "x.sqlite"], "--db belongs to a spec run, not to a report"),
        (["bench", "report", "r.sqlite", "--workers", "2"], "--workers belongs to a spec run, not to a report"),
        (["bench", "report", "FOLDER"], "results database 'FOLDER' is a folder, not a file"),
        (["bench", "report", "SPEC"], "is not an SQLite database"),
        (["bench", "report", "r.sqlite", "--out", ""], "the report folder needs a name"),
    ],
)
def test_bench_and_report_misuse_is_one_line_and_writes_nothing(tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    spec, folder = one_cell_spec(tmp_path), tmp_path / "folder"
    folder.mkdir()
    if "r.sqlite" in argv and "report" in argv:  # a real results database to misuse the report on
        Store(tmp_path / "r.sqlite").close()
    before = {p: _sha(p) for p in tmp_path.iterdir() if p.is_file()}
    argv = [a.replace("SPEC", str(spec)).replace("FOLDER", str(folder)) for a in argv]
    message = message.replace("FOLDER", str(folder))
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert {p: _sha(p) for p in tmp_path.iterdir() if p.is_file()} == before and not any(folder.iterdir())


def test_odd_file_names_and_a_report_rewritten_in_its_folder(tmp_path, capsys):
    """'?', '#' and '%' are URI syntax to SQLite: the database must still be this file, and reading
    it for the report must leave nothing beside it; an existing report folder is rewritten."""
    db = tmp_path / "we?ird#1%20.sqlite"
    assert main(["bench", "run", str(one_cell_spec(tmp_path)), "--db", str(db), "--quiet"]) == 0
    out = tmp_path / "report"
    out.mkdir()
    (out / "cells.csv").write_text("stale\n")
    (out / "failed.md").write_text("# Failed cells\n\n- an old failure\n")
    assert main(["bench", "report", str(db), "--out", str(out)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.toml", "report", db.name]
    assert (out / "cells.csv").read_text().splitlines()[1].startswith("lite0,channel:blocks.3:5,adam,fft,")
    assert "None" in (out / "failed.md").read_text() and "old failure" not in (out / "failed.md").read_text()
    printed = capsys.readouterr().out
    assert f"files to {out}: cells.csv, cells.md," in printed and "report.html" in printed


def test_report_keeps_two_models_apart(tmp_path):
    """Medians, panels and image grids are per (model, target): one model's cells never stand in for
    another's. The second model's row is the first's, relabeled, with a value 10 times larger."""
    db = tmp_path / "r.sqlite"
    assert main(["bench", "run", str(one_cell_spec(tmp_path)), "--db", str(db), "--quiet"]) == 0
    store = Store(db)
    (row,) = store.rows()
    other = {**row, "key": "other", "model": "other", "final": {**row["final"], "value": 10 * row["final"]["value"]}}
    store.save(other)
    store.close()
    files = write_report(db, tmp_path / "report")
    names = {f.name for f in files}
    assert {"images_lite0_channel_blocks.3_5.jpg", "images_other_channel_blocks.3_5.jpg"} <= names
    summary = (tmp_path / "report" / "summary.csv").read_text().splitlines()
    assert summary[0].startswith("model,target,") and len(summary) == 3
    values = {line.split(",")[0]: float(line.split(",")[6]) for line in summary[1:]}
    assert values["other"] == pytest.approx(10 * values["lite0"])


def _workers_of(pid: int) -> list[int]:
    """The pool's worker processes of a bench process (not its resource tracker)."""
    children = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        children += [int(c) for c in (task / "children").read_text().split()]
    return [c for c in children if b"resource_tracker" not in Path(f"/proc/{c}/cmdline").read_bytes()]


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc to find the workers")
def test_a_worker_killed_by_the_system_is_not_taken_for_ctrl_c(tmp_path):
    """Workers ignore Ctrl-C, so a dead worker means the system killed it (memory) or it crashed:
    one line that says so, the finished cells kept, exit 2, never "interrupted"."""
    spec, db = write_spec(tmp_path, passes=60), tmp_path / "r.sqlite"  # cells of ~1.5 s: a stop lands mid-run
    proc = subprocess.Popen(
        bench_command(spec, db, "--workers", "2"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ONE_THREAD,
    )
    deadline = time.time() + 300
    while not finished(db) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.1)
    assert proc.poll() is None, "the run ended before the first cell was stored"
    workers = _workers_of(proc.pid)
    assert workers
    os.kill(workers[0], signal.SIGKILL)
    out, err = proc.communicate(timeout=120)
    kept = finished(db)
    assert proc.returncode == 2, err
    assert (
        err.strip().startswith("fvopt: error: a worker process died while running cells")
        and len(err.strip().splitlines()) == 1
    ), err
    assert f"{len(kept)} of 8 cells done in '{db}' are kept" in err and 1 <= len(kept) < 8


def test_a_class_the_transfer_model_lacks_is_refused_before_the_database_is_created(tmp_path, capsys, monkeypatch):
    from fvopt.models import cache
    from tiny import tiny_model

    monkeypatch.setitem(cache._LOADED, ("tiny", "cpu", repr([])), tiny_model())  # a network of 10 classes, as if loaded
    db = tmp_path / "r.sqlite"
    spec = one_cell_spec(tmp_path, "class:12", 'transfer_model = "tiny"')
    assert main(["bench", "run", str(spec), "--db", str(db), "--quiet"]) == 2
    assert capsys.readouterr().err.strip() == (
        "fvopt: error: spec bench.targets[0] on lite0: class 12 is out of range "
        "for the transfer model tiny, which has 10 classes (0..9)"
    )
    assert not db.exists()
