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
from fvopt.io.images import grid, save_images
from fvopt.models import load_model
from fvopt.objectives import parse_target
from fvopt.viz import visualize

HERE = Path(__file__).parent
TARGET = "class:8"
L2_WEIGHT = 10.0

# (name, parameterization, target, transforms, options, gradient transform) and, for the rungs
# added with issue 13, keyword arguments of `visualize` (size, render size, optimizer)
LAPNORM_TARGET = f"{TARGET}-{L2_WEIGHT}*l2"
RUNGS = [
    ("1 plain, uniform-noise start", "pixel:init=uniform", TARGET, "none", {}, None, {}),
    ("2 mid-gray start", "pixel", TARGET, "none", {}, None, {}),
    ("3 + transformation robustness", "pixel", TARGET, "default", {}, None, {}),
    ("4 + L2 toward gray", "pixel", LAPNORM_TARGET, "default", {}, None, {}),
    ("5 + blur every 10 steps", "pixel", LAPNORM_TARGET, "default", {"blur_every": 10}, None, {}),
    ("6 spectral + decorrelated (fft)", "fft", LAPNORM_TARGET, "default", {}, None, {}),
    ("7 + Laplacian-normalized gradients", "fft", LAPNORM_TARGET, "default", {}, "lapnorm", {}),
    # rung 7 on a 128 px image: the network sees 128 px, then (Lucent's convention) 224
    ("8 rung 7 at 128 px, network sees 128", "fft", LAPNORM_TARGET, "default", {}, "lapnorm", {"size": 128}),
    (
        "9 + shown at 224 (render size)",
        "fft",
        LAPNORM_TARGET,
        "default",
        {},
        "lapnorm",
        {"size": 128, "render": "lucent"},
    ),
    # rung 7 with MaCo's robustness: 4 random crops a step (4 passes) and additive noise
    ("10 rung 7 + crops and noise", "fft", LAPNORM_TARGET, "default,crops:4@0.6-0.3,noise:0.02", {}, "lapnorm", {}),
    # MaCo's recipe: phase only, a 448 px canvas seen through 6 crops at 224, noise, NAdam at 1.0
    (
        "11 MaCo (phase only, crops, NAdam)",
        "maco",
        TARGET,
        "crops:6@0.5-0.3,noise:0.05,unoise:0.05",
        {"lr": 1.0},
        None,
        {"size": 448, "render": 224, "optimizer": "torch:NAdam"},
    ),
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
    for name, param, target, transforms, options, grad, extra in RUNGS:
        extra = dict(extra)
        optimizer = extra.pop("optimizer", "adam")
        rung_size = extra.pop("size", size) if not args.quick else min(extra.pop("size", size), size)
        vis = visualize(
            model,
            target,
            param,
            optimizer,
            steps=steps,
            size=rung_size,
            seed=0,
            transforms=transforms,
            options=options,
            grad=grad,
            **extra,
        )
        # the class logit alone, without the L2 term, always as the network sees a 224 px image (rungs
        # 8-11 make other sizes: each is judged resized to the model's input size, as top-1 and Lite1 are)
        scores = score_images(model, objective, vis.images, render=model.input_size)
        probs, classes = top_classes(model, vis.images, k=1)
        quality = quality_measures(vis.images, objective, transfer)
        rows.append(
            {
                "rung": name,
                "param": param,
                "target": target,
                "transforms": transforms,
                "options": options,
                "grad": grad,
                "optimizer": optimizer,
                "size": rung_size,
                "render": vis.trace["render"],
                "passes": vis.trace["forwards"] + 2 * vis.trace["backwards"],
                "value": float(scores["value"]),
                "robust_value": float(scores["robust_value"]),
                "top1": int(classes[0, 0]),
                "top1_prob": float(probs[0, 0]),
                "high_freq_share": float(high_frequency_share(vis.images)[0]),
                "transfer_prob": quality.get("transfer_prob"),
                "seconds": vis.trace["seconds"],
            }
        )
        images.append(vis.images)
        save_images(vis.images, out / f"rung_{name.split()[0]}.png")
        print(
            f"{name:40s} logit {rows[-1]['value']:7.2f}  robust {rows[-1]['robust_value']:7.2f}  "
            f"top-1 {rows[-1]['top1']} ({rows[-1]['top1_prob']:.2f})  high-freq {rows[-1]['high_freq_share']:.3f}  "
            f"lite1 p(hen) {rows[-1]['transfer_prob'] if transfer else '-'}"
        )
    side = max(im.shape[-1] for im in images)  # rungs of other sizes are shown at the largest one
    shown = [
        torch.nn.functional.interpolate(im, size=(side, side), mode="bilinear") if im.shape[-1] != side else im
        for im in images
    ]
    grid(torch.cat(shown), [r["rung"].split(" ", 1)[0] for r in rows], columns=len(rows)).save(out / "ladder.png")
    meta = {
        "size": size,
        "steps": steps,
        "optimizer": "adam",
        "seed": 0,
        "l2_weight": L2_WEIGHT,
        "transfer_model": "lite1" if transfer else None,
        "seconds": time.perf_counter() - start,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }
    (out / "results.json").write_text(json.dumps({"meta": meta, "rungs": rows}, indent=1))
    print(f"wrote {out} in {meta['seconds']:.0f} s")


if __name__ == "__main__":
    main()
