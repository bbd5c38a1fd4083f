"""Fixtures for the kill switch unit tests: a virtual clock, a fake book, state in tmp_path."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.kill.fakes import FakeBook, FakeBroker, FakeClock
from watchdog.config.schema import KillConfig
from watchdog.kill.switch import KillEvent, KillSwitch
from watchdog.state.audit import AuditLog
from watchdog.state.store import StateStore

MakeSwitch = Callable[..., KillSwitch]


def kill_config(**overrides: Any) -> KillConfig:
    base: dict[str, Any] = {"verify_timeout": "2s", "max_attempts": 3}
    return KillConfig.model_validate(base | overrides)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def book(clock: FakeClock) -> FakeBook:
    return FakeBook(clock)


@pytest.fixture
def store(tmp_path: Path, clock: FakeClock) -> StateStore:
    return StateStore(tmp_path / "state", clock)


@pytest.fixture
def audit(store: StateStore, clock: FakeClock) -> AuditLog:
    store.dir.mkdir(parents=True, exist_ok=True)
    return AuditLog(store.audit_path, clock)


@pytest.fixture
def events() -> list[KillEvent]:
    return []


@pytest.fixture
def make_switch(
    book: FakeBook, store: StateStore, audit: AuditLog, clock: FakeClock, events: list[KillEvent]
) -> MakeSwitch:
    def make(
        *,
        client_id: int = 99,
        accounts: tuple[str, ...] = (),
        store_: StateStore | None = None,
        audit_: AuditLog | None = None,
        **config: Any,
    ) -> KillSwitch:
        return KillSwitch(
            FakeBroker(book, client_id),
            kill_config(**config),
            store_ or store,
            audit_ or audit,
            clock=clock,
            sleep=clock.sleep,
            on_event=events.append,
            accounts=accounts,
            client_id=client_id,
        )

    return make
