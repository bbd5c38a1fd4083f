"""Fault matrix, hostile input rows: a config that would crash the loader, a FIFO, a slow read on reload."""

from __future__ import annotations

import asyncio
import io
import os
import threading
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from tests.faults.conftest import DaemonFactory, Row, until
from watchdog.config.schema import Config
from watchdog.daemon.jobs import reload_config_async
from watchdog.gateway.events import ERROR_CODES_KEPT
from watchdog.model import KillOutcome
from watchdog.outputs import logging_setup as logsetup
from watchdog.outputs.metrics import MAX_ERROR_CODES
from watchdog.sim import Simulator

pytestmark = [pytest.mark.fault, pytest.mark.integration]


async def test_a_5000_digit_integer_on_reload_is_rejected_and_the_rules_keep_running(
    sim: Simulator, make_daemon: DaemonFactory, row: Row, caplog: pytest.LogCaptureFixture
) -> None:
    d = await make_daemon()
    assert d.config_path is not None
    path = Path(d.config_path)
    text = await asyncio.to_thread(path.read_text)
    await asyncio.to_thread(path.write_text, text.replace("max_attempts: 3", "max_attempts: " + "9" * 5000))
    assert await asyncio.wait_for(reload_config_async(d), 10) is False
    assert Row.metric(d, "ibkr_watchdog_config_last_reload_successful") == 0.0
    Row.message(caplog, "reload rejected", "kill.max_attempts: number too long (5000 digits")
    sim.set_pnl("DU111111", daily=-2600.0)  # the running rules still act
    await until(lambda: bool(d.kill_reports), 15, "the rule's kill")
    assert d.kill_reports[0].outcome is KillOutcome.FLAT
    row.no_over_close()
    Row.audit(d, ["reload", "kill.triggered", "kill.finished"])


async def test_a_fifo_in_place_of_rules_yaml_is_refused_on_reload_without_waiting(
    make_daemon: DaemonFactory, caplog: pytest.LogCaptureFixture
) -> None:
    d = await make_daemon()
    assert d.config_path is not None
    path = Path(d.config_path)
    os.unlink(path)
    os.mkfifo(path)  # nobody writes: reading it would block for ever
    assert await asyncio.wait_for(reload_config_async(d), 5) is False
    Row.message(caplog, "reload rejected", f"{path}: not a regular file (a FIFO); refused")
    assert Row.metric(d, "ibkr_watchdog_config_last_reload_successful") == 0.0


async def test_a_slow_config_read_does_not_hold_up_the_event_loop(make_daemon: DaemonFactory) -> None:
    d = await make_daemon()
    real_load = d.c.load_config
    reading, release = threading.Event(), threading.Event()

    def slow_load(path: str) -> Config:
        reading.set()
        release.wait(5)  # a slow disk (NFS, a dying SSD)
        return real_load(path)

    d.c.load_config = slow_load
    reload = asyncio.ensure_future(reload_config_async(d))
    await until(reading.is_set, 5, "the reload to start reading")
    ticks = 0
    for _ in range(5):  # the loop keeps turning while the file is read
        await asyncio.sleep(0.01)
        ticks += 1
    assert not reload.done()
    release.set()
    assert await asyncio.wait_for(reload, 10) is True
    assert ticks == 5


async def test_a_gateway_error_text_with_a_newline_stays_on_one_log_line(
    sim: Simulator, make_daemon: DaemonFactory
) -> None:
    out = io.StringIO()
    logsetup.configure("INFO", stream=out)
    try:
        d = await make_daemon()
        forged = "Invalid value\n2026-11-30T10:00:00.000Z INFO    watchdog.kill: reset by operator\x1b[1A"
        sim.faults.inject_error(321, forged)
        await until(lambda: "reset by operator" in out.getvalue(), 5, "the error's log line")
        await until(
            lambda: Row.metric(d, "ibkr_watchdog_gateway_errors_total", {"code": "321"}) == 1, 5, "count"
        )
    finally:
        logsetup.flush()
    lines = [ln for ln in out.getvalue().splitlines() if "reset by operator" in ln]
    assert len(lines) == 1
    assert (
        "Invalid value\\n2026-11-30T10:00:00.000Z INFO    watchdog.kill: reset by operator\\x1b[1A"
        in lines[0]
    )
    assert not lines[0].startswith("2026-11-30T10:00:00.000Z")
    assert "\x1b" not in out.getvalue()


async def test_a_gateway_sending_many_distinct_error_codes_keeps_metrics_bounded(
    sim: Simulator, make_daemon: DaemonFactory
) -> None:
    d = await make_daemon()
    for code in range(5000, 5400):  # 400 codes nobody documents
        sim.faults.inject_error(code, "odd")
    dropped = {"metric": "gateway_errors_total"}
    await until(
        lambda: Row.metric(d, "ibkr_watchdog_metric_labels_dropped_total", dropped) == 400 - MAX_ERROR_CODES,
        10,
        "every code counted",
    )
    assert Row.metric(d, "ibkr_watchdog_gateway_errors_total", {"code": "5000"}) == 1
    assert Row.metric(d, "ibkr_watchdog_gateway_errors_total", {"code": "other"}) == 400 - MAX_ERROR_CODES
    page = generate_latest(d.c.metrics.registry).decode()
    assert page.count("ibkr_watchdog_gateway_errors_total{") <= MAX_ERROR_CODES + 1
    assert len(d.c.gateway.error_counts) <= ERROR_CODES_KEPT + 1  # the gateway's own tally too
