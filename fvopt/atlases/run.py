"""Running an atlas: batches of units on the bench's executors, each finished unit a cell in the bench store.

One batch is one run of `visualize` on `channel:LAYER:i,j,...` (one image per unit, a forward holds up to
--max-batch images). A gradient optimizer updates all units of a batch together; a zero-order one (cmaes,
sep-cmaes, ng:...) keeps one search per unit, a population per unit, all scored in the same batched
forwards. Each unit of a finished batch is saved as its own cell (one transaction each): killing the
atlas at any moment keeps every saved unit, and the next start skips them by their content key.
"""
from __future__ import annotations

import io
import json
import math
import platform
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..errors import FvoptError
from ..stops import StopReason
from .plan import DATABASE, MARKER, META, Batch, Plan, Settings, Unit, check_site

ATLAS_MEASURES_WITH_REFERENCE = ("natural_ratio", "plausibility", "mis", "spectral_slope")
ATLAS_MEASURES_WITHOUT = ("spectral_slope",)


def measures_for(settings: Settings) -> list[str]:
    """The quality measures of each unit: per-unit measures only (diversity compares the images of a batch,
    which here are different units; transfer is a class measure)."""
    if settings.measures not in ("default", None):
        return [m for m in settings.measures.split(",") if m]
    return list(ATLAS_MEASURES_WITH_REFERENCE if settings.reference != "none" else ATLAS_MEASURES_WITHOUT)


@dataclass
class Job:
    settings: Settings
    batch: Batch
    max_batch: int
    device: str = "cpu"


def run_batch(job: Job, threads: int | None = None) -> list[dict]:
    """One batch (a pure function of the job, so any executor runs it): its units' rows for the store."""
    from ..bench.cell import cached_model
    from ..quality import judge
    from ..viz import visualize
    from ..version import __version__

    if threads:
        torch.set_num_threads(threads)
    s, b = job.settings, job.batch
    model = cached_model(s.model, job.device)
    vis = visualize(model, b.target, s.param, b.optimizer, steps=s.steps, size=s.size, seed=s.seed,
                    device=job.device, transforms=s.transforms, max_batch=job.max_batch, measures="none")
    result = vis.result
    if vis.interrupted:
        raise KeyboardInterrupt
    final = vis.trace["final"]
    per = final.get("per_image", {})
    quality: dict = {}
    nan_stopped = StopReason.of(result.stop_reason) is StopReason.NONFINITE
    if not nan_stopped:
        reference = None if s.reference == "none" else s.reference
        try:
            quality = judge(result.images, b.target, model, reference=_reference(reference),
                            measures=measures_for(s), side=s.size, seed=s.seed)
        except FvoptError as err:
            quality = {"error": str(err)}
    n = len(b.units)
    rows = []
    for i, index in enumerate(b.units):
        image = result.images[i:i + 1]
        buffer = io.BytesIO()
        from ..images import grid
        grid(image).save(buffer, format="PNG")
        value = _num(per.get("value", [None] * n)[i])
        robust = _num(per.get("robust_value", [None] * n)[i])
        stopped = nan_stopped or value is None
        unit_quality = _unit_quality(quality, i)
        rows.append({
            "key": None, "model": s.model, "target": f"channel:{b.layer}:{index}", "strategy": b.optimizer,
            "strategy_name": b.optimizer, "options": vis.trace.get("options") or {}, "param": s.param,
            "param_used": vis.trace["param"], "param_dim": vis.trace["param_dim"], "seed": s.seed, "size": s.size,
            "budget": {"steps": s.steps}, "transforms": s.transforms, "status": "done",
            "stop_reason": result.stop_reason, "forwards": result.forwards, "backwards": result.backwards,
            "seconds": result.seconds / n, "steps": result.steps, "max_step_seconds": None,
            "final": {"value": value, "robust_value": robust, "nan_stopped": stopped},
            "trace": [{"step": r.get("step"), "best": r.get("best")} for r in result.trace],
            "extra": {"layer": b.layer, "unit": index, "batch": b.units, "batch_seconds": result.seconds,
                      "batch_forwards": result.forwards, "batch_backwards": result.backwards,
                      "stop_reason": result.stop_reason},
            # the 8-bit PNG only: exact float32 copies (bench's image_exact) of thousands of units would
            # make a site's database hundreds of MB; the measures were judged on the exact images above
            "image": buffer.getvalue(), "quality": unit_quality,
            "fvopt_version": __version__, "torch_version": torch.__version__,
            "device": f"{job.device} ({platform.machine()}, {torch.get_num_threads()} threads)",
        })
    return rows


_REFERENCES: dict = {}


def _reference(name):
    """Reference sets are read once per process (judge reads the same cache files for every batch)."""
    if name is None:
        return None
    if name not in _REFERENCES:
        from ..quality.reference import reference_set
        _REFERENCES[name] = reference_set(name)
    return _REFERENCES[name]


def _num(v) -> float | None:
    return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else None


def _unit_quality(quality: dict, i: int) -> dict:
    """The batch's judge() output cut to image i: each measure, its interval and controls, the reference named."""
    if not quality:
        return {"note": "not judged: the run stopped before its budget (NaN or infinite objective)"}
    if "error" in quality:
        return {"error": quality["error"]}
    out = {k: quality.get(k) for k in ("reference", "judge", "measures")}
    per = quality.get("per_image", {})
    for key, values in per.items():
        if key != "unit" and isinstance(values, list) and len(values) > i:
            out[key] = values[i]
    out.update({k: v for k, v in quality.items() if k.endswith("_absent")})
    return out


def write_meta(site: Path, plan: Plan, meta: dict | None) -> dict:
    """atlas.json: the settings, and the union of the layers, units per layer and optimizers ever asked for."""
    from ..atomic import write_text
    old = meta or {}
    layers = list(dict.fromkeys(list(old.get("layers", [])) + plan.layers))
    channels = {**old.get("channels", {}), **plan.channels}
    optimizers = list(dict.fromkeys(list(old.get("optimizers", [])) + plan.optimizers))
    new = {"kind": MARKER, "version": 1, "settings": plan.settings.as_dict(), "layers": layers, "channels": channels,
           "optimizers": optimizers, "shards": sorted({*map(tuple, old.get("shards", [])), plan.shard}),
           "unit_range": plan.unit_range if not old else (old.get("unit_range") if old.get("unit_range") ==
                                                          plan.unit_range else None)}
    site.mkdir(parents=True, exist_ok=True)
    write_text(site / META, json.dumps(new, indent=1))
    return new


@dataclass
class AtlasSummary:
    total: int
    skipped: int
    ran: int
    failed: list[str]
    stopped: list[str]  # units whose run stopped on a NaN or infinite objective
    interrupted: bool
    seconds: float

    def line(self) -> str:
        parts = [f"atlas: {self.ran} unit runs done now, {self.skipped} already done, of {self.total}"]
        if self.failed:
            parts.append(f"{len(self.failed)} failed ({', '.join(self.failed[:6])}{', ...' if len(self.failed) > 6 else ''})")
        if self.stopped:
            parts.append(f"{len(self.stopped)} stopped on NaN ({', '.join(self.stopped[:6])}"
                         f"{', ...' if len(self.stopped) > 6 else ''})")
        if self.interrupted:
            parts.append("interrupted: the finished units are kept, rerun to complete")
        return "; ".join(parts) + f"; {self.seconds:.1f} s"


def run_plan(plan: Plan, site: Path, workers: int = 1, executor: str | None = None, progress: bool = True,
             log=None) -> AtlasSummary:
    """Run the plan's cells the site's store does not hold, saving each unit as it finishes."""
    from ..bench.runner import _executor, _no_interrupts, _shutdown, check_executor, threads_per_worker
    from ..bench.store import Store
    from concurrent.futures.process import BrokenProcessPool

    check_executor(executor, workers)
    meta = check_site(site, plan.settings)
    Store.check(site / DATABASE)
    pool, gather = _executor(executor, workers)
    started = time.time()
    try:
        write_meta(site, plan, meta)
        store = Store(site / DATABASE)
    except BaseException:
        pool.shutdown()
        raise
    log = log or (lambda line: tqdm.write(line))
    done = store.done_keys()
    cells = plan.cells()
    skipped = sum(plan.key(u, o) in done for u, o in cells)
    batches = plan.batches(done)
    threads = threads_per_worker(workers) if not executor and workers > 1 else None
    failed, stopped, ran, interrupted, broken = [], [], 0, False, False
    bar = tqdm(total=len(cells) - skipped, desc="atlas", unit="unit", disable=not progress)
    jobs = [Job(plan.settings, b, plan.max_batch) for b in batches]
    try:
        for job, future in _finished(pool, gather, jobs, threads):
            b = job.batch
            try:
                rows = future.result()
            except KeyboardInterrupt:
                raise
            except BrokenProcessPool:
                broken = True
                break
            except Exception as err:  # the batch's units are recorded as failed, the others go on
                text = "".join(traceback.format_exception(err))
                for index in b.units:
                    unit = Unit(b.layer, index)
                    store.save({"key": plan.key(unit, b.optimizer), "spec_name": "atlas", "spec_hash": plan.settings.hash,
                                "model": plan.settings.model, "target": f"channel:{b.layer}:{index}",
                                "strategy": b.optimizer, "param": plan.settings.param, "seed": plan.settings.seed,
                                "status": "failed", "error": f"{type(err).__name__}: {err}", "traceback": text,
                                "extra": {"layer": b.layer, "unit": index}})
                    failed.append(f"{unit.name} {b.optimizer}")
                log(f"FAILED {b.target} {b.optimizer}: {type(err).__name__}: {err}")
                bar.update(len(b.units))
                continue
            for row in rows:
                unit = Unit(row["extra"]["layer"], row["extra"]["unit"])
                row.update(key=plan.key(unit, b.optimizer), spec_name="atlas", spec_hash=plan.settings.hash)
                store.save(row)
                ran += 1
                if row["final"]["nan_stopped"]:
                    stopped.append(f"{unit.name} {b.optimizer}")
                bar.update(1)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        with _no_interrupts():
            bar.close()
            _shutdown(pool, interrupted or broken)
            store.close()
    if broken:
        raise FvoptError(f"a worker process died while running the atlas (often for lack of memory): the finished "
                         f"units in '{site / DATABASE}' are kept; run again with fewer --workers to resume")
    return AtlasSummary(len(cells), skipped, ran, failed, stopped, interrupted, time.time() - started)


def _finished(pool, gather, jobs: list[Job], threads):
    from ..bench.runner import InlineExecutor
    if isinstance(pool, InlineExecutor):
        for job in jobs:
            yield job, pool.submit(run_batch, job, threads)
        return
    futures = {pool.submit(run_batch, job, threads): job for job in jobs}
    for future in gather(futures):
        yield futures[future], future
