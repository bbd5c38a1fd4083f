"""Fault matrix, operations rows: notification targets, metrics port, state directory, audit file, reload.

Tests run as root here, and root ignores file permissions, so "read-only" is made with `chattr +i`
(immutable: not even root may create a file in the directory) and "disk full" with a 256 KiB tmpfs
filled to the last byte. Where those need privileges the test is skipped with the reason shown; the
unprivileged variants (a file where the state directory should be, a damaged audit file) always run.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.bench.capture import CaptureServer
from tests.faults.conftest import DaemonFactory, Row, until
from watchdog.errors import StateError
from watchdog.model import Action, KillOutcome
from watchdog.sim import Simulator

pytestmark = [pytest.mark.fault, pytest.mark.integration]


def flat(sim: Simulator) -> bool:
    return not any(p.quantity for p in sim.positions()) and not sim.open_orders()


@pytest.fixture
def capture() -> Iterator[CaptureServer]:
    with CaptureServer() as cap:
        yield cap


@pytest.fixture
def refused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def hanging_port() -> Iterator[int]:
    """Listens and never accepts: the kernel completes the handshake, nobody ever answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        yield int(s.getsockname()[1])


async def breach_and_flatten(d_sim: Simulator, account: str = "DU111111") -> None:
    d_sim.set_pnl(account, daily=-2600.0)


async def test_a_dead_and_a_hanging_notification_target_never_delay_the_kill(
    sim: Simulator,
    make_daemon: DaemonFactory,
    row: Row,
    caplog: pytest.LogCaptureFixture,
    refused_port: int,
    hanging_port: int,
) -> None:
    urls = (f"json://127.0.0.1:{refused_port}/down", f"json://127.0.0.1:{hanging_port}/hang")
    d = await make_daemon(notify_urls=urls, burst_max=100)
    sim.set_pnl("DU111111", daily=-2600.0)
    await until(lambda: bool(d.kill_reports), 15, "the rule's kill")
    report = d.kill_reports[0]
    assert report.outcome is KillOutcome.FLAT
    assert report.duration < 3.0  # the notifications' 2 s timeout never sits on the kill path
    row.no_over_close()
    Row.audit(d, ["kill.triggered", "close.order", "kill.finished"])
    failures = "ibkr_watchdog_notification_failures_total"
    await until(lambda: (Row.metric(d, failures, {"severity": "critical"}) or 0) >= 2, 10, "both failures")
    Row.message(caplog, "(json://127.0.0.1:", "failed")


async def test_a_metrics_port_in_use_is_reported_and_the_watchdog_runs_on(
    sim: Simulator, make_daemon: DaemonFactory, row: Row, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        d = await make_daemon(metrics_port=int(taken.getsockname()[1]))
        sim.set_pnl("DU222222", daily=-2600.0)
        await until(lambda: bool(d.kill_reports), 15, "the rule's kill")
    assert d.kill_reports[0].outcome is KillOutcome.FLAT
    row.no_over_close()
    Row.audit(d, ["kill.triggered", "kill.finished"])
    assert Row.metric(d, "ibkr_watchdog_tripped") == 1.0  # the registry lives on, only unserved
    assert d.c.metrics.port is None
    Row.message(caplog, "metrics server not started")


async def test_a_file_where_the_state_directory_should_be_refuses_to_start_with_a_clear_message(
    sim: Simulator, make_daemon: DaemonFactory, tmp_path: Path, row: Row
) -> None:
    blocker = tmp_path / "state-file"
    blocker.write_text("not a directory\n")
    with pytest.raises(StateError, match=r"cannot use state directory .*state-file: (File exists|Not a dir)"):
        await make_daemon(state_dir=blocker, start=False)  # refused while it is built, before any read
    assert 99 not in sim.connected_clients()  # refused before touching the gateway: no half-run watchdog
    row.no_over_close()


def _chattr(path: Path, flag: str) -> bool:
    tool = shutil.which("chattr")
    if tool is None:
        return False
    done = subprocess.run([tool, flag, str(path)], capture_output=True, check=False)
    return done.returncode == 0


async def test_a_state_directory_turning_read_only_never_stops_the_kill(
    sim: Simulator,
    make_daemon: DaemonFactory,
    tmp_path: Path,
    row: Row,
    caplog: pytest.LogCaptureFixture,
    capture: CaptureServer,
) -> None:
    state = tmp_path / "ro-state"
    d = await make_daemon(state_dir=state, notify_urls=(capture.url(),), burst_max=100)
    if not _chattr(state, "+i"):
        pytest.skip("chattr +i not possible here (needs root on ext4/xfs): read-only state dir not testable")
    try:
        sim.set_pnl("DU111111", daily=-2600.0)
        await until(lambda: bool(d.kill_reports), 15, "the rule's kill")
        assert d.kill_reports[0].outcome is KillOutcome.FLAT
        assert flat(sim) or not any(p.quantity for p in sim.positions("DU111111"))
    finally:
        _chattr(state, "-i")
    row.no_over_close()
    # no new file could be made (latch, pending kill): each refusal was reported, none silently lost;
    # the audit file was opened at start and kept open, so the kill's records still landed in it
    assert len(d.c.store.problems) >= 2
    Row.audit(d, ["kill.triggered", "kill.finished"])
    assert d.c.store.trading_state().value == "tripped"  # in memory even though the file was refused
    assert Row.metric(d, "ibkr_watchdog_tripped") == 1.0
    await until(lambda: any("State directory problem" in t for t in capture.titles()), 10, "the alert")
    Row.message(caplog, "cannot write", "latch.json: Operation not permitted")


@pytest.fixture
def tiny_fs(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB tmpfs (root only); unmounted after the test's daemons have stopped."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)], capture_output=True, check=False
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.decode().strip()}): disk-full not testable")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True, check=False)


def fill(directory: Path) -> None:
    fd = os.open(directory / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        with contextlib.suppress(OSError):
            while True:
                os.write(fd, b"\0" * 4096)
    finally:
        os.close(fd)
    probe = directory / "probe"
    with pytest.raises(OSError, match="No space left") as exc:
        probe.write_bytes(b"x" * 8192)
    assert exc.value.errno == errno.ENOSPC


async def test_a_full_state_disk_never_stops_the_kill(
    tiny_fs: Path,
    sim: Simulator,
    make_daemon: DaemonFactory,
    row: Row,
    caplog: pytest.LogCaptureFixture,
    capture: CaptureServer,
) -> None:
    d = await make_daemon(state_dir=tiny_fs / "state", notify_urls=(capture.url(),), burst_max=100)
    fill(tiny_fs)
    sim.set_pnl("DU111111", daily=-2600.0)
    await until(lambda: bool(d.kill_reports), 15, "the rule's kill")
    assert d.kill_reports[0].outcome is KillOutcome.FLAT
    row.no_over_close()
    assert d.c.audit.failures >= 3  # every refused record reported
    assert Row.metric(d, "ibkr_watchdog_tripped") == 1.0
    await until(lambda: any("State directory problem" in t for t in capture.titles()), 10, "the alert")
    Row.message(caplog, "No space left on device")
    os.unlink(tiny_fs / "filler")


async def test_a_damaged_audit_file_is_reported_and_new_records_still_land(
    sim: Simulator, make_daemon: DaemonFactory, tmp_path: Path, row: Row, caplog: pytest.LogCaptureFixture
) -> None:
    state = tmp_path / "state-audit"
    state.mkdir()
    good = b'{"ts":1.0,"event":"reset","kill_id":null,"details":{}}\n'
    (state / "audit.jsonl").write_bytes(
        good + b"\x00\xffgarbage that is not json\n" + b'{"ts":2.0,"event":"kil'
    )
    d = await make_daemon(state_dir=state)
    sim.set_pnl("DU111111", daily=-2600.0)
    await until(lambda: bool(d.kill_reports), 15, "the rule's kill")
    assert d.kill_reports[0].outcome is KillOutcome.FLAT
    row.no_over_close()
    events = Row.audit(d, ["reset", "kill.triggered", "close.order", "kill.finished"])
    assert events[0] == "reset"  # the old good record survives; the damage is skipped, not spread
    assert Row.metric(d, "ibkr_watchdog_tripped") == 1.0
    Row.message(caplog, "damaged line(s)")


def break_config(path: Path) -> None:
    """A typo and a duplicate key: two errors the strict loader must both refuse."""
    path.write_text(
        path.read_text().replace('when: "daily_pnl <= -2500"', 'when: "daily_pnl <="\n    when: x')
    )


async def test_a_broken_config_on_reload_keeps_the_running_rules(
    sim: Simulator, make_daemon: DaemonFactory, row: Row, caplog: pytest.LogCaptureFixture
) -> None:
    d = await make_daemon()
    assert d.config_path is not None
    break_config(Path(d.config_path))
    assert d.reload() is False
    assert Row.metric(d, "ibkr_watchdog_config_last_reload_successful") == 0.0
    sim.set_pnl("DU111111", daily=-2600.0)  # the rules still running are the good ones
    await until(lambda: bool(d.kill_reports), 15, "the rule's kill")
    assert d.kill_reports[0].outcome is KillOutcome.FLAT
    row.no_over_close()
    events = Row.audit(d, ["reload", "kill.triggered", "kill.finished"])
    assert events.index("reload") < events.index("kill.triggered")
    Row.message(caplog, "reload rejected")
    d.start_kill(Action.CANCEL_ALL, "manual:test", reason="after the reload")  # still fully working
    await until(lambda: not d.kill_in_progress, 15, "the manual kill")
