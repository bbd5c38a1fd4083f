"""Every command in README.md is run, or checked by an explicit exemption rule; anything else fails.

The policy and the rule table live in `tests/docs/readme_commands.py` (and, in short, in the README's
"Development" section). In one sentence: `sh` / `console` blocks hold commands; `ibkr-watchdog` commands
run for real in a temporary copy of `rules.yaml` (`sim` and `run` start a real simulator and daemon,
`status` / `kill` / `reset` / the metrics scrape act on them, in README order); `make`, `systemctl`,
`journalctl`, `install.sh` and `sudoedit` are checked, not run; a command no rule covers is an error.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

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
    readme_commands,
    unwrap,
)
from tests.docs.runner import Rehearsal, run_command, workdir_copy

CMDS = readme_commands()


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


def test_drill_commands_parse_and_the_drill_tests_run_the_example() -> None:
    from watchdog.cli import _parser

    drills = of(Kind.DRILL)
    assert drills, "the README shows how to run the fire drill"
    for c in drills:
        args = _parser().parse_args(list(unwrap(c.tokens).argv[1:]))
        assert args.command == "drill", c.where()
    assert (REPO / "tests" / "drill" / "test_drill_command.py").is_file()


def _handled_signals() -> set[str]:
    source = (REPO / "watchdog" / "daemon" / "lifecycle.py").read_text(encoding="utf-8")
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
@pytest.mark.integration
async def test_standalone_commands_exit_0_and_print_what_the_readme_shows(tmp_path: Path) -> None:
    workdir = workdir_copy(tmp_path, "plain")
    runs = of(Kind.RUN)
    assert any(c.expected for c in runs), "the README shows check output in a console block"
    results = await asyncio.gather(*(run_command(c, workdir) for c in runs))  # the demos take ~15 s together
    problems = [p for p in (r.problem() for r in results) if p]
    assert not problems, "\n\n".join(problems)
    for r in results:
        if "demo" in r.cmd.tokens:
            assert r.stdout.splitlines()[-1].startswith("PASS: "), r.cmd.where()


# ---------------------------------------------------------------------- the rehearsal: sim + daemon
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
