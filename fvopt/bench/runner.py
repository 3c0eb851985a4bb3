"""Run every unfinished cell of a spec on an executor, committing each result as it arrives.

Cells are independent jobs handed to a concurrent.futures-style executor: in this process
(`workers=1`), local worker processes (`workers=N`), or a Dask cluster (`dask://HOST:PORT`).
Only this process writes to the database, one transaction per finished cell.
"""
from __future__ import annotations

import os
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Callable, Iterable

from tqdm.auto import tqdm

from ..errors import FvoptError
from .cell import run_cell
from .spec import Cell, Spec
from .store import Store


@dataclass
class BenchSummary:
    total: int
    skipped: int
    ran: int
    failed: int
    interrupted: bool = False  # Ctrl-C: the finished cells are stored, the current one was abandoned


def _init_worker(threads: int) -> None:
    import torch
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


def run_spec(spec: Spec, store: Store, workers: int = 1, executor: str | None = None, progress: bool = True,
             log: Callable[[str], None] | None = None) -> BenchSummary:
    """Run the cells of `spec` that `store` does not hold yet; returns what was done."""
    done = store.done_keys()
    todo = [c for c in spec.cells if c.key not in done]
    log = log or (lambda line: tqdm.write(line))
    _check_models(todo)
    pool, gather = _executor(executor, workers)
    threads = threads_per_worker(workers) if not executor else None
    failed = ran = 0
    interrupted = False
    bar = tqdm(total=len(todo), desc=f"bench {spec.name}", disable=not progress, unit="cell")
    try:
        for cell, future in _finished(pool, gather, todo, threads):
            try:
                row = future.result()
            except KeyboardInterrupt:
                raise
            except BrokenProcessPool:  # a worker died, e.g. of the same Ctrl-C: not a failure of this cell
                raise KeyboardInterrupt from None
            except Exception as err:  # a failing cell is recorded and reported, the others go on
                failed += 1
                store.save({"key": cell.key, "spec_name": spec.name, "spec_hash": spec.hash, "model": cell.model,
                            "target": cell.target, "strategy": cell.strategy, "param": cell.param, "seed": cell.seed,
                            "status": "failed", "error": f"{type(err).__name__}: {err}"})
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
        bar.close()
        _shutdown(pool, interrupted)
    return BenchSummary(len(spec.cells), len(spec.cells) - len(todo), ran, failed, interrupted)


def _shutdown(pool, interrupted: bool) -> None:
    """Stop the executor; on Ctrl-C, cancel the cells not started and do not wait for running ones."""
    if not interrupted:
        pool.shutdown()
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
    return (f"{row['target']:24s} {row['strategy']:18s} {row['param_used']:12s} seed {row['seed']}: "
            f"value {f['value']:.4g}, robust {f['robust_value']:.4g}, {row['seconds']:.1f} s, "
            f"{row['forwards']} fwd / {row['backwards']} bwd")


def _check_models(cells: Iterable[Cell]) -> None:
    """Load each model once here, so a bad name or a missing weight file fails before any cell runs."""
    from .cell import cached_model
    for name, device in sorted({(c.model, c.device) for c in cells} | {(c.transfer_model, c.device) for c in cells
                                                                       if c.transfer_model}):
        cached_model(name, device)


def _executor(spec: str | None, workers: int):
    if workers < 1:
        raise FvoptError(f"workers must be at least 1, not {workers}")
    if spec is None:
        if workers == 1:
            return InlineExecutor(), None
        import multiprocessing
        pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_init_worker, initargs=(threads_per_worker(workers),))
        return pool, as_completed
    if spec.startswith("dask://"):
        try:
            from distributed import Client
            from distributed import as_completed as dask_completed
        except ImportError:
            raise FvoptError("the dask executor needs dask.distributed: pip install 'dask[distributed]'") from None
        address = "tcp://" + spec[len("dask://"):]
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
    raise FvoptError(f"unknown executor '{spec}': use dask://HOST:PORT, or --workers N for local processes")
