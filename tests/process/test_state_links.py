"""A real daemon never writes through a symbolic link planted in its state directory (issue 15, item 2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.process.conftest import Launcher, free_port, until, write_config

pytestmark = pytest.mark.integration


async def test_a_symlinked_pid_file_refuses_the_start_and_leaves_its_target_alone(
    tmp_path: Path, launch: Launcher
) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious, not the daemon's\n")
    state = tmp_path / "state"
    state.mkdir(mode=0o750)
    (state / "watchdog.pid").symlink_to(victim)
    config = write_config(tmp_path, free_port())
    d = await launch(config)
    assert await d.wait(20) == 2, d.stderr
    assert victim.read_bytes() == b"precious, not the daemon's\n"
    assert (state / "watchdog.pid").is_symlink()
    lines = [ln for ln in d.stderr.splitlines() if "refusing to start" in ln]
    assert len(lines) == 1, d.stderr
    assert f"{state / 'watchdog.pid'}: it is a symbolic link; refused" in lines[0]


async def test_a_symlinked_audit_file_is_set_aside_and_the_daemon_runs(
    tmp_path: Path, launch: Launcher
) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious, not the daemon's\n")
    state = tmp_path / "state"
    state.mkdir(mode=0o750)
    (state / "audit.jsonl").symlink_to(victim)
    d = await launch(write_config(tmp_path, free_port()))  # no gateway: it runs and retries
    await until(
        lambda: (state / "audit.jsonl").is_file() and not (state / "audit.jsonl").is_symlink(),
        20,
        "a fresh log",
    )
    assert (state / "audit.jsonl.damaged").is_symlink()  # moved aside, for a person to look at
    assert await d.stop() == 0, d.stderr
    assert victim.read_bytes() == b"precious, not the daemon's\n"
    assert "audit file" in d.stderr and "symbolic link" in d.stderr and "a fresh log is started" in d.stderr
