"""The declared configuration of one run (`fvopt viz`, `fvopt.visualize`): its sections, each a frozen dataclass
whose fields carry their type, default, check, help and where they appear.

`RunConfig` is the configuration as data (scikit-learn's `get_params`): built from keyword arguments, a trace or
a TOML file, checked once when built, written whole into the trace (`trace["config"]`), and run again by
`fvopt viz --config FILE` or `fvopt.visualize(config=...)`.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch

from ..errors import FvoptError
from ..objectives.core import Objective
from ..params.base import Parameterization
from ..params.registry import DEFAULT_PARAM
from ..runtime.speed import Speed
from . import checks
from .options import IMAGE_SIDE, POSITIVE_FLOAT, POSITIVE_INT, SEED, Option
from .settings import Section, Setting, refuse_unknown, setting, settings_of

DEFAULT_STEPS = 256  # the budget when none is given
MODEL_COMMANDS = ("viz", "dream")
WEIGHT_COMMANDS = ("viz", "dream", "atlas", "examples", "layers")
INPUT_COMMANDS = ("viz", "dream", "layers")
RUN_COMMANDS = ("viz", "atlas")  # the commands that run a search under a budget
PREPROCESSING = ("channels", "mean", "std", "input_size", "value_range")  # fvopt.wrap's arguments, as settings


@dataclass(frozen=True)
class ModelSettings(Section):
    """The network and what it expects (fvopt.wrap's arguments override a named model's preprocessing)."""

    title = "model"
    model: str | Any = setting(
        "lite0",
        "a name (fvopt models), your network as FILE.py:FACTORY, a torch.export program (.pt2), a TorchScript "
        "file (class targets only), or (Python) a torch.nn.Module",
        checks.of_type((str, torch.nn.Module), "a model name or a torch.nn.Module"),
        commands=MODEL_COMMANDS,
        spec="models",
    )
    weights: str | None = setting(
        None,
        "local weight file (loaded with weights_only=True), or 'random'",
        checks.text("a weight file path or 'random'"),
        commands=WEIGHT_COMMANDS,
        metavar="FILE|random",
    )
    channels: int | None = setting(
        None,
        "channels the network takes (default: read from its first layer; 1 = grayscale)",
        checks.by_option(Option(int, low=1, high=4096)),
        commands=INPUT_COMMANDS,
        spec="input.channels",
    )
    mean: Any = setting(
        None,
        "per-channel mean: one number, C comma-separated, or imagenet (default for your own model: 0)",
        checks.of_type((str, int, float, list, tuple), "a number, C numbers, or imagenet"),
        commands=INPUT_COMMANDS,
        spec="input.mean",
    )
    std: Any = setting(
        None,
        "per-channel std, as --mean (default for your own model: 1)",
        checks.of_type((str, int, float, list, tuple), "a number, C numbers, or imagenet"),
        commands=INPUT_COMMANDS,
        spec="input.std",
    )
    input_size: int | tuple[int, int] | None = setting(
        None,
        "the network's input size, N or HxW (default 224; the default image size)",
        checks.size,
        commands=INPUT_COMMANDS,
        spec="input.input_size",
        metavar="N|HxW",
    )
    value_range: tuple[float, float] | None = setting(
        None,
        "the range of the network's training inputs, e.g. 0,255 (default 0,1)",
        checks.value_range,
        commands=INPUT_COMMANDS,
        spec="input.value_range",
        metavar="LO,HI",
    )
    decorrelate: str | None = setting(
        None,
        "reference images (pictures, or .npy arrays for other than 1 or 3 channels) whose channel covariance's "
        "square root replaces the default decorrelation (Lucid's for RGB, else none)",
        checks.text("a file or folder of reference images"),
        metavar="FILE|DIR",
    )


@dataclass(frozen=True)
class TargetSettings(Section):
    """What should fire."""

    title = "target"
    target: str | Any = setting(
        "class:8",
        "e.g. class:8, channel:blocks.4:10, channel:blocks.4:0-63, neuron:blocks.4:10:3:3, layer:blocks.4, sums "
        "like channel:blocks.4:10+0.5*channel:blocks.5:3",
        checks.of_type((str, Objective), "a target string or an Objective"),
        spec="targets",
    )


@dataclass(frozen=True)
class SearchSettings(Section):
    """How the image is searched for: the optimizer, the space it searches, its options, the seed."""

    title = "search"
    param: str | Any = setting(
        None,
        f"pixel, raw, fft, pyramid, maco, or low-dimensional forms like fft:k=8 (default: {DEFAULT_PARAM}; "
        f"{DEFAULT_PARAM}:k=8 for zero-order optimizers)",
        checks.of_type((str, Parameterization), "a parameterization name (fvopt.params)"),
        commands=RUN_COMMANDS,
        spec="params",
        defaults={"atlas": DEFAULT_PARAM, "bench": DEFAULT_PARAM},
    )
    optimizer: str = setting(
        "adam",
        "see `fvopt optimizers`; ng:<Name>; hybrid:A>B",
        checks.text("an optimizer name (fvopt optimizers)"),
        spec="strategies.name",
    )
    lr: float | None = setting(None, "step size of gradient methods", checks.by_option(POSITIVE_FLOAT))
    options: dict | None = setting(
        None,
        "any other optimizer option (Python: a dict; command line: --option KEY=VALUE, --popsize, --sigma, --switch)",
        checks.of_type(dict, "a dict of optimizer options"),
        cli=None,
        spec="strategies.*",
        metavar="KEY=VALUE",
    )
    grad: str | None = setting(
        None,
        "image-gradient processing, e.g. lapnorm or lapnorm:levels=4",
        checks.text("a gradient method, e.g. lapnorm"),
        commands=("viz", "dream"),
    )
    seed: int = setting(
        0,
        "random seed: the same seed, the same result",
        checks.by_option(SEED),
        commands=("viz", "dream", "atlas"),
        spec="seeds",
    )
    batch: int | None = setting(
        None, "images per run (default: one per target)", checks.by_option(POSITIVE_INT), metavar="N"
    )
    init: str | None = setting(
        None,
        "start from this photo (PNG/JPEG, or .npy C,H,W in [0,1]), resized to cover the size and center-cropped, "
        "through the parameterization's exact inverse",
        checks.of_type((str, Path), "an image path"),
        metavar="IMAGE",
    )


@dataclass(frozen=True)
class BudgetSettings(Section):
    """Whichever ends first; none given: 256 steps (the atlas: 192 passes per cell, equal compute)."""

    title = "budget"
    steps: int | None = setting(
        None, "optimizer steps (a zero-order step is a generation)", checks.by_option(POSITIVE_INT),
        commands=RUN_COMMANDS, spec="budget.steps",
    )  # fmt: skip
    seconds: float | None = setting(
        None, "wall time in seconds (the warm-up is not counted)", checks.by_option(POSITIVE_FLOAT),
        commands=RUN_COMMANDS, spec="budget.seconds",
    )  # fmt: skip
    forwards: int | None = setting(
        None, "forward passes", checks.by_option(POSITIVE_INT), commands=RUN_COMMANDS, spec="budget.forwards"
    )
    passes: int | None = setting(
        None, "model passes: a backward counts as two", checks.by_option(POSITIVE_INT),
        commands=RUN_COMMANDS, spec="budget.passes",
    )  # fmt: skip


@dataclass(frozen=True)
class ViewSettings(Section):
    """How the network sees the image: its size, the transforms, the size it is shown at, tiling."""

    title = "view"
    size: int | tuple[int, int] | None = setting(
        None,
        "image side in px, or HEIGHTxWIDTH (e.g. 96x160); default: the model's input size",
        checks.size,
        commands=RUN_COMMANDS,
        spec="size",
        metavar="N|HxW",
        defaults={"atlas": 128, "bench": 128},
    )
    transforms: str | Any = setting(
        "default",
        "a named set (default: Lucent's, size kept; lucent; color; none) or a chain, e.g. "
        '"pad:12,jitter:8,scale:0.9-1.1,rotate:-10..10,noise:0.02,crops:6@0.5-0.05" (add per-image for a draw per '
        "image)",
        checks.transforms,
        commands=RUN_COMMANDS,
        spec="transforms",
    )
    render: int | str | None = setting(
        None,
        "the size the network is shown (the image is resized to it after the transforms); lucent: the model's "
        "input size when the image is smaller, as Lucent does",
        checks.render,
        cli="--render-size",
        spec="render",
        metavar="N|lucent",
    )
    tile: int | None = setting(
        None,
        "gradient tile by tile (px), as DeepDream does: memory bounded by the tile; from the model's minimum input "
        "up to the size",
        checks.by_option(IMAGE_SIDE),
    )


@dataclass(frozen=True)
class QualitySettings(Section):
    """fvopt.quality's measures of the final images."""

    title = "quality"
    reference: str | None = setting(
        None,
        "reference images: a folder (any depth) or builtin (scikit-image crops); enables natural_ratio, "
        "plausibility, mis; none: no reference (a folder named none: ./none)",
        checks.of_type((str, Path), "a folder, builtin or none"),
        commands=RUN_COMMANDS,
        spec="reference",
        metavar="DIR|builtin|none",
        defaults={"atlas": "builtin"},
    )
    judge: str | None = setting(
        None,
        "the network that judges (default lite1 for lite0, else lite0; never the optimized one)",
        checks.text("a model name"),
        spec="judge",
        metavar="MODEL",
    )
    measures: Any = setting(
        None,
        "comma-separated quality measures (fvopt options lists none; see fvopt.quality); all; none (default: those "
        "that apply)",
        checks.measures,
        commands=RUN_COMMANDS,
        spec="measures",
        metavar="LIST|all|none",
        defaults={"atlas": "default"},
    )


@dataclass(frozen=True)
class RuntimeSettings(Section):
    """Where and how the work runs; none of these changes what is optimized."""

    title = "runtime"
    device: str = setting(
        "auto",
        "auto (a GPU when there is one), cpu, cuda, cuda:N, mps",
        checks.device,
        commands=("viz", "dream", "atlas", "examples"),
        spec="device",
        defaults={"bench": "cpu"},
    )
    max_batch: int | str = setting(
        32,
        "images per batched forward of a population, or 'auto' (as many as half the free memory holds)",
        checks.max_batch,
        spec="max_batch",
    )
    speed: Any = setting(
        None,
        "opt-in speed settings (a fvopt.runtime.speed.Speed; command line: --bf16, --channels-last, "
        "--cudnn-benchmark, --deterministic, --compile)",
        checks.of_type(Speed, "a fvopt.runtime.speed.Speed"),
        cli=None,
    )
    progress: bool = setting(
        False, "a progress bar (command line: shown unless --quiet)", checks.of_type(bool, "True or False"), cli=None
    )
    snapshot_every: int = setting(
        25,
        "steps between snapshots written to the snapshot folder (0: none)",
        checks.by_option(Option(int, low=0)),
        metavar="N",
    )
    snapshot_dir: str | None = setting(
        None,
        "folder for a PNG of the current best every snapshot_every steps",
        checks.of_type((str, Path), "a folder"),
        cli="--snapshots",
        trace=None,
        metavar="DIR",
    )
    transparency: bool = setting(
        False,
        "accumulate |d objective / d image| over the run (MaCo's transparency maps; gradient methods only; "
        "command line: --transparency PNG)",
        checks.of_type(bool, "True or False"),
        cli=None,
    )


SECTIONS: dict[str, type[Section]] = {
    s.title: s  # type: ignore[attr-defined]
    for s in (
        ModelSettings,
        TargetSettings,
        SearchSettings,
        BudgetSettings,
        ViewSettings,
        QualitySettings,
        RuntimeSettings,
    )
}
RUN_SETTINGS: dict[str, Setting] = {row.name: row for section in SECTIONS.values() for row in settings_of(section)}


@dataclass(frozen=True)
class RunConfig:
    """One run, as data: each section checked once when built."""

    model: ModelSettings = ModelSettings()
    target: TargetSettings = TargetSettings()
    search: SearchSettings = SearchSettings()
    budget: BudgetSettings = BudgetSettings()
    view: ViewSettings = ViewSettings()
    quality: QualitySettings = QualitySettings()
    runtime: RuntimeSettings = RuntimeSettings()

    @classmethod
    def from_flat(cls, values: Mapping[str, Any] | None = None, where: str = "") -> "RunConfig":
        """A configuration from `{name: value}` (keyword arguments, a trace's config, a TOML file); unknown names
        are refused with the closest one."""
        values = dict(values or {})
        refuse_unknown(values, RUN_SETTINGS, where)
        sections = {}
        for title, section in SECTIONS.items():
            names = [row.name for row in settings_of(section)]
            sections[title] = section(**{n: values[n] for n in names if n in values})
        return cls(**sections)

    def flat(self) -> dict[str, Any]:
        """`{name: value}` over every section: what `visualize` reads."""
        out: dict[str, Any] = {}
        for title in SECTIONS:
            out.update(getattr(self, title).values())
        return out

    @classmethod
    def of_call(cls, defaults: Mapping[str, Any], arguments: Mapping[str, Any], config: "RunConfig | None"):
        """The configuration of a call such as `visualize(..., config=c, lr=0.1)`: `config`'s values, overridden by
        the arguments given with other than their default (`defaults`: the function's own)."""
        if config is None:
            return cls.from_flat(arguments)
        config = cls.coerce(config)
        changed = {k: v for k, v in arguments.items() if not _same(v, defaults[k])}
        return cls.from_flat({**config.flat(), **changed})

    @classmethod
    def coerce(cls, config: "RunConfig | str | Path") -> "RunConfig":
        """A `config=` argument as a configuration: one already built, or a trace or a TOML file (as `fvopt viz
        --config FILE` reads it)."""
        if isinstance(config, (str, Path)):
            config = cls.from_flat(read_config_file(config))
        if not isinstance(config, RunConfig):
            raise FvoptError(
                f"config must be a RunConfig (fvopt.config), a trace or a TOML file, not {type(config).__name__}"
            )
        return config

    def record(self) -> dict[str, Any]:
        """The configuration as JSON-safe data for the trace (`trace["config"]`): what `--config` runs again. A
        value that only Python can hold (a torch.nn.Module, an Objective object) is recorded by its description
        and `replayable` is False."""
        out: dict[str, Any] = {}
        replayable = True
        for name, value in self.flat().items():
            if RUN_SETTINGS[name].trace is None:
                continue
            recorded = _recordable(value)
            if recorded is _NOT_DATA:
                replayable = False
                recorded = _describe(value)
            out[name] = recorded
        out["replayable"] = replayable
        return out


_NOT_DATA = object()


def _same(value: Any, default: Any) -> bool:
    if value is default:
        return True
    return type(value) is type(default) and isinstance(value, (int, float, str)) and value == default


def _recordable(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (tuple, list)) and all(isinstance(v, (int, float, str)) for v in value):
        return list(value)
    if isinstance(value, dict) and all(isinstance(v, (bool, int, float, str)) or v is None for v in value.values()):
        return dict(value)
    if isinstance(value, Speed):
        from dataclasses import asdict

        return asdict(value)
    return _NOT_DATA


def _describe(value: Any) -> str:
    name = getattr(value, "name", None)
    return f"{type(value).__name__} {name}" if isinstance(name, str) else str(value)


def read_config_file(path: str | Path) -> dict[str, Any]:
    """`{name: value}` from a trace (`fvopt viz --trace`, its `config`) or a TOML file (flat keys, or sections such
    as [search] / [budget]); refused in one line if it cannot be read or names an unknown setting."""
    if not str(path).strip() or not Path(path).is_file():
        raise FvoptError(f"config={str(path)!r} is not allowed: must be a trace or a TOML file (no such file)")
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise FvoptError(f"cannot read --config '{path}': {err}") from None
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise FvoptError(f"--config '{path}' is not valid JSON: {err}") from None
        if not isinstance(data, dict) or not isinstance(data.get("config"), dict):
            raise FvoptError(f"--config '{path}' has no 'config': give a trace written by `fvopt viz --trace`")
        values = dict(data["config"])
        replayable = values.pop("replayable", True)
        if not replayable:
            raise FvoptError(
                f"--config '{path}' was a run on a Python object (a torch.nn.Module or an Objective) that a file "
                "cannot hold: run it from Python with visualize(config=...)"
            )
    else:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as err:
            raise FvoptError(f"--config '{path}' is not valid TOML: {err}") from None
        values = {}
        for key, value in data.items():
            if isinstance(value, dict) and key in SECTIONS:  # [model], [search] ...: no setting is a table
                values.update(value)
            else:
                values[key] = value
    if isinstance(values.get("speed"), dict):
        refuse_unknown(values["speed"], Speed.__dataclass_fields__, f"--config '{path}' speed: ")
        values["speed"] = Speed(**values["speed"])
    for name in ("size", "input_size", "value_range"):  # JSON writes tuples as lists
        if isinstance(values.get(name), list):
            values[name] = tuple(values[name])
    refuse_unknown(values, RUN_SETTINGS, f"--config '{path}': ")
    return values
