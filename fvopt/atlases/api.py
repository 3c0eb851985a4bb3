"""`fvopt.atlas(...)` (fvopt.atlases.atlas) and `fvopt.atlases.merge(...)`: check everything, run what
is missing, write the site, return the table of units and measures."""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import FvoptError
from ..config.options import IMAGE_SIDE, POSITIVE_INT, check
from ..params.registry import DEFAULT_PARAM
from .plan import (
    DATABASE,
    DEFAULT_PASSES,
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
    model: str | None,
    layers="all",
    optimizers=("adam", "cmaes"),
    *,
    param: str = DEFAULT_PARAM,
    size: int = 128,
    steps: int | None = None,
    passes: int | None = None,
    forwards: int | None = None,
    seconds: float | None = None,
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
    weights: "str | Path | None" = None,
    progress: bool = True,
    log=None,
    config=None,
):
    """Visualize every channel of `layers` of `model` under each of `optimizers` and `seeds`; returns a pandas
    DataFrame (one row per cell: unit, optimizer, seed, set_size, value, robust_value, each quality measure,
    forwards, backwards, passes, seconds, status, stop_reason).

    Budget, per cell, whichever ends first (as `visualize`'s): `steps`, `passes` (a backward counts as two
    forwards), `forwards`, `seconds`. Given none, every optimizer gets 192 passes: what a first-order optimizer
    spends in 64 steps (64 forwards and 64 backwards), so optimizers compare at equal compute (a step of a
    zero-order optimizer is a whole generation: 24 forwards for cmaes on fft:k=8). A run of n units gets n times
    a cell's passes, forwards and seconds. A budget too small for one step of an optimizer is refused.

    `seeds` ('0,1,2' or a list) replaces the one `seed`: each unit, optimizer and seed is a cell. `diversity` K
    (0: none, else 2 or more) adds each unit's diversity set: K images optimized together under the first
    optimizer and seed for `channel:LAYER:u - w*diversity:LAYER` (w = `diversity_weight`, default 1), one cell.

    Gradient optimizers run `max_batch` units per run (one image per unit, updated together); zero-order ones
    (cmaes, ...) also take `max_batch` units per run, each unit with its own search and population, scored
    in shared forwards. Every unit is a cell of the SQLite store `out/atlas.sqlite`: a rerun skips what is
    done, a grown request (more layers, optimizers) runs only what is new. `shard` 'k/N' runs the k-th of N
    slices of the units (join sites with atlas_merge). `units` 'A-B' limits each layer to channels A..B.
    `reference` is a folder, 'builtin' (the scikit-image stand-in) or None / 'none' (no reference, as everywhere in
    fvopt; a folder named none is './none'): dataset examples and the measures that need reference images are
    then absent; `measures` ('default', 'none' or names) are refused before work when unknown or inapplicable.
    `device` 'auto' (a GPU where the batch runs has one),
    'cpu', 'cuda' or 'cuda:N' (refused here when this machine has no such GPU); the device does not enter a cell's
    key, so a site can be grown on another machine. `weights` is a local weight file for `model` (loaded with
    weights_only=True by every worker; it is part of the site's settings). `config` (a fvopt.config.RunConfig, or a
    trace or TOML file, as `visualize` takes) gives the settings the atlas shares with a run (`fvopt options` lists
    them under the atlas): the model when `model` is None, the parameterization, size, budget, seed, transforms,
    reference, measures, device and weights; an argument given with other than its default overrides it.
    Everything is checked before any optimization."""
    if config is not None:
        return atlas(**_with_config(config, dict(locals())))
    from ..bench.runner import check_executor
    from ..models import load_model, resolve_device
    from ..strategies import make_strategy

    if not isinstance(model, str) or not model.strip():
        raise FvoptError(f"model must be a model name (fvopt models lists them), not {model!r}")
    from ..config.run import RUN_SETTINGS

    declared = dict(param=param, seed=seed, transforms=transforms, reference=reference, device=device)
    declared = {name: RUN_SETTINGS[name].checked(value) for name, value in declared.items()}  # as viz and the spec
    seed, device = declared["seed"], declared["device"]
    size = check("size", size, IMAGE_SIDE)  # one side: an atlas's pages show square images
    weights = _check_weights(weights)
    budget = _budget(steps, passes, forwards, seconds)
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
    check_executor(executor, workers)
    if executor is None:
        resolve_device(device)  # an unknown device, or cuda without a GPU: one line now
    ref = _reference_name(reference)
    if ref != "none":
        from ..quality.examples import check_list_sizes
        from ..quality.reference import reference_set

        check_list_sizes(reference_set(ref), top, 2)  # a folder without images, or too few for --top: refused now
    measures = _check_measures(measures, ref != "none")
    settings = Settings(
        model,
        param,
        size,
        budget.get("steps"),
        seed_list[0],
        ref,
        transforms,
        measures,
        diversity_weight,
        budget.get("passes"),
        budget.get("forwards"),
        budget.get("seconds"),
        weights,
    )
    out = Path(out)
    check_site(out, settings)  # before the model loads: nothing is written to a folder that is not an atlas
    from ..params import make_param

    net = load_model(model, **settings.model_options())  # a missing or unfitting weight file: one line, here
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
    _refuse_budgets_below_one_step(net, settings, optimizer_names, diversity)
    if diversity:
        _check_diversity_fits(net, optimizer_names[0], settings, diversity, max_batch)
    if len(optimizer_names) > 1 and set(budget) == {"steps"}:
        (log or print)(
            f"note: --steps {budget['steps']} gives each optimizer {budget['steps']} steps, and their steps differ in "
            "compute (a zero-order step is a whole generation); each cell's passes are stored and shown. "
            "--passes N compares them at equal compute (the default)"
        )

    from .run import run_plan

    summary = run_plan(plan, out, workers=workers, executor=executor, progress=progress, log=log, device=device)
    build_site(out, top=top, progress=progress, net=net)
    (log or print)(summary.line())
    frame = table(out)
    frame.attrs["summary"] = summary
    return frame


def _with_config(config, arguments: dict) -> dict:
    """`atlas`'s arguments with a run configuration's shared settings where the argument is left at its default."""
    import inspect

    from ..config.run import RUN_SETTINGS, RunConfig

    config = RunConfig.coerce(config)
    defaults = {name: p.default for name, p in inspect.signature(atlas).parameters.items()}
    values = config.flat()
    arguments.pop("config")
    if arguments["model"] is None:
        arguments["model"] = values["model"]
    for name, row in RUN_SETTINGS.items():
        if "atlas" in row.commands and name in arguments and arguments[name] == defaults[name]:
            if values[name] is not None and values[name] != row.default:  # the config's own choice
                arguments[name] = values[name]
    return arguments


def _check_weights(weights) -> str | None:
    """A weight file's path as the site records it. 'random' is refused: every worker builds the network again,
    so each would draw other weights, and the cells of one site would show different networks."""
    if weights is None:
        return None
    if not isinstance(weights, (str, os.PathLike)) or not str(weights).strip():
        raise FvoptError(f"weights must be a local weight file, not {weights!r}")
    if str(weights) == "random":
        raise FvoptError(
            "weights 'random' is not allowed in an atlas: each worker would draw other weights; save one draw "
            "(torch.save(model.state_dict(), FILE)) and give --weights FILE"
        )
    if not Path(weights).is_file():
        raise FvoptError(f"weight file '{weights}' does not exist (a local file: torch.save(model.state_dict(), FILE))")
    return str(weights)


def _budget(steps, passes, forwards, seconds) -> dict:
    """Each cell's budget, checked as `visualize` checks it (fvopt.problem.Budget): {name: value} of those given;
    none given: DEFAULT_PASSES passes (equal compute for every optimizer)."""
    from ..problem import Budget

    given = {"steps": steps, "passes": passes, "forwards": forwards, "seconds": seconds}
    given = {k: v for k, v in given.items() if v is not None} or {"passes": DEFAULT_PASSES}
    checked = Budget(**given)  # a bad value: one line naming it
    return {k: getattr(checked, k) for k in given}


def _step_cost(net, settings: Settings, optimizer: str, images: int):
    """(strategy, what one step of `optimizer` costs on a run of `images` images): as `visualize` counts it."""
    from ..params import make_param
    from ..problem import Budget
    from ..strategies import make_strategy
    from ..strategies.base import search_space
    from ..transforms import make_transforms, views_of

    strategy = make_strategy(optimizer)
    space = search_space(strategy, make_param(settings.param, settings.size, channels=net.channels))
    cost = strategy.check(space, images, Budget(**settings.budget(images)))
    return strategy, cost.times(views_of(make_transforms(settings.transforms)))


def _refuse_budgets_below_one_step(net, settings: Settings, optimizers: list[str], diversity: int) -> None:
    """A budget that cannot pay for one step of an optimizer is refused before any unit runs (it would idle)."""
    from ..problem import Budget

    per_cell = Budget(**settings.per_cell())
    for name in optimizers:
        _, cost = _step_cost(net, settings, name, 1)
        per_cell.refuse_if_below(cost, f"{name} (per cell)")
    if diversity:
        _, cost = _step_cost(net, settings, optimizers[0], diversity)
        Budget(**settings.budget(diversity)).refuse_if_below(cost, f"{optimizers[0]} on a diversity set of {diversity}")


def _reference_name(reference) -> str:
    """'none' (None or the word 'none': no reference, as everywhere in fvopt), 'builtin', or a folder (a path
    object named none is the folder './none')."""
    import os

    from ..quality.reference import no_reference

    if no_reference(reference):
        return "none"
    if isinstance(reference, os.PathLike):
        text = os.fspath(reference)
        return f"./{text}" if text in ("none", "builtin") else str(text)
    if not isinstance(reference, str):
        raise FvoptError(
            f"reference must be a folder, 'builtin' or 'none', not {type(reference).__name__} {reference!r}"
        )
    return reference


def _check_measures(measures, has_reference: bool) -> str:
    """The measures as the site records them ('default', 'none' or 'a,b'), refused before any work when a name is
    unknown or cannot apply to an atlas cell (one image of one channel; those that need reference images without
    one), as `visualize` refuses them."""
    from ..quality.score import plan

    if isinstance(measures, (list, tuple)) and all(isinstance(m, str) for m in measures):
        measures = ",".join(measures)
    if not isinstance(measures, str):
        raise FvoptError(f"measures must be 'default', 'none' or comma-separated names, not {measures!r}")
    measures = measures.strip()
    if measures in ("default", "none"):
        return measures
    try:
        plan("channel:LAYER:0", 1, has_reference, measures)  # unknown or inapplicable: one line
    except FvoptError as err:
        raise FvoptError(f"atlas: {err}; nothing was run") from None
    return measures


def _check_diversity_fits(net, optimizer: str, settings: Settings, k: int, max_batch: int) -> None:
    """A diversity set's K images are one run: refused before any unit runs when its largest pass cannot fit
    in memory (memory.largest_pass, as `visualize` and the bench's spec check count it)."""
    from ..runtime.memory import check_fits, largest_pass

    strategy, cost = _step_cost(net, settings, optimizer, k)
    try:
        check_fits(
            net, settings.size, images=largest_pass(cost.forwards, max_batch, k), backward=strategy.uses_gradients
        )
    except FvoptError as err:
        raise FvoptError(f"diversity {k}: {err}; give a smaller --diversity") from None


def table(site: "str | Path"):
    """The cells and measures a site's store holds, as a pandas DataFrame: one row per unit, optimizer and seed
    (`seed`), and one per diversity set (`set_size` K; 1 for the others; value: the mean of its K images').

    `param_used` is the parameterization the optimizer searched (cmaes searches fft:k=8 for fft); `forwards`,
    `backwards`, `passes` (forwards + 2 x backwards) and `seconds` are what the cell spent (a unit's share of its
    batch; a diversity set's are its K images' together)."""
    import pandas as pd
    from ..bench.store import Store
    from .site import measure_names, spent, unit_numbers

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
                "param_used": r.get("param_used"),
                "seed": r.get("seed"),
                "set_size": extra.get("diversity") or 1,
                "status": r["status"],
                "stop_reason": r.get("stop_reason"),
                "nan_stopped": bool((r.get("final") or {}).get("nan_stopped")),
                **nums,
                **spent(r),
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

        net = net or load_model(settings.model, **settings.model_options())
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
    from ..io.atomic import write_text

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
