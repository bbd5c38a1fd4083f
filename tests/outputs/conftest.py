"""Shared builders for the operations tests: model records, a capturing HTTP endpoint, promtool lookup."""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from watchdog.model import (
    AccountState,
    Action,
    CloseOrderRequest,
    ContractRef,
    GatewayStatus,
    Health,
    KillOutcome,
    KillReport,
    OpenOrder,
    Position,
    Snapshot,
)

REPO = Path(__file__).resolve().parents[2]
AAPL = ContractRef(con_id=265598, symbol="AAPL", sec_type="STK", primary_exchange="NASDAQ")
ES = ContractRef(con_id=495512563, symbol="ES", sec_type="FUT", local_symbol="ESZ6", exchange="CME")


def make_snapshot(
    accounts: tuple[str, ...] = ("DU111", "DU222"), taken_at: float = 1_700_000_000.0
) -> Snapshot:
    states = {
        acc: AccountState(
            account=acc,
            net_liquidation=100_000.0 + i,
            excess_liquidity=50_000.0,
            cushion=0.5,
            maint_margin_req=20_000.0,
            gross_position_value=80_000.0,
            daily_pnl=-800.0,
            unrealized_pnl=-500.0,
            realized_pnl=-300.0 if i == 0 else None,
            as_of={"net_liquidation": taken_at - 1, "daily_pnl": taken_at},
        )
        for i, acc in enumerate(accounts)
    }
    positions = tuple(Position(account=acc, contract=AAPL, quantity=100.0) for acc in accounts)
    orders = (
        OpenOrder(
            order_id=7,
            perm_id=70,
            client_id=1,
            account=accounts[0],
            contract=AAPL,
            action="BUY",
            total_quantity=10,
            remaining=10,
            status="Submitted",
        ),
        OpenOrder(
            order_id=8,
            perm_id=80,
            client_id=0,
            account=accounts[0],
            contract=ES,
            action="SELL",
            total_quantity=1,
            remaining=0,
            status="Filled",
        ),
    )
    gw = GatewayStatus(health=Health.HEALTHY, connected=True, clock_skew=0.2, last_heartbeat=taken_at)
    return Snapshot(taken_at=taken_at, accounts=states, positions=positions, open_orders=orders, gateway=gw)


def make_kill_report(outcome: KillOutcome = KillOutcome.FLAT, trigger: str = "daily_loss") -> KillReport:
    cancelled = (
        OpenOrder(
            order_id=7,
            perm_id=70,
            client_id=1,
            account="DU111",
            contract=AAPL,
            action="BUY",
            total_quantity=10,
            remaining=10,
            order_type="LMT",
            lmt_price=180.5,
            status="Cancelled",
        ),
    )
    closes = (
        CloseOrderRequest(
            account="DU111",
            contract=AAPL,
            action="SELL",
            quantity=100,
            order_type="MKT",
            order_ref="ibkr-watchdog",
        ),
        CloseOrderRequest(
            account="DU111",
            contract=ES,
            action="BUY",
            quantity=2,
            order_type="LMT",
            limit_price=5001.25,
            outside_rth=True,
            exchange="CME",
        ),
    )
    remaining_pos: tuple[Position, ...] = ()
    if outcome is KillOutcome.ESCALATED:
        remaining_pos = (Position(account="DU111", contract=ES, quantity=-2.0),)
    return KillReport(
        kill_id="k-20240101-0001",
        trigger=trigger,
        action=Action.CLOSE_ALL,
        accounts=("DU111",),
        started=1_700_000_000.0,
        finished=1_700_000_002.5,
        outcome=outcome,
        attempts=2 if outcome is KillOutcome.ESCALATED else 1,
        cancelled_orders=cancelled,
        close_orders=closes,
        remaining_positions=remaining_pos,
        reason="daily P&L -1,200 below -1,000",
    )


@dataclass
class Capture:
    """Bodies POSTed to a local endpoint (what apprise's json:// sends), gathered from the server thread."""

    port: int
    bodies: list[dict[str, Any]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def snapshot(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.bodies)


@pytest.fixture
def capture() -> Iterator[Capture]:
    cap = Capture(port=0)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length) or b"{}")
            with cap.lock:
                cap.bodies.append(body)
                cap.paths.append(self.path)
                cap.headers.append(dict(self.headers))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    cap.port = int(server.server_address[1])
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield cap
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=2)


@pytest.fixture
def hanging_port() -> Iterator[int]:
    """A port that accepts connections and never answers (a hung webhook)."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept_forever() -> None:
        listener.settimeout(0.05)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            accepted.append(conn)

    thread = threading.Thread(target=accept_forever, daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        stop.set()
        thread.join(timeout=2)
        for conn in accepted:
            conn.close()
        listener.close()


@pytest.fixture
def refused_port() -> int:
    """A loopback port with nothing listening: connections are refused at once."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def find_promtool() -> str | None:
    """promtool: the private copy deploy/fetch-tools.sh unpacks into .ci/tools, else the one on PATH."""
    tools = REPO / ".ci" / "tools"
    for local in (tools / "commands" / "promtool", tools / "usr" / "bin" / "promtool"):
        if local.is_file() and os.access(local, os.X_OK):
            return str(local)
    return shutil.which("promtool")


def require_promtool() -> str:
    """promtool's path. Missing, it fails the test under `make test` (REQUIRE_DEPLOY_TOOLS, after the
    Makefile fetched it) and in CI; only a bare local pytest run skips."""
    path = find_promtool()
    if path is None:
        if os.environ.get("CI") or os.environ.get("REQUIRE_DEPLOY_TOOLS"):
            pytest.fail(
                "promtool is missing: deploy/fetch-tools.sh fetches it into .ci/tools (make test runs it)"
            )
        pytest.skip("promtool not installed (run deploy/fetch-tools.sh once)")
    return path


@pytest.fixture
def promtool() -> str:
    """promtool's path (see require_promtool)."""
    return require_promtool()
