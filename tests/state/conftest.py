"""Fixtures for the state tests: a controllable clock (the store stamps records with it)."""

from __future__ import annotations

import pytest

from tests.kill.fakes import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
