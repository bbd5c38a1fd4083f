"""The project's exception tree; callers catch exactly what they mean.

WatchdogError
 ├── ConfigError            bad rules.yaml (carries every problem at once)
 ├── SafetyValveError       paper/live or account mismatch: refuse to start
 ├── GatewayError           talking to TWS / IB Gateway failed
 │    ├── GatewayUnavailable    not connected / connect refused / timed out
 │    ├── ClientIdInUse         error 326 at connect
 │    └── HeartbeatTimeout      reqCurrentTime got no answer in time
 ├── StateError             the state directory cannot be read or written
 └── ControlError           `kill` / `reset` / `status` could not reach the daemon
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class WatchdogError(Exception):
    """Base class of every error this package raises on purpose."""


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One problem in a config file: where it is and what is wrong."""

    file: str
    line: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ConfigError(WatchdogError, ValueError):
    """A config file is invalid; `problems` lists every problem found, not just the first."""

    def __init__(self, problems: Sequence[ConfigProblem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class SafetyValveError(WatchdogError):
    """The configuration and the gateway disagree on paper/live or accounts: refuse to run."""


class GatewayError(WatchdogError):
    """Talking to TWS / IB Gateway failed."""


class GatewayUnavailable(GatewayError, ConnectionError):
    """The gateway is not connected, refused the connection, or did not answer in time."""


class ClientIdInUse(GatewayError):
    """Error 326: another API client is already connected with the watchdog's reserved client id."""

    def __init__(self, client_id: int) -> None:
        self.client_id = client_id
        super().__init__(
            f"client id {client_id} is already in use on the gateway (error 326). "
            f"Another program is connected with the id reserved for the watchdog: "
            f"give that program another id, or set gateway.client_id to a free reserved id."
        )


class HeartbeatTimeout(GatewayError, TimeoutError):
    """reqCurrentTime got no answer within the heartbeat timeout (half-open socket or hung gateway)."""


class StateError(WatchdogError, OSError):
    """The state directory or a file in it cannot be read or written."""


class ControlError(WatchdogError):
    """A control command (`kill`, `reset`, `status`) could not reach or read the daemon."""
