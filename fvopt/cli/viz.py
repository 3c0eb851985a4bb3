"""`fvopt viz`: optimize an image until a target fires (fvopt.viz.visualize), print one line."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..config.command_line import COMMAND_LINE_SETTINGS
from ..config.options import merge_options
from .common import Shared, _stopped
from .flags import add_setting_flags

if TYPE_CHECKING:
    from ..config.run import RunConfig


def add_parser(sub, shared: Shared) -> None:
    """Every flag is a declared setting (fvopt.config): its type, check, default and help come from there. A flag
    not given is absent from the namespace, so that `--config FILE`'s values stand unless a flag overrides them."""
    viz = sub.add_parser(
        "viz",
        parents=[shared.debug],
        help="optimize an image until a target fires",
        description="Optimize an image until a target fires. Every setting: fvopt options; a run again: "
        "fvopt viz --config TRACE.json (flags given override it).",
    )
    add_setting_flags(viz, "viz", suppress=True)


def configuration(args) -> "RunConfig":
    """The run's configuration: the declared defaults, then --config's values, then the flags given."""
    from ..config.run import RUN_SETTINGS, RunConfig, read_config_file
    from ..runtime.speed import Speed

    given = vars(args)
    values = read_config_file(given["config"]) if given.get("config") else {}
    values.update({name: value for name, value in given.items() if name in RUN_SETTINGS})
    options = dict(values.get("options") or {})
    for key, value in [
        *given.get("option", []),
        *((k, given[k]) for k in ("popsize", "sigma", "switch") if k in given),
    ]:
        options = merge_options(options, {key: value})
    if options:
        values["options"] = options
    speed_flags = {
        k: given[k] for k in ("bf16", "channels_last", "cudnn_benchmark", "deterministic", "compile") if k in given
    }
    values["speed"] = Speed(**{**(values.get("speed") or Speed()).__dict__, **speed_flags})
    if given.get("transparency_png"):
        values["transparency"] = True
    values["progress"] = not given.get("quiet", False)
    return RunConfig.from_flat(values)


def run(args) -> int:
    from ..evaluate import top_classes
    from ..io.images import check_distinct, check_folder_writable, check_image_path, check_writable
    from ..models import resolve_device
    from ..viz import visualize

    for name in ("out", "trace", "transparency_png"):  # the command line's own settings: their declared defaults
        if not hasattr(args, name):
            setattr(args, name, COMMAND_LINE_SETTINGS[name].default)
    cfg = configuration(args)  # every value checked here, before any file or model is touched
    transparency = args.transparency_png
    map_path = (
        None
        if not transparency
        else Path(transparency).with_name(Path(transparency).stem + "-map" + Path(transparency).suffix)
    )
    check_distinct(out=args.out, trace=args.trace, transparency=transparency, **{"transparency map": map_path})
    check_image_path(args.out, "--out")
    if transparency:
        check_image_path(transparency, "--transparency", alpha=True)  # RGBA: not JPEG, refused before the run
    check_writable(args.trace, "--trace")
    check_folder_writable(cfg.runtime.snapshot_dir, "--snapshots folder")
    cfg.runtime.speed.check_compile(resolve_device(cfg.runtime.device))  # no compiler: refused before the model
    vis = visualize(config=cfg)
    out = vis.save(args.out)
    if transparency and vis.transparency is not None:
        vis.save_transparency(transparency)
    if args.trace:
        vis.save_trace(args.trace)
    t = vis.trace
    robust, value = t["final"]["robust_value"], t["final"]["value"]
    line = (
        f"wrote {out}: {t['target']} {'not scored' if value is None else f'value {value:.4g}'}"
        f"{f' (robust {robust:.4g})' if robust is not None else ''}; {t['optimizer']} on {t['param']} "
        f"({t['param_dim']} dims), {vis.result.steps} steps, {t['forwards']} forwards, {t['backwards']} backwards, "
        f"{t['seconds']:.1f} s; normalization: {t['normalization']}"
    )
    if t["param"] != t["param_requested"]:
        line += f" [searched {t['param']}, the low-dimensional form of {t['param_requested']}]"
    if t.get("init"):
        line += f"; started from {t['init']['image']} (rendered back within {t['init']['max_pixel_error']:.1e})"
    if t["target"].startswith("class:") and vis.images.shape[0] == 1 and not vis.interrupted:
        from ..models import class_name
        from ..models.user import is_user_model

        p, c = top_classes(vis.model, vis.images, k=1)
        named = "" if is_user_model(cfg.model.model) else f" {class_name(int(c[0, 0]))}"  # ImageNet names: not yours
        line += f"; top-1 {int(c[0, 0])}{named} (p={float(p[0, 0]):.2f})"
    print(line)
    if t.get("normalization_note"):
        print(f"note: {t['normalization_note']}", file=sys.stderr)
    for part in [
        t,
        *(t.get("parts") or []),
    ]:  # torch:<Name> at torch's own lr: say so (fvopt/strategies/torch_optim.py)
        if part.get("lr_source") == "torch's default":
            print(
                f"note: {part['ran']} ran at torch's default lr {part['arguments']['lr']:g} (fvopt's adam: 0.05); "
                "give --lr for larger steps",
                file=sys.stderr,
            )
    quality = vis.trace.get("quality")
    if quality and "measures" in quality:
        from ..quality.score import summary_line

        print(summary_line(quality))
    elif quality and quality.get("stopped_while_judging"):  # the run finished; its judging was stopped
        from ..runtime.signals import exit_code

        kept = quality.get("kept")
        print(
            f"fvopt: {_stopped()} while judging for quality: kept the image in {out}"
            f"{f' and its trace in {args.trace}' if args.trace else ''} (not judged); "
            + (
                f"{kept}, and the same command resumes the reference pass from there"
                if kept
                else "a rerun judges it again (finished reference passes are cached)"
            ),
            file=sys.stderr,
        )
        return exit_code()
    elif quality and not vis.interrupted:
        print(f"quality: {quality.get('error') or quality.get('note')}", file=sys.stderr)
    if vis.interrupted:  # one line: what was kept, and that it was not judged
        from ..runtime.signals import exit_code

        if vis.scoring_stopped:  # the optimization had finished: only its scoring was cut short
            print(
                f"fvopt: {_stopped()} while scoring the finished run ({vis.result.steps} steps): kept its image "
                f"in {out}{f' and its trace in {args.trace}' if args.trace else ''}; scoring was stopped, so "
                "the image has no final scores",
                file=sys.stderr,
            )
            return exit_code()
        print(
            f"fvopt: {_stopped()} after {vis.result.steps} steps: kept the best image so far in {out}"
            f"{f' and its trace in {args.trace}' if args.trace else ''}"
            f"{' (not judged for quality)' if quality else ''}",
            file=sys.stderr,
        )
        return exit_code()
    from ..run import BUDGET_STOPS

    if vis.result.stop_reason not in BUDGET_STOPS:
        print(f"note: {vis.result.stop_reason}", file=sys.stderr)
    return 0
