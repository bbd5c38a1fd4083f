"""Find the state directory for `kill`, `reset`, `status`, `history` and `report` — without a valid config.

A manual kill must go out whenever a daemon runs, also after a rejected reload left a broken
rules.yaml on disk (the daemon keeps its last good config). So these commands take `--state-dir`
(no config read at all) or `--pid`, and with a config that fails validation they still read its
`state_dir:` key as it is on disk and say that the file is invalid.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from watchdog.errors import ConfigError

INSTALLED_CONFIG = Path("/etc/ibkr-watchdog/rules.yaml")  # deploy/install.sh puts it there
DEFAULT_STATE_DIR = Path("/var/lib/ibkr-watchdog")  # the schema's default `state_dir`
_STATE_DIR_LINE = re.compile(r"""^state_dir:\s*["']?([^"'#\s]+)""", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Located:
    """Where the state is (None: unknown), warnings for the operator, or why it cannot be found."""

    state_dir: Path | None
    warnings: list[str] = field(default_factory=list)
    error: str = ""

    def print_warnings(self, command: str) -> None:
        for w in self.warnings:
            print(f"ibkr-watchdog {command}: warning: {w}", file=sys.stderr)


def default_config(given: str | None) -> str:
    """`--config` as given, else ./rules.yaml, else the installed /etc/ibkr-watchdog/rules.yaml."""
    if given is not None:
        return given
    if not Path("rules.yaml").exists() and INSTALLED_CONFIG.exists():
        return str(INSTALLED_CONFIG)
    return "rules.yaml"


def locate(config_path: str | None, state_dir: str | None) -> Located:
    """The state dir from `--state-dir`, else from the config (valid or not), else the default one."""
    if state_dir is not None:
        return Located(Path(state_dir))
    path = default_config(config_path)
    from watchdog.config.load import load  # imported when used: `--state-dir` needs no config code

    if not Path(path).exists():
        missing = f"no {path} here and no {INSTALLED_CONFIG}" if config_path is None else f"{path} not found"
        return Located(DEFAULT_STATE_DIR, [f"{missing}; using the default state dir {DEFAULT_STATE_DIR}"])
    try:
        return Located(Path(load(path).config.state_dir))
    except ConfigError as exc:
        problems = exc.problems
        first = str(problems[0]) if problems else str(exc)
        n = len(problems)
        found = _state_dir_as_written(path)
        where = (
            f"state dir {found} as written there" if found else f"the default state dir {DEFAULT_STATE_DIR}"
        )
        warning = (
            f"{path} is invalid on disk ({n} problem{'s' if n != 1 else ''}; first: {first}); "
            f"a running daemon keeps its last good config. Using {where}."
        )
        return Located(found or DEFAULT_STATE_DIR, [warning])


def _state_dir_as_written(path: str) -> Path | None:
    """`state_dir:` read leniently from a file that fails validation (plain YAML, else a line match)."""
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return None
    value: object = None
    with contextlib.suppress(yaml.YAMLError, ValueError, RecursionError):
        data = yaml.safe_load(text)
        if isinstance(data, dict):
            value = data.get("state_dir")
    if value is None:
        match = _STATE_DIR_LINE.search(text)
        value = match.group(1) if match else None
    if isinstance(value, str) and value and "${" not in value:
        return Path(os.path.expanduser(value))
    return None


def state_dir_of_process(pid: int) -> Path | None:
    """The state dir of daemon `pid` (`kill --pid N` alone): the directory it holds locked, else the
    `state_dir` of the config its command line runs (`ibkr-watchdog run --config FILE`, relative to its
    working directory). None when neither can be read; the caller still verifies the pid against it.
    """
    from watchdog.state.pidfile import daemon_arguments, state_dir_of

    held = state_dir_of(pid)
    if held is not None:
        return held
    args = daemon_arguments(pid)
    if args is None:
        return None
    config = "rules.yaml"
    for i, a in enumerate(args):
        if a in ("--config", "-c") and i + 1 < len(args):
            config = args[i + 1]
        elif a.startswith("--config="):
            config = a.split("=", 1)[1]
    try:
        cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
    except OSError:
        return None
    if not (cwd / config).is_file():
        return None
    found = locate(str(cwd / config), None).state_dir
    return cwd / found if found is not None else None  # a relative state_dir is the daemon's, not ours
