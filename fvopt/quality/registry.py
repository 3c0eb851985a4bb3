"""The quality measures by name: what each needs, how it is computed, what it writes, and its controls.

A measure is one registration (`register_measure`) in one file: `judge` loops over the registry,
and the plan (which measures apply to a batch, and why the others do not), the names `--measures`
accepts and lists, the report's columns and rankings, and the conformance check
(`fvopt.testing.check_measure`) all read the entries. A package adds one through an entry point:

    [project.entry-points."fvopt.measures"]
    colorfulness = "my_package.colorfulness"     # a module whose import registers the measure

Each entry declares:
- `needs` (`Needs`): a reference set, a unit target, a class target, a batch of several images,
  RGB images, the judge network's features; a need that is not met makes the measure absent from
  the default set (with the reason recorded) and refuses it when asked for by name;
- `outputs` (`Output`): the values it writes (usually one, under its own name; spectral_slope also
  writes spectral_distance), each with its better side and the controls it must beat;
- `compute(context) -> list[Scored]`: per image values, bootstrap replicates and the controls'
  values (uniform gray, uniform noise, a random reference image), from the `Context` judge prepared.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import FvoptError, suggest
from ..registry import Registry
from .measures import CONTROLS, Scored
from .units import Unit

# the names --measures takes besides measure names
KEYWORDS = ("all", "none", "default")


@dataclass(frozen=True)
class Needs:
    """What a measure needs to be computed; each unmet need is a reason (absent by default, refused by name)."""

    reference: bool = False  # reference images (natural_ratio's percentile, plausibility's top images)
    unit: bool = False  # a target that names one unit per image (channel, neuron or class)
    class_target: bool = False  # a class target (its probability under other networks)
    batch: int = 1  # the fewest images of a batch it compares (diversity: 2)
    rgb: bool = True  # 3-channel images (reference photos and ImageNet judges)
    judge_features: bool = False  # the judge network's penultimate features of the images and controls
    judge_reference: bool = False  # the judge's pass over the reference set, when one is given
    applies: Callable[["Facts"], str] | None = None  # any other reason it cannot apply ("" when it can)


@dataclass(frozen=True)
class Output:
    """One value a measure writes (with `_lo`, `_hi`, the controls and `_informative` beside it).

    `better`: +1 higher is better, -1 lower is better, 0 no better side (never ranked, never
    informative); `baselines`: the controls it must beat to be informative; `means`: the columns of
    the report's means table (`""` the mean, `"_beats_controls"` the share of cells that beat them)."""

    name: str
    better: int = 1
    baselines: tuple[str, ...] = CONTROLS
    means: tuple[str, ...] = ("",)


@dataclass(frozen=True)
class Facts:
    """What the plan knows before any pass: the batch's size and shape, the unit, whether a reference is given."""

    n_images: int
    channels: int
    size: "tuple[int, int] | None"
    unit: Unit | None
    has_reference: bool


@dataclass
class Context:
    """What judge prepared for the measures of one batch (read by `compute`); `out` is the flat record
    (a measure may add keys of its own, e.g. transfer_prob_NET), `state` what `prepare` returned."""

    images: Any  # (n, C, H, W) float32 in [0,1], on the CPU
    objective: Any
    unit: Unit | None
    net: Any  # the optimized FeatureModel
    judge_net: Any  # the judge FeatureModel, or None
    ref: Any  # the ReferenceSet, or None
    stats_model: Any  # LayerStats of the unit's layer over the reference set, or None
    stats_judge: Any  # LayerStats of the judge's features over the reference set, or None
    controls: dict  # control name -> images
    control_key: Any  # what the controls were made from (the reference's fingerprint), for the memo
    feats: "dict | None"  # judge features of the images ("vis") and of each control, or None
    center: Any  # the reference set's mean judge feature (zeros without one)
    settings: dict  # judge's arguments: seed, render, top, pairs, per_source, robust, transfer, device
    out: dict
    state: dict = field(default_factory=dict)
    memo: dict = field(default_factory=dict)  # scores of the controls, the same for every cell of a unit

    @property
    def n(self) -> int:
        return int(self.images.shape[0])

    @property
    def seed(self) -> int:
        return self.settings["seed"]


@dataclass(frozen=True)
class Measure:
    """What a registered measure runs: `compute` (required) and `prepare` (optional, before any pass:
    load what it needs and refuse a bad argument, e.g. transfer's networks)."""

    compute: Callable[[Context], list[Scored]]
    prepare: Callable[[Context], Any] | None = None


MEASURES: Registry[Measure] = Registry("measure", "fvopt.measures", "fvopt.quality.builtin_measures")


def register_measure(
    name: str,
    help: str,
    needs: Needs = Needs(),
    outputs: "tuple[Output, ...] | None" = None,
    prepare: Callable[[Context], Any] | None = None,
) -> Callable[[Callable[[Context], list[Scored]]], Callable[[Context], list[Scored]]]:
    """Decorator over `compute(context) -> list[Scored]`: registers the measure `name`.

    `outputs` defaults to one value under the measure's own name, higher is better, beating all
    three controls; the first output must carry the measure's name."""
    outs = tuple(outputs) if outputs is not None else (Output(name),)
    if not outs or outs[0].name != name:
        raise FvoptError(f"quality measure '{name}': its first output must be named '{name}'")
    bad = [c for o in outs for c in o.baselines if c not in CONTROLS]
    if bad:
        raise FvoptError(f"quality measure '{name}': unknown control '{bad[0]}' (controls: {', '.join(CONTROLS)})")
    if name in KEYWORDS:
        raise FvoptError(f"quality measure name '{name}' is a keyword of --measures ({', '.join(KEYWORDS)})")

    def deco(compute: Callable[[Context], list[Scored]]) -> Callable[[Context], list[Scored]]:
        MEASURES.add(name, Measure(compute, prepare), help, needs=needs, outputs=outs)
        return compute

    return deco


def measure_names(plugins: bool = True) -> list[str]:
    """The measures in registration order (fvopt's six first); `plugins=False` lists the loaded ones only."""
    return MEASURES.names(plugins)  # the built-ins are registered by the import of fvopt.quality (score)


def needs_of(name: str) -> Needs:
    return MEASURES[name].extra["needs"]


def outputs_of(name: str) -> tuple[Output, ...]:
    return MEASURES[name].extra["outputs"]


def all_outputs() -> list[Output]:
    """Every value the measures write, in registration order (spectral_distance after spectral_slope)."""
    return [o for name in measure_names() for o in outputs_of(name)]


def ranked() -> dict[str, int]:
    """Output -> +1 (higher is better) or -1 (lower is better), for those with a better side."""
    return {o.name: o.better for o in all_outputs() if o.better}


def shown() -> tuple[str, ...]:
    """Every output by name, as report tables list them."""
    return tuple(o.name for o in all_outputs())


def summary_order() -> list[str]:
    """The measures, then the further values they write (the order of the one-line summary)."""
    names = measure_names()
    return names + [o.name for name in names for o in outputs_of(name)[1:]]


def reason_absent(name: str, facts: Facts, why_no_unit: str) -> str:
    """Why measure `name` cannot be computed for this batch ("" when it can): its needs, in a fixed order."""
    needs = needs_of(name)
    channels = facts.channels
    if needs.rgb and channels != 3:
        return (
            f"{name} compares with RGB reference photos and ImageNet judges, and these images have "
            f"{channels} channel{'s' if channels != 1 else ''}"
        )
    if (needs.unit or needs.class_target) and facts.unit is None:
        return why_no_unit
    if needs.class_target and facts.unit.kind != "class":
        return f"{name} is a class measure and {facts.unit.label(0).rsplit(':', 1)[0]} is a channel target"
    if needs.reference and not facts.has_reference:
        return f"{name} needs reference images: give reference=DIR (--reference DIR) or 'builtin'"
    if facts.n_images < needs.batch:
        return f"{name} needs a batch of {needs.batch} or more images"
    return needs.applies(facts) if needs.applies is not None else ""


def unknown_measure(name: str) -> FvoptError:
    known = measure_names()
    return MEASURES.unknown(name, suggest(name, known), known=f"{', '.join(known)} (or all, none, default)")


def measures_help() -> str:
    """The --measures help text, from the registry (fvopt's measures and those of loaded plugins)."""
    return (
        f"comma-separated {','.join(measure_names(plugins=False))}; all; none (default: those that apply; "
        "without --reference, spectral_slope); plugins add more (fvopt plugins)"
    )


def describe(name: str) -> Mapping[str, Any]:
    """One measure as data: its help, needs and outputs (for listings and documentation)."""
    entry = MEASURES[name]
    return {"name": name, "help": entry.help, "needs": entry.extra["needs"], "outputs": entry.extra["outputs"]}
