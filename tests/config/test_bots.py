"""The `bots:` section: tokens as secrets (credential:, file:, ${VAR}) never shown, and its cross-checks."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from watchdog.commands.check import check_command
from watchdog.config.load import load, load_config
from watchdog.errors import ConfigError

TOKEN = "s3cret-heartbeat-t0ken-0123456789"
MARK = "s3cret-heartbeat"

BASE = """\
gateway:
  port: 4002
  client_id: 99
  paper: true
  accounts: [DU111111, DU222222]
bots:
  listen: {listen}
  heartbeats:
    - name: alpha
      token: {token}
      accounts: [{accounts}]
rules:
  - name: alpha-silent
    when: "{when}"
    bot: {bot}
    action: cancel_all
"""


def write(
    tmp_path: Path,
    token: str = "${ALPHA_TOKEN}",
    *,
    listen: str = "127.0.0.1:9110",
    accounts: str = "DU111111",
    when: str = "bot_silence > 15s",
    bot: str = "alpha",
    extra: str = "",
    mode: int = 0o600,
) -> Path:
    p = tmp_path / "rules.yaml"
    p.write_text(BASE.format(listen=listen, token=token, accounts=accounts, when=when, bot=bot) + extra)
    p.chmod(mode)
    return p


def problems(path: Path, **kw: object) -> list[str]:
    with pytest.raises(ConfigError) as e:
        load_config(path, environ={"ALPHA_TOKEN": TOKEN}, **kw)  # type: ignore[arg-type]
    text = ["rules.yaml" + str(p).split("rules.yaml", 1)[1] for p in e.value.problems]
    assert all(MARK not in t for t in text)
    return text


def test_a_token_from_the_environment_is_a_secret_never_shown(tmp_path: Path) -> None:
    config = load_config(write(tmp_path), environ={"ALPHA_TOKEN": TOKEN})
    (bot,) = config.bots.heartbeats
    assert bot.token.get_secret_value() == TOKEN and bot.accounts == ("DU111111",)
    assert MARK not in repr(config) and MARK not in str(config)
    assert config.rules[0].bot == "alpha" and config.bots.address == ("127.0.0.1", 9110)


def test_a_token_from_a_systemd_credential(tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "alpha-heartbeat-token").write_text(TOKEN + "\n")
    config = load_config(
        write(tmp_path, "credential:alpha-heartbeat-token"), environ={}, credentials_dir=str(creds)
    )
    assert config.bots.heartbeats[0].token.get_secret_value() == TOKEN


def test_a_literal_token_in_a_file_others_can_read_is_warned_about(tmp_path: Path) -> None:
    result = load(write(tmp_path, TOKEN, mode=0o644), environ={})
    (warning,) = result.warnings
    assert "bots.heartbeats[0].token: holds a secret bot heartbeat token" in str(warning)
    assert MARK not in str(warning)


def test_check_never_prints_the_token(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALPHA_TOKEN", TOKEN)
    assert check_command(str(write(tmp_path))) == 0
    out = capsys.readouterr()
    assert MARK not in out.out + out.err and "alpha-silent" in out.out


def test_a_short_token_is_refused_without_echoing_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, "${SHORT}"), environ={"SHORT": "abc123secret"})
    (problem,) = e.value.problems
    assert str(problem).endswith(
        "rules.yaml:10: bots.heartbeats[0].token: must be at least 16 characters "
        "(e.g. `openssl rand -hex 24`; value not shown: it is secret)"
    )
    assert "abc123secret" not in str(e.value)


@pytest.mark.parametrize(
    "token",
    ["s3cret-h\u00e9artbeat-0123456789", "s3cret-heartbeat 0123456789", "s3cret-heartbeat\t0123456789"],
)
def test_a_token_must_be_printable_ascii_and_is_never_echoed(tmp_path: Path, token: str) -> None:
    """The receiver reads the Authorization header as latin-1: a non-ASCII token is refused at load."""
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, "${TOKEN}"), environ={"TOKEN": token})
    (problem,) = e.value.problems
    assert str(problem).endswith(
        "rules.yaml:10: bots.heartbeats[0].token: must be printable ASCII without spaces (letters, digits, "
        "punctuation; e.g. `openssl rand -hex 24`; value not shown: it is secret)"
    )
    assert "s3cret" not in str(e.value)


def test_an_unknown_bot_is_named_with_its_line(tmp_path: Path) -> None:
    assert problems(write(tmp_path, bot="alfa")) == [
        "rules.yaml:15: rules[0].bot: no bot named 'alfa' in bots.heartbeats (alpha) (did you mean 'alpha'?)"
    ]


def test_bot_silence_needs_a_bot(tmp_path: Path) -> None:
    path = write(tmp_path)
    path.write_text(path.read_text().replace("    bot: alpha\n", ""))
    (problem,) = problems(path)
    assert problem.startswith("rules.yaml:13: rules[0]: ") and "bot_silence needs bot: NAME" in problem


def test_bot_belongs_to_a_bot_silence_rule(tmp_path: Path) -> None:
    (problem,) = problems(write(tmp_path, when="daily_pnl <= -2500"))
    assert "bot: belongs to a rule on bot_silence" in problem


def test_a_bots_accounts_must_be_watched(tmp_path: Path) -> None:
    assert problems(write(tmp_path, accounts="DU333333")) == [
        "rules.yaml:11: bots.heartbeats[0].accounts[0]: account 'DU333333' is not watched "
        "(gateway.accounts: DU111111, DU222222)"
    ]


def test_a_bot_rule_takes_its_scope_from_the_bot(tmp_path: Path) -> None:
    path = write(tmp_path)
    path.write_text(path.read_text().replace("    bot: alpha\n", "    bot: alpha\n    scope: all\n"))
    (problem,) = problems(path)
    assert "rules[0].scope: a bot rule's scope is its bot's accounts" in problem


@pytest.mark.parametrize("listen", ["127.0.0.1", "localhost", "127.0.0.1:99999", ":9110"])
def test_listen_must_be_host_and_port(tmp_path: Path, listen: str) -> None:
    (problem,) = problems(write(tmp_path, listen=listen))
    assert "bots.listen: must be HOST:PORT like 127.0.0.1:9110" in problem


@pytest.mark.parametrize("name", ["Alpha", "a b", "x" * 41, "../etc"])
def test_bot_names_are_plain(tmp_path: Path, name: str) -> None:
    path = write(tmp_path)
    text = path.read_text().replace("- name: alpha\n", f"- name: '{name}'\n")
    path.write_text(text.replace("bot: alpha", f"bot: '{name}'"))
    found = problems(path)
    assert any("bots.heartbeats[0].name: must be 1-40 lower-case letters" in p for p in found)


def test_the_same_bot_twice_is_refused(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    extra_bot = "    - name: alpha\n      token: ${ALPHA_TOKEN}\n"
    path = write(tmp_path)
    path.write_text(path.read_text().replace("rules:\n", extra_bot + "rules:\n"))
    assert any("bot names must be listed once each, repeated: alpha" in p for p in problems(path))


def test_the_commented_example_in_the_repos_rules_yaml_loads_once_uncommented(tmp_path: Path) -> None:
    repo = Path(__file__).resolve().parents[2]
    text = (repo / "rules.yaml").read_text()
    start, middle = text.index("# bots:\n"), text.index("# and among the rules below:\n")
    end = text.index("\n\n", middle)
    bots = "\n".join(line[2:] for line in text[start:middle].splitlines())
    rule = "\n".join(line[2:] for line in text[middle:end].splitlines()[1:])
    edited = text[:start] + bots + "\n" + text[end:].replace("\nrules:\n", "\nrules:\n" + rule + "\n", 1)
    path = tmp_path / "rules.yaml"
    path.write_text(edited)
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "alpha-heartbeat-token").write_text(TOKEN)
    config = load_config(path, environ={}, credentials_dir=str(creds))
    assert config.bots.heartbeats[0].name == "alpha" and config.bots.address == ("127.0.0.1", 9110)
    assert [r.name for r in config.rules if r.bot == "alpha"] == ["alpha-silent"]


@pytest.mark.parametrize(
    "when", ["bot_silence < 15s", "bot_silence <= 15s", "bot_silence == 15s", "bot_silence != 15s"]
)
def test_bot_silence_compares_only_with_greater_than(tmp_path: Path, when: str) -> None:
    """`bot_silence < 15s` would fire on every heartbeat: a request must never cause a kill."""
    (problem,) = problems(write(tmp_path, when=when))
    op = when.split()[1]
    assert problem.startswith("rules.yaml:14: rules[0].when: ")
    assert f"bot_silence compares only with > or >= (silent for longer than), not {op}" in problem


@pytest.mark.parametrize(
    "when", ["bot_silence > 0s", "bot_silence >= 0s", "daily_pnl < 0 or bot_silence >= 0s"]
)
def test_bot_silence_needs_a_limit_above_zero(tmp_path: Path, when: str) -> None:
    (problem,) = problems(write(tmp_path, when=when))
    assert problem.startswith("rules.yaml:14: rules[0].when: ") and "a limit above 0 s" in problem
