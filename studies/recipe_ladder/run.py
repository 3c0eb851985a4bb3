"""The classic recipe for class visualization, measured rung by rung on class 8 (hen).

Each rung adds one ingredient to the one before (blur applies to pixels only, so it leaves the
ladder when the spectral parameterization arrives). Every rung gets the same Adam budget and is
judged by the same common evaluator: the class-8 logit on the untransformed image and over 16
fixed transform draws, the share of spectral energy in the top frequency band, and the
probability of class 8 under a second model (EfficientNet-Lite1, needs `pip install 'fvopt[lite]'`;
falls back to none).

    python studies/recipe_ladder/run.py            # 224 px, 256 steps, about 4 minutes on 2 cores
    python studies/recipe_ladder/run.py --quick    # 96 px, 16 steps, under a minute, writes to a temp folder
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from fvopt.evaluate import high_frequency_share, quality_measures, score_images, top_classes
from fvopt.images import grid, save_images
from fvopt.models import load_model
from fvopt.objectives import parse_target
from fvopt.viz import visualize

HERE = Path(__file__).parent
TARGET = "class:8"
L2_WEIGHT = 10.0

# (name, parameterization, target, transforms, options, gradient transform)
RUNGS = [
    ("1 plain, uniform-noise start", "pixel:init=uniform", TARGET, "none", {}, None),
    ("2 mid-gray start", "pixel", TARGET, "none", {}, None),
    ("3 + transformation robustness", "pixel", TARGET, "default", {}, None),
    ("4 + L2 toward gray", "pixel", f"{TARGET}-{L2_WEIGHT}*l2", "default", {}, None),
    ("5 + blur every 10 steps", "pixel", f"{TARGET}-{L2_WEIGHT}*l2", "default", {"blur_every": 10}, None),
    ("6 spectral + decorrelated (fft)", "fft", f"{TARGET}-{L2_WEIGHT}*l2", "default", {}, None),
    ("7 + Laplacian-normalized gradients", "fft", f"{TARGET}-{L2_WEIGHT}*l2", "default", {}, "lapnorm"),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small and fast, output to a temporary folder")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    size, steps = (96, 16) if args.quick else (224, 256)
    out = Path(args.out or (tempfile.mkdtemp(prefix="recipe_ladder_") if args.quick else HERE / "results"))
    out.mkdir(parents=True, exist_ok=True)
    model = load_model("lite0")
    try:
        transfer = load_model("lite1")
    except Exception:  # the optional weights package is not installed
        transfer = None
    objective = parse_target(TARGET)
    rows, images = [], []
    start = time.perf_counter()
    for name, param, target, transforms, options, grad in RUNGS:
        vis = visualize(model, target, param, "adam", steps=steps, size=size, seed=0, transforms=transforms,
                        options=options, grad=grad)
        scores = score_images(model, objective, vis.images)  # the class logit alone, without the L2 term
        probs, classes = top_classes(model, vis.images, k=1)
        quality = quality_measures(vis.images, objective, transfer)
        rows.append({"rung": name, "param": param, "target": target, "transforms": transforms, "options": options,
                     "grad": grad, "value": float(scores["value"]), "robust_value": float(scores["robust_value"]),
                     "top1": int(classes[0, 0]), "top1_prob": float(probs[0, 0]),
                     "high_freq_share": float(high_frequency_share(vis.images)[0]),
                     "transfer_prob": quality.get("transfer_prob"), "seconds": vis.trace["seconds"]})
        images.append(vis.images)
        save_images(vis.images, out / f"rung_{name.split()[0]}.png")
        print(f"{name:40s} logit {rows[-1]['value']:7.2f}  robust {rows[-1]['robust_value']:7.2f}  "
              f"top-1 {rows[-1]['top1']} ({rows[-1]['top1_prob']:.2f})  high-freq {rows[-1]['high_freq_share']:.3f}  "
              f"lite1 p(hen) {rows[-1]['transfer_prob'] if transfer else '-'}")
    grid(torch.cat(images), [r["rung"].split(" ", 1)[0] for r in rows], columns=len(rows)).save(out / "ladder.png")
    meta = {"size": size, "steps": steps, "optimizer": "adam", "seed": 0, "l2_weight": L2_WEIGHT,
            "transfer_model": "lite1" if transfer else None, "seconds": time.perf_counter() - start,
            "threads": torch.get_num_threads(), "torch": torch.__version__}
    (out / "results.json").write_text(json.dumps({"meta": meta, "rungs": rows}, indent=1))
    print(f"wrote {out} in {meta['seconds']:.0f} s")


if __name__ == "__main__":
    main()
