"""`ibkr-watchdog run`: load the config, set up logging, run the daemon, map failures to exit codes."""

from __future__ import annotations

import asyncio
import logging
import socket
import sys
import time
from pathlib import Path

from watchdog.config.schema import Config
from watchdog.daemon.control import prepare_requests_dir
from watchdog.daemon.lifecycle import Daemon
from watchdog.daemon.preflight import preflight
from watchdog.daemon.wiring import build_components
from watchdog.errors import ClientIdInUse, ConfigError, GatewayUnavailable, SafetyValveError, StateError

log = logging.getLogger("watchdog.daemon.lifecycle")


def origin(config_path: str) -> str:
    """'host' or 'host/instance' (a templated unit's config is /etc/ibkr-watchdog/NAME.yaml)."""
    host = socket.gethostname().split(".")[0] or "localhost"
    stem = Path(config_path).stem
    return host if stem in ("rules", "") else f"{host}/{stem}"


async def _main(config: Config, config_path: str, require_gateway: bool) -> int:
    try:
        components = build_components(config, clock=time.time, origin=origin(config_path))
        components.load_config = load_masked  # reloads mask what they take from outside too
    except StateError as exc:  # the state directory cannot be used: one line, no traceback
        log.critical("refusing to start: %s", exc)
        return 2
    daemon = Daemon(config, config_path, components)
    try:
        return await daemon.run(require_gateway=require_gateway)
    except SafetyValveError as exc:
        log.critical("refusing to start: %s", exc)
        await _tell_refusal(config, config_path, str(exc))
        return 2
    except (GatewayUnavailable, ClientIdInUse) as exc:
        log.critical("gateway unreachable at start: %s", exc)
        return 3
    except StateError as exc:  # another daemon holds the state dir, or it cannot be written
        log.critical("refusing to start: %s", exc)
        return 2


def load_masked(config_path: str) -> Config:
    """`load_config`, and every value it took from ${VAR}, file: or credential: masked from then on in
    this process's log lines and notifications (a gateway host from ${VAR} is echoed by
    "cannot connect to …" and the gateway-down page). Used at start and by every reload."""
    from watchdog.config.load import load
    from watchdog.outputs.logging_setup import mask_values

    result = load(config_path)
    mask_values(result.outside_values)
    for w in result.warnings:
        log.warning("%s", w)
    return result.config


async def _tell_refusal(config: Config, config_path: str, why: str) -> None:
    """A refusal to start reaches people, not only the journal (the daemon's notifier is stopped by now)."""
    from watchdog.outputs.notifier import Notifier

    notifier = Notifier(config.notifications, origin=origin(config_path))
    await notifier.start()
    notifier.notify_text("critical", "refused to start", f"{why}\nNothing is watched until this is fixed.")
    await notifier.stop(timeout=5.0)


def run_daemon(config_path: str, *, require_gateway: bool = False) -> int:
    """`ibkr-watchdog run`: load the config, then run until SIGTERM/SIGINT."""
    from watchdog.outputs.logging_setup import configure

    try:
        config = load_masked(config_path)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"{config_path}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    configure(config.logging.level, as_json=config.logging.json_format)
    # the same static checks as `check`, before the metrics port is bound or "started" is announced
    checked = preflight(config)
    for w in checked.warnings:
        log.warning("%s", w)
    if checked.errors:
        for e in checked.errors:
            log.critical("refusing to start: %s", e)
        asyncio.run(_tell_refusal(config, config_path, "; ".join(checked.errors)))
        return 2
    try:
        Path(config.state_dir).mkdir(parents=True, exist_ok=True, mode=0o750)  # never group-writable
    except OSError as exc:
        print(f"state_dir {config.state_dir}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    problem = prepare_requests_dir(Path(config.state_dir))
    if problem:
        log.error("%s", problem)
    return asyncio.run(_main(config, config_path, require_gateway))
