"""Bench plumbing shared by every benchmark: config files, in-process daemons, statistics, markdown."""

from __future__ import annotations

import asyncio
import logging
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from prometheus_client import CollectorRegistry

from watchdog.config.load import load_config
from watchdog.daemon.lifecycle import Daemon
from watchdog.daemon.wiring import build_components
from watchdog.outputs.systemd_notify import SdNotifier
from watchdog.sim import Instrument

ACCOUNT = "DU111111"
BENCH_LOGGERS = ("watchdog", "ib_async", "apscheduler", "apprise")


def ms(seconds: float) -> str:
    """A duration in the config's own syntax (a unit is required)."""
    return f"{round(seconds * 1000)}ms"


@dataclass(frozen=True, slots=True)
class ConfigSpec:
    """The knobs a benchmark turns; everything else keeps the documented defaults."""

    port: int
    state_dir: Path
    rules: str = "[]"  # "[]" or a YAML block starting with a newline
    accounts: tuple[str, ...] = (ACCOUNT,)
    client_id: int = 99
    heartbeat: float = 1.0
    heartbeat_timeout: float = 1.5
    misses: int = 1
    reconnect_initial: float = 0.1
    reconnect_max: float = 0.5
    connect_timeout: float = 5.0
    polling: dict[str, float] = field(default_factory=dict)
    metrics_port: int | None = None  # None: /metrics off
    kill: str = "verify_timeout: 5s"  # lines of the kill section, in YAML
    notify_urls: tuple[str, ...] = ()
    burst_max: int = 5
    log_level: str = "INFO"


def config_text(spec: ConfigSpec) -> str:
    polling = {"pnl": 1.0, "account_summary": 5.0, "positions": 2.0, "orders": 2.0, "executions": 5.0}
    polling.update(spec.polling)
    poll_lines = "\n".join(f"  {k}: {ms(v)}" for k, v in polling.items() if k != "timeout")
    targets = "".join(f"\n    - url: {u}" for u in spec.notify_urls) or " []"
    metrics = (
        f"  enabled: true\n  host: 127.0.0.1\n  port: {spec.metrics_port}"
        if spec.metrics_port is not None
        else "  enabled: false"
    )
    kill_lines = "\n".join(f"  {ln.strip()}" for ln in spec.kill.strip().splitlines())
    return f"""
gateway:
  host: 127.0.0.1
  port: {spec.port}
  client_id: {spec.client_id}
  paper: true
  accounts: [{", ".join(spec.accounts)}]
  connect_timeout: {ms(spec.connect_timeout)}
heartbeat:
  interval: {ms(spec.heartbeat)}
  timeout: {ms(spec.heartbeat_timeout)}
  misses: {spec.misses}
  reconnect_initial: {ms(spec.reconnect_initial)}
  reconnect_max: {ms(spec.reconnect_max)}
polling:
{poll_lines}
  timeout: {ms(spec.polling.get("timeout", 5.0))}
metrics:
{metrics}
state_dir: {spec.state_dir}
notifications:
  targets:{targets}
  timeout: 2s
  burst_max: {spec.burst_max}
kill:
{kill_lines}
logging:
  level: {spec.log_level}
rules: {spec.rules}
"""


def write_config(path: Path, spec: ConfigSpec) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(config_text(spec))
    path.chmod(0o600)  # it may hold a notification URL
    return path


async def start_daemon(
    path: Path,
    *,
    schedule: bool = True,
    regular_hours: bool = True,
    timeout: float = 60.0,
) -> Daemon:
    """An in-process daemon on its own registry; `regular_hours` pins the market clock open (MKT closes)."""
    config = load_config(path)
    components = build_components(config, registry=CollectorRegistry(), sd=SdNotifier(None))
    if regular_hours:
        components.gateway.market_hours = lambda _sec_type, _now: True
    daemon = Daemon(config, str(path), components)
    await asyncio.wait_for(daemon.start(require_gateway=True, schedule=schedule), timeout)
    return daemon


async def wait_for(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.005) -> None:
    """Poll a condition under an overall timeout (the daemon and simulator run on this loop)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up after {timeout:g}s waiting for {what}")
        await asyncio.sleep(interval)


def stock_universe(n: int, first_con_id: int = 910_000) -> list[Instrument]:
    """N extra stocks (the built-in universe has only a handful of contracts)."""
    return [
        Instrument(
            first_con_id + i,
            f"BX{i:04d}",
            "STK",
            "SMART",
            primary_exchange="NASDAQ",
            local_symbol=f"BX{i:04d}",
            trading_class="NMS",
            long_name=f"BENCH STOCK {i}",
            price=50.0 + (i % 50),
        )
        for i in range(n)
    ]


# ---------------------------------------------------------------------- statistics
def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100), as numpy's default."""
    if not values:
        return math.nan
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


def fmt_s(seconds: float) -> str:
    return "n/a" if math.isnan(seconds) else f"{seconds:.2f} s"


def fmt_ms(seconds: float) -> str:
    return "n/a" if math.isnan(seconds) else f"{seconds * 1000:.2f} ms"


def verdict(ok: bool) -> str:
    return "met" if ok else "**MISSED**"


# ---------------------------------------------------------------------- output
@dataclass(slots=True)
class Section:
    """One benchmark's result: a title, how it was measured, a table, and plain-word findings."""

    title: str
    method: str
    headers: list[str]
    rows: list[list[str]]
    notes: list[str] = field(default_factory=list)

    def markdown(self) -> str:
        out = [f"## {self.title}", "", self.method.strip(), "", table(self.headers, self.rows)]
        if self.notes:
            out += ["", *[f"- {n}" for n in self.notes]]
        return "\n".join(out) + "\n"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def machine() -> list[tuple[str, str]]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return [
        ("CPU", cpu),
        ("cores", str(os.cpu_count())),
        ("memory", mem or "unknown"),
        ("kernel", f"{platform.system()} {platform.release()}"),
        ("Python", sys.version.split()[0]),
        ("ib_async", metadata.version("ib_async")),
        ("date (UTC)", time.strftime("%Y-%m-%d %H:%M", time.gmtime())),
    ]


def quiet_logs(log_file: Path) -> logging.Handler:
    """Send the daemon's log lines to a file, as journald would take them, instead of the console."""
    handler = logging.FileHandler(log_file)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    for name in BENCH_LOGGERS:
        lg = logging.getLogger(name)
        lg.addHandler(handler)
        lg.setLevel(logging.INFO)
        lg.propagate = False
    return handler


def restore_logs(handler: logging.Handler) -> None:
    for name in BENCH_LOGGERS:
        lg = logging.getLogger(name)
        lg.removeHandler(handler)
        lg.propagate = True
        lg.setLevel(logging.NOTSET)
    handler.close()
