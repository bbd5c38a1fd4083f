"""Fixtures for tests that run the real `python -m watchdog run` process against an in-process simulator.

The simulator runs in the test's event loop; the daemon is a child process that reaches it over
loopback TCP. `READY=1` on a datagram socket bound by the test (`NOTIFY_SOCKET`) is the sync point
for "the daemon has its first good snapshot". Waiting on the child's files (status.json, audit.jsonl)
polls with short sleeps under a deadline: it is another process, there is nothing to await.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import order_messages
from tests.daemon.conftest import DEFAULT_RULES, until
from tests.daemon.conftest import write_config as _write_config
from watchdog.sim import Simulator
from watchdog.state.audit import AuditRecord, read_audit

__all__ = ["DEFAULT_RULES", "until", "write_config"]

# ib_async throttles itself to 45 requests/s: in the second after a connect (~30 start-up requests)
# a kill's burst queues the heartbeat behind it for up to a second. A 300 ms timeout would then
# call a busy but healthy gateway half-open (see the report); process tests use a realistic margin.
PROCESS_HEARTBEAT = (
    "{interval: 200ms, timeout: 1s, misses: 2, reconnect_initial: 100ms, reconnect_max: 500ms}"
)

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT = 20.0  # READY=1 after start; the process needs ~1 s, CI boxes are slow
STOP_TIMEOUT = 15.0  # SHUTDOWN_GRACE (10 s) plus a margin
WATCHED = ("DU111111", "DU222222")
# TWS API outgoing message ids (client → gateway) that act on orders
PLACE_ORDER, CANCEL_ORDER, GLOBAL_CANCEL = 3, 4, 58


def write_config(tmp_path: Path, port: int, rules: str = DEFAULT_RULES, extra: str = "", **kw: Any) -> Path:
    """`tests.daemon.conftest.write_config` with the process tests' heartbeat margin."""
    kw.setdefault("heartbeat", PROCESS_HEARTBEAT)
    return _write_config(tmp_path, port, rules, extra, **kw)


def free_port() -> int:
    """A port nothing listens on right now (bound to 0, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---------------------------------------------------------------------------- sd_notify
class NotifySocket:
    """The systemd side of sd_notify: an AF_UNIX datagram socket; every message kept with its time."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.setblocking(False)
        self.messages: list[tuple[float, dict[str, str]]] = []
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            data = await loop.sock_recv(self.sock, 65536)
            fields: dict[str, str] = {}
            for line in data.decode().splitlines():
                key, _, value = line.partition("=")
                fields[key] = value
            self.messages.append((time.monotonic(), fields))
            self._changed.set()

    def values(self, key: str) -> list[str]:
        return [m[key] for _, m in self.messages if key in m]

    def count(self, key: str, value: str | None = None) -> int:
        return sum(1 for v in self.values(key) if value is None or v == value)

    async def wait_for(self, predicate: Callable[[NotifySocket], bool], timeout: float, what: str) -> None:
        """Wait (event-driven: each datagram wakes us) until the predicate holds."""
        try:
            async with asyncio.timeout(timeout):
                while not predicate(self):
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(f"no {what} within {timeout:g}s; got {self.messages}") from None

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self.sock.close()


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A short directory for AF_UNIX paths (108 bytes at most; pytest's tmp_path can be longer)."""
    d = Path(tempfile.mkdtemp(prefix="wd-"))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
async def notify(tmp_path: Path, short_dir: Path) -> AsyncIterator[NotifySocket]:
    path = tmp_path / "notify.sock"
    if len(str(path)) > 100:
        path = short_dir / "notify.sock"
    ns = NotifySocket(str(path))
    ns.start()
    try:
        yield ns
    finally:
        await ns.close()


def order_frames(sim: Simulator, client_id: int = 99) -> list[int]:
    """Order-acting message ids (placeOrder, cancelOrder, reqGlobalCancel) the client sent; the
    write-access probe's cancel of a never-used id is not counted (tests/conftest.order_messages)."""
    return order_messages(sim, client_id)


def watched_positions(sim: Simulator) -> dict[tuple[str, int], float]:
    """(account, conId) → quantity of every non-zero position of the watched accounts."""
    return {(p.account, p.con_id): p.quantity for p in sim.positions() if p.account in WATCHED and p.quantity}


def watched_orders(sim: Simulator) -> list[Any]:
    return [o for o in sim.open_orders() if o.account in WATCHED]


def assert_flat_without_crossing_zero(sim: Simulator, start: dict[tuple[str, int], float]) -> None:
    """Every execution replayed in time order moves its position towards zero, never past it, and the
    executions per contract sum to exactly minus the starting position (flat, not over-closed)."""
    qty = dict(start)
    executed: dict[tuple[str, int], float] = {}
    for ex in sorted(sim.executions(), key=lambda e: (e.time, e.exec_id)):
        key = (ex.account, ex.inst.con_id)
        before = qty.get(key, 0.0)
        after = before + (ex.shares if ex.side == "BOT" else -ex.shares)
        assert before != 0, f"{key}: an execution on a flat position: {ex}"
        assert abs(after) <= abs(before) and after * before >= 0, f"{key}: {before} → {after} crosses zero"
        qty[key] = after
        executed[key] = executed.get(key, 0.0) + after - before
    for key, q in start.items():
        assert executed.get(key, 0.0) == pytest.approx(-q), f"{key}: executions {executed.get(key)} for {q}"
    assert watched_positions(sim) == {}, f"not flat: {watched_positions(sim)}"


# ---------------------------------------------------------------------------- the daemon process
@dataclass
class DaemonProcess:
    """A running `python -m watchdog run`; stderr is drained all along (a full pipe would block it)."""

    config: Path
    proc: asyncio.subprocess.Process
    err: bytearray = field(default_factory=bytearray)
    _drain: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def stderr(self) -> str:
        return self.err.decode(errors="replace")

    @property
    def state_dir(self) -> Path:
        return self.config.parent / "state"

    async def _read(self) -> None:
        assert self.proc.stderr is not None
        while chunk := await self.proc.stderr.read(65536):
            self.err += chunk

    def send(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    async def wait(self, timeout: float = STOP_TIMEOUT) -> int:
        try:
            rc = await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            raise AssertionError(f"daemon still running after {timeout:g}s:\n{self.stderr}") from None
        if self._drain is not None:
            await asyncio.wait_for(self._drain, 5)
        return rc

    async def stop(self, sig: signal.Signals = signal.SIGTERM) -> int:
        self.send(sig)
        return await self.wait()

    async def ensure_dead(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
        await asyncio.wait_for(self.proc.wait(), 10)
        if self._drain is not None:
            await asyncio.wait_for(asyncio.gather(self._drain, return_exceptions=True), 5)
        self._drain = None

    # --- the daemon's files, as an operator would read them
    def audit(self) -> list[AuditRecord]:
        return read_audit(self.state_dir / "audit.jsonl")

    def events(self, name: str) -> list[AuditRecord]:
        return [r for r in self.audit() if r.event == name]

    def status_file(self) -> dict[str, Any]:
        try:
            data = json.loads((self.state_dir / "status.json").read_text())
        except (FileNotFoundError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def latch(self) -> dict[str, Any]:
        try:
            data = json.loads((self.state_dir / "latch.json").read_text())
        except (FileNotFoundError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    async def next_status(self, timeout: float = 10.0, cycles: int = 1) -> dict[str, Any]:
        """Wait until status.json has been rewritten `cycles` times after now (one per evaluation)."""
        for _ in range(cycles):
            await self._status_changes(timeout)
        return self.status_file()

    async def _status_changes(self, timeout: float) -> None:
        before = self.status_file().get("updated")
        await until(lambda: self.status_file().get("updated") != before, timeout, "a new status.json")


Launcher = Callable[..., Any]


def _env(notify: NotifySocket | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")}
    env["PYTHONUNBUFFERED"] = "1"
    if notify is not None:
        env["NOTIFY_SOCKET"] = notify.path
    return env


@pytest.fixture
async def launch() -> AsyncIterator[Launcher]:
    """`await launch(config, notify=..., args=...)` starts a daemon; every one is killed at the end."""
    started: list[DaemonProcess] = []

    async def start(
        config: Path,
        *,
        notify: NotifySocket | None = None,
        args: tuple[str, ...] = (),
        preexec_fn: Callable[[], None] | None = None,
    ) -> DaemonProcess:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "watchdog", "run", "--config", str(config), *args,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE, env=_env(notify), cwd=REPO, preexec_fn=preexec_fn,
        )  # fmt: skip
        d = DaemonProcess(config, proc)
        d._drain = asyncio.ensure_future(d._read())
        started.append(d)
        return d

    try:
        yield start
    finally:
        for d in started:
            await d.ensure_dead()


async def start_ready(
    launch: Launcher, config: Path, notify: NotifySocket, timeout: float = START_TIMEOUT
) -> DaemonProcess:
    """Start a daemon and wait for READY=1 (its first good snapshot); fail with its stderr if it dies."""
    seen = notify.count("READY", "1")
    d: DaemonProcess = await launch(config, notify=notify)
    waiter = asyncio.ensure_future(
        notify.wait_for(lambda n: n.count("READY", "1") > seen, timeout, "READY=1")
    )
    exited = asyncio.ensure_future(d.proc.wait())
    try:
        await asyncio.wait({waiter, exited}, timeout=timeout + 1, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in (waiter, exited):
            t.cancel()
        results = await asyncio.gather(waiter, exited, return_exceptions=True)
    if not waiter.done() or waiter.cancelled() or isinstance(results[0], BaseException):
        await d.ensure_dead()
        raise AssertionError(f"daemon not READY (exit {d.proc.returncode}):\n{d.stderr}")
    return d


async def cli(*args: str, timeout: float = 30.0) -> tuple[int, str, str]:
    """Run `python -m watchdog ARGS` (the operator's CLI) to completion: (exit code, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "watchdog", *args,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env=_env(None), cwd=REPO,
    )  # fmt: skip
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError(f"`ibkr-watchdog {' '.join(args)}` still running after {timeout:g}s") from None
    return proc.returncode or 0, out.decode(), err.decode()


async def status_json(config: Path) -> dict[str, Any]:
    rc, out, err = await cli("status", "--json", "--config", str(config))
    assert rc in (0, 1, 3), err  # armed, tripped or pending, not running (see watchdog.commands.status)
    data = json.loads(out)
    assert isinstance(data, dict)
    return data


def metric(text: str, name: str, labels: dict[str, str] | None = None) -> float | None:
    """One sample's value from a /metrics text, None when absent."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == (labels or {}):
                return float(sample.value)
    return None


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
        return str(r.read().decode())


async def scrape_until(port: int, predicate: Callable[[str], bool], timeout: float, what: str) -> str:
    """Scrape the daemon's /metrics (another process) until the predicate holds."""
    last = ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            last = await asyncio.wait_for(asyncio.to_thread(scrape, port), 5)
            if predicate(last):
                return last
        await asyncio.sleep(0.1)
    raise AssertionError(f"{what} not seen within {timeout:g}s; last scrape:\n{last}")
