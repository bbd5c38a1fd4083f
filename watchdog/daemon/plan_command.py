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
from pathlib import Path
from typing import Any

from watchdog.config.schema import Config, GatewayConfig
from watchdog.daemon.readiness_job import gather_inputs, plan_from_inputs
from watchdog.errors import ConfigError, GatewayError, SafetyValveError, StateError
from watchdog.gateway.client import Gateway
from watchdog.kill.readiness import MarketSessions, readiness_json
from watchdog.outputs.readiness_table import render_plan
from watchdog.readiness_model import Readiness
from watchdog.state.store import StateStore

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_NO_GATEWAY = 0, 1, 2, 3
QUOTES_WAIT = 2.0  # seconds a one-off look waits for the P&L values that price positions
OLD_PLAN = 600.0  # seconds: an older plan says so (is the daemon still running?)


def plan_command(
    config_path: str,
    *,
    state_dir: str | None = None,
    as_json: bool = False,
    gateway: str | None = None,
    client_id: int | None = None,
) -> int:
    if gateway is not None:
        return _look_command(config_path, gateway, client_id, as_json=as_json)
    try:
        directory = Path(state_dir) if state_dir else Path(_load(config_path).state_dir)
    except (ConfigError, OSError) as exc:
        print(
            exc if isinstance(exc, ConfigError) else f"{config_path}: {exc.strerror or exc}", file=sys.stderr
        )
        return EXIT_USAGE
    try:
        plan = StateStore(directory, time.time).read_readiness()
    except StateError as exc:
        print(f"ibkr-watchdog plan: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    if plan is None:
        print(
            f"ibkr-watchdog plan: no readiness plan in {directory} yet: the daemon writes one every "
            "kill.readiness_interval (is it running?); or look once with --gateway HOST:PORT --client-id N",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    _print(plan, as_json)
    at = plan.get("planned_at")
    if isinstance(at, int | float) and time.time() - at > OLD_PLAN and not as_json:
        print(f"note: this plan is {time.time() - at:.0f}s old: is the daemon running?", file=sys.stderr)
    return EXIT_OK


def _load(config_path: str) -> Config:
    from watchdog.config.load import load_config

    return load_config(config_path)


def _print(plan: dict[str, Any], as_json: bool) -> None:
    sys.stdout.write(json.dumps(plan, indent=2, sort_keys=True) + "\n" if as_json else render_plan(plan))


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
    except (GatewayError, SafetyValveError, OSError) as exc:
        print(f"ibkr-watchdog plan: gateway {endpoint}: {exc}", file=sys.stderr)
        return EXIT_NO_GATEWAY
    _print(readiness_json(readiness), as_json)
    return EXIT_OK


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
