"""The atlas as a static folder that opens from file:// with no server and no external resource.

index.html (layers, counts, progress) -> layers/LAYER.html (a grid of every unit, one tab per optimizer,
sortable by each measure with a few lines of inline JavaScript) -> units/LAYER/UNIT.html (each optimizer's
image, the measures, the unit's top and bottom dataset examples, its activation curve, links to neighbours).
Images are small separate files (thumbs/ for the grids), so a layer of 1,000 units loads fast. Every page
is regenerated from the database, so the pages always say what the store holds.
"""
from __future__ import annotations

import html
import io
import json
import math
from pathlib import Path

import numpy as np
from PIL import Image

from .. import atomic


def write_text(path: Path, text: str) -> None:
    """A page written whole or not at all (fvopt.atomic), its folder made first."""
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
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style><script>{CHECK_IMAGES}{script}</script></head><body><main>{body}</main></body></html>")


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


def write_site(site: Path, meta: dict, rows: list[dict], examples: dict | None = None) -> Path:
    """Every page and image of the site from the store's rows (done and failed) and the record's layers.

    `examples`: {layer: {unit: {"top": [(img (3,h,w) tensor, activation)], "bottom": [...], "acts": array}}}."""
    site = Path(site)
    examples = examples or {}
    by = {}  # (layer, unit) -> {optimizer: row}
    for r in rows:
        extra = r.get("extra") or {}
        if "layer" in extra:
            by.setdefault((extra["layer"], extra["unit"]), {})[r["strategy"]] = r
    done_rows = [r for r in rows if r["status"] == "done"]
    measures = measure_names(done_rows)
    optimizers = meta["optimizers"]
    layers = meta["layers"]
    settings = meta["settings"]
    reference = next((r["quality"].get("reference") for r in done_rows if (r.get("quality") or {}).get("reference")),
                     settings.get("reference"))
    for layer in layers:
        units = sorted(u for (lay, u) in by if lay == layer)
        for u in units:
            for opt, r in by[(layer, u)].items():
                if r.get("image"):
                    _save_images(site, layer, opt, u, r["image"])
        ex = examples.get(layer, {})
        for i, u in enumerate(units):
            _write_examples(site, layer, u, ex.get(u), by[(layer, u)])
            prev = units[i - 1] if i > 0 else None
            nxt = units[i + 1] if i + 1 < len(units) else None
            write_text(site / "units" / layer / f"{u}.html",
                       _unit_page(layer, u, by[(layer, u)], optimizers, measures, ex.get(u), prev, nxt, settings,
                                  reference))
        write_text(site / "layers" / f"{layer}.html", _layer_page(layer, units, by, optimizers, measures, meta))
    write_text(site / "index.html", _index_page(meta, by, reference))
    return site / "index.html"


def _save_images(site: Path, layer: str, opt: str, unit: int, png: bytes) -> None:
    full = site / "img" / layer / opt / f"{unit}.png"
    thumb = site / "thumbs" / layer / opt / f"{unit}.png"
    full.parent.mkdir(parents=True, exist_ok=True)
    thumb.parent.mkdir(parents=True, exist_ok=True)
    full.write_bytes(png)
    image = Image.open(io.BytesIO(png)).convert("RGB")
    image.thumbnail((THUMB, THUMB))
    image.save(thumb, optimize=True)


def _write_examples(site: Path, layer: str, unit: int, ex: dict | None, cells: dict) -> None:
    if not ex:
        return
    folder = site / "examples" / layer
    folder.mkdir(parents=True, exist_ok=True)
    for which in ("top", "bottom"):
        tiles = [Image.fromarray((img.permute(1, 2, 0).clamp(0, 1).numpy() * 255).astype(np.uint8)).resize(
            (EX_SIDE, EX_SIDE), Image.BILINEAR) for img, _ in ex[which]]
        strip = Image.new("RGB", (max(1, len(tiles)) * (EX_SIDE + 2), EX_SIDE), "white")
        for k, tile in enumerate(tiles):
            strip.paste(tile, (k * (EX_SIDE + 2), 0))
        strip.save(folder / f"{unit}-{which}.jpg", quality=80)
    _curve(folder / f"{unit}-curve.png", ex["acts"], {o: (r.get("final") or {}).get("value") for o, r in cells.items()
                                                      if r["status"] == "done"})


def _curve(path: Path, acts, values: dict) -> None:
    """The unit's activation over the reference images, sorted (the curve), with each optimizer's image marked."""
    from matplotlib.figure import Figure
    fig = Figure(figsize=(3.2, 1.6), dpi=80)
    ax = fig.add_subplot()
    ax.plot(np.sort(np.asarray(acts))[::-1], color="#57606a", lw=1.2, label="reference")
    for k, (opt, v) in enumerate(sorted(values.items())):
        if v is not None:
            ax.axhline(v, color=f"C{k}", lw=1, ls="--", label=opt)
    ax.set_xlabel("reference images, by activation", fontsize=7)
    ax.set_ylabel("activation", fontsize=7)
    ax.tick_params(labelsize=6)
    ax.legend(fontsize=6, frameon=False)
    fig.tight_layout()
    fig.savefig(path)


def _status(r: dict) -> str:
    if r["status"] != "done":
        return f'<span class=bad>failed: {html.escape(str(r.get("error")))}</span>'
    if (r.get("final") or {}).get("nan_stopped"):
        return f'<span class="bad nan">stopped on NaN: {html.escape(str(r.get("stop_reason")))}</span>'
    return ""


def _unit_page(layer, u, cells, optimizers, measures, ex, prev, nxt, settings, reference) -> str:
    nav = (f'<p><a href="../../index.html">atlas</a> / <a href="../../layers/{layer}.html">{html.escape(layer)}</a>'
           f' / unit {u} &nbsp; ' + (f'<a href="{prev}.html">&larr; unit {prev}</a> ' if prev is not None else "")
           + (f'<a href="{nxt}.html">unit {nxt} &rarr;</a>' if nxt is not None else "") + "</p>")
    figs = []
    for opt in optimizers:
        r = cells.get(opt)
        if r is None:
            figs.append(f'<div class=opt><h3>{html.escape(opt)}</h3><span class=muted>not run yet</span></div>')
            continue
        img = (f'<img class=vis alt="{html.escape(opt)}" src="../../img/{layer}/{opt}/{u}.png">'
               if r.get("image") else '<span class=miss>no image</span>')
        searched = f'<div class=muted>searched {html.escape(str(r.get("param_used")))}</div>' if r.get("param_used") else ""
        figs.append(f'<div class=opt><h3>{html.escape(opt)}</h3>{img}{searched}<br>{_status(r)}</div>')
    head = "".join(f"<th>{html.escape(o)}</th>" for o in optimizers if o in cells)
    trs = []
    for name in ["value", "robust_value"] + measures:
        tds = []
        for o in optimizers:
            if o not in cells:
                continue
            v = unit_numbers(cells[o], measures).get(name) if cells[o]["status"] == "done" else None
            q = cells[o].get("quality") or {}
            interval = (f' <span class=muted>[{fmt(q.get(name + "_lo"))}, {fmt(q.get(name + "_hi"))}]</span>'
                        if name in measures and fmt(q.get(name + "_lo")) != "–" else "")
            tds.append(f'<td data-measure="{name}" data-optimizer="{html.escape(o)}" data-exact="{json.dumps(v)}">'
                       f"{fmt(v)}{interval}</td>")
        trs.append(f"<tr><td>{html.escape(name)}</td>{''.join(tds)}</tr>")
    table = f"<table class=measures><thead><tr><th>measure</th>{head}</tr></thead><tbody>{''.join(trs)}</tbody></table>"
    exhtml = "<p class=muted>no dataset examples (no reference set)</p>"
    if ex:
        tops = ", ".join(f"{a:.3g}" for _, a in ex["top"])
        bots = ", ".join(f"{a:.3g}" for _, a in ex["bottom"])
        exhtml = (f'<h3>top</h3><img alt="top examples" src="../../examples/{layer}/{u}-top.jpg"><div class=muted>'
                  f'activations {tops}</div><h3>bottom</h3><img alt="bottom examples" src="../../examples/{layer}/{u}'
                  f'-bottom.jpg"><div class=muted>activations {bots}</div><h2>Activation curve</h2><img alt="activation'
                  f' curve" src="../../examples/{layer}/{u}-curve.png">')
    body = (f"<h1>{html.escape(settings['model'])} {html.escape(layer)} unit {u}</h1>{nav}"
            f"<p class=muted>param {html.escape(settings['param'])}, {settings['size']} px, {settings['steps']} steps, seed "
            f"{settings['seed']}; measures judged against {html.escape(str(reference))}</p>"
            f"<h2>Visualizations</h2>{''.join(figs)}<h2>Measures</h2>{table}"
            f"<h2>Dataset examples <span class=muted>({html.escape(str(reference))})</span></h2>{exhtml}")
    return page(f"{layer} unit {u}", body)


def _layer_page(layer, units, by, optimizers, measures, meta) -> str:
    keys = ["unit", "value", "robust_value"] + measures
    buttons = "".join(f'<button data-opt="{html.escape(o)}" onclick="show(this.dataset.opt)"'
                      f'{" class=on" if k == 0 else ""}>{html.escape(o)}</button>' for k, o in enumerate(optimizers))
    select = ("<select onchange=\"sortBy(this.value)\">" +
              "".join(f'<option value="{k.replace("_", "")}">{k}</option>' for k in keys) + "</select>")
    grids = []
    for k, opt in enumerate(optimizers):
        figs = []
        for u in units:
            r = by[(layer, u)].get(opt)
            if r is None:
                continue
            nums = unit_numbers(r, measures) if r["status"] == "done" else {}
            data = f'data-unit="{u}" ' + " ".join(
                f'data-{m.replace("_", "")}="{nums.get(m) if nums.get(m) is not None else "nan"}"' for m in keys[1:])
            thumb = (f'<img alt="{u}" src="../thumbs/{layer}/{opt}/{u}.png">' if r.get("image")
                     else '<span class=miss>failed</span>')
            flag = " <span class=bad>NaN</span>" if (r.get("final") or {}).get("nan_stopped") else ""
            figs.append(f'<figure {data}><a href="../units/{layer}/{u}.html">{thumb}</a><figcaption>{u}{flag}'
                        f"</figcaption></figure>")
        grids.append(f'<div class="optgrid{" hide" if k else ""}" data-opt="{html.escape(opt)}"><div class=grid>'
                     f'{"".join(figs)}</div></div>')
    total = meta["channels"].get(layer, len(units))
    body = (f'<h1>{html.escape(meta["settings"]["model"])} {html.escape(layer)}</h1><p><a href="../index.html">atlas'
            f"</a> &middot; {len(units)} of {total} units run</p><p class=tabs>{buttons} &nbsp; sort by {select}</p>"
            + "".join(grids))
    return page(layer, body, SORT)


def _index_page(meta, by, reference) -> str:
    opts = meta["optimizers"]
    head = "".join(f"<th>{html.escape(o)} done</th>" for o in opts)
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
                f" <span class=bad>{nan} NaN</span>" if nan else "")
            tds.append(f"<td>{done}/{total} ({100 * done / max(total, 1):.0f}%){note}</td>")
        trs.append(f'<tr><td><a href="layers/{layer}.html">{html.escape(layer)}</a></td><td>{total}</td>{"".join(tds)}</tr>')
    s = meta["settings"]
    body = (f"<h1>fvopt atlas: {html.escape(s['model'])}</h1><p class=muted>param {html.escape(s['param'])}, "
            f"{s['size']} px, {s['steps']} steps, seed {s['seed']}, transforms {html.escape(s['transforms'])}; "
            f"dataset examples and measures from {html.escape(str(reference))}</p>"
            f"<table><thead><tr><th>layer</th><th>units</th>{head}</tr></thead><tbody>{''.join(trs)}</tbody></table>")
    return page(f"atlas {s['model']}", body)
