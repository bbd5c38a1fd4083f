"""Repeated gateway errors are logged a few times per code a minute, then summed up in one line; every
one is still counted in the metric (issue 15, review item G: 500 errors wrote 1,000 log lines)."""

from __future__ import annotations

import logging

import pytest

from tests.daemon.conftest import DaemonFactory, until
from watchdog.gateway.error_log import PER_WINDOW, ErrorLogLimit, IbErrorEcho, keeps_ib_line
from watchdog.sim import Simulator

CODES = (10000, 10001, 10002)


def _error_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if "boom" in r.getMessage() or "not logged" in r.getMessage()]


async def test_500_gateway_errors_write_a_few_lines_per_code_and_count_every_one(
    sim: Simulator, make_daemon: DaemonFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    d = await make_daemon()
    registry = d.c.metrics.registry

    def counted() -> float:
        return sum(
            registry.get_sample_value("ibkr_watchdog_gateway_errors_total", {"code": str(c)}) or 0.0
            for c in CODES
        )

    for i in range(500):
        sim.faults.inject_error(CODES[i % 3], f"boom {i}")
    await until(lambda: counted() == 500.0, 10, "all 500 errors counted")
    lines = _error_lines(caplog)
    assert len(lines) == PER_WINDOW * len(CODES), [r.getMessage() for r in lines]  # was 1,000
    assert not [r for r in lines if r.name.startswith("ib_async")]  # ib_async's copy is dropped


def test_a_window_that_is_over_gets_one_summary_line_with_the_count() -> None:
    now = [100.0]
    limit = ErrorLogLimit(lambda: now[0], per_window=2, window=60.0)
    assert [limit.allow(162) for _ in range(5)] == [True, True, False, False, False]
    assert limit.allow(200) is True
    assert limit.summaries() == []  # nothing is over yet
    now[0] += 60.0
    assert limit.summaries() == [(162, 3, 60.0)]  # 200 left nothing out: no summary
    assert limit.allow(162) is True  # a new window


def test_ib_async_keeps_its_line_only_for_codes_we_do_not_log() -> None:
    echo = IbErrorEcho(keeps_ib_line({202}))

    def record(text: str) -> logging.LogRecord:
        return logging.LogRecord("ib_async.wrapper", logging.ERROR, "", 0, text, None, None)

    assert echo.filter(record("Error 10000, reqId -1: boom")) is False  # ours logs it (rate-limited)
    assert echo.filter(record("Error 326, reqId -1: client id in use")) is True
    assert echo.filter(record("Error 202, reqId 7: Order Canceled")) is True
    assert echo.filter(record("Warning 2104, reqId -1: farm OK")) is True
    assert echo.filter(record("API connection failed")) is True
