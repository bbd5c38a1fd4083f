"""OnFailure= alert: tell a person that a watchdog unit failed for good (ibkr-watchdog-failure@.service).

Reads the apprise URLs from the systemd credential `notify-urls` (one URL per line, `#` comments,
optional `severity,severity=URL` prefix as in rules.yaml's urls_file) and sends one critical message
to every URL that takes critical alerts. URLs are secrets: they are never printed.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import sys
from collections.abc import Sequence
from pathlib import Path

# "critical,warning=tgram://..." or a bare URL; the scheme check keeps "key=value" query strings intact.
_LINE = re.compile(r"^(?:(?P<sev>[A-Za-z]+(?:\s*,\s*[A-Za-z]+)*)\s*=\s*)?(?P<url>[A-Za-z][\w+.-]*://\S+)$")
_SEVERITIES = frozenset({"info", "warning", "critical"})
# sd-daemon(3) priority prefixes: journald files these lines at the given level.
_CRIT = "<2>"
_ERR = "<3>"
_INFO = "<6>"


def critical_urls(text: str) -> tuple[list[str], list[int]]:
    """URLs that take critical alerts, and the line numbers that could not be parsed."""
    urls: list[str] = []
    bad: list[int] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = _LINE.match(line)
        if m is None:
            bad.append(number)
            continue
        sev = m.group("sev")
        wanted = {s.strip().lower() for s in sev.split(",")} if sev else set(_SEVERITIES)
        if not wanted <= _SEVERITIES:
            bad.append(number)
            continue
        if "critical" in wanted:
            urls.append(m.group("url"))
    return urls, bad


def message(unit: str, host: str) -> tuple[str, str]:
    """Title and body: what failed, what it means, and the commands a person runs next."""
    title = f"ibkr-watchdog DOWN on {host}: {unit} failed for good"
    body = (
        f"{unit} on {host} failed and systemd stopped restarting it. "
        "The watchdog is NOT watching the account: no rule, no kill switch until it runs again.\n"
        f"Inspect: journalctl -u {unit} -n 200 --no-pager\n"
        f"Status: systemctl status {unit}\n"
        f"After fixing: systemctl reset-failed {unit} && systemctl start {unit}"
    )
    return title, body


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("unit", help="the failed unit (%%i of ibkr-watchdog-failure@.service)")
    p.add_argument("--urls-file", default=None, help="default: $CREDENTIALS_DIRECTORY/notify-urls")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    unit: str = args.unit
    host = socket.gethostname()
    title, body = message(unit, host)
    # The journal always gets the alert, whatever happens to the chat delivery below.
    print(f"{_CRIT}{title}", flush=True)
    path = args.urls_file
    if path is None:
        cred_dir = os.environ.get("CREDENTIALS_DIRECTORY")
        if not cred_dir:
            print(f"{_ERR}no --urls-file and no $CREDENTIALS_DIRECTORY: nobody to notify", flush=True)
            return 1
        path = os.path.join(cred_dir, "notify-urls")
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        print(f"{_ERR}cannot read the notify-urls credential: {exc.strerror}", flush=True)
        return 1
    urls, bad = critical_urls(text)
    for number in bad:
        print(f"{_ERR}notify-urls line {number}: not `URL` or `severity,...=URL`; skipped", flush=True)
    if not urls:
        print(f"{_ERR}notify-urls lists no URL for critical alerts: nobody was notified", flush=True)
        return 1

    import apprise  # imported late: the journal line above must not wait on a slow import

    sender = apprise.Apprise()
    added = 0
    for index, url in enumerate(urls, start=1):
        if sender.add(url):
            added += 1
        else:
            print(f"{_ERR}critical URL #{index} is not a valid apprise URL; skipped", flush=True)
    if added == 0:
        return 1
    ok = bool(sender.notify(title=title, body=body))
    print(
        f"{_INFO if ok else _ERR}notification {'sent' if ok else 'FAILED'} to {added} target(s)", flush=True
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
