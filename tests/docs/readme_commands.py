"""README.md → commands, and the rule that says how each one is verified (run it, or check it).

The policy (also stated in the README's "Development" section):

* Every fenced block carries an info string. Blocks marked `sh` or `console` hold commands; blocks
  marked `text`, `yaml` or `python` are samples and are never run.
* In a `sh` block every non-blank line is a command (a trailing backslash continues it, `#` starts a
  comment). In a `console` block the lines starting with `$ ` are commands and the lines under them
  are output that must appear, in that order, in the real output (a `...` line stands for any lines).
* Every command is classified by the first matching rule below. A command that matches no rule is an
  error: the README cannot grow a command nobody runs or checks.

Kinds, and how each is verified:

* `RUN`: `ibkr-watchdog check | demo | --help | --version`. Run; exit 0; console output must appear.
* `SIM`: `ibkr-watchdog sim ...`. Started on an ephemeral port (`--port 0`); must listen. The first
  one then serves the daemon; any later one is stopped again (SIGINT) and must exit 0.
* `DAEMON`: `ibkr-watchdog run --config ...`. Started against that simulator; must connect.
* `CONTROL`: `ibkr-watchdog status | kill | reset | plan | history | report`. Run against that daemon
  in README order; the effect is checked (a kill finished flat with the README's reason, the latch
  tripped / re-armed, a readiness plan printed, `kill --wait`, `history` and `report` print the flat
  outcome). `status` may exit 1 (TRIPPED): its documented exit code.
* `SCRAPE`: `curl -s http://127.0.0.1:9108/metrics | grep PATTERN`. The daemon's metrics are
  fetched and some line must match.
* `MAKE`: `make TARGET...`. Exempt from running (they ARE CI); every target must exist in the Makefile.
* `SYSTEMD`: `systemctl ...`, `journalctl ...` (with or without sudo). `bash -n`; unit names exist in
  systemd/; `systemctl kill` sends only signals the daemon handles, to the main process only.
* `INSTALL`: `deploy/install.sh ...` (with sudo, or DESTDIR=). `bash -n`; every flag appears in
  `install.sh --help`.
* `EDIT`: `sudoedit /etc/ibkr-watchdog/...`. `bash -n`; a file install.sh creates.
* `DRILL`: `ibkr-watchdog drill ...`. Its arguments must parse; the drill itself (about 40 s) runs as a real
  process in `tests/drill/test_drill_command.py` on the example config.

`ibkr-watchdog` may be spelled `.venv/bin/ibkr-watchdog` or `/opt/ibkr-watchdog/venv/bin/ibkr-watchdog` and
be wrapped in `sudo [-u USER]` and `env VAR=VALUE`: the test runs it as the current user with
`python -m watchdog`, maps `/etc/ibkr-watchdog/` onto its temporary working copy and keeps the `env`
variables (with the same mapping).
"""

from __future__ import annotations

import enum
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"

COMMAND_BLOCKS = frozenset({"sh", "console"})
SAMPLE_BLOCKS = frozenset({"text", "yaml", "python"})
WATCHDOG_EXES = frozenset(
    {"ibkr-watchdog", ".venv/bin/ibkr-watchdog", "/opt/ibkr-watchdog/venv/bin/ibkr-watchdog"}
)
ETC = "/etc/ibkr-watchdog/"
RUN_SUBCOMMANDS = frozenset({"check", "demo"})
CONTROL_SUBCOMMANDS = frozenset({"status", "kill", "reset", "plan", "history", "report"})
_FENCE = re.compile(r"^```(.*)$")
_ENV_ASSIGNMENT = re.compile(r"^[A-Z_][A-Z0-9_]*=")


class Kind(enum.Enum):
    RUN = "run"
    SIM = "sim"
    DAEMON = "daemon"
    CONTROL = "control"
    SCRAPE = "scrape"
    MAKE = "make"
    SYSTEMD = "systemd"
    INSTALL = "install"
    EDIT = "edit"
    DRILL = "drill"


EXEMPT = frozenset({Kind.MAKE, Kind.SYSTEMD, Kind.INSTALL, Kind.EDIT, Kind.DRILL})


@dataclass(frozen=True, slots=True)
class Block:
    info: str
    line: int  # 1-based line of the opening fence
    body: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Command:
    text: str  # as written (continuations joined, comment kept for bash -n)
    line: int
    tokens: tuple[str, ...]  # shlex tokens, comments removed
    expected: tuple[str, ...] = ()  # console output lines shown under it

    def where(self) -> str:
        return f"README.md:{self.line}: {self.text}"


@dataclass(frozen=True, slots=True)
class Invocation:
    """A command with its sudo / env wrapping taken off."""

    sudo: bool
    env: dict[str, str] = field(default_factory=dict)
    argv: tuple[str, ...] = ()


def blocks(text: str) -> list[Block]:
    out: list[Block] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if m is None:
            i += 1
            continue
        start, info, body = i + 1, m.group(1).strip(), []
        i += 1
        while i < len(lines) and not lines[i].startswith("```"):
            body.append(lines[i])
            i += 1
        if i == len(lines):
            raise AssertionError(f"README.md:{start}: fenced block never closed")
        out.append(Block(info, start, tuple(body)))
        i += 1
    return out


def _logical_lines(block: Block) -> list[tuple[int, str]]:
    """(line number, text) with backslash continuations joined."""
    out: list[tuple[int, str]] = []
    pending: tuple[int, str] | None = None
    for offset, raw in enumerate(block.body, start=block.line + 1):
        pending = (offset, raw) if pending is None else (pending[0], pending[1] + " " + raw.strip())
        if pending[1].rstrip().endswith("\\"):
            pending = (pending[0], pending[1].rstrip()[:-1].rstrip())
            continue
        out.append(pending)
        pending = None
    if pending is not None:
        out.append(pending)
    return out


def _command(line: int, text: str, expected: tuple[str, ...] = ()) -> Command:
    return Command(text.strip(), line, tuple(shlex.split(text, comments=True)), expected)


def commands(text: str) -> list[Command]:
    out: list[Command] = []
    for b in blocks(text):
        if b.info == "sh":
            out += [
                _command(n, t) for n, t in _logical_lines(b) if t.strip() and not t.lstrip().startswith("#")
            ]
        elif b.info == "console":
            current: tuple[int, str] | None = None
            shown: list[str] = []
            for n, t in _logical_lines(b):
                if t.startswith("$ "):
                    if current is not None:
                        out.append(_command(*current, tuple(shown)))
                    current, shown = (n, t[2:]), []
                elif current is not None:
                    shown.append(t)
                elif t.strip():
                    raise AssertionError(f"README.md:{n}: console output before any `$ ` command: {t}")
            if current is not None:
                out.append(_command(*current, tuple(shown)))
    return out


def unwrap(tokens: tuple[str, ...]) -> Invocation:
    """Strip `sudo [-u USER]`, `env VAR=VALUE ...` and `VAR=VALUE` prefixes."""
    rest = list(tokens)
    sudo = False
    env: dict[str, str] = {}
    if rest and rest[0] == "sudo":
        sudo, rest = True, rest[1:]
        if rest[:1] == ["-u"]:
            rest = rest[2:]
    if rest and rest[0] == "env":
        rest = rest[1:]
    while rest and _ENV_ASSIGNMENT.match(rest[0]):
        key, _, value = rest.pop(0).partition("=")
        env[key] = value
    return Invocation(sudo, env, tuple(rest))


def classify(cmd: Command) -> Kind | None:
    tokens = cmd.tokens
    if not tokens:
        return None
    if "|" in tokens:
        ok = tokens[0] == "curl" and tokens.count("|") == 1 and tokens[tokens.index("|") + 1] == "grep"
        return Kind.SCRAPE if ok else None
    if any(t in {"&&", "||", ";", ">", ">>", "<", "&"} for t in tokens):
        return None  # one command per line: compound lines would escape the rules
    inv = unwrap(tokens)
    if not inv.argv:
        return None
    exe = inv.argv[0]
    if exe == "make" and not inv.sudo and not inv.env:
        return Kind.MAKE
    if exe in {"systemctl", "journalctl"}:
        return Kind.SYSTEMD
    if exe == "deploy/install.sh":
        return Kind.INSTALL
    if exe == "sudoedit" and not inv.sudo:
        return Kind.EDIT
    if exe in WATCHDOG_EXES:
        sub = inv.argv[1] if len(inv.argv) > 1 else ""
        if sub in RUN_SUBCOMMANDS or sub in {"--help", "--version"}:
            return Kind.RUN
        if sub == "sim":
            return Kind.SIM
        if sub == "run":
            return Kind.DAEMON
        if sub in CONTROL_SUBCOMMANDS:
            return Kind.CONTROL
        if sub == "drill":
            return Kind.DRILL
    return None


def watchdog_argv(inv: Invocation, python: str, workdir: Path) -> list[str]:
    """The argv to run: `python -m watchdog ...` with /etc/ibkr-watchdog/ mapped onto `workdir`."""
    assert inv.argv[0] in WATCHDOG_EXES
    return [python, "-m", "watchdog", *(map_path(a, workdir) for a in inv.argv[1:])]


def mapped_env(inv: Invocation, workdir: Path) -> dict[str, str]:
    return {k: map_path(v, workdir) for k, v in inv.env.items()}


def map_path(arg: str, workdir: Path) -> str:
    if arg.startswith(ETC):
        return str(workdir / arg[len(ETC) :])
    if arg == ETC.rstrip("/"):
        return str(workdir)
    return arg


def readme_commands() -> list[Command]:
    return commands(README.read_text(encoding="utf-8"))
