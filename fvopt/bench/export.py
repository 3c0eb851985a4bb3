"""Benchmark traces for other tools: one tidy CSV (pandas, R, a spreadsheet) and IOHprofiler's
format, so that IOHanalyzer's fixed-target, fixed-budget and ECDF views work on fvopt's cells.

IOHprofiler format followed: the JSON-and-.dat layout of IOHexperimenter's `Analyzer` logger
(`ioh.logger.Analyzer`, C++ `ioh::logger::analyzer::v2`), checked against its source
(IOHexperimenter include/ioh/logger/analyzer.hpp at VERSION 0.3.23, tests/python/test_logger.py),
against the files the `ioh` 0.4.2 package writes, and against the reader in IOHanalyzer 0.1.8.11
(R/readFiles.R: read_index_file__json, read_IOH_v1plus). Per algorithm folder:

    IOHprofiler_f{id}_{name}.json          one per function: version, suite, function_id,
                                           function_name, maximization, algorithm {name, info},
                                           attributes, scenarios [{dimension, path, runs [{instance,
                                           evals, best {evals, y, x}}]}]
    data_f{id}_{name}/IOHprofiler_f{id}_DIM{d}.dat
                                           per run, in the order of `runs`: a header line
                                           `evaluations raw_y`, then one `evaluations raw_y` line per
                                           logged point, space-separated

IOHanalyzer reads it with its >= 0.3.3 reader (chosen by `version`), which needs "evaluations" in
`attributes` to take the evaluation counts from the file rather than number the lines.
"""

from __future__ import annotations

import csv
import json
import shutil
import zipfile
from collections import defaultdict
from pathlib import Path

from ..errors import FvoptError
from .rows import running_best  # noqa: F401  (also read from here)
from .rows import passes_of, problem_of, problems, reference_values, slug

TIDY_COLUMNS = [
    "model",
    "target",
    "strategy",
    "param",
    "param_used",
    "seed",
    "step",
    "time_s",
    "forwards",
    "backwards",
    "passes",
    "value",
    "best",
    "best_so_far",
    "normalized",
    "stop_reason",
]
IOH_VERSION = "0.4.2"  # the `ioh` release whose Analyzer output this matches; IOHanalyzer needs >= 0.3.3
IOH_HEADER = "evaluations raw_y"


def _check_target(path: Path, what: str, folder: bool) -> None:
    if not str(path).strip():
        raise FvoptError(f"the {what} needs a name, not an empty one")
    if folder and path.exists() and not path.is_dir():
        raise FvoptError(f"{what} '{path}' is a file; it names a folder")
    if not folder and path.is_dir():
        raise FvoptError(f"{what} '{path}' is a folder; it names a file")
    parent = next((p for p in [path.parent, *path.parent.parents] if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise FvoptError(f"{what} '{path}' cannot be created: '{parent}' is a file, not a folder")


def _cannot_write(path: Path, what: str, err: OSError) -> FvoptError:
    return FvoptError(f"cannot write the {what} '{path}': {err.strerror or err}")


def export_tidy_csv(rows: list[dict], path: str | Path) -> Path:
    """One CSV row per (cell, trace point), so any tool can redo fvopt's curves and statistics:
    passes = forwards + 2 backwards, best_so_far = running max of `best`, normalized = best_so_far
    over the best of its (model, target) (empty where that best is not positive)."""
    path = Path(path)
    _check_target(path, "trace CSV", folder=False)
    ref = reference_values(rows)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=TIDY_COLUMNS)
            writer.writeheader()
            for r in rows:
                scale = ref.get(problem_of(r))
                trace = r["trace"] or []
                for point, best in zip(trace, running_best(trace)):
                    normalized = best / scale if best is not None and scale is not None and scale > 0 else ""
                    writer.writerow(
                        {
                            "model": r.get("model"),
                            "target": r["target"],
                            "strategy": r["strategy"],
                            "param": r["param"],
                            "param_used": r.get("param_used"),
                            "seed": r["seed"],
                            "step": point.get("step"),
                            "time_s": point["time_s"],
                            "forwards": point["forwards"],
                            "backwards": point["backwards"],
                            "passes": passes_of(point),
                            "value": point.get("value"),
                            "best": point.get("best"),
                            "best_so_far": "" if best is None else best,
                            "normalized": normalized,
                            "stop_reason": r.get("stop_reason"),
                        }
                    )
    except OSError as err:
        raise _cannot_write(path, "trace CSV", err) from None
    return path


def ioh_points(trace: list[dict]) -> list[tuple[int, float]]:
    """(evaluations, best so far) where the best improves, and at the last point: IOH's own
    on-improvement logging, which loses nothing of a best-so-far curve (a step function)."""
    points: list[tuple[int, float]] = []
    for i, (point, best) in enumerate(zip(trace, running_best(trace))):
        if best is None:
            continue
        if not points or best > points[-1][1] or i == len(trace) - 1:
            points.append((passes_of(point), best))
    return points


def _algorithms(rows: list[dict]) -> dict[tuple[str, str], str]:
    """A folder name per (strategy, parameterization), unique even where two slug alike."""
    folders: dict[tuple[str, str], str] = {}
    for key in sorted({(r["strategy"], r["param"]) for r in rows}):
        base = name = slug(f"{key[0]}-{key[1]}") or "algorithm"
        n = 1
        while name in folders.values():
            n += 1
            name = f"{base}-{n}"
        folders[key] = name
    return folders


def _clear_earlier_export(folder: Path) -> None:
    """Remove IOHprofiler files an earlier export left in `folder` (only files of that format),
    so that IOHanalyzer never loads a run this database does not hold."""
    for meta in folder.glob("*/IOHprofiler_f*.json"):
        meta.unlink()
    for data in folder.glob("*/data_f*"):
        if data.is_dir() and all(p.is_file() and p.match("IOHprofiler_f*_DIM*.dat") for p in data.iterdir()):
            shutil.rmtree(data)
    for sub in folder.iterdir():
        if sub.is_dir() and not any(sub.iterdir()):
            sub.rmdir()


def export_iohprofiler(rows: list[dict], folder: str | Path) -> list[Path]:
    """IOHprofiler data in `folder` (format: see the module docstring). One function per (model,
    target), numbered from 1 in report order and named by their slug; one algorithm folder per
    (strategy, parameterization); dimension = param_dim; instance = seed; evaluations = model
    passes (forward 1, backward 2); raw_y = best so far; maximization. Positions (`x`) are left
    empty: an image is no point to list. Cells without a finite value are left out. Returns the
    files written."""
    folder = Path(folder)
    _check_target(folder, "IOHprofiler folder", folder=True)
    function_ids = {problem: i + 1 for i, problem in enumerate(problems(rows))}
    folders = _algorithms(rows)
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        groups[(r["strategy"], r["param"], r.get("model"), r["target"])].append(r)
    written: list[Path] = []
    try:
        if folder.is_dir():
            _clear_earlier_export(folder)
        for (strategy, param, model, target), cells in sorted(
            groups.items(), key=lambda g: (folders[g[0][:2]], function_ids[g[0][2:]])
        ):
            fid, name = function_ids[(model, target)], slug(f"{model}_{target}")
            scenarios: dict[int, list[tuple[dict, list]]] = defaultdict(list)
            for r in sorted(cells, key=lambda r: r["seed"]):
                points = ioh_points(r["trace"] or [])
                if points:
                    scenarios[int(r.get("param_dim") or 0)].append((r, points))
            if not scenarios:
                continue
            algorithm_dir = folder / folders[(strategy, param)]
            meta = {
                "version": IOH_VERSION,
                "suite": "fvopt",
                "function_id": fid,
                "function_name": name,
                "maximization": True,
                "algorithm": {
                    "name": f"{strategy} {param}",
                    "info": f"fvopt strategy {strategy}, parameterization {param}",
                },
                "attributes": IOH_HEADER.split(),
                "scenarios": [],
            }
            for dim, runs in sorted(scenarios.items()):
                path = f"data_f{fid}_{name}/IOHprofiler_f{fid}_DIM{dim}.dat"
                lines = []
                for r, points in runs:
                    lines.append(IOH_HEADER)
                    lines += [f"{evals} {best!r}" for evals, best in points]
                meta["scenarios"].append(
                    {
                        "dimension": dim,
                        "path": path,
                        "runs": [
                            {
                                "instance": int(r["seed"]),
                                "evals": max(passes_of(r), points[-1][0]),
                                "best": {
                                    "evals": next(e for e, y in points if y == points[-1][1]),
                                    "y": points[-1][1],
                                    "x": [],
                                },
                            }
                            for r, points in runs
                        ],
                    }
                )
                (algorithm_dir / path).parent.mkdir(parents=True, exist_ok=True)
                (algorithm_dir / path).write_text("\n".join(lines) + "\n")
                written.append(algorithm_dir / path)
            meta_path = algorithm_dir / f"IOHprofiler_f{fid}_{name}.json"
            meta_path.write_text(json.dumps(meta, indent=1) + "\n")
            written.append(meta_path)
    except OSError as err:
        raise _cannot_write(folder, "IOHprofiler folder", err) from None
    return sorted(written)


def zip_folder(folder: str | Path, path: str | Path) -> Path:
    """`folder`'s files in a zip (paths relative to it, fixed timestamps: the same data gives the
    same bytes), for IOHanalyzer's upload box."""
    folder, path = Path(folder), Path(path)
    _check_target(path, "zip file", folder=False)
    try:
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
            for file in sorted(p for p in folder.rglob("*") if p.is_file()):
                info = zipfile.ZipInfo(file.relative_to(folder).as_posix(), date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                zf.writestr(info, file.read_bytes())
    except OSError as err:
        raise _cannot_write(path, "zip file", err) from None
    return path
