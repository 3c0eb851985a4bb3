"""The scripts under benchmarks/ that check issue targets still run: each in its smoke size, once.

They measure ratios on a quiet machine (the numbers are README's, not these); here only that every
part runs end to end and prints its ratio line with the target beside it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_script(*args: str) -> str:
    done = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.slow
def test_quality_overhead_prints_the_pass_ratio_and_the_judging_shares():
    out = run_script("benchmarks/quality_overhead.py", "--images", "16", "--side", "64", "--repeats", "1")
    assert re.search(r"reference pass [\d.]+ img/s; ratio [\d.]+x \(target >= 0\.8x\)", out), out
    assert len(re.findall(r"of a 10 s cell \(target <= 5%\)", out)) == 2, out


@pytest.mark.slow
def test_atlas_overhead_prints_both_ratios():
    out = run_script(
        "benchmarks/atlas_overhead.py", "--units", "4", "--steps", "2", "--size", "64", "--worker-steps", "2"
    )
    assert re.search(r"^1\. atlas of 4 channels .* ratio [\d.]+x \(target <= 1\.15x\)$", out, re.M), out
    assert re.search(
        r"^2\. the atlas at 64 px, 2 steps, .* ratio [\d.]+x \(target <= 0\.75x on 2 cores\)$", out, re.M
    ), out
    assert re.search(
        r"^   one batch of 2 units: .* the optimization alone can take at best [\d.]+x on 2 processes$", out, re.M
    ), out


@pytest.mark.slow
@pytest.mark.skipif(
    not any(shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")),
    reason="no Chromium here: .ci/run installs Debian's chromium so that CI runs this",
)
def test_atlas_page_load_opens_a_big_layer_page_with_every_thumbnail_decoded():
    out = run_script("benchmarks/atlas_page_load.py", "--units", "30")
    assert re.search(
        r"^layer page of 30 units x 2 optimizers \(60 thumbnails, .*\): 60 of 60 images decoded in", out, re.M
    ), out
