"""Real apprise notifications to a local HTTP endpoint: content, routing, dedup, bursts, bad targets."""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import io
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest

from tests.outputs.conftest import Capture, make_kill_report
from watchdog.config.schema import NotificationsConfig
from watchdog.model import Action, Breach, BreachKind, KillOutcome, Severity
from watchdog.outputs import logging_setup as logsetup
from watchdog.outputs.metrics import Metrics
from watchdog.outputs.notifier import Notifier

SECRET_PASS = "S3cretPassw0rd"
SECRET_PATH = "T0KEN-abcdef123456"
SECRET_HEADER = "k3y-zyxwvu987654"
SECRETS = (SECRET_PASS, SECRET_PATH, SECRET_HEADER)


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def config(targets: list[tuple[str, tuple[str, ...]]], **extra: Any) -> NotificationsConfig:
    fields: dict[str, Any] = {
        "targets": [{"url": url, "severities": list(sev)} for url, sev in targets],
        "timeout": "500ms",
        "reminder_interval": "15m",
        "burst_window": "10s",
        "burst_max": 5,
    }
    fields.update(extra)
    return NotificationsConfig.model_validate(fields)


def url(port: int, path: str = "hook") -> str:
    return f"json://127.0.0.1:{port}/{path}"


ALL = ("info", "warning", "critical")


def breach(kind: BreachKind = BreachKind.BREACH, rule: str = "daily_loss", account: str = "DU111") -> Breach:
    return Breach(
        rule=rule,
        kind=kind,
        action=Action.CLOSE_ALL,
        severity=Severity.CRITICAL if kind is BreachKind.BREACH else Severity.WARNING,
        account=account,
        metric="daily_pnl",
        value=-1200.0 if kind is not BreachKind.RECOVERED else -200.0,
        threshold=-1000.0,
        since=1_700_000_000.0,
        message="daily P&L below the loss limit",
    )


async def until(predicate: Callable[[], bool], within: float = 5.0) -> None:
    """Wait for something another thread (the capture server, apprise's workers) does."""
    async with asyncio.timeout(within):
        while not predicate():  # noqa: ASYNC110 - the change happens in another thread, no event to await
            await asyncio.sleep(0.01)


async def test_a_breach_arrives_with_value_threshold_and_action(capture: Capture) -> None:
    n = Notifier(config([(url(capture.port), ALL)]), clock=Clock(1_700_000_030.0))
    await n.start()
    try:
        assert n.notify_breach(breach())
        await n.drain(5)
    finally:
        await n.stop(2)
    [body] = capture.snapshot()
    assert body["title"] == "[BREACH] daily_loss on DU111"
    assert "value −1,200 USD vs threshold −1,000 USD" in body["message"]
    assert "close_all" in body["message"] and "30s ago" in body["message"]
    assert body["type"] == "failure"  # critical → apprise's failure type (red in chat apps)


async def test_critical_goes_only_to_the_pager_and_warnings_only_to_chat(capture: Capture) -> None:
    chat, pager = url(capture.port, "chat"), url(capture.port, "pager")
    cfg = config([(chat, ("info", "warning")), (pager, ("critical",))])
    n = Notifier(cfg)
    await n.start()
    try:
        n.notify_text("warning", "disk almost full", "80%")
        n.notify_kill(make_kill_report())
        n.notify_text("info", "started", "hello")
        await n.drain(5)
    finally:
        await n.stop(2)
    routed = sorted(zip(capture.paths, [b["title"] for b in capture.snapshot()], strict=True))
    assert routed == [
        ("/chat", "disk almost full"),
        ("/chat", "started"),
        ("/pager", "[KILL DONE] close_all by daily_loss on DU111"),
    ]


async def test_an_ongoing_breach_is_announced_once_reminded_then_recovered(capture: Capture) -> None:
    clock = Clock()
    n = Notifier(config([(url(capture.port), ALL)]), clock=clock)
    await n.start()
    try:
        assert n.notify_breach(breach())
        clock.now += 60
        assert not n.notify_breach(breach())  # same breach, next cycle: quiet
        clock.now += 15 * 60
        assert n.notify_breach(breach())  # reminder interval passed
        clock.now += 60
        assert n.notify_breach(breach(BreachKind.RECOVERED))
        assert not n.notify_breach(breach(BreachKind.RECOVERED))  # nothing left to call off
        await n.drain(5)
    finally:
        await n.stop(2)
    titles = [b["title"] for b in capture.snapshot()]
    assert titles == [
        "[BREACH] daily_loss on DU111",
        "Reminder: [BREACH] daily_loss on DU111",
        "[RECOVERED] daily_loss on DU111",
    ]
    assert capture.snapshot()[2]["type"] == "success"
    assert n.stats().suppressed == 1


async def test_a_breach_reported_once_is_reminded_by_the_tick(capture: Capture) -> None:
    clock = Clock()
    n = Notifier(config([(url(capture.port), ALL)], reminder_interval="5m"), clock=clock)
    await n.start()
    try:
        n.notify_breach(breach(BreachKind.WARNING))
        clock.now += 299
        n.tick()
        clock.now += 2
        n.tick()
        await n.drain(5)
    finally:
        await n.stop(2)
    assert [b["title"] for b in capture.snapshot()] == [
        "[WARNING] daily_loss on DU111 — at the threshold: CLOSE ALL POSITIONS",
        "Reminder: [WARNING] daily_loss on DU111 — at the threshold: CLOSE ALL POSITIONS",
    ]


async def test_a_burst_is_summarised_but_a_kill_report_never_waits(capture: Capture) -> None:
    clock = Clock()
    n = Notifier(config([(url(capture.port), ALL)], burst_max=3), clock=clock)
    await n.start()
    try:
        for i in range(8):
            n.notify_breach(breach(rule=f"rule{i}"))
        assert n.notify_kill(make_kill_report())  # over the limit, still sent at once
        await n.drain(5)
        assert len(capture.snapshot()) == 4
        clock.now += 10
        n.tick()
        await n.drain(5)
    finally:
        await n.stop(2)
    bodies = capture.snapshot()
    assert [b["title"] for b in bodies[:3]] == [f"[BREACH] rule{i} on DU111" for i in range(3)]
    assert bodies[4]["title"] == "5 notifications summarised"
    assert "5 critical" in bodies[4]["message"]
    assert "[critical] [BREACH] rule7 on DU111" in bodies[4]["message"]
    assert len(bodies) == 5 and n.stats().summarised == 5


async def test_a_hanging_target_delays_neither_the_caller_nor_other_targets(
    capture: Capture, hanging_port: int
) -> None:
    metrics = Metrics()
    cfg = config([(url(hanging_port, "pager"), ("critical",)), (url(capture.port, "chat"), ALL)])
    n = Notifier(cfg, on_result=metrics.observe_notification)
    await n.start()
    try:
        started = time.monotonic()
        result = n.notify_kill(make_kill_report())
        elapsed = time.monotonic() - started
        assert result is True and not inspect.isawaitable(result)  # plain call: nothing to await
        assert elapsed < 0.25  # generous; the hang lasts the 0.5 s timeout
        await until(lambda: len(capture.snapshot()) == 1)
        failures = 'notification_failures_total{severity="critical"}'
        await until(lambda: _sample(metrics, failures) == 1.0)
    finally:
        await n.stop(2)
    assert _sample(metrics, 'notifications_total{severity="critical"}') == 2.0
    assert n.stats().failed == 1 and n.stats().delivered == 1


async def test_a_refusing_target_is_counted_and_the_next_message_still_goes(
    capture: Capture, refused_port: int
) -> None:
    results: list[tuple[str, bool]] = []
    cfg = config([(url(refused_port), ("warning",)), (url(capture.port), ("warning",))])
    n = Notifier(cfg, on_result=lambda sev, ok: results.append((sev, ok)))
    await n.start()
    try:
        n.notify_text("warning", "first", "x")
        n.notify_text("warning", "second", "y")
        await n.drain(5)
    finally:
        await n.stop(2)
    assert sorted(results) == [("warning", False), ("warning", False), ("warning", True), ("warning", True)]
    assert [b["title"] for b in capture.snapshot()] == ["first", "second"]


async def test_no_secret_reaches_a_log_line_or_a_metric(
    capture: Capture, refused_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    metrics = Metrics()
    secret = f"{SECRET_PATH}?+X-Api-Key={SECRET_HEADER}"
    cfg = config(
        [
            (f"json://watch:{SECRET_PASS}@127.0.0.1:{capture.port}/{secret}", ALL),
            (f"json://watch:{SECRET_PASS}@127.0.0.1:{refused_port}/{secret}", ALL),
            (f"tgram://{SECRET_PATH}:{SECRET_PASS}/", ALL),  # rejected by apprise: not a valid bot token
        ]
    )
    n = Notifier(cfg, on_result=metrics.observe_notification)
    await n.start()
    try:
        n.notify_text("critical", "Kill failed", f"reason quoting the url json://watch:{SECRET_PASS}@x/")
        await n.drain(5)
    finally:
        await n.stop(2)
    assert capture.headers[0].get("X-Api-Key") == SECRET_HEADER  # the target itself got its secret
    assert SECRET_PASS not in capture.snapshot()[0]["message"]  # but no message quotes it
    text = "\n".join(r.getMessage() for r in caplog.records) + caplog.text
    text += generate_latest(metrics.registry).decode() + "\n".join(n.problems) + repr(n.targets)
    for s in SECRETS:
        assert s not in text
    assert f"json://127.0.0.1:{refused_port}/…" in caplog.text  # the failure names the target safely
    assert len(n.problems) == 1 and "tgram://…" in n.problems[0]


async def test_a_full_queue_drops_and_then_says_so(capture: Capture) -> None:
    dropped: list[int] = []
    n = Notifier(config([(url(capture.port), ALL)], burst_max=100), queue_size=2, on_dropped=dropped.append)
    for i in range(5):  # not started yet: nothing drains the queue
        n.notify_text("info", f"m{i}", "")
    assert n.stats().dropped == 3 and sum(dropped) == 3
    await n.start()
    try:
        await n.drain(5)
        n.notify_text("info", "after", "")
        await n.drain(5)
    finally:
        await n.stop(2)
    bodies = capture.snapshot()
    assert [b["title"] for b in bodies] == ["m0", "m1", "after"]
    assert "3 earlier notification(s) to this target were dropped" in bodies[2]["message"]


async def test_stop_sends_what_is_queued_and_then_refuses_quietly(capture: Capture) -> None:
    n = Notifier(config([(url(capture.port), ALL)]))
    await n.start()
    n.notify_text("info", "ibkr-watchdog stopping", "bye")
    await n.stop(2)
    assert [b["title"] for b in capture.snapshot()] == ["ibkr-watchdog stopping"]
    assert n.notify_text("critical", "late", "") is False


async def test_reconfigure_moves_new_messages_to_the_new_targets(capture: Capture) -> None:
    n = Notifier(config([(url(capture.port, "old"), ALL)]))
    await n.start()
    try:
        n.notify_text("info", "one", "")
        n.reconfigure(config([(url(capture.port, "new"), ALL)]))
        n.notify_text("info", "two", "")
        await n.drain(5)
    finally:
        await n.stop(2)
    await until(lambda: len(capture.snapshot()) == 2)
    assert sorted(zip(capture.paths, [b["title"] for b in capture.snapshot()], strict=True)) == [
        ("/new", "two"),
        ("/old", "one"),
    ]


async def test_targets_from_a_urls_file_get_their_severities(capture: Capture, tmp_path: Path) -> None:
    f = tmp_path / "urls"
    f.write_text(f"# pager\ncritical={url(capture.port, 'pager')}\n\n{url(capture.port, 'all')}\n")
    n = Notifier(config([], urls_file=str(f)))
    await n.start()
    try:
        n.notify_text("warning", "w", "")
        pending = dataclasses.replace(
            make_kill_report(KillOutcome.PENDING, "manual:SIGUSR2"),
            action=Action.CANCEL_ALL,
            close_orders=(),
        )
        n.notify_pending_kill(pending, "positions: no answer within 5s")
        await n.drain(5)
    finally:
        await n.stop(2)
    got = sorted(zip(capture.paths, [b["title"] for b in capture.snapshot()], strict=True))
    pending = "[KILL PENDING] cancel_all by manual:SIGUSR2: the gateway does not answer"
    assert got == [("/all", pending), ("/all", "w"), ("/pager", pending)]


async def test_an_escalated_kill_names_what_is_still_open(capture: Capture) -> None:
    n = Notifier(config([(url(capture.port), ("critical",))]))
    await n.start()
    try:
        n.notify_kill(make_kill_report(KillOutcome.ESCALATED))
        await n.drain(5)
    finally:
        await n.stop(2)
    [body] = capture.snapshot()
    assert body["title"].startswith("[KILL ESCALATED — ACT NOW]")
    assert "Still open (1):\n  - DU111 -2 ESZ6" in body["message"]
    assert "ibkr-watchdog reset --reason" in body["message"] and "Act by hand now" in body["message"]


def _sample(metrics: Metrics, series: str) -> float | None:
    name, _, rest = series.partition("{")
    labels = dict(kv.split("=") for kv in rest.rstrip("}").split(",")) if rest else {}
    labels = {k: v.strip('"') for k, v in labels.items()}
    return metrics.registry.get_sample_value("ibkr_watchdog_" + name, labels)


async def test_a_breach_interrupted_by_unknown_data_is_reminded_again_when_data_returns(
    capture: Capture,
) -> None:
    clock = Clock()
    n = Notifier(config([(url(capture.port), ALL)], reminder_interval="5m"), clock=clock)
    await n.start()
    try:
        n.notify_breach(breach())
        clock.now += 60
        n.notify_breach(breach(BreachKind.UNKNOWN))
        clock.now += 60
        back = dataclasses.replace(breach(BreachKind.RECOVERED), message="data is back: daily_pnl -1,150")
        n.notify_breach(back)
        clock.now += 5 * 60
        n.tick()
        await n.drain(5)
    finally:
        await n.stop(2)
    bodies = capture.snapshot()
    assert [b["title"] for b in bodies] == [
        "[BREACH] daily_loss on DU111",
        "[UNKNOWN] daily_loss on DU111",
        "[RECOVERED] daily_loss on DU111",
        "Reminder: [BREACH] daily_loss on DU111",  # the breach itself never cleared
    ]
    assert "data is back: daily_pnl -1,150" in bodies[2]["message"]


async def test_a_piece_of_a_token_quoted_in_a_message_is_masked(capture: Capture) -> None:
    cfg = config([(f"json://watch:{SECRET_PASS}@127.0.0.1:{capture.port}/{SECRET_PATH}", ALL)])
    n = Notifier(cfg)
    await n.start()
    try:  # a webhook's error echoing part of the token, cut where the secret list cannot guess
        n.notify_text(
            "critical", "Webhook said", f"bad token ...{SECRET_PATH[3:12]}... and {SECRET_PASS[:6]}"
        )
        await n.drain(5)
    finally:
        await n.stop(2)
    message = capture.snapshot()[0]["message"]
    assert SECRET_PATH[3:12] not in message and SECRET_PASS[:6] not in message
    assert "bad token ...***... and ***" in message


async def test_our_own_log_lines_lose_any_piece_of_a_token(capture: Capture) -> None:
    out = io.StringIO()
    logsetup.configure("INFO", stream=out)
    try:
        n = Notifier(config([(f"json://watch:{SECRET_PASS}@127.0.0.1:{capture.port}/{SECRET_PATH}", ALL)]))
        logging.getLogger("watchdog.daemon.lifecycle").warning("webhook said: bad token %s", SECRET_PATH[2:9])
        await n.stop(1)
        logging.getLogger("watchdog.daemon.lifecycle").warning("after stop %s", "plain")
    finally:
        logsetup.flush()
    text = out.getvalue()
    assert SECRET_PATH[2:9] not in text
    assert "webhook said: bad token ***" in text and "after stop plain" in text
