#!/usr/bin/env bash
# Install (or --uninstall) ibkr-watchdog on a Debian/Ubuntu host: venv under /opt with exactly the
# locked dependency versions (requirements.lock, hash-checked), systemd units, config and credential
# placeholders with tight permissions, `ibkr-watchdog check`, enable.
# Idempotent: a second run with the same inputs changes nothing. Never overwrites an operator's
# config or credentials. See docs/deployment.md.
#
#   sudo deploy/install.sh                       # install from this repository and enable
#   sudo deploy/install.sh --wheel dist/ibkr_watchdog-VERSION-py3-none-any.whl
#   sudo deploy/install.sh --instance acct1      # ibkr-watchdog@acct1 (one per gateway/account)
#   sudo deploy/install.sh --tunnel              # also the SSH tunnel unit, user and key
#   sudo deploy/install.sh --uninstall [--purge] # --purge also deletes config, credentials, state
#   DESTDIR=/tmp/root deploy/install.sh          # everything under /tmp/root; no apt, users, systemctl
set -euo pipefail

usage() {
    awk 'NR > 1 && !/^#/ { exit } NR > 1' "$0" | sed 's/^# \{0,1\}//'
    cat <<'EOF'

Options:
  --source DIR       install the package from this source tree (default: the repo holding this script)
  --wheel FILE       install the package from a built wheel instead
  --python PYTHON    interpreter for the venv (default: python3; needs 3.11+)
  --lock FILE        pinned, hashed runtime dependencies (default: requirements.lock next to the
                     source, else this repository's); installed with pip --require-hashes, then the
                     package itself with --no-deps, so the host runs exactly the tested versions
  --pip-args ARGS    extra arguments for pip install (e.g. "--no-index --find-links /srv/wheels")
  --config FILE      initial rules.yaml when none is installed yet (default: the repo's rules.yaml)
  --instance NAME    install /etc/ibkr-watchdog/NAME.yaml and enable ibkr-watchdog@NAME instead
  --tunnel           also set up ibkr-watchdog-tunnel.service (user, key, settings, drop-in)
  --no-systemctl     do not call systemctl, apt-get or useradd (implied by DESTDIR)
  --no-start         enable but do not start the service
  --uninstall        remove the venv and units; keep /etc/ibkr-watchdog and /var/lib/ibkr-watchdog
  --purge            with --uninstall: also delete config, credentials, state and the users
EOF
}

die() { echo "install.sh: error: $*" >&2; exit 1; }
say() { echo "install.sh: $*"; }

repo=$(cd "$(dirname "$0")/.." && pwd)
source_dir=$repo
wheel=""
python=python3
pip_args=""
lock=""
config_src=""
instance=""
tunnel=0
use_systemctl=1
start=1
uninstall=0
purge=0

while [ $# -gt 0 ]; do
    case $1 in
        --source) source_dir=$(cd "${2:?--source needs a directory}" && pwd); shift 2 ;;
        --wheel) wheel=$(realpath "${2:?--wheel needs a file}"); shift 2 ;;
        --python) python=${2:?--python needs an interpreter}; shift 2 ;;
        --lock) lock=$(realpath "${2:?--lock needs a file}"); shift 2 ;;
        --pip-args) pip_args=${2?--pip-args needs a value}; shift 2 ;;
        --config) config_src=$(realpath "${2:?--config needs a file}"); shift 2 ;;
        --instance) instance=${2:?--instance needs a name}; shift 2 ;;
        --tunnel) tunnel=1; shift ;;
        --no-systemctl) use_systemctl=0; shift ;;
        --no-start) start=0; shift ;;
        --uninstall) uninstall=1; shift ;;
        --purge) purge=1; shift ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
done

DESTDIR=${DESTDIR:-}
DESTDIR=${DESTDIR%/}
if [ -n "$DESTDIR" ]; then
    mkdir -p "$DESTDIR"
    DESTDIR=$(cd "$DESTDIR" && pwd)
    use_systemctl=0
fi
# "system" = a real host: root, apt when needed, service users, ownership, systemctl.
system=$use_systemctl
if [ "$system" = 1 ] && [ "$(id -u)" != 0 ]; then
    die "run as root (sudo), or use DESTDIR=... / --no-systemctl for a staging install"
fi
if [ -n "$instance" ] && ! [[ $instance =~ ^[A-Za-z0-9][A-Za-z0-9_.-]*$ ]]; then
    die "--instance must be letters, digits, '.', '_' or '-' (it becomes a unit and file name), got: $instance"
fi
[ -z "$wheel" ] || [ -f "$wheel" ] || die "no such wheel: $wheel"
if [ -z "$lock" ] && [ "$uninstall" = 0 ]; then
    lock=$repo/requirements.lock
    [ -n "$wheel" ] || [ ! -f "$source_dir/requirements.lock" ] || lock=$source_dir/requirements.lock
fi
[ "$uninstall" = 1 ] || [ -f "$lock" ] || die "no lock file: $lock (make lock writes it)"
[ "$purge" = 0 ] || [ "$uninstall" = 1 ] || die "--purge only goes with --uninstall"

OPT=/opt/ibkr-watchdog
VENV=$OPT/venv
ETC=/etc/ibkr-watchdog
CREDS=$ETC/credentials
UNITDIR=/etc/systemd/system
STATE=/var/lib/ibkr-watchdog
USER_NAME=ibkr-watchdog
TUNNEL_USER=ibkr-tunnel
UNITS=(ibkr-watchdog.service ibkr-watchdog@.service ibkr-watchdog-failure@.service ibkr-watchdog-tunnel.service)
if [ -n "$instance" ]; then
    service=ibkr-watchdog@$instance.service
    config=$ETC/$instance.yaml
    creds_dir=$CREDS/$instance
    state_dir=$STATE/$instance
else
    service=ibkr-watchdog.service
    config=$ETC/rules.yaml
    creds_dir=$CREDS
    state_dir=$STATE
fi

changed=0 # set when anything the running service depends on was (re)written
example=0 # set when the config was just created from the repo's example (not the operator's own)

# install_file SRC DST MODE: copy only when content or mode differ, so a re-run touches nothing.
install_file() {
    local src=$1 dst=$DESTDIR$2 mode=$3
    if [ -f "$dst" ] && cmp -s "$src" "$dst" && [ "$(stat -c %a "$dst")" = "${mode#0}" ]; then
        return 0
    fi
    mkdir -p "$(dirname "$dst")"
    install -m "$mode" "$src" "$dst"
    say "installed $2 (mode $mode)"
    changed=1
}

# ensure_dir PATH MODE [GROUP]: create or fix a directory's mode (and group on a real host).
ensure_dir() {
    local dst=$DESTDIR$1 mode=$2 group=${3:-}
    if [ ! -d "$dst" ]; then
        mkdir -p "$dst"
        say "created $1"
    fi
    [ "$(stat -c %a "$dst")" = "${mode#0}" ] || { chmod "$mode" "$dst"; say "chmod $mode $1"; }
    if [ -n "$group" ] && [ "$system" = 1 ] && [ "$(stat -c %G "$dst")" != "$group" ]; then
        chgrp "$group" "$dst"
        say "chgrp $group $1"
    fi
}

# place_once SRC DST MODE [GROUP]: operator-owned files are written only when absent.
place_once() {
    local src=$1 dst=$DESTDIR$2 mode=$3 group=${4:-}
    if [ -e "$dst" ]; then
        # Never loosen or rewrite an operator's file; only take away world access from a file
        # that should have none (a secret, or the config) if someone granted it.
        if [ $((8#$mode & 8#007)) -eq 0 ] && [ $((8#$(stat -c %a "$dst") & 8#007)) -ne 0 ]; then
            chmod o-rwx "$dst"
            say "removed world access from $2"
        fi
        return 0
    fi
    mkdir -p "$(dirname "$dst")"
    install -m "$mode" "$src" "$dst"
    if [ -n "$group" ] && [ "$system" = 1 ]; then chgrp "$group" "$dst"; fi
    say "created $2 (mode $mode) — edit it"
    changed=1
}

ensure_user() {
    local name=$1 comment=$2
    [ "$system" = 1 ] || return 0
    getent passwd "$name" >/dev/null && return 0
    useradd --system --user-group --home-dir /nonexistent --no-create-home \
        --shell /usr/sbin/nologin --comment "$comment" "$name"
    say "created system user $name"
}

uninstall_all() {
    if [ "$use_systemctl" = 1 ]; then
        local enabled=()
        mapfile -t enabled < <(find "$UNITDIR" -type l \( -name 'ibkr-watchdog.service' \
            -o -name 'ibkr-watchdog@*.service' -o -name 'ibkr-watchdog-tunnel.service' \) -printf '%f\n' | sort -u)
        if [ ${#enabled[@]} -gt 0 ]; then
            systemctl disable --now "${enabled[@]}" || true
        fi
        systemctl stop ibkr-watchdog.service 'ibkr-watchdog@*.service' ibkr-watchdog-tunnel.service 2>/dev/null || true
    fi
    local u
    for u in "${UNITS[@]}"; do
        if [ -e "$DESTDIR$UNITDIR/$u" ]; then rm -f "$DESTDIR$UNITDIR/$u"; say "removed $UNITDIR/$u"; fi
    done
    local d
    for d in ibkr-watchdog.service.d ibkr-watchdog@.service.d; do
        if [ -e "$DESTDIR$UNITDIR/$d/tunnel.conf" ]; then
            rm -f "$DESTDIR$UNITDIR/$d/tunnel.conf"
            rmdir "$DESTDIR$UNITDIR/$d" 2>/dev/null || true
            say "removed $UNITDIR/$d/tunnel.conf"
        fi
    done
    if [ -e "$DESTDIR$OPT" ]; then rm -rf -- "$DESTDIR$OPT"; say "removed $OPT"; fi
    if [ "$purge" = 1 ]; then
        for d in "$ETC" "$STATE" /var/lib/private/ibkr-watchdog; do
            if [ -e "$DESTDIR$d" ]; then rm -rf "$DESTDIR$d"; say "purged $d"; fi
        done
        if [ "$system" = 1 ]; then
            for u in "$USER_NAME" "$TUNNEL_USER"; do
                if getent passwd "$u" >/dev/null; then userdel "$u"; say "deleted user $u"; fi
            done
        fi
    elif [ -e "$DESTDIR$ETC" ] || [ -e "$DESTDIR$STATE" ]; then
        say "kept $ETC (config, credentials) and $STATE (latch, audit log); --purge deletes them"
    fi
    if [ "$use_systemctl" = 1 ]; then
        systemctl daemon-reload
        systemctl reset-failed 2>/dev/null || true
    fi
    say "uninstalled"
}

if [ "$uninstall" = 1 ]; then
    uninstall_all
    exit 0
fi

# --- prerequisites -------------------------------------------------------------------------------
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    die "$python is missing or older than 3.11 (try --python python3.11)"
fi
if ! "$python" -c 'import ensurepip, venv' 2>/dev/null; then
    [ "$system" = 1 ] || die "$python cannot create venvs (apt-get install python3-venv)"
    say "installing python3-venv"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
fi
ensure_user "$USER_NAME" "ibkr-watchdog daemon"
if [ "$tunnel" = 1 ]; then
    [ "$system" = 0 ] || command -v ssh >/dev/null || {
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-client >/dev/null
    }
    ensure_user "$TUNNEL_USER" "ibkr-watchdog SSH tunnel"
fi
group=""
[ "$system" = 1 ] && group=$USER_NAME

# --- the package ---------------------------------------------------------------------------------
ensure_dir "$OPT" 0755
if [ -x "$DESTDIR$VENV/bin/python" ] && ! "$DESTDIR$VENV/bin/python" -c 'import sys' 2>/dev/null; then
    say "the venv's interpreter is broken (Python upgraded?); recreating it"
    rm -rf -- "$DESTDIR$VENV"
fi
if [ ! -x "$DESTDIR$VENV/bin/python" ]; then
    "$python" -m venv "$DESTDIR$VENV"
    say "created venv $VENV"
fi

# Fingerprint of what would be installed; pip runs only when it changed, so a re-run is a no-op.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [ -n "$wheel" ]; then
    fingerprint="wheel $(sha256sum <"$wheel" | cut -d' ' -f1)"
    spec=$wheel
else
    [ -f "$source_dir/pyproject.toml" ] || die "no pyproject.toml in $source_dir (use --source or --wheel)"
    # Build from a clean copy: an in-tree build would leave build/ and *.egg-info in the source.
    (
        cd "$source_dir"
        for f in pyproject.toml README.md setup.cfg setup.py MANIFEST.in LICENSE* watchdog; do
            [ ! -e "$f" ] || find "$f" -type f ! -path '*/__pycache__/*' ! -name '*.pyc'
        done | LC_ALL=C sort
    ) >"$work/files"
    (cd "$source_dir" && tar -cf - -T "$work/files") | (mkdir -p "$work/src" && cd "$work/src" && tar -xf -)
    fingerprint="source $(cd "$work/src" && tr '\n' '\0' <"$work/files" | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)"
    spec=$work/src
fi
fingerprint="$fingerprint lock $(sha256sum <"$lock" | cut -d' ' -f1)"
fingerprint="$fingerprint $("$DESTDIR$VENV/bin/python" -c 'import sys; print(sys.version.split()[0])')"
stamp=$DESTDIR$OPT/.installed-from
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$fingerprint" ] &&
    PYTHONDONTWRITEBYTECODE=1 "$DESTDIR$VENV/bin/ibkr-watchdog" --version >/dev/null 2>&1; then
    say "package up to date ($("$DESTDIR$VENV/bin/ibkr-watchdog" --version))"
else
    say "pip install (this takes a minute on a fresh host)"
    pip=("$DESTDIR$VENV/bin/python" -m pip)
    # The dependencies first, exactly as locked: every file must match a hash in the lock. Then the
    # package alone (--no-deps), so pip can neither upgrade nor add a dependency behind the lock's back.
    # shellcheck disable=SC2086  # pip_args is a list of words on purpose
    "${pip[@]}" install --quiet --disable-pip-version-check $pip_args --require-hashes -r "$lock"
    # shellcheck disable=SC2086
    "${pip[@]}" install --quiet --disable-pip-version-check $pip_args --no-deps --force-reinstall "$spec"
    # A lock that misses a dependency of the package (or pins a version it refuses) fails here.
    "${pip[@]}" check --disable-pip-version-check >"$work/pip-check" 2>&1 ||
        die "the installed packages do not satisfy ibkr-watchdog's requirements (is $lock stale? make lock):
$(cat "$work/pip-check")"
    printf '%s\n' "$fingerprint" >"$stamp"
    chmod 0644 "$stamp"
    say "installed $("$DESTDIR$VENV/bin/ibkr-watchdog" --version)"
    changed=1
fi
install_file "$repo/systemd/notify-failure.py" "$OPT/libexec/notify-failure.py" 0644

# --- units ---------------------------------------------------------------------------------------
for u in "${UNITS[@]}"; do
    install_file "$repo/systemd/$u" "$UNITDIR/$u" 0644
done
if [ "$tunnel" = 1 ]; then
    # The drop-in goes to the template for instances, so every instance orders after the tunnel.
    dropin_dir=$UNITDIR/ibkr-watchdog.service.d
    [ -z "$instance" ] || dropin_dir=$UNITDIR/ibkr-watchdog@.service.d
    install_file "$repo/systemd/examples/tunnel.conf" "$dropin_dir/tunnel.conf" 0644
fi

# --- config and credentials ----------------------------------------------------------------------
ensure_dir "$ETC" 0750 "$group"
ensure_dir "$CREDS" 0700
[ -z "$instance" ] || ensure_dir "$creds_dir" 0700
if [ ! -e "$DESTDIR$config" ]; then
    src=${config_src:-$repo/rules.yaml}
    [ -f "$src" ] || die "no initial config: $src"
    # The example runs the demo from the repo; on a host its state lives in the StateDirectory and
    # its alert URLs come from the systemd credential. Both lines are checked, not assumed.
    sed -E -e "s|^state_dir:[^#]*(#.*)?$|state_dir: $state_dir   # systemd StateDirectory= (set by deploy/install.sh)|" \
        -e 's|^  # urls_file: credential:notify-urls|  urls_file: credential:notify-urls|' \
        "$src" >"$work/config.yaml"
    grep -q "^state_dir: $state_dir " "$work/config.yaml" || die "$src has no top-level state_dir: line to adapt"
    place_once "$work/config.yaml" "$config" 0640 "$group"
    [ -n "$config_src" ] || example=1
    if ! grep -q '^  urls_file: credential:notify-urls' "$DESTDIR$config"; then
        say "note: $config does not read credential:notify-urls; alerts go only to its own targets"
    fi
fi
place_once "$repo/deploy/credentials/notify-urls.example" "$creds_dir/notify-urls" 0600
# The OnFailure= alert of every unit on the host reads the host-level list.
[ -z "$instance" ] || place_once "$repo/deploy/credentials/notify-urls.example" "$CREDS/notify-urls" 0600

if [ "$tunnel" = 1 ]; then
    place_once "$repo/systemd/examples/tunnel.env" "$ETC/tunnel.env" 0644
    if [ ! -e "$DESTDIR$CREDS/tunnel-key" ]; then
        ssh-keygen -q -t ed25519 -N '' -C "ibkr-watchdog-tunnel@$(hostname)" -f "$work/tunnel-key"
        place_once "$work/tunnel-key" "$CREDS/tunnel-key" 0600
        install -m 0644 "$work/tunnel-key.pub" "$DESTDIR$CREDS/tunnel-key.pub"
    fi
fi

# --- validate ------------------------------------------------------------------------------------
# credential:NAME resolves against $CREDENTIALS_DIRECTORY; on disk that is the credentials folder.
say "ibkr-watchdog check $config"
if ! CREDENTIALS_DIRECTORY=$DESTDIR$creds_dir PYTHONDONTWRITEBYTECODE=1 \
    "$DESTDIR$VENV/bin/ibkr-watchdog" check --quiet "$DESTDIR$config"; then
    die "$config does not validate; fix it, then run this script again"
fi

# --- enable --------------------------------------------------------------------------------------
if [ "$use_systemctl" = 1 ]; then
    systemctl daemon-reload
    systemctl enable --quiet "$service"
    [ "$tunnel" = 0 ] || systemctl enable --quiet ibkr-watchdog-tunnel.service
    if [ "$start" = 1 ] && [ "$example" = 1 ]; then
        # The example watches the simulator's accounts with example close_all rules: against a real
        # gateway the safety valve refuses it (exit 2, OnFailure alert). Start it once it is yours.
        say "$service is enabled but left STOPPED: $config is the example config; edit it, then run"
        say "  step 3 below (it starts the service only if the check passes)"
    elif [ "$start" = 1 ]; then
        # --no-block: READY=1 waits for the first good snapshot, which waits for the gateway.
        if systemctl is-active --quiet "$service"; then
            [ "$changed" = 0 ] || { systemctl restart --no-block "$service"; say "restarting $service"; }
        else
            systemctl start --no-block "$service"
            say "starting $service"
        fi
        [ "$tunnel" = 0 ] || systemctl start --no-block ibkr-watchdog-tunnel.service
    fi
fi

cat <<EOF
install.sh: done. Next:
  1. edit $config (gateway host/port/client_id/accounts, rules); validate with:
       sudo env CREDENTIALS_DIRECTORY=$creds_dir $VENV/bin/ibkr-watchdog check $config
  2. put apprise URLs into $creds_dir/notify-urls (one per line; mode 0600)
  3. check, then (re)start — in this order: a restart stops the running daemon before its own
     ExecStartPre check runs, so a broken config would leave no watchdog at all:
       sudo env CREDENTIALS_DIRECTORY=$creds_dir $VENV/bin/ibkr-watchdog check --quiet $config \\
         && sudo systemctl restart $service && systemctl status $service
     Rule changes later: sudo systemctl reload $service (checks first; a bad file keeps the running config).
EOF
if [ "$tunnel" = 1 ]; then
    cat <<EOF
  Tunnel: set $ETC/tunnel.env; pin the trading host's key in $ETC/tunnel_known_hosts;
  allow this key on the trading host (docs/deployment.md): $CREDS/tunnel-key.pub
EOF
fi
