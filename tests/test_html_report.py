"""The self-contained HTML report: its content checked in plain tests, and rendered in a real
headless browser (Chromium, which .ci/run installs) that must decode every embedded image."""

import io
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fvopt.bench.report import write_report
from fvopt.bench.store import Store
from fvopt.cli import main
from test_comparison import cell

BROWSER = next(
    (shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome") if shutil.which(name)), None
)


def png(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def make_db(path: Path) -> Path:
    """Three strategies, two targets, four seeds, one run stopped on a NaN and one failed cell."""
    store = Store(path)
    rng = np.random.default_rng(1)
    for target in ("class:8", "channel:blocks.4:10"):
        for seed in range(4):
            for strategy, gain in (("adam", 2.0), ("cmaes", 1.0), ("ga", 0.0)):
                values = np.cumsum(rng.uniform(0, 1, 5)) + gain
                stop = (
                    "stopped: the objective became NaN after 60 forward passes"
                    if (strategy, seed) == ("ga", 3)
                    else "passes"
                )
                row = cell(
                    strategy,
                    seed,
                    [(20 * (i + 1), 0.1 * (i + 1), float(v)) for i, v in enumerate(values)],
                    target=target,
                    model="lite0",
                    stop=stop,
                )
                store.save(
                    {
                        **row,
                        "key": f"{target}-{strategy}-{seed}",
                        "spec_name": "handmade",
                        "spec_hash": "abc",
                        "strategy_name": strategy,
                        "options": {},
                        "param_dim": 100,
                        "size": 64,
                        "transforms": "default",
                        "status": "done",
                        "steps": 5,
                        "extra": {},
                        "image": png(seed),
                        "fvopt_version": "0.1.0",
                        "torch_version": "2.x",
                        "device": "cpu",
                        "error": None,
                    }
                )
    store.save(
        {
            "key": "failed-one",
            "spec_name": "handmade",
            "model": "lite0",
            "target": "class:8",
            "strategy": "ga",
            "param": "fft",
            "param_used": "fft",
            "seed": 9,
            "budget": {"passes": 100},
            "status": "failed",
            "error": "RuntimeError: out of memory",
            "options": {},
            "final": {},
            "trace": [],
            "extra": {},
        }
    )
    store.close()
    return path


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("html")
    write_report(make_db(folder / "r.sqlite"), folder / "report")
    return folder / "report" / "report.html"


def test_the_html_report_holds_everything_and_needs_nothing_else(report):
    text = report.read_text()
    for section in (
        "Conclusions",
        "Setup and versions",
        "Fixed budget",
        "Fixed target",
        "Paired statistics",
        "Convergence per problem",
        "Medians over seeds",
        "Final images",
        "Failed cells",
    ):
        assert re.search(f">{section}( \\(\\d+\\))?</h2>", text), section  # "Failed cells (N)" counts them
    # self-contained: every image inline, no file, stylesheet or script fetched from anywhere
    sources = re.findall(r'src="([^"]*)"', text)
    assert len(sources) == 8 and all(
        s.startswith("data:image/") for s in sources
    )  # 4 comparison figures, 2 curves, 2 grids
    assert not re.search(r'<link|src="http|href="http', text)
    assert "Friedman test: chi2 =" in text and "Holm" in text
    assert "RuntimeError: out of memory" in text  # the failed cell, with its error
    assert "ga 1" in text  # the run that stopped early is counted
    assert "handmade" in text and "fvopt 0.1.0, torch 2.x on cpu (24 cells)" in text


def test_the_report_command_refuses_a_bad_targets_kind(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["bench", "report", "x.sqlite", "--targets", "optimum"])
    assert stop.value.code == 2 and "invalid choice: 'optimum'" in capsys.readouterr().err
    db = make_db(tmp_path / "r.sqlite")
    assert main(["bench", "report", str(db), "--out", str(tmp_path / "rep"), "--targets", "budget", "--no-html"]) == 0
    assert not (tmp_path / "rep" / "report.html").exists()
    assert "budget-based targets" in (tmp_path / "rep" / "comparison.md").read_text()


@pytest.mark.skipif(BROWSER is None, reason="no Chromium here: .ci/run installs Debian's chromium so that CI runs this")
def test_a_real_browser_renders_the_report_and_decodes_every_image(report, tmp_path):
    base = [
        BROWSER,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        f"--user-data-dir={tmp_path / 'profile'}",
    ]
    dom = subprocess.run(
        base + ["--virtual-time-budget=10000", "--dump-dom", report.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    body = re.search(r"<body[^>]*>", dom).group(0)
    assert 'data-images-total="8"' in body and 'data-images-loaded="8"' in body
    shot = tmp_path / "shot.png"
    subprocess.run(
        base + ["--hide-scrollbars", "--window-size=1200,1600", f"--screenshot={shot}", report.as_uri()],
        capture_output=True,
        timeout=120,
    )
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert pixels.shape == (1600, 1200) and pixels.std() > 20  # text and figures, not a blank page
