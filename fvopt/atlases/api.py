"""`fvopt.atlas(...)` (fvopt.atlases.atlas) and `fvopt.atlases.merge(...)`: check everything, run what
is missing, write the site, return the table of units and measures."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import FvoptError
from ..options import IMAGE_SIDE, POSITIVE_INT, SEED, check
from .plan import (
    DATABASE,
    DEFAULT_MAX_BATCH,
    DIVERSITY_WEIGHT,
    META,
    Plan,
    Settings,
    check_site,
    parse_diversity,
    parse_diversity_weight,
    parse_list,
    parse_seeds,
    parse_shard,
    parse_units,
    read_meta,
    resolve_layers,
    seeds_of,
    settings_of,
)


def atlas(
    model: str,
    layers="all",
    optimizers=("adam", "cmaes"),
    *,
    param: str = "fft",
    size: int = 128,
    steps: int = 64,
    seed: int = 0,
    seeds=None,
    diversity: "int | str" = 0,
    diversity_weight: "float | str" = DIVERSITY_WEIGHT,
    reference: str | None = "builtin",
    out: "str | Path" = "atlas",
    workers: int = 1,
    executor: str | None = None,
    shard: "str | tuple[int, int] | None" = None,
    max_batch: int = DEFAULT_MAX_BATCH,
    units: "str | tuple[int, int] | None" = None,
    transforms: str = "default",
    measures: str = "default",
    top: int = 6,
    device: str = "auto",
    progress: bool = True,
    log=None,
):
    """Visualize every channel of `layers` of `model` under each of `optimizers` and `seeds`; returns a pandas
    DataFrame (one row per cell: unit, optimizer, seed, set_size, value, robust_value, each quality measure,
    status, stop_reason).

    `seeds` ('0,1,2' or a list) replaces the one `seed`: each unit, optimizer and seed is a cell. `diversity` K
    (0: none, else 2 or more) adds each unit's diversity set: K images optimized together under the first
    optimizer and seed for `channel:LAYER:u - w*diversity:LAYER` (w = `diversity_weight`, default 1), one cell.

    Gradient optimizers run `max_batch` units per run (one image per unit, updated together); zero-order ones
    (cmaes, ...) also take `max_batch` units per run, each unit with its own search and population, scored
    in shared forwards. Every unit is a cell of the SQLite store `out/atlas.sqlite`: a rerun skips what is
    done, a grown request (more layers, optimizers) runs only what is new. `shard` 'k/N' runs the k-th of N
    slices of the units (join sites with atlas_merge). `units` 'A-B' limits each layer to channels A..B.
    `reference` is a folder, 'builtin' (the scikit-image stand-in) or None: dataset examples and the
    measures that need reference images are then absent. `device` 'auto' (a GPU where the batch runs has one),
    'cpu', 'cuda' or 'cuda:N' (refused here when this machine has no such GPU); the device does not enter a cell's
    key, so a site can be grown on another machine. Everything is checked before any optimization."""
    from ..bench.runner import check_executor
    from ..models import load_model, resolve_device
    from ..strategies import make_strategy
    from ..transforms import make_transforms

    if not isinstance(model, str) or not model.strip():
        raise FvoptError(f"model must be a model name (fvopt models lists them), not {model!r}")
    size = check("size", size, IMAGE_SIDE)
    steps = check("steps", steps, POSITIVE_INT)
    seed = check("seed", seed, SEED)
    if seeds is None:
        seed_list = [seed]
    else:
        seed_list = parse_seeds(seeds)
        if seed not in (0, seed_list[0]):
            raise FvoptError(f"seed {seed} and seeds {seeds!r} both given: give the seeds as one list (--seeds)")
    diversity = parse_diversity(diversity)
    diversity_weight = parse_diversity_weight(diversity_weight, diversity)
    max_batch = check("max_batch", max_batch, POSITIVE_INT)
    check("top", top, POSITIVE_INT)
    shard = parse_shard(shard)
    unit_range = parse_units(units)
    layer_names = parse_list("layers", layers)
    optimizer_names = parse_list("optimizers", optimizers)
    for name in optimizer_names:
        make_strategy(name)  # unknown optimizer: one line with the known ones
    make_transforms(transforms)
    check_executor(executor, workers)
    if not isinstance(device, str):
        raise FvoptError(f"device must be auto, cpu, cuda or cuda:N, not {device!r}")
    if executor is None:
        resolve_device(device)  # an unknown device, or cuda without a GPU: one line now
    ref = "none" if reference in (None, "none") else str(reference)
    if ref != "none":
        from ..quality.reference import reference_set

        reference_set(ref)  # a folder without images is refused now
    settings = Settings(model, param, size, steps, seed_list[0], ref, transforms, measures, diversity_weight)
    out = Path(out)
    check_site(out, settings)  # before the model loads: nothing is written to a folder that is not an atlas
    from ..params import make_param

    net = load_model(model)
    make_param(param, size, channels=net.channels)
    if size < net.min_size:
        raise FvoptError(f"size {size} px is too small for {net.name}: at least {net.min_size} px")
    channels = resolve_layers(net, layer_names, size)
    if unit_range is not None:
        small = [f"{k} ({v})" for k, v in channels.items() if unit_range[1] >= v]
        if small:
            raise FvoptError(f"units {unit_range[0]}-{unit_range[1]} go beyond the channels of {', '.join(small)}")
    plan = Plan(settings, list(channels), channels, optimizer_names, shard, unit_range, max_batch, seed_list, diversity)
    if not plan.units:
        raise FvoptError(f"shard {shard[0]}/{shard[1]} holds no unit: there are fewer units than shards")
    if diversity:
        _check_diversity_fits(net, optimizer_names[0], param, size, steps, diversity, max_batch)

    from .run import run_plan

    summary = run_plan(plan, out, workers=workers, executor=executor, progress=progress, log=log, device=device)
    build_site(out, top=top, progress=progress, net=net)
    (log or print)(summary.line())
    frame = table(out)
    frame.attrs["summary"] = summary
    return frame


def _check_diversity_fits(net, optimizer: str, param: str, size: int, steps: int, k: int, max_batch: int) -> None:
    """A diversity set's K images are one run: refused before any unit runs when its largest pass cannot fit
    in memory (memory.largest_pass, as `visualize` and the bench's spec check count it)."""
    from ..memory import check_fits, largest_pass
    from ..params import make_param
    from ..problem import Budget
    from ..strategies import make_strategy
    from ..strategies.base import search_space

    strategy = make_strategy(optimizer)
    cost = strategy.check(
        search_space(strategy, make_param(param, size, channels=net.channels)), k, Budget(steps=steps)
    )
    try:
        check_fits(net, size, images=largest_pass(cost.forwards, max_batch, k), backward=strategy.uses_gradients)
    except FvoptError as err:
        raise FvoptError(f"diversity {k}: {err}; give a smaller --diversity") from None


def table(site: "str | Path"):
    """The cells and measures a site's store holds, as a pandas DataFrame: one row per unit, optimizer and seed
    (`seed`), and one per diversity set (`set_size` K; 1 for the others; value: the mean of its K images')."""
    import pandas as pd
    from ..bench.store import Store
    from .site import measure_names, unit_numbers

    store = Store(Path(site) / DATABASE, readonly=True)
    try:
        rows = store.rows(status=None)
    finally:
        store.close()
    measures = measure_names([r for r in rows if r["status"] == "done"])
    records = []
    for r in rows:
        extra = r.get("extra") or {}
        nums = unit_numbers(r, measures) if r["status"] == "done" else {}
        records.append(
            {
                "layer": extra.get("layer"),
                "unit": extra.get("unit"),
                "optimizer": r["strategy"],
                "seed": r.get("seed"),
                "set_size": extra.get("diversity") or 1,
                "status": r["status"],
                "stop_reason": r.get("stop_reason"),
                "nan_stopped": bool((r.get("final") or {}).get("nan_stopped")),
                **nums,
                "seconds": r.get("seconds"),
                "error": r.get("error"),
                "key": r["key"],
            }
        )
    frame = pd.DataFrame.from_records(records)
    if len(frame):
        frame = frame.sort_values(["layer", "set_size", "optimizer", "seed", "unit"], kind="stable").reset_index(
            drop=True
        )
    return frame


def build_site(site: "str | Path", top: int = 6, progress: bool = False, net=None) -> Path:
    """(Re)write every page of a site from its store, with each layer's dataset examples (reference cache)."""
    from ..bench.store import Store
    from .site import write_site

    site = Path(site)
    meta = read_meta(site)
    if meta is None:
        raise FvoptError(f"'{site}' is not an fvopt atlas folder (no {META}): was it removed while the atlas ran?")
    settings = settings_of(meta)
    store = Store(site / DATABASE, readonly=True)
    try:
        rows = store.rows(status=None)
    finally:
        store.close()
    examples = {}
    if settings.reference != "none":
        from ..models import load_model
        from ..quality.examples import dataset_examples

        net = net or load_model(settings.model)
        for layer in meta["layers"]:
            run_units = sorted(
                {(r.get("extra") or {}).get("unit") for r in rows if (r.get("extra") or {}).get("layer") == layer}
            )
            if not run_units:
                continue
            found, stats, ref = dataset_examples(
                net,
                f"channel:{layer}:{','.join(map(str, run_units))}",
                settings.reference,
                top=top,
                side=settings.size,
                progress=progress,
            )
            examples[layer] = {
                ex.unit: {
                    "top": list(zip(ref.load(ex.top, stats.side), ex.top_activations)),
                    "bottom": list(zip(ref.load(ex.bottom, stats.side), ex.bottom_activations)),
                    "acts": stats.unit(ex.unit).numpy(),
                }
                for ex in found
            }
    return write_site(site, meta, rows, examples)


def merge(sites: list["str | Path"], out: "str | Path", top: int = 6, progress: bool = True):
    """Join the stores of atlas sites of one request (e.g. `--shard 1/2` and `--shard 2/2`) into `out`.

    Sites of different settings are refused naming the difference; `out` must be new, empty, or an atlas of
    the same settings. Returns the merged table (as `atlas` does)."""
    from ..bench.store import Store
    from ..atomic import write_text

    if len(sites) < 2:
        raise FvoptError(f"merge needs two or more atlas folders, not {len(sites)}")
    metas = []
    for s in sites:
        meta = read_meta(Path(s)) if Path(s).is_dir() else None
        if meta is None or not (Path(s) / DATABASE).is_file():
            raise FvoptError(f"'{s}' is not an fvopt atlas folder (no {META} and {DATABASE}); nothing was merged")
        metas.append(meta)
    first = settings_of(metas[0])
    for s, meta in zip(sites[1:], metas[1:]):
        diff = first.differences(settings_of(meta))
        if diff:
            raise FvoptError(
                f"cannot merge atlases of different requests: '{sites[0]}' and '{s}' differ in "
                f"{'; '.join(diff)}; nothing was merged"
            )
    out = Path(out)
    old = check_site(out, first)
    if any(Path(s).resolve() == out.resolve() for s in sites) and old is None:
        raise FvoptError(f"merge output '{out}' is one of the inputs")
    Store.check(out / DATABASE)
    layers, channels, optimizers, shards, seeds, sets = [], {}, [], [], [], set()
    for meta in ([old] if old else []) + metas:
        layers += meta["layers"]
        channels.update(meta["channels"])
        optimizers += meta["optimizers"]
        shards += [tuple(x) for x in meta.get("shards", [])]
        seeds += seeds_of(meta)
        sets.update(meta.get("diversity", []))
    settings = settings_of(old) if old else first
    merged = {
        "kind": metas[0]["kind"],
        "version": 1,
        "settings": settings.as_dict(),
        "layers": list(dict.fromkeys(layers)),
        "channels": channels,
        "optimizers": list(dict.fromkeys(optimizers)),
        "seeds": list(dict.fromkeys(seeds)),
        "diversity": sorted(sets),
        "shards": sorted(set(shards)),
        "merged_from": [str(s) for s in sites],
    }
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / META, json.dumps(merged, indent=1))
    target = Store(out / DATABASE)
    try:
        have = {k for k in target.done_keys()}
        for s in sites:
            source = Store(Path(s) / DATABASE, readonly=True)
            try:
                for row in source.rows(status=None):
                    if row["key"] in have:
                        continue  # a unit done in two shards: the first done copy is kept
                    target.save({k: v for k, v in row.items() if v is not None})
                    if row["status"] == "done":
                        have.add(row["key"])
            finally:
                source.close()
    finally:
        target.close()
    build_site(out, top=top, progress=progress)
    return table(out)


__all__ = ["atlas", "merge", "table", "build_site"]
