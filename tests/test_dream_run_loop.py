"""DeepDream's octaves run through the one run loop (fvopt.run): the same trace rows, stop reasons and
counters as every other run, and an interrupt or a NaN keeps the dream so far (issue 19)."""

from __future__ import annotations

import torch

from fvopt.dream import DreamAscent, dream
from fvopt.errors import NonFiniteError
from fvopt.run import INTERRUPTED

RUN_ROW = {"step", "time_s", "forwards", "backwards", "value", "best"}  # what fvopt.run writes for every run


def _photo(h: int = 72, w: int = 96) -> torch.Tensor:
    g = torch.Generator().manual_seed(3)
    return (0.25 + 0.5 * torch.rand((1, 3, h, w), generator=g)).clamp(0, 1)


def test_a_dreams_trace_is_the_run_loops_rows_with_the_octave(lite0):
    result = dream(_photo(), lite0, layers="blocks.3", octaves=2, steps=3, tile=64, progress=False)
    assert result.stop_reason == "steps" and not result.interrupted
    assert len(result.trace) == 6 and all(set(row) == RUN_ROW | {"octave"} for row in result.trace)
    assert [(r["octave"], r["step"]) for r in result.trace] == [(0, 1), (0, 2), (0, 3), (1, 1), (1, 2), (1, 3)]
    # counters and time run on across octaves; the last row holds the dream's totals
    assert result.trace[-1]["forwards"] == result.forwards and result.trace[-1]["backwards"] == result.backwards
    assert all(a["forwards"] < b["forwards"] for a, b in zip(result.trace, result.trace[1:]))
    assert all(a["time_s"] <= b["time_s"] for a, b in zip(result.trace, result.trace[1:]))
    for octave in (0, 1):  # best is the run loop's best so far within the octave's run
        rows = [r for r in result.trace if r["octave"] == octave]
        assert [r["best"] for r in rows] == [max(x["value"] for x in rows[: i + 1]) for i in range(len(rows))]


def test_an_interrupt_inside_an_octave_keeps_the_dream_so_far(lite0, monkeypatch):
    photo = _photo()
    real, calls = DreamAscent.step, []

    def step(self, problem):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        real(self, problem)

    monkeypatch.setattr(DreamAscent, "step", step)
    result = dream(photo, lite0, layers="blocks.3", octaves=2, steps=2, tile=64, progress=False)
    assert result.interrupted and result.stop_reason == INTERRUPTED
    assert [(r["octave"], r["step"]) for r in result.trace] == [(0, 1), (0, 2)]  # the interrupted step wrote no row
    assert len(result.octaves) == 1 and result.image.shape == photo.shape
    assert (result.image - photo).abs().mean() > 1e-3  # the first octave's detail, carried to full size


def test_a_nan_stops_the_dream_with_the_run_loops_reason_and_keeps_the_best_point(lite0, monkeypatch):
    photo = _photo()
    real, calls = DreamAscent.step, []

    def step(self, problem):
        calls.append(1)
        if len(calls) == 2:
            raise NonFiniteError("the objective became NaN after 1 forward passes")
        real(self, problem)

    monkeypatch.setattr(DreamAscent, "step", step)
    result = dream(photo, lite0, layers="blocks.3", octaves=2, steps=3, tile=64, progress=False)
    assert result.stop_reason.startswith("stopped: the objective became NaN") and not result.interrupted
    assert len(result.trace) == 1 and result.octaves == []
    assert result.image.shape == photo.shape
