"""`ibkr-watchdog run`: load the config, set up logging, run the daemon, map failures to exit codes."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from pathlib import Path

from watchdog.config.schema import Config
from watchdog.daemon.lifecycle import Daemon
from watchdog.daemon.wiring import build_components
from watchdog.errors import ClientIdInUse, ConfigError, GatewayUnavailable, SafetyValveError, StateError

log = logging.getLogger("watchdog.daemon.lifecycle")


async def _main(config: Config, config_path: str, require_gateway: bool) -> int:
    try:
        components = build_components(config, clock=time.time)
    except StateError as exc:  # the state directory cannot be used: one line, no traceback
        log.critical("refusing to start: %s", exc)
        return 2
    daemon = Daemon(config, config_path, components)
    try:
        return await daemon.run(require_gateway=require_gateway)
    except SafetyValveError as exc:
        log.critical("refusing to start: %s", exc)
        return 2
    except (GatewayUnavailable, ClientIdInUse) as exc:
        log.critical("gateway unreachable at start: %s", exc)
        return 3
    except StateError as exc:  # another daemon holds the state dir, or it cannot be written
        log.critical("refusing to start: %s", exc)
        return 2


def run_daemon(config_path: str, *, require_gateway: bool = False) -> int:
    """`ibkr-watchdog run`: load the config, then run until SIGTERM/SIGINT."""
    from watchdog.config.load import load_config
    from watchdog.outputs.logging_setup import configure

    try:
        config = load_config(config_path)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"{config_path}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    configure(config.logging.level, as_json=config.logging.json_format)
    try:
        Path(config.state_dir).mkdir(parents=True, exist_ok=True, mode=0o750)  # never group-writable
    except OSError as exc:
        print(f"state_dir {config.state_dir}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    return asyncio.run(_main(config, config_path, require_gateway))
