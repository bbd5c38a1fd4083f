"""${VAR}, file: and credential: interpolation; secrets never shown; the readable-by-others warning."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from watchdog.config.load import load, load_config
from watchdog.errors import ConfigError

SECRET = "tgram://123456:AAHsup3r-s3cret-t0ken/987654"
MARK = "sup3r-s3cret"  # a piece of the secret that must never be printed

BASE = """\
gateway:
  port: {port}
  client_id: 99
  paper: true
notifications:
  targets:
    - url: {url}
      severities: [critical]
rules:
  - name: loss
    when: "daily_pnl <= -2500"
"""


def write(tmp_path: Path, url: str, port: str = "4002", mode: int = 0o600) -> Path:
    p = tmp_path / "rules.yaml"
    p.write_text(BASE.format(url=url, port=port))
    p.chmod(mode)
    return p


def test_an_environment_variable_fills_a_secret(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "${NOTIFY_URL}"), environ={"NOTIFY_URL": SECRET})
    assert config.notifications.targets[0].url.get_secret_value() == SECRET
    assert MARK not in repr(config) and MARK not in str(config)


def test_a_missing_environment_variable_is_named_in_the_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, "${NOTIFY_URL}"), environ={})
    assert [str(p).rsplit("/", 1)[-1] for p in e.value.problems] == [
        "rules.yaml:7: notifications.targets[0].url: environment variable NOTIFY_URL is not set"
    ]


def test_a_whole_value_from_the_environment_gets_its_natural_type(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "json://x/y", port="${GW_PORT}"), environ={"GW_PORT": "4001"})
    assert config.gateway.port == 4001


def test_dollar_dollar_brace_is_a_literal(tmp_path: Path) -> None:
    p = tmp_path / "rules.yaml"
    p.write_text(BASE.format(url="json://h/p", port="4002").replace("  - name: loss\n", "  - name: a$${b}\n"))
    assert load_config(p, environ={}).rules[0].name == "a${b}"  # (a host may not hold $ { } any more)


def test_a_file_secret_is_read_and_trimmed(tmp_path: Path) -> None:
    secret_file = tmp_path / "notify-url"
    secret_file.write_text(f"\n  {SECRET}  \n")
    config = load_config(write(tmp_path, f"file:{secret_file}"), environ={})
    assert config.notifications.targets[0].url.get_secret_value() == SECRET


def test_a_missing_secret_file_is_an_error_that_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"secret file /nonexistent/url: cannot read the file: No such"):
        load_config(write(tmp_path, "file:/nonexistent/url"), environ={})


def test_a_systemd_credential_is_read_from_the_credentials_directory(tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "pager-url").write_text(SECRET + "\n")
    via_arg = load_config(write(tmp_path, "credential:pager-url"), environ={}, credentials_dir=str(creds))
    via_env = load_config(
        write(tmp_path, "credential:pager-url"), environ={"CREDENTIALS_DIRECTORY": str(creds)}
    )
    assert via_arg.notifications.targets[0].url.get_secret_value() == SECRET
    assert via_env == via_arg


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("credential:pager-url", "credential:pager-url needs $CREDENTIALS_DIRECTORY"),
        ("credential:../etc/passwd", "must be a plain file name"),
    ],
)
def test_bad_credentials_are_explained(tmp_path: Path, url: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected.replace("$", r"\$")):
        load_config(write(tmp_path, url), environ={})


@pytest.mark.parametrize("source", ["env", "file", "credential", "literal"])
def test_a_secret_never_appears_in_any_error_message_log_or_repr(
    tmp_path: Path, source: str, caplog: pytest.LogCaptureFixture
) -> None:
    bad_secret = "no-scheme-" + MARK  # not a URL: the url itself is reported, without its value
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "u").write_text(bad_secret)
    (tmp_path / "u").write_text(bad_secret)
    url = {
        "env": "${U}",
        "file": f"file:{tmp_path / 'u'}",
        "credential": "credential:u",
        "literal": bad_secret,
    }[source]
    path = write(tmp_path, url, port="off")  # one more, unrelated problem
    caplog.set_level(logging.DEBUG)
    with pytest.raises(ConfigError) as e:
        load_config(path, environ={"U": bad_secret}, credentials_dir=str(creds))
    messages = [str(p) for p in e.value.problems]
    assert len(messages) == 2
    assert "notifications.targets[0].url: must be an apprise URL" in messages[1]
    for text in (str(e.value), repr(e.value), repr(e.value.problems), caplog.text, *messages):
        assert MARK not in text


def test_a_secret_with_the_wrong_type_is_not_echoed(tmp_path: Path) -> None:
    p = tmp_path / "rules.yaml"
    p.write_text(BASE.format(url="[" + MARK + "]", port="4002"))
    with pytest.raises(ConfigError) as e:
        load_config(p, environ={})
    assert "url: must be text" in str(e.value)
    assert MARK not in str(e.value)


def test_a_literal_secret_in_a_file_others_can_read_gets_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write(tmp_path, SECRET, mode=0o644)
    result = load(path, environ={})
    assert len(result.warnings) == 1
    text = str(result.warnings[0])
    assert "rules.yaml:7: notifications.targets[0].url: holds a secret notification URL" in text
    assert "readable by others (mode 644)" in text
    assert MARK not in text
    with caplog.at_level(logging.WARNING, logger="watchdog.config.schema"):
        load_config(path, environ={})
    assert "readable by others" in caplog.text and MARK not in caplog.text


@pytest.mark.parametrize(
    ("url", "mode"),
    [(SECRET, 0o600), ("${U}", 0o644)],
    ids=["literal-but-private-file", "interpolated-in-readable-file"],
)
def test_no_warning_when_the_secret_is_safe(tmp_path: Path, url: str, mode: int) -> None:
    assert load(write(tmp_path, url, mode=mode), environ={"U": SECRET}).warnings == ()


CRON_RULE = """\
  - name: flat-by-close
    schedule: {cron: "${CRON}", timezone: UTC}
    action: close_all
"""


@pytest.mark.parametrize(
    ("value", "piece"),
    [
        ("30 ENV-T0KEN-cron * * *", "ENV-T0KEN-cron"),  # the cron library quotes one field of it
        ("30 1 * * mon-ENVT0KENcron", "ENVT"),  # ... or the first four letters of a weekday name
    ],
)
def test_no_piece_of_an_outside_value_is_echoed_by_a_cron_error(
    tmp_path: Path, value: str, piece: str
) -> None:
    path = write(tmp_path, "json://127.0.0.1:1/x")
    path.write_text(path.read_text() + CRON_RULE)
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={"CRON": value})
    text = str(info.value)
    assert "rules[1].schedule: invalid cron expression '***'" in text  # still named, with its place
    assert piece not in text
    quoted = "".join(re.findall(r"'[^']*'|\"[^\"]*\"", text))
    for i in range(len(value) - 3):  # no piece of 4 in a quoted value, of 12 anywhere
        assert value[i : i + 4] not in quoted, value[i : i + 4]
        assert len(value[i : i + 12]) < 12 or value[i : i + 12] not in text


def test_a_url_typed_as_a_key_is_not_echoed(tmp_path: Path) -> None:
    p = tmp_path / "rules.yaml"
    p.write_text(BASE.format(url="json://127.0.0.1:1/x", port="4002").replace(
        "    - url: json://127.0.0.1:1/x\n", f"    - {SECRET}: x\n"
    ))  # fmt: skip
    with pytest.raises(ConfigError) as info:
        load_config(p, environ={})
    text = str(info.value)
    assert "notifications.targets[0].***: unknown key (not shown: it looks like a URL or a secret" in text
    assert MARK not in text and "AAHsup3r" not in text and "123456" not in text
