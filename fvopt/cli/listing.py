"""`fvopt models`, `fvopt optimizers`, `fvopt plugins`, `fvopt layers MODEL`: what there is to choose from."""

from __future__ import annotations

from .common import Shared, _add_input_options, _preprocessing, _size


def add_parser(sub, shared: Shared) -> None:
    sub.add_parser("models", parents=[shared.debug], help="list the models that load by name")
    sub.add_parser("optimizers", parents=[shared.debug], help="list the optimizers (strategies) by name")
    sub.add_parser(
        "plugins",
        parents=[shared.debug],
        help="list installed plugin packages and what each adds (or why it failed to load)",
    )

    lay = sub.add_parser(
        "layers", parents=[shared.debug, shared.weights], help="list a model's layers with their output shapes"
    )
    lay.add_argument("model", help="a name (fvopt models), FILE.py:FACTORY, PROGRAM.pt2, or a TorchScript file")
    lay.add_argument("--size", type=_size, default=None, help="input size in px, N or HxW (default: the model's)")
    lay.add_argument("--all", action="store_true", help="also list the layers whose output cannot be read, with why")
    _add_input_options(lay, "layers")


def run_models(args) -> int:
    from ..models import known_models

    for name in known_models():
        print(name)
    return 0


def run_plugins(args) -> int:
    from ..plugins import describe_plugins

    for line in describe_plugins():
        print(line)
    return 0


def run_optimizers(args) -> int:
    from ..strategies import REGISTRY
    from ..strategies.base import FAMILIES

    def takes(options) -> str:
        return "; options: " + ", ".join(f"{k} ({o.allowed()})" for k, o in options.items()) if options else ""

    for name in sorted(REGISTRY):
        entry = REGISTRY[name]
        source = f" (plugin: {entry.source})" if entry.source != "fvopt" else ""
        print(f"{name:12s} {entry.help}{takes(entry.options)}{source}")
    for family in FAMILIES.values():  # ng:<Name>, hybrid:A>B, torch:<Name> and each torch.optim class
        for name, summary, options in family.listing():
            print(f"{name:12s} {summary}{takes(options)}")
    return 0


def run_layers(args) -> int:
    from ..models import list_layers, load_model
    from ..io.canvas import hw

    model = load_model(args.model, weights=args.weights, **_preprocessing(args))
    size = model.input_size if model.fixed_size else (args.size or model.input_size)
    h, w = hw(size)
    note = f" (fixed-size model: images of any size are resampled to {h}x{w} px)" if model.fixed_size else ""
    print(f"{model.name} at {h}x{w} px, {model.channels} channel{'s' if model.channels != 1 else ''}{note}")
    if model.hookable is not None:
        print(f"no layers: {model.hookable}")
        print("logits (the model output): class:INDEX")
        return 0
    layers = list_layers(model, size)
    wide = max([len(info.name) for info in layers] + [5])
    kind = max([len(info.kind) for info in layers] + [4])
    print(f"{'layer':{wide}s} {'type':{kind}s} {'units':>6s}  layout")
    hidden = 0
    for info in layers:
        if info.layout is not None:
            print(f"{info.name:{wide}s} {info.kind:{kind}s} {info.layout.units:6d}  {info.layout.describe()}")
        elif info.spellings and info.call is None:  # a module run several times: name one call, LAYER#K
            calls = f"runs {info.calls} times per forward: {', '.join(info.spellings)}"
            print(f"{info.name:{wide}s} {info.kind:{kind}s} {'-':>6s}  {calls} (#K reads the K-th call)")
        elif args.all:
            print(f"{info.name:{wide}s} {info.kind:{kind}s} {'-':>6s}  not readable: {info.problem}")
        else:
            hidden += 1
    print(
        "logits (the model output): class:INDEX. Targets: channel:LAYER:UNIT (mean over positions or patch "
        "tokens), neuron:LAYER:UNIT[:Y:X] (one position or patch cell), token:LAYER:UNIT[:K] (prefix token K, "
        "0 = class token), layer:LAYER"
    )
    if hidden:
        print(f"({hidden} layers whose output cannot be read as a feature map are hidden: --all lists them with why)")
    return 0
