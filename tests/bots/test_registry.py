"""The last heartbeat per bot survives a restart; a clean stop is durable; a damaged file fails safe."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.bots.conftest import Clock, bots_config
from watchdog.bots.registry import BOTS_FILE, MAX_FILE, BotRegistry


def registry(state: Path, clock: Clock, problems: list[str] | None = None) -> BotRegistry:
    return BotRegistry(
        bots_config(), state, clock, on_problem=(problems.append if problems is not None else None)
    )


def test_a_restart_restores_the_last_heartbeat_so_a_bot_that_died_meanwhile_is_caught(tmp_path: Path) -> None:
    clock = Clock()
    first = registry(tmp_path, clock)
    first.beat("alpha", status="degraded", note="slow")
    clock.now += 5
    first.beat("alpha")  # within PERSIST_EVERY of a write: kept in memory ...
    first.flush()  # ... and written at shutdown
    second = registry(tmp_path, Clock(clock.now + 600))
    assert second.restore() == 2
    alpha = second.get("alpha")
    assert alpha is not None and alpha.last_seen == clock.now and alpha.status == "ok"
    beta = second.get("beta")
    assert beta is not None and beta.last_seen is None and beta.stopped_at is None


def test_a_clean_stop_is_on_disk_before_it_is_answered(tmp_path: Path) -> None:
    clock = Clock()
    first = registry(tmp_path, clock)
    first.beat("alpha")
    clock.now += 0.1
    first.stop("alpha")  # no flush: a kill -9 right after the answer
    second = registry(tmp_path, clock)
    second.restore()
    alpha = second.get("alpha")
    assert alpha is not None and alpha.last_seen is None and alpha.stopped_at == clock.now


def test_a_lost_heartbeat_write_can_only_make_the_record_older(tmp_path: Path) -> None:
    clock = Clock()
    first = registry(tmp_path, clock)
    first.beat("alpha")
    written = clock.now
    clock.now += 0.5
    first.beat("alpha")  # throttled: not written yet; a crash now ...
    second = registry(tmp_path, clock)
    second.restore()
    assert second.get("alpha").last_seen == written  # type: ignore[union-attr]  # ... restores the older time


def test_a_damaged_file_never_blocks_the_start_and_reads_as_never_heard(tmp_path: Path) -> None:
    (tmp_path / BOTS_FILE).write_text('{"version": 1, "bots": {"alpha": {"last_seen": "yesterday"')
    problems: list[str] = []
    reg = registry(tmp_path, Clock(), problems)
    assert reg.restore() == 0
    assert all(s.last_seen is None and s.stopped_at is None for s in reg.statuses().values())
    assert len(problems) == 1 and "damaged" in problems[0] and "never a kill" in problems[0]
    assert (tmp_path / (BOTS_FILE + ".damaged")).exists()  # kept for a person to read
    reg.beat("alpha")  # and the next heartbeat writes a good file again
    assert json.loads((tmp_path / BOTS_FILE).read_text())["bots"]["alpha"]["last_seen"] is not None


def test_records_of_bots_no_longer_configured_are_dropped(tmp_path: Path) -> None:
    data = {"version": 1, "bots": {"gone": {"last_seen": 1.0}, "alpha": {"last_seen": 2.0}}}
    (tmp_path / BOTS_FILE).write_text(json.dumps(data))
    reg = registry(tmp_path, Clock())
    assert reg.restore() == 1
    assert set(reg.statuses()) == {"alpha", "beta"}


def test_a_deaf_listener_makes_every_bot_unknown(tmp_path: Path) -> None:
    reg = registry(tmp_path, Clock())
    reg.beat("alpha")
    reg.set_deaf("heartbeat listener not running")
    assert all(s.unknown_reason for s in reg.statuses().values())


def good_record(tmp_path: Path, last_seen: float) -> bytes:
    return json.dumps({"version": 1, "bots": {"alpha": {"last_seen": last_seen}}}).encode()


@pytest.mark.parametrize("kind", ["link", "fifo", "oversize"])
def test_a_heartbeat_file_that_is_not_a_small_regular_file_is_set_aside_unread(
    tmp_path: Path, kind: str
) -> None:
    """A link (to /dev/zero it would be read forever), a FIFO (would block) or a file over 1 MiB is
    never read: moved aside, reported, every bot never heard from; even with valid records in it."""
    clock = Clock()
    path = tmp_path / BOTS_FILE
    if kind == "link":
        (tmp_path / "elsewhere.json").write_bytes(good_record(tmp_path, clock.now))
        path.symlink_to(tmp_path / "elsewhere.json")
    elif kind == "fifo":
        os.mkfifo(path)
    else:
        path.write_bytes(good_record(tmp_path, clock.now) + b" " * MAX_FILE)
    problems: list[str] = []
    reg = registry(tmp_path, clock, problems)
    assert reg.restore() == 0
    assert reg.get("alpha").last_seen is None  # type: ignore[union-attr]
    assert len(problems) == 1 and "not read" in problems[0] and "never a kill" in problems[0]
    assert not path.exists() and os.path.lexists(tmp_path / (BOTS_FILE + ".damaged"))
    if kind == "link":  # the link was moved, its target untouched
        assert (tmp_path / "elsewhere.json").read_bytes() == good_record(tmp_path, clock.now)


def test_a_restored_heartbeat_keeps_its_age_on_the_monotonic_clock_and_one_from_the_future_is_now(
    tmp_path: Path,
) -> None:
    clock, mono = Clock(), Clock(500.0)
    data = {"version": 1, "bots": {"alpha": {"last_seen": clock.now - 7.0}, "beta": {"last_seen": 9e18}}}
    (tmp_path / BOTS_FILE).write_text(json.dumps(data))
    reg = BotRegistry(bots_config(), tmp_path, clock, monotonic=mono)
    assert reg.restore() == 2
    assert reg.heard_at("alpha") == 493.0  # seven seconds before now, on the monotonic clock
    assert reg.heard_at("beta") == 500.0 and reg.get("beta").last_seen == clock.now  # type: ignore[union-attr]
    clock.now += 3600  # a wall-clock step moves neither
    assert reg.heard_at("alpha") == 493.0


def test_a_hard_linked_bots_file_is_set_aside_unread(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text('{"version": 1, "bots": {}}')
    state = tmp_path / "state"
    state.mkdir(mode=0o750)
    os.link(elsewhere, state / BOTS_FILE)  # a write to it would show up under the other name too
    problems: list[str] = []
    assert registry(state, Clock(), problems).restore() == 0
    assert len(problems) == 1 and "2 hard links" in problems[0]
    assert (state / (BOTS_FILE + ".damaged")).exists()
    assert elsewhere.read_text() == '{"version": 1, "bots": {}}'
