"""Run every unfinished cell of a spec on an executor, committing each result as it arrives.

Cells are independent jobs handed to a concurrent.futures-style executor: in this process
(`workers=1`), local worker processes (`workers=N`), or a Dask cluster (`dask://HOST:PORT`).
Only this process writes to the database, one transaction per finished cell.
"""

from __future__ import annotations

import os
import re
import signal
import sys
import threading
import traceback
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from tqdm.auto import tqdm

from ..errors import FvoptError
from ..runtime.scoped import keeps_process_state
from .cell import run_cell
from .spec import Cell, Spec
from .store import Store


@dataclass
class BenchSummary:
    total: int
    skipped: int
    ran: int
    failed: int
    interrupted: bool = False  # Ctrl-C: the finished cells are stored, the running ones were abandoned
    done: int = 0  # cells of the spec the store holds as done now (counted in the store, not here)


def _init_worker(threads: int) -> None:
    """A local worker: its share of the cores, and Ctrl-C left to the main process, which ends the
    workers itself (a worker that caught it would start the next queued cell, or die mid-write of
    a traceback)."""
    import torch
    from tqdm import tqdm as std_tqdm

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for name in ("SIGTERM", "SIGHUP"):  # a forked worker must not inherit the command line's handlers: the main
        if hasattr(signal, name):  # process ends it with SIGTERM, which must end it at once
            signal.signal(getattr(signal, name), signal.SIG_DFL)
    # tqdm's default lock is a multiprocessing semaphore: a worker ended by Ctrl-C would leave it to
    # the resource tracker, which then warns about "leaked semaphore objects" after the one line
    std_tqdm.set_lock(threading.RLock())
    torch.set_num_threads(threads)


class InlineExecutor:
    """Runs each job when it is submitted, in this process: the default for one worker."""

    def submit(self, fn: Callable, *args) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args))
        except BaseException as err:  # noqa: BLE001  (handed to the caller through the future)
            future.set_exception(err)
        return future

    def shutdown(self) -> None:
        pass


def threads_per_worker(workers: int) -> int:
    """Split the cores among the workers so that they do not oversubscribe the machine."""
    return max(1, (os.cpu_count() or 1) // max(1, workers))


@keeps_process_state  # generators, threads and backend switches restored on return (fvopt.runtime.scoped)
def run_spec(
    spec: Spec,
    store: Store | str | Path,
    workers: int = 1,
    executor: str | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> BenchSummary:
    """Run the cells of `spec` that `store` does not hold yet; returns what was done.

    Everything is checked before any cell runs: the executor, the database (a path is checked
    read-only, and created only after every other check passed and the executor is reached) and the
    models against the spec. Ctrl-C keeps every finished cell and abandons the running ones
    (`summary.interrupted`)."""
    check_executor(executor, workers)
    path = None if isinstance(store, Store) else store
    if path is not None:
        Store.check(path)
    check_models(spec)
    pool, gather = _executor(executor, workers)
    try:
        if path is not None:
            store = Store(path)
    except BaseException:
        pool.shutdown()
        raise
    try:
        return _run(spec, store, pool, gather, workers, executor, progress, log)
    finally:
        if path is not None:
            store.close()


def _run(
    spec: Spec,
    store: Store,
    pool,
    gather,
    workers: int,
    executor: str | None,
    progress: bool,
    log: Callable[[str], None] | None,
) -> BenchSummary:
    done = store.done_keys()
    todo = [c for c in spec.cells if c.key not in done]
    log = log or (lambda line: tqdm.write(line))
    threads = threads_per_worker(workers) if not executor and workers > 1 else None
    failed = ran = 0
    interrupted = broken = False
    bar = tqdm(total=len(todo), desc=f"bench {spec.name}", disable=not progress, unit="cell")
    try:
        for cell, future in _finished(pool, gather, todo, threads):
            try:
                row = future.result()
            except KeyboardInterrupt:
                raise
            except BrokenProcessPool:  # workers ignore Ctrl-C: one was killed (out of memory?) or crashed
                broken = True
                break
            except Exception as err:  # a failing cell is recorded and reported, the others go on
                failed += 1
                store.save(
                    {
                        "key": cell.key,
                        "spec_name": spec.name,
                        "spec_hash": spec.hash,
                        "model": cell.model,
                        "target": cell.target,
                        "strategy": cell.strategy,
                        "param": cell.param,
                        "seed": cell.seed,
                        "status": "failed",
                        "error": f"{type(err).__name__}: {err}",
                        "traceback": "".join(traceback.format_exception(err)),
                    }
                )
                log(f"FAILED {cell.target} {cell.strategy} {cell.param} seed {cell.seed}: {err}")
            else:
                row.update(spec_name=spec.name, spec_hash=spec.hash)
                store.save(row)
                ran += 1
                log(_summary_line(row))
            bar.update(1)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        with _no_interrupts():  # a second Ctrl-C must not cut the clean-up short
            bar.close()
            _shutdown(pool, interrupted or broken)
    keys = {c.key for c in spec.cells}
    finished = len(store.done_keys() & keys)
    if broken:
        raise FvoptError(
            f"a worker process died while running cells (killed by the system, often for lack of "
            f"memory, or crashed): {finished} of {len(keys)} cells done in '{store.path}' are kept; run "
            f"again with fewer --workers to resume"
        )
    return BenchSummary(len(spec.cells), len(spec.cells) - len(todo), ran, failed, interrupted, done=finished)


@contextmanager
def _no_interrupts():
    """Ignore Ctrl-C, SIGTERM and SIGHUP for the duration (main thread only; elsewhere signals
    cannot be set): a second stop signal must not cut the clean-up short (a scheduler's SIGKILL still can)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    stops = [getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n)]
    previous = {s: signal.signal(s, signal.SIG_IGN) for s in stops}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _shutdown(pool, interrupted: bool) -> None:
    """Stop the executor; on Ctrl-C, cancel the cells not started and end the running ones now."""
    if not interrupted:
        pool.shutdown()
        return
    if isinstance(pool, ProcessPoolExecutor):
        # Their cells are abandoned (only this process writes results): end the workers first, then
        # shut the pool down and wait, so that its queues are released before this process exits.
        processes = list((getattr(pool, "_processes", None) or {}).values())
        for process in processes:
            process.terminate()
        for process in processes:
            process.join(10)
        pool.shutdown(wait=True, cancel_futures=True)
        return
    try:
        pool.shutdown(wait=False, cancel_futures=True)
    except TypeError:  # executors without cancel_futures (Dask's client)
        pool.shutdown()


def _finished(pool, gather, cells: list[Cell], threads: int | None):
    """(cell, future) pairs as cells finish; inline, one cell runs only after the last was saved."""
    if isinstance(pool, InlineExecutor):
        for cell in cells:
            yield cell, pool.submit(run_cell, cell, threads)
        return
    futures = {pool.submit(run_cell, cell, threads): cell for cell in cells}
    for future in gather(futures):
        yield futures[future], future


def _summary_line(row: dict) -> str:
    f = row["final"]
    return (
        f"{row['target']:24s} {row['strategy']:18s} {row['param_used']:12s} seed {row['seed']}: "
        f"value {f['value']:.4g}, robust {f['robust_value']:.4g}, {row['seconds']:.1f} s, "
        f"{row['forwards']} fwd / {row['backwards']} bwd"
    )


def check_models(spec: Spec) -> None:
    """What only a model can tell, for every cell, before any cell runs: each model loads (once
    here), the image size suits it, each target's layers and units exist in it (and a diversity
    term has images to compare), the class of a class target exists in the transfer model, and one
    step's images fit in memory. Errors name the spec's key path."""
    from ..runtime.memory import check_fits, largest_pass
    from ..models.info import num_classes
    from ..objectives import parse_target
    from ..params import make_param
    from ..problem import Budget, Problem
    from ..strategies import make_strategy
    from ..transforms import make_transforms
    from ..quality.score import refuse_reference_for_channels
    from ..models.cache import cached_model

    bench = spec.raw.get("bench", {}) if isinstance(spec.raw, dict) else {}

    def where(key: str, value: str) -> str:
        """The key path of a model or target as the spec lists it: `spec bench.models[1]`."""
        listed = bench.get(key, [])
        return (
            f"spec bench.{key}[{listed.index(value)}]"
            if isinstance(listed, list) and value in listed
            else f"spec bench.{key}"
        )

    def load(name: str, device: str, key: str, preprocessing: dict | None = None):
        try:
            return cached_model(name, device, preprocessing)
        except FvoptError as err:
            raise FvoptError(f"{where(key, name) if key == 'models' else 'spec bench.' + key}: {err}") from None

    checked: set[tuple] = set()
    for cell in spec.cells:
        model = load(cell.model, cell.device, "models", cell.preprocessing)
        transfer = load(cell.transfer_model, cell.device, "transfer_model") if cell.transfer_model else None
        if cell.judge:  # the judging network loads (spec.py refused it already if it is the optimized one)
            load(cell.judge, cell.device, "judge")
        try:  # RGB reference photos cannot judge another number of channels: refused, not dropped after the run
            refuse_reference_for_channels(cell.reference, model.channels, model.name)
        except FvoptError as err:
            raise FvoptError(f"spec bench.reference: {err}") from None
        if cell.size < model.min_size:
            raise FvoptError(
                f"spec bench.size: {cell.size} px is too small for {model.name}: at least {model.min_size} px"
            )
        if (cell.model, cell.target) not in checked:
            checked.add((cell.model, cell.target))
            objective = parse_target(cell.target)
            try:  # the shape probe below runs the model at this size: refuse one that cannot fit first
                check_fits(model, max(cell.size, *model.input_hw), images=1, backward=False)
            except FvoptError as err:
                raise FvoptError(f"spec bench.size: {err}") from None
            try:  # the problem checks what it checks for `fvopt viz`: layers, units, a diversity term's batch
                if objective.slots < 2 and any(c.what == "diversity" for c in objective.checks):
                    raise FvoptError(
                        f"'{objective}' has a diversity term, which compares the images of a batch, "
                        "and a bench cell makes one image per unit of its target: give it several "
                        "units (channel:blocks.3:5,6 - diversity:blocks.3)"
                    )
                from ..viz import render_size

                Problem(
                    model,
                    objective,
                    make_param(cell.param_used, cell.size, channels=model.channels),
                    make_transforms(cell.transforms),
                    seed=cell.seed,
                    max_batch=cell.max_batch,
                    render=render_size(cell.render, cell.size, model),
                )
                classes = next((c.indices for c in objective.checks if c.what == "class"), None)
                n = num_classes(transfer) if transfer is not None and classes else None
                bad = [i for i in classes if not 0 <= i < n] if n is not None else []
                if bad:
                    raise FvoptError(
                        f"class {bad[0]} is out of range for the transfer model "
                        f"{transfer.name}, which has {n} classes (0..{n - 1})"
                    )
            except FvoptError as err:
                raise FvoptError(f"{where('targets', cell.target)} on {cell.model}: {err}") from None
        step = (cell.model, cell.target, cell.strategy, cell.param_used)
        if step not in checked:  # as `visualize` checks it: the images of one step's largest pass
            checked.add(step)
            strategy = make_strategy(cell.strategy_name, **cell.options)
            slots = parse_target(cell.target).slots
            cost = strategy.check(
                make_param(cell.param_used, cell.size, channels=model.channels), slots, Budget(**cell.budget)
            )
            try:
                check_fits(
                    model,
                    cell.size,
                    images=largest_pass(cost.forwards, cell.max_batch, slots),
                    backward=strategy.uses_gradients,
                )
            except FvoptError as err:
                raise FvoptError(f"spec bench.size: {err}") from None


def check_executor(spec: str | None, workers: int) -> None:
    """The executor named and the number of workers, before any model loads or file is written."""
    cores = os.cpu_count() or 1
    if isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= cores:
        raise FvoptError(
            f"workers must be an integer in [1, {cores}] (the CPU cores here; each worker runs one "
            f"cell at a time with its own copy of the models), not {workers!r}"
        )
    if spec is None:
        return
    match = re.fullmatch(r"dask://[^\s/]+:(\d{1,5})", spec) if isinstance(spec, str) else None
    if match is None or not 1 <= int(match.group(1)) <= 65535:
        raise FvoptError(
            f"unknown executor {spec!r}: use dask://HOST:PORT (a port in 1..65535), or --workers N for local processes"
        )


def _executor(spec: str | None, workers: int, preload: Callable[[], None] | None = None):
    """The pool cells run on. `preload` loads, in this process, what every local worker would load again
    (networks, reference sets): where fork exists (Linux), the workers are then forked from this process and
    start with it loaded, instead of spending seconds each importing torch and reading weights (spawn)."""
    check_executor(spec, workers)
    if spec is None:
        if workers == 1:
            return InlineExecutor(), None
        import multiprocessing

        start = "spawn"
        if preload is not None and sys.platform == "linux":
            preload()
            start = "fork"
        pool = ProcessPoolExecutor(
            workers,
            mp_context=multiprocessing.get_context(start),
            initializer=_init_worker,
            initargs=(threads_per_worker(workers),),
        )
        return pool, as_completed
    if spec.startswith("dask://"):
        try:
            from distributed import Client
            from distributed import as_completed as dask_completed
        except ImportError:
            raise FvoptError("the dask executor needs dask.distributed: pip install 'dask[distributed]'") from None
        address = "tcp://" + spec[len("dask://") :]
        try:
            client = Client(address, timeout=10)
        except (OSError, TimeoutError) as err:
            raise FvoptError(f"cannot reach the Dask scheduler at {address}: {err}") from None

        class DaskPool:
            def submit(self, fn, *args):
                return client.submit(fn, *args, pure=False)

            def shutdown(self):
                client.close()

        return DaskPool(), dask_completed
    raise FvoptError(f"unknown executor {spec!r}: use dask://HOST:PORT, or --workers N for local processes")
