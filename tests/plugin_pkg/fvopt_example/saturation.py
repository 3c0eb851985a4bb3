from fvopt.objectives import Objective, register_target


@register_target("saturation", "saturation", (0,), "mean spread of R, G, B per pixel (add it for color)")
def _saturation(fields: list[str], target: str) -> Objective:
    return Objective(lambda a: (a.images.amax(1) - a.images.amin(1)).flatten(1).mean(1), frozenset(), "saturation")
