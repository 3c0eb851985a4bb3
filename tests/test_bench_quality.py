"""Quality measures in the bench harness (issue 21 item 4): every cell judged and its exact images kept,
`fvopt bench rescore` judging a committed database again without re-running a cell (resumable, one
transaction per cell, an old database migrated first), bad quality settings refused before the
database exists, and reports that rank a measure only where it beats its controls.

The reference set is a folder of 40 images made by the test (fvopt.quality.synthetic), cached under
the test's own FVOPT_CACHE, so no test depends on a cache from an earlier run."""

import hashlib
import shutil
import sqlite3
from pathlib import Path

import pytest
import torch

from fvopt.bench import rescore as rescore_mod
from fvopt.bench.judging import PNG, EXACT, decode_exact, images_of
from fvopt.bench.quality_report import compare_quality, quality_markdown
from fvopt.bench.rescore import rescore
from fvopt.bench.runner import run_spec
from fvopt.bench.spec import parse_spec
from fvopt.bench.store import SCHEMA_VERSION, Store
from fvopt.cli import main
from fvopt.evaluate import quantize_8bit
from fvopt.quality import judge
from fvopt.quality.synthetic import make_folder

FIXTURES = Path(__file__).parent / "fixtures"
MEASURES = ["natural_ratio", "mis", "spectral_slope"]
TARGET = "channel:blocks.3:20"


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.getbasetemp() / "bench-quality-folder"
    if not root.exists():
        make_folder(root, n=40, side=96)
    return root


@pytest.fixture(autouse=True)
def own_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("FVOPT_CACHE", str(tmp_path_factory.getbasetemp() / "bench-quality-cache"))


def spec_raw(**quality) -> dict:
    return {
        "bench": {"name": "quality", "targets": [TARGET], "size": 64, "seeds": [0], "budget": {"passes": 6}, **quality},
        "strategies": [{"name": "adam"}, {"name": "cmaes", "popsize": 4}],
    }


@pytest.fixture(scope="module")
def judged_db(tmp_path_factory, folder):
    """Two cells run with the folder as reference (module-wide, so the model passes run once)."""
    import os

    os.environ["FVOPT_CACHE"] = str(tmp_path_factory.getbasetemp() / "bench-quality-cache")
    path = tmp_path_factory.getbasetemp() / "judged.sqlite"
    spec = parse_spec(spec_raw(reference=str(folder), judge="lite1", measures=MEASURES))
    run_spec(spec, path, progress=False)
    return path


def rows_of(path):
    store = Store(path, readonly=True)
    try:
        return store.rows("done")
    finally:
        store.close()


@pytest.mark.slow
def test_a_cell_keeps_its_exact_images_and_is_judged_as_by_hand(judged_db, folder):
    rows = rows_of(judged_db)
    assert len(rows) == 2
    for row in rows:
        exact = decode_exact(row["image_exact"])
        assert exact.dtype == torch.float32 and exact.shape == (1, 3, 64, 64)
        # the PNG is the exact image rounded to 8 bits, and the store says which one it read
        png, source = images_of({**row, "image_exact": None})
        assert source == PNG and torch.equal(png, quantize_8bit(exact))
        assert images_of(row)[1] == EXACT
        q = row["quality"]
        assert q["image_source"] == EXACT and q["settings"] == {
            "reference": str(folder),
            "judge": "lite1",
            "measures": MEASURES,
        }
        by_hand = judge(
            exact, row["target"], "lite0", judge="lite1", reference=str(folder), measures=MEASURES, seed=row["seed"]
        )
        for m in MEASURES:
            assert q[m] == pytest.approx(by_hand[m], rel=1e-6), m
            assert q[f"{m}_informative"] == by_hand[f"{m}_informative"]
        assert (
            "folder" in q["reference"] or str(folder.name) in q["reference"] or q["reference"] == by_hand["reference"]
        )
        assert {"value_8bit", "robust_8bit"} <= set(row["final"])


@pytest.mark.slow
def test_rescore_fills_quality_without_rerunning_and_resumes_after_an_interrupt(tmp_path, folder, monkeypatch):
    db = tmp_path / "plain.sqlite"
    run_spec(parse_spec(spec_raw(measures="none")), db, progress=False)  # cells judged with nothing
    before = rows_of(db)
    assert all(
        r["quality"] == {"settings": {"reference": None, "judge": None, "measures": "none"}, "image_source": EXACT}
        for r in before
    )

    calls = {"n": 0}
    real = rescore_mod._judge_row

    def interrupt_second(row, settings):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(row, settings)

    monkeypatch.setattr(rescore_mod, "_judge_row", interrupt_second)
    first = rescore(db, str(folder), "lite1", "spectral_slope", progress=False)
    assert first.interrupted and first.rescored == 1 and first.left == 1
    middle = rows_of(db)
    judged = [r for r in middle if r["quality"].get("settings", {}).get("reference") == str(folder)]
    assert len(judged) == 1 and "spectral_slope" in judged[0]["quality"]  # one whole cell, the other as it was
    monkeypatch.setattr(rescore_mod, "_judge_row", real)

    second = rescore(db, str(folder), "lite1", "spectral_slope", progress=False)
    assert (second.rescored, second.already, second.left, second.interrupted) == (1, 1, 0, False)
    after = rows_of(db)
    for old, new in zip(before, after, strict=True):  # nothing of the run changed: counters, trace, scores, images
        for column in old:
            if column != "quality":
                assert old[column] == new[column], column
        assert new["quality"]["image_source"] == EXACT
        exact = decode_exact(new["image_exact"])
        by_hand = judge(
            exact,
            new["target"],
            "lite0",
            judge="lite1",
            reference=str(folder),
            measures=["spectral_slope"],
            seed=new["seed"],
        )
        assert new["quality"]["spectral_slope"] == pytest.approx(by_hand["spectral_slope"])
    assert rescore(db, str(folder), "lite1", "spectral_slope", progress=False).rescored == 0  # all done: nothing


@pytest.mark.slow
def test_an_old_database_is_migrated_then_rescored_from_its_png(tmp_path, folder, caplog):
    db = tmp_path / "old.sqlite"
    shutil.copyfile(FIXTURES / "bench_v0.sqlite", db)
    summary = rescore(db, str(folder), None, ["transfer", "spectral_slope"], progress=False)
    assert summary.rescored == 2 and summary.from_png == 2 and not summary.failed
    assert (tmp_path / "old.sqlite.bak-v0").exists()
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    con.close()
    for row in rows_of(db):
        q = row["quality"]
        assert q["image_source"] == PNG and row["image_exact"] is None
        images, _ = images_of(row)
        by_hand = judge(
            images,
            row["target"],
            "lite0",
            reference=str(folder),
            measures=["transfer", "spectral_slope"],
            seed=row["seed"],
        )
        assert q["transfer"] == pytest.approx(by_hand["transfer"]) and q["transfer_networks"] == ["lite1"]
        # the cell ran before the evaluator scored the saved picture: the rescore adds it
        assert q["value_8bit"] is not None and "value_8bit" not in row["final"]


@pytest.mark.parametrize(
    "quality, message",
    [
        ({"reference": "/no/such/folder"}, "spec bench.reference: reference folder '/no/such/folder' does not exist"),
        ({"judge": "lite0"}, "spec bench.judge: judge lite0 is the optimized model"),
        ({"judge": 3}, "spec bench.judge: 3 is not allowed: must be a model name"),
        (
            {"measures": ["transfer"]},
            "spec bench.measures: on target channel:blocks.3:20: measure transfer cannot be computed",
        ),
        (
            {"measures": ["mis"]},
            "spec bench.measures: on target channel:blocks.3:20: measure mis cannot be computed here: "
            "mis needs reference images",
        ),
        ({"measures": "bogus"}, "spec bench.measures: unknown measure 'bogus'"),
    ],
)
def test_bad_quality_settings_are_refused_before_the_database_exists(tmp_path, capsys, quality, message):
    import json

    spec = tmp_path / "spec.toml"
    lines = [f"{k} = {json.dumps(v)}" for k, v in quality.items()]  # JSON strings, numbers, lists are TOML too
    spec.write_text(
        '[bench]\ntargets = ["%s"]\nsize = 64\nbudget = { passes = 6 }\n%s\n\n[[strategies]]\n'
        'name = "adam"\n' % (TARGET, "\n".join(lines))
    )
    db = tmp_path / "never.sqlite"
    assert main(["bench", "run", str(spec), "--db", str(db), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert not db.exists()


def test_rescore_refuses_bad_input_before_touching_the_database(tmp_path, capsys):
    db = tmp_path / "old.sqlite"
    shutil.copyfile(FIXTURES / "bench_v0.sqlite", db)
    digest = hashlib.sha256(db.read_bytes()).hexdigest()
    for argv, message in (
        ([], "needs --reference"),
        (["--reference", "/nope"], "'/nope' does not exist"),
        (["--reference", "builtin", "--judge", "lite0"], "judge lite0 is the optimized model"),
        (["--reference", "builtin", "--measures", "diversity"], "diversity needs a batch"),
        (["--reference", "builtin", "--seeds", "4"], "seed 4 is not in"),
        (["--reference", "builtin", "--out", "x"], "--out does not belong to a rescore"),
    ):
        assert main(["bench", "rescore", str(db), *argv]) == 2, argv
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, (argv, err)
    assert hashlib.sha256(db.read_bytes()).hexdigest() == digest and not (tmp_path / "old.sqlite.bak-v0").exists()
    assert main(["bench", "run", "quality.toml", "--reference", "builtin"]) == 2
    assert "--reference belongs to `fvopt bench rescore DB`" in capsys.readouterr().err


def fake_rows(mis_gray: float) -> list[dict]:
    """Three strategies on two targets and three seeds, a measure (mis) whose controls are set by hand:
    strategy a is best by activation and worst by mis."""
    rows = []
    for target in ("channel:blocks.2:1", "channel:blocks.2:2"):
        for seed in range(3):
            for k, strategy in enumerate(("a", "b", "c")):
                mis = 0.6 + 0.1 * k + 0.01 * seed
                rows.append(
                    {
                        "model": "lite0",
                        "target": target,
                        "strategy": strategy,
                        "param": "fft",
                        "seed": seed,
                        "final": {"value": 3.0 - k, "robust_value": 3.0 - k + 0.01 * seed},
                        "quality": {
                            "reference": "folder X",
                            "judge": "lite1",
                            "image_source": EXACT,
                            "mis": mis,
                            "mis_lo": mis - 0.05,
                            "mis_hi": mis + 0.05,
                            "mis_gray": mis_gray,
                            "mis_noise": 0.5,
                            "mis_refimage": 0.5,
                            "mis_informative": mis - 0.05 > max(mis_gray, 0.5),
                        },
                    }
                )
    return rows


def test_a_measure_is_ranked_only_where_it_beats_its_controls():
    ranked = compare_quality(fake_rows(mis_gray=0.3), "mis")
    assert ranked.ranked and list(ranked.ranks.index) == ["c", "b", "a"]
    assert ranked.agreement["rho"] == pytest.approx(-1.0)  # quality and activation rank them in opposite orders
    assert ranked.agreement["lo"] <= -0.99
    # a gray image scores 0.9: above every cell, so mis means nothing on either target, and is not ranked
    beaten = compare_quality(fake_rows(mis_gray=0.9), "mis")
    assert not beaten.ranked and len(beaten.table) == 0
    lines = beaten.conclusions()
    assert "informative on 0 of 2 targets" in lines[0] and "gray 0.9" in lines[0] and "not ranked" in lines[1]
    text = quality_markdown(fake_rows(mis_gray=0.9))
    assert "Reference set: folder X" in text and "Mean ranks" not in text
