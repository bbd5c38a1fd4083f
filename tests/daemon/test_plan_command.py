"""`ibkr-watchdog plan`: from the state dir, and a one-off read-only look at a gateway that sends nothing."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import time
from pathlib import Path

import pytest

from tests.gateway.conftest import Harness
from tests.outputs.conftest import refused_port  # noqa: F401  (fixture)
from tests.outputs.test_readiness_outputs import readiness
from watchdog.cli import main as cli
from watchdog.commands.plan import look_at_gateway
from watchdog.config.schema import Config, GatewayConfig
from watchdog.errors import GatewayError
from watchdog.kill.readiness import readiness_json
from watchdog.model import CloseOrderRequest
from watchdog.readiness_model import PlanReason
from watchdog.sim import Simulator
from watchdog.state.store import StateStore

pytestmark = pytest.mark.integration
DU1, DU2 = "DU111111", "DU222222"
LOOK_CLIENT_ID = 42
# placeOrder, cancelOrder, reqGlobalCancel; and the start-up reads ib_async skips with readonly=True:
# reqOpenOrders (5), reqCompletedOrders (99) — their absence proves the read-only connect
ORDER_MESSAGES = {3, 4, 58}
READ_ONLY_SKIPPED = {5, 99}


@pytest.fixture
def sim(bare_sim: Simulator) -> Simulator:
    bare_sim.set_position(DU1, "AAPL", 100, avg_price=180.0)
    bare_sim.set_position(DU2, "ES", -1, avg_price=5100.0)
    bare_sim.place_order_as(
        client_id=7, account=DU1, symbol="AAPL", action="SELL", quantity=5, lmt_price=900.0
    )
    return bare_sim


def look_config(sim: Simulator) -> Config:
    return Config(
        gateway=GatewayConfig(host="127.0.0.1", port=sim.port, client_id=LOOK_CLIENT_ID, paper=True)
    )


async def test_a_one_off_look_plans_the_book_and_sends_no_order_message(sim: Simulator) -> None:
    readiness = await asyncio.wait_for(look_at_gateway(look_config(sim)), 15)

    assert readiness.source == "gateway"
    orders = {(a.account, o.contract.label, o.action, o.quantity, o.exchange) for a in readiness.accounts
              for p in a.positions for o in p.orders}  # fmt: skip
    assert orders == {(DU1, "AAPL", "SELL", 100, "SMART"), (DU2, "ESZ6", "BUY", 1, "CME")}
    assert all(p.quote.price for a in readiness.accounts for p in a.positions)
    received = {f.msg_id for f in sim.received(LOOK_CLIENT_ID)}
    assert received & ORDER_MESSAGES == set()
    assert received & READ_ONLY_SKIPPED == set(), "ib_async did not connect with readonly=True"
    assert LOOK_CLIENT_ID not in sim.connected_clients()  # disconnected again
    assert len(sim.open_orders()) == 1  # the other client's order is untouched


async def test_a_read_only_gateway_refuses_every_order_message_before_it_reaches_the_socket(
    sim: Simulator,
) -> None:
    g = Harness(sim).gateway()
    g.read_only = True
    await asyncio.wait_for(g.connect(), 5)
    try:
        [pos] = [p for p in await g.positions() if p.account == DU1]
        request = CloseOrderRequest(
            account=DU1, contract=pos.contract, action="SELL", quantity=100, order_type="MKT"
        )
        for attempt in (g.global_cancel(), g.cancel_order(1), g.place_close_order(request)):
            with pytest.raises(GatewayError, match="read-only connection"):
                await attempt
    finally:
        await asyncio.wait_for(g.close(), 5)
    assert {f.msg_id for f in sim.received()} & ORDER_MESSAGES == set()
    assert len(sim.open_orders()) == 1


async def test_plan_gateway_prints_the_table_and_json_from_the_command_line(
    sim: Simulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["plan", "--config", str(tmp_path / "none.yaml"), "--gateway", f"127.0.0.1:{sim.port}"]
    argv += ["--client-id", str(LOOK_CLIENT_ID)]
    # the command runs its own event loop: in a thread, beside the simulator's loop
    # 0 ready, 4 not ready: a market closed at the hour the test runs at
    assert await asyncio.wait_for(asyncio.to_thread(cli, argv), 30) in (0, 4)
    text = capsys.readouterr().out
    assert "a read-only look at the gateway; nothing was sent" in text
    # market or limit depends on the hour the test runs at (the real regular-hours table)
    assert "AAPL STK  100  SELL 100 " in text and "ESZ6 FUT  -1   BUY 1 " in text
    # write access cannot be proven without sending: no account is simply "ready"
    assert not re.search(r"^DU\d+: ready ·", text, re.MULTILINE), text
    assert await asyncio.wait_for(asyncio.to_thread(cli, [*argv, "--json"]), 30) in (0, 4)
    data = json.loads(capsys.readouterr().out)
    assert data["version"] == 1 and data["source"] == "gateway"
    assert {a["account"] for a in data["accounts"]} == {DU1, DU2}
    assert set(data["accounts"][0]["problem_counts"]) <= {r.value for r in PlanReason}
    assert {f.msg_id for f in sim.received(LOOK_CLIENT_ID)} & ORDER_MESSAGES == set()


def test_plan_without_a_plan_or_a_gateway_says_how_to_get_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(["plan", "--state-dir", str(tmp_path)]) == 1
    assert "no readiness plan in" in capsys.readouterr().err
    assert cli(["plan", "--gateway", "127.0.0.1:1"]) == 2  # no --client-id
    assert "--client-id" in capsys.readouterr().err


def test_plan_gateway_that_refuses_the_connection_exits_3(
    refused_port: int,  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["plan", "--config", str(tmp_path / "none.yaml"), "--gateway", f"127.0.0.1:{refused_port}"]
    assert cli([*argv, "--client-id", "5"]) == 3
    assert f"gateway 127.0.0.1:{refused_port}" in capsys.readouterr().err


def write_plan(directory: Path, *reasons: PlanReason, age: float = 1.0, proven: bool = True) -> StateStore:
    store = StateStore(directory, time.time)
    store.files.open_dir()
    r = readiness(*reasons, at=time.time() - age)
    if proven:  # the probe proved write access 10 s before the plan
        accounts = [
            dataclasses.replace(a, write_access=True, write_access_as_of=r.planned_at - 10)
            for a in r.accounts
        ]
        r = dataclasses.replace(r, accounts=tuple(accounts))
    data = readiness_json(r, interval=60.0)
    store.write_readiness(json.dumps(data).encode())
    return store


def run_plan(directory: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str]:
    capsys.readouterr()
    code = cli(["plan", "--state-dir", str(directory), *extra])
    return code, capsys.readouterr().out


def test_plan_exit_code_says_ready_not_ready_or_stale_and_a_dead_daemon_is_stale(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = tmp_path / "state"
    store = write_plan(directory)
    code, text = run_plan(directory, capsys)  # no daemon holds the state dir
    assert code == 5
    assert text.startswith("Kill readiness: STALE — daemon not running; the last plan said READY")
    code, text = run_plan(directory, capsys, "--json")
    assert code == 5 and json.loads(text)["currency"]["stale"] == "daemon not running"
    store.write_pid()  # the daemon's lock, as a running daemon holds it
    try:
        code, text = run_plan(directory, capsys)
        assert code == 0 and "DU1: ready · write access proven 11s ago" in text
        write_plan(directory, proven=False)  # no probe answered yet: ready only if the API is writable
        code, text = run_plan(directory, capsys)
        assert code == 4 and text.startswith("Kill readiness: READY IF WRITABLE")
        assert "DU2: ready if writable — write access not proven yet · " in text
        write_plan(directory)
        assert json.loads(run_plan(directory, capsys, "--json")[1])["currency"]["current"] is True
        write_plan(directory, PlanReason.NO_PRICE)
        assert run_plan(directory, capsys)[0] == 4
        store.write_status({"updated": time.time(), "kill": {"kill_id": "k1", "action": "close_all"}})
        code, text = run_plan(directory, capsys)
        assert code == 5 and "STALE — paused while a kill runs" in text
        store.write_status({"updated": time.time(), "kill": None})
        write_plan(directory, age=200)
        code, text = run_plan(directory, capsys)
        assert code == 5 and "STALE — plan 3m20s old (interval 60s)" in text
    finally:
        store.remove_pid()


def test_a_damaged_plan_is_one_line_and_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory = tmp_path / "state"
    store = write_plan(directory)
    store.write_readiness(b'{"version": 1, "accounts": {"DU1": []}}')
    assert cli(["plan", "--state-dir", str(directory)]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert captured.err.startswith(f"ibkr-watchdog plan: {directory}/readiness.json is damaged: ")


async def test_a_client_id_in_use_advises_another_client_id_not_the_daemons_setting(
    sim: Simulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = Harness(sim).gateway()  # holds client id 99
    await asyncio.wait_for(other.connect(), 5)
    try:
        argv = ["plan", "--config", str(tmp_path / "none.yaml"), "--gateway", f"127.0.0.1:{sim.port}"]
        code = await asyncio.wait_for(asyncio.to_thread(cli, [*argv, "--client-id", "99"]), 30)
    finally:
        await asyncio.wait_for(other.close(), 5)
    err = capsys.readouterr().err
    assert code == 3
    assert "client id 99 is already in use (error 326): pass a free one with --client-id" in err
    assert "gateway.client_id" not in err
