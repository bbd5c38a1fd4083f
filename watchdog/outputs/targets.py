"""Notification targets: apprise URLs with their severities, from the config and a secret file; redaction.

A URL is a secret (webhook tokens, passwords, bot ids). It is only ever shown through
`describe_url()` — scheme plus host for plain HTTP-style targets, scheme alone otherwise — and
`SecretFilter` scrubs its parts from any log record that still carries them (apprise, urllib3).
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from watchdog.config.input_file import InputFileError, read_input_file
from watchdog.config.redaction import Redactor
from watchdog.config.schema import NotificationsConfig
from watchdog.model import Severity

log = logging.getLogger(__name__)

ALL_SEVERITIES = frozenset(Severity)
# Schemes whose host part is a plain host name, not a token (tgram://BOTTOKEN/..., discord://ID/TOKEN).
_HOST_IS_PUBLIC = frozenset({"json", "jsons", "xml", "xmls", "form", "forms", "apprise", "apprises"})
_PREFIX = re.compile(r"^\s*([A-Za-z]+(?:\s*,\s*[A-Za-z]+)*)\s*=\s*(\S.*)$")
_TOKEN_SPLIT = re.compile(r"[/:@?&=#,;+\s]+")
_MIN_SECRET = 6  # shorter URL pieces (ports, "json", "hooks") are not worth scrubbing from every log line
_SECRET_KEY = re.compile(r"token|key|secret|pass|auth|sig|pwd", re.IGNORECASE)
_LONG_WORD = 16  # a lowercase piece this long is treated as a token even without digits


def _looks_secret(tok: str) -> bool:
    """Tokens, keys and ids mix digits or cases; plain words ("notifications", "webhook") do not.

    Scrubbing plain words would garble messages that merely contain them.
    """
    if len(tok) < _MIN_SECRET or tok.isdigit():
        return False
    mixed_case = any(c.isupper() for c in tok) and any(c.islower() for c in tok)
    if any(c.isdigit() for c in tok) or mixed_case:
        return True
    # a long lowercase piece is a token, unless it is a slug of words ("drill-manual-kill"): masking
    # its 6-letter pieces would blank ordinary words ("manual") out of every message
    return len(tok) >= _LONG_WORD and not any(c in "-_." for c in tok)


REDACTED = "***"


@dataclass(frozen=True, slots=True)
class TargetSpec:
    """One apprise URL and the severities it receives. The URL never appears in repr()."""

    url: str = field(repr=False)
    severities: frozenset[Severity] = ALL_SEVERITIES
    source: str = "config"  # "config #1", "urls_file:3" — where it came from, safe to log

    @property
    def label(self) -> str:
        return f"{self.source} ({describe_url(self.url)})"


def describe_url(url: str) -> str:
    """A log-safe name for a URL: `json://127.0.0.1:8080/…`, `tgram://…`."""
    try:
        parts = urlsplit(url.strip())
        scheme = parts.scheme.lower() or "?"
        if scheme in _HOST_IS_PUBLIC and parts.hostname:
            host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
            port = f":{parts.port}" if parts.port else ""
            return f"{scheme}://{host}{port}/…"
    except ValueError:
        return "?://…"
    return f"{scheme}://…"


def secret_fragments(url: str) -> set[str]:
    """Pieces of a URL that may be secret: the password, token-like path and query pieces, the whole URL."""
    frags = {url.strip()}
    try:
        parts = urlsplit(url.strip())
        scheme = parts.scheme.lower()
        if parts.password and len(parts.password) >= 4:
            frags.add(parts.password)  # a password is a secret even when it looks like a word
        public_host = parts.hostname if scheme in _HOST_IS_PUBLIC else None
        pieces = [parts.netloc.rpartition("@")[2], *_TOKEN_SPLIT.split(parts.path)]
        for key, value in parse_qsl(parts.query, keep_blank_values=False):
            if _SECRET_KEY.search(key) and len(value) >= 4:
                frags.add(value)  # ?token=…, +X-Api-Key=…: secret whatever it looks like
            pieces.append(value)
        for piece in pieces:
            for tok in _TOKEN_SPLIT.split(piece):
                if _looks_secret(tok) and tok != public_host:
                    frags.add(tok)
    except ValueError:
        return frags
    return {f for f in frags if f}


def redact(text: str, fragments: Iterable[str]) -> str:
    """Mask whole fragments (longest first, so a whole URL goes before its pieces), then any run of
    TOKEN_PIECE or more characters of a token, password or key (a webhook answer quoting part of its
    token). Whole URLs are not cut into pieces: their scheme and host are words every message uses."""
    frags = sorted(fragments, key=len, reverse=True)
    for frag in frags:
        if frag in text:
            text = text.replace(frag, REDACTED)
    return _piece_redactor(frozenset(f for f in frags if "://" not in f))(text)


# Log lines and notifications are mostly our own words: a 6-character piece of a token is specific
# enough ("Passw" would mask "Password"); a config error masks 4-character pieces of quoted values.
TOKEN_PIECE = 6


@functools.lru_cache(maxsize=8)
def _piece_redactor(tokens: frozenset[str]) -> Redactor:
    return Redactor(tokens, TOKEN_PIECE)


class SecretFilter(logging.Filter):
    """Scrubs known secret fragments from records of the loggers it is attached to."""

    def __init__(self) -> None:
        super().__init__()
        self.fragments: frozenset[str] = frozenset()

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.fragments:
            return True
        text = record.getMessage()
        had_exc = bool(record.exc_info)
        if had_exc:
            # A traceback may quote the URL; keep its text, scrubbed, and drop the live exception.
            trace = logging.Formatter().formatException(record.exc_info)  # type: ignore[arg-type]
            text += " | " + " | ".join(trace.splitlines())
            record.exc_info, record.exc_text = None, None
        clean = redact(text, self.fragments)
        if had_exc or clean != text:
            record.msg, record.args = clean, None
        return True


def parse_urls_file(text: str, source: str = "urls_file") -> tuple[list[TargetSpec], list[str]]:
    """Lines `critical,warning=URL` or a bare URL (every severity); `#` comments and blank lines skipped.

    Problems name the line only, never its content: the content is a secret.
    """
    targets: list[TargetSpec] = []
    problems: list[str] = []
    for n, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = _PREFIX.match(line)
        severities = ALL_SEVERITIES
        if m:
            words = [w.strip().lower() for w in m.group(1).split(",")]
            bad = [w for w in words if w not in {s.value for s in Severity}]
            if bad:
                names = ", ".join(map(repr, bad))
                problems.append(f"{source}:{n}: unknown severity {names} (use info, warning, critical)")
                continue
            severities = frozenset(Severity(w) for w in words)
            line = m.group(2).strip()
        if "://" not in line:
            problems.append(f"{source}:{n}: not an apprise URL (expected scheme://…)")
            continue
        targets.append(TargetSpec(url=line, severities=severities, source=f"{source}:{n}"))
    return targets, problems


def load_targets(config: NotificationsConfig) -> tuple[list[TargetSpec], list[str]]:
    """Targets from `notifications.targets` plus `notifications.urls_file` (a secret file or credential)."""
    targets = [
        TargetSpec(url=t.url.get_secret_value(), severities=frozenset(t.severities), source=f"targets[{i}]")
        for i, t in enumerate(config.targets)
    ]
    problems: list[str] = []
    if config.urls_file:
        path = Path(config.urls_file)
        try:
            text = read_input_file(path)[0].decode("utf-8")
        except InputFileError as exc:
            problems.append(f"{path}: notification URLs: {exc}")
        except UnicodeDecodeError as exc:
            problems.append(f"{path}: notification URLs: not UTF-8 text (byte {exc.start})")
        else:
            more, bad = parse_urls_file(text, source=str(path))
            targets += more
            problems += bad
    return targets, problems


def all_fragments(targets: Sequence[TargetSpec]) -> frozenset[str]:
    frags: set[str] = set()
    for t in targets:
        frags |= secret_fragments(t.url)
    return frozenset(frags)
