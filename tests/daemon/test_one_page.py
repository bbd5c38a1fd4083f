"""One kill, one page (issue 14 #7): a manual kill pages once and then sends its report, no more."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.daemon.conftest import DaemonFactory, until
from tests.outputs.conftest import Capture, capture  # noqa: F401  (fixture)
from watchdog.model import Action
from watchdog.sim import Simulator

pytestmark = pytest.mark.integration


async def test_a_manual_kill_pages_once_then_reports(
    make_daemon: DaemonFactory,
    capture: Capture,  # noqa: F811
) -> None:
    d = await make_daemon(
        extra=f"""
notifications:
  targets:
    - url: json://127.0.0.1:{capture.port}/pager
      severities: [critical]
"""
    )
    d.request_kill(Action.CANCEL_ALL, "manual:SIGUSR2", "desk says stop")
    d._handle_kill_requests()  # what the main loop does when woken (this test drives no loop)
    await d.wait_for_kills(15)
    await until(lambda: any("KILL DONE" in b["title"] for b in capture.snapshot()), 10, "the kill report")
    await d.c.notifier.drain(5)
    titles = [b["title"] for b in capture.snapshot()]
    assert titles == [
        "[KILL STARTED] cancel_all by manual:SIGUSR2",
        "[KILL DONE] cancel_all by manual:SIGUSR2 on DU111111, DU222222",
    ], titles


async def test_the_reset_message_says_who_and_why_once(
    make_daemon: DaemonFactory,
    capture: Capture,  # noqa: F811
) -> None:
    """Issue 14 #10: the reset text repeated "re-armed by root"."""
    d = await make_daemon(
        extra=f"notifications:\n  targets:\n    - url: json://127.0.0.1:{capture.port}/chat\n"
    )
    await d.start_kill(Action.CANCEL_ALL, "manual:SIGUSR2", reason="test")
    d.c.killswitch.reset("book is flat, checked in TWS", who="alice")
    await until(lambda: any("re-armed" in b["title"] for b in capture.snapshot()), 10, "the reset notice")
    [body] = [b["message"] for b in capture.snapshot() if "re-armed" in b["title"]]
    assert body.count("re-armed by alice") == 1 and "Reason given: book is flat, checked in TWS" in body


async def test_a_gateway_down_at_start_gets_its_recovery_and_ends_the_outage(
    tmp_path: Path,
    capture: Capture,  # noqa: F811
) -> None:
    """The start-up "gateway down" page is followed by its recovery on the same pager, and rule alerts
    are no longer held back as part of the outage once the gateway is back."""
    from prometheus_client import CollectorRegistry

    from tests.daemon.conftest import write_config
    from tests.process.conftest import free_port
    from watchdog.config.load import load_config
    from watchdog.daemon.lifecycle import Daemon
    from watchdog.daemon.wiring import build_components
    from watchdog.outputs.systemd_notify import SdNotifier

    port = free_port()
    pager = (
        f"notifications:\n  targets:\n    - url: json://127.0.0.1:{capture.port}/pager\n"
        "      severities: [critical]\n"
    )
    config = load_config(write_config(tmp_path, port, extra=pager, connect_timeout="1s"))
    d = Daemon(config, None, build_components(config, registry=CollectorRegistry(), sd=SdNotifier(None)))
    sim = Simulator(accounts=("DU111111", "DU222222"))
    try:
        await asyncio.wait_for(d.start(schedule=False), 15)  # nothing listens: "gateway down"
        await sim.start(port=port)
        for _ in range(50):  # the heartbeat job reconnects (with backoff) once something listens
            await asyncio.wait_for(d.heartbeat_job(), 10)
            if d.c.gateway.is_connected():
                break
            await asyncio.sleep(0.1)  # the reconnect backoff is wall-clock: wait it out between steps
        assert d.c.gateway.is_connected()
        await until(lambda: len(capture.snapshot()) >= 2, 10, "the recovery")
        assert [b["title"] for b in capture.snapshot()] == ["Gateway down", "Gateway reconnected"]
        assert d.c.notifier._incidents.outage is None
    finally:
        await asyncio.wait_for(d.stop(), 15)
        await asyncio.wait_for(sim.stop(), 10)
