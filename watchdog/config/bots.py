"""The `bots:` section of rules.yaml: the dead-man's switch receiver and the bots that heartbeat to it.

Tokens are secrets, written like notification URLs: `credential:NAME` (systemd LoadCredential=),
`file:/path`, `${VAR}`, or (discouraged) literally; the loader resolves and redacts them
(`watchdog/config/load.py`). A rule watches one bot with `bot: NAME` and `when: "bot_silence > 15s"`.
"""

from __future__ import annotations

import re

from pydantic import Field, SecretStr, field_validator, model_validator

from watchdog.config.field_types import FrozenModel

__all__ = ["BOT_NAME", "BotHeartbeat", "BotsConfig", "parse_listen"]

# Names travel in URL paths (`/v1/heartbeat/NAME`) and metric labels: keep them plain.
BOT_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
MIN_TOKEN_CHARS = 16  # a guessable token would let anyone postpone the kill indefinitely


def parse_listen(value: str) -> tuple[str, int]:
    """'127.0.0.1:9110' or '[::1]:9110' → (host, port). ValueError with the expected form."""
    host, sep, port = value.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"must be HOST:PORT like 127.0.0.1:9110 (port 0 = any free port), got: {value!r}")
    return host, int(port)


class BotHeartbeat(FrozenModel):
    """One bot allowed to heartbeat: its name, its bearer token, and the accounts it trades."""

    name: str
    token: SecretStr
    accounts: tuple[str, ...] = ()  # scope of its rules' kills; empty = every watched account

    @field_validator("name")
    @classmethod
    def _plain_name(cls, v: str) -> str:
        if not BOT_NAME.match(v):
            raise ValueError(
                f"must be 1-40 lower-case letters, digits, - or _ (it is part of a URL), got: {v!r}"
            )
        return v

    @field_validator("token")
    @classmethod
    def _long_enough(cls, v: SecretStr) -> SecretStr:
        # The message never echoes the value: it is a secret.
        secret = v.get_secret_value()
        if len(secret) < MIN_TOKEN_CHARS:
            raise ValueError(
                f"must be at least {MIN_TOKEN_CHARS} characters (e.g. `openssl rand -hex 24`; "
                "value not shown: it is secret)"
            )
        # printable ASCII only: the receiver reads the Authorization header as latin-1 bytes, and a
        # bot's HTTP library may encode anything else differently (or refuse it)
        if any(not "!" <= ch <= "~" for ch in secret):
            raise ValueError(
                "must be printable ASCII without spaces (letters, digits, punctuation; e.g. "
                "`openssl rand -hex 24`; value not shown: it is secret)"
            )
        return v


class BotsConfig(FrozenModel):
    """The receiver's listener and limits, and the bots it knows."""

    listen: str = "127.0.0.1:9110"
    heartbeats: tuple[BotHeartbeat, ...] = ()
    max_connections: int = Field(default=64, ge=1, le=10_000)  # beyond it one that sent nothing is evicted

    @field_validator("listen")
    @classmethod
    def _listen_form(cls, v: str) -> str:
        parse_listen(v)
        return v

    @model_validator(mode="after")
    def _distinct(self) -> BotsConfig:
        names = [b.name for b in self.heartbeats]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"bot names must be listed once each, repeated: {', '.join(dupes)}")
        return self

    @property
    def address(self) -> tuple[str, int]:
        return parse_listen(self.listen)

    def bot(self, name: str) -> BotHeartbeat | None:
        return next((b for b in self.heartbeats if b.name == name), None)
