"""The command line's own settings: spellings that exist only there (an output path, --quiet, the speed switches,
the shortcuts for optimizer options). Declared as the run's settings are, so `fvopt options` lists them, and each
says which Python argument it becomes."""

from __future__ import annotations

from dataclasses import dataclass

from . import checks
from .options import POSITIVE_FLOAT, POSITIVE_INT, Option
from .settings import Section, Setting, setting, settings_of

VIZ = ("viz",)


@dataclass(frozen=True)
class CommandLineSettings(Section):
    """Flags of `fvopt viz` (and of other commands where named) that map onto the run's settings."""

    title = "command line"
    config: str | None = setting(
        None,
        "a trace (.json, written by --trace) or a TOML file of settings to run again; flags given override it",
        checks.text("a trace or a TOML file"),
        python="config",
        trace=None,
        metavar="FILE",
    )
    out: str = setting("viz.png", "the image file (PNG)", checks.text("an image path"), python=None, trace=None)
    trace: str | None = setting(
        None, "write the trace as JSON here", checks.text("a file path"), python=None, trace=None, metavar="JSON"
    )
    transparency_png: str | None = setting(
        None,
        "also write MaCo's transparency map: the image with the accumulated |gradient| as alpha (and the map alone as "
        "NAME-map.png); gradient methods only (Python: transparency=True)",
        checks.text("a PNG path"),
        cli="--transparency",
        python=None,
        trace=None,
        metavar="PNG",
    )
    quiet: bool = setting(
        False,
        "no progress bar (Python: progress=False, the default there)",
        checks.of_type(bool, "a switch"),
        commands=("viz", "dream", "atlas", "examples"),
        python=None,
        trace=None,
        flag=True,
    )
    popsize: int | None = setting(
        None,
        "population size of zero-order optimizers (Python: options={'popsize': N})",
        checks.by_option(POSITIVE_INT),
        python=None,
        trace="options.popsize",
    )
    sigma: float | None = setting(
        None,
        "initial step size of zero-order optimizers (Python: options={'sigma': S})",
        checks.by_option(POSITIVE_FLOAT),
        python=None,
        trace="options.sigma",
    )
    switch: float | None = setting(
        None,
        "share of the budget for the first part of a hybrid (Python: options={'switch': F})",
        checks.by_option(Option(float, low=0, high=1, low_open=True, high_open=True)),
        python=None,
        trace="options.switch",
    )
    option: list | None = setting(
        None,
        "any other optimizer option, e.g. --option nesterov=true --option max_iter=10 (Python: options={...})",
        python=None,
        trace="options",
        metavar="KEY=VALUE",
    )
    bf16: bool = setting(
        False, "autocast the network pass to bfloat16", checks.of_type(bool, "a switch"), python=None,
        trace="speed.bf16", flag=True,
    )  # fmt: skip
    channels_last: bool = setting(
        False, "NHWC memory format for the network", checks.of_type(bool, "a switch"), python=None,
        trace="speed.channels_last", flag=True,
    )  # fmt: skip
    cudnn_benchmark: bool = setting(
        False, "let cuDNN autotune kernels for the run's shapes", checks.of_type(bool, "a switch"), python=None,
        trace="speed.cudnn_benchmark", flag=True,
    )  # fmt: skip
    deterministic: bool = setting(
        False, "torch's deterministic algorithms", checks.of_type(bool, "a switch"), python=None,
        trace="speed.deterministic", flag=True,
    )  # fmt: skip
    compile: str = setting(
        "off",
        "torch.compile the network pass: off, default, reduce-overhead (CUDA graphs on CUDA), max-autotune; the "
        "first steps pay the compilation",
        checks.compile_mode,
        python=None,
        trace="speed.compile",
        metavar="MODE",
    )


COMMAND_LINE_SETTINGS: dict[str, Setting] = {row.name: row for row in settings_of(CommandLineSettings)}
