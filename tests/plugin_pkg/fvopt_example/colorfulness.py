from fvopt.quality.measures import Scored
from fvopt.quality.registry import Needs, Output, register_measure


def colorfulness(images):  # Hasler and Suesstrunk (2003), per image
    r, g, b = images.unbind(1)
    rg, yb = (r - g).flatten(1), (0.5 * (r + g) - b).flatten(1)
    return (rg.std(1).hypot(yb.std(1)) + 0.3 * rg.mean(1).hypot(yb.mean(1))).tolist()


@register_measure(
    "colorfulness",
    "how colorful the images are (Hasler and Suesstrunk 2003); a gray image scores 0",
    Needs(),  # RGB images, nothing else: no reference, any target, any batch
    (Output("colorfulness", baselines=("gray",)),),  # informative where it beats a gray image
)
def _colorfulness(ctx) -> list[Scored]:
    values = colorfulness(ctx.images)
    controls = {c: colorfulness(images) for c, images in ctx.controls.items()}
    return [Scored("colorfulness", values, [None] * len(values), controls)]
