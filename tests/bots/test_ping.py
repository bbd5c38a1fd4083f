"""`ibkr-watchdog ping NAME` as a shell bot runs it: a real process against a real receiver."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bots.conftest import ALPHA_TOKEN, BETA_TOKEN, Served
from tests.process.conftest import cli, free_port

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
