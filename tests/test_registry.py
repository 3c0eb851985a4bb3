"""The one Registry type: names with help, typed options and examples, families by prefix, close-name
errors, the former dict interface, and plugins from entry points loaded lazily, once, a broken one
reported in one line (fast: entry points made in the test; tests/test_extending.py pip-installs a real
plugin package)."""

import sys
from importlib import metadata

import pytest

from fvopt import registry
from fvopt.errors import FvoptError
from fvopt.gradients import GRADIENT_METHODS, make_image_grad
from fvopt.models.sources import MODEL_SOURCES
from fvopt.objectives import TARGETS
from fvopt.config.options import Option
from fvopt.params import PARAMS
from fvopt.registry import Registry
from fvopt.strategies import REGISTRY
from fvopt.transforms import TRANSFORM_PARTS


def test_entries_keep_name_help_options_examples_and_the_facts_of_their_kind():
    assert REGISTRY["adam"].help.startswith("Adam") and callable(REGISTRY["adam"].obj)
    assert "k" in PARAMS["fft"].options and PARAMS["fft"].examples
    assert TARGETS["neuron"].extra == {"usage": "neuron:LAYER:INDEX[:Y:X]", "fields": (2, 4)}
    assert TRANSFORM_PARTS["pad"].extra["usage"] == "pad:P" and TRANSFORM_PARTS["pad"].examples == ("pad:12",)
    assert set(GRADIENT_METHODS.names()) >= {"lapnorm", "normalize"}
    assert {"lite0", "lite1"} <= set(MODEL_SOURCES) and set(MODEL_SOURCES.families) >= {"torchvision:", "timm:"}
    assert all(entry.source == "fvopt" for table in (REGISTRY, PARAMS, TARGETS) for entry in table.values())
    assert "adam" in dict(REGISTRY) and len(REGISTRY) == len(list(REGISTRY))


def test_a_registry_refuses_what_would_be_a_silent_wrong_answer():
    table = Registry("widget")
    table.add("round", object, "a round widget", {"r": Option(float, low=0)})
    with pytest.raises(FvoptError, match="must be an fvopt.config.options.Option"):
        table.add("square", object, "bad options", {"side": float})
    with pytest.raises(FvoptError, match="non-empty word"):
        table.add("two words", object, "bad name")
    token = registry._SOURCE.set("somebody-else")
    try:
        with pytest.raises(FvoptError, match="widget 'round' is already registered by fvopt; somebody-else cannot"):
            table.add("round", object, "another round widget")
    finally:
        registry._SOURCE.reset(token)
    table.add("round", int, "the same package registers again: replaced")
    assert table["round"].obj is int
    err = table.unknown("rund")
    assert str(err) == "unknown widget 'rund'. Did you mean: round? Known: round"


def test_families_resolve_by_prefix_and_are_listed_in_errors():
    table = Registry("widget")
    table.add_family("hub:", object, "any widget of the hub", "hub:gear", "hub:<Name>")
    assert table.family_of("hub:cog").name == "hub:" and table.knows("hub:cog") and not table.knows("cog")
    assert "families: hub:<Name> (e.g. hub:gear)" in str(table.unknown("cog"))


def test_gradient_methods_take_checked_options_by_name():
    assert make_image_grad("lapnorm:levels=2+normalize") is not None
    with pytest.raises(FvoptError, match="levels='0' is not allowed"):
        make_image_grad("lapnorm:levels=0")
    with pytest.raises(FvoptError, match="unknown gradient transform 'lapnrm'. Did you mean: lapnorm"):
        make_image_grad("lapnrm")


@pytest.fixture
def plugins(tmp_path, monkeypatch):
    """Two entry points of group `fvopt.widgets`: one module that registers, one that fails to import."""
    (tmp_path / "widget_plugin.py").write_text(
        "from fvopt.test_widgets import WIDGETS\nWIDGETS.add('gear', object, 'a gear from a plugin')\n"
    )
    (tmp_path / "widget_broken.py").write_text("raise RuntimeError('cannot start\\nsecond line')\n")
    points = [
        metadata.EntryPoint("gear", "widget_plugin", "fvopt.widgets"),
        metadata.EntryPoint("bad", "widget_broken", "fvopt.widgets"),
    ]
    calls = []

    def entry_points(group):
        calls.append(group)
        return points if group == "fvopt.widgets" else []

    monkeypatch.setattr(registry, "_entry_points", entry_points)
    monkeypatch.syspath_prepend(str(tmp_path))
    table = Registry("widget", group="fvopt.widgets")
    module = type(sys)("fvopt.test_widgets")
    module.WIDGETS = table
    monkeypatch.setitem(sys.modules, "fvopt.test_widgets", module)
    table.add("wheel", object, "a built-in wheel")
    yield table, calls
    registry._LOADED.discard("fvopt.widgets")
    registry._PLUGINS[:] = [p for p in registry._PLUGINS if p.group != "fvopt.widgets"]
    for name in ("widget_plugin", "widget_broken"):
        sys.modules.pop(name, None)


def test_plugins_load_lazily_once_and_a_broken_one_is_one_line(plugins, capsys):
    table, calls = plugins
    assert table["wheel"].source == "fvopt" and calls == []  # a known name loads nothing
    assert "gear" in table and table["gear"].help == "a gear from a plugin"
    assert calls == ["fvopt.widgets"]
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "widget_broken" in err and "RuntimeError: cannot start" in err
    assert "second line" not in err
    with pytest.raises(FvoptError, match="unknown widget 'cog'.*failed to load: RuntimeError: cannot start"):
        table.get_entry("cog")
    assert list(table) == ["wheel", "gear"] and calls == ["fvopt.widgets"]  # loaded once per process
    assert capsys.readouterr().err == ""
