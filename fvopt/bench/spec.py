"""Benchmark specifications: a TOML file, checked whole before anything runs, expanded into cells.

A cell is one (model, target, strategy, parameterization, seed); every cell of a spec gets the
same budget, image size and transforms. Example:

    [bench]
    name = "example"
    size = 96
    seeds = [0, 1]
    models = ["lite0"]
    targets = ["class:8", "channel:blocks.4:10"]
    params = ["fft", "pixel"]          # zero-order strategies search their low-dimensional forms
    transfer_model = "lite1"           # optional: scores class images under a second model
    budget = { seconds = 10 }          # seconds and/or passes (a backward counts as two) or forwards

    [[strategies]]
    name = "adam"                      # any optimizer name, ng:<Name> or hybrid:A>B
    lr = 0.05                          # any option the strategy takes

    [[strategies]]
    name = "cmaes"
    popsize = 16
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import FvoptError
from ..config.options import IMAGE_SIDE, POSITIVE_INT, SEED
from ..config.run import RUN_SETTINGS
from ..params.registry import DEFAULT_PARAM
from ..problem import BUDGET_OPTIONS

SPEC_ONLY_KEYS = {"name", "transfer_model"}  # the bench's name, and the network its images are transferred to
# every other key is a declared setting's spec key (fvopt/config/run.py): `[bench] size` is `--size`, checked alike
_SPEC_KEYS = [row.spec for row in RUN_SETTINGS.values() if row.spec and not row.spec.startswith("strategies")]
BENCH_KEYS = {key.split(".")[0] for key in _SPEC_KEYS} | SPEC_ONLY_KEYS
# [bench.input]: the models' preprocessing (fvopt.wrap's arguments), e.g. a grayscale network's
# channels = 1, mean = [0.1307], std = [0.3081], input_size = 28, value_range = [0, 255]
INPUT_KEYS = tuple(key.split(".")[1] for key in _SPEC_KEYS if key.startswith("input."))
BUDGET_KEYS = {key.split(".")[1] for key in _SPEC_KEYS if key.startswith("budget.")}
STRATEGY_KEYS = {"name", "label"}  # plus the strategy's own options


QUALITY_FIELDS = ("reference", "judge", "measures")


@dataclass(frozen=True)
class Cell:
    model: str
    target: str
    strategy: str  # the label: name, or the spec's `label`
    strategy_name: str
    options: dict
    param: str  # as the spec names it (the column of the report)
    param_used: str  # what the strategy searched (a low-dimensional form for zero-order ones)
    seed: int
    size: int
    budget: dict
    transforms: str
    transfer_model: str | None = None
    device: str = "cpu"
    max_batch: int | str = 32
    render: int | str | None = None  # the size the network is shown (px, or "lucent"); None: the image's
    input: tuple | None = None  # the models' preprocessing, ((key, value), ...) from [bench.input]; None: their own
    # quality settings (fvopt.quality; fvopt/bench/judging.py): a judgment of the images, not part of the run,
    # so never part of the key: a stored cell is judged again with `fvopt bench rescore`, not re-run
    reference: str | None = None
    judge: str | None = None
    measures: str | tuple[str, ...] | None = None

    @property
    def preprocessing(self) -> dict:
        """[bench.input] as keyword arguments of load_model."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in (self.input or ())}

    @property
    def key(self) -> str:
        """Content hash: an unchanged cell keeps its key when the spec around it changes (a cell
        without a render size or an input table hashes without those keys, so databases written before them resume)."""
        fields = {
            k: v
            for k, v in asdict(self).items()
            if not (k in ("render", "input") and v is None) and k not in QUALITY_FIELDS
        }
        payload = json.dumps(fields, sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()[:20]


@dataclass
class Spec:
    name: str
    cells: list[Cell]
    hash: str
    path: str = ""
    raw: dict = field(default_factory=dict)


def _fail(path: str, message: str) -> FvoptError:
    return FvoptError(f"spec {path}: {message}")


def _check_keys(table: dict, allowed: set[str], where: str) -> None:
    from ..errors import suggest

    for key in table:
        if key not in allowed:
            raise _fail(
                f"{where}.{key}" if where else key,
                f"unknown key.{suggest(key, allowed)} Allowed: {', '.join(sorted(allowed))}",
            )


def _list_of(value, kind, where: str) -> list:
    if isinstance(value, kind):
        value = [value]
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(v, kind) and not isinstance(v, bool) for v in value)
    ):
        raise _fail(where, f"must be a non-empty list of {kind.__name__}, not {value!r}")
    return value


def _input_table(table) -> tuple | None:
    """[bench.input] checked for its keys and value types (each value is checked against the model
    when it loads, before any cell runs), as a hashable tuple of (key, value)."""
    if table is None:
        return None
    if not isinstance(table, dict) or not table:
        raise _fail("bench.input", f"must be a table with {', '.join(INPUT_KEYS)}, not {table!r}")
    _check_keys(table, set(INPUT_KEYS), "bench.input")
    out = []
    for key, value in sorted(table.items()):
        if isinstance(value, bool) or not isinstance(value, (int, float, str, list)):
            raise _fail(f"bench.input.{key}", f"must be {RUN_SETTINGS[key].allowed}, not {value!r}")
        try:
            RUN_SETTINGS[key].checked(value, "value")  # the declared check, as --channels, --mean ... and wrap()
        except FvoptError as err:
            raise _fail(f"bench.input.{key}", str(err).replace("value=", "", 1)) from None
        out.append((key, tuple(value) if isinstance(value, list) else value))  # as written: cell keys hash it
    return tuple(out)


def _search_space(strategy, param: str, size: int, target: str, budget: dict, where: str) -> str:
    """What `strategy` searches for `param` (the one search-space policy, as in `fvopt viz`), after
    checking that it can search it and that the budget pays for one step: refused at load time."""
    from ..objectives import parse_target
    from ..params import make_param
    from ..problem import Budget
    from ..strategies.base import search_space

    space = search_space(strategy, make_param(param, size))
    try:
        cost = strategy.check(space, parse_target(target).slots, Budget(**budget))
        Budget(**budget).refuse_if_below(cost, strategy.name)
    except FvoptError as err:
        raise _fail(where, f"on {param} for target {target}: {err}") from None
    return space.name


def _declared(name: str, value, key: str | None = None):
    """`[bench] name = value` checked by the setting's declared check (fvopt/config/run.py): the same refusal as
    the flag and the Python argument, located in the spec."""
    try:
        return RUN_SETTINGS[name].checked(value, "value")
    except FvoptError as err:
        raise _fail(f"bench.{key or name}", str(err).replace("value=", "", 1)) from None


def _number(value, option, where: str):
    """A number checked for type, range and finiteness, or an error naming the key path. Text is
    refused (TOML has numbers: `size = "64"` is a mistake, not a number)."""
    if isinstance(value, str):
        raise _fail(where, f"must be {option.allowed()}, not the text {value!r}")
    try:
        return option.coerce("value", value)
    except FvoptError:
        raise _fail(where, f"must be {option.allowed()}, not {value!r}") from None


def _unique(values: list, where: str) -> list:
    """Refuse duplicates: they would run the same cell several times for one stored row."""
    seen = set()
    for v in values:
        if v in seen:
            raise _fail(where, f"{v!r} appears twice: each cell would run twice for one stored row; list it once")
        seen.add(v)
    return values


def load_spec(path: str | Path) -> Spec:
    path = Path(path)
    if path.is_dir():
        raise FvoptError(f"spec file '{path}' is a folder: give a TOML file (see benchmarks/example_bench.toml)")
    if not path.is_file():
        raise FvoptError(f"spec file '{path}' does not exist")
    try:
        raw = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise FvoptError(f"spec file '{path}' is not valid TOML: {err}") from None
    except OSError as err:
        raise FvoptError(f"cannot read spec file '{path}': {err.strerror or err}") from None
    return parse_spec(raw, str(path))


def parse_spec(raw: dict, path: str = "<spec>") -> Spec:
    """Check every key, name and number of a spec dict; expand it into cells."""
    _check_keys(raw, {"bench", "strategies"}, "")
    bench = raw.get("bench")
    if not isinstance(bench, dict):
        raise _fail("bench", "missing table [bench]")
    _check_keys(bench, BENCH_KEYS, "bench")
    for key in ("targets", "budget"):
        if key not in bench:
            raise _fail(f"bench.{key}", "is required")
    size = _number(bench.get("size", RUN_SETTINGS["size"].default_for("bench")), IMAGE_SIDE, "bench.size")
    seeds = _unique(
        [
            _number(s, SEED, f"bench.seeds[{i}]")
            for i, s in enumerate(_list_of(bench.get("seeds", [0]), int, "bench.seeds"))
        ],
        "bench.seeds",
    )
    models = _unique(_list_of(bench.get("models", ["lite0"]), str, "bench.models"), "bench.models")
    targets = _unique(_list_of(bench["targets"], str, "bench.targets"), "bench.targets")
    params = _unique(_list_of(bench.get("params", [DEFAULT_PARAM]), str, "bench.params"), "bench.params")
    spec_name = bench.get("name", Path(path).stem)
    if not isinstance(spec_name, str) or not spec_name.strip():
        raise _fail("bench.name", f"must be a non-empty text, not {spec_name!r}")
    transforms = bench.get("transforms", RUN_SETTINGS["transforms"].default_for("bench"))
    if not isinstance(transforms, str):
        raise _fail("bench.transforms", f"must be {RUN_SETTINGS['transforms'].allowed}, not {transforms!r}")
    _declared("transforms", transforms)
    for name in ("reference", "judge", "measures"):
        if bench.get(name) is not None:
            _declared(name, bench[name])
    render = bench.get("render")
    if render is not None and render != "lucent":
        if isinstance(render, str):
            raise _fail("bench.render", f'must be a side in px (e.g. 224) or "lucent", not the text {render!r}')
        render = _number(render, IMAGE_SIDE, "bench.render")
    preprocessing = _input_table(bench.get("input"))
    from .judging import quality_settings

    quality = quality_settings(bench.get("reference"), bench.get("judge"), bench.get("measures"), where="spec bench.")
    transfer = bench.get("transfer_model")
    if transfer is not None and not isinstance(transfer, str):
        raise _fail("bench.transfer_model", f"must be a model name, not {transfer!r}")
    device = bench.get("device", RUN_SETTINGS["device"].default_for("bench"))
    device = _declared("device", device)
    _check_device(device)
    max_batch = bench.get("max_batch", RUN_SETTINGS["max_batch"].default_for("bench"))
    if max_batch != "auto":
        max_batch = _number(max_batch, POSITIVE_INT, "bench.max_batch")
    budget = bench["budget"]
    if not isinstance(budget, dict) or not budget:
        raise _fail("bench.budget", "must be a table with seconds, passes, forwards or steps")
    _check_keys(budget, BUDGET_KEYS, "bench.budget")
    for key, value in budget.items():
        _number(value, BUDGET_OPTIONS[key], f"bench.budget.{key}")  # checked; kept as written (cell keys hash it)

    strategies = raw.get("strategies")
    if not isinstance(strategies, list) or not strategies:
        raise _fail("strategies", "needs at least one [[strategies]] table")

    from ..objectives import parse_target
    from ..params import make_param

    for i, target in enumerate(targets):
        try:
            parse_target(target)
        except FvoptError as err:
            raise _fail(f"bench.targets[{i}]", str(err)) from None
    from .judging import check_against

    check_against(quality, models, targets, {t: parse_target(t).slots for t in targets}, where="spec bench.")
    for i, param in enumerate(params):
        try:
            make_param(param, size)
        except FvoptError as err:
            raise _fail(f"bench.params[{i}]", str(err)) from None

    built = _strategies(strategies)

    cells = []
    for model in models:
        for target in targets:
            for label, name, options, strategy, where in built:
                for param in params:
                    used = _search_space(strategy, param, size, target, budget, where)
                    for seed in seeds:
                        cells.append(
                            Cell(
                                model,
                                target,
                                label,
                                name,
                                options,
                                param,
                                used,
                                seed,
                                size,
                                dict(budget),
                                transforms,
                                transfer,
                                device,
                                max_batch,
                                render,
                                preprocessing,
                                quality.reference,
                                quality.judge,
                                quality.measures,
                            )
                        )
    if len({c.key for c in cells}) != len(cells):  # the checks above make this impossible; never store one row for two
        raise FvoptError(f"spec {path}: two cells are identical: each would run twice for one stored row")
    digest = hashlib.sha256(json.dumps(raw, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return Spec(spec_name, cells, digest, path, raw)


def _strategies(strategies: list) -> list[tuple]:
    """Each [[strategies]] entry checked (its name, label and options, by the strategy's declared options) and built:
    (label, name, options, strategy, where). Two entries that would run the same cells are refused."""
    from ..strategies import make_strategy

    built: list[tuple] = []
    labels = set()
    for i, entry in enumerate(strategies):
        where = f"strategies[{i}]"
        if not isinstance(entry, dict) or "name" not in entry:
            raise _fail(where, "needs a name")
        if not isinstance(entry["name"], str):
            raise _fail(f"{where}.name", f"must be an optimizer name (see `fvopt optimizers`), not {entry['name']!r}")
        if not isinstance(entry.get("label", ""), str) or "label" in entry and not entry["label"].strip():
            raise _fail(f"{where}.label", f"must be a non-empty text, not {entry['label']!r}")
        options = {k: v for k, v in entry.items() if k not in STRATEGY_KEYS}
        try:
            strategy = make_strategy(entry["name"], **options)
        except FvoptError as err:
            raise _fail(where, str(err)) from None
        label = entry.get("label", entry["name"])
        same = next((b for b in built if (b[1], b[2]) == (entry["name"], options)), None)
        if same is not None:
            raise _fail(
                where,
                f"runs the same optimizer with the same options as {same[4]} ('{same[0]}'): "
                "every cell would run twice for one stored row; remove one or change its options",
            )
        if label in labels:
            raise _fail(f"{where}.label", f"'{label}' is used twice: give each entry a distinct label")
        labels.add(label)
        built.append((label, entry["name"], options, strategy, where))
    return built


def _check_device(device: str) -> None:
    """The device must exist here (cells run on it, and the models are loaded here first)."""
    from ..models import resolve_device

    try:
        dev = resolve_device(device)
    except FvoptError as err:
        raise _fail("bench.device", str(err)) from None
    if dev.type == "cuda" and dev.index is not None:
        import torch

        if dev.index >= torch.cuda.device_count():
            raise _fail(
                "bench.device",
                f"'{device}' does not exist: this machine has {torch.cuda.device_count()} "
                f"CUDA device(s) (cuda:0..cuda:{torch.cuda.device_count() - 1})",
            )
