"""Why a run stopped: one enumeration for the run loop, the traces, the bench store and the reports.

A stop reason is stored as plain text (JSON traces, SQLite cells), so `StopReason` is a `str`
enumeration: a member *is* its string, and databases written before it existed read the same.
The text is the member's value, or `value: detail` where the stop carries a sentence for the user
(a non-finite objective: "stopped: the objective became NaN after 680 forward passes; kept the
best image seen before it"). `StopReason.of` reads any stored text back into its member, so no
report parses free text of its own.
"""

from __future__ import annotations

from enum import Enum


class StopReason(str, Enum):
    """The reasons a run ends. The budget members are the budget's own words (what ran out);
    `BUDGET` is a run whose strategy ended it within the budget (nothing left to do)."""

    # what enum.StrEnum does (Python 3.11+; fvopt supports 3.10): a member prints and formats as its text
    __str__ = str.__str__
    __format__ = str.__format__

    STEPS = "steps"
    SECONDS = "seconds"
    FORWARDS = "forwards"
    PASSES = "passes"
    BUDGET = "budget"
    NONFINITE = "stopped"  # a NaN or infinite objective (or best point); the best before it is kept
    INTERRUPTED = "interrupted"  # Ctrl-C: the best point so far is kept
    TERMINATED = "terminated"  # SIGTERM (a batch system ending the job): the best point so far is kept

    @property
    def used_budget(self) -> bool:
        """Whether a run that stopped for this reason spent its whole budget (ran to its end)."""
        return self in BUDGET_STOPS

    def with_detail(self, detail: str) -> str:
        """The stored text of this reason with a sentence for the user: `value: detail`."""
        return f"{self.value}: {detail}"

    @classmethod
    def of(cls, text: str | None) -> StopReason | None:
        """The member a stored stop text names (its value, or `value: detail`); None for no text or a
        text no fvopt version wrote."""
        if not text:
            return None
        head = str(text).split(":", 1)[0].strip()
        try:
            return cls(head)
        except ValueError:
            return None


BUDGET_STOPS: tuple[StopReason, ...] = (
    StopReason.STEPS,
    StopReason.SECONDS,
    StopReason.FORWARDS,
    StopReason.PASSES,
    StopReason.BUDGET,
)


def used_budget(text: str | None) -> bool:
    """Whether a stored stop text says the run spent its whole budget; False for an early stop
    (non-finite objective, interrupt, termination) and for a text fvopt does not know."""
    reason = StopReason.of(text)
    return reason is not None and reason.used_budget


def stop_kind(text: str | None) -> str:
    """The stop text without its count, so that runs stopped alike group together: the reason with
    the first clause of its detail ("stopped: the objective became NaN"), or the whole text when it
    has no detail."""
    text = text or ""
    reason = StopReason.of(text)
    if reason is None or ":" not in text:
        return text
    return text.split(" after ")[0]
