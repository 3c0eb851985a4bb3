"""The atlas as a static folder that opens from file:// with no server and no external resource.

index.html (layers, counts, progress, each optimizer's budget and search space) -> layers/LAYER.html (a grid
of every unit under the site's first seed,
one tab per optimizer, sortable by each measure with a few lines of inline JavaScript) -> units/LAYER/UNIT.html
(each optimizer's image for every seed, a row per optimizer and a column per seed, the unit's diversity set when
one was asked for, the measures, the top and bottom dataset examples, its activation curve, links to neighbours).
Images are small separate files (thumbs/ for the grids), so a layer of 1,000 units loads fast. Every page
is regenerated from the database, so the pages always say what the store holds. Folder and file names made from
layer and optimizer names go through fvopt.io.filenames.safe_name: a layer named '/tmp/x/EVIL' or '..' stays inside
the site.
"""

from __future__ import annotations

import html
import io
import json
import math
import statistics
from pathlib import Path

import numpy as np
from PIL import Image

from ..io import atomic
from ..io.filenames import inside, safe_name


def write_text(path: Path, text: str) -> None:
    """A page written whole or not at all (fvopt.io.atomic), its folder made first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(path, text)


THUMB = 64
EX_SIDE = 48
STYLE = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1b1f24;background:#fafbfc}
main{max-width:1180px;margin:auto;padding:20px 26px 50px}h1{font-size:24px;margin:0 0 4px}
h2{font-size:18px;margin:26px 0 8px;border-bottom:1px solid #d8dee4}a{color:#0969da;text-decoration:none}
.muted{color:#57606a}table{border-collapse:collapse;background:#fff;font-size:13px}
th,td{border:1px solid #d8dee4;padding:3px 8px;text-align:right}th:first-child,td:first-child{text-align:left}
.grid{display:flex;flex-wrap:wrap;gap:6px}.grid figure{margin:0;width:72px;font-size:11px;text-align:center}
.grid img{width:64px;height:64px;image-rendering:pixelated;border:1px solid #d8dee4;background:#fff}
.tabs button{margin-right:6px;padding:3px 10px;border:1px solid #d8dee4;background:#fff;cursor:pointer}
.tabs button.on{background:#0969da;color:#fff}.bad{color:#b3261e;font-weight:600}.hide{display:none}
.opt{display:inline-block;margin:0 18px 14px 0;vertical-align:top}.opt img.vis{width:192px;image-rendering:pixelated}
.miss{display:inline-block;width:62px;height:62px;border:1px dashed #b3261e;font-size:10px;color:#b3261e}
table.seeds td{text-align:center;vertical-align:top}table.seeds figure{margin:0}
table.seeds img.vis{width:160px;image-rendering:pixelated}img.set{height:160px;image-rendering:pixelated}
"""
CHECK_IMAGES = """
window.addEventListener('load', () => {
  const images = [...document.images];
  document.body.dataset.imagesTotal = images.length;
  document.body.dataset.imagesLoaded = images.filter(i => i.complete && i.naturalWidth > 0).length;
});
"""
SORT = """
function show(opt){document.querySelectorAll('.optgrid').forEach(g=>g.classList.toggle('hide',g.dataset.opt!==opt));
 document.querySelectorAll('.tabs button').forEach(b=>b.classList.toggle('on',b.dataset.opt===opt));}
function sortBy(key){document.querySelectorAll('.optgrid .grid').forEach(g=>{const f=[...g.children];
 f.sort((a,b)=>{const x=parseFloat(a.dataset[key]),y=parseFloat(b.dataset[key]);
  if(key==='unit')return x-y; if(isNaN(x))return 1; if(isNaN(y))return -1; return y-x;});
 f.forEach(e=>g.appendChild(e));});}
"""


def page(title: str, body: str, script: str = "") -> str:
    return (
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{html.escape(title)}</title>"
        f"<style>{STYLE}</style><script>{CHECK_IMAGES}{script}</script></head><body><main>{body}</main></body></html>"
    )


def fmt(v) -> str:
    """A number as the pages show it: 4 significant digits; a dash for a missing or non-finite value."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    return f"{v:.4g}" if isinstance(v, float) else html.escape(str(v))


def measure_names(rows: list[dict]) -> list[str]:
    names: list[str] = []
    for r in rows:
        for m in (r.get("quality") or {}).get("measures") or []:
            if m not in names:
                names.append(m)
    return names


def unit_numbers(row: dict, measures: list[str]) -> dict:
    """The numbers a unit page shows for one cell, straight from its stored row (tests compare them)."""
    final, quality = row.get("final") or {}, row.get("quality") or {}
    out = {"value": final.get("value"), "robust_value": final.get("robust_value")}
    for m in measures:
        out[m] = quality.get(m)
    return out


def spent(row: dict) -> dict:
    """What a cell spent: forwards, backwards, passes (a backward counts as two) and seconds; a unit of a batch its
    share of the batch's counts (a row without extra's batch counts holds the batch's own counts under forwards)."""
    f, b = row.get("forwards"), row.get("backwards")
    extra = row.get("extra") or {}
    n = len(extra.get("batch") or []) or 1
    if isinstance(extra.get("batch_forwards"), int) and isinstance(extra.get("batch_backwards"), int):
        f, b = extra["batch_forwards"] // n, extra["batch_backwards"] // n
    passes = f + 2 * b if isinstance(f, int) and isinstance(b, int) else None
    return {"forwards": f, "backwards": b, "passes": passes, "seconds": row.get("seconds")}


def searched(rows: list[dict]) -> dict[str, str]:
    """{optimizer: the parameterizations it searched}, from the stored rows (what really ran)."""
    found: dict[str, list[str]] = {}
    for r in rows:
        if r.get("param_used"):
            names = found.setdefault(r["strategy"], [])
            if r["param_used"] not in names:
                names.append(r["param_used"])
    return {opt: ", ".join(names) for opt, names in found.items()}


def _median(values: list) -> "float | None":
    """The median of the finite numbers among `values` (None when there are none)."""
    xs = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    return statistics.median(xs) if xs else None


def spending(rows: list[dict], searched_as: dict[str, str]) -> str:
    """One line per optimizer: what it searched and the median a cell spent (the pages' budget line)."""
    parts = []
    for opt in dict.fromkeys(r["strategy"] for r in rows):
        mine = [spent(r) for r in rows if r["strategy"] == opt and r["status"] == "done"]
        if not mine:
            continue
        med = {k: _median([m[k] for m in mine]) for k in ("passes", "forwards", "backwards", "seconds")}
        parts.append(
            f'<li data-optimizer="{html.escape(opt)}" data-passes="{json.dumps(med["passes"])}">'
            f"<b>{html.escape(opt)}</b> searched {html.escape(searched_as.get(opt, '?'))}: per cell (median of "
            f"{len(mine)}) {fmt(med['passes'])} passes = {fmt(med['forwards'])} forwards + 2 &times; "
            f"{fmt(med['backwards'])} backwards, {fmt(med['seconds'])} s</li>"
        )
    return f"<ul class=spent>{''.join(parts)}</ul>" if parts else ""


def budget_text(settings: dict) -> str:
    """The budget each cell had, from the site's settings: '192 passes per cell'."""
    from .plan import BUDGET_KEYS

    given = [(k, settings.get(k)) for k in BUDGET_KEYS if settings.get(k) is not None]
    return (
        ", ".join(f"{v:g} {k}" for k, v in given) + " per cell" + (" (whichever ended first)" if len(given) > 1 else "")
    )


def cell_of(row: dict) -> tuple[str, int | None, int]:
    """(optimizer, seed, diversity set size or 0) of a stored row: how a unit's page tells its cells apart."""
    extra = row.get("extra") or {}
    return row["strategy"], row.get("seed"), int(extra.get("diversity") or 0)


def image_path(layer: str, opt: str, unit: int, seed, diversity: int, first) -> str:
    """A cell's image, relative to the site: the first seed's where sites before seed lists kept them."""
    layer, opt = safe_name(layer), safe_name(opt)
    if diversity:
        return f"img/{layer}/diversity-{diversity}/{unit}.png"
    return f"img/{layer}/{opt}/{unit}.png" if seed == first else f"img/{layer}/{opt}/seed-{seed}/{unit}.png"


def thumb_path(layer: str, opt: str, unit: int) -> str:
    return f"thumbs/{safe_name(layer)}/{safe_name(opt)}/{unit}.png"


def write_site(site: Path, meta: dict, rows: list[dict], examples: dict | None = None) -> Path:
    """Every page and image of the site from the store's rows (done and failed) and the record's layers.

    `examples`: {layer: {unit: {"top": [(img (3,h,w) tensor, activation)], "bottom": [...], "acts": array}}}."""
    from .plan import seeds_of

    site = Path(site)
    examples = examples or {}
    seeds = seeds_of(meta)
    first = seeds[0]
    cells = {}  # (layer, unit) -> {(optimizer, seed, diversity): row}
    for r in rows:
        extra = r.get("extra") or {}
        if "layer" in extra:
            opt, seed, div = cell_of(r)
            cells.setdefault((extra["layer"], extra["unit"]), {})[(opt, first if seed is None else seed, div)] = r
    # the grids, the index and the activation curve show the first seed: (layer, unit) -> {optimizer: row}
    by = {lu: {o: r for (o, seed, div), r in c.items() if seed == first and not div} for lu, c in cells.items()}
    done_rows = [r for r in rows if r["status"] == "done" and not cell_of(r)[2]]
    measures = measure_names(done_rows)
    optimizers = meta["optimizers"]
    layers = meta["layers"]
    settings = meta["settings"]
    reference = next(
        (r["quality"].get("reference") for r in done_rows if (r.get("quality") or {}).get("reference")),
        settings.get("reference"),
    )
    for layer in layers:
        units = sorted(u for (lay, u) in cells if lay == layer)
        thumbs: dict[str, list] = {}
        for u in units:
            for (opt, seed, div), r in cells[(layer, u)].items():
                if r.get("image"):
                    thumb = _save_images(
                        site,
                        image_path(layer, opt, u, seed, div, first),
                        r["image"],
                        thumb=None if seed != first or div else thumb_path(layer, opt, u),
                    )
                    if thumb is not None:
                        thumbs.setdefault(opt, []).append((u, thumb))
        sprites = write_sprites(site, layer, thumbs)
        ex = examples.get(layer, {})
        for i, u in enumerate(units):
            _write_examples(site, layer, u, ex.get(u), by[(layer, u)])
            prev = units[i - 1] if i > 0 else None
            nxt = units[i + 1] if i + 1 < len(units) else None
            write_text(
                inside(site, "units", safe_name(layer), f"{u}.html"),
                _unit_page(
                    layer, u, cells[(layer, u)], optimizers, seeds, measures, ex.get(u), prev, nxt, settings, reference
                ),
            )
        layer_rows = [r for c in cells.values() for r in c.values() if (r.get("extra") or {}).get("layer") == layer]
        write_text(
            inside(site, "layers", f"{safe_name(layer)}.html"),
            _layer_page(layer, units, by, optimizers, measures, meta, sprites, layer_rows),
        )
    write_text(site / "index.html", _index_page(meta, by, reference, rows))
    return site / "index.html"


def _save_images(site: Path, path: str, png: bytes, thumb: str | None) -> "Image.Image | None":
    """The cell's image and (for the grids) its thumbnail, each written whole or not at all; the thumbnail is
    returned for the layer's sprite map."""
    full = inside(site, path)
    full.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_bytes(full, png)
    if thumb is None:
        return None
    small = inside(site, thumb)
    small.parent.mkdir(parents=True, exist_ok=True)
    image = Image.open(io.BytesIO(png)).convert("RGB")
    image.thumbnail((THUMB, THUMB))
    _save(image, small, optimize=True)
    return image


def _save(image: "Image.Image", path: Path, **options) -> None:
    with atomic.atomic_path(path) as tmp:
        image.save(tmp, **options)


def write_sprites(site: Path, layer: str, thumbs: dict[str, list[tuple[int, "Image.Image"]]]) -> dict[str, str]:
    """Each optimizer's thumbnails of the layer as one image, a sprite map in unit order (the way Lucid's and
    Lucent's users ask to see a whole layer, and one file to share or load), with a JSON index of the tile each
    unit lies in. `thumbs`: {optimizer: [(unit, thumbnail)]}; returns {optimizer: the sprite's path in the site}."""
    written = {}
    for opt, tiles in thumbs.items():
        if not tiles:
            continue
        tiles = sorted(tiles, key=lambda t: t[0])
        columns = math.ceil(math.sqrt(len(tiles)))
        rows = math.ceil(len(tiles) / columns)
        sprite = Image.new("RGB", (columns * THUMB, rows * THUMB), "white")
        for k, (_, tile) in enumerate(tiles):
            row, column = divmod(k, columns)
            sprite.paste(tile, (column * THUMB + (THUMB - tile.width) // 2, row * THUMB + (THUMB - tile.height) // 2))
        path = f"sprites/{safe_name(layer)}/{safe_name(opt)}.png"
        inside(site, path).parent.mkdir(parents=True, exist_ok=True)
        _save(sprite, inside(site, path), optimize=True)
        index = {"layer": layer, "optimizer": opt, "tile": THUMB, "columns": columns, "units": [u for u, _ in tiles]}
        atomic.write_text(inside(site, f"{path[:-4]}.json"), json.dumps(index))
        written[opt] = path
    return written


def _write_examples(site: Path, layer: str, unit: int, ex: dict | None, cells: dict) -> None:
    if not ex:
        return
    folder = inside(site, "examples", safe_name(layer))
    folder.mkdir(parents=True, exist_ok=True)
    for which in ("top", "bottom"):
        tiles = [
            Image.fromarray((img.permute(1, 2, 0).clamp(0, 1).numpy() * 255).astype(np.uint8)).resize(
                (EX_SIDE, EX_SIDE), Image.BILINEAR
            )
            for img, _ in ex[which]
        ]
        strip = Image.new("RGB", (max(1, len(tiles)) * (EX_SIDE + 2), EX_SIDE), "white")
        for k, tile in enumerate(tiles):
            strip.paste(tile, (k * (EX_SIDE + 2), 0))
        _save(strip, folder / f"{unit}-{which}.jpg", quality=80)
    _curve(
        folder / f"{unit}-curve.svg",
        ex["acts"],
        {o: (r.get("final") or {}).get("value") for o, r in cells.items() if r["status"] == "done"},
    )


PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
CURVE_W, CURVE_H, CURVE_POINTS = 320, 160, 160


def _curve(path: Path, acts, values: dict) -> None:
    """The unit's activation over the reference images, sorted (the curve), with each optimizer's image marked
    as a dashed line. Written as a small SVG by hand: matplotlib took 0.11 s a unit, a minute per 500 units."""
    curve = np.sort(np.asarray(acts, dtype=float)[np.isfinite(acts)])[::-1]
    if curve.size > CURVE_POINTS:  # the shape, not every image: evenly spaced, both ends kept
        curve = curve[np.linspace(0, curve.size - 1, CURVE_POINTS).round().astype(int)]
    marks = [(opt, float(v)) for opt, v in sorted(values.items()) if v is not None and math.isfinite(v)]
    ys = [*curve.tolist(), *(v for _, v in marks)] or [0.0]
    low, high = min(ys), max(ys)
    if high - low < 1e-12:
        low, high = low - 1, high + 1
    pad = 0.05 * (high - low)  # the marks stay off the frame
    low, high = low - pad, high + pad
    left, right, top, bottom = 44, CURVE_W - 8, 8, CURVE_H - 26

    def y(v: float) -> float:
        return bottom - (v - low) / (high - low) * (bottom - top)

    xs = np.linspace(left, right, max(curve.size, 1))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{CURVE_W}" height="{CURVE_H}" '
        f'viewBox="0 0 {CURVE_W} {CURVE_H}" font-family="sans-serif" font-size="9">',
        f'<rect width="{CURVE_W}" height="{CURVE_H}" fill="white"/>',
        f'<path d="M{left},{top}V{bottom}H{right}" fill="none" stroke="#333" stroke-width="0.8"/>',
    ]
    for v in sorted({low, high, *([0.0] if low < 0 < high else [])}):
        parts.append(f'<text x="{left - 3}" y="{y(v) + 3:.1f}" text-anchor="end">{v:.3g}</text>')
    if curve.size:
        points = " ".join(f"{a:.1f},{y(b):.1f}" for a, b in zip(xs, curve))
        parts.append(f'<polyline points="{points}" fill="none" stroke="#57606a" stroke-width="1.2"/>')
    legend = [("reference", "#57606a", "")]
    for k, (opt, v) in enumerate(marks):
        color = PALETTE[k % len(PALETTE)]
        parts.append(
            f'<line x1="{left}" x2="{right}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="{color}" stroke-dasharray="4 2"/>'
        )
        legend.append((f"{opt} {v:.3g}", color, ' stroke-dasharray="4 2"'))
    for k, (label, color, dash) in enumerate(legend):
        ly = top + 8 + 11 * k
        parts.append(f'<line x1="{right - 110}" x2="{right - 94}" y1="{ly - 3}" y2="{ly - 3}" stroke="{color}"{dash}/>')
        parts.append(f'<text x="{right - 90}" y="{ly}">{html.escape(label)}</text>')
    parts.append(
        f'<text x="{(left + right) / 2}" y="{CURVE_H - 12}" text-anchor="middle">reference images, by activation</text>'
    )
    parts.append(
        f'<text transform="translate(10 {(top + bottom) / 2}) rotate(-90)" text-anchor="middle">activation</text></svg>'
    )
    atomic.write_text(path, "\n".join(parts))


def _status(r: dict) -> str:
    if r["status"] != "done":
        return f"<span class=bad>failed: {html.escape(str(r.get('error')))}</span>"
    if (r.get("final") or {}).get("nan_stopped"):
        return f'<span class="bad nan">stopped on NaN: {html.escape(str(r.get("stop_reason")))}</span>'
    return ""


def _unit_page(layer, u, cells, optimizers, seeds, measures, ex, prev, nxt, settings, reference) -> str:
    """`cells`: {(optimizer, seed, diversity): row}. A row per optimizer and a column per seed of images, each with
    its value; the diversity sets; a table of every measure of every optimizer and seed (numbers as stored)."""
    nav = (
        f'<p><a href="../../index.html">atlas</a> / <a href="../../layers/{safe_name(layer)}.html">'
        f"{html.escape(layer)}</a>"
        f" / unit {u} &nbsp; "
        + (f'<a href="{prev}.html">&larr; unit {prev}</a> ' if prev is not None else "")
        + (f'<a href="{nxt}.html">unit {nxt} &rarr;</a>' if nxt is not None else "")
        + "</p>"
    )
    first = seeds[0]
    seen = list(dict.fromkeys([*seeds, *sorted(s for (_, s, d) in cells if not d and s not in seeds)]))
    rows = []
    for opt in optimizers:
        tds = []
        for seed in seen:
            r = cells.get((opt, seed, 0))
            if r is None:
                tds.append("<td><span class=muted>not run yet</span></td>")
                continue
            img = (
                f'<img class=vis alt="{html.escape(opt)} seed {seed}" '
                f'src="../../{image_path(layer, opt, u, seed, 0, first)}">'
                if r.get("image")
                else "<span class=miss>no image</span>"
            )
            value = (r.get("final") or {}).get("value") if r["status"] == "done" else None
            passes = spent(r)["passes"]
            tds.append(
                f'<td><figure data-optimizer="{html.escape(opt)}" data-seed="{seed}" '
                f'data-value="{json.dumps(value)}" data-passes="{json.dumps(passes)}">{img}<figcaption>value '
                f"{fmt(value)}, {fmt(passes)} passes {_status(r)}</figcaption></figure></td>"
            )
        searched = next(
            (r.get("param_used") for (o, _, d), r in cells.items() if o == opt and not d and r.get("param_used")), None
        )
        note = f"<br><span class=muted>searched {html.escape(str(searched))}</span>" if searched else ""
        rows.append(f"<tr><th>{html.escape(opt)}{note}</th>{''.join(tds)}</tr>")
    for (opt, seed, div), r in sorted(cells.items(), key=lambda kv: (kv[0][2], kv[0][0], kv[0][1])):
        if div:
            rows.append(_diversity_row(layer, u, opt, seed, div, r, len(seen), first))
    head = "".join(f"<th>seed {s}</th>" for s in seen)
    grid = f"<table class=seeds><thead><tr><th>optimizer</th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    columns = [(o, s) for o in optimizers for s in seen if (o, s, 0) in cells]
    many = len(seen) > 1
    head = "".join(f"<th>{html.escape(o)}{f' seed {s}' if many else ''}</th>" for o, s in columns)
    trs = []
    for name in ["value", "robust_value"] + measures:
        tds = []
        for o, seed in columns:
            r = cells[(o, seed, 0)]
            v = unit_numbers(r, measures).get(name) if r["status"] == "done" else None
            q = r.get("quality") or {}
            interval = (
                f" <span class=muted>[{fmt(q.get(name + '_lo'))}, {fmt(q.get(name + '_hi'))}]</span>"
                if name in measures and fmt(q.get(name + "_lo")) != "–"
                else ""
            )
            tds.append(
                f'<td data-measure="{name}" data-optimizer="{html.escape(o)}" data-seed="{seed}" '
                f'data-exact="{json.dumps(v)}">{fmt(v)}{interval}</td>'
            )
        trs.append(f"<tr><td>{html.escape(name)}</td>{''.join(tds)}</tr>")
    spent_by_cell = {(o, seed): spent(cells[(o, seed, 0)]) for o, seed in columns}  # each cell's share of its batch
    for name in ("passes", "forwards", "backwards", "seconds"):
        tds = [
            f'<td data-spent="{name}" data-optimizer="{html.escape(o)}" data-seed="{seed}" '
            f'data-exact="{json.dumps(spent_by_cell[(o, seed)][name])}">{fmt(spent_by_cell[(o, seed)][name])}</td>'
            for o, seed in columns
        ]
        trs.append(f"<tr><td>{name} spent</td>{''.join(tds)}</tr>")
    table = f"<table class=measures><thead><tr><th>measure</th>{head}</tr></thead><tbody>{''.join(trs)}</tbody></table>"
    exhtml = "<p class=muted>no dataset examples (no reference set)</p>"
    folder = safe_name(layer)
    if ex:
        tops = ", ".join(f"{a:.3g}" for _, a in ex["top"])
        bots = ", ".join(f"{a:.3g}" for _, a in ex["bottom"])
        exhtml = (
            f'<h3>top</h3><img alt="top examples" src="../../examples/{folder}/{u}-top.jpg"><div class=muted>'
            f'activations {tops}</div><h3>bottom</h3><img alt="bottom examples" src="../../examples/{folder}/{u}'
            f'-bottom.jpg"><div class=muted>activations {bots}</div><h2>Activation curve</h2><img alt="activation'
            f' curve" src="../../examples/{folder}/{u}-curve.svg">'
        )
    seed_text = f"seed {first}" if not many else f"seeds {', '.join(map(str, seen))}"
    body = (
        f"<h1>{html.escape(settings['model'])} {html.escape(layer)} unit {u}</h1>{nav}"
        f"<p class=muted>param {html.escape(settings['param'])} (each optimizer's search space is named beside it), "
        f"{settings['size']} px, budget {budget_text(settings)}, "
        f"{seed_text}; measures judged against {html.escape(str(reference))}</p>"
        f"<h2>Visualizations</h2>{grid}<h2>Measures</h2>{table}"
        f"<h2>Dataset examples <span class=muted>({html.escape(str(reference))})</span></h2>{exhtml}"
    )
    return page(f"{layer} unit {u}", body)


def _diversity_row(layer, u, opt, seed, k, r, span, first) -> str:
    """The unit's diversity set of k images: its images side by side, each image's value, the diversity measure."""
    extra, final, q = r.get("extra") or {}, r.get("final") or {}, r.get("quality") or {}
    weight = extra.get("diversity_weight")
    img = (
        f'<img class=set alt="diversity set of {k}" src="../../{image_path(layer, opt, u, seed, k, first)}">'
        if r.get("image")
        else "<span class=miss>no image</span>"
    )
    done = r["status"] == "done"
    values = final.get("values") or []
    shown = ", ".join(fmt(v) for v in values) if done else "–"
    measure = q.get("diversity") if done else None
    interval = (
        f" <span class=muted>[{fmt(q.get('diversity_lo'))}, {fmt(q.get('diversity_hi'))}]</span>"
        if fmt(q.get("diversity_lo")) != "–"
        else ""
    )
    why = q.get("error") or q.get("note") or ""
    measured = (
        f'diversity (fvopt.quality: mean pairwise 1 - cosine of judge features) <span data-set="diversity" '
        f'data-measure="diversity" data-exact="{json.dumps(measure)}">{fmt(measure)}</span>{interval}'
        + (f" <span class=muted>{html.escape(str(why))}</span>" if measure is None and why else "")
    )
    return (
        f"<tr class=diversity-set><th>diversity set<br><span class=muted>{k} images optimized together by "
        f"{html.escape(opt)}, seed {seed}: <code>{html.escape(str(r.get('target')))}</code>, weight "
        f"{fmt(weight)} on the diversity term</span></th><td colspan={span}>{img}<div>values <span data-set="
        f'"diversity" data-measure="values" data-exact="{html.escape(json.dumps(values))}">{shown}</span> '
        f"(with the diversity term); {measured} {_status(r)}</div></td></tr>"
    )


def _layer_page(layer, units, by, optimizers, measures, meta, sprites: dict[str, str], rows: list[dict]) -> str:
    """The layer's grid per optimizer (a tab each, named with the search space it ran), and what its cells spent."""
    from .plan import seeds_of

    keys = ["unit", "value", "robust_value"] + measures
    searched_as = searched(rows)
    buttons = "".join(
        f'<button data-opt="{html.escape(o)}" onclick="show(this.dataset.opt)"'
        f"{' class=on' if k == 0 else ''}>{html.escape(o)}"
        f"{f' ({html.escape(searched_as[o])})' if o in searched_as else ''}</button>"
        for k, o in enumerate(optimizers)
    )
    select = (
        '<select onchange="sortBy(this.value)">'
        + "".join(f'<option value="{k.replace("_", "")}">{k}</option>' for k in keys)
        + "</select>"
    )
    grids = []
    for k, opt in enumerate(optimizers):
        figs = []
        for u in units:
            r = by[(layer, u)].get(opt)
            if r is None:
                continue
            nums = unit_numbers(r, measures) if r["status"] == "done" else {}
            data = f'data-unit="{u}" ' + " ".join(
                f'data-{m.replace("_", "")}="{nums.get(m) if nums.get(m) is not None else "nan"}"' for m in keys[1:]
            )
            data += f' data-passes="{json.dumps(spent(r)["passes"])}"'
            thumb = (
                f'<img alt="{u}" src="../{thumb_path(layer, opt, u)}">'
                if r.get("image")
                else "<span class=miss>failed</span>"
            )
            flag = " <span class=bad>NaN</span>" if (r.get("final") or {}).get("nan_stopped") else ""
            figs.append(
                f'<figure {data}><a href="../units/{safe_name(layer)}/{u}.html">{thumb}</a><figcaption>{u}{flag}'
                f"</figcaption></figure>"
            )
        grids.append(
            f'<div class="optgrid{" hide" if k else ""}" data-opt="{html.escape(opt)}"><div class=grid>'
            f"{''.join(figs)}</div></div>"
        )
    total = meta["channels"].get(layer, len(units))
    body = (
        f'<h1>{html.escape(meta["settings"]["model"])} {html.escape(layer)}</h1><p><a href="../index.html">atlas'
        f"</a> &middot; {len(units)} of {total} units run &middot; seed {seeds_of(meta)[0]}"
        + (
            f" (the first of seeds {', '.join(map(str, seeds_of(meta)))}; each unit's page shows every seed)"
            if len(seeds_of(meta)) > 1
            else ""
        )
        + f"</p><p class=muted>budget {budget_text(meta['settings'])}; what the cells of this layer spent:</p>"
        + spending(rows, searched_as)
        + f"<p class=tabs>{buttons} &nbsp; sort by {select}</p>"
        + "".join(grids)
        + (
            "<p class=muted>The whole layer as one image (a sprite map in unit order, 64 px tiles, with its index): "
            + ", ".join(
                f'<a href="../{path}">{html.escape(opt)}</a> (<a href="../{path[:-4]}.json">index</a>)'
                for opt, path in sprites.items()
            )
            + "</p>"
            if sprites
            else ""
        )
    )
    return page(layer, body, SORT)


def _index_page(meta, by, reference, rows: list[dict]) -> str:
    """The layers and how far each optimizer got, each optimizer named with the search space it ran, and the
    budget and what the cells spent."""
    from .plan import seeds_of

    opts = meta["optimizers"]
    searched_as = searched(rows)
    head = "".join(
        f"<th>{html.escape(o)} done"
        f"{f'<br><span class=muted>searched {html.escape(searched_as[o])}</span>' if o in searched_as else ''}</th>"
        for o in opts
    )
    trs = []
    for layer in meta["layers"]:
        total = meta["channels"].get(layer, 0)
        tds = []
        for o in opts:
            cells = [c[o] for (lay, _), c in by.items() if lay == layer and o in c]
            done = sum(c["status"] == "done" for c in cells)
            bad = sum(c["status"] != "done" for c in cells)
            nan = sum(c["status"] == "done" and (c.get("final") or {}).get("nan_stopped") for c in cells)
            note = (f" <span class=bad>{bad} failed</span>" if bad else "") + (
                f" <span class=bad>{nan} NaN</span>" if nan else ""
            )
            tds.append(f"<td>{done}/{total} ({100 * done / max(total, 1):.0f}%){note}</td>")
        trs.append(
            f'<tr><td><a href="layers/{safe_name(layer)}.html">{html.escape(layer)}</a></td><td>{total}</td>'
            f"{''.join(tds)}</tr>"
        )
    s = meta["settings"]
    body = (
        f"<h1>fvopt atlas: {html.escape(s['model'])}</h1><p class=muted>param {html.escape(s['param'])} as asked "
        f"(each optimizer's search space is named below), "
        f"{s['size']} px, budget {budget_text(s)}, seeds {', '.join(map(str, seeds_of(meta)))} (counts: seed "
        f"{seeds_of(meta)[0]}), transforms {html.escape(s['transforms'])}; "
        f"dataset examples and measures from {html.escape(str(reference))}</p>"
        + spending([r for r in rows if not cell_of(r)[2]], searched_as)
        + f"<table><thead><tr><th>layer</th><th>units</th>{head}</tr></thead><tbody>{''.join(trs)}</tbody></table>"
    )
    return page(f"atlas {s['model']}", body)
