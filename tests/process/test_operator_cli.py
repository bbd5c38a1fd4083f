"""The operator's CLI in an incident (issue 14): real daemon process, real CLI processes, the simulator.

A manual kill goes out whatever state rules.yaml is in, whoever wrote the request directory, and
whatever happened to the pid file; `status` tells a dead daemon from a live one; `kill --wait`,
`history` and `report` tell what a kill did.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from tests.outputs.conftest import Capture, capture
from tests.process.conftest import (
    GLOBAL_CANCEL,
    Launcher,
    NotifySocket,
    cli,
    free_port,
    order_frames,
    start_ready,
    until,
    watched_positions,
    write_config,
)
from watchdog.sim import Simulator

pytestmark = pytest.mark.integration
__all__ = ["capture"]  # the webhook fixture, shared with the outputs tests


async def test_a_broken_config_on_disk_stops_no_kill_and_the_kill_story_can_be_read_back(
    tmp_path: Path, sim: Simulator, notify: NotifySocket, launch: Launcher
) -> None:
    positions = watched_positions(sim)
    config = write_config(tmp_path, sim.port)
    d = await start_ready(launch, config, notify)
    # a rejected reload leaves a broken file on disk; the daemon runs on with its last good config
    config.write_text(config.read_text().replace("rules:", "rules: [\n", 1))

    rc, out, err = await cli(
        "kill", "--cancel-only", "--wait", "20", "--reason", "desk says stop", "--config", str(config)
    )

    assert rc == 0, out + err
    assert f"{config} is invalid on disk" in err and str(d.state_dir) in err
    assert f"sent SIGUSR2 (cancel_all) to ibkr-watchdog pid {d.pid}" in out
    assert "outcome: flat" in out and "global cancel sent" in out and "desk says stop" in out
    assert GLOBAL_CANCEL in order_frames(sim) and watched_positions(sim) == positions
    kill_id = d.events("kill.triggered")[0].kill_id
    assert kill_id is not None

    rc, out, _ = await cli("history", "--state-dir", str(d.state_dir))
    assert rc == 0 and kill_id in out, out
    # a cancel-only kill leaves the positions: never labelled flat
    assert (
        f"cancel_all by manual:SIGUSR2 → orders cancelled (positions not closed: {len(positions)})" in out
    ), out
    rc, out, _ = await cli("report", kill_id[:6], "--config", str(config))
    assert rc == 0 and f"kill {kill_id}: cancel_all by manual:SIGUSR2" in out, out
    assert "reason: desk says stop" in out and "verify cancels (attempt 1): no working order left" in out

    rc, out, err = await cli("status", "--config", str(config))
    assert rc == 1, out + err  # running, TRIPPED
    assert f"running, pid {d.pid}" in out and "TRIPPED by manual:SIGUSR2" in out
    rc, out, err = await cli("reset", "--reason", "checked the book", "--config", str(config))
    assert rc == 0, out + err
    rc, out, err = await cli("status", "--state-dir", str(d.state_dir))
    assert rc == 0 and "latch:     ARMED" in out, out + err


async def test_kill_by_pid_alone_needs_no_config_and_finds_the_daemons_state_dir(
    tmp_path: Path, sim: Simulator, notify: NotifySocket, launch: Launcher
) -> None:
    config = write_config(tmp_path, sim.port)
    d = await start_ready(launch, config, notify)
    config.unlink()  # no config anywhere: --pid is all the operator has
    for command in ("status", "history", "report"):  # README: these take --pid too
        rc, out, err = await cli(command, "--pid", str(d.pid))
        assert "unrecognized arguments" not in err and "no state dir" not in err, (command, out, err)
    rc, out, _ = await cli("status", "--pid", str(d.pid))
    assert rc == 0 and f"running, pid {d.pid}" in out, out

    rc, out, err = await cli("kill", "--cancel-only", "--pid", str(d.pid), "--reason", "by pid")

    assert rc == 0, out + err
    await until(lambda: bool(d.events("kill.finished")), 15, "the kill to finish")
    assert "by pid" in d.events("kill.triggered")[0].details["reason"]
    assert d.events("kill.finished")[0].details["positions_open"] > 0  # cancel only: the demo book stays


async def test_a_request_file_that_cannot_be_written_never_stops_the_signal(
    tmp_path: Path, sim: Simulator, notify: NotifySocket, launch: Launcher
) -> None:
    config = write_config(tmp_path, sim.port)
    d = await start_ready(launch, config, notify)
    assert (d.state_dir / "requests").is_dir()  # the daemon made it at start, as its own user
    (d.state_dir / "requests").rmdir()
    (d.state_dir / "requests").write_text("not a directory")  # nothing can be queued now, even by root

    rc, out, err = await cli("kill", "--cancel-only", "--reason", "lost", "--state-dir", str(d.state_dir))

    assert rc == 0, out + err
    assert "sending the signal anyway" in err
    await until(lambda: bool(d.events("kill.finished")), 15, "the kill to finish")
    assert d.events("kill.triggered")[0].details["trigger"] == "manual:SIGUSR2"
    rc, _, err = await cli("reset", "--reason", "x", "--state-dir", str(d.state_dir))
    assert rc == 1 and "cannot write a reset request" in err and err.count("\n") == 1, err


async def test_a_deleted_pid_file_neither_hides_the_daemon_nor_lets_a_second_one_start(
    tmp_path: Path, sim: Simulator, notify: NotifySocket, launch: Launcher
) -> None:
    config = write_config(tmp_path, sim.port)
    d = await start_ready(launch, config, notify)
    (d.state_dir / "watchdog.pid").unlink()

    second = await launch(config)
    assert await second.wait(20) == 2
    assert "already runs on state dir" in second.stderr and f"pid {d.pid}" in second.stderr
    rc, out, err = await cli("status", "--state-dir", str(d.state_dir))
    assert rc == 0 and f"running, pid {d.pid}" in out, out + err
    rc, out, err = await cli("kill", "--cancel-only", "--state-dir", str(d.state_dir))
    assert rc == 0 and f"pid {d.pid}" in out, out + err
    await until(lambda: bool(d.events("kill.finished")), 15, "the kill to finish")


async def test_status_of_a_stopped_daemon_says_not_running_and_when_it_was_last_seen(
    tmp_path: Path, sim: Simulator, notify: NotifySocket, launch: Launcher
) -> None:
    config = write_config(tmp_path, sim.port)
    d = await start_ready(launch, config, notify)
    await d.next_status()
    assert await d.stop() == 0

    rc, out, err = await cli("status", "--config", str(config))

    assert rc == 3, out + err
    assert "NOT RUNNING — last seen at" in out and "nothing is watched" in out
    assert "healthy (as last seen)" in out and "(as last seen)" in out.split("book:")[1]


async def test_the_cli_never_signals_a_process_that_is_not_the_daemon(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    # an unrelated process holding a lock on the state dir and on the pid file, named by the pid file
    holder = await asyncio.create_subprocess_exec(
        sys.executable, "-c",
        "import fcntl, os, sys, time\n"
        f"a = os.open({str(state)!r}, os.O_RDONLY); fcntl.flock(a, fcntl.LOCK_EX)\n"
        f"b = os.open({str(state / 'watchdog.pid')!r}, os.O_RDWR | os.O_CREAT)\n"
        "fcntl.flock(b, fcntl.LOCK_EX)\n"
        "os.write(b, f'{os.getpid()}\\n'.encode()); print('locked', flush=True); time.sleep(60)",
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert holder.stdout is not None
        assert await asyncio.wait_for(holder.stdout.readline(), 10) == b"locked\n"
        for args in (
            ("kill", "--state-dir", str(state)),
            ("reset", "--reason", "x", "--state-dir", str(state)),
            ("kill", "--pid", str(holder.pid)),
        ):
            rc, out, err = await cli(*args)
            assert rc == 1, (args, out, err)
            assert "not an ibkr-watchdog daemon" in err and "refusing to signal it" in err, (args, err)
        assert holder.returncode is None  # SIGUSR1 / SIGHUP would have killed it
    finally:
        holder.kill()
        await asyncio.wait_for(holder.wait(), 10)


async def test_kill_by_pid_never_signals_a_process_only_named_like_the_daemon(tmp_path: Path) -> None:
    """`ibkr-watchdog sim` and `journalctl -u ibkr-watchdog -f` were killed by `kill --pid N`."""
    lookalikes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            "import time; print('up', flush=True); time.sleep(60)",
            *argv,
            stdout=asyncio.subprocess.PIPE,
            cwd=tmp_path,
        )
        for argv in (("journalctl", "-u", "ibkr-watchdog", "-f"), ("/usr/bin/ibkr-watchdog", "sim"))
    ]
    try:
        for p in lookalikes:
            assert p.stdout is not None
            assert await asyncio.wait_for(p.stdout.readline(), 10) == b"up\n"
            rc, out, err = await cli("kill", "--pid", str(p.pid))
            assert rc == 1 and "pass --state-dir" in err and err.count("\n") == 1, (out, err)
            assert p.returncode is None
    finally:
        for p in lookalikes:
            p.kill()
            await asyncio.wait_for(p.wait(), 10)


async def test_run_refuses_a_paper_config_on_a_live_port_before_binding_metrics_or_announcing(
    tmp_path: Path, launch: Launcher, capture: Capture
) -> None:
    """Issue 14 #6: `run` bound /metrics and notified "started … armed", then refused; chat never heard."""
    metrics_port = free_port()
    notify = f"notifications:\n  targets:\n    - url: json://127.0.0.1:{capture.port}/hook\n"
    config = write_config(tmp_path, 4001, extra=notify, metrics_port=metrics_port)

    d = await launch(config)

    assert await d.wait(20) == 2
    assert "gateway.port 4001 is a LIVE trading port" in d.stderr
    await until(lambda: bool(capture.snapshot()), 10, "the refusal to reach the webhook")
    titles = [b.get("title", "") for b in capture.snapshot()]
    assert any("refused to start" in t for t in titles), titles
    assert not any("started" in t and "refused" not in t for t in titles), titles
    assert "metrics on http" not in d.stderr
