"""Log lines for gateway errors, bounded: the first few per code a minute, then one summary with the count.

500 injected gateway errors wrote 1,000 log lines (issue 15, review item G): ib_async's own
"Error N, reqId R: …" line and ours for each. Now ib_async's line is dropped for every code the
connection logs itself (`IbErrorEcho`), and ours is rate-limited per code (`ErrorLogLimit`): at most
PER_WINDOW lines per code per WINDOW seconds, then, when the window ends, one line saying how many
were left out. Every error is still counted in `ibkr_watchdog_gateway_errors_total{code}`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass

PER_WINDOW = 5  # lines per error code per window
WINDOW = 60.0  # seconds
CODES_TRACKED = 200  # windows kept at once (like the metric's label bound); others share one
_OTHER = -1
_IB_LINE = re.compile(r"^(?:Error|Warning) (-?\d+), reqId -?\d+: ")


@dataclass(slots=True)
class _Window:
    started: float
    logged: int = 0
    left_out: int = 0


class ErrorLogLimit:
    """Decides whether a gateway error line is written; `summaries()` ends windows that are over."""

    def __init__(
        self, monotonic: Callable[[], float], *, per_window: int = PER_WINDOW, window: float = WINDOW
    ) -> None:
        self._mono = monotonic
        self.per_window = per_window
        self.window = window
        self._windows: dict[int, _Window] = {}

    def allow(self, code: int) -> bool:
        """True when this error's line may be written now (counts it either way)."""
        now = self._mono()
        key = code if code in self._windows or len(self._windows) < CODES_TRACKED else _OTHER
        w = self._windows.get(key)
        if w is None or now - w.started >= self.window:
            w = self._windows[key] = _Window(started=now)
        if w.logged < self.per_window:
            w.logged += 1
            return True
        w.left_out += 1
        return False

    def summaries(self) -> list[tuple[int, int, float]]:
        """(code, lines left out, window seconds) for every window that is over; those windows end."""
        now = self._mono()
        over = [(k, w) for k, w in self._windows.items() if now - w.started >= self.window]
        for k, _ in over:
            del self._windows[k]
        return [(k, w.left_out, self.window) for k, w in over if w.left_out]


class IbErrorEcho(logging.Filter):
    """On `ib_async.wrapper`: drops its "Error N, reqId R: …" line for codes the connection logs itself
    (rate-limited there); codes it does not log (notices, 326) keep ib_async's line."""

    def __init__(self, kept: Callable[[int], bool]) -> None:
        super().__init__()
        self._kept = kept

    def filter(self, record: logging.LogRecord) -> bool:
        m = _IB_LINE.match(record.getMessage())
        return m is None or self._kept(int(m.group(1)))


def keeps_ib_line(notice_codes: Collection[int]) -> Callable[[int], bool]:
    """The codes whose ib_async line stays: those the connection does not log (notices, 326)."""
    return lambda code: code == 326 or 2100 <= code < 2200 or code in notice_codes
