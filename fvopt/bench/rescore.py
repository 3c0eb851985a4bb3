"""`fvopt bench rescore DB --reference DIR`: recompute the quality column of a committed database's
finished cells without re-running any of them.

Quality is a judgment of the stored images, separate from the run (ARCHITECTURE: "a committed
database can be re-judged without re-running a cell"): each cell's images are read back (the exact
float32 images when the cell kept them, else cut out of its 8-bit PNG, and the column says which),
judged by `judging.judge_images` as a fresh cell would be, and written in one transaction per cell
that changes only its `quality` column: counters, traces and final scores stay as the run left them.
An interrupt keeps every cell rescored before it; running the same command again skips the cells
already judged with the same settings (resumable), `force` judges them again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..errors import FvoptError
from .judging import PNG, QualitySettings, check_against, images_of, judge_images, quality_settings
from .store import Store


@dataclass
class RescoreSummary:
    total: int  # finished cells of the database (after the seed filter)
    already: int  # judged before with the same settings, skipped
    rescored: int = 0
    failed: int = 0  # cells whose images could not be read or judged (their quality holds the error)
    from_png: int = 0  # judged from the 8-bit PNG: the database kept no exact image
    interrupted: bool = False
    left: int = 0  # still to do (interrupted or over the limit)
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)


def pending(rows: list[dict], settings: QualitySettings, force: bool = False) -> list[dict]:
    """The cells still to judge with `settings`, blocks first: ordered by seed, parameterization,
    target and strategy, so that a rescore stopped part way has judged whole paired blocks (every
    strategy of a (target, seed)) rather than a scatter of cells."""
    todo = [
        r
        for r in rows
        if force or not (isinstance(r.get("quality"), dict) and r["quality"].get("settings") == settings.asdict())
    ]
    return sorted(todo, key=lambda r: (r["seed"], str(r["param"]), str(r.get("model")), r["target"], r["strategy"]))


def rescore(
    db: str | Path,
    reference: str | None,
    judge: str | None = None,
    measures=None,
    *,
    force: bool = False,
    seeds: list[int] | None = None,
    limit: int | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> RescoreSummary:
    """Judge the finished cells of `db` with `reference` ('builtin' or a folder), `judge` (a model name,
    default lite1 for lite0) and `measures`; only cells of `seeds` when given, at most `limit` of them.
    Everything is checked before the database is opened to write: the settings, and the judge and
    measures against every model and target the database holds."""
    settings = quality_settings(reference, judge, measures)
    if seeds is not None and (
        not isinstance(seeds, (list, tuple)) or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)
    ):
        raise FvoptError(f"seeds must be a list of integers, not {seeds!r}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise FvoptError(f"limit must be a positive number of cells, not {limit!r}")
    reader = Store(db, readonly=True)
    try:
        rows = reader.rows("done")
    finally:
        reader.close()
    Store.check(db)  # a rescore writes: a database that cannot be written is refused before any cell is judged
    if not rows:
        raise FvoptError(f"results database '{db}' holds no finished cells to rescore")
    if seeds is not None:
        missing = sorted(set(seeds) - {r["seed"] for r in rows})
        if missing:
            raise FvoptError(
                f"seed {missing[0]} is not in '{db}', which holds seeds "
                f"{', '.join(str(s) for s in sorted({r['seed'] for r in rows}))}"
            )
        rows = [r for r in rows if r["seed"] in seeds]
    from ..objectives import parse_target

    targets = sorted({r["target"] for r in rows})
    check_against(
        settings, sorted({str(r["model"]) for r in rows}), targets, {t: parse_target(t).slots for t in targets}
    )
    todo = pending(rows, settings, force)
    summary = RescoreSummary(total=len(rows), already=len(rows) - len(todo))
    if limit is not None:
        summary.left, todo = max(0, len(todo) - limit), todo[:limit]
    if not todo:
        return summary
    store = Store(db)  # migrated forward (a backup copy beside it) when it is of an earlier schema version
    start = time.perf_counter()
    bar = _bar(len(todo), progress)
    try:
        for i, row in enumerate(todo):
            try:
                quality = _judge_row(row, settings)
                store.set_quality(row["key"], quality)  # one transaction: the old value or the new, never half
            except KeyboardInterrupt:
                summary.interrupted, summary.left = True, summary.left + len(todo) - i
                break
            summary.rescored += 1
            summary.from_png += quality.get("image_source") == PNG
            if "error" in quality:
                summary.failed += 1
                summary.errors.append(
                    f"{row['target']} {row['strategy']} {row['param']} seed {row['seed']}: {quality['error']}"
                )
                if log:
                    log(f"FAILED {summary.errors[-1]}")
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
        store.close()
        summary.seconds = time.perf_counter() - start
    return summary


def _judge_row(row: dict, settings: QualitySettings) -> dict:
    """A stored cell's quality, as `judging.judge_images` gives it for a fresh cell; the image read
    and the scores as saved (for cells from before the evaluator scored them) included."""
    from ..models.cache import cached_model

    try:
        images, source = images_of(row)
    except FvoptError as err:
        return {"settings": settings.asdict(), "error": str(err)}
    render = (row.get("extra") or {}).get("render")
    as_saved = "value_8bit" not in (row.get("final") or {})
    return judge_images(
        images,
        row["target"],
        cached_model(str(row["model"])),
        settings,
        seed=int(row["seed"]),
        render=render if isinstance(render, int) else None,
        source=source,
        as_saved=as_saved,
    )


def _bar(total: int, progress: bool):
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="rescore", unit="cell")


def summary_line(db: str | Path, s: RescoreSummary, settings_text: str) -> str:
    """What a rescore did, in one line (the CLI prints it)."""
    parts = [f"{s.rescored} of {s.total} cells rescored in {s.seconds:.0f} s ({settings_text})"]
    if s.already:
        parts.append(f"{s.already} already judged with these settings")
    if s.from_png:
        parts.append(f"{s.from_png} from their 8-bit PNG (the database kept no exact image)")
    if s.failed:
        parts.append(f"{s.failed} failed (their quality column holds the error)")
    if s.left:
        parts.append(f"{s.left} left: run the same command again to continue")
    return f"{db}: " + "; ".join(parts)
