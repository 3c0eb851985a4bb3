"""Stop reasons: one enumeration whose members are the strings traces and databases always held."""

import json
import sqlite3

import pytest

from fvopt.bench.rows import stopped_early
from fvopt.stops import BUDGET_STOPS, StopReason, stop_kind, used_budget

NAN_STOP = "stopped: the objective became NaN after 680 forward passes; kept the best image seen before it"


def test_members_are_the_stored_strings_in_json_and_sqlite():
    assert json.dumps({"stop": StopReason.PASSES}) == '{"stop": "passes"}'
    con = sqlite3.connect(":memory:")
    con.execute("CREATE TABLE t (stop TEXT)")
    con.execute("INSERT INTO t VALUES (?)", (StopReason.TERMINATED,))
    assert con.execute("SELECT stop FROM t").fetchone() == ("terminated",)
    assert f"{StopReason.INTERRUPTED}" == "interrupted" == StopReason.INTERRUPTED


@pytest.mark.parametrize(
    "text, reason, budget",
    [
        ("passes", StopReason.PASSES, True),
        ("seconds", StopReason.SECONDS, True),
        ("budget", StopReason.BUDGET, True),
        (NAN_STOP, StopReason.NONFINITE, False),
        ("interrupted", StopReason.INTERRUPTED, False),
        ("terminated", StopReason.TERMINATED, False),
        ("gave up", None, False),
        (None, None, False),
        ("", None, False),
    ],
)
def test_every_stored_text_reads_back_into_its_reason(text, reason, budget):
    assert StopReason.of(text) is reason
    assert used_budget(text) is budget
    assert stopped_early({"stop_reason": text}) is not budget


def test_a_detail_is_kept_and_grouped_without_its_count():
    assert (
        StopReason.NONFINITE.with_detail(
            "the objective became NaN after 680 forward passes; kept the best image seen before it"
        )
        == NAN_STOP
    )
    assert stop_kind(NAN_STOP) == "stopped: the objective became NaN"
    assert stop_kind("interrupted") == "interrupted"
    assert set(BUDGET_STOPS) == {r for r in StopReason if r.used_budget}
