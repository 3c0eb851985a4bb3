"""Trace exports on hand-made cells whose answers are known: the tidy CSV (running max, per-problem
normalization, passes) and IOHprofiler's format, parsed back the way IOHanalyzer reads it."""

import csv
import json
import math
import re
import zipfile
from pathlib import Path

import pytest

from fvopt.bench.export import (
    IOH_HEADER,
    TIDY_COLUMNS,
    export_iohprofiler,
    export_tidy_csv,
    ioh_points,
    running_best,
    zip_folder,
)
from fvopt.bench.store import Store
from fvopt.errors import FvoptError

ROOT = Path(__file__).resolve().parents[1]


def cell(strategy, seed, trace, model="m", target="channel:x:1", param="fft", dim=12):
    """A stored row as the store returns it; trace rows (forwards, backwards, value, best)."""
    rows = [
        {"step": i + 1, "time_s": 0.5 * (i + 1), "forwards": f, "backwards": b, "value": v, "best": best}
        for i, (f, b, v, best) in enumerate(trace)
    ]
    last = rows[-1] if rows else {"forwards": 0, "backwards": 0}
    finite = [r["best"] for r in rows if isinstance(r["best"], float) and math.isfinite(r["best"])]
    return {
        "model": model,
        "target": target,
        "strategy": strategy,
        "param": param,
        "param_used": param,
        "param_dim": dim,
        "seed": seed,
        "size": 64,
        "budget": {"passes": 100},
        "status": "done",
        "stop_reason": "passes",
        "forwards": last["forwards"],
        "backwards": last["backwards"],
        "seconds": 1.0,
        "trace": rows,
        "final": {"value": 0.0, "robust_value": 0.0, "best_seen": max(finite, default=None)},
    }


# adam: a backward counts two passes, so passes 3, 6, 9; its best dips (a population best), never the running max
ADAM = cell("adam", 0, [(1, 1, 2.0, 2.0), (2, 2, 5.0, 5.0), (3, 3, 1.0, 4.0)])
CMA = cell("cmaes", 1, [(10, 0, 8.0, 8.0), (20, 0, 1.0, 1.0), (30, 0, 10.0, 10.0)])
# another model: its values are 100 times larger and must not shrink model m's normalized values
BIG = cell("adam", 0, [(1, 1, 100.0, 100.0), (2, 2, float("nan"), float("nan")), (3, 3, 400.0, 400.0)], model="m2")
# a problem whose best is negative: no normalization
NEG = cell("adam", 0, [(1, 1, -3.0, -3.0), (2, 2, -1.0, -1.0)], target="class:7")


def read_csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_tidy_csv_has_running_max_passes_and_per_problem_normalization(tmp_path):
    out = export_tidy_csv([ADAM, CMA, BIG, NEG], tmp_path / "traces.csv")
    rows = read_csv(out)
    assert list(rows[0]) == TIDY_COLUMNS and len(rows) == 3 + 3 + 3 + 2
    adam = [r for r in rows if r["model"] == "m" and r["strategy"] == "adam" and r["target"] == "channel:x:1"]
    assert [int(r["passes"]) for r in adam] == [3, 6, 9]
    assert [float(r["best_so_far"]) for r in adam] == [2.0, 5.0, 5.0]  # the dip to 4 is not a new best
    # reference of (m, channel:x:1) = 10 (cmaes): a cell of another model or target does not count
    assert [float(r["normalized"]) for r in adam] == [0.2, 0.5, 0.5]
    cma = [r for r in rows if r["strategy"] == "cmaes"]
    assert [float(r["best_so_far"]) for r in cma] == [8.0, 8.0, 10.0] and float(cma[-1]["normalized"]) == 1.0
    assert [int(r["passes"]) for r in cma] == [10, 20, 30] and cma[0]["seed"] == "1"
    big = [r for r in rows if r["model"] == "m2"]
    assert [float(r["best_so_far"]) for r in big] == [100.0, 100.0, 400.0]  # a NaN step keeps the best
    assert [float(r["normalized"]) for r in big] == [0.25, 0.25, 1.0]
    neg = [r for r in rows if r["target"] == "class:7"]
    assert [r["normalized"] for r in neg] == ["", ""] and float(neg[-1]["best_so_far"]) == -1.0
    assert {r["stop_reason"] for r in rows} == {"passes"} and adam[0]["time_s"] == "0.5"


def test_running_best_ignores_non_finite_values_before_and_after():
    trace = [{"best": v} for v in (float("nan"), 1.0, float("inf"), None, 0.5, 3.0)]
    assert running_best(trace) == [None, 1.0, 1.0, 1.0, 1.0, 3.0]


def test_ioh_points_log_each_improvement_and_the_last_point():
    assert ioh_points(ADAM["trace"]) == [(3, 2.0), (6, 5.0), (9, 5.0)]
    assert ioh_points(CMA["trace"]) == [(10, 8.0), (30, 10.0)]
    assert ioh_points([]) == []


def parse_ioh(folder):
    """Reads every algorithm folder as IOHanalyzer 0.1.8.11 does (read_index_file__json, then
    read_IOH_v1plus): the json's scenarios name the .dat file; there, each line whose first field is
    not a number starts the next run, and run i of the file is run i of the scenario."""
    out = {}
    for meta_path in sorted(Path(folder).glob("*/IOHprofiler_f*.json")):
        meta = json.loads(meta_path.read_text())
        for scenario in meta["scenarios"]:
            blocks = []
            for line in (meta_path.parent / scenario["path"]).read_text().splitlines():
                fields = line.split(" ")
                if not re.search(r"\d+", fields[0]):
                    assert fields == meta["attributes"]
                    blocks.append([])
                else:
                    blocks[-1].append((int(fields[0]), float(fields[1])))
            assert len(blocks) == len(scenario["runs"])
            for run, points in zip(scenario["runs"], blocks):
                key = (meta["function_name"], meta["algorithm"]["name"], scenario["dimension"], run["instance"])
                out[key] = (meta, run, points)
    return out


def test_iohprofiler_files_parse_back_to_the_traces(tmp_path):
    rows = [ADAM, CMA, BIG, NEG, cell("adam", 1, [(1, 1, 7.0, 7.0)]), cell("adam", 2, [], model="m2")]
    files = export_iohprofiler(rows, tmp_path / "ioh")
    names = sorted(str(f.relative_to(tmp_path / "ioh")) for f in files)
    assert names == [
        "adam-fft/IOHprofiler_f1_m_channel_x_1.json",
        "adam-fft/IOHprofiler_f2_m_class_7.json",
        "adam-fft/IOHprofiler_f3_m2_channel_x_1.json",
        "adam-fft/data_f1_m_channel_x_1/IOHprofiler_f1_DIM12.dat",
        "adam-fft/data_f2_m_class_7/IOHprofiler_f2_DIM12.dat",
        "adam-fft/data_f3_m2_channel_x_1/IOHprofiler_f3_DIM12.dat",
        "cmaes-fft/IOHprofiler_f1_m_channel_x_1.json",
        "cmaes-fft/data_f1_m_channel_x_1/IOHprofiler_f1_DIM12.dat",
    ]
    runs = parse_ioh(tmp_path / "ioh")
    assert len(runs) == 5  # the empty-trace cell is left out: a run without a point is no run to IOHanalyzer
    for r in rows[:5]:
        meta, run, points = runs[
            (f"{r['model']}_{r['target']}".replace(":", "_"), f"{r['strategy']} fft", 12, r["seed"])
        ]
        assert meta["maximization"] is True and meta["suite"] == "fvopt"
        # the step function the file describes equals the running max at every trace point
        for point, best in zip(r["trace"], running_best(r["trace"])):
            passes = point["forwards"] + 2 * point["backwards"]
            logged = [y for e, y in points if e <= passes]
            assert (logged[-1] if logged else None) == best
        assert points[-1][0] == run["evals"] == r["forwards"] + 2 * r["backwards"]
        assert run["best"]["y"] == max(y for _, y in points)
        assert run["best"]["evals"] == min(e for e, y in points if y == run["best"]["y"])
    assert runs[("m_channel_x_1", "adam fft", 12, 0)][2] == [(3, 2.0), (6, 5.0), (9, 5.0)]
    assert runs[("m_channel_x_1", "cmaes fft", 12, 1)][2] == [(10, 8.0), (30, 10.0)]
    # one function id per (model, target), the same in every algorithm folder
    ids = {(m["function_name"], m["function_id"]) for m, _, _ in runs.values()}
    assert ids == {("m_channel_x_1", 1), ("m_class_7", 2), ("m2_channel_x_1", 3)}


# The structure of the files `ioh` 0.4.2 writes (ioh.logger.Analyzer on a wrapped maximization
# problem), reduced to keys: ours must have the same fields at every level.
IOH_META_KEYS = {
    "version",
    "suite",
    "function_id",
    "function_name",
    "maximization",
    "algorithm",
    "attributes",
    "scenarios",
}
IOH_SCENARIO_KEYS, IOH_RUN_KEYS, IOH_BEST_KEYS = (
    {"dimension", "path", "runs"},
    {"instance", "evals", "best"},
    {"evals", "y", "x"},
)


def test_iohprofiler_files_have_the_documented_fields_and_names(tmp_path):
    export_iohprofiler([ADAM, CMA, cell("adam", 3, [(1, 1, 1.0, 1.0)], dim=48)], tmp_path)
    for meta_path in tmp_path.glob("*/*.json"):
        meta = json.loads(meta_path.read_text())
        assert set(meta) == IOH_META_KEYS and set(meta["algorithm"]) == {"name", "info"}
        assert meta["attributes"] == ["evaluations", "raw_y"] == IOH_HEADER.split()
        assert tuple(int(p) for p in meta["version"].split(".")) >= (0, 3, 3)  # IOHanalyzer's reader for this format
        assert meta_path.name == f"IOHprofiler_f{meta['function_id']}_{meta['function_name']}.json"
        for scenario in meta["scenarios"]:
            assert set(scenario) == IOH_SCENARIO_KEYS
            assert scenario["path"] == (
                f"data_f{meta['function_id']}_{meta['function_name']}/"
                f"IOHprofiler_f{meta['function_id']}_DIM{scenario['dimension']}.dat"
            )
            assert all(set(run) == IOH_RUN_KEYS and set(run["best"]) == IOH_BEST_KEYS for run in scenario["runs"])
            text = (meta_path.parent / scenario["path"]).read_text()
            assert text.startswith("evaluations raw_y\n") and text.count("evaluations raw_y\n") == len(scenario["runs"])
    adam = json.loads((tmp_path / "adam-fft" / "IOHprofiler_f1_m_channel_x_1.json").read_text())
    assert [s["dimension"] for s in adam["scenarios"]] == [12, 48]  # one scenario (and .dat) per dimension


def test_a_live_ioh_analyzer_writes_the_same_fields(tmp_path):
    """Where the `ioh` package is installed, its own Analyzer output is the reference."""
    ioh = pytest.importorskip("ioh")
    ioh.problem.wrap_real_problem(
        lambda x: float(sum(x)), name="fvsum", optimization_type=ioh.OptimizationType.MAX, lb=-1, ub=1
    )
    problem = ioh.get_problem("fvsum", instance=0, dimension=3)
    logger = ioh.logger.Analyzer(root=str(tmp_path), folder_name="ref", algorithm_name="a", algorithm_info="i")
    problem.attach_logger(logger)
    for x in ([0.1] * 3, [0.5] * 3, [0.2] * 3):
        problem(x)
    logger.close()
    (meta_path,) = (tmp_path / "ref").glob("*.json")
    ref = json.loads(meta_path.read_text())
    assert set(ref) == IOH_META_KEYS and ref["attributes"] == IOH_HEADER.split()
    assert set(ref["scenarios"][0]) == IOH_SCENARIO_KEYS and set(ref["scenarios"][0]["runs"][0]) == IOH_RUN_KEYS
    assert (meta_path.parent / ref["scenarios"][0]["path"]).read_text().splitlines()[0] == IOH_HEADER


def test_a_second_export_replaces_the_first_and_zips_the_same_bytes(tmp_path):
    folder = tmp_path / "ioh"
    export_iohprofiler([ADAM, CMA], folder)
    (folder / "notes.txt").write_text("mine\n")
    export_iohprofiler([ADAM], folder)
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) == [
        "adam-fft/IOHprofiler_f1_m_channel_x_1.json",
        "adam-fft/data_f1_m_channel_x_1/IOHprofiler_f1_DIM12.dat",
        "notes.txt",
    ]  # the cmaes run of the first export is gone; a file of the user's is kept
    first = zip_folder(folder, tmp_path / "a.zip").read_bytes()
    assert zip_folder(folder, tmp_path / "b.zip").read_bytes() == first
    with zipfile.ZipFile(tmp_path / "a.zip") as zf:
        assert "adam-fft/IOHprofiler_f1_m_channel_x_1.json" in zf.namelist()


def test_bad_output_paths_are_one_line_errors(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(FvoptError, match=r"IOHprofiler folder '.*file' is a file"):
        export_iohprofiler([ADAM], tmp_path / "file")
    with pytest.raises(FvoptError, match=r"trace CSV '.*' is a folder"):
        export_tidy_csv([ADAM], tmp_path)
    with pytest.raises(FvoptError, match=r"cannot be created: '.*file' is a file, not a folder"):
        export_tidy_csv([ADAM], tmp_path / "file" / "traces.csv")


@pytest.mark.parametrize("study", ["optimizer_choice", "zero_order_protocol"])
def test_committed_study_exports_agree_with_its_cells(tmp_path, study):
    """A real database, read-only: every cell's last best-so-far in both exports is its best_seen."""
    db = ROOT / "studies" / study / "results" / "results.sqlite"
    if not db.exists():
        pytest.skip(f"{db} is not in this checkout")
    store = Store(db, readonly=True)
    try:
        rows = store.rows("done")[:40]
    finally:
        store.close()
    export_tidy_csv(rows, tmp_path / "traces.csv")
    export_iohprofiler(rows, tmp_path / "ioh")
    last = {}
    for r in read_csv(tmp_path / "traces.csv"):
        last[(r["model"], r["target"], r["strategy"], r["param"], r["seed"])] = float(r["best_so_far"])
    assert len(last) == len(rows)
    runs = parse_ioh(tmp_path / "ioh")
    assert len(runs) == len(rows)
    for r in rows:
        assert last[(r["model"], r["target"], r["strategy"], r["param"], str(r["seed"]))] == r["final"]["best_seen"]
        name = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{r['model']}_{r['target']}").strip("_")
        meta, run, points = runs[(name, f"{r['strategy']} {r['param']}", r["param_dim"], r["seed"])]
        assert points[-1][1] == run["best"]["y"] == r["final"]["best_seen"]
        assert run["evals"] == r["forwards"] + 2 * r["backwards"]


def test_the_report_writes_both_exports(tmp_path):
    import io

    from PIL import Image

    from fvopt.bench.report import write_report

    png = io.BytesIO()
    Image.new("RGB", (4, 4)).save(png, format="PNG")
    store = Store(tmp_path / "r.sqlite")
    for i, row in enumerate((ADAM, CMA)):
        store.save({**row, "key": f"k{i}", "max_step_seconds": 0.1, "image": png.getvalue()})
    store.close()
    files = write_report(tmp_path / "r.sqlite", tmp_path / "report")
    out = tmp_path / "report"
    assert {out / "traces.csv", out / "iohprofiler", out / "iohprofiler.zip"} <= set(files)
    assert len(read_csv(out / "traces.csv")) == 6 and len(parse_ioh(out / "iohprofiler")) == 2
    with zipfile.ZipFile(out / "iohprofiler.zip") as zf:
        assert sorted(zf.namelist()) == sorted(
            p.relative_to(out / "iohprofiler").as_posix() for p in (out / "iohprofiler").rglob("*") if p.is_file()
        )
