"""`ibkr-watchdog check FILE`: every static check `run` makes, before it makes them.

Schema and cross-field errors (with file:line), then the checks that need no gateway: the
paper/live safety valve on the configured port, the notification targets including
`notifications.urls_file`, and warnings (a likely sign slip in a loss rule, metrics exposed
beyond loopback). Exit 0 = `run` will not refuse this file for a static reason; 2 = it would.
"""

from __future__ import annotations

import sys

from watchdog.config.describe import describe_config
from watchdog.config.load import load
from watchdog.daemon.preflight import preflight
from watchdog.errors import ConfigError

EXIT_OK, EXIT_USAGE = 0, 2


def check_command(path: str, *, quiet: bool = False) -> int:
    try:
        result = load(path)
    except ConfigError as e:
        for p in e.problems:
            print(p, file=sys.stderr)
        n = len(e.problems)
        print(f"{path}: {n} problem{'s' if n != 1 else ''}; nothing was changed", file=sys.stderr)
        return EXIT_USAGE
    for w in result.warnings:
        print(f"warning: {result.redact(str(w))}", file=sys.stderr)
    checked = preflight(result.config)
    for note in checked.warnings if not quiet else ():  # --quiet: errors only (ExecStartPre, install.sh)
        print(f"warning: {path}: {result.redact(note)}", file=sys.stderr)
    if checked.errors:
        for error in checked.errors:
            print(f"{path}: {result.redact(error)}", file=sys.stderr)
        n = len(checked.errors)
        print(f"{path}: {n} problem{'s' if n != 1 else ''}; `run` would refuse this file", file=sys.stderr)
        return EXIT_USAGE
    if not quiet:
        print(f"{path}: OK")
        listed = f"{len(result.config.notifications.targets)} notification target(s)"
        counted = f"{checked.targets} notification target(s) (urls_file included)"
        for line in describe_config(result.config):
            print(result.redact(line.replace(listed, counted)))  # a ${VAR} value is a secret here too
    return EXIT_OK
