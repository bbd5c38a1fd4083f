#!/usr/bin/env bash
# Tests deploy/install.sh in a throwaway root (DESTDIR): files and modes, the installed CLI, that the
# venv holds exactly the versions in requirements.lock (and nothing else), that a
# second run changes nothing, that operator edits survive, instances, the tunnel, systemd-analyze
# verify on the installed tree, and --uninstall / --purge. Run by `make test` via deploy/check.sh.
# Extra pip arguments: TEST_INSTALL_PIP_ARGS (default --no-compile: byte-compiling the venv is pip's job,
# not the script's, and halves the time; e.g. add "--no-index --find-links DIR" to run offline).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
t0=$(date +%s.%N)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
root=$tmp/root
failures=0
TEST_INSTALL_PIP_ARGS=${TEST_INSTALL_PIP_ARGS---no-compile}

fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
ok() { echo "ok: $*"; }
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f s", b - a }'; }
expect_mode() { # PATH MODE
    local m
    if [ ! -e "$root$1" ]; then fail "$1 is missing"; return; fi
    m=$(stat -c %a "$root$1")
    [ "$m" = "$2" ] && ok "$1 mode $2" || fail "$1 has mode $m, want $2"
}
absent() { [ ! -e "$root$1" ] && ok "$1 absent" || fail "$1 still exists"; }
# Everything that can change in the root: type, mode, path, link target, content.
manifest() {
    (cd "$root" && find . -printf '%y %m %p %l\n' | LC_ALL=C sort &&
        find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum)
}
install_sh() { # runs the snapshot's install.sh into $root; output kept for failures
    local log=$tmp/install.log rc=0
    # shellcheck disable=SC2086
    DESTDIR=$root bash "$src/deploy/install.sh" ${TEST_INSTALL_PIP_ARGS:+--pip-args "$TEST_INSTALL_PIP_ARGS"} "$@" \
        >"$log" 2>&1 || rc=$?
    grep -v "is ignored: it is neither a file nor a directory" "$log" | sed 's/^/    | /'
    return $rc
}

# A frozen copy of the repository: the test must not depend on (or disturb) the working tree.
src=$tmp/src
mkdir -p "$src"
(cd "$repo" && tar -cf - --exclude=__pycache__ --exclude='*.egg-info' pyproject.toml README.md LICENSE \
    requirements.lock rules.yaml watchdog systemd deploy/install.sh deploy/credentials) | (cd "$src" && tar -xf -)

echo "== first install"
t=$(date +%s.%N)
install_sh || { fail "install.sh failed"; exit 1; }
first_time=$(elapsed "$t")
ok "first install took $first_time"
grep -iE 'deprecat' "$tmp/install.log" && fail "the install printed a deprecation warning (above)" ||
    ok "the install printed no deprecation warning"

want_version=$(sed -nE 's/^__version__ = "([^"]+)"/\1/p' "$src/watchdog/__init__.py")
got_version=$("$root/opt/ibkr-watchdog/venv/bin/ibkr-watchdog" --version)
[ "$got_version" = "ibkr-watchdog $want_version" ] && ok "installed CLI says: $got_version" ||
    fail "installed CLI says '$got_version', want 'ibkr-watchdog $want_version'"

# The venv holds exactly the locked versions: every pin of the lock installed at that version, and no
# distribution the lock does not name (besides pip, setuptools and the package itself).
if out=$(PYTHONDONTWRITEBYTECODE=1 "$root/opt/ibkr-watchdog/venv/bin/python" - "$src/requirements.lock" <<'EOF'
import importlib.metadata as md, re, sys
norm = lambda name: re.sub(r"[-_.]+", "-", name).lower()
pins = dict(re.findall(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", open(sys.argv[1]).read(), re.M))
pins = {norm(n): v for n, v in pins.items()}
have = {norm(d.metadata["Name"]): d.version for d in md.distributions()}
wrong = [f"{n}: locked {v}, installed {have.get(n, 'nothing')}" for n, v in sorted(pins.items()) if have.get(n) != v]
extra = sorted(set(have) - set(pins) - {"pip", "setuptools", "ibkr-watchdog"})
wrong += [f"{n} {have[n]}: installed but not in the lock" for n in extra]
print("\n".join(wrong) if wrong else f"{len(pins)} locked distributions installed at their locked versions")
sys.exit(1 if wrong or not pins else 0)
EOF
); then
    ok "venv = lock: $out"
else
    fail "venv differs from requirements.lock: $out"
fi

expect_mode /opt/ibkr-watchdog 755
expect_mode /opt/ibkr-watchdog/libexec/notify-failure.py 644
for u in ibkr-watchdog.service ibkr-watchdog@.service ibkr-watchdog-failure@.service ibkr-watchdog-tunnel.service; do
    expect_mode "/etc/systemd/system/$u" 644
    cmp -s "$src/systemd/$u" "$root/etc/systemd/system/$u" || fail "$u differs from systemd/$u"
done
expect_mode /etc/ibkr-watchdog 750
expect_mode /etc/ibkr-watchdog/rules.yaml 640
expect_mode /etc/ibkr-watchdog/credentials 700
expect_mode /etc/ibkr-watchdog/credentials/notify-urls 600
absent /etc/systemd/system/ibkr-watchdog.service.d
grep -q '^state_dir: /var/lib/ibkr-watchdog ' "$root/etc/ibkr-watchdog/rules.yaml" &&
    ok "installed rules.yaml keeps its state in the StateDirectory" || fail "installed rules.yaml: state_dir not adapted"
grep -q '^  urls_file: credential:notify-urls' "$root/etc/ibkr-watchdog/rules.yaml" &&
    ok "installed rules.yaml reads credential:notify-urls" || fail "installed rules.yaml: urls_file not enabled"
[ -z "$(find "$src" -name build -o -name '*.egg-info')" ] && ok "source tree left clean (no build/, no egg-info)" ||
    fail "install.sh left build artefacts in the source tree"

# Every command a unit runs from /opt must exist in the installed tree.
for exe in $(grep -hoE '^Exec[A-Za-z]*=[-@:+!]*/opt/[^ ]+' "$root"/etc/systemd/system/*.service |
    sed -E 's/^[^=]+=[-@:+!]*//' | sort -u); do
    [ -x "$root$exe" ] && ok "unit command $exe is installed" || fail "unit command $exe is not installed"
done

export PYTHONDONTWRITEBYTECODE=1 # the checks below must not add .pyc files to the installed tree
if CREDENTIALS_DIRECTORY=$root/etc/ibkr-watchdog/credentials \
    "$root/opt/ibkr-watchdog/venv/bin/ibkr-watchdog" check --quiet "$root/etc/ibkr-watchdog/rules.yaml"; then
    ok "installed ibkr-watchdog check accepts the installed config"
else
    fail "installed ibkr-watchdog check rejects the installed config"
fi
printf 'gateway:\n  port: 0\n' >"$tmp/bad.yaml"
rc=0
"$root/opt/ibkr-watchdog/venv/bin/ibkr-watchdog" check --quiet "$tmp/bad.yaml" >/dev/null 2>&1 || rc=$?
[ "$rc" = 2 ] && ok "installed ibkr-watchdog check exits 2 on a bad config" || fail "check on a bad config exited $rc, want 2"
"$root/opt/ibkr-watchdog/venv/bin/python" "$root/opt/ibkr-watchdog/libexec/notify-failure.py" --help >/dev/null &&
    "$root/opt/ibkr-watchdog/venv/bin/python" -c 'import apprise' &&
    ok "the OnFailure notifier runs on the installed venv" || fail "the OnFailure notifier does not run on the venv"

if command -v systemd-analyze >/dev/null; then
    # Verify the units against the real installed tree (stock units and OS binaries added).
    vroot=$tmp/vroot
    mkdir -p "$vroot/usr/lib/systemd" "$vroot/usr/bin"
    stock=/usr/lib/systemd/system # the host's stock units, or those deploy/fetch-tools.sh unpacked
    [ -e "$stock/sysinit.target" ] || stock=$repo/.ci/tools/lib/systemd/system
    cp -a "$stock" "$vroot/usr/lib/systemd/system"
    ln -s usr/lib "$vroot/lib"
    ln -s usr/bin "$vroot/bin"
    cp -a "$root/etc" "$root/opt" "$vroot/"
    # OS binaries the units call, and the base interpreter the venv's python links to.
    base=$vroot/opt/ibkr-watchdog/venv/bin/python
    while [ -L "$base" ]; do
        link=$(readlink "$base")
        case $link in /*) base=$vroot$link ;; *) base=$(dirname "$base")/$link ;; esac
    done
    for exe in /usr/bin/kill /usr/bin/ssh "${base#"$vroot"}"; do
        [ -e "$vroot$exe" ] || { mkdir -p "$(dirname "$vroot$exe")" && printf '#!/bin/sh\n' >"$vroot$exe"; }
        chmod 755 "$vroot$exe"
    done
    out=$(systemd-analyze verify --root="$vroot" --man=no --generators=no ibkr-watchdog.service \
        ibkr-watchdog@acct1.service ibkr-watchdog-failure@ibkr-watchdog.service.service 2>&1) && [ -z "$out" ] &&
        ok "systemd-analyze verify on the installed tree: clean" || fail "verify on the installed tree: $out"
    rm -rf "$vroot"
fi

echo "== second install: must change nothing"
before=$(manifest)
t=$(date +%s.%N)
install_sh || fail "second install.sh failed"
second_time=$(elapsed "$t")
[ "$before" = "$(manifest)" ] && ok "second run changed nothing ($second_time)" ||
    { fail "second run changed the tree:"; diff <(echo "$before") <(manifest) | head -20 >&2; }

echo "== operator edits survive a re-run"
echo "# operator was here" >>"$root/etc/ibkr-watchdog/rules.yaml"
chmod 600 "$root/etc/ibkr-watchdog/rules.yaml"
echo "critical=json://127.0.0.1:9/" >>"$root/etc/ibkr-watchdog/credentials/notify-urls"
before=$(manifest)
install_sh || fail "third install.sh failed"
[ "$before" = "$(manifest)" ] && ok "config, its mode 0600 and credentials kept as the operator left them" ||
    { fail "re-run touched operator files:"; diff <(echo "$before") <(manifest) | head -20 >&2; }

echo "== instance acct1"
install_sh --instance acct1 || fail "install.sh --instance acct1 failed"
expect_mode /etc/ibkr-watchdog/acct1.yaml 640
expect_mode /etc/ibkr-watchdog/credentials/acct1 700
expect_mode /etc/ibkr-watchdog/credentials/acct1/notify-urls 600
grep -q '^state_dir: /var/lib/ibkr-watchdog/acct1 ' "$root/etc/ibkr-watchdog/acct1.yaml" &&
    ok "acct1.yaml keeps its state in /var/lib/ibkr-watchdog/acct1" || fail "acct1.yaml: state_dir not adapted"
grep -q '# operator was here' "$root/etc/ibkr-watchdog/rules.yaml" || fail "instance install touched rules.yaml"

if command -v ssh-keygen >/dev/null; then
    echo "== tunnel"
    install_sh --tunnel || fail "install.sh --tunnel failed"
    expect_mode /etc/systemd/system/ibkr-watchdog.service.d/tunnel.conf 644
    expect_mode /etc/ibkr-watchdog/tunnel.env 644
    expect_mode /etc/ibkr-watchdog/credentials/tunnel-key 600
    expect_mode /etc/ibkr-watchdog/credentials/tunnel-key.pub 644
    before=$(manifest)
    install_sh --tunnel || fail "second install.sh --tunnel failed"
    [ "$before" = "$(manifest)" ] && ok "second --tunnel run changed nothing (key kept)" || fail "second --tunnel run changed the tree"
else
    echo "skipped: tunnel (no ssh-keygen on this machine)"
fi

echo "== uninstall keeps config, credentials and state"
mkdir -p "$root/var/lib/ibkr-watchdog" && echo '{}' >"$root/var/lib/ibkr-watchdog/state.json"
install_sh --uninstall || fail "install.sh --uninstall failed"
absent /opt/ibkr-watchdog
for u in ibkr-watchdog.service ibkr-watchdog@.service ibkr-watchdog-failure@.service ibkr-watchdog-tunnel.service; do
    absent "/etc/systemd/system/$u"
done
absent /etc/systemd/system/ibkr-watchdog.service.d
grep -q '# operator was here' "$root/etc/ibkr-watchdog/rules.yaml" && ok "uninstall kept the operator's rules.yaml" ||
    fail "uninstall lost rules.yaml"
[ -f "$root/var/lib/ibkr-watchdog/state.json" ] && ok "uninstall kept the state dir" || fail "uninstall lost the state"
install_sh --uninstall >/dev/null || fail "a second --uninstall failed"

echo "== uninstall --purge"
install_sh --uninstall --purge || fail "install.sh --uninstall --purge failed"
left=$(cd "$root" && find . -mindepth 1 -not -type d)
[ -z "$left" ] && ok "purge left no files" || fail "purge left: $left"

echo "test-install: first install $first_time, re-run $second_time, total $(elapsed "$t0")"
[ "$failures" = 0 ] || { echo "test-install: $failures failure(s)" >&2; exit 1; }
echo "test-install: all passed"
