"""The drill's inputs: the book from a daemon's book.json, the safe config, and what can never fire."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from tests.daemon.conftest import write_config
from tests.drill.conftest import EXAMPLE
from watchdog.config.load import load_config
from watchdog.daemon.lifecycle import Daemon
from watchdog.daemon.wiring import build_components
from watchdog.drill.book import build_simulator, load_drill_book
from watchdog.drill.book_check import BookError
from watchdog.drill.drive import plan_drive
from watchdog.drill.runner import DrillClock
from watchdog.drill.setup import config_yaml, drill_config
from watchdog.sim import Simulator
from watchdog.state.book import BOOK_FILE

pytestmark = pytest.mark.integration


async def test_the_book_a_running_daemon_left_is_rehearsed_with_the_same_positions_orders_and_equity(
    tmp_path: Path, sim: Simulator
) -> None:
    sim.set_account_value("DU111111", "TotalCashValue", 123_456.0)  # equity unlike the demo book's
    config = load_config(write_config(tmp_path, sim.port))
    daemon = Daemon(config, None, build_components(config, registry=CollectorRegistry()))
    await asyncio.wait_for(daemon.start(require_gateway=True, schedule=False), 10)
    try:
        await asyncio.wait_for(daemon.poll_once(), 10)
    finally:
        await asyncio.wait_for(daemon.stop(), 15)

    book = load_drill_book(config, "state", None)
    assert book.source == "state"
    rehearsed, notes = build_simulator(book, DrillClock(), watchdog_client_id=99)
    assert notes == []
    assert {(p.account, p.con_id, p.quantity) for p in rehearsed.positions()} == {
        (p.account, p.con_id, p.quantity) for p in sim.positions()
    }
    assert sorted(
        (o.client_id, o.account, o.symbol, o.action, o.quantity) for o in rehearsed.open_orders()
    ) == sorted((o.client_id, o.account, o.symbol, o.action, o.quantity) for o in sim.open_orders())
    for account in ("DU111111", "DU222222"):
        assert float(rehearsed.account_values(account)["NetLiquidation"]) == pytest.approx(
            float(sim.account_values(account)["NetLiquidation"]), abs=0.01
        )


def test_a_contract_the_simulator_does_not_know_is_added_from_the_snapshot(tmp_path: Path) -> None:
    nq = {
        "con_id": 551601561,
        "symbol": "NQ",
        "sec_type": "FUT",
        "exchange": "CME",
        "multiplier": 20.0,
        "local_symbol": "NQZ6",
        "last_trade_date": "20261218",
        "min_tick": 0.25,
    }
    (tmp_path / BOOK_FILE).write_text(
        json.dumps(
            {
                "version": 1,
                "snapshot_taken_at": time.time(),
                "accounts": {"DU111111": {"net_liquidation": 500_000.0}, "DU222222": {}},
                "positions": [
                    {
                        "account": "DU111111",
                        "contract": nq,
                        "quantity": -2,
                        "avg_cost": 21000 * 20,
                        "market_price": 21050.0,
                    }
                ],
                "orders": [],
                "left_out": {"positions": 0, "orders": 0},
            }
        )
    )
    config = load_config(write_config(tmp_path, 4002)).model_copy(update={"state_dir": str(tmp_path)})
    book = load_drill_book(config, "state", None)
    rehearsed, _ = build_simulator(book, DrillClock(), watchdog_client_id=99)
    [pos] = rehearsed.positions()
    assert (pos.symbol, pos.quantity, pos.market_price) == ("NQ", -2, 21050.0)
    assert rehearsed.instrument(551601561).multiplier == 20.0
    assert float(rehearsed.account_values("DU111111")["NetLiquidation"]) == pytest.approx(500_000.0)


def test_a_book_without_the_configs_accounts_is_refused(tmp_path: Path) -> None:
    (tmp_path / BOOK_FILE).write_text(
        json.dumps({"version": 1, "accounts": {"DU999999": {}}, "positions": [], "orders": []})
    )
    config = load_config(write_config(tmp_path, 4002)).model_copy(update={"state_dir": str(tmp_path)})
    with pytest.raises(BookError, match="the config watches DU111111, DU222222"):
        load_drill_book(config, "state", None)


def test_the_drill_config_talks_only_to_its_simulator_and_loads_as_a_file(tmp_path: Path) -> None:
    user = load_config(EXAMPLE)
    drilled, notes = drill_config(
        user, port=45678, state_dir=str(tmp_path), notify_url="json://127.0.0.1:1/drill/x", notify=False
    )
    assert (drilled.gateway.host, drilled.gateway.port) == ("127.0.0.1", 45678)
    assert (
        drilled.gateway.client_id == user.gateway.client_id
        and drilled.gateway.accounts == user.gateway.accounts
    )
    assert [t.url.get_secret_value() for t in drilled.notifications.targets] == ["json://127.0.0.1:1/drill/x"]
    assert drilled.kill.max_attempts == user.kill.max_attempts and drilled.kill.verify_timeout == 2.0
    assert any("verify_timeout 10 s → 2 s" in n for n in notes)
    path = tmp_path / "drill.yaml"
    path.write_text(config_yaml(drilled))  # what the restart scenario's real process loads
    again = load_config(path)
    assert again.rules == drilled.rules and again.kill == drilled.kill and again.gateway == drilled.gateway


@pytest.mark.parametrize(
    ("rule", "why"),
    [
        ('{name: r, when: "heartbeat_rtt > 2s", action: alert}', "heartbeat.timeout (1.5s)"),
        (
            '{name: r, when: "drawdown >= 5000000", action: close_all, scope: all}',
            "larger than the whole account",
        ),
        ('{name: r, when: "daily_pnl_pct <= -100%", action: close_all}', "whole account"),
        ('{name: r, when: {any: ["daily_pnl <= -9000000", "drawdown > 9000000"]}, action: close_all}', "; "),
        ('{name: r, when: "daily_pnl < -1000 and daily_pnl > 0", action: close_all}', "exclude each other"),
        (
            '{name: r, when: "drawdown <= -100", action: close_all}',
            "never negative (a sign slip? drawdown >= 100)",
        ),
        ('{name: r, when: "data_age < 0s", action: alert}', "a sign slip? data_age > 0"),
    ],
)
def test_a_threshold_the_book_can_never_reach_is_a_finding(tmp_path: Path, rule: str, why: str) -> None:
    config = load_config(
        write_config(tmp_path, 4002, f"  - {rule}\n", heartbeat="{interval: 1s, timeout: 1.5s}")
    )
    sim = Simulator.from_scenario("default")
    drive = plan_drive(config.rules[0], config, sim, ["DU111111", "DU222222"])
    assert why in drive.cannot_fire
    assert not drive.steps


def test_a_reachable_threshold_is_driven_past_it(tmp_path: Path) -> None:
    config = load_config(
        write_config(tmp_path, 4002, '  - {name: r, when: "daily_pnl <= -2500", action: close_all}\n')
    )
    sim = Simulator.from_scenario("default")
    drive = plan_drive(config.rules[0], config, sim, ["DU111111", "DU222222"])
    assert not drive.cannot_fire and drive.steps
    for _, step in drive.steps:
        step(sim)
    assert sim.pnl("DU111111")[0] == -3000.0  # 20 % past the limit


@pytest.mark.parametrize(("op", "share"), [("<=", 0.85), ("<=", 0.99), ("<=", 1.0), ("<", 0.9)])
def test_a_loss_limit_close_to_the_whole_account_can_still_fire(
    tmp_path: Path, op: str, share: float
) -> None:
    """Judged from the threshold itself: only the 20 % overshoot of the drive passes the account's worth."""
    sim = Simulator.from_scenario("default")
    worths = [float(sim.account_values(a)["NetLiquidation"]) for a in ("DU111111", "DU222222")]
    worth = min(worths)  # `each`: the limit must be reachable in every account
    config = load_config(
        write_config(
            tmp_path,
            4002,
            f'  - {{name: r, when: "daily_pnl {op} -{worth * share:.0f}", action: close_all}}\n',
        )
    )
    drive = plan_drive(config.rules[0], config, sim, ["DU111111", "DU222222"])
    assert not drive.cannot_fire and not drive.findings and drive.steps
    for _, step in drive.steps:
        step(sim)
    assert sim.pnl("DU111111")[0] <= -worth * share  # past the limit, and never more than the account
    assert sim.pnl("DU111111")[0] >= -worths[0]  # DU111111: the account the drive uses


def test_an_each_loss_limit_is_judged_on_every_account(tmp_path: Path) -> None:
    """1,040,000: within DU111111 (1,052,500) but more than DU222222 is worth (1,026,300)."""
    config = load_config(
        write_config(tmp_path, 4002, '  - {name: r, when: "daily_pnl <= -1040000", action: close_all}\n')
    )
    sim = Simulator.from_scenario("default")
    drive = plan_drive(config.rules[0], config, sim, ["DU111111", "DU222222"])
    assert not drive.cannot_fire and drive.steps
    assert drive.findings == [
        "daily_pnl <= -1,040,000 can never fire in DU222222 is worth 1,026,300 net liquidation"
    ]
    assert all("DU111111" in text for text, _ in drive.steps if "P&L" in text and "-1" in text)
    # and the other way round: the drive still goes to an account where it can fire
    swapped = plan_drive(config.rules[0], config, sim, ["DU222222", "DU111111"])
    assert swapped.steps[0][0].startswith("daily P&L of DU111111 set to -1,052,500")


def test_without_a_snapshot_the_demo_book_stands_in_and_says_so(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, 4002)).model_copy(
        update={"state_dir": str(tmp_path / "none")}
    )
    book = load_drill_book(config, "auto", None)
    assert book.source == "demo" and "no daemon snapshot" in book.notes[0]
    with pytest.raises(BookError, match="no book snapshot"):
        load_drill_book(config, "state", None)


def test_a_damaged_snapshot_is_never_replaced_by_the_demo_book(tmp_path: Path) -> None:
    (tmp_path / BOOK_FILE).write_text("[1, 2")
    config = load_config(write_config(tmp_path, 4002)).model_copy(update={"state_dir": str(tmp_path)})
    with pytest.raises(BookError, match="damaged"):
        load_drill_book(config, "auto", None)


def test_a_dry_run_kill_is_rehearsed_for_real_and_reported_as_a_finding(tmp_path: Path) -> None:
    from watchdog.drill.command import config_findings

    user = load_config(write_config(tmp_path, 4002, kill="dry_run: true"))
    drilled, notes = drill_config(
        user, port=1, state_dir=str(tmp_path), notify_url="json://x:1/y", notify=False
    )
    assert drilled.kill.dry_run is False  # the kill the config would run when enabled
    assert any("dry_run true → false" in n for n in notes)
    assert config_findings(user) == ["kill.dry_run is true: in production the kill sends no order at all"]
    assert config_findings(load_config(EXAMPLE)) == []
