"""Kill readiness outputs: the metrics, the change notification (deduplicated, real apprise) and the table."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from tests.outputs.conftest import Capture
from watchdog.config.schema import NotificationsConfig
from watchdog.kill.readiness import readiness_json
from watchdog.model import CloseOrderRequest, ContractRef, Quote
from watchdog.outputs.messages import Notification
from watchdog.outputs.metrics import Metrics
from watchdog.outputs.notifier import Notifier
from watchdog.outputs.readiness_notice import ReadinessNotices
from watchdog.outputs.readiness_table import render_plan
from watchdog.readiness_model import AccountReadiness, PlanProblem, PlanReason, PositionPlan, Readiness

NOW = 1_700_000_000.0


async def until(predicate: Callable[[], bool], within: float = 5.0) -> None:
    """Wait for what the capture server's thread does (no event to await across threads)."""
    async with asyncio.timeout(within):
        while not predicate():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


AAPL = ContractRef(con_id=1, symbol="AAPL", sec_type="STK")


def problem(reason: PlanReason) -> PlanProblem:
    return PlanProblem(reason=reason, detail=f"because {reason.value}")


def readiness(*reasons: PlanReason, account_wide: tuple[PlanReason, ...] = (), at: float = NOW) -> Readiness:
    order = CloseOrderRequest(account="DU1", contract=AAPL, action="SELL", quantity=100, order_type="MKT")
    pos = PositionPlan(
        account="DU1",
        contract=AAPL,
        quantity=100,
        orders=() if reasons else (order,),
        session="regular",
        quote=Quote(price=190.0, source="portfolio", as_of=at - 4),
        problems=tuple(problem(r) for r in reasons),
    )
    accounts = (
        AccountReadiness(account="DU1", positions=(pos,), problems=tuple(problem(r) for r in account_wide)),
        AccountReadiness(account="DU2", data_fresh=True, data_as_of=at - 1),
    )
    return Readiness(planned_at=at, accounts=accounts)


def test_metrics_count_each_reason_per_account_at_zero_when_absent_and_forget_gone_accounts() -> None:
    m = Metrics(process_metrics=False)
    reg = m.registry

    def value(name: str, **labels: str) -> float | None:
        return reg.get_sample_value(f"ibkr_watchdog_{name}", labels)

    assert value("kill_readiness_timestamp_seconds") != value("kill_readiness_timestamp_seconds")  # NaN
    m.readiness.observe(readiness(PlanReason.NO_PRICE, account_wide=(PlanReason.READ_ONLY_API,)))
    assert value("kill_ready", account="DU1") == 0 and value("kill_ready", account="DU2") == 1
    assert value("kill_plan_problems", account="DU1", reason="no_price") == 1
    assert value("kill_plan_problems", account="DU1", reason="read_only_api") == 1
    assert value("kill_plan_problems", account="DU1", reason="market_closed") == 0
    assert value("kill_readiness_timestamp_seconds") == NOW
    m.readiness.observe(Readiness(planned_at=NOW + 60, accounts=readiness().accounts[:1]))
    assert (
        value("kill_ready", account="DU1") == 1
        and value("kill_plan_problems", account="DU1", reason="no_price") == 0
    )
    assert value("kill_ready", account="DU2") is None  # no longer watched: its series are gone


def test_a_change_is_told_once_and_info_reasons_alone_never_notify() -> None:
    sent: list[Notification] = []
    notices = ReadinessNotices(sent.append, hold=1)  # every change at once (the hold-down: below)
    assert not notices.observe(readiness())  # ready from the start: nothing to say
    assert not notices.observe(readiness(PlanReason.MARKET_CLOSED))  # expected every night
    assert notices.observe(readiness(PlanReason.NO_PRICE, PlanReason.MARKET_CLOSED))
    assert not notices.observe(readiness(PlanReason.NO_PRICE))  # same (account, reason): deduplicated
    assert notices.observe(readiness(PlanReason.NO_PRICE, account_wide=(PlanReason.READ_ONLY_API,)))
    assert notices.observe(readiness())
    assert [(n.severity.value, n.title) for n in sent] == [
        ("warning", "Kill readiness: a kill now would NOT close everything on DU1"),
        ("critical", "Kill readiness: a kill now would NOT close everything on DU1"),
        ("info", "Kill readiness restored: a kill now would close every position"),
    ]
    assert "AAPL 100: because no_price" in sent[0].body and "New: DU1 no_price" in sent[0].body
    assert "New: DU1 read_only_api" in sent[1].body and not sent[1].limited  # critical never waits
    assert "Cleared: DU1 no_price, DU1 read_only_api" in sent[2].body


def test_a_change_is_told_only_once_it_held_for_two_plans_so_a_flapping_price_says_nothing() -> None:
    sent: list[Notification] = []
    notices = ReadinessNotices(sent.append)
    for _ in range(6):  # a price that comes and goes between plans
        assert not notices.observe(readiness(PlanReason.NO_PRICE))
        assert not notices.observe(readiness())
    assert sent == []
    assert not notices.observe(readiness(PlanReason.NO_PRICE))
    assert notices.observe(readiness(PlanReason.NO_PRICE))  # held for two plans
    assert not notices.observe(readiness())
    assert notices.observe(readiness())
    assert [n.severity.value for n in sent] == ["warning", "info"]


def test_a_gateway_down_and_its_stale_book_are_the_gateway_notifications_never_readiness() -> None:
    sent: list[Notification] = []
    notices = ReadinessNotices(sent.append, hold=1)
    for reasons in ((PlanReason.GATEWAY_DOWN,), (PlanReason.DATA_STALE,), ()):
        notices.observe(readiness(account_wide=reasons))
    assert sent == []


def test_restored_says_exactly_what_still_would_not_close() -> None:
    sent: list[Notification] = []
    notices = ReadinessNotices(sent.append, hold=1)
    notices.observe(readiness(PlanReason.NO_PRICE))
    notices.observe(readiness(PlanReason.MARKET_CLOSED))  # no warning left, but not ready
    notices.observe(readiness())  # a market opening alone says nothing (it would every morning)
    notices.observe(readiness(PlanReason.NO_PRICE))
    notices.observe(readiness())
    assert [n.title for n in sent] == [
        "Kill readiness: a kill now would NOT close everything on DU1",
        "Kill readiness: no warning problem left; still not everything would close",
        "Kill readiness: a kill now would NOT close everything on DU1",
        "Kill readiness restored: a kill now would close every position",
    ]
    assert "would close every position" not in sent[1].body
    assert sent[1].body == (
        "Cleared: DU1 no_price\nStill:\n  DU1: 1 position(s) would not close (market_closed: AAPL)"
    )


async def test_the_change_notification_reaches_a_real_endpoint(capture: Capture) -> None:
    targets = [
        {"url": f"json://127.0.0.1:{capture.port}/hook", "severities": ["info", "warning", "critical"]}
    ]
    n = Notifier(NotificationsConfig.model_validate({"targets": targets, "timeout": "500ms"}))
    await n.start()
    try:
        notices = ReadinessNotices(n.notify)
        notices.observe(readiness(PlanReason.UNKNOWN_CONTRACT))
        notices.observe(readiness(PlanReason.UNKNOWN_CONTRACT))
        await until(lambda: len(capture.snapshot()) == 1)
    finally:
        await n.stop(2)
    [body] = capture.snapshot()
    assert body["title"] == "Kill readiness: a kill now would NOT close everything on DU1"
    assert "unknown_contract ×1" in body["message"] and "ibkr-watchdog plan" in body["message"]


def test_the_table_names_each_position_its_order_market_price_and_every_problem() -> None:
    text = render_plan(
        readiness_json(readiness(PlanReason.NO_PRICE, account_wide=(PlanReason.DRY_RUN,))), now=NOW + 2
    )
    assert text.startswith("Kill readiness: NOT READY — a close_all planned 2023-11-14 22:13:20 UTC (2s ago)")
    assert "DU1: NOT READY · write access not proven · positions never read (STALE)" in text
    assert "AAPL STK  100  nothing     regular  190 (portfolio, 6s)  NO: no_price" in text
    assert "  ! dry_run: because dry_run" in text and "  ! AAPL: no_price: because no_price" in text
    assert "DU2: ready" in text and "no positions: a kill would only cancel working orders" in text


def test_the_readiness_page_gives_the_plan_command_as_installed_on_this_host() -> None:
    """Issue 14: "Details: ibkr-watchdog plan" is no command on an installed host (path, user, state dir)."""
    from watchdog.outputs.messages import MessageContext
    from watchdog.outputs.readiness_notice import format_readiness

    ctx = MessageContext(exe="/opt/ibkr-watchdog/venv/bin/ibkr-watchdog", state_dir="/var/lib/ibkr-watchdog")
    note = format_readiness(readiness(PlanReason.NO_PRICE), frozenset(), ctx)
    assert (
        "Details: sudo /opt/ibkr-watchdog/venv/bin/ibkr-watchdog plan --state-dir /var/lib/ibkr-watchdog"
        in (note.body)
    ), note.body
