"""Load rules.yaml: strict YAML, secret interpolation, validation; every problem with its line, at once."""

from __future__ import annotations

import difflib
import json
import logging
import os
import re
import stat
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydantic

from watchdog.config.describe import describe_rule
from watchdog.config.input_file import InputFileError, read_input_file
from watchdog.config.redaction import looks_like_secret_key, redact_quoted
from watchdog.config.schema import Config, cross_check
from watchdog.config.strict_yaml import Path as TreePath
from watchdog.config.strict_yaml import YamlDoc, parse_yaml, plain_scalar
from watchdog.errors import ConfigError, ConfigProblem

__all__ = ["LoadResult", "describe_rule", "load", "load_config"]

log = logging.getLogger("watchdog.config.schema")

_VAR = re.compile(r"\$\$\{|\$\{([^}]*)\}|\$\{")
_VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CREDENTIAL_NAME = re.compile(r"^[A-Za-z0-9_.@-]+$")
_MAX_SECRET_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class LoadResult:
    config: Config
    warnings: tuple[ConfigProblem, ...] = ()
    outside_values: frozenset[str] = frozenset()  # values from ${VAR}, file:, credential: (secrets)

    def redact(self, text: str) -> str:
        """`text` with every value from outside the file masked (whole, and its pieces as in errors)."""
        return _redact_text(text, set(self.outside_values), set(self.outside_values))


def load_config(
    path: str | Path, *, environ: Mapping[str, str] | None = None, credentials_dir: str | None = None
) -> Config:
    """Read, interpolate and validate a config file. Raises ConfigError listing every problem.

    Warnings (e.g. a literal secret in a file others can read) are logged, not raised.
    """
    result = load(path, environ=environ, credentials_dir=credentials_dir)
    for w in result.warnings:
        log.warning("%s", w)
    return result.config


def load(
    path: str | Path,
    *,
    environ: Mapping[str, str] | None = None,
    credentials_dir: str | None = None,
    without_notification_targets: bool = False,
) -> LoadResult:
    """Like `load_config`, but hands the warnings back instead of logging them.

    `without_notification_targets`: `notifications.targets` and `urls_file` are left out before any
    secret is resolved (the fire drill without --notify sends nothing to them, so needs none of them)."""
    name = str(path)
    env = os.environ if environ is None else environ
    creds = credentials_dir if credentials_dir is not None else env.get("CREDENTIALS_DIRECTORY")
    try:
        raw, mode = read_input_file(path)
        text = raw.decode("utf-8")
    except InputFileError as e:
        raise ConfigError([ConfigProblem(name, None, "", str(e))]) from None
    except UnicodeDecodeError as e:
        raise ConfigError([ConfigProblem(name, None, "", f"not UTF-8 text (byte {e.start})")]) from None
    doc = parse_yaml(text)
    problems = [ConfigProblem(name, line, _dotted(p), msg) for line, p, msg in doc.problems]
    if doc.data is None and problems:
        raise ConfigError(problems)
    if not isinstance(doc.data, dict):
        problems.append(
            ConfigProblem(name, 1, "", "the file must be a mapping of sections (gateway:, rules:, ...)")
        )
        raise ConfigError(problems)
    interp = _Interpolator(doc, env, creds)
    source = doc.data
    notifications = source.get("notifications")
    if without_notification_targets and isinstance(notifications, dict):
        kept = {k: v for k, v in notifications.items() if k not in ("targets", "urls_file")}
        source = {**source, "notifications": kept}
    data = interp.walk(source, ())
    problems += [ConfigProblem(name, doc.line_of(p), _dotted(p), msg) for p, msg in interp.problems]
    for p, msg in cross_check(data):
        if p in interp.tainted:  # a value from outside the file is never echoed
            value = _at(data, p)
            if isinstance(value, str) and value:
                msg = msg.replace(repr(value), "(a value from outside the file)")
        problems.append(ConfigProblem(name, doc.line_of(p), _dotted(p), msg))
    config: Config | None = None
    try:
        config = Config.model_validate_json(
            json.dumps(data), strict=True, context={"skip_cross_check": True, "from_file": True}
        )
    except pydantic.ValidationError as e:
        for err in e.errors(include_url=False):
            loc = tuple(err["loc"])
            if loc in doc.refused or any(loc[: len(f)] == f for f in interp.failed):
                continue  # already reported as an interpolation problem
            # Inputs under `notifications` or holding an outside value anywhere inside are not echoed.
            secret = (
                loc[:1] == ("notifications",)
                or _is_secret_path(loc)
                or any(loc[: len(t)] == t or t[: len(loc)] == loc for t in interp.tainted)
            )
            problems.append(ConfigProblem(name, doc.line_of(loc), _dotted(loc), _message(err, loc, secret)))
    if problems or config is None:
        # Last line of defence: no message may carry a value that came from outside the file.
        values = interp.values | _secret_keys(doc.data)  # a key is masked whole (its pieces are words)
        problems = [_redact(p, values, interp.values) for p in problems]
        problems.sort(key=lambda p: (p.line if p.line is not None else 0, p.path))
        raise ConfigError(_dedupe(problems))
    warnings: list[ConfigProblem] = []
    if interp.literal_secrets and mode & (stat.S_IRWXG | stat.S_IRWXO):
        first = interp.literal_secrets[0]
        warnings.append(
            ConfigProblem(
                name,
                doc.line_of(first),
                _dotted(first),
                f"holds a secret {_secret_kind(first)} and the file is readable by others (mode "
                f"{stat.S_IMODE(mode):o}): chmod 600 it, or use ${{VAR}}, file: or credential:",
            )
        )
    return LoadResult(config, tuple(warnings), frozenset(interp.values))


def _at(data: Any, path: TreePath) -> Any:
    for part in path:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _redact_text(text: str, values: set[str], outside: set[str]) -> str:
    """Mask secrets in a text: whole values, their repr() spelling, and pieces of outside values
    (4+ characters in a quoted value, e.g. a cron error quoting one field of a `${VAR}` value; 12+
    anywhere)."""
    for value in sorted(values, key=len, reverse=True):
        if len(value) < 3:  # too short to be a secret; redacting it would garble the message
            continue
        text = text.replace(value, "***").replace(repr(value)[1:-1], "***")
    return redact_quoted(text, outside)


def _redact(problem: ConfigProblem, values: set[str], outside: set[str]) -> ConfigProblem:
    """Mask secrets in a problem's message and path (see `_redact_text`)."""
    message, path = (
        _redact_text(problem.message, values, outside),
        _redact_text(problem.path, values, outside),
    )
    if (message, path) == (problem.message, problem.path):
        return problem
    return ConfigProblem(problem.file, problem.line, path, message)


def _secret_keys(data: Any) -> set[str]:
    """Mapping keys that look like a URL or a credential: secrets typed as a key (`- json://…: x`)."""
    found: set[str] = set()
    stack = [data]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            found.update(k for k in node if isinstance(k, str) and looks_like_secret_key(k))
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


def _dedupe(problems: list[ConfigProblem]) -> list[ConfigProblem]:
    seen: set[ConfigProblem] = set()
    return [p for p in problems if not (p in seen or seen.add(p))]  # type: ignore[func-returns-value]


def _dotted(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


# (section, list, field): values that are secrets, resolved from file:/credential:/${VAR} and redacted
_SECRET_FIELDS = (("notifications", "targets", "url"), ("bots", "heartbeats", "token"))


def _is_secret_path(loc: tuple[Any, ...]) -> bool:
    return len(loc) >= 4 and any(loc[:2] == f[:2] and loc[3] == f[2] for f in _SECRET_FIELDS)


def _secret_kind(loc: tuple[Any, ...]) -> str:
    return "bot heartbeat token" if loc[:1] == ("bots",) else "notification URL"


class _Interpolator:
    """Expands ${VAR} everywhere, and file: / credential: for secret values; remembers what it touched."""

    def __init__(self, doc: YamlDoc, env: Mapping[str, str], creds: str | None) -> None:
        self.doc = doc
        self.env = env
        self.creds = creds
        self.problems: list[tuple[TreePath, str]] = []
        self.failed: list[TreePath] = []  # paths whose value could not be produced
        self.tainted: list[TreePath] = []  # paths whose value came from outside the file: never echoed
        self.literal_secrets: list[TreePath] = []
        self.values: set[str] = set()  # every secret or outside value, redacted from all messages

    def walk(self, value: Any, path: TreePath) -> Any:
        if isinstance(value, dict):
            return {k: self.walk(v, (*path, k)) for k, v in value.items()}
        if isinstance(value, list):
            return [self.walk(v, (*path, i)) for i, v in enumerate(value)]
        if not isinstance(value, str):
            return value
        if _is_secret_path(path) and len(path) == 4:
            return self.secret(value, path)
        if path == ("notifications", "urls_file") and value.startswith("credential:"):
            return self.credential_path(value, path) or value
        if "${" not in value:
            return value
        self.tainted.append(path)
        expanded = self.expand(value, path)
        if expanded is None:
            return value
        if value.startswith("${") and value.endswith("}") and value.count("${") == 1:
            return plain_scalar(expanded)  # `port: ${GW_PORT}` reads like a number written in the file
        return expanded

    def fail(self, path: TreePath, message: str) -> None:
        self.problems.append((path, message))
        self.failed.append(path)

    def expand(self, value: str, path: TreePath) -> str | None:
        missing: list[str] = []
        bad: list[str] = []

        def sub(m: re.Match[str]) -> str:
            if m.group(0) == "$${":
                return "${"
            var = m.group(1)
            if var is None or not _VAR_NAME.match(var):
                bad.append(m.group(0))
                return ""
            if var not in self.env:
                missing.append(var)
                return ""
            self.values.add(self.env[var])
            return self.env[var]

        out = _VAR.sub(sub, value)
        for var in missing:
            self.fail(path, f"environment variable {var} is not set")
        if bad:
            self.fail(
                path, "malformed ${...}: write ${NAME} with letters, digits and _ (or $${ for a literal)"
            )
        return None if (missing or bad) else out

    def secret(self, value: str, path: TreePath) -> str:
        self.tainted.append(path)
        if value.startswith("file:"):
            return self.read_secret(value[len("file:") :], path) or ""
        if value.startswith("credential:"):
            where = self.credential_path(value, path)
            return (self.read_secret(where, path) if where else None) or ""
        if "${" in value:
            return self.expand(value, path) or ""
        self.literal_secrets.append(path)
        self.values.add(value)
        return value

    def credential_path(self, value: str, path: TreePath) -> str | None:
        cred = value[len("credential:") :]
        if not _CREDENTIAL_NAME.match(cred):
            self.fail(path, f"credential name {cred!r} must be a plain file name (letters, digits, . _ - @)")
            return None
        if not self.creds:
            self.fail(path, f"credential:{cred} needs $CREDENTIALS_DIRECTORY (systemd LoadCredential=)")
            return None
        return os.path.join(self.creds, cred)

    def read_secret(self, where: str, path: TreePath) -> str | None:
        try:
            data, _mode = read_input_file(where, limit=_MAX_SECRET_BYTES)
        except InputFileError as e:
            self.fail(path, f"secret file {where}: {e}")
            return None
        try:
            text = data.decode("utf-8").strip()
        except UnicodeDecodeError:
            self.fail(path, f"secret file {where} is not UTF-8 text")
            return None
        if not text:
            self.fail(path, f"secret file {where} is empty")
            return None
        self.values.add(text)
        return text


# ---- pydantic errors in house words -------------------------------------------------------------

_SIMPLE = {
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_type": "must be a plain number like 2500 or -0.5",
    "float_parsing": "must be a plain number like 2500 or -0.5",
    "finite_number": "must be a finite number",
    "string_type": "must be text (put it in quotes)",
    "tuple_type": "must be a list",
    "list_type": "must be a list",
    "model_type": "must be a mapping of keys",
    "model_attributes_type": "must be a mapping of keys",
    "dict_type": "must be a mapping of keys",
    "missing": "is required",
}


def _shown(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    if value is None:
        return "an empty value"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _message(err: Mapping[str, Any], loc: tuple[Any, ...], secret: bool) -> str:
    kind = err["type"]
    ctx = err.get("ctx") or {}
    got = "" if secret or kind == "missing" else f", got: {_shown(err.get('input'))}"
    if kind in ("value_error", "assertion_error"):
        text = str(ctx.get("error", err["msg"]))
        return "(value not shown: it is secret)" if secret and "got:" in text else text
    if kind == "extra_forbidden":
        return _unknown_key(loc)
    if kind in _SIMPLE:
        return _SIMPLE[kind] + got
    if kind in ("enum", "literal_error"):
        return f"must be one of {ctx.get('expected', '?')}{got}"
    bounds = {
        "greater_than": "greater than {gt}",
        "greater_than_equal": "at least {ge}",
        "less_than": "less than {lt}",
        "less_than_equal": "at most {le}",
        "string_too_short": "at least {min_length} characters long",
        "string_too_long": "at most {max_length} characters long",
        "too_short": "at least {min_length} items long",
        "too_long": "at most {max_length} items long",
    }
    if kind in bounds:
        return "must be " + bounds[kind].format_map(_Default(ctx)) + got
    return str(err["msg"]) + got


class _Default(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "?"


def _unknown_key(loc: tuple[Any, ...]) -> str:
    known = _known_keys(loc[:-1])
    key = str(loc[-1])
    if looks_like_secret_key(key):
        return "unknown key (not shown: it looks like a URL or a secret; write it as a value, e.g. url: …)"
    close = difflib.get_close_matches(key, known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown key {key!r}{hint} (known keys here: {', '.join(known)})"


def _known_keys(loc: tuple[Any, ...]) -> list[str]:
    """The keys the schema accepts at `loc` (by walking the model annotations)."""
    model: Any = Config
    for part in loc:
        if isinstance(part, int):
            continue
        field = next(
            (f for n, f in model.model_fields.items() if part in (n, f.alias)),
            None,
        )
        if field is None:
            return []
        found = _model_in(field.annotation)
        if found is None:
            return []
        model = found
    return [f.alias or n for n, f in model.model_fields.items()]


def _model_in(annotation: Any) -> type[pydantic.BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None
