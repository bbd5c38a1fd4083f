"""`ibkr-watchdog drill`: rehearse the kill on the user's configuration and book, and file a report.

Exit 0 only when every scenario passed and no rule was found unable to fire; 2 for a bad config,
book or arguments; 1 otherwise. Nothing is ever sent to the configured gateway.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
import logging
import os
import stat
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TextIO

from watchdog.config.schema import Config
from watchdog.drill.book import load_drill_book
from watchdog.drill.book_check import BookError
from watchdog.drill.html import html_page
from watchdog.drill.report import REPORT_NAMES, DrillReport, markdown
from watchdog.drill.result import ScenarioResult, Verdict
from watchdog.drill.runner import Plan
from watchdog.drill.setup import Capture, drill_config
from watchdog.errors import ConfigError

log = logging.getLogger("watchdog.drill")


def scenario_list(plan: Plan) -> list[tuple[str, Callable[[], Awaitable[ScenarioResult]]]]:
    """Every scenario of the standard drill for this config, in the order they run."""
    from watchdog.drill import restart, rule_scenarios, scenarios

    out: list[tuple[str, Callable[[], Awaitable[ScenarioResult]]]] = []
    for rule in plan.config.rules:
        if not rule.enabled:
            continue
        if rule.schedule is not None:
            sid = f"schedule-{scenarios.slug(rule.name)}"
            out.append((sid, functools.partial(rule_scenarios.scheduled_rule, plan, rule)))
        else:
            sid = f"rule-{scenarios.slug(rule.name)}"
            out.append((sid, functools.partial(rule_scenarios.rule_scenario, plan, rule)))
    out += [
        ("manual-kill", lambda: scenarios.manual_kill(plan)),
        ("reject-retry", lambda: scenarios.reject_retry(plan)),
        ("market-closed-part", lambda: scenarios.market_closed(plan)),
        ("half-open-mid-close", lambda: scenarios.half_open_close(plan)),
        ("kill-9-restart", lambda: restart.kill_nine_restart(plan)),
    ]
    return out


def config_findings(config: Config) -> list[str]:
    """Settings that make the kill promise less than it seems, whatever the book."""
    found = []
    if config.kill.dry_run:
        found.append("kill.dry_run is true: in production the kill sends no order at all")
    if not any(r.enabled and r.action.is_kill for r in config.rules):
        found.append("no enabled rule can fire a kill: only a manual kill would act")
    return found


async def run_drill(
    config_path: str,
    book_source: str,
    book_file: str | None,
    report_dir: Path,
    notify: bool,
    out: TextIO,
    only: list[str] | None = None,
) -> int:
    from watchdog.config.load import load
    from watchdog.drill.scenarios import timed

    try:
        # without --notify nothing goes to the config's targets: their secrets (${VAR}, file:,
        # credential:) are not resolved, so a drill needs none of them
        loaded = load(config_path, without_notification_targets=not notify)
        for warning in loaded.warnings:
            log.warning("%s", warning)
        config = loaded.config
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"{config_path}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    try:
        book = load_drill_book(config, book_source, book_file)
    except BookError as exc:
        print(f"drill: {exc}", file=sys.stderr)
        return 2
    from watchdog.drill.book import build_simulator, rehearsed
    from watchdog.drill.runner import DrillClock

    # the book as every scenario's simulator will hold it, read back: the report shows what was rehearsed
    try:
        probe, setup_notes = build_simulator(book, DrillClock(), watchdog_client_id=config.gateway.client_id)
    except (KeyError, ValueError, TypeError) as exc:  # check_book should have named it; never a traceback
        print(f"drill: {book.origin}: the simulator cannot hold this book: {exc}", file=sys.stderr)
        return 2
    book_used = rehearsed(book, probe, setup_notes)
    digest = hashlib.sha256(Path(config_path).read_bytes()).hexdigest()  # noqa: ASYNC240 - once, small
    started = time.time()
    capture = Capture()
    await capture.start()
    saved = _quiet_logging()
    try:
        with tempfile.TemporaryDirectory(prefix="ibkr-watchdog-drill-") as work:
            plan = Plan(config, book, capture, notify, Path(work))
            ids = [sid for sid, _ in scenario_list(plan) if not only or sid in only]
            # the on-call route is judged from the notifier's own per-target outcomes: an in-process
            # daemon (the restart scenario's daemons are other processes)
            in_process = [sid for sid in ids if sid != "kill-9-restart"]
            plan.notify_sid = "manual-kill" if "manual-kill" in ids else (in_process[0] if in_process else "")
            plan.overrides = drill_config(
                config,
                port=1,
                state_dir=work,
                notify_url=capture.url("x"),
                notify=notify,
                notify_label=plan.notify_sid,
            )[1]
            out.write(f"ibkr-watchdog drill of {config_path} (sha256 {digest[:12]}…) on the {book.origin}\n")
            for note in book_used["notes"]:
                out.write(f"  note: {note}\n")
            results: list[ScenarioResult] = []
            chosen = [(sid, fn) for sid, fn in scenario_list(plan) if not only or sid in only]
            unknown = sorted(set(only or ()) - {sid for sid, _ in scenario_list(plan)})
            if unknown or not chosen:
                known = ", ".join(sid for sid, _ in scenario_list(plan))
                print(f"drill: no scenario {', '.join(unknown)}; scenarios: {known}", file=sys.stderr)
                return 2
            for name, fn in chosen:
                try:
                    res = await timed(fn)
                except Exception as exc:  # one broken rehearsal must not lose the others' evidence
                    log.exception("scenario %s raised", name)
                    res = ScenarioResult(f"error-{len(results)}", name, "standard", verdict=Verdict.FAIL)
                    res.summary = f"failed: the rehearsal itself raised {type(exc).__name__}: {exc}"
                results.append(res)
                out.write(
                    f"  {res.verdict.value.upper():>10}  {res.title[:70]:<70}  {res.duration:5.1f}s"
                    f"  {res.summary}\n"
                )
                out.flush()
    finally:
        await capture.stop()
        _restore_logging(saved)
    report = DrillReport.build(
        config=config,
        config_path=config_path,
        digest=digest,
        book=book_used,
        overrides=plan.overrides,
        results=results,
        findings=config_findings(config),
        started=started,
        finished=time.time(),
        notify=notify,
        skipped=[sid for sid, _ in scenario_list(plan) if sid not in {c for c, _ in chosen}],
    )
    out.write(report.summary_line + "\n")
    try:
        paths = write_reports(report, report_dir)
    except OSError as exc:  # the verdict is printed above; without its files it is not evidence
        print(f"drill: cannot write the report in {report_dir}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    out.write("report: " + ", ".join(str(p) for p in paths) + "\n")
    return 0 if report.passed else 1


def _quiet_logging() -> tuple[int, list[logging.Handler], int]:
    """The daemon's log lines go to each scenario's timeline, not to the terminal."""
    root = logging.getLogger()
    saved = (root.level, list(root.handlers), logging.getLogger("watchdog").level)
    for h in saved[1]:
        root.removeHandler(h)
    root.addHandler(logging.NullHandler())
    root.setLevel(logging.WARNING)
    logging.getLogger("watchdog").setLevel(logging.INFO)
    from watchdog.outputs.logging_setup import quiet_scheduler

    quiet_scheduler()
    return saved


def _restore_logging(saved: tuple[int, list[logging.Handler], int]) -> None:
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.setLevel(saved[0])
    for h in saved[1]:
        root.addHandler(h)
    logging.getLogger("watchdog").setLevel(saved[2])


def drill_command(
    config_path: str,
    book: list[str] | None,
    report_dir: str,
    notify: bool,
    only: list[str] | None = None,
    *,
    force: bool = False,
) -> int:
    """Parse `--book state | scenario FILE | demo`, check the report directory, and run the drill."""
    words = list(book or ["auto"])
    source, path = words[0], (words[1] if len(words) > 1 else None)
    if source not in ("auto", "state", "scenario", "demo") or (source == "scenario") != (path is not None):
        print("drill: --book takes state, demo, or scenario FILE", file=sys.stderr)
        return 2
    problem = report_target_problem(Path(report_dir), force=force)
    if problem:
        print(f"drill: --report {report_dir}: {problem}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(run_drill(config_path, source, path, Path(report_dir), notify, sys.stdout, only))
    except KeyboardInterrupt:
        print("drill interrupted: no report written", file=sys.stderr)
        return 1


def report_target_problem(directory: Path, *, force: bool) -> str:
    """'' when the report can be written there: an empty (or, with --force, any) writable directory, or
    one that can be created. Checked before the drill runs: its evidence must not be lost at the end."""
    try:
        st = directory.lstat()
    except FileNotFoundError:
        parent = directory.absolute().parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if not parent.is_dir():
            return f"cannot be created: {parent} is not a directory"
        if not os.access(parent, os.W_OK | os.X_OK):
            return f"cannot be created: {parent} is not writable"
        return ""
    except NotADirectoryError:
        return "cannot be created: a part of the path is not a directory"
    except OSError as exc:
        return exc.strerror or str(exc)
    if stat.S_ISLNK(st.st_mode) and directory.is_dir():
        st = directory.stat()  # a link to a directory is the operator's choice; a link to a file is not
    if not stat.S_ISDIR(st.st_mode):
        return "exists and is not a directory"
    if not os.access(directory, os.W_OK | os.X_OK):
        return "is not writable"
    if not force and any(directory.iterdir()):
        return "is not empty (an earlier report?); choose another directory or add --force to overwrite"
    return ""


def write_reports(report: DrillReport, directory: Path) -> list[Path]:
    """The three files, each written whole under a temporary name and renamed into place, relative to
    the directory's descriptor: a reader never sees half a report, and a link planted under a report's
    name is replaced, never followed."""
    directory.mkdir(parents=True, exist_ok=True)
    contents = {
        REPORT_NAMES[0]: markdown(report),
        REPORT_NAMES[1]: json.dumps(report.as_dict(), indent=2, allow_nan=False) + "\n",
        REPORT_NAMES[2]: html_page(report),
    }
    dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))
    try:
        for name, text in contents.items():
            temp = f".{name}.{os.getpid()}.tmp"
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
            fd = os.open(temp, flags, 0o644, dir_fd=dfd)
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(text.encode("utf-8"))
                    f.flush()
                    os.fsync(f.fileno())
                os.rename(temp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(temp, dir_fd=dfd)
                raise
        os.fsync(dfd)
    finally:
        os.close(dfd)
    return [directory / name for name in REPORT_NAMES]
