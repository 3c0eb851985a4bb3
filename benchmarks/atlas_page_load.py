"""How fast a big atlas layer page loads (issue 20: "a layer of 1,000 units loads fast"), in headless Chromium.

A layer of --units units under the example site's two optimizers is written by `write_site` from the rows of
docs/atlas_example (its 40 units' images repeated), then opened from file:// until every thumbnail is decoded
(the page's own count, `data-images-loaded`). The browser's start is timed on a one-line page and subtracted.

    python benchmarks/atlas_page_load.py               # 1000 units, 2000 thumbnails
    python benchmarks/atlas_page_load.py --units 50    # smoke test

Needs a Chromium (`.ci/run` installs Debian's `chromium`).
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fvopt.atlases.site import write_site  # noqa: E402
from fvopt.bench.store import Store  # noqa: E402

EXAMPLE = ROOT / "docs" / "atlas_example" / "site"


def open_page(browser: str, page: Path, profile: Path) -> tuple[float, str]:
    """(seconds until the browser printed the page after its load event, the page's image counts)."""
    start = time.perf_counter()
    dom = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--user-data-dir={profile}",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    ).stdout
    seconds = time.perf_counter() - start
    counts = re.search(r'data-images-total="(\d+)" data-images-loaded="(\d+)"', dom)
    return seconds, (f"{counts.group(2)} of {counts.group(1)} images decoded" if counts else "no image count")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--units", type=int, default=1000)
    args = p.parse_args()
    if args.units < 1:
        p.error(f"--units must be at least 1, not {args.units}")
    browser = next(
        (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None
    )
    if browser is None:
        sys.exit("no Chromium here: install one (Debian: apt-get install chromium)")
    meta = json.loads((EXAMPLE / "atlas.json").read_text())
    store = Store(EXAMPLE / "atlas.sqlite", readonly=True)
    try:
        rows = [
            r for r in store.rows() if not (r.get("extra") or {}).get("diversity") and r.get("seed") == meta["seeds"][0]
        ]
    finally:
        store.close()
    layer = meta["layers"][0]
    by_optimizer = {opt: [r for r in rows if r["strategy"] == opt] for opt in meta["optimizers"]}
    big = []
    for unit in range(args.units):
        for opt, source in by_optimizer.items():
            row = copy.deepcopy(source[unit % len(source)])
            row["extra"] = {**row["extra"], "unit": unit}
            big.append(row)
    meta = {**meta, "channels": {layer: args.units}, "seeds": meta["seeds"][:1], "diversity": []}
    with tempfile.TemporaryDirectory() as tmp:
        site = Path(tmp) / "site"
        site.mkdir()
        (site / "atlas.json").write_text(json.dumps(meta))
        start = time.perf_counter()
        write_site(site, meta, big, {})
        written = time.perf_counter() - start
        thumbs = sum(f.stat().st_size for f in (site / "thumbs").rglob("*.png"))
        (site / "blank.html").write_text("<!doctype html><title>blank</title>")
        blank = min(open_page(browser, site / "blank.html", Path(tmp) / "profile")[0] for _ in range(2))
        seconds, counts = min(
            open_page(browser, site / "layers" / f"{layer}.html", Path(tmp) / "profile") for _ in range(2)
        )
    print(
        f"layer page of {args.units} units x {len(by_optimizer)} optimizers ({len(big)} thumbnails, "
        f"{thumbs / 1e6:.1f} MB; written in {written:.1f} s): {counts} in {seconds - blank:.1f} s "
        f"({seconds:.1f} s with the browser's start of {blank:.1f} s)"
    )


if __name__ == "__main__":
    main()
