"""SIGHUP to a real daemon process: a good file is swapped in (new threshold in effect), a broken one is
refused with every error's file:line while the running config stays."""

from __future__ import annotations

import re
import signal
from pathlib import Path

import pytest

from tests.process.conftest import (
    DEFAULT_RULES,
    Launcher,
    NotifySocket,
    free_port,
    metric,
    scrape_until,
    start_ready,
    until,
    write_config,
)
from watchdog.sim import Simulator

pytestmark = pytest.mark.integration

RELOAD_OK = "ibkr_watchdog_config_last_reload_successful"
THRESHOLD = "ibkr_watchdog_rule_threshold"
DAILY_LOSS = {"rule": "daily-loss", "account": "DU111111"}


async def test_sighup_applies_a_good_file_and_keeps_the_running_config_on_a_broken_one(
    tmp_path: Path, sim: Simulator, notify: NotifySocket, launch: Launcher
) -> None:
    port = free_port()
    config = write_config(tmp_path, sim.port, metrics_port=port)
    d = await start_ready(launch, config, notify)
    text = await scrape_until(
        port, lambda t: metric(t, THRESHOLD, DAILY_LOSS) == -2500, 10, "the first threshold"
    )
    assert metric(text, RELOAD_OK) == 1

    # (a) a good file that moves one threshold
    write_config(tmp_path, sim.port, DEFAULT_RULES.replace("-2500", "-3000"), metrics_port=port)
    reloads = notify.count("RELOADING", "1")
    d.send(signal.SIGHUP)
    text = await scrape_until(
        port, lambda t: metric(t, THRESHOLD, DAILY_LOSS) == -3000, 10, "the new threshold"
    )
    assert metric(text, RELOAD_OK) == 1
    [ok] = d.events("reload")
    assert ok.details["ok"] is True and ok.details["rules"] == ["daily-loss", "margin"]
    await notify.wait_for(lambda n: n.count("RELOADING", "1") == reloads + 1, 5, "RELOADING=1")

    # (b) a broken file: an unknown key and a bad duration, both reported, nothing applied
    broken = write_config(
        tmp_path,
        sim.port,
        DEFAULT_RULES.replace("-2500", "-100"),
        extra="polling_typo: 1s\n",
        heartbeat="{interval: fast, timeout: 1s, misses: 2}",
        metrics_port=port,
    )
    lines = broken.read_text().splitlines()
    bad_lines = {
        key: 1 + next(i for i, ln in enumerate(lines) if ln.startswith(key))
        for key in ("heartbeat", "polling_typo")
    }
    d.send(signal.SIGHUP)
    text = await scrape_until(port, lambda t: metric(t, RELOAD_OK) == 0, 10, "the rejected reload")
    assert metric(text, THRESHOLD, DAILY_LOSS) == -3000  # the running rules stayed
    assert d.proc.returncode is None
    rejected = [r for r in d.events("reload") if r.details["ok"] is False]
    assert len(rejected) == 1
    problems = " | ".join(rejected[0].details["problems"])
    assert "heartbeat.interval" in problems and "polling_typo" in problems
    expected = [
        rf"reload rejected: \S*rules\.yaml:{bad_lines['heartbeat']}: heartbeat\.interval: ",
        rf"reload rejected: \S*rules\.yaml:{bad_lines['polling_typo']}: polling_typo: ",
    ]
    # log lines reach stderr through the daemon's writer thread: a moment after the metric changed
    await until(lambda: all(re.search(e, d.stderr) for e in expected), 5, "the reload errors on stderr")
    await d.next_status()  # still watching
    assert d.status_file()["gateway"]["health"] == "healthy"
    assert await d.stop() == 0
