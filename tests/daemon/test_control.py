"""`ibkr-watchdog kill | reset | status`: request files, signals, and the daemon's side of them."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon.conftest import DaemonFactory, until
from tests.kill.conftest import MakeSwitch
from tests.kill.fakes import FakeBook, stock
from watchdog.cli import main
from watchdog.commands.kill import send_kill
from watchdog.commands.reset import send_reset
from watchdog.commands.status import show_status
from watchdog.daemon.control import ControlChannel
from watchdog.model import Action, TradingState
from watchdog.state.store import Latch, PendingKill, StateStore


@pytest.fixture
def caught() -> Iterator[list[int]]:
    """This test process plays the daemon: record the signals it gets."""
    got: list[int] = []
    old = {
        s: signal.signal(s, lambda n, _f: got.append(n))
        for s in (signal.SIGUSR1, signal.SIGUSR2, signal.SIGHUP)
    }
    yield got
    for s, h in old.items():
        signal.signal(s, h)


def test_kill_without_a_running_daemon_fails_clearly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert send_kill(tmp_path, cancel_only=False, reason="x", pid=None) == 1
    assert "no running daemon" in capsys.readouterr().err
    assert not list(tmp_path.glob("requests/*"))


@pytest.mark.parametrize(
    ("cancel_only", "sig", "action"),
    [(False, signal.SIGUSR1, Action.CLOSE_ALL), (True, signal.SIGUSR2, Action.CANCEL_ALL)],
)
def test_kill_signals_the_daemon_with_the_reason_queued_for_its_audit(
    tmp_path: Path, caught: list[int], cancel_only: bool, sig: signal.Signals, action: Action
) -> None:
    daemon = StateStore(tmp_path, lambda: 1.0)
    daemon.write_pid(os.getpid())
    try:
        assert send_kill(tmp_path, cancel_only=cancel_only, reason="desk says stop", pid=None) == 0
        assert caught == [sig]
        req = ControlChannel(daemon).take_kill_request()
        assert req is not None and req.action is action and req.reason.startswith("desk says stop")
        assert ControlChannel(daemon).take_kill_request() is None
    finally:
        daemon.remove_pid()


def test_kill_to_a_dead_pid_removes_its_request(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert send_kill(tmp_path, cancel_only=True, reason="", pid=2**22 + 12345) == 1
    assert "no process" in capsys.readouterr().err and not list(tmp_path.glob("requests/*.json"))


def test_reset_without_a_daemon_refuses_a_pending_kill_unless_told_to_discard_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = StateStore(tmp_path, lambda: 1.0)
    store.save_latch(Latch(state=TradingState.TRIPPED, trigger="rule:x", kill_id="k"))
    store.save_pending(PendingKill(kill_id="k", action=Action.CLOSE_ALL, trigger="rule:x"))
    assert send_reset(tmp_path, reason="flat, checked", pid=None) == 1
    assert (
        "pending" in capsys.readouterr().err and StateStore(tmp_path, lambda: 2.0).pending_kill() is not None
    )
    assert send_reset(tmp_path, reason="flat, checked", pid=None, discard_pending=True) == 0
    fresh = StateStore(tmp_path, lambda: 2.0)
    assert fresh.trading_state() is TradingState.ARMED and fresh.pending_kill() is None
    events = [json.loads(line)["event"] for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert events == ["pending.discarded", "reset"]


def test_reset_needs_a_reason(tmp_path: Path) -> None:
    assert send_reset(tmp_path, reason="  ", pid=None) == 2


async def test_reset_with_a_running_daemon_goes_through_its_control_channel(
    book: FakeBook, make_switch: MakeSwitch, store: StateStore
) -> None:
    from watchdog.kill.switch import KillSwitch

    ks: KillSwitch = make_switch()
    await ks.kill(Action.CANCEL_ALL, "rule:x")
    channel = ControlChannel(store)
    store.write_pid(os.getpid())
    old = signal.signal(signal.SIGHUP, lambda _n, _f: channel.process_requests(ks))  # the daemon's reload
    try:
        assert send_reset(store.dir, reason="all clear", pid=None, wait=5.0) == 0
    finally:
        signal.signal(signal.SIGHUP, old)
        store.remove_pid()
    assert store.trading_state() is TradingState.ARMED


def test_a_reset_the_daemon_does_not_take_is_withdrawn_and_fails(tmp_path: Path, caught: list[int]) -> None:
    daemon = StateStore(tmp_path, lambda: 1.0)
    daemon.save_latch(Latch(state=TradingState.TRIPPED, trigger="rule:x", kill_id="k", tripped_at=1.0))
    daemon.write_pid(os.getpid())
    try:
        assert send_reset(tmp_path, reason="r", pid=None, wait=0.2) == 1
    finally:
        daemon.remove_pid()
    # withdrawn: a later SIGHUP (a reload) can never apply it
    assert caught == [signal.SIGHUP] and daemon.take_requests("reset") == []


async def test_status_shows_latch_last_kill_and_the_daemons_status_file(
    book: FakeBook, make_switch: MakeSwitch, store: StateStore
) -> None:
    book.add_position("DU1", stock(), 10)
    await make_switch().kill(Action.CLOSE_ALL, "rule:loss", reason="daily loss")
    store.write_status(
        {
            "updated": book.clock.now - 3,
            "gateway": {"health": "healthy", "connected": True},
            "positions": 0,
            "open_orders": 0,
        }
    )
    out = io.StringIO()
    assert show_status(store.dir, as_json=False, out=out, clock=book.clock) == 3  # no daemon runs
    text = out.getvalue()
    assert "TRIPPED by rule:loss" in text and "close_all by rule:loss → flat" in text
    assert "NOT RUNNING — last seen at" in text and "(3.0s ago)" in text
    assert "healthy (as last seen)" in text
    out = io.StringIO()
    assert show_status(store.dir, as_json=True, out=out, clock=book.clock) == 3
    data = json.loads(out.getvalue())
    assert data["latch"]["state"] == "tripped" and data["last_kill"]["outcome"] == "flat"
    assert data["running"] is False and data["exit_code"] == 3


def test_the_commands_read_the_state_dir_from_the_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "rules.yaml"
    cfg.write_text(f"gateway:\n  port: 4002\n  client_id: 99\n  paper: true\nstate_dir: {tmp_path / 'st'}\n")
    assert main(["kill", "--config", str(cfg)]) == 1  # no running daemon
    # no daemon ever ran with this state dir: said so, never "ARMED"
    assert main(["reset", "--reason", "ok", "--config", str(cfg)]) == 2
    assert main(["status", "--json", "--config", str(cfg)]) == 2
    assert f"state dir {tmp_path / 'st'} does not exist" in capsys.readouterr().err
    (tmp_path / "st").mkdir(mode=0o750)
    assert main(["reset", "--reason", "ok", "--config", str(cfg)]) == 0
    assert main(["status", "--json", "--config", str(cfg)]) == 3  # not running
    assert json.loads(capsys.readouterr().out.split("\n", 1)[1])["latch"]["state"] == "armed"


def test_a_broken_config_still_names_its_state_dir_and_says_it_is_invalid(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"state_dir: {tmp_path / 'st'}\ngateway: [\n")
    StateStore(tmp_path / "st", lambda: 1.0).save_latch(Latch(state=TradingState.TRIPPED, trigger="rule:x"))
    assert main(["status", "--config", str(bad)]) == 3
    captured = capsys.readouterr()
    assert f"{bad} is invalid on disk" in captured.err and f"state dir {tmp_path / 'st'}" in captured.err
    assert "TRIPPED by rule:x" in captured.out
    assert main(["status", "--state-dir", str(tmp_path / "st")]) == 3
    assert "invalid" not in capsys.readouterr().err


def test_status_shows_the_age_of_the_snapshot_not_of_the_file(tmp_path: Path) -> None:
    """Issue 14 #5: with the gateway down, cached counts were re-stamped every second as current."""
    now = 1_700_000_000.0
    store = StateStore(tmp_path, lambda: now)
    store.write_pid(os.getpid())
    try:
        store.write_status(
            {
                "updated": now - 0.5,  # rewritten every cycle ...
                "snapshot_taken_at": now - 0.5,  # ... and its snapshot stamped every cycle, read or not
                "positions_as_of": now - 125,  # the last successful reads: two minutes old
                "orders_as_of": now - 65,
                "gateway": {
                    "health": "down",
                    "connected": False,
                    "last_heartbeat": now - 130,
                    "down_since": now - 128,
                },
                "positions": 3,
                "open_orders": 2,
            }
        )
        out = io.StringIO()
        code = show_status(tmp_path, as_json=False, out=out, clock=lambda: now)
    finally:
        store.remove_pid()
    text = out.getvalue()
    assert "status written 0.5s ago" in text
    assert "book:      3 positions read 2m ago, 2 working orders read 65s ago" in text, text
    assert "down, NOT connected; last heartbeat answer 2m ago" in text
    assert "down since 2023-11-14 22:11:12 UTC (2m)" in text
    assert code == 0  # running (its pid file record matches this process) and ARMED


def test_status_says_no_data_yet_for_a_daemon_that_never_read_the_book(tmp_path: Path) -> None:
    """Issue 14: a daemon that never connected showed "0 positions … 1.0s old"."""
    from watchdog.model import Snapshot
    from watchdog.state.store import status_from_snapshot

    now = 1_700_000_000.0
    store = StateStore(tmp_path, lambda: now)
    store.write_pid(os.getpid())
    try:
        never_read = Snapshot(taken_at=now - 1, accounts={}, orders_as_of=now - 3)
        store.write_status(status_from_snapshot(never_read, now - 1) | {"positions": 0, "open_orders": 0})
        out = io.StringIO()
        show_status(tmp_path, as_json=False, out=out, clock=lambda: now)
    finally:
        store.remove_pid()
    assert "book:      positions: no data yet, 0 working orders read 3.0s ago" in out.getvalue(), (
        out.getvalue()
    )


async def test_a_leftover_kill_request_is_discarded_and_the_signals_own_reason_kept(
    make_daemon: DaemonFactory,
) -> None:
    """Issue 14: a stale close_all request merged with a fresh cancel made the operator's reason vanish."""
    d = await make_daemon()
    now = d.c.clock()
    left = {"action": "close_all", "reason": "old leftover", "who": "alice", "requested_at": now - 600}
    d.c.store.put_request("kill", left)
    fresh = {"action": "cancel_all", "reason": "desk says stop", "who": "bob", "requested_at": now}
    d.c.store.put_request("kill", fresh)
    serving = asyncio.ensure_future(d.serve())
    d.request_kill(Action.CANCEL_ALL, "manual:SIGUSR2", "")  # what the SIGUSR2 handler does
    await until(lambda: d.kill_reports != [], 30, "the kill to end")
    d.request_stop()
    await asyncio.wait_for(serving, 5)

    records = d.c.audit.read()
    triggered = [r for r in records if r.event == "kill.triggered"]
    assert len(triggered) == 1 and triggered[0].details["action"] == "cancel_all"
    assert triggered[0].details["reason"] == "desk says stop (by bob)"
    discarded = [r for r in records if r.event == "kill.request_discarded"]
    assert [r.details["reason"] for r in discarded] == ["old leftover"]
