"""What an atlas is asked to do, checked before any work: its settings, its units, batches, shards and cell keys.

An atlas is every unit (channel) of some layers, visualized by several optimizers and seeds under one set
of settings (model, parameterization, size, budget, reference). The settings define a cell besides its unit,
optimizer and seed, so a site holds one set of settings; layers, optimizers and seeds may grow (a grown
request runs only the new cells). `--diversity K` adds one cell per unit: K images optimized together
for the unit with fvopt's `diversity:LAYER` term subtracted (a diversity set). `--shard k/N` takes the
k-th of N contiguous slices of the units, so that separate machines write separate databases which
`fvopt atlas merge` joins.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import FvoptError
from ..params.registry import DEFAULT_PARAM

SETTINGS_KEYS = (
    "model",
    "param",
    "size",
    "steps",
    "seed",
    "reference",
    "transforms",
    "measures",
    "diversity_weight",
    "passes",
    "forwards",
    "seconds",
    "weights",
)
# each cell's budget (fvopt.problem.Budget, whichever ends first); passes, forwards and seconds are per cell: a run
# of n units (or a diversity set of n images) gets n times them, steps are steps of the run
BUDGET_KEYS = ("steps", "passes", "forwards", "seconds")
# with no budget given, every optimizer gets the passes (a backward counts as two forwards) that a first-order
# optimizer spends in DEFAULT_STEPS steps of one image: 64 forwards + 64 backwards = 192 passes per cell
DEFAULT_STEPS = 64
DEFAULT_PASSES = 3 * DEFAULT_STEPS
# a site's seed is the first seed it was asked for; more seeds are more cells, as more optimizers are
COMPARED_KEYS = tuple(k for k in SETTINGS_KEYS if k != "seed")
# the weight w of a diversity set's target `channel:LAYER:u - w*diversity:LAYER` (the Gram similarity of an image
# to the others of its set, in [-1, 1]; a channel's mean activation is of order 1 in the models fvopt ships)
DIVERSITY_WEIGHT = 1.0
MARKER = "fvopt atlas"
META = "atlas.json"
DATABASE = "atlas.sqlite"
# optimizers that search without gradients: each unit of a batch gets its own population (one search per
# image slot, fvopt.strategies.evolution), scored together in batched forwards of --max-batch images
DEFAULT_MAX_BATCH = 16


@dataclass(frozen=True)
class Settings:
    """What every cell of one atlas shares; two sites merge only when these are equal."""

    model: str
    param: str = DEFAULT_PARAM
    size: int = 128
    steps: int = 64
    seed: int = 0
    reference: str = "builtin"  # 'builtin', a folder, or 'none'
    transforms: str = "default"
    measures: str = "default"
    diversity_weight: float = DIVERSITY_WEIGHT  # w of each diversity set's `- w*diversity:LAYER`
    passes: int | None = None  # per cell; a backward counts as two forwards
    forwards: int | None = None  # per cell
    seconds: float | None = None  # per cell (a run of n units gets n times it)
    weights: str | None = None  # a local weight file for the model (load_model's weights=), or 'random'

    def as_dict(self) -> dict:
        """The settings as recorded and hashed; the default diversity weight, the budgets not given and an absent
        weight file are left out, so that the sites and cell keys made before they could be chosen keep theirs."""
        d = asdict(self)
        if d["diversity_weight"] == DIVERSITY_WEIGHT:
            del d["diversity_weight"]
        for key in ("passes", "forwards", "seconds", "weights"):
            if d[key] is None:
                del d[key]
        return d

    def model_options(self) -> dict:
        """load_model's keyword arguments besides the name: the weight file, when one was given."""
        return {} if self.weights is None else {"weights": self.weights}

    def budget(self, images: int = 1) -> dict:
        """The budget of a run of `images` cells' images (visualize's steps/passes/forwards/seconds)."""
        return {k: v if k == "steps" or v is None else v * images for k, v in self.per_cell().items()}

    def per_cell(self) -> dict:
        """Each cell's budget as asked for: {name: value} of those given."""
        return {k: getattr(self, k) for k in BUDGET_KEYS if getattr(self, k) is not None}

    @property
    def hash(self) -> str:
        return hashlib.sha256(json.dumps(self.as_dict(), sort_keys=True).encode()).hexdigest()[:16]

    def differences(self, other: "Settings") -> list[str]:
        a, b = asdict(self), asdict(other)
        return [f"{k} {a[k]!r} vs {b[k]!r}" for k in COMPARED_KEYS if a[k] != b[k]]


@dataclass(frozen=True)
class Unit:
    layer: str
    index: int

    @property
    def name(self) -> str:
        return f"{self.layer}:{self.index}"


@dataclass(frozen=True)
class Cell:
    """One stored result: a unit under one optimizer and seed; `diversity` K > 0: the unit's diversity set."""

    unit: Unit
    optimizer: str
    seed: int
    diversity: int = 0


@dataclass
class Batch:
    """One run: up to --max-batch units of one layer under one optimizer and seed (`channel:LAYER:i,j,...`),
    or (diversity K > 0) one unit's diversity set: K images of `channel:LAYER:u - w*diversity:LAYER`."""

    layer: str
    optimizer: str
    units: list[int]
    seed: int = 0
    diversity: int = 0
    weight: float = DIVERSITY_WEIGHT  # of the diversity term, in a diversity set's target

    @property
    def target(self) -> str:
        if self.diversity:
            return diversity_target(self.layer, self.units[0], self.weight)
        return f"channel:{self.layer}:{','.join(str(u) for u in self.units)}"

    def cell(self, index: int) -> Cell:
        return Cell(Unit(self.layer, index), self.optimizer, self.seed, self.diversity)


def diversity_target(layer: str, index: int, weight: float = DIVERSITY_WEIGHT) -> str:
    return f"channel:{layer}:{index} - {weight:g}*diversity:{layer}"


@dataclass
class Plan:
    settings: Settings
    layers: list[str]
    channels: dict[str, int]  # units per layer, as the model reports them
    optimizers: list[str]
    shard: tuple[int, int] = (1, 1)
    unit_range: tuple[int, int] | None = None
    max_batch: int = DEFAULT_MAX_BATCH
    seeds: list[int] = field(default_factory=list)  # empty: the settings' seed
    diversity: int = 0  # K images per unit's diversity set (under the first optimizer and seed); 0: none
    units: list[Unit] = field(default_factory=list)

    def __post_init__(self) -> None:
        every = [
            Unit(layer, i)
            for layer in self.layers
            for i in range(self.channels[layer])
            if self.unit_range is None or self.unit_range[0] <= i <= self.unit_range[1]
        ]
        self.units = shard_slice(every, *self.shard)
        self.seeds = list(self.seeds) or [self.settings.seed]

    def cells(self) -> list[Cell]:
        runs = [Cell(u, opt, seed) for opt in self.optimizers for seed in self.seeds for u in self.units]
        return runs + self.diversity_cells()

    def diversity_cells(self) -> list[Cell]:
        """Each unit's diversity set (none unless asked): under the first optimizer and seed."""
        if not self.diversity:
            return []
        return [Cell(u, self.optimizers[0], self.seeds[0], self.diversity) for u in self.units]

    def key(self, cell: Cell) -> str:
        return cell_key(self.settings, cell.unit, cell.optimizer, cell.seed, cell.diversity)

    def batches(self, done: set[str]) -> list[Batch]:
        """The cells not in `done`, grouped into runs of at most max_batch units of one layer, optimizer and seed;
        each diversity set is a run of its own (its K images are one batch)."""
        out = []
        for opt in self.optimizers:
            for seed in self.seeds:
                for layer in self.layers:
                    todo = [
                        u.index for u in self.units if u.layer == layer and self.key(Cell(u, opt, seed)) not in done
                    ]
                    for start in range(0, len(todo), self.max_batch):
                        out.append(Batch(layer, opt, todo[start : start + self.max_batch], seed))
        out += [
            Batch(c.unit.layer, c.optimizer, [c.unit.index], c.seed, c.diversity, self.settings.diversity_weight)
            for c in self.diversity_cells()
            if self.key(c) not in done
        ]
        return out


def cell_key(settings: Settings, unit: Unit, optimizer: str, seed: int | None = None, diversity: int = 0) -> str:
    """A cell's content key: the same unit, optimizer, seed and settings give the same key on any machine.
    The seed (default: the settings' seed) takes the settings' place, so one seed's key is the key atlases made
    before seeds were a list gave; a diversity set's key also holds its size and weight."""
    fields = {**settings.as_dict(), "layer": unit.layer, "unit": unit.index, "optimizer": optimizer}
    if seed is not None:
        fields["seed"] = seed
    if diversity:
        fields.update(diversity=diversity, diversity_weight=settings.diversity_weight)
    text = json.dumps(fields, sort_keys=True)
    return "atlas-" + hashlib.sha256(text.encode()).hexdigest()[:24]


def shard_slice(items: list, k: int, n: int) -> list:
    """The k-th (1-based) of n contiguous, near-equal slices of `items`; the n slices cover them exactly."""
    return items[(k - 1) * len(items) // n : k * len(items) // n]


def parse_shard(text: "str | tuple[int, int] | None") -> tuple[int, int]:
    """'k/N' with 1 <= k <= N -> (k, N); None -> (1, 1)."""
    if text is None:
        return (1, 1)
    if isinstance(text, tuple) and len(text) == 2:
        k, n = text
    else:
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
        if match is None:
            raise FvoptError(f"shard {text!r} is not k/N: give e.g. 1/2 (the first of two shards)")
        k, n = int(match.group(1)), int(match.group(2))
    if not (isinstance(k, int) and isinstance(n, int) and 1 <= k <= n):
        raise FvoptError(
            f"shard {k}/{n} does not exist: k must be in 1..N (e.g. 1/{max(n, 2)} to {max(n, 2)}/{max(n, 2)})"
        )
    return (k, n)


def parse_units(text: "str | tuple[int, int] | None") -> tuple[int, int] | None:
    """'A-B' (inclusive) or 'A' -> (A, B); None -> every unit."""
    if text is None or isinstance(text, tuple):
        return text
    match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", str(text))
    if match is None:
        raise FvoptError(f"units {text!r} is not a range: give A-B (e.g. 0-7) or one index")
    a, b = int(match.group(1)), int(match.group(2) or match.group(1))
    if b < a:
        raise FvoptError(f"units {text!r} is an empty range: the end must not be below the start")
    return (a, b)


def parse_seeds(value: "str | int | list[int] | tuple[int, ...]") -> list[int]:
    """'0,1,2', one int or a list of ints -> the distinct seeds in order; anything else refused in one line."""
    from ..config.options import SEED, check

    if isinstance(value, bool):
        value = [value]
    items = (
        [v.strip() for v in value.split(",")]
        if isinstance(value, str)
        else [value]
        if isinstance(value, int)
        else list(value)
        if isinstance(value, (list, tuple))
        else [value]
    )
    out = []
    for v in items:
        if isinstance(v, str) and re.fullmatch(r"\d+", v):
            v = int(v)
        if isinstance(v, bool) or not isinstance(v, int):
            raise FvoptError(
                f"seeds {value!r} is not a comma-separated list of seeds: give whole numbers from 0 "
                "(e.g. --seeds 0,1,2)"
            )
        out.append(check("seeds", v, SEED))
    if not out:
        raise FvoptError("seeds is empty: give one or more comma-separated seeds (e.g. --seeds 0,1,2)")
    return list(dict.fromkeys(out))


def parse_diversity_weight(value: "str | float | int", diversity: int) -> float:
    """The weight w > 0 of each diversity set's `- w*diversity:LAYER`; refused where no diversity set is asked."""
    from ..config.options import POSITIVE_FLOAT, check

    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise FvoptError(
                f"diversity weight {value!r} is not a number: give a weight > 0 (e.g. --diversity-weight 2)"
            ) from None
    weight = float(check("diversity_weight", value, POSITIVE_FLOAT))  # also refuses nan and inf
    if weight != DIVERSITY_WEIGHT and not diversity:
        raise FvoptError(
            f"diversity weight {weight:g} applies to diversity sets, and none was asked for: give --diversity K "
            "(K >= 2) too, or leave the weight out"
        )
    return weight


def parse_diversity(value: "str | int | None") -> int:
    """The size K of each unit's diversity set: 0 (none) or 2 or more; anything else refused in one line."""
    if value is None:
        return 0
    if isinstance(value, str) and re.fullmatch(r"\s*\d+\s*", value):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise FvoptError(
            f"diversity {value!r} is not a whole number: give 0 (no diversity set) or a set size of "
            "2 or more (e.g. --diversity 4)"
        )
    if value == 1 or value < 0:
        raise FvoptError(
            f"diversity {value} is not allowed: give 0 (no diversity set) or a set size of 2 or more "
            "(a set of one image has no other image to differ from)"
        )
    return value


def parse_list(name: str, value: "str | list[str] | tuple[str, ...]") -> list[str]:
    """'a,b' or a list of names -> the distinct names in order; anything else refused in one line."""
    if not isinstance(value, (str, list, tuple)):
        raise FvoptError(
            f"{name} must be comma-separated names or a list of names (e.g. --{name} a,b), not "
            f"{type(value).__name__} {value!r}"
        )
    items = [v.strip() for v in value.split(",")] if isinstance(value, str) else list(value)
    if not items or not all(isinstance(v, str) and v.strip() for v in items):
        raise FvoptError(f"{name} must name at least one, comma-separated (e.g. --{name} a,b), not {value!r}")
    return list(dict.fromkeys(v.strip() for v in items))


def resolve_layers(net, requested: list[str], size: int) -> dict[str, int]:
    """{layer: channels} for the layers asked for ('all': every readable layer at depth 1 or 2, e.g. conv_stem,
    blocks.3; a module run several times per forward as one entry per call, NAME#K), each refused in one line
    when unknown or without channels (its output is not a feature map), or when it names a module that runs
    several times per forward without the call to read (NAME#K)."""
    from ..models.info import cached_layers, layer_info

    infos = dict(cached_layers(net, size))
    if requested == ["all"]:
        requested = [
            name
            for name, info in infos.items()
            if info.layout is not None and name.count(".") <= 1 and info.kind not in ("Identity", "Dropout")
        ]
        if not requested:
            raise FvoptError(
                f"--layers all: {net.name} has no readable layer with channels at depth 1 or 2: "
                "name the layers (fvopt layers MODEL lists them)"
            )
    out = {}
    for name in requested:
        # not listed: NAME#1 of a module run once, or refused in one line (unknown, unused, #K out of range)
        info = infos[name] if name in infos else layer_info(net, name, size)
        if info.spellings and info.call is None:  # a module run several times: the call to read must be named
            raise FvoptError(info.problem)
        if info.layout is None:
            raise FvoptError(f"layer '{name}' of {net.name} has no channels to visualize: {info.problem}")
        if info.channels < 1:
            raise FvoptError(f"layer '{name}' of {net.name} has no channels to visualize")
        out[name] = int(info.channels)
    return out


def read_meta(site: Path) -> dict | None:
    path = Path(site) / META
    if not path.is_file():
        return None
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise FvoptError(f"'{path}' is not an fvopt atlas record ({err}); it was left unchanged") from None
    if not isinstance(meta, dict) or meta.get("kind") != MARKER or "settings" not in meta:
        raise FvoptError(f"'{path}' is not an fvopt atlas record; it was left unchanged")
    return meta


def seeds_of(meta: dict) -> list[int]:
    """The seeds a site's record names, the first (the settings' seed) first; records older than seed lists: one."""
    return list(dict.fromkeys([meta["settings"]["seed"], *meta.get("seeds", [])]))


def settings_of(meta: dict) -> Settings:
    recorded = meta["settings"]  # the default diversity weight and budgets not given are not recorded (as_dict)
    weight = recorded.get("diversity_weight", DIVERSITY_WEIGHT)
    return Settings(
        **{k: recorded.get(k) for k in SETTINGS_KEYS if k != "diversity_weight"},
        diversity_weight=weight,
    )


def check_site(site: "str | Path", settings: Settings | None = None) -> dict | None:
    """Refuse an output folder that holds something other than an fvopt atlas (left unchanged), or an atlas of
    other settings (naming the difference). Returns the site's record, or None for a new or empty folder."""
    site = Path(site)
    if site.exists() and not site.is_dir():
        raise FvoptError(f"atlas output '{site}' is a file, not a folder; it was left unchanged")
    if not site.exists() or not any(site.iterdir()):
        from ..io.images import check_writable

        made = [p for p in (site, *site.parents) if not p.exists()]  # deepest first
        check_writable(site / META, "atlas output")  # a folder that cannot be made: refused before any work
        for folder in made:  # the probe's folders go again: a later refusal leaves nothing behind
            folder.rmdir()
        return None
    meta = read_meta(site)
    if meta is None:
        raise FvoptError(
            f"atlas output '{site}' holds files and is not an fvopt atlas (no {META}); it was left "
            "unchanged: give --out a new or empty folder, or an atlas folder"
        )
    if settings is not None:
        old = settings_of(meta)
        diff = old.differences(settings)
        if diff:
            grow = (
                f", or grow it with its budget ({' '.join(f'--{k} {v:g}' for k, v in old.per_cell().items())})"
                if old.per_cell() != settings.per_cell()
                else ""
            )
            raise FvoptError(
                f"atlas '{site}' was made with other settings ({'; '.join(diff)}): a site holds one "
                f"set of settings; give --out another folder{grow}"
            )
    return meta
