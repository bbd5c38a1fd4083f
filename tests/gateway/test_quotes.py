"""The portfolio mark's age as the watchdog can know it (issue 13 review)."""

from __future__ import annotations

from watchdog.gateway.quotes import QuoteSource

KEY = ("DU1", 265598)


def test_a_mark_is_of_unknown_age_until_it_is_seen_to_change() -> None:
    now = [1000.0]
    source = QuoteSource(lambda: now[0])
    source.note_mark(KEY, 190.0)  # first seen after a start: may have stood still for hours
    now[0] += 300.0
    source.note_mark(KEY, 190.0)
    first = source.mark(KEY)
    assert first is not None and first.as_of is None and first.age(now[0]) is None
    assert first.describe(now[0]) == "portfolio mark 190, age unknown"
    now[0] += 10.0
    source.note_mark(KEY, 189.5)  # it moved while watched: from now on its age is known
    now[0] += 5.0
    moved = source.mark(KEY)
    assert moved is not None and moved.age(now[0]) == 5.0
