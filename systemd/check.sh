#!/usr/bin/env bash
# systemd unit checks run by `make test` (via deploy/check.sh), offline: no running systemd needed.
#  1. `systemd-analyze verify` must print nothing at all (any warning fails) for every unit, an
#     instance of each template, and again with the example drop-ins installed.
#  2. `systemd-analyze security --offline=true` overall exposure must be <= MAX_EXPOSURE.
# The units are checked inside a throwaway root (--root=) holding the host's stock units, the
# layout deploy/install.sh creates (/opt/ibkr-watchdog/venv/bin/..., libexec/) and placeholders for
# the host binaries the units call, so verify's "is the command executable" checks are meaningful
# against the install layout and not against whatever this CI machine happens to have in /opt.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
MAX_EXPOSURE=${MAX_EXPOSURE:-1.5}

repo=$(cd "$here/.." && pwd)
[ -d "$repo/.ci/tools/commands" ] && export PATH="$repo/.ci/tools/commands:$PATH"
command -v systemd-analyze >/dev/null ||
    { echo "systemd-analyze not found: run deploy/fetch-tools.sh (or apt-get install systemd)" >&2; exit 1; }
# Stock units from the host, or from the systemd package deploy/fetch-tools.sh unpacked.
stock=/usr/lib/systemd/system
[ -e "$stock/sysinit.target" ] || stock=$repo/.ci/tools/lib/systemd/system
[ -e "$stock/sysinit.target" ] || { echo "no stock systemd units (sysinit.target) on this host" >&2; exit 1; }
echo "systemd-analyze: $(systemd-analyze --version | head -n1)"

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT

# Stock units (sysinit.target, network-online.target, ...) so dependencies resolve as on a host.
mkdir -p "$root/usr/lib/systemd" "$root/etc/systemd/system" "$root/usr/bin" "$root/usr/sbin"
cp -a "$stock" "$root/usr/lib/systemd/system"
ln -s usr/lib "$root/lib"
ln -s usr/bin "$root/bin"
ln -s usr/sbin "$root/sbin"

# Every executable the units name must exist in the root. The /opt paths are exactly where
# deploy/install.sh puts them (deploy/test-install.sh checks that side); the rest are OS binaries.
fake_exec() { mkdir -p "$(dirname "$root$1")"; printf '#!/bin/sh\nexit 0\n' >"$root$1"; chmod 0755 "$root$1"; }
for exe in /opt/ibkr-watchdog/venv/bin/ibkr-watchdog /opt/ibkr-watchdog/venv/bin/python /usr/bin/kill /usr/bin/ssh; do
    fake_exec "$exe"
done
missing=$(grep -hoE '^Exec[A-Za-z]*=[-@:+!]*/[^ ]+' "$here"/*.service | sed -E 's/^[^=]+=[-@:+!]*//' | sort -u |
    while read -r exe; do [ -x "$root$exe" ] || echo "$exe"; done)
[ -z "$missing" ] || { echo "FAIL: units call executables check.sh does not know: $missing" >&2; exit 1; }

cp "$here"/*.service "$root/etc/systemd/system/"

units=(
    ibkr-watchdog.service
    ibkr-watchdog@acct1.service
    ibkr-watchdog-failure@ibkr-watchdog.service.service
    ibkr-watchdog-failure@ibkr-watchdog@acct1.service.service
    ibkr-watchdog-tunnel.service
)

status=0
verify() {
    local label=$1 out rc=0
    out=$(systemd-analyze verify --root="$root" --man=no --generators=no "${units[@]}" 2>&1) || rc=$?
    if [ "$rc" -ne 0 ] || [ -n "$out" ]; then
        echo "FAIL: systemd-analyze verify ($label) exit $rc:" >&2
        printf '%s\n' "$out" >&2
        status=1
    else
        echo "ok: systemd-analyze verify ($label): no output, exit 0"
    fi
}

security() {
    local label=$1 unit out level
    for unit in "${units[@]}"; do
        out=$(systemd-analyze security --offline=true --root="$root" --no-pager "$unit" 2>&1) || {
            echo "FAIL: systemd-analyze security $unit:" >&2; printf '%s\n' "$out" >&2; status=1; continue
        }
        level=$(printf '%s\n' "$out" | sed -nE 's/^→ Overall exposure level for [^:]+: ([0-9]+\.[0-9]+).*/\1/p')
        if [ -z "$level" ]; then
            echo "FAIL: no exposure level in the output for $unit:" >&2; printf '%s\n' "$out" >&2; status=1
        elif awk -v l="$level" -v m="$MAX_EXPOSURE" 'BEGIN { exit !(l > m) }'; then
            echo "FAIL: $unit ($label) exposure $level > $MAX_EXPOSURE:" >&2
            printf '%s\n' "$out" | grep '✗' >&2
            status=1
        else
            echo "ok: $unit ($label) exposure $level <= $MAX_EXPOSURE"
        fi
    done
}

verify "units as shipped"
security "as shipped"

# The documented drop-ins must keep everything valid.
for unit in ibkr-watchdog.service ibkr-watchdog@.service; do
    mkdir -p "$root/etc/systemd/system/$unit.d"
    cp "$here/examples/tunnel.conf" "$here/examples/network-strict.conf" "$root/etc/systemd/system/$unit.d/"
done
verify "with examples/tunnel.conf and examples/network-strict.conf"
security "with the strict-network drop-in"

exit $status
