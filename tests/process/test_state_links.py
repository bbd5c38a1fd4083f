"""A real daemon never writes through a symbolic link planted in its state directory (issue 15, item 2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.process.conftest import Launcher, free_port, write_config

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("name", ["watchdog.pid", "audit.jsonl"])
async def test_a_symlinked_state_file_refuses_the_start_and_leaves_its_target_alone(
    tmp_path: Path, launch: Launcher, name: str
) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious, not the daemon's\n")
    state = tmp_path / "state"
    state.mkdir(mode=0o750)
    (state / name).symlink_to(victim)
    config = write_config(tmp_path, free_port())
    d = await launch(config)
    assert await d.wait(20) == 2, d.stderr
    assert victim.read_bytes() == b"precious, not the daemon's\n"
    assert (state / name).is_symlink()
    lines = [ln for ln in d.stderr.splitlines() if "refusing to start" in ln]
    assert len(lines) == 1, d.stderr
    assert f"{state / name}: it is a symbolic link; refused" in lines[0]
