"""Static checks of the systemd units: the contract with the daemon and the hardening baseline.

`systemd/check.sh` (run by `make test`) covers `systemd-analyze verify` and the exposure score; these
tests pin down what that score cannot see: the values the daemon and install.sh depend on.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.deploy.units import SYSTEMD_DIR, Unit, last, read_unit

pytestmark = pytest.mark.deploy

SERVICES = (
    "ibkr-watchdog.service",
    "ibkr-watchdog@.service",
    "ibkr-watchdog-failure@.service",
    "ibkr-watchdog-tunnel.service",
)
DAEMONS = ("ibkr-watchdog.service", "ibkr-watchdog@.service")
VENV_BIN = "/opt/ibkr-watchdog/venv/bin/"

# Every service must carry these exact values.
HARDENING = {
    "NoNewPrivileges": "yes",
    "CapabilityBoundingSet": "",
    "AmbientCapabilities": "",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "PrivateUsers": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectKernelLogs": "yes",
    "ProtectControlGroups": "yes",
    "ProtectClock": "yes",
    "ProtectHostname": "yes",
    "ProtectProc": "invisible",
    "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
    "RestrictNamespaces": "yes",
    "RestrictRealtime": "yes",
    "RestrictSUIDSGID": "yes",
    "LockPersonality": "yes",
    "MemoryDenyWriteExecute": "yes",
    "SystemCallArchitectures": "native",
    "UMask": "0077",
    "RemoveIPC": "yes",
    "DevicePolicy": "closed",
    "KeyringMode": "private",
}


def unit(name: str) -> Unit:
    return read_unit(SYSTEMD_DIR / name)


@pytest.mark.parametrize("name", SERVICES)
def test_every_service_carries_the_full_hardening_set(name: str) -> None:
    u = unit(name)
    wrong = {k: last(u, "Service", k) for k, v in HARDENING.items() if last(u, "Service", k) != v}
    assert wrong == {}, f"{name}: hardening directives missing or different"
    filters = u["Service"]["SystemCallFilter"]
    assert filters == ["@system-service", "~@privileged @resources"]
    user = last(u, "Service", "User")
    assert user not in (None, "root")


@pytest.mark.parametrize("name", DAEMONS)
def test_the_daemon_keeps_proc_metrics_visible(name: str) -> None:
    # ProcSubset=pid hides /proc/stat, which the process metrics (start time, CPU seconds) read.
    assert last(unit(name), "Service", "ProcSubset") in (None, "all")


@pytest.mark.parametrize("name", DAEMONS)
def test_the_daemon_is_a_supervised_notify_service(name: str) -> None:
    u = unit(name)
    assert last(u, "Service", "Type") == "notify"
    assert last(u, "Service", "NotifyAccess") == "main"
    assert last(u, "Service", "WatchdogSec") == "30s"
    assert last(u, "Service", "Restart") == "always"
    assert last(u, "Unit", "StartLimitBurst") is not None
    assert last(u, "Unit", "StartLimitIntervalSec") is not None
    # READY=1 follows the first good snapshot, i.e. as late as the gateway is down: no start timeout.
    assert last(u, "Service", "TimeoutStartSec") == "infinity"
    assert last(u, "Service", "RestartPreventExitStatus") == "2"  # bad config: alert, do not loop
    assert last(u, "Service", "OnFailure") is None
    assert last(u, "Unit", "OnFailure") == "ibkr-watchdog-failure@%n.service"


@pytest.mark.parametrize(
    ("name", "config"),
    [("ibkr-watchdog.service", "rules.yaml"), ("ibkr-watchdog@.service", "%i.yaml")],
)
def test_reload_checks_the_file_then_sends_sighup_to_the_main_process(name: str, config: str) -> None:
    """Issue 14 #11: `systemctl reload` fails visibly on a bad file; the daemon keeps its config anyway."""
    path = "${CONFIGURATION_DIRECTORY}/" + config
    assert unit(name)["Service"]["ExecReload"] == [
        f"{VENV_BIN}ibkr-watchdog check --quiet {path}",
        "/bin/kill -HUP $MAINPID",
    ]


@pytest.mark.parametrize(
    ("name", "config"),
    [("ibkr-watchdog.service", "rules.yaml"), ("ibkr-watchdog@.service", "%i.yaml")],
)
def test_exec_start_pre_checks_the_config_the_daemon_runs(name: str, config: str) -> None:
    u = unit(name)
    path = "${CONFIGURATION_DIRECTORY}/" + config
    assert last(u, "Service", "ExecStartPre") == f"{VENV_BIN}ibkr-watchdog check --quiet {path}"
    assert last(u, "Service", "ExecStart") == f"{VENV_BIN}ibkr-watchdog run --config {path}"
    assert last(u, "Service", "ConfigurationDirectory") == "ibkr-watchdog"


def test_template_paths_are_per_instance() -> None:
    u = unit("ibkr-watchdog@.service")
    assert last(u, "Service", "StateDirectory") == "ibkr-watchdog/%i"
    assert last(u, "Service", "LoadCredential") == (
        "notify-urls:/etc/ibkr-watchdog/credentials/%i/notify-urls"
    )
    assert "%i" in (last(u, "Unit", "Description") or "")


def test_main_unit_state_and_credential_match_the_install_layout() -> None:
    u = unit("ibkr-watchdog.service")
    assert last(u, "Service", "StateDirectory") == "ibkr-watchdog"  # config state_dir /var/lib/ibkr-watchdog
    assert last(u, "Service", "LoadCredential") == "notify-urls:/etc/ibkr-watchdog/credentials/notify-urls"


def test_template_differs_from_the_main_unit_only_in_per_instance_settings() -> None:
    main, tmpl = unit("ibkr-watchdog.service"), unit("ibkr-watchdog@.service")
    per_instance = {
        ("Unit", "Description"),
        ("Service", "ExecStartPre"),
        ("Service", "ExecStart"),
        ("Service", "ExecReload"),
        ("Service", "StateDirectory"),
        ("Service", "LoadCredential"),
        ("Service", "SyslogIdentifier"),
    }
    differing = {
        (section, key)
        for section in main.keys() | tmpl.keys()
        for key in main.get(section, {}).keys() | tmpl.get(section, {}).keys()
        if main.get(section, {}).get(key) != tmpl.get(section, {}).get(key)
    }
    assert differing <= per_instance, f"drifted: {sorted(differing - per_instance)}"


def test_failure_alert_names_the_failed_unit_and_reads_the_host_credential() -> None:
    u = unit("ibkr-watchdog-failure@.service")
    assert last(u, "Service", "Type") == "oneshot"
    assert last(u, "Service", "ExecStart") == (
        f"{VENV_BIN}python /opt/ibkr-watchdog/libexec/notify-failure.py %i"
    )
    assert last(u, "Service", "LoadCredential") == "notify-urls:/etc/ibkr-watchdog/credentials/notify-urls"
    assert last(u, "Unit", "OnFailure") is None  # an alert about an alert would loop


def test_tunnel_forwards_loopback_only_with_keepalives_and_a_pinned_host_key() -> None:
    u = unit("ibkr-watchdog-tunnel.service")
    cmd = last(u, "Service", "ExecStart") or ""
    assert cmd.startswith("/usr/bin/ssh ")
    for option in (
        "-N",
        "BatchMode=yes",
        "ExitOnForwardFailure=yes",
        "ServerAliveInterval=10",
        "ServerAliveCountMax=3",
        "StrictHostKeyChecking=yes",
    ):
        assert option in cmd.split() or f"-o {option}" in cmd, option
    # Both ends of the forward are loopback: nothing listens on a public address.
    assert re.search(r"-L 127\.0\.0\.1:\$\{TUNNEL_LOCAL_PORT\}:127\.0\.0\.1:\$\{TUNNEL_GATEWAY_PORT\}", cmd)
    assert last(u, "Service", "Restart") == "always"
    assert last(u, "Service", "User") not in (None, "root", "ibkr-watchdog")
    assert last(u, "Unit", "ConditionFileNotEmpty") == "/etc/ibkr-watchdog/tunnel_known_hosts"
    # The tunnel user cannot enter /etc/ibkr-watchdog (0750 root:ibkr-watchdog): both come as credentials.
    assert u["Service"]["LoadCredential"] == [
        "tunnel-key:/etc/ibkr-watchdog/credentials/tunnel-key",
        "known-hosts:/etc/ibkr-watchdog/tunnel_known_hosts",
    ]
    assert "-o UserKnownHostsFile=%d/known-hosts" in cmd
    assert "-o IdentityFile=%d/tunnel-key" in cmd


@pytest.mark.skipif(shutil.which("ssh") is None, reason="needs the OpenSSH client")
def test_tunnel_command_is_accepted_by_ssh(tmp_path: Path) -> None:
    # `ssh -G` parses every option and prints the resulting config without connecting.
    env = dict(
        line.split("=", 1)
        for line in (SYSTEMD_DIR / "examples" / "tunnel.env").read_text(encoding="utf-8").splitlines()
        if line and not line.startswith("#")
    )
    cmd = (last(unit("ibkr-watchdog-tunnel.service"), "Service", "ExecStart") or "").replace(
        "%d", str(tmp_path)
    )
    argv = [re.sub(r"\$\{(\w+)\}", lambda m: env[m.group(1)], word) for word in shlex.split(cmd)]
    done = subprocess.run(
        [*argv[:-1], "-G", argv[-1]], capture_output=True, text=True, timeout=10, check=False
    )
    assert done.returncode == 0, done.stderr
    printed = done.stdout.lower().splitlines()
    assert "localforward [127.0.0.1]:4002 [127.0.0.1]:4002" in printed
    assert "hostname trading.example.com" in printed
    assert "serveraliveinterval 10" in printed
    assert "exitonforwardfailure yes" in printed


def test_tunnel_dropin_orders_the_daemon_after_it_without_binding_their_fates() -> None:
    drop = read_unit(SYSTEMD_DIR / "examples" / "tunnel.conf")
    assert last(drop, "Unit", "Wants") == "ibkr-watchdog-tunnel.service"
    assert last(drop, "Unit", "After") == "ibkr-watchdog-tunnel.service"
    # The daemon must outlive a dead tunnel to alert and hold a pending kill.
    assert not {"Requires", "BindsTo", "PartOf", "Requisite"} & drop["Unit"].keys()


def test_strict_network_dropin_denies_all_but_loopback() -> None:
    drop = read_unit(SYSTEMD_DIR / "examples" / "network-strict.conf")
    assert drop["Service"]["IPAddressDeny"] == ["any"]
    assert drop["Service"]["IPAddressAllow"] == ["localhost"]


@pytest.mark.parametrize("name", DAEMONS)
def test_the_daemon_has_a_raised_descriptor_limit(name: str) -> None:
    limit = last(unit(name), "Service", "LimitNOFILE")
    assert limit is not None and int(limit) >= 4096
