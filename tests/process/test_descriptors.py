"""Descriptor exhaustion through /metrics (issue 15, item 1): a real daemon with its descriptor limit
lowered, ~1,020 idle connections to its metrics port, then SIGUSR2: the latch, the pending kill and
the audit records are all written."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import socket
from pathlib import Path

import pytest

from tests.process.conftest import Launcher, free_port, scrape_until, until, write_config

pytestmark = pytest.mark.integration

NOFILE = 128  # the daemon's limit here (1,024 by default without LimitNOFILE=): exhausted in seconds
IDLE_CONNECTIONS = 1020


def _low_descriptor_limit() -> None:  # runs in the child between fork and exec
    resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))


def _open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


async def test_idle_metrics_connections_cannot_keep_a_kill_from_its_latch_pending_and_audit(
    tmp_path: Path, launch: Launcher
) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < IDLE_CONNECTIONS + 200:
        pytest.skip(f"this test process may open only {hard} descriptors")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, IDLE_CONNECTIONS + 200), hard))
    metrics_port = free_port()
    # no gateway listens: the kill is persisted as pending (the write issue 15 saw fail)
    config = write_config(tmp_path, free_port(), metrics_port=metrics_port, connect_timeout="1s")
    d = await launch(config, preexec_fn=_low_descriptor_limit)
    conns: list[socket.socket] = []
    try:
        await scrape_until(metrics_port, lambda t: "ibkr_watchdog_kill_pending 0.0" in t, 20, "/metrics")
        for _ in range(IDLE_CONNECTIONS):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", metrics_port))  # the handshake completes in the kernel
            conns.append(s)
        # Each connection sends one byte as soon as it can (a client that never finishes its request
        # line): the byte completes the handshake on the daemon's side as soon as its listen queue has
        # room. Then wait until the daemon has taken every connection it will take: its descriptor
        # count reaches the limit, or does not move for 2 s (longer than TCP's first retransmit).
        silent = set(conns)
        seen: list[int] = []

        def settled() -> bool:
            for s in list(silent):
                with contextlib.suppress(OSError):
                    s.send(b"G")
                    silent.discard(s)
            seen.append(_open_fds(d.pid))
            return seen[-1] >= NOFILE - 8 or (len(seen) >= 40 and len(set(seen[-40:])) == 1)

        await until(settled, 20, "the daemon's descriptor count to settle")
        in_use = seen[-1]
        d.send(signal.SIGUSR2)
        await until(lambda: bool(d.events("kill.pending")), 15, "the pending kill's audit record")
        assert d.events("kill.triggered"), d.stderr
        pending = json.loads((d.state_dir / "pending-kill.json").read_text())
        assert pending["trigger"] == "manual:SIGUSR2" and pending["action"] == "cancel_all"
        assert d.latch()["state"] == "tripped"
        assert in_use < NOFILE // 2, f"the metrics server took {in_use} of {NOFILE} descriptors"
    finally:
        for s in conns:
            with contextlib.suppress(OSError):
                s.close()
    assert await d.stop() == 0
    assert "Too many open files" not in d.stderr, d.stderr[-3000:]
