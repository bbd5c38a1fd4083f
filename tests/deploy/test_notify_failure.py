"""The OnFailure= notifier (systemd/notify-failure.py): a real apprise call to a local HTTP endpoint."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.deploy.units import SYSTEMD_DIR

pytestmark = pytest.mark.deploy

SCRIPT = SYSTEMD_DIR / "notify-failure.py"
UNIT = "ibkr-watchdog@acct1.service"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("notify_failure", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _Capture(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        self.server.posts.append((self.path, json.loads(self.rfile.read(length))))  # type: ignore[attr-defined]
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
        pass


@pytest.fixture
def endpoint() -> Iterator[tuple[str, list[tuple[str, dict[str, Any]]]]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Capture)
    server.posts = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"json://127.0.0.1:{server.server_address[1]}", server.posts  # type: ignore[attr-defined]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _run(creds: Path, urls: str) -> subprocess.CompletedProcess[str]:
    creds.mkdir(exist_ok=True)
    (creds / "notify-urls").write_text(urls, encoding="utf-8")
    env = {**os.environ, "CREDENTIALS_DIRECTORY": str(creds)}
    return subprocess.run(
        [sys.executable, str(SCRIPT), UNIT], env=env, capture_output=True, text=True, timeout=30, check=False
    )


def test_it_sends_one_critical_alert_naming_the_unit_and_what_to_run(
    tmp_path: Path, endpoint: tuple[str, list[tuple[str, dict[str, Any]]]]
) -> None:
    url, posts = endpoint
    done = _run(tmp_path / "creds", f"# ops channel\n{url}/all\n")
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(posts) == 1
    body = posts[0][1]
    assert UNIT in body["title"]
    assert f"journalctl -u {UNIT}" in body["message"]
    assert "NOT watching" in body["message"]
    assert done.stdout.startswith("<2>")  # journald files the first line at priority crit


def test_it_honours_the_severity_prefix_of_each_line(
    tmp_path: Path, endpoint: tuple[str, list[tuple[str, dict[str, Any]]]]
) -> None:
    url, posts = endpoint
    urls = f"info,warning={url}/chatty\ncritical,warning={url}/pager\n{url}/everything\n"
    done = _run(tmp_path / "creds", urls)
    assert done.returncode == 0, done.stdout + done.stderr
    assert sorted(path for path, _ in posts) == ["/everything", "/pager"]


def test_it_fails_loudly_and_never_prints_urls_when_nobody_takes_critical(tmp_path: Path) -> None:
    secret = "json://127.0.0.1:9/token-s3cr3t"
    done = _run(tmp_path / "creds", f"warning={secret}\nnot a url\n")
    assert done.returncode == 1
    assert "nobody was notified" in done.stdout
    assert "line 2" in done.stdout
    assert "s3cr3t" not in done.stdout + done.stderr


def test_it_fails_when_the_credential_is_missing(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "CREDENTIALS_DIRECTORY"}
    done = subprocess.run(
        [sys.executable, str(SCRIPT), UNIT], env=env, capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 1
    assert "CREDENTIALS_DIRECTORY" in done.stdout


def test_critical_urls_parses_comments_prefixes_and_query_strings() -> None:
    mod = _load()
    text = (
        "# comment\n\n"
        "  tgram://bot/chat  \n"
        "critical=mailtos://u:p@smtp.example.com?to=a@example.com\n"
        "warning=slack://a/b/c\n"
        "bogus=json://x\n"
        "json://host/?-X-Token=abc\n"
    )
    urls, bad = mod.critical_urls(text)
    assert urls == [
        "tgram://bot/chat",
        "mailtos://u:p@smtp.example.com?to=a@example.com",
        "json://host/?-X-Token=abc",
    ]
    assert bad == [6]
