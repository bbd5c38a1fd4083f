"""`ibkr-watchdog plan`: what a kill would send now and what would not close, sending nothing.

From the running daemon's last readiness plan (`readiness.json` in the state dir; no gateway
connection of its own), or with `--gateway HOST:PORT --client-id N` from a one-off look at a gateway:
ib_async connects with `readonly=True`, the gateway object refuses every order message, and only
reads go out (positions, open orders, contract details, P&L values).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from watchdog.commands.locate import locate
from watchdog.commands.status import status_data
from watchdog.config.schema import Config, GatewayConfig
from watchdog.daemon.kill_status import running_kill
from watchdog.daemon.readiness_job import gather_inputs, plan_from_inputs
from watchdog.errors import ClientIdInUse, ConfigError, GatewayError, SafetyValveError, StateError
from watchdog.gateway.client import Gateway
from watchdog.kill.readiness import MarketSessions, readiness_json
from watchdog.outputs.readiness_file import Currency, judge_currency, parse_plan
from watchdog.outputs.readiness_table import render_plan, write_proven
from watchdog.readiness_model import Readiness
from watchdog.state.store import READINESS_FILE, StateStore

# exit codes (README, "What a kill would do right now"): 0 = ready and current; 1 = no plan or a
# damaged one; 2 = usage; 3 = gateway unreachable (--gateway); 4 = not ready (the plan is current);
# 5 = stale (daemon not running, plan older than its interval allows, or paused while a kill runs)
EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_NO_GATEWAY, EXIT_NOT_READY, EXIT_STALE = 0, 1, 2, 3, 4, 5
QUOTES_WAIT = 2.0  # seconds a one-off look waits for the P&L values that price positions


def plan_command(
    config_path: str,
    *,
    state_dir: str | None = None,
    as_json: bool = False,
    gateway: str | None = None,
    client_id: int | None = None,
    clock: Callable[[], float] = time.time,
) -> int:
    """Print the plan; returns the exit code (EXIT_*: 0 ready and current, 4 not ready, 5 stale)."""
    if gateway is not None:
        return _look_command(config_path, gateway, client_id, as_json=as_json)
    # like status/kill/reset: a broken rules.yaml still names its state dir (with a warning)
    found = locate(config_path, state_dir)
    found.print_warnings("plan")
    directory = found.state_dir
    if directory is None or not directory.is_dir():
        where = directory or "no state dir"
        print(f"ibkr-watchdog plan: state dir {where} does not exist; pass --state-dir", file=sys.stderr)
        return EXIT_USAGE
    try:
        raw = StateStore(directory, clock).read_readiness_bytes()
    except StateError as exc:
        print(f"ibkr-watchdog plan: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    if raw is None:
        print(
            f"ibkr-watchdog plan: no readiness plan in {directory} yet: the daemon writes one every "
            "kill.readiness_interval (is it running?); or look once with --gateway HOST:PORT --client-id N",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    try:
        plan = parse_plan(raw)
    except ValueError as exc:
        print(f"ibkr-watchdog plan: {directory / READINESS_FILE} is damaged: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    # whether the daemon runs and a kill has readiness paused: as `ibkr-watchdog status` sees it
    status = status_data(directory, clock)
    currency = judge_currency(
        plan,
        now=clock(),
        daemon_running=status["daemon_pid"] is not None,
        kill_running=running_kill(status) is not None,
        overtaken=overtaken(plan, status),
    )
    return _print(plan, as_json, currency)


def overtaken(plan: dict[str, Any], status: dict[str, Any]) -> str | None:
    """Why the book may no longer be the one planned, as `status` sees it: a kill pending (the gateway
    does not answer), the gateway down now, or a kill that ended after the plan was made (the
    positions it closed are still in the plan until the next round); None when nothing says so."""
    if status.get("pending_kill") is not None:
        return "a kill is pending (the gateway does not answer): planned before it"
    if status.get("gateway_down_seconds") is not None and not status.get("silent"):
        return "the gateway is down now: planned before"
    last = status.get("last_kill")
    finished = last.get("finished") if isinstance(last, dict) else None
    if isinstance(finished, int | float) and finished > float(plan["planned_at"]):
        return "planned before the last kill ended: the book has changed since"
    return None


def _load(config_path: str) -> Config:
    from watchdog.config.load import load_config

    return load_config(config_path)


def _print(plan: dict[str, Any], as_json: bool, currency: Currency) -> int:
    """Print the plan; the exit code a script acts on: 0 ready and current, 4 not ready (or ready
    only if writable: write access not proven), 5 stale."""
    if as_json:
        sys.stdout.write(json.dumps(plan | {"currency": currency.as_json()}, indent=2, sort_keys=True) + "\n")
    else:
        sys.stdout.write(render_plan(plan, stale=currency.stale))
    if currency.stale is not None:
        return EXIT_STALE
    return EXIT_OK if plan["ready"] and write_proven(plan) else EXIT_NOT_READY


def _look_command(config_path: str, endpoint: str, client_id: int | None, *, as_json: bool) -> int:
    host, _, port_text = endpoint.rpartition(":")
    if not host or not port_text.isdigit() or client_id is None:
        print("ibkr-watchdog plan: --gateway wants HOST:PORT and --client-id N", file=sys.stderr)
        return EXIT_USAGE
    try:
        base = _load(config_path) if Path(config_path).exists() else None
        gw = GatewayConfig(
            host=host,
            port=int(port_text),
            client_id=client_id,
            paper=True,  # not checked: a read-only look acts on nothing (see GatewayConnection.read_only)
            accounts=base.gateway.accounts if base else (),
        )
        config = base.model_copy(update={"gateway": gw}) if base else Config(gateway=gw)
    except (ConfigError, ValueError) as exc:
        print(f"ibkr-watchdog plan: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        readiness = asyncio.run(look_at_gateway(config))
    except ClientIdInUse as exc:  # its own text advises gateway.client_id: the daemon's, not this look's
        print(
            f"ibkr-watchdog plan: gateway {endpoint}: client id {exc.client_id} is already in use "
            "(error 326): pass a free one with --client-id",
            file=sys.stderr,
        )
        return EXIT_NO_GATEWAY
    except (GatewayError, SafetyValveError, OSError) as exc:
        print(f"ibkr-watchdog plan: gateway {endpoint}: {exc}", file=sys.stderr)
        return EXIT_NO_GATEWAY
    plan = readiness_json(readiness)
    current = judge_currency(plan, now=time.time(), daemon_running=False, kill_running=False)
    return _print(plan, as_json, current)


async def look_at_gateway(config: Config) -> Readiness:
    """Connect read-only, read the book once, plan a close_all, disconnect. Sends no order message
    (write access cannot be proven: its probe is a cancel, so it stays "not proven")."""
    gateway = Gateway(config.gateway, config.heartbeat, config.polling)
    gateway.read_only = True
    try:
        await gateway.connect()
        positions = await gateway.poll_positions(fresh=True)
        await gateway.poll_orders()
        # accounts without the portfolio stream are priced by reqPnLSingle values: give them a moment
        deadline = time.monotonic() + QUOTES_WAIT
        while any(gateway.quotes.mark(p.key) is None for p in positions) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            positions = await gateway.poll_positions()
        sessions = MarketSessions(lambda: gateway.market_hours)
        inputs = await gather_inputs(gateway, config, sessions, time.time())
        readiness = plan_from_inputs(inputs, config, sessions, source="gateway")
        assert readiness is not None  # nothing asks it to give way
        return readiness
    finally:
        await gateway.close()
