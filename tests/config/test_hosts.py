"""gateway.host and metrics.host are host names or IP literals, and a value from ${VAR} is never echoed
(issue 15, review item F: `"30 Sup3rS3cr3tT0ken * * *"` from ${VAR} was accepted and printed by `check`)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from watchdog.commands.check import check_command
from watchdog.config.field_types import check_host
from watchdog.config.load import load_config
from watchdog.errors import ConfigError

REPO_RULES = Path(__file__).resolve().parents[2] / "rules.yaml"
TEXT = REPO_RULES.read_text()
GATEWAY_HOST = "  host: 127.0.0.1          # TWS"
METRICS_HOST = "  host: 127.0.0.1          # keep"
assert GATEWAY_HOST in TEXT and METRICS_HOST in TEXT
TOKEN = "30 Sup3rS3cr3tT0ken * * *"


def _config(tmp_path: Path, line: str, value: str) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(TEXT.replace(line, f"  host: {value}  # x", 1))
    path.chmod(0o600)
    return path


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "::1", "localhost", "ib-gateway", "ib_gateway", "gw.example.net", "gw.example.net."]
)
def test_host_names_and_ip_literals_are_accepted(host: str) -> None:
    assert check_host(host) == host


@pytest.mark.parametrize(
    "host",
    [
        TOKEN,
        "a b",
        "-gw",
        "gw-",
        "gw..net",
        "http://gw",
        "gw:4002",
        "x" * 64,
        "a${b}",
        "",
        "256.1.1.1",
        "fe80::1%a b",
    ],
)
def test_anything_else_is_refused(host: str) -> None:
    with pytest.raises(ValueError, match="must be a host name"):
        check_host(host)


@given(st.text(max_size=300))
def test_an_accepted_host_never_holds_spaces_or_url_parts(text: str) -> None:
    try:
        check_host(text)
    except ValueError:
        return
    assert not any(c in text for c in " /@*$?#{}")
    if ":" in text:  # only an IPv6 literal has one
        ipaddress.ip_address(text)


@pytest.mark.parametrize("line", [GATEWAY_HOST, METRICS_HOST])
def test_a_token_from_the_environment_as_a_host_is_refused_and_never_echoed(
    tmp_path: Path, line: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _config(tmp_path, line, "${GW_HOST}")
    with pytest.raises(ConfigError, match=r"host: must be a host name") as e:
        load_config(path, environ={"GW_HOST": TOKEN})
    assert "Sup3r" not in str(e.value) and "T0ken" not in str(e.value)
    monkeypatch.setenv("GW_HOST", TOKEN)
    assert check_command(str(path)) == 2
    out = capsys.readouterr()
    assert "Sup3r" not in out.err + out.out and "T0ken" not in out.err + out.out


def test_check_masks_a_valid_host_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _config(tmp_path, GATEWAY_HOST, "${GW_HOST}")
    monkeypatch.setenv("GW_HOST", "Sup3rS3cr3tT0kenHost")
    assert check_command(str(path)) == 0
    out = capsys.readouterr().out
    assert "gateway ***:4002" in out, out
    assert "Sup3r" not in out and "T0ken" not in out
