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
from fvopt.bench.store import Store
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
    if not db.exists():
        return {}
    with sqlite3.connect(db) as con:
        return dict(con.execute("SELECT key, finished_at FROM cells WHERE status = 'done'").fetchall())


def test_spec_expands_into_cells_with_low_dimensional_zero_order_params(tmp_path):
    spec = load_spec(write_spec(tmp_path))
    assert len(spec.cells) == 8
    used = {(c.strategy, c.param_used) for c in spec.cells}
    assert used == {("adam", "fft"), ("cmaes", "fft:k=8")}
    assert len({c.key for c in spec.cells}) == 8


@pytest.mark.parametrize("patch, message", [
    ({"bench": {"budget": {"passes": 10}, "targets": ["class:8"], "sizee": 3}}, "spec bench.sizee: unknown key"),
    ({"bench": {"budget": {"passes": -5}, "targets": ["class:8"]}}, "spec bench.budget.passes: must be an integer >= 1, not -5"),
    ({"bench": {"budget": {"passes": 10}, "targets": ["class:8"]}, "strategies": [{"name": "adma"}]},
     "spec strategies[0]: unknown optimizer 'adma'"),
    ({"bench": {"budget": {"passes": 10}, "targets": ["class:8"]}, "strategies": [{"name": "cmaes", "popsiz": 3}]},
     "spec strategies[0]: optimizer 'cmaes' does not take option 'popsiz'. Did you mean: popsize?"),
    ({"bench": {"budget": {"passes": 10}, "targets": ["chanel:x:1"]}}, "spec bench.targets[0]"),
    ({"bench": {"budget": {"passes": 10}}}, "spec bench.targets: is required"),
])
def test_malformed_specs_name_the_key(patch, message):
    raw = {"strategies": [{"name": "adam"}], **patch}
    with pytest.raises(FvoptError) as err:
        parse_spec(raw)
    assert message in str(err.value)


def test_malformed_spec_exits_2_before_anything_runs(tmp_path, capsys):
    spec = tmp_path / "bad.toml"
    spec.write_text('[bench]\ntargets = ["class:8"]\nbudget = { seconds = -1 }\n[[strategies]]\nname = "adam"\n')
    db = tmp_path / "r.sqlite"
    assert main(["bench", str(spec), "--db", str(db), "--quiet"]) == 2
    assert "bench.budget.seconds" in capsys.readouterr().err
    assert not db.exists()


def test_interrupted_run_resumes_without_redoing_finished_cells(tmp_path):
    spec, db = write_spec(tmp_path, passes=150), tmp_path / "r.sqlite"
    cmd = [sys.executable, "-m", "fvopt.cli", "bench", str(spec), "--db", str(db), "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while len(finished(db)) < 2 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = finished(db)
    assert 2 <= len(before) < 8, "the kill should land in the middle of the run"
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    after = finished(db)
    assert len(after) == 8
    assert f"{len(before)} already done, {8 - len(before)} ran" in out
    assert all(after[k] == t for k, t in before.items())  # finished cells were not redone


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
    spec = load_spec(write_spec(tmp_path))
    store = Store(tmp_path / "r.sqlite")
    run_spec(spec, store, progress=False, log=lambda line: None)
    store.close()
    out = tmp_path / "report"
    assert main(["bench", "report", str(tmp_path / "r.sqlite"), "--out", str(out)]) == 0
    names = {p.name for p in out.iterdir()}
    assert {"cells.csv", "cells.md", "summary.csv", "summary.md", "convergence_time.png", "convergence_passes.png",
            "images_class_8.jpg", "images_channel_blocks.3_5.jpg"} <= names
    cells = (out / "cells.csv").read_text().strip().splitlines()
    assert len(cells) == 1 + 8
    assert len((out / "cells.md").read_text().strip().splitlines()) == 4 + 8  # title, blank, header, rule
    assert len((out / "summary.csv").read_text().strip().splitlines()) == 1 + 4
    header = cells[0].split(",")
    row = dict(zip(header, cells[1].split(",")))
    assert float(row["high_freq_share"]) >= 0 and row["passes"]
    class_rows = [line for line in cells[1:] if line.startswith("class:8")]
    assert all(line.split(",")[header.index("transfer_prob")] for line in class_rows)


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


@pytest.mark.parametrize("patch, message", [
    ({"seeds": [0, 0]}, "spec bench.seeds: 0 appears twice"),
    ({"params": ["fft", "fft"]}, "spec bench.params: 'fft' appears twice"),
    ({"targets": ["class:8", "class:8"]}, "spec bench.targets: 'class:8' appears twice"),
    ({"budget": {"seconds": float("nan")}}, "spec bench.budget.seconds: must be a number > 0, not nan"),
    ({"budget": {"seconds": float("inf")}}, "spec bench.budget.seconds: must be a number > 0, not inf"),
    ({"budget": {"steps": 2.5}}, "spec bench.budget.steps: must be an integer >= 1, not 2.5"),
    ({"size": 0}, "spec bench.size: must be an integer in [1, 16384], not 0"),
    ({"max_batch": 0}, "spec bench.max_batch: must be an integer >= 1"),
    ({"seeds": [-1]}, "spec bench.seeds[0]: must be an integer in [0, 2147483647], not -1"),
    ({"device": "gpu"}, "spec bench.device: must be auto, cpu, cuda or cuda:N, not 'gpu'"),
    ({"budget": {"forwards": 3}}, "too small for one step of ga"),
])
def test_spec_numbers_and_duplicates_are_refused_with_the_key_path(patch, message):
    raw = {"bench": {"targets": ["class:8"], "budget": {"passes": 100}, **patch}, "strategies": [{"name": "ga"}]}
    with pytest.raises(FvoptError) as err:
        parse_spec(raw)
    assert message in str(err.value)


def test_two_strategy_entries_running_the_same_thing_are_refused():
    raw = {"bench": {"targets": ["class:8"], "budget": {"passes": 100}},
           "strategies": [{"name": "adam", "lr": 0.1}, {"name": "adam", "lr": 0.1, "label": "again"}]}
    with pytest.raises(FvoptError, match=r"strategies\[1\]: runs the same optimizer with the same options as "
                                         r"strategies\[0\]"):
        parse_spec(raw)


def test_checked_numbers_keep_the_cell_keys_of_committed_studies():
    """Checking the budget must not rewrite it: cell keys hash the spec's values as written."""
    root = Path(__file__).resolve().parents[1]
    spec = load_spec(root / "studies" / "optimizer_choice" / "spec.toml")
    db = sqlite3.connect(f"file:{root / 'studies' / 'optimizer_choice' / 'results' / 'results.sqlite'}?mode=ro",
                         uri=True)
    done = {k for (k,) in db.execute("SELECT key FROM cells WHERE status = 'done'")}
    assert {c.key for c in spec.cells} == done


def _sha(path: Path) -> str:
    import hashlib
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("kind", ["foreign table", "cells of another shape", "not sqlite"])
def test_a_database_another_program_owns_is_refused_without_changing_a_byte(tmp_path, capsys, kind):
    db = tmp_path / "theirs.db"
    if kind == "not sqlite":
        db.write_text("name,score\nada,3\n")
    else:
        con = sqlite3.connect(db)
        con.execute("CREATE TABLE users (id INTEGER)" if kind == "foreign table" else "CREATE TABLE cells (x TEXT)")
        con.commit()
        con.close()
    before = _sha(db)
    siblings = set(tmp_path.iterdir())
    assert main(["bench", str(write_spec(tmp_path)), "--db", str(db), "--quiet"]) == 2
    assert main(["bench", "report", str(db), "--out", str(tmp_path / "rep")]) == 2
    err = capsys.readouterr().err
    assert "left unchanged" in err and len(err.strip().splitlines()) == 2
    assert _sha(db) == before and set(tmp_path.iterdir()) == siblings | {tmp_path / "spec.toml"}


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
def test_ctrl_c_keeps_finished_cells_abandons_the_current_one_and_says_how_to_resume(tmp_path, workers):
    spec, db = write_spec(tmp_path, passes=150), tmp_path / "r.sqlite"
    cmd = [sys.executable, "-m", "fvopt.cli", "bench", str(spec), "--db", str(db), "--quiet", "--workers", workers]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.time() + 180
    while not finished(db) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C reaches the whole process group, workers included
    out, err = proc.communicate(timeout=120)
    before = finished(db)
    assert proc.returncode == 130, err
    assert "interrupted:" in err and "run the same command again to resume" in err and "Traceback" not in err
    assert 1 <= len(before) < 8
    with sqlite3.connect(db) as con:  # no half cell: every stored row is a finished, scored cell
        rows = con.execute("SELECT status, final FROM cells").fetchall()
    assert all(status == "done" and final for status, final in rows)
    again = subprocess.run(cmd[:-2], capture_output=True, text=True)
    assert again.returncode == 0 and f"{len(before)} already done" in again.stdout
