"""The paper/live safety valve: pure checks of the configured port, paper flag and account ids.

A watchdog that believes it watches paper while it is connected to a live account (or the reverse)
must refuse to run: it would either kill real positions during a test or stay silent on real risk.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from watchdog.config.schema import LIVE_PORTS, PAPER_PORTS
from watchdog.errors import SafetyValveError

log = logging.getLogger("watchdog.gateway.client")

PAPER_ACCOUNT_PREFIXES = ("DU", "DF")


def is_paper_account(account: str) -> bool:
    """IB paper trading account ids start with DU (or DF for paper FA accounts)."""
    return account.upper().startswith(PAPER_ACCOUNT_PREFIXES)


def check_port(port: int, paper: bool) -> None:
    """Refuse a port that is known to be the other kind; warn about a non-standard port.

    7497 (TWS) / 4002 (IB Gateway) are paper, 7496 / 4001 are live. Any other port (an SSH tunnel,
    a test simulator) is allowed because `paper:` is mandatory in the config, and the managed
    account ids are checked after connecting anyway.
    """
    if paper and port in LIVE_PORTS:
        raise SafetyValveError(
            f"gateway.paper is true but gateway.port {port} is a LIVE trading port "
            f"(live: {sorted(LIVE_PORTS)}, paper: {sorted(PAPER_PORTS)}); refusing to start. "
            f"Fix gateway.port or gateway.paper."
        )
    if not paper and port in PAPER_PORTS:
        raise SafetyValveError(
            f"gateway.paper is false but gateway.port {port} is a PAPER trading port "
            f"(paper: {sorted(PAPER_PORTS)}, live: {sorted(LIVE_PORTS)}); refusing to start. "
            f"Fix gateway.port or gateway.paper."
        )
    if port not in LIVE_PORTS and port not in PAPER_PORTS:
        log.warning(
            "gateway.port %d is not a standard TWS/IB Gateway port; trusting gateway.paper=%s "
            "and checking the managed account ids after connecting",
            port,
            str(paper).lower(),
        )


def check_accounts(paper: bool, managed: Sequence[str], configured: Sequence[str]) -> tuple[str, ...]:
    """Cross-check the gateway's managed accounts; returns the accounts to watch.

    paper=true needs every managed account to be a paper account; paper=false refuses any paper
    account. A configured list must be fully managed by this gateway and is then the watched set;
    an empty list watches every managed account.
    """
    if not managed:
        raise SafetyValveError("the gateway reported no managed accounts; refusing to start")
    if paper:
        wrong = [a for a in managed if not is_paper_account(a)]
        if wrong:
            raise SafetyValveError(
                f"gateway.paper is true but the gateway manages live account(s) {', '.join(wrong)}; "
                f"refusing to start. Paper account ids start with DU or DF."
            )
    else:
        wrong = [a for a in managed if is_paper_account(a)]
        if wrong:
            raise SafetyValveError(
                f"gateway.paper is false but the gateway manages paper account(s) {', '.join(wrong)}; "
                f"refusing to start. Set gateway.paper: true for a paper gateway."
            )
    if configured:
        missing = [a for a in configured if a not in managed]
        if missing:
            raise SafetyValveError(
                f"configured gateway.accounts not managed by this gateway: {', '.join(missing)} "
                f"(managed: {', '.join(managed)}); refusing to start"
            )
        return tuple(dict.fromkeys(configured))
    return tuple(dict.fromkeys(managed))
