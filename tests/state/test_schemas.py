"""Every state file is read through a strict schema; any damage reads as the fail-safe state, reported."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.kill.fakes import FakeClock
from watchdog.model import Action, TradingState
from watchdog.state.store import BASELINE_FILE, LATCH_FILE, PENDING_FILE, Latch, PendingKill, StateStore

GOOD_LATCH = {"state": "armed", "trigger": "", "reason": "", "accounts": [], "baseline": {}}
GOOD_PENDING = {"kill_id": "k1", "action": "cancel_all", "trigger": "rule:loss", "accounts": ["DU111111"]}

LATCH_DAMAGE = {
    "empty": b"",
    "not JSON": b"{not json",
    "an unknown state": b'{"state": "bogus"}',
    "a list": b"[1, 2]",
    "no state": b'{"no": "state"}',
    "null": b"null",
    "a number": b"42",
    "a string": b'"armed"',
    "partial write": json.dumps(GOOD_LATCH).encode()[:20],
    "nested one level down": json.dumps({"latch": GOOD_LATCH}).encode(),
    "state as a boolean": json.dumps(GOOD_LATCH | {"state": True}).encode(),
    "accounts as a string": json.dumps(GOOD_LATCH | {"accounts": "DU111111"}).encode(),
    "a baseline quantity as a string": json.dumps(GOOD_LATCH | {"baseline": {"DU1|1": "5"}}).encode(),
    "NaN": json.dumps(GOOD_LATCH | {"tripped_at": float("nan")}).encode(),
    "an unknown key": json.dumps(GOOD_LATCH | {"stat": "tripped"}).encode(),
    "garbage": b"\x00\xff\xfe garbage",
    # json.loads keeps the last of duplicate keys: this one would read ARMED
    "state given twice, armed last": b'{"state": "tripped", "trigger": "", "state": "armed"}',
    "a duplicate key one level down": b'{"state": "armed", "baseline": {"DU1|1": 5, "DU1|1": 0}}',
}


@pytest.mark.parametrize("content", LATCH_DAMAGE.values(), ids=LATCH_DAMAGE.keys())
def test_any_damage_to_the_latch_reads_tripped_never_armed(
    tmp_path: Path, clock: FakeClock, content: bytes
) -> None:
    (tmp_path / LATCH_FILE).write_bytes(content)
    reported: list[str] = []
    store = StateStore(tmp_path, clock, on_error=reported.append)
    latch = store.latch()
    assert latch.state is TradingState.TRIPPED and latch.corrupted
    assert reported and "TRIPPED" in reported[0] and LATCH_FILE in store.damaged


def test_a_good_latch_file_reads_as_written(tmp_path: Path, clock: FakeClock) -> None:
    (tmp_path / LATCH_FILE).write_text(json.dumps(GOOD_LATCH | {"tripped_at": 5}))  # an int is a number
    store = StateStore(tmp_path, clock)
    assert store.latch() == Latch(tripped_at=5.0) and not store.damaged


PENDING_DAMAGE = {
    "null": b"null",
    "dry_run as a string": json.dumps(GOOD_PENDING | {"dry_run": "false"}).encode(),
    "dry_run as a number": json.dumps(GOOD_PENDING | {"dry_run": 0}).encode(),
    "accounts as a string": json.dumps(GOOD_PENDING | {"accounts": "DU111111"}).encode(),
    "an unknown action": json.dumps(GOOD_PENDING | {"action": "flatten"}).encode(),
    "no kill id": json.dumps({k: v for k, v in GOOD_PENDING.items() if k != "kill_id"}).encode(),
    "nested": json.dumps({"pending": GOOD_PENDING}).encode(),
    "partial write": json.dumps(GOOD_PENDING).encode()[:25],
    "an empty file": b"",
    "dry_run given twice, true last": (
        b'{"kill_id": "k1", "action": "close_all", "trigger": "t", "dry_run": false, "dry_run": true}'
    ),
}


@pytest.mark.parametrize("content", PENDING_DAMAGE.values(), ids=PENDING_DAMAGE.keys())
def test_any_damage_to_the_pending_kill_reads_as_a_real_close_all_of_every_account(
    tmp_path: Path, clock: FakeClock, content: bytes
) -> None:
    (tmp_path / PENDING_FILE).write_bytes(content)
    reported: list[str] = []
    store = StateStore(tmp_path, clock, on_error=reported.append)
    pending = store.pending_kill()
    assert pending is not None and pending.corrupted
    assert (pending.action, pending.accounts, pending.dry_run) == (Action.CLOSE_ALL, (), False)
    assert reported and PENDING_FILE in store.damaged


def test_a_good_pending_kill_file_reads_as_written(tmp_path: Path, clock: FakeClock) -> None:
    (tmp_path / PENDING_FILE).write_text(json.dumps(GOOD_PENDING | {"dry_run": True}))
    pending = StateStore(tmp_path, clock).pending_kill()
    expected = PendingKill(
        kill_id="k1", action=Action.CANCEL_ALL, trigger="rule:loss", accounts=("DU111111",), dry_run=True
    )
    assert pending == expected


@pytest.mark.parametrize(
    "content",
    [
        b"null",
        b"{torn",
        b'{"day_highs": [], "day_highs": []}',
        b'{"day_highs": "x"}',
        b'{"day_highs": [{"metric": 1}]}',
        b'{"highs": []}',
    ],
)
def test_a_damaged_baseline_is_discarded_and_reported_never_raised(
    tmp_path: Path, clock: FakeClock, content: bytes
) -> None:
    (tmp_path / BASELINE_FILE).write_bytes(content)
    reported: list[str] = []
    store = StateStore(tmp_path, clock, on_error=reported.append)
    assert store.baseline() == {}
    assert reported and "discarded" in reported[0] and BASELINE_FILE in store.damaged
    assert not (tmp_path / BASELINE_FILE).exists()  # set aside, so the next start is clean
    assert (tmp_path / (BASELINE_FILE + ".damaged")).read_bytes() == content


def test_a_good_baseline_reads_back(tmp_path: Path, clock: FakeClock) -> None:
    store = StateStore(tmp_path, clock)
    highs = [{"account": "DU1", "metric": "net_liquidation", "day": "2026-11-30", "high": 5}]
    store.save_baseline({"day_highs": highs})
    assert StateStore(tmp_path, clock).baseline() == {"day_highs": [highs[0] | {"high": 5.0}]}
