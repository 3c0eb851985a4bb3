"""Running an atlas: batches of units on the bench's executors, each finished unit a cell in the bench store.

One batch is one run of `visualize` on `channel:LAYER:i,j,...` (one image per unit, a forward holds up to
--max-batch images), under n times each cell's passes, forwards and seconds for n units (every unit of a batch
spends the same: all step together), so each cell stores its share: the batch's counts over n.
A gradient optimizer updates all units of a batch together; a zero-order one (cmaes,
sep-cmaes, ng:...) keeps one search per unit, a population per unit, all scored in the same batched
forwards. Each unit of a finished batch is saved as its own cell (one transaction each): killing the
atlas at any moment keeps every saved unit, and the next start skips them by their content key. A batch runs
under one seed (the job's settings hold it). A diversity set is a batch of its own: one unit, K images
(`visualize(..., batch=K)`) optimized together, saved as one cell whose image is the K images side by side.
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
from dataclasses import replace

from .plan import DATABASE, MARKER, META, Batch, Plan, Settings, check_site, seeds_of, settings_of

ATLAS_MEASURES_WITH_REFERENCE = ("natural_ratio", "plausibility", "mis", "spectral_slope")
ATLAS_MEASURES_WITHOUT = ("spectral_slope",)


def measures_for(settings: Settings) -> list[str]:
    """The quality measures of each unit: per-unit measures only (diversity compares the images of a batch,
    which here are different units; transfer is a class measure)."""
    if settings.measures not in ("default", None):
        from ..quality import parse_measures

        return parse_measures(settings.measures)[0]  # 'none': []
    return list(ATLAS_MEASURES_WITH_REFERENCE if settings.reference != "none" else ATLAS_MEASURES_WITHOUT)


@dataclass
class Job:
    settings: Settings
    batch: Batch
    max_batch: int
    device: str = "cpu"


def run_batch(job: Job, threads: int | None = None) -> list[dict]:
    """One batch (a pure function of the job, so any executor runs it): its units' rows for the store."""
    from ..models.cache import cached_model
    from ..quality import judge
    from ..quality.reference import cached_reference_set
    from ..viz import visualize

    if threads:
        torch.set_num_threads(threads)
    from ..models import resolve_device

    job = replace(job, device=str(resolve_device(job.device)))  # 'auto': this worker's GPU if it has one
    s, b = job.settings, job.batch
    model = cached_model(s.model, job.device, s.model_options())
    vis = visualize(
        model,
        b.target,
        s.param,
        b.optimizer,
        **s.budget(b.diversity or len(b.units)),
        size=s.size,
        seed=s.seed,
        device=job.device,
        transforms=s.transforms,
        max_batch=job.max_batch,
        measures="none",
        batch=b.diversity or None,
    )
    if b.diversity:
        return [_diversity_row(job, vis, model)]
    result = vis.result
    if vis.interrupted:
        raise KeyboardInterrupt
    final = vis.trace["final"]
    per = final.get("per_image", {})
    quality: dict = {}
    nan_stopped = StopReason.of(result.stop_reason) is StopReason.NONFINITE
    measures = measures_for(s)
    if not nan_stopped and not measures:
        quality = {"measures": []}  # --measures none: nothing to judge
    elif not nan_stopped:
        reference = None if s.reference == "none" else s.reference
        try:
            quality = judge(
                result.images,
                b.target,
                model,
                judge=_judge_net(s, job.device) if s.reference != "none" else None,
                reference=cached_reference_set(reference),
                measures=measures,
                side=s.size,
                seed=s.seed,
                robust=per.get("robust_value"),  # the evaluator's: the target is the bare unit, as judge's would be
            )
        except FvoptError as err:
            quality = {"error": str(err)}
    n = len(b.units)
    rows = []
    for i, index in enumerate(b.units):
        image = result.images[i : i + 1]
        buffer = io.BytesIO()
        from ..io.images import grid

        grid(image).save(buffer, format="PNG")
        value = _num(per.get("value", [None] * n)[i])
        robust = _num(per.get("robust_value", [None] * n)[i])
        stopped = nan_stopped or value is None
        unit_quality = _unit_quality(quality, i)
        rows.append(
            _row(job, vis)
            | {
                "target": f"channel:{b.layer}:{index}",
                "forwards": result.forwards // n,  # every unit of the batch spent the same (they step together)
                "backwards": result.backwards // n,
                "seconds": result.seconds / n,
                "final": {"value": value, "robust_value": robust, "nan_stopped": stopped},
                "extra": {
                    "layer": b.layer,
                    "unit": index,
                    "seed": b.seed,
                    "batch": b.units,
                    "batch_seconds": result.seconds,
                    "batch_forwards": result.forwards,
                    "batch_backwards": result.backwards,
                    "stop_reason": result.stop_reason,
                },
                # the 8-bit PNG only: exact float32 copies (bench's image_exact) of thousands of units would
                # make a site's database hundreds of MB; the measures were judged on the exact images above
                "image": buffer.getvalue(),
                "quality": unit_quality,
            }
        )
    return rows


def _row(job: Job, vis) -> dict:
    """The fields every atlas cell's row shares (a bench store row); each kind adds its target, time,
    final values, extra, image and quality."""
    from ..version import __version__

    s, b, result = job.settings, job.batch, vis.result
    median_step, max_step = result.step_seconds()
    return {
        "key": None,
        "model": s.model,
        "strategy": b.optimizer,
        "strategy_name": b.optimizer,
        "options": vis.trace.get("options") or {},
        "param": s.param,
        "param_used": vis.trace["param"],
        "param_dim": vis.trace["param_dim"],
        "seed": s.seed,
        "size": s.size,
        "budget": s.per_cell(),  # each cell's; a diversity set of K images had K times its passes and forwards
        "transforms": s.transforms,
        "status": "done",
        "stop_reason": result.stop_reason,
        "forwards": result.forwards,
        "backwards": result.backwards,
        "steps": result.steps,
        # the batch's run: its units stepped together, so each cell's step times and warm-up are the run's
        "median_step_seconds": median_step,
        "max_step_seconds": max_step,
        "warmup_seconds": result.warmup_seconds,  # untimed, before the clock (fvopt/warmup.py)
        "trace": [{"step": r.get("step"), "best": r.get("best")} for r in result.trace],
        "fvopt_version": __version__,
        "torch_version": torch.__version__,
        "device": f"{job.device} ({platform.machine()}, {torch.get_num_threads()} threads)",
    }


def _diversity_row(job: Job, vis, model) -> dict:
    """A unit's diversity set as one cell: its K images side by side (one PNG), each image's value, and
    fvopt.quality's `diversity` measure of the set (judged without reference images; absent where it cannot be)."""
    from ..io.images import grid
    from ..quality import judge

    s, b, result = job.settings, job.batch, vis.result
    per = vis.trace["final"].get("per_image", {})
    values = [_num(v) for v in per.get("value", [])]
    robust = [_num(v) for v in per.get("robust_value", [])]
    stopped = StopReason.of(result.stop_reason) is StopReason.NONFINITE or any(v is None for v in values)
    quality: dict = {"note": "not judged: the run stopped before its budget (NaN or infinite objective)"}
    if not stopped:
        try:
            q = judge(result.images, b.target, model, reference=None, measures=["diversity"], side=s.size, seed=s.seed)
            quality = {k: v for k, v in q.items() if k != "per_image"}
        except FvoptError as err:
            quality = {"error": str(err)}
    buffer = io.BytesIO()
    grid(result.images, columns=b.diversity, pad=0).save(buffer, format="PNG")
    return _row(job, vis) | {
        "target": b.target,
        "seconds": result.seconds,
        "final": {
            "value": _mean(values),
            "robust_value": _mean(robust),
            "values": values,
            "robust_values": robust,
            "nan_stopped": stopped,
        },
        "extra": {
            "layer": b.layer,
            "unit": b.units[0],
            "seed": b.seed,
            "diversity": b.diversity,
            "diversity_weight": b.weight,
            "images": int(result.images.shape[0]),
            "stop_reason": result.stop_reason,
        },
        "image": buffer.getvalue(),
        "quality": quality,
    }


def _mean(xs: list) -> float | None:
    return sum(xs) / len(xs) if xs and all(x is not None for x in xs) else None


def preload(settings: Settings) -> None:
    """What every batch reads (the network, the judge network, the reference set), loaded once in this process on
    the CPU: local workers are forked from it with them (bench.runner._executor; on a GPU they are spawned)."""
    from ..models.cache import cached_model
    from ..quality.reference import cached_reference_set

    cached_model(settings.model, "cpu", settings.model_options())
    if settings.reference != "none":
        _judge_net(settings, "cpu")
        cached_reference_set(settings.reference)


def _judge_net(settings: Settings, device: str):
    """The default judge of the atlas's network (fvopt.quality's rule), loaded once per process."""
    from ..models.cache import cached_model
    from ..quality.features import default_judge

    return cached_model(default_judge(settings.model), device)


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
    """atlas.json: the settings (the seed: the first seed the site was asked for), and the union of the layers,
    units per layer, optimizers, seeds and diversity set sizes ever asked for."""
    from ..io.atomic import write_text

    old = meta or {}
    layers = list(dict.fromkeys(list(old.get("layers", [])) + plan.layers))
    channels = {**old.get("channels", {}), **plan.channels}
    optimizers = list(dict.fromkeys(list(old.get("optimizers", [])) + plan.optimizers))
    settings = settings_of(old) if old else plan.settings
    seeds = list(dict.fromkeys((seeds_of(old) if old else []) + plan.seeds))
    diversity = sorted({*old.get("diversity", []), *([plan.diversity] if plan.diversity else [])})
    new = {
        "kind": MARKER,
        "version": 1,
        "settings": settings.as_dict(),
        "layers": layers,
        "channels": channels,
        "optimizers": optimizers,
        "seeds": seeds,
        "diversity": diversity,
        "shards": sorted({*map(tuple, old.get("shards", [])), plan.shard}),
        "unit_range": plan.unit_range
        if not old
        else (old.get("unit_range") if old.get("unit_range") == plan.unit_range else None),
    }
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
        parts = [f"atlas: {self.ran} cells done now, {self.skipped} already done, of {self.total}"]
        if self.failed:
            parts.append(
                f"{len(self.failed)} failed ({', '.join(self.failed[:6])}{', ...' if len(self.failed) > 6 else ''})"
            )
        if self.stopped:
            parts.append(
                f"{len(self.stopped)} stopped on NaN ({', '.join(self.stopped[:6])}"
                f"{', ...' if len(self.stopped) > 6 else ''})"
            )
        if self.interrupted:
            parts.append("interrupted: the finished units are kept, rerun to complete")
        return "; ".join(parts) + f"; {self.seconds:.1f} s"


def run_plan(
    plan: Plan,
    site: Path,
    workers: int = 1,
    executor: str | None = None,
    progress: bool = True,
    log=None,
    device: str = "cpu",
) -> AtlasSummary:
    """Run the plan's cells the site's store does not hold, saving each unit as it finishes. `device` ('auto',
    'cpu', 'cuda', ...) is resolved where each batch runs (a Dask worker has its own)."""
    from ..bench.runner import _executor, _no_interrupts, _shutdown, check_executor, threads_per_worker
    from ..bench.store import Store
    from concurrent.futures.process import BrokenProcessPool

    check_executor(executor, workers)
    meta = check_site(site, plan.settings)
    Store.check(site / DATABASE)
    from ..models import resolve_device

    # local workers forked from this process start with the networks loaded, on a CPU only: CUDA cannot be used in
    # a process forked after it started, so on a GPU they are spawned and load their own
    on_cpu = executor is None and resolve_device(device).type == "cpu"
    pool, gather = _executor(executor, workers, preload=(lambda: preload(plan.settings)) if on_cpu else None)
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
    skipped = sum(plan.key(c) in done for c in cells)
    batches = plan.batches(done)
    threads = threads_per_worker(workers) if not executor and workers > 1 else None
    failed, stopped, ran, interrupted, broken = [], [], 0, False, False
    bar = tqdm(total=len(cells) - skipped, desc="atlas", unit="unit", disable=not progress)
    jobs = [Job(replace(plan.settings, seed=b.seed), b, plan.max_batch, device) for b in batches]
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
                    cell = b.cell(index)
                    extra = {
                        "layer": b.layer,
                        "unit": index,
                        "seed": b.seed,
                        **({"diversity": b.diversity} if b.diversity else {}),
                    }
                    store.save(
                        {
                            "key": plan.key(cell),
                            "spec_name": "atlas",
                            "spec_hash": job.settings.hash,
                            "model": plan.settings.model,
                            "target": b.target if b.diversity else f"channel:{b.layer}:{index}",
                            "strategy": b.optimizer,
                            "param": plan.settings.param,
                            "seed": b.seed,
                            "status": "failed",
                            "error": f"{type(err).__name__}: {err}",
                            "traceback": text,
                            "extra": extra,
                        }
                    )
                    failed.append(_cell_name(cell, plan.seeds))
                log(f"FAILED {b.target} {b.optimizer}: {type(err).__name__}: {err}")
                bar.update(len(b.units))
                continue
            for row in rows:
                cell = b.cell(row["extra"]["unit"])
                row.update(key=plan.key(cell), spec_name="atlas", spec_hash=job.settings.hash)
                store.save(row)
                ran += 1
                if row["final"]["nan_stopped"]:
                    stopped.append(_cell_name(cell, plan.seeds))
                bar.update(1)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        with _no_interrupts():
            bar.close()
            _shutdown(pool, interrupted or broken)
            store.close()
    if broken:
        raise FvoptError(
            f"a worker process died while running the atlas (often for lack of memory): the finished "
            f"units in '{site / DATABASE}' are kept; run again with fewer --workers to resume"
        )
    return AtlasSummary(len(cells), skipped, ran, failed, stopped, interrupted, time.time() - started)


def _cell_name(cell, seeds: list[int]) -> str:
    """'layer:unit optimizer', with its seed when several were asked for, and a diversity set named as such."""
    name = f"{cell.unit.name} {cell.optimizer}" + (f" seed {cell.seed}" if len(seeds) > 1 else "")
    return name + (f" diversity set of {cell.diversity}" if cell.diversity else "")


def _finished(pool, gather, jobs: list[Job], threads):
    from ..bench.runner import InlineExecutor

    if isinstance(pool, InlineExecutor):
        for job in jobs:
            yield job, pool.submit(run_batch, job, threads)
        return
    futures = {pool.submit(run_batch, job, threads): job for job in jobs}
    for future in gather(futures):
        yield futures[future], future
