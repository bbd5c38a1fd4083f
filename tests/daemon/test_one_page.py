"""One kill, one page (issue 14 #7): a manual kill pages once and then sends its report, no more."""

from __future__ import annotations

import pytest

from tests.daemon.conftest import DaemonFactory, until
from tests.outputs.conftest import Capture, capture  # noqa: F401  (fixture)
from watchdog.model import Action

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
