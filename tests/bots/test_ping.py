"""`ibkr-watchdog ping NAME` as a shell bot runs it: a real process against a real receiver."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bots.conftest import ALPHA_TOKEN, BETA_TOKEN, Served
from tests.process.conftest import cli, free_port
from watchdog.bots.ping import ping_command

pytestmark = pytest.mark.integration


def token_file(tmp_path: Path, token: str) -> str:
    path = tmp_path / "token"
    path.write_text(token + "\n")
    return str(path)


async def test_ping_delivers_a_heartbeat_and_a_status(served: Served, tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{served.port}"
    args = ("--url", url, "--token-file", token_file(tmp_path, ALPHA_TOKEN))
    rc, out, err = await cli("ping", "alpha", *args, "--status", "degraded", "--note", "feed lagging")
    assert (rc, out, err) == (0, "", "")
    status = served.registry.get("alpha")
    assert status is not None and status.last_seen is not None
    assert (status.status, status.note) == ("degraded", "feed lagging")
    rc, _, _ = await cli("ping", "alpha", *args, "--stop")
    status = served.registry.get("alpha")
    assert rc == 0 and status is not None and status.last_seen is None and status.stopped_at is not None


async def test_ping_with_a_wrong_token_exits_1_and_never_prints_the_token(
    served: Served, tmp_path: Path
) -> None:
    url = f"http://127.0.0.1:{served.port}"
    rc, out, err = await cli("ping", "alpha", "--url", url, "--token-file", token_file(tmp_path, BETA_TOKEN))
    assert rc == 1 and "heartbeat refused: HTTP 401 (wrong token)" in err
    assert BETA_TOKEN not in out + err and served.rejected == ["unauthorized"]


async def test_ping_says_why_when_nothing_listens_or_the_token_file_is_missing(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    rc, _, err = await cli("ping", "alpha", "--url", url, "--token-file", token_file(tmp_path, ALPHA_TOKEN))
    assert rc == 1 and f"no heartbeat delivered to {url}" in err
    rc, _, err = await cli("ping", "alpha", "--url", url, "--token-file", str(tmp_path / "missing"))
    assert rc == 2 and "cannot read the token file" in err


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"abc\ndefSECRETPART\n", "holds more than one line"),
        (b"abcSECRETPART\xc3\xa9def0123456789\n", "non-ASCII"),
        (b"abc SECRETPART def0123456789\n", "without spaces"),
        (b"\n", "is empty"),
        (b"SECRETPART" * 500, "over 4096 bytes"),
    ],
    ids=["two-lines", "non-ascii", "space", "empty", "huge"],
)
def test_a_token_file_that_is_not_one_line_of_ascii_is_refused_without_showing_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, why: str
) -> None:
    path = tmp_path / "token"
    path.write_bytes(content)
    rc = ping_command("alpha", f"http://127.0.0.1:{free_port()}", str(path))
    out, err = capsys.readouterr()
    assert rc == 2 and why in err and err.count("\n") == 1, err
    assert "SECRETPART" not in out + err and "abc" not in err.replace(str(path), "")


@pytest.mark.parametrize(
    ("name", "url", "rc", "message"),
    [
        ("al pha", "http://127.0.0.1:9110", 2, "not a bot name: 'al pha'"),
        ("alpha/../x", "http://127.0.0.1:9110", 2, "not a bot name"),
        ("alpha", "ftp://127.0.0.1:9110", 2, "--url must be http://HOST:PORT"),
        (
            "alpha",
            "http://127.0.0.1:abc",
            1,
            "no heartbeat delivered to http://127.0.0.1:abc: nonnumeric port",
        ),
    ],
    ids=["space", "path", "scheme", "port"],
)
def test_a_bad_name_or_url_is_one_line_never_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, url: str, rc: int, message: str
) -> None:
    assert ping_command(name, url, token_file(tmp_path, ALPHA_TOKEN)) == rc
    out, err = capsys.readouterr()
    assert message in err and err.count("\n") == 1 and "Traceback" not in err, err
    assert ALPHA_TOKEN not in out + err


async def test_ping_with_a_name_that_is_not_a_bot_name_exits_2_in_one_line(tmp_path: Path) -> None:
    rc, out, err = await cli("ping", "al pha", "--token-file", token_file(tmp_path, ALPHA_TOKEN))
    assert (rc, out) == (
        2,
        "",
    ) and err == "not a bot name: 'al pha' (1-40 lower-case letters, digits, - or _)\n"
