"""fvopt.testing.check_report_section over every registered report section, one test per (section, check).

A section added to the registry (`fvopt.bench.sections.register_section`, or a
`fvopt.report_sections` entry point) is checked here without editing this file: from a small real
store (real runs and real judgments on the tiny network, one failed cell) it must collect
something, write valid Markdown and balanced HTML, stay inside the report folder, and appear in
the report `write_report` writes.
"""

import pytest

from fvopt.bench.report import write_report
from fvopt.bench.sections import SECTIONS, register_section
from fvopt.errors import FvoptError
from fvopt.testing import (
    REPORT_SECTION_CHECKS,
    ConformanceError,
    check_report_section,
    html_problems,
    markdown_problems,
    small_report_store,
)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("sections")


@pytest.fixture(scope="module")
def db(work):
    return small_report_store(work / "small.sqlite")


@pytest.mark.parametrize("check", REPORT_SECTION_CHECKS, ids=lambda check: check.__name__.removeprefix("check_"))
@pytest.mark.parametrize("name", list(SECTIONS))
def test_shipped_report_section_check(db, work, name, check):
    check(name, db, work)


def test_the_page_shows_the_sections_in_registration_order(db, work):
    page = (work / "report" / "report.html").read_text()
    anchors = [name for name in SECTIONS if SECTIONS[name].obj.html is not None]
    positions = [page.index(f'<section id="{name}">') for name in anchors]
    assert positions == sorted(positions) and len(anchors) >= 10


@pytest.fixture
def registered():
    added = []

    def add(name, *args, **kwargs):
        register_section(name, *args, **kwargs)
        added.append(name)

    yield add
    for name in added:
        del SECTIONS[name]


@pytest.mark.slow  # writes a whole report (about 10 s on a busy machine)
def test_a_new_section_is_one_registration_and_the_report_shows_it(registered, db, tmp_path):
    registered(
        "seeds",
        "Seeds per strategy",
        "how many seeds each strategy ran",
        lambda data: {r["strategy"]: sum(1 for s in data.rows if s["strategy"] == r["strategy"]) for r in data.rows},
        markdown=lambda counts, data: {
            "seeds.md": "# Seeds\n\n| strategy | seeds |\n|---|---|\n"
            + "".join(f"| {k} | {v} |\n" for k, v in counts.items())
        },
        html=lambda counts, data: "<ul>" + "".join(f"<li>{k}: {v}</li>" for k, v in counts.items()) + "</ul>",
    )
    files = write_report(db, tmp_path / "report", exports=False, examples=False)
    assert tmp_path / "report" / "seeds.md" in files
    assert "| adam | 2 |" in (tmp_path / "report" / "seeds.md").read_text()
    page = (tmp_path / "report" / "report.html").read_text()
    assert '<section id="seeds"><h2>Seeds per strategy</h2><ul><li>adam: 2</li>' in page
    assert page.index('id="failed"') < page.index('id="seeds"')  # registered last, shown last
    assert check_report_section("seeds", db, tmp_path / "check") == [c.__name__ for c in REPORT_SECTION_CHECKS]


def test_the_shipped_check_catches_broken_markdown_and_html(registered, db, tmp_path):
    registered("broken-md", "Broken", "a table without its separator", lambda data: 1,
               markdown=lambda x, data: {"broken.md": "# Broken\n\n| a | b |\n| 1 | 2 |\n"})  # fmt: skip
    with pytest.raises(ConformanceError, match="broken.md is not valid Markdown: line 3: a table without its sep"):
        check_report_section("broken-md", db, tmp_path)
    registered("broken-html", "Broken", "an unclosed tag", lambda data: 1, html=lambda x, data: "<ul><li>x</ul>")
    with pytest.raises(ConformanceError, match="its HTML is not balanced: </ul> closes <li>"):
        check_report_section("broken-html", db, tmp_path)
    registered("escapes", "Escapes", "a file outside", lambda data: 1, markdown=lambda x, data: {"../x.md": "# x\n"})
    with pytest.raises(FvoptError, match=r"names the Markdown file '../x.md': a plain NAME.md is allowed"):
        check_report_section("escapes", db, tmp_path)
    assert not (tmp_path.parent / "x.md").exists()


def test_a_section_registration_is_checked():
    with pytest.raises(FvoptError, match="neither Markdown nor HTML"):
        register_section("empty", "Empty", "nothing", lambda data: 1)
    with pytest.raises(FvoptError, match="must be a word"):
        register_section("two words", "T", "h", lambda data: 1, html=lambda x, d: "")
    with pytest.raises(FvoptError, match="report section 'failed' is already registered by fvopt"):
        from fvopt import registry

        token = registry._SOURCE.set("someone-else")
        try:
            register_section("failed", "F", "h", lambda data: 1, html=lambda x, d: "")
        finally:
            registry._SOURCE.reset(token)


def test_the_validators_see_what_a_reader_would():
    assert markdown_problems("# Title\n\n| a | b |\n|---|---|\n| 1 | 2 |\n") == []
    assert markdown_problems("#Title\n") == ["line 1: heading without a space: '#Title'"]
    assert markdown_problems("| a | b |\n|---|---|\n| 1 |\n") == ["line 3: 1 cells, the header has 2"]
    assert markdown_problems("```\ncode\n") == ["a code fence is not closed"]
    assert html_problems("<p>a<br><img src=x></p>") == []
    assert html_problems("<table><tr><td>x</tr></table>") == ["</tr> closes <td>"]
    assert html_problems("<script>x</script>") == ["a <script> in a section"]


@pytest.mark.slow  # writes a whole report (about 10 s on a busy machine)
def test_a_plugin_section_that_fails_is_left_out_and_the_report_says_so(registered, db, tmp_path, capsys):
    from fvopt import registry

    token = registry._SOURCE.set("someone-elses-plugin")
    try:
        registered("fragile", "Fragile", "fails", lambda data: 1 / 0, html=lambda x, data: "never")
    finally:
        registry._SOURCE.reset(token)
    write_report(db, tmp_path / "report", exports=False, examples=False)
    page = (tmp_path / "report" / "report.html").read_text()
    assert "plugin package someone-elses-plugin) failed and is left out: ZeroDivisionError" in page
    assert '<section id="failed">' in page and '<section id="quality">' in page  # the rest is written
    err = capsys.readouterr().err
    assert "report section 'fragile' of plugin package 'someone-elses-plugin' failed and is left out" in err
