"""Scenario files and the `ibkr-watchdog sim` entry point."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from ib_async import IB

from watchdog.sim import Scenario, ScenarioError, Simulator, load_scenario, run_scenario
from watchdog.sim.cli import serve


def test_default_scenario_holds_stock_future_option_and_foreign_orders() -> None:
    spec = load_scenario("default")
    sim = Simulator.from_scenario(spec)
    kinds = {p.sec_type for p in sim.positions("DU111111")}
    assert kinds >= {"STK", "FUT", "OPT"}
    orders = sim.open_orders()
    assert len(orders) >= 2 and 0 in {o.client_id for o in orders}
    assert spec.timeline and all(s.at > 0 for s in spec.timeline)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("acounts: [DU1]", "unknown keys ['acounts']"),
        ("timeline: [{at: 1s, jump: 3}]", "timeline[0]: exactly one action"),
        ("timeline: [{at: soon, session: closed}]", "timeline[0].at: must be a duration"),
        ("timeline: [{at: 1, fault: {explode: {}}}]", "timeline[0].fault: one fault of"),
        ("fill: {delay: 1, speed: 2}", "fill: allowed keys"),
    ],
)
def test_invalid_scenarios_name_the_bad_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ScenarioError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_scenario(path)


async def test_timeline_steps_reach_a_connected_client(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(
        """
name: t
accounts: [DU111111]
positions: [{account: DU111111, symbol: AAPL, quantity: 10, avg_cost: 180}]
timeline:
  - {at: 0.05, set_price: {symbol: AAPL, price: 200}}
  - at: 0.1
    place_order: {client_id: 3, account: DU111111, symbol: ES, action: BUY, quantity: 1, order_type: MKT}
  - {at: 0.15, fault: {inject_error: {code: 2110}}}
  - {at: 0.2, session: closed}
"""
    )
    spec = load_scenario(path)
    assert isinstance(spec, Scenario)
    async with Simulator.running(("DU111111",)) as sim:
        sim.set_position("DU111111", "AAPL", 10, avg_cost=180.0)
        ib = IB()
        codes: list[int] = []
        ib.errorEvent += lambda req_id, code, msg, contract: codes.append(code)
        try:
            await ib.connectAsync(sim.host, sim.port, clientId=1, timeout=2)
            pnl = ib.reqPnL("DU111111")
            await asyncio.wait_for(run_scenario(sim, spec), 2)
            await sim.wait_until(lambda: pnl.unrealizedPnL == 200.0 and 2110 in codes, 2)
            assert {p.symbol for p in sim.positions()} == {"AAPL", "ES"}
            assert sim.session == "closed"
        finally:
            ib.disconnect()


async def test_sim_command_serves_the_default_book_until_stopped(capsys: pytest.CaptureFixture[str]) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(serve("127.0.0.1", 0, None, stop))
    await asyncio.wait_for(_wait_for_output(capsys), 3)
    out = capsys.readouterr().out
    port = int(out.split("listening on 127.0.0.1:")[1].split()[0])
    ib = IB()
    try:
        await ib.connectAsync("127.0.0.1", port, clientId=3, timeout=2)
        assert len(ib.positions()) == 5
    finally:
        ib.disconnect()
    stop.set()
    assert await asyncio.wait_for(task, 3) == 0


async def _wait_for_output(capsys: pytest.CaptureFixture[str]) -> None:
    seen = ""
    while "listening on" not in seen:
        seen += capsys.readouterr().out
        await asyncio.sleep(0.01)
    print(seen, end="")
