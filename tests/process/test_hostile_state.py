"""A real daemon against hostile files in its state dir (issue 15, review items A–C): a FIFO, a link, a
hard link or an unsafe mode never blocks a start nor the loop, a cache is set aside, the latch and a
pending kill read fail-safe, every problem reaches the pager, and an unusable dir refuses in one line."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from tests.outputs.conftest import Capture, capture  # noqa: F401  (fixture)
from tests.process.conftest import (
    Launcher,
    NotifySocket,
    cli,
    free_port,
    start_ready,
    until,
    watched_positions,
    write_config,
)
from watchdog.model import Action
from watchdog.sim import Simulator
from watchdog.state.store import PendingKill, StateStore

pytestmark = pytest.mark.integration


def _titles(cap: Capture) -> list[str]:
    return [f"{b.get('title', '')}: {b.get('message', '')}" for b in cap.snapshot()]


async def test_hostile_state_files_never_block_the_start_nor_the_loop(
    tmp_path: Path,
    sim: Simulator,
    notify: NotifySocket,
    launch: Launcher,
    capture: Capture,  # noqa: F811
) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o750)
    victim = tmp_path / "victim.json"
    victim.write_text('{"state": "armed"}')
    StateStore(state, time.time).save_pending(
        PendingKill(
            kill_id="K-pending", action=Action.CLOSE_ALL, trigger="manual:SIGUSR1", accounts=("DU111111",)
        )
    )
    os.mkfifo(state / "audit.jsonl")  # opening it for writing without O_NONBLOCK waited for ever
    (state / "latch.json").symlink_to(victim)  # read through the link: ARMED
    (state / "baseline.json").write_text('{"day_highs": []}')
    (state / "baseline.json").chmod(0o666)  # exit 2 before: the pending kill never ran
    config = write_config(
        tmp_path,
        sim.port,
        extra=f"notifications:\n  targets:\n    - url: json://127.0.0.1:{capture.port}/pager\n",
    )
    d = await start_ready(launch, config, notify)

    # the pending kill ran (fail-safe latch: TRIPPED, never the link's ARMED), its records in a fresh log
    await until(lambda: bool(d.events("kill.finished")), 20, "the pending kill to finish")
    assert watched_positions(sim).get(("DU111111", 1), 0) == 0 or all(
        q == 0 for (acct, _), q in watched_positions(sim).items() if acct == "DU111111"
    )
    assert (state / "audit.jsonl").is_file()
    assert victim.read_text() == '{"state": "armed"}'  # the latch link was replaced, never followed
    assert d.latch()["state"] == "tripped"
    asides = sorted(p.name.split(".damaged")[0] for p in state.iterdir() if ".damaged" in p.name)
    assert asides == ["audit.jsonl", "baseline.json"]
    await until(
        lambda: sum("State directory problem" in t for t in _titles(capture)) >= 3, 10, "3 state alerts"
    )
    alerts = "\n".join(_titles(capture))
    assert "latch file unusable" in alerts and "audit file" in alerts and "baseline" in alerts

    # a FIFO kill request + SIGUSR1: the loop is not frozen (it writes status, answers SIGTERM)
    reqdir = state / "requests"
    reqdir.mkdir(mode=0o750, exist_ok=True)
    os.mkfifo(reqdir / "kill-0001.json")
    d.send(signal.SIGUSR1)
    await until(lambda: not (reqdir / "kill-0001.json").exists(), 10, "the FIFO request to be removed")
    await d.next_status(timeout=5)
    # a reset request linked to a file outside + SIGHUP: never followed, never re-arms
    outside = tmp_path / "reset.json"
    outside.write_text(json.dumps({"reason": "planted", "who": "mallory", "requested_at": time.time()}))
    (reqdir / "reset-0001.json").symlink_to(outside)
    d.send(signal.SIGHUP)
    await until(lambda: not os.path.lexists(reqdir / "reset-0001.json"), 10, "the linked request removed")
    await d.next_status(timeout=5)
    assert d.latch()["state"] == "tripped"
    assert outside.exists()
    assert await d.stop() == 0
    assert "Traceback" not in d.stderr and "KeyError" not in d.stderr, d.stderr


async def test_a_fifo_pid_file_never_hangs_the_cli(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o750)
    os.mkfifo(state / "watchdog.pid")
    config = write_config(tmp_path, free_port())
    rc, out, err = await cli("status", "--json", "--config", str(config), timeout=10)
    assert rc == 3, err  # not running (status's documented exit code)
    assert "watchdog.pid is not a regular file" in json.loads(out)["daemon_error"]
    for args in (("kill", "--reason", "r"), ("reset", "--reason", "r")):
        rc, _out, err = await cli(*args, "--config", str(config), timeout=10)  # fails if it hangs
        assert rc == 1, (args, err)
        assert "watchdog.pid is not a regular file" in err, err


async def test_a_state_dir_others_can_write_refuses_the_start_in_one_line(
    tmp_path: Path, launch: Launcher
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    state.chmod(0o777)
    (state / "latch.json").symlink_to(tmp_path)  # read before the refusal, it added its own lines
    d = await launch(write_config(tmp_path, free_port()))
    assert await d.wait(20) == 2, d.stderr
    lines = [ln for ln in d.stderr.splitlines() if " ERROR " in ln or " CRITICAL " in ln]
    assert len(lines) == 1, d.stderr  # before: 6 ERROR lines with tracebacks, then the refusal
    assert "Traceback" not in d.stderr, d.stderr
    assert "refusing to start: refusing state directory" in lines[0]
    assert "writable by group or others (mode 777)" in lines[0]


async def test_a_gateway_host_from_the_environment_is_never_echoed(
    tmp_path: Path,
    launch: Launcher,
    capture: Capture,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secret_host = "sup3r-s3cr3t-t0ken-host.invalid"  # a valid name that never resolves
    monkeypatch.setenv("GW_HOST", secret_host)
    config = write_config(
        tmp_path,
        free_port(),
        extra=(
            f"notifications:\n  gateway_down_after: 1s\n"
            f"  targets:\n    - url: json://127.0.0.1:{capture.port}/pager\n"
        ),
    )
    config.write_text(config.read_text().replace("  host: 127.0.0.1\n", "  host: ${GW_HOST}\n", 1))
    d = await launch(config)
    await until(lambda: "cannot connect to gateway at ***:" in d.stderr, 20, "a connect failure logged")
    await until(lambda: any("***" in t for t in _titles(capture)), 20, "the gateway-down page")
    assert await d.stop() == 0
    seen = d.stderr + "\n".join(_titles(capture))
    assert "t0ken" not in seen and "s3cr3t" not in seen, seen
