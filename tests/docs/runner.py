"""Runs README commands for real: one-shot runs, and the simulator + daemon rehearsal they drive.

Used by `test_readme.py`; the policy of what runs and how is in `readme_commands.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import re
import shutil
import signal
import socket
import sys
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from tests.docs.readme_commands import REPO, Command, Kind, classify, mapped_env, unwrap, watchdog_argv
from watchdog.commands.status import status_data

RUN_TIMEOUT = 55.0  # one command (the demo promises < 1 minute)
START_TIMEOUT = 20.0  # simulator listening / daemon connected
SETTLE_TIMEOUT = 20.0  # a kill finished, a reset taken
DEFAULT_GATEWAY_PORT, DEFAULT_METRICS_PORT = 4002, 9108  # what rules.yaml and the README say


@dataclass(frozen=True, slots=True)
class Result:
    cmd: Command
    returncode: int
    stdout: str
    stderr: str

    def problem(self) -> str | None:
        if self.returncode != 0:
            return f"{self.cmd.where()}: exit {self.returncode}\n{self.stdout}\n{self.stderr}"
        missing = _missing_output(self.cmd.expected, self.stdout)
        if missing is not None:
            return f"{self.cmd.where()}: the README shows {missing!r}, the real output is:\n{self.stdout}"
        return None


def _missing_output(expected: Sequence[str], actual: str) -> str | None:
    """The first shown line that is not in the real output in order (`...` matches anything)."""
    lines = [x.rstrip() for x in actual.splitlines()]
    at = 0
    for want in (e.rstrip() for e in expected):
        if want.strip() == "...":
            continue
        while at < len(lines) and lines[at] != want:
            at += 1
        if at == len(lines):
            return want
        at += 1
    return None


async def run_command(cmd: Command, workdir: Path, timeout: float = RUN_TIMEOUT) -> Result:
    inv = unwrap(cmd.tokens)
    proc = await asyncio.create_subprocess_exec(
        *watchdog_argv(inv, sys.executable, workdir),
        cwd=workdir,
        env={**os.environ, **mapped_env(inv, workdir)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await asyncio.wait_for(proc.wait(), 5)
        raise AssertionError(f"{cmd.where()}: still running after {timeout:g}s") from None
    assert proc.returncode is not None
    return Result(cmd, proc.returncode, out.decode(), err.decode())


def workdir_copy(root: Path, name: str) -> Path:
    """A temporary working copy: the repository's rules.yaml and an (empty) credentials folder."""
    d = root / name
    (d / "credentials").mkdir(parents=True)
    shutil.copy(REPO / "rules.yaml", d / "rules.yaml")
    return d


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
        return str(r.read().decode())


async def _until(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll an external process's observable state (files, HTTP) until the predicate is truthy."""
    async with asyncio.timeout(timeout):
        while True:
            with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                value = predicate()
                if value:
                    return value
            await asyncio.sleep(0.1)
    raise AssertionError(f"gave up waiting for {what}")  # pragma: no cover - asyncio.timeout raises


@dataclass(slots=True)
class Background:
    proc: asyncio.subprocess.Process
    out: Path
    err: Path
    files: tuple[IO[bytes], ...]

    def text(self) -> str:
        return self.out.read_text(errors="replace") + self.err.read_text(errors="replace")

    async def stop(self, sig: signal.Signals) -> int:
        if self.proc.returncode is None:
            self.proc.send_signal(sig)
        try:
            await asyncio.wait_for(self.proc.wait(), 15)
        except TimeoutError:
            self.proc.kill()
            await asyncio.wait_for(self.proc.wait(), 5)
        for f in self.files:
            f.close()
        assert self.proc.returncode is not None
        return self.proc.returncode


class Rehearsal:
    """The README's sim / run / status / kill / reset / curl commands, in README order, for real."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.workdir = workdir_copy(root, "live")
        self.metrics_port = _free_port()
        self.sim: Background | None = None
        self.daemon: Background | None = None
        self.done: list[Command] = []

    async def start(self, cmd: Command, name: str, argv: list[str]) -> Background:
        out, err = self.root / f"{name}.out", self.root / f"{name}.err"
        files = (out.open("wb"), err.open("wb"))
        inv = unwrap(cmd.tokens)
        proc = await asyncio.create_subprocess_exec(
            *argv, cwd=self.workdir, env={**os.environ, **mapped_env(inv, self.workdir)},
            stdin=asyncio.subprocess.DEVNULL, stdout=files[0], stderr=files[1],
        )  # fmt: skip
        return Background(proc, out, err, files)

    async def do(self, cmd: Command) -> None:
        kind = classify(cmd)
        assert kind is not None, cmd.where()
        handler = {
            Kind.SIM: self.do_sim,
            Kind.DAEMON: self.do_daemon,
            Kind.CONTROL: self.do_control,
            Kind.SCRAPE: self.do_scrape,
        }[kind]
        await handler(cmd)
        self.done.append(cmd)

    async def do_sim(self, cmd: Command) -> None:
        argv = watchdog_argv(unwrap(cmd.tokens), sys.executable, self.workdir)
        if "--port" in argv:
            argv[argv.index("--port") + 1] = "0"  # ephemeral: tests never take a fixed port
        else:
            argv += ["--port", "0"]
        bg = await self.start(cmd, f"sim{len(self.done)}", argv)
        found = await _until(
            lambda: re.search(r"listening on 127\.0\.0\.1:(\d+)", bg.out.read_text()),
            START_TIMEOUT,
            "the sim",
        )
        if self.sim is None:  # the first simulator serves the daemon
            self.sim = bg
            self._write_config(int(found.group(1)))
        else:
            code = await bg.stop(signal.SIGINT)
            assert code == 0 and "simulator stopped" in bg.text(), f"{cmd.where()}:\n{bg.text()}"

    def _write_config(self, sim_port: int) -> None:
        """The repository's rules.yaml, with only the two ports changed (so the test never drifts from it)."""
        path = self.workdir / "rules.yaml"
        text = path.read_text(encoding="utf-8")
        for old, new in ((DEFAULT_GATEWAY_PORT, sim_port), (DEFAULT_METRICS_PORT, self.metrics_port)):
            text, n = re.subn(rf"^(\s+port:\s+){old}\b", rf"\g<1>{new}", text, flags=re.MULTILINE)
            assert n == 1, f"rules.yaml should say `port: {old}` exactly once (the README relies on it)"
        path.write_text(text, encoding="utf-8")

    async def do_daemon(self, cmd: Command) -> None:
        assert self.sim is not None, f"{cmd.where()}: the README starts the daemon before the simulator"
        assert self.daemon is None, f"{cmd.where()}: a second daemon on the same state dir"
        self.daemon = await self.start(
            cmd, "daemon", watchdog_argv(unwrap(cmd.tokens), sys.executable, self.workdir)
        )
        daemon = self.daemon

        def ready() -> bool:
            assert daemon.proc.returncode is None, f"{cmd.where()}: the daemon exited:\n{daemon.text()}"
            scraped = _scrape(self.metrics_port)
            return (
                "ibkr_watchdog_gateway_connected 1.0" in scraped and (self.state_dir / "status.json").exists()
            )

        await _until(ready, START_TIMEOUT, "the daemon to connect")

    @property
    def state_dir(self) -> Path:
        return self.workdir / "state"  # rules.yaml: state_dir: ./state

    async def do_control(self, cmd: Command) -> None:
        assert self.daemon is not None, f"{cmd.where()}: needs the daemon the README starts earlier"
        sub = unwrap(cmd.tokens).argv[1]
        started = time.time()
        r = await run_command(cmd, self.workdir, timeout=30)
        deadline = time.monotonic() + SETTLE_TIMEOUT
        while sub == "plan" and r.returncode == 5 and "planned before the last kill ended" in r.stdout:
            # right after a kill the daemon plans the changed book once its positions are read again
            assert time.monotonic() < deadline, f"{cmd.where()}: no plan after the kill:\n{r.stdout}"
            await asyncio.sleep(0.2)
            r = await run_command(cmd, self.workdir, timeout=30)
        tripped = sub == "status" and r.returncode == 1  # status's documented exit code for TRIPPED
        not_ready = sub == "plan" and r.returncode == 4  # plan's documented exit code for NOT READY
        problem = dataclasses.replace(r, returncode=0).problem() if tripped or not_ready else r.problem()
        assert problem is None, problem + "\n" + self.daemon.text()
        if sub == "status":
            assert f"running, pid {self.daemon.proc.pid}" in r.stdout, r.stdout
        elif sub in ("history", "report"):
            assert ("→ flat" if sub == "history" else "outcome: flat") in r.stdout, r.stdout
        elif sub == "kill":
            action = "cancel_all" if "--cancel-only" in cmd.tokens else "close_all"

            def finished() -> dict[str, Any] | None:
                last = status_data(self.state_dir)["last_kill"]
                return last if last and last["started"] >= started - 1 and last.get("finished") else None

            last = await _until(finished, SETTLE_TIMEOUT, f"the kill of {cmd.where()}")
            assert last["action"] == action and last["outcome"] == "flat", last
            reason = cmd.tokens[cmd.tokens.index("--reason") + 1]
            assert reason in last["reason"], last
            assert status_data(self.state_dir)["latch"]["state"] == "tripped"
            if "--wait" in cmd.tokens:
                assert "outcome: flat" in r.stdout, r.stdout
        elif sub == "reset":
            assert status_data(self.state_dir)["latch"]["state"] == "armed", r.stdout
        elif sub == "plan":
            assert "Kill readiness: " in r.stdout and "nothing was sent" in r.stdout, r.stdout

    async def do_scrape(self, cmd: Command) -> None:
        assert self.daemon is not None, f"{cmd.where()}: needs the daemon the README starts earlier"
        bar = cmd.tokens.index("|")
        urls = [t for t in cmd.tokens[:bar] if t.startswith("http")]
        assert urls == [f"http://127.0.0.1:{DEFAULT_METRICS_PORT}/metrics"], cmd.where()
        pattern = cmd.tokens[-1]
        scraped = await asyncio.to_thread(_scrape, self.metrics_port)
        assert any(re.search(pattern, line) for line in scraped.splitlines()), f"{cmd.where()}: no match"

    async def close(self) -> list[str]:
        """Stop the daemon (SIGTERM) and the simulator (SIGINT); both must exit 0."""
        problems = []
        for bg, sig in ((self.daemon, signal.SIGTERM), (self.sim, signal.SIGINT)):
            if bg is not None:
                code = await bg.stop(sig)
                if code != 0:
                    problems.append(f"exit {code} after {sig.name}:\n{bg.text()}")
        return problems
