"""A gallery of multi-octave dreams: scikit-image's sample photos across lite0 layers, and one zoom.

python studies/deepdream/run.py            # 4 photos x 4 layers at native size + a 36-frame zoom
python studies/deepdream/run.py --quick    # 1 photo x 2 layers at 128 px + 3 frames, temp folder
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from fvopt.dream import dream, sample_photo, save_animation, zoom_frames
from fvopt.io.images import grid, save_images
from fvopt.models import load_model

HERE = Path(__file__).parent
PHOTOS = ["chelsea", "astronaut", "coffee", "rocket"]
LAYERS = ["blocks.2", "blocks.3", "blocks.4", "blocks.5"]


def square(image: torch.Tensor, side: int) -> torch.Tensor:
    h, w = image.shape[-2:]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    return F.interpolate(
        image[..., top : top + s, left : left + s],
        size=(side, side),
        mode="bilinear",
        antialias=True,
        align_corners=False,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    photos, layers, frames = (PHOTOS[:1], LAYERS[1:3], 3) if args.quick else (PHOTOS, LAYERS, 36)
    out = Path(args.out or (tempfile.mkdtemp(prefix="deepdream_") if args.quick else HERE / "results"))
    out.mkdir(parents=True, exist_ok=True)
    model = load_model("lite0")
    cells, labels, log = [], [], []
    start = time.perf_counter()
    for photo in photos:
        image = sample_photo(photo)
        if args.quick:
            image = square(image, 128)
        cells.append(square(image, 192))
        labels.append(photo)
        for layer in layers:
            t = time.perf_counter()
            result = dream(image, model, layers=layer, octaves=2 if args.quick else 4, progress=False)
            save_images(result.image, out / f"{photo}_{layer}.png")
            cells.append(square(result.image, 192))
            labels.append(layer)
            h, w = image.shape[-2:]
            log.append(
                {
                    "photo": photo,
                    "layer": layer,
                    "width": w,
                    "height": h,
                    "seconds": time.perf_counter() - t,
                    "forwards": result.forwards,
                }
            )
            print(f"{photo} {w}x{h} {layer}: {log[-1]['seconds']:.1f} s")
    grid(torch.cat(cells), labels, columns=len(layers) + 1).save(out / "gallery.png")
    first = dream(
        sample_photo("chelsea") if not args.quick else square(sample_photo("chelsea"), 128),
        model,
        layers="blocks.3,blocks.4",
        progress=False,
    ).image
    t = time.perf_counter()
    sequence = zoom_frames(
        first,
        frames,
        1.05,
        lambda frame: dream(frame, model, layers="blocks.3,blocks.4", octaves=1, steps=5, progress=False).image,
        progress=not args.quick,
    )
    written = save_animation(sequence, out / "zoom.gif", fps=10)
    meta = {
        "dreams": log,
        "zoom": {
            "frames": frames,
            "zoom": 1.05,
            "seconds": time.perf_counter() - t,
            "files": [p.name for p in written],
        },
        "seconds": time.perf_counter() - start,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }
    (out / "results.json").write_text(json.dumps(meta, indent=1))
    print(f"wrote {out} in {meta['seconds']:.0f} s")


if __name__ == "__main__":
    main()
