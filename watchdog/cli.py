"""Command line: run, check, kill, reset, status, history, report, plan, sim, demo, ping, drill.

Exit codes: 0 ok, 2 bad config or arguments, 3 gateway unreachable at start, 1 anything else.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from watchdog import __version__
from watchdog.commands.kill import WAIT_TIMEOUT

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_NO_GATEWAY = 3


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ibkr-watchdog", description=__doc__)
    p.add_argument("--version", action="version", version=f"ibkr-watchdog {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run the daemon in the foreground (systemd runs this)")
    run.add_argument("--config", "-c", default="rules.yaml", help="path to rules.yaml")
    run.add_argument(
        "--require-gateway", action="store_true", help="exit 3 when the gateway is unreachable at start"
    )

    check = sub.add_parser("check", help="validate a config file; print the rules in plain words")
    check.add_argument("config", nargs="?", default="rules.yaml")
    check.add_argument("--quiet", "-q", action="store_true", help="print errors only")

    def where(p: argparse.ArgumentParser) -> None:
        # none of these needs a valid config: a manual kill must go out whatever rules.yaml says
        p.add_argument(
            "--config", "-c", default=None,
            help="read only for its state_dir (default: ./rules.yaml, else /etc/ibkr-watchdog/rules.yaml)",
        )  # fmt: skip
        p.add_argument("--state-dir", default=None, help="the daemon's state dir (no config is read)")

    kill = sub.add_parser("kill", help="tell the running daemon to fire the kill switch")
    kill.add_argument("--cancel-only", action="store_true", help="cancel all orders, keep positions")
    kill.add_argument("--reason", default="", help="recorded in the audit log and notifications")
    kill.add_argument("--pid", type=int, default=None, help="daemon pid (default: the state dir's daemon)")
    kill.add_argument(
        "--wait", nargs="?", type=_seconds, const=WAIT_TIMEOUT, default=None, metavar="SECONDS",
        help=(
            "follow the kill and print its outcome (exit 0 = verified flat; with --cancel-only = every order "
            f"verified cancelled, positions left open; default {WAIT_TIMEOUT:g}s at most)"
        ),
    )  # fmt: skip
    where(kill)

    reset = sub.add_parser("reset", help="re-arm a tripped watchdog (audited and notified)")
    reset.add_argument("--reason", required=True, help="why it is safe to trade again")
    reset.add_argument("--pid", type=int, default=None)
    reset.add_argument(
        "--discard-pending",
        action="store_true",
        help="also discard a kill that is pending and has not run (audited); without it a reset is refused",
    )
    where(reset)

    status = sub.add_parser(
        "status",
        help="state, each value's age, latch and last kill; exit 0 armed, 1 tripped/pending, 3 not running",
    )
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.add_argument("--pid", type=int, default=None, help="the daemon's pid: its state dir is read")
    where(status)

    history = sub.add_parser("history", help="past kills from the audit log, one line each")
    history.add_argument("--limit", "-n", type=int, default=20, help="the last N kills (0 = all)")
    history.add_argument("--pid", type=int, default=None, help="the daemon's pid: its state dir is read")
    where(history)

    report = sub.add_parser("report", help="one kill's timeline from the audit log (default: the latest)")
    report.add_argument("kill_id", nargs="?", default=None, help="a kill id (or its prefix) from `history`")
    report.add_argument("--pid", type=int, default=None, help="the daemon's pid: its state dir is read")
    where(report)

    sim = sub.add_parser("sim", help="run the TWS API gateway simulator alone")
    sim.add_argument("--host", default="127.0.0.1")
    sim.add_argument("--port", type=int, default=4002)
    sim.add_argument("--scenario", default=None, help="YAML scenario file (default: built-in demo book)")

    plan = sub.add_parser("plan", help="what a kill would send now and what would not close (sends nothing)")
    plan.add_argument("--config", "-c", default="rules.yaml", help="to find the state dir")
    plan.add_argument("--state-dir", default=None, help="read the daemon's plan from this state dir")
    plan.add_argument("--json", action="store_true", help="machine-readable output")
    plan.add_argument(
        "--gateway", default=None, metavar="HOST:PORT", help="one-off read-only look, no daemon"
    )
    plan.add_argument("--client-id", type=int, default=None, help="with --gateway: a free client id")

    demo = sub.add_parser("demo", help="simulator + daemon in one process: a scripted loss and a kill")
    demo.add_argument("--scenario", default="loss", help="loss, half-open, margin, runaway, manual, dead-bot")
    demo.add_argument("--config", "-c", default=None, help="rules file (default: the repo's rules.yaml)")

    ping = sub.add_parser("ping", help="a bot's heartbeat to the dead-man's switch (exit 0 when accepted)")
    ping.add_argument("name", help="the bot's name in bots.heartbeats")
    ping.add_argument("--url", default="http://127.0.0.1:9110", help="the receiver (bots.listen)")
    ping.add_argument("--token-file", required=True, help="file holding the bot's token")
    ping.add_argument("--stop", action="store_true", help="clean stop: disarm until the next heartbeat")
    ping.add_argument("--status", choices=("ok", "degraded"), default="ok")
    ping.add_argument("--note", default="", help="short text kept for the notification")

    drill = sub.add_parser("drill", help="rehearse the kill on your config and book; write a report")
    drill.add_argument("--config", "-c", default="rules.yaml", help="the rules.yaml to rehearse")
    drill.add_argument(
        "--book", nargs="+", metavar="SOURCE", help="state (default when present) | demo | scenario FILE"
    )
    drill.add_argument("--report", default="drill-report", help="directory for drill.md/.json/.html")
    drill.add_argument("--notify", action="store_true", help="also send notifications to your targets")
    drill.add_argument("--only", action="append", metavar="ID", help="run only this scenario (repeatable)")
    drill.add_argument(
        "--force", action="store_true", help="write into a --report directory that is not empty"
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        code = _dispatch(args)
        sys.stdout.flush()  # inside the try: a reader gone at exit is met here, not in a traceback
        return code
    except BrokenPipeError:
        # `ibkr-watchdog check rules.yaml | head`: the reader left; not our error, and no traceback
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK


def _seconds(text: str) -> float:
    """A positive, finite number of seconds (`--wait nan` would wait forever, `--wait -5` not at all)."""
    value = float(text)
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds")
    return value


def _state_dir(args: argparse.Namespace, command: str, *, needed: bool) -> Path | None:
    """The state dir from --state-dir or the config (valid or not); None (after saying why) if unknown."""
    from watchdog.commands.locate import locate, state_dir_of_process

    if getattr(args, "pid", None) is not None and args.config is None and args.state_dir is None:
        # `kill --pid N` alone: the request goes where that daemon holds its lock, not to ./rules.yaml's dir
        held = state_dir_of_process(args.pid)
        if held is None and needed:
            print(
                f"ibkr-watchdog {command}: cannot tell pid {args.pid}'s state dir; pass --state-dir",
                file=sys.stderr,
            )
        return held
    found = locate(args.config, args.state_dir)
    found.print_warnings(command)
    if found.state_dir is None and needed:
        print(f"ibkr-watchdog {command}: {found.error or 'no state dir'}; pass --state-dir", file=sys.stderr)
    # `kill` without --state-dir goes on: it finds no running daemon there and says so (exit 1)
    if found.state_dir is not None and not found.state_dir.is_dir() and (args.state_dir or command != "kill"):
        # a mistyped --state-dir, or a default that is not this host's, must not read as an ARMED
        # watchdog with nothing recorded
        print(
            f"ibkr-watchdog {command}: state dir {found.state_dir} does not exist; "
            "pass --state-dir or --config of the running daemon",
            file=sys.stderr,
        )
        return None
    return found.state_dir


def _dispatch(args: argparse.Namespace) -> int:
    cmd: str = args.command
    if cmd == "run":
        from watchdog.daemon.main import run_daemon

        return run_daemon(args.config, require_gateway=args.require_gateway)
    if cmd == "check":
        from watchdog.commands.check import check_command

        return check_command(args.config, quiet=args.quiet)
    if cmd == "kill":
        from watchdog.commands.kill import send_kill

        state_dir = _state_dir(args, cmd, needed=args.pid is None)
        if state_dir is None and (args.pid is None or args.state_dir is not None):
            return EXIT_USAGE
        return send_kill(
            state_dir, cancel_only=args.cancel_only, reason=args.reason, pid=args.pid, wait=args.wait
        )
    if cmd in ("reset", "status", "history", "report"):
        state_dir = _state_dir(args, cmd, needed=True)
        if state_dir is None:
            return EXIT_USAGE
        return _state_command(cmd, args, state_dir)
    if cmd == "plan":
        from watchdog.commands.plan import plan_command

        return plan_command(
            args.config,
            state_dir=args.state_dir,
            as_json=args.json,
            gateway=args.gateway,
            client_id=args.client_id,
        )
    if cmd == "sim":
        from watchdog.sim.cli import sim_command

        return sim_command(args.host, args.port, args.scenario)
    if cmd == "demo":
        from watchdog.demo import demo_command

        return demo_command(args.scenario, args.config)
    if cmd == "ping":
        from watchdog.bots.ping import ping_command

        return ping_command(
            args.name, args.url, args.token_file, stop=args.stop, status=args.status, note=args.note
        )
    if cmd == "drill":
        from watchdog.drill.command import drill_command

        return drill_command(args.config, args.book, args.report, args.notify, args.only, force=args.force)
    raise AssertionError(cmd)  # argparse enforces the choices


def _state_command(cmd: str, args: argparse.Namespace, state_dir: Path) -> int:
    if cmd == "reset":
        from watchdog.commands.reset import send_reset

        return send_reset(state_dir, reason=args.reason, pid=args.pid, discard_pending=args.discard_pending)
    if cmd == "status":
        from watchdog.commands.status import show_status

        return show_status(state_dir, as_json=args.json)
    from watchdog.commands.history import history_command
    from watchdog.commands.kill_report import report_command

    if cmd == "history":
        return history_command(state_dir, limit=args.limit)
    return report_command(state_dir, args.kill_id)


if __name__ == "__main__":
    sys.exit(main())
