"""The paper/live safety valve: ports and account ids."""

from __future__ import annotations

import logging

import pytest

from watchdog.errors import SafetyValveError
from watchdog.gateway.valve import check_accounts, check_port, is_paper_account


@pytest.mark.parametrize("port", [7496, 4001])
def test_it_refuses_a_live_port_when_configured_for_paper(port: int) -> None:
    with pytest.raises(SafetyValveError, match=f"paper is true but gateway.port {port} is a LIVE"):
        check_port(port, paper=True)


@pytest.mark.parametrize("port", [7497, 4002])
def test_it_refuses_a_paper_port_when_configured_for_live(port: int) -> None:
    with pytest.raises(SafetyValveError, match=f"paper is false but gateway.port {port} is a PAPER"):
        check_port(port, paper=False)


def test_matching_ports_pass_silently(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="watchdog.gateway.client"):
        check_port(4002, paper=True)
        check_port(4001, paper=False)
    assert caplog.records == []


def test_an_unknown_port_is_allowed_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="watchdog.gateway.client"):
        check_port(14002, paper=True)
    assert any("14002 is not a standard" in r.getMessage() for r in caplog.records)


def test_paper_accounts_start_with_du_or_df() -> None:
    assert is_paper_account("DU1234567") and is_paper_account("DF42")
    assert not is_paper_account("U1234567")


def test_paper_config_refuses_live_accounts() -> None:
    with pytest.raises(SafetyValveError, match="manages live account"):
        check_accounts(True, ["DU1", "U2"], ())


def test_live_config_refuses_paper_accounts() -> None:
    with pytest.raises(SafetyValveError, match=r"paper is false .* paper account\(s\) DU111111"):
        check_accounts(False, ["DU111111"], ())


def test_configured_accounts_must_all_be_managed() -> None:
    with pytest.raises(SafetyValveError, match="not managed by this gateway: DU999"):
        check_accounts(True, ["DU111", "DU222"], ["DU111", "DU999"])


def test_it_watches_the_configured_subset_or_every_managed_account() -> None:
    assert check_accounts(True, ["DU1", "DU2"], ["DU2"]) == ("DU2",)
    assert check_accounts(True, ["DU1", "DU2"], ()) == ("DU1", "DU2")
    assert check_accounts(False, ["U1"], ()) == ("U1",)


def test_no_managed_accounts_is_refused() -> None:
    with pytest.raises(SafetyValveError, match="no managed accounts"):
        check_accounts(True, [], ())
