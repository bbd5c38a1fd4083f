"""Helpers for the drill tests: `ibkr-watchdog drill` as a real process, its three report files."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "rules.yaml"


@dataclass
class DrillRun:
    returncode: int
    stdout: str
    stderr: str
    report_dir: Path

    def json(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.report_dir / "drill.json").read_text(encoding="utf-8"))
        return data

    def scenario(self, sid: str) -> dict[str, Any]:
        return next(s for s in self.json()["scenarios"] if s["id"] == sid)


def run_drill(cwd: Path, *args: str, timeout: float = 150.0) -> DrillRun:
    """`python -m watchdog drill ARGS --report cwd/report` in `cwd` (so a relative state_dir is fresh)."""
    report, n = cwd / "report", 1
    while report.exists():  # a second drill in the same directory gets its own report (no --force)
        n += 1
        report = cwd / f"report-{n}"
    proc = subprocess.run(
        [sys.executable, "-m", "watchdog", "drill", *args, "--report", str(report)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return DrillRun(proc.returncode, proc.stdout, proc.stderr, report)


def example_with(tmp_path: Path, old: str, new: str, name: str = "rules.yaml") -> Path:
    """The example config with one text replaced (the replacement must apply)."""
    text = EXAMPLE.read_text(encoding="utf-8")
    assert old in text, old
    path = tmp_path / name
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


class _Inbox(BaseHTTPRequestHandler):
    bodies: ClassVar[list[dict[str, object]]] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        type(self).bodies.append(json.loads(self.rfile.read(length) or b"{}"))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def inbox() -> Iterator[tuple[int, list[dict[str, object]]]]:
    """The operator's own notification endpoint (what their apprise json:// target would reach)."""
    handler = type("Inbox", (_Inbox,), {"bodies": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1]), handler.bodies
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=2)


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released): a dead on-call endpoint."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
