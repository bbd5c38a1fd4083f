"""Rule evaluation as a pure function of (rules, snapshot, injected clock, memory)."""

from __future__ import annotations

import math

import pytest

from watchdog.model import (
    AccountState,
    Action,
    BreachKind,
    ContractRef,
    Fill,
    GatewayStatus,
    Health,
    OpenOrder,
    Position,
    Severity,
)
from watchdog.rules.evaluate import ALL, RuleMemory, evaluate, scheduled_breach

from .helpers import T0, pnl, rule, snap


def kinds(breaches: list) -> list[tuple[str, str | None]]:  # type: ignore[type-arg]
    return [(b.kind.value, b.account) for b in breaches]


@pytest.mark.parametrize(
    ("op", "value", "breached"),
    [
        ("<", -2500, False),
        ("<", -2501, True),
        ("<=", -2500, True),
        ("<=", -2499, False),
        (">", -2499, True),
        (">", -2500, False),
        (">=", -2500, True),
        (">=", -2501, False),
        ("==", -2500, True),
        ("==", -2501, False),
        ("!=", -2501, True),
        ("!=", -2500, False),
    ],
)
def test_each_operator_compares_the_value_with_the_threshold(op: str, value: float, breached: bool) -> None:
    r = rule(f"daily_pnl {op} -2500", action="close_all")
    out = evaluate([r], pnl(T0, DU1=value), T0, RuleMemory())
    assert kinds(out) == ([("breach", "DU1")] if breached else [])
    if breached:
        assert out[0].action is Action.CLOSE_ALL
        assert out[0].value == value
        assert out[0].threshold == -2500


def test_it_breaches_only_after_the_condition_held_for_the_whole_for_duration() -> None:
    r = rule("daily_pnl <= -2500", **{"for": "10s"})
    m = RuleMemory()
    assert evaluate([r], pnl(T0, DU1=-3000), T0, m) == []
    assert evaluate([r], pnl(T0 + 9.9, DU1=-3000), T0 + 9.9, m) == []
    out = evaluate([r], pnl(T0 + 10, DU1=-3000), T0 + 10, m)
    assert kinds(out) == [("breach", "DU1")]
    assert out[0].since == T0  # since the condition started holding, not since it was announced


def test_a_recovery_inside_the_for_period_restarts_the_timer() -> None:
    r = rule("daily_pnl <= -2500", **{"for": "10s"})
    m = RuleMemory()
    evaluate([r], pnl(T0, DU1=-3000), T0, m)
    evaluate([r], pnl(T0 + 5, DU1=-2000), T0 + 5, m)  # back inside: the timer restarts
    assert evaluate([r], pnl(T0 + 12, DU1=-3000), T0 + 12, m) == []
    assert kinds(evaluate([r], pnl(T0 + 22, DU1=-3000), T0 + 22, m)) == [("breach", "DU1")]


def test_consecutive_needs_n_successive_true_evaluations() -> None:
    r = rule("daily_pnl <= -2500", consecutive=3)
    m = RuleMemory()
    values = [-3000, -3000, -100, -3000, -3000, -3000]
    results = [kinds(evaluate([r], pnl(T0 + i, DU1=v), T0 + i, m)) for i, v in enumerate(values)]
    assert results == [[], [], [], [], [], [("breach", "DU1")]]


def test_scope_each_judges_every_account_separately() -> None:
    r = rule("daily_pnl <= -2500", scope="each")
    out = evaluate([r], pnl(T0, DU1=-3000, DU2=-100), T0, RuleMemory())
    assert kinds(out) == [("breach", "DU1")]


def test_scope_named_account_looks_only_at_that_account() -> None:
    r = rule("daily_pnl <= -2500", scope="DU2")
    assert evaluate([r], pnl(T0, DU1=-3000, DU2=-100), T0, RuleMemory()) == []
    out = evaluate([r], pnl(T0 + 1, DU1=-100, DU2=-2600), T0 + 1, RuleMemory())
    assert kinds(out) == [("breach", "DU2")]


def test_scope_all_sums_money_across_accounts() -> None:
    r = rule("daily_pnl <= -2500", scope="all")
    out = evaluate([r], pnl(T0, DU1=-1500, DU2=-1500), T0, RuleMemory())
    assert kinds(out) == [("breach", None)]
    assert out[0].value == -3000


def test_scope_all_computes_ratios_from_the_sums() -> None:
    accounts = {
        "DU1": {"net_liquidation": 100_000.0, "excess_liquidity": 2_000.0, "maint_margin_req": 95_000.0},
        "DU2": {"net_liquidation": 300_000.0, "excess_liquidity": 198_000.0, "maint_margin_req": 5_000.0},
    }
    cushion = rule("cushion < 10%", name="cushion", scope="all")
    margin = rule("margin_ratio > 50%", name="margin", scope="all")
    each = rule("margin_ratio > 50%", name="each", scope="each")
    m = RuleMemory()
    out = evaluate([cushion, margin, each], snap(T0, accounts), T0, m)
    # sums: EL 200k / NL 400k = 50 % cushion, MM 100k / NL 400k = 25 % — fine; DU1 alone is at 95 %
    assert kinds(out) == [("breach", "DU1")]
    values = {(s.rule, s.account): s.value for s in m.status()}
    assert values[("cushion", None)] == pytest.approx(0.5)
    assert values[("margin", None)] == pytest.approx(0.25)
    assert values[("each", "DU1")] == pytest.approx(0.95)


def test_gateway_metrics_are_judged_once_not_per_account() -> None:
    r = rule("gateway_down_seconds > 30s")
    gw = GatewayStatus(health=Health.DOWN, connected=False, down_since=T0 - 31)
    out = evaluate(
        [r], snap(T0, {"DU1": {"daily_pnl": 0.0}, "DU2": {"daily_pnl": 0.0}}, gateway=gw), T0, RuleMemory()
    )
    assert kinds(out) == [("breach", None)]
    assert out[0].value == pytest.approx(31)


def test_an_ongoing_breach_is_announced_once_and_its_recovery_once() -> None:
    r = rule("daily_pnl <= -2500", action="close_all")
    m = RuleMemory()
    seen = [kinds(evaluate([r], pnl(T0 + i, DU1=v), T0 + i, m)) for i, v in enumerate([-3000] * 5 + [0, 0])]
    assert seen == [[("breach", "DU1")], [], [], [], [], [("recovered", "DU1")], []]


def test_recovery_is_an_alert_never_a_kill() -> None:
    r = rule("daily_pnl <= -2500", action="close_all")
    m = RuleMemory()
    evaluate([r], pnl(T0, DU1=-3000), T0, m)
    (rec,) = evaluate([r], pnl(T0 + 1, DU1=0), T0 + 1, m)
    assert (rec.kind, rec.action, rec.severity) == (BreachKind.RECOVERED, Action.ALERT, Severity.INFO)


def test_a_warning_fires_once_at_the_warn_level_and_the_breach_follows() -> None:
    r = rule("daily_pnl <= -2500", warn_at="80%", action="close_all")
    m = RuleMemory()
    steps = [-1000, -1999, -2000, -2200, -2600, -2600]
    seen = [evaluate([r], pnl(T0 + i, DU1=v), T0 + i, m) for i, v in enumerate(steps)]
    assert [kinds(s) for s in seen] == [[], [], [("warning", "DU1")], [], [("breach", "DU1")], []]
    warning = seen[2][0]
    assert (warning.action, warning.severity) == (Action.ALERT, Severity.WARNING)


def test_a_warning_that_clears_is_announced_as_recovered() -> None:
    r = rule("daily_pnl <= -2500", warn_at="80%")
    m = RuleMemory()
    evaluate([r], pnl(T0, DU1=-2100), T0, m)
    assert kinds(evaluate([r], pnl(T0 + 1, DU1=-500), T0 + 1, m)) == [("recovered", "DU1")]


def test_a_warning_on_a_floor_measures_from_the_days_high() -> None:
    # cushion < 10 %, warn at 50 %: the day's high is 50 %, so the warning level is 30 %.
    r = rule("cushion < 10%", warn_at="50%")
    m = RuleMemory()
    levels = [0.50, 0.31, 0.29, 0.20]
    out = [
        kinds(evaluate([r], snap(T0 + i, {"DU1": {"cushion": c}}), T0 + i, m)) for i, c in enumerate(levels)
    ]
    assert out == [[], [], [("warning", "DU1")], []]


def test_a_breach_that_skips_the_warning_band_is_one_breach() -> None:
    r = rule("daily_pnl <= -2500", warn_at="80%")
    assert kinds(evaluate([r], pnl(T0, DU1=-9000), T0, RuleMemory())) == [("breach", "DU1")]


@pytest.mark.parametrize(
    "bad_account",
    [
        pytest.param(AccountState(account="DU1", as_of={"daily_pnl": T0}), id="missing"),
        pytest.param(AccountState(account="DU1", daily_pnl=math.nan, as_of={"daily_pnl": T0}), id="nan"),
        pytest.param(AccountState(account="DU1", daily_pnl=-9e9, as_of={"daily_pnl": T0 - 31}), id="stale"),
    ],
)
def test_missing_nan_or_stale_data_is_unknown_and_never_a_kill(bad_account: AccountState) -> None:
    r = rule("daily_pnl <= -2500", action="close_all", unknown_after="60s", stale_after="30s")
    m = RuleMemory()
    s = snap(T0, {})
    s = type(s)(taken_at=T0, accounts={"DU1": bad_account}, gateway=s.gateway)
    assert evaluate([r], s, T0, m) == []
    assert [st.state for st in m.status()] == ["unknown"]
    assert m.status()[0].value is None
    assert evaluate([r], s, T0 + 59, m) == []
    (alert,) = evaluate([r], s, T0 + 60, m)
    assert (alert.kind, alert.action) == (BreachKind.UNKNOWN, Action.ALERT)
    assert alert.since == T0
    assert evaluate([r], s, T0 + 200, m) == []  # announced once


def test_data_coming_back_after_an_unknown_alert_is_announced() -> None:
    r = rule("daily_pnl <= -2500", unknown_after="10s")
    m = RuleMemory()
    evaluate([r], pnl(T0, DU1=None), T0, m)
    assert kinds(evaluate([r], pnl(T0 + 10, DU1=None), T0 + 10, m)) == [("unknown", "DU1")]
    assert kinds(evaluate([r], pnl(T0 + 11, DU1=0), T0 + 11, m)) == [("recovered", "DU1")]


def test_a_configured_account_missing_from_the_snapshot_is_unknown() -> None:
    r = rule("daily_pnl <= -2500")
    m = RuleMemory()
    evaluate([r], pnl(T0, DU1=0), T0, m, accounts=["DU1", "DU2"])
    states = {s.account: s.state for s in m.status()}
    assert states == {"DU1": "ok", "DU2": "unknown"}


def test_no_accounts_at_all_is_unknown_not_silence() -> None:
    r = rule("daily_pnl <= -2500")
    m = RuleMemory()
    evaluate([r], snap(T0, {}), T0, m)
    assert [(s.account, s.state) for s in m.status()] == [(None, "unknown")]


def test_unknown_data_interrupts_for_but_keeps_an_announced_breach() -> None:
    r = rule("daily_pnl <= -2500", **{"for": "2s"})
    m = RuleMemory()
    evaluate([r], pnl(T0, DU1=-3000), T0, m)
    evaluate([r], pnl(T0 + 1, DU1=None), T0 + 1, m)  # a gap: not known to hold
    assert evaluate([r], pnl(T0 + 2, DU1=-3000), T0 + 2, m) == []
    assert kinds(evaluate([r], pnl(T0 + 4, DU1=-3000), T0 + 4, m)) == [("breach", "DU1")]
    evaluate([r], pnl(T0 + 5, DU1=None), T0 + 5, m)
    assert evaluate([r], pnl(T0 + 6, DU1=-3000), T0 + 6, m) == []  # no second breach after the gap


def test_all_needs_every_part_and_unknown_parts_never_make_it_true() -> None:
    r = rule({"all": ["daily_pnl <= -2500", "unrealized_pnl <= -1000"]})
    m = RuleMemory()
    s = snap(T0, {"DU1": {"daily_pnl": -3000.0, "unrealized_pnl": None}})
    assert evaluate([r], s, T0, m) == []
    assert m.status()[0].state == "unknown"
    s = snap(T0 + 1, {"DU1": {"daily_pnl": -100.0, "unrealized_pnl": None}})
    evaluate([r], s, T0 + 1, m)
    assert m.status()[0].state == "ok"  # one known false part decides an all:
    s = snap(T0 + 2, {"DU1": {"daily_pnl": -3000.0, "unrealized_pnl": -1500.0}})
    assert kinds(evaluate([r], s, T0 + 2, m)) == [("breach", "DU1")]


def test_any_is_true_when_one_known_part_is_true() -> None:
    r = rule("daily_pnl <= -2500 or cushion < 5%")
    s = snap(T0, {"DU1": {"daily_pnl": None, "cushion": 0.01}})
    out = evaluate([r], s, T0, RuleMemory())
    assert kinds(out) == [("breach", "DU1")]
    assert out[0].metric == "cushion"


def test_nested_combinations_follow_three_valued_logic() -> None:
    r = rule({"any": [{"all": ["daily_pnl <= -2500", "position_count > 0"]}, "cushion < 5%"]})
    pos = Position(account="DU1", contract=ContractRef(con_id=1, symbol="X", sec_type="STK"), quantity=5)
    s = snap(T0, {"DU1": {"daily_pnl": -3000.0, "cushion": 0.5}}, positions=(pos,), positions_as_of=T0)
    assert kinds(evaluate([r], s, T0, RuleMemory())) == [("breach", "DU1")]
    s = snap(T0, {"DU1": {"daily_pnl": -3000.0, "cushion": 0.5}}, positions=(), positions_as_of=T0)
    assert evaluate([r], s, T0, RuleMemory()) == []


def test_reload_keeps_timers_of_unchanged_rules_and_drops_changed_ones() -> None:
    kept = rule("daily_pnl <= -2500", name="kept", **{"for": "10s"})
    changed = rule("daily_pnl <= -2500", name="changed", **{"for": "10s"})
    m = RuleMemory()
    evaluate([kept, changed], pnl(T0, DU1=-3000), T0, m)
    changed2 = rule("daily_pnl <= -2400", name="changed", **{"for": "10s"})
    m.retain([kept, changed2])
    out = evaluate([kept, changed2], pnl(T0 + 10, DU1=-3000), T0 + 10, m)
    assert [(b.rule, b.kind.value) for b in out] == [("kept", "breach")]
    out = evaluate([kept, changed2], pnl(T0 + 20, DU1=-3000), T0 + 20, m)
    assert [(b.rule, b.kind.value) for b in out] == [("changed", "breach")]


def test_reload_does_not_reannounce_an_unchanged_breached_rule() -> None:
    r = rule("daily_pnl <= -2500", name="loss")
    m = RuleMemory()
    evaluate([r], pnl(T0, DU1=-3000), T0, m)
    m.retain([rule("daily_pnl <= -2500", name="loss")])  # an equal rule from a reloaded file
    assert evaluate([r], pnl(T0 + 1, DU1=-3000), T0 + 1, m) == []


def test_suspended_rules_are_not_judged_and_restart_their_timers() -> None:
    r = rule("daily_pnl <= -2500", name="loss", **{"for": "5s"})
    m = RuleMemory()
    evaluate([r], pnl(T0, DU1=-3000), T0, m)
    assert evaluate([r], pnl(T0 + 6, DU1=-3000), T0 + 6, m, {"loss"}) == []
    assert m.status()[0].state == "suspended"
    assert evaluate([r], pnl(T0 + 7, DU1=-3000), T0 + 7, m, ALL) == []
    assert evaluate([r], pnl(T0 + 8, DU1=-3000), T0 + 8, m) == []  # the timer restarted at the window's end
    assert kinds(evaluate([r], pnl(T0 + 13, DU1=-3000), T0 + 13, m)) == [("breach", "DU1")]


def test_scheduled_and_disabled_rules_are_not_evaluated() -> None:
    sched = rule(None, name="flatten", schedule={"cron": "55 15 * * mon-fri"}, action="close_all")
    off = rule("daily_pnl <= -2500", name="off", enabled=False)
    m = RuleMemory()
    assert evaluate([sched, off], pnl(T0, DU1=-9000), T0, m) == []
    assert m.status() == []
    b = scheduled_breach(sched, T0)
    assert (b.rule, b.kind, b.action, b.since) == ("flatten", BreachKind.BREACH, Action.CLOSE_ALL, T0)


def test_status_reports_value_threshold_and_state_for_metrics() -> None:
    r = rule("daily_pnl <= -2500", name="loss", **{"for": "5s"})
    m = RuleMemory()
    evaluate([r], pnl(T0, DU1=-3000, DU2=-10), T0, m)
    st = {s.account: s for s in m.status()}
    assert (st["DU1"].value, st["DU1"].threshold, st["DU1"].state, st["DU1"].op) == (
        -3000,
        -2500,
        "pending",
        "<=",
    )
    assert st["DU2"].state == "ok"
    evaluate([r], pnl(T0 + 5, DU1=-3000, DU2=-10), T0 + 5, m)
    assert {s.account: s.state for s in m.status()} == {"DU1": "breached", "DU2": "ok"}


def test_drawdown_is_measured_from_the_days_high_and_restarts_the_next_day() -> None:
    r = rule("drawdown >= 4000", name="dd")
    pct = rule("drawdown_pct >= 5%", name="ddpct")
    m = RuleMemory()
    for i, nl in enumerate([100_000.0, 104_000.0, 101_000.0]):
        evaluate([r, pct], snap(T0 + i, {"DU1": {"net_liquidation": nl}}), T0 + i, m)
    assert {s.rule: s.value for s in m.status()} == {"dd": 3000.0, "ddpct": pytest.approx(3000 / 104_000)}
    out = evaluate([r, pct], snap(T0 + 3, {"DU1": {"net_liquidation": 99_900.0}}), T0 + 3, m)
    assert [(b.rule, b.value) for b in out] == [("dd", 4100.0)]
    next_day = T0 + 86_400
    evaluate([r, pct], snap(next_day, {"DU1": {"net_liquidation": 99_000.0}}), next_day, m)
    assert {s.rule: s.value for s in m.status()} == {"dd": 0.0, "ddpct": 0.0}


def _contract(con_id: int) -> ContractRef:
    return ContractRef(con_id=con_id, symbol=f"S{con_id}", sec_type="STK")


def test_position_order_and_activity_metrics_are_counted_per_account() -> None:
    positions = (
        Position(account="DU1", contract=_contract(1), quantity=10, market_value=1_500.0),
        Position(account="DU1", contract=_contract(2), quantity=-3, market_value=-9_000.0),
        Position(account="DU1", contract=_contract(3), quantity=0, market_value=0.0),
        Position(account="DU2", contract=_contract(1), quantity=1, market_value=150.0),
    )
    orders = tuple(
        OpenOrder(order_id=i, perm_id=i, client_id=1, account="DU1", contract=_contract(1), action="BUY",
                  total_quantity=1, remaining=1, status=status)
        for i, status in enumerate(["Submitted", "PreSubmitted", "Cancelled"])
    )  # fmt: skip
    fills = tuple(
        Fill(exec_id=str(i), time=t, account="DU1", contract=_contract(1), side="BOT", shares=1, price=1)
        for i, t in enumerate([T0 - 61, T0 - 30, T0 - 1])
    )
    events = (("DU1", T0 - 70), ("DU1", T0 - 5), ("DU2", T0 - 5), ("DU2", T0 - 2))
    s = snap(
        T0, {"DU1": {"daily_pnl": 0.0}, "DU2": {"daily_pnl": 0.0}},
        positions=positions, positions_as_of=T0, open_orders=orders, orders_as_of=T0,
        fills=fills, fills_as_of=T0, order_events=events,
    )  # fmt: skip
    metrics = [
        "largest_position_value",
        "position_count",
        "open_order_count",
        "fills_per_minute",
        "orders_per_minute",
    ]
    rules = [rule(f"{name} > 1000000", name=name) for name in metrics]
    rules += [rule(f"{name} > 1000000", name=f"{name}-all", scope="all") for name in metrics]
    m = RuleMemory()
    evaluate(rules, s, T0, m)
    got = {(st.rule, st.account): st.value for st in m.status()}
    assert got[("largest_position_value", "DU1")] == 9_000.0
    assert got[("position_count", "DU1")] == 2.0
    assert got[("open_order_count", "DU1")] == 2.0
    assert got[("fills_per_minute", "DU1")] == 2.0
    assert got[("orders_per_minute", "DU1")] == 1.0
    assert got[("orders_per_minute", "DU2")] == 2.0
    assert got[("position_count-all", None)] == 3.0
    assert got[("largest_position_value-all", None)] == 9_000.0  # the largest single one, not a sum


def test_a_position_without_market_value_makes_the_largest_position_unknown() -> None:
    pos = Position(account="DU1", contract=_contract(1), quantity=10, market_value=None)
    s = snap(T0, {"DU1": {"daily_pnl": 0.0}}, positions=(pos,), positions_as_of=T0)
    m = RuleMemory()
    evaluate([rule("largest_position_value > 1000")], s, T0, m)
    assert m.status()[0].state == "unknown"


def test_stale_position_lists_are_unknown() -> None:
    s = snap(T0, {"DU1": {"daily_pnl": 0.0}}, positions=(), positions_as_of=T0 - 100)
    m = RuleMemory()
    evaluate([rule("position_count > 5", stale_after="30s")], s, T0, m)
    assert m.status()[0].state == "unknown"
    assert "stale" in m.status()[0].why


def test_daily_pnl_pct_is_relative_to_previous_day_equity() -> None:
    r = rule({"metric": "daily_pnl_pct", "op": "<=", "value": "-3%"})
    s = snap(T0, {"DU1": {"daily_pnl": -3_100.0, "previous_day_equity": 100_000.0}})
    out = evaluate([r], s, T0, RuleMemory())
    assert kinds(out) == [("breach", "DU1")]
    assert out[0].value == pytest.approx(-0.031)
    assert out[0].threshold == pytest.approx(-0.03)


def test_heartbeat_and_data_age_come_from_their_timestamps() -> None:
    gw = GatewayStatus(health=Health.HEALTHY, connected=True, last_heartbeat=T0 - 1, heartbeat_rtt=2.5)
    s = snap(T0, {"DU1": {"daily_pnl": 0.0, "net_liquidation": 1.0}}, values_at=T0 - 90, gateway=gw)
    rules = [rule("heartbeat_rtt > 2s", name="rtt"), rule("data_age > 60s", name="age")]
    out = evaluate(rules, s, T0, RuleMemory())
    assert [(b.rule, b.value) for b in out] == [("rtt", 2.5), ("age", 90.0)]


def test_a_gateway_that_never_connected_is_not_read_as_up() -> None:
    gw = GatewayStatus(health=Health.CONNECTING, connected=False)
    m = RuleMemory()
    evaluate([rule("gateway_down_seconds > 30s")], snap(T0, {}, gateway=gw), T0, m)
    assert m.status()[0].state == "unknown"


def test_a_value_past_the_limit_waiting_for_its_for_time_warns_once_then_breaches() -> None:
    r = rule("daily_pnl <= -2500", warn_at="80%", action="close_all", **{"for": "2s"})
    m = RuleMemory()
    (warning,) = evaluate([r], pnl(T0, DU1=-2700), T0, m)
    assert warning.kind is BreachKind.WARNING
    assert (
        "past the limit, close_all if it holds: daily_pnl of DU1 = −2,700 USD (limit ≤ −2,500 USD)"
        in warning.message
    )
    assert evaluate([r], pnl(T0 + 1, DU1=-2700), T0 + 1, m) == []
    (breach,) = evaluate([r], pnl(T0 + 2, DU1=-2700), T0 + 2, m)
    assert (breach.kind, breach.since) == (BreachKind.BREACH, T0)


def test_day_highs_survive_a_restart_through_export_and_import() -> None:
    from watchdog.rules.evaluate import RuleMemory

    now = 1_790_000_000.0  # 2026-09-21, a weekday
    before = RuleMemory()
    before.observe_high("DU1", "net_liquidation", 1_050_000.0, now)
    before.observe_high(None, "net_liquidation", 2_000_000.0, now)
    records = before.export_highs()

    after = RuleMemory()
    assert after.import_highs([*records, {"garbage": True}, "x"], now + 60) == 2
    assert after.day_high("DU1", "net_liquidation") == 1_050_000.0
    assert after.day_high(None, "net_liquidation") == 2_000_000.0
    # a high from yesterday does not carry over into a new trading day
    tomorrow = RuleMemory()
    assert tomorrow.import_highs(records, now + 86_400) == 0
    assert tomorrow.day_high("DU1", "net_liquidation") is None
