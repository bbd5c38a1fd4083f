#!/usr/bin/env bash
# Fetch the tools the deploy checks need into a private folder, from the distribution's package
# archive: `apt-get download` + `dpkg -x`. Nothing is installed system-wide, nothing runs as a
# service, and a second run does nothing. Used by `make test` / `make deploy-check` and `.ci/run`.
#
#   promtool         Debian/Ubuntu package prometheus (the binary only; the service is never started)
#   systemd-analyze  packages systemd + libsystemd-shared (+ any library the host lacks), fetched
#                    only when the host has no systemd-analyze; run through a wrapper that points
#                    the loader at the private libraries
#
# Afterwards DIR/commands holds both commands and nothing else (put it first on PATH; the Makefile
# does). Not DIR/bin: the systemd package unpacks its own bin/ (systemctl, ...) there. The stock unit
# files of a fetched systemd land in DIR/lib/systemd/system (systemd/check.sh falls back to them).
#
#   deploy/fetch-tools.sh            # into .ci/tools of this repository
#   deploy/fetch-tools.sh --force    # fetch both even when the host has them (tests the fetch)
#   TOOLS_DIR=/tmp/t deploy/fetch-tools.sh
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
dir=${TOOLS_DIR:-$repo/.ci/tools}
force=0
case ${1:-} in
    --force) force=1 ;;
    "") ;;
    -h | --help) awk 'NR > 1 && !/^#/ { exit } NR > 1' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "fetch-tools.sh: unknown argument: $1" >&2; exit 2 ;;
esac

die() { echo "fetch-tools.sh: error: $*" >&2; exit 1; }
say() { echo "fetch-tools.sh: $*"; }

# download PACKAGE...: .deb files into $work; runs `apt-get update` once when the lists are stale
# and we may (root), because a package list that predates a point release names files that are gone.
download() {
    command -v apt-get >/dev/null && command -v dpkg >/dev/null ||
        die "needs apt-get and dpkg (Debian/Ubuntu); elsewhere install $* by hand and put them on PATH"
    if ! (cd "$work" && apt-get download "$@" >"$work/apt.log" 2>&1); then
        if [ "$(id -u)" = 0 ]; then
            apt-get update -qq >/dev/null 2>&1 || true
            (cd "$work" && apt-get download "$@" >"$work/apt.log" 2>&1) || {
                cat "$work/apt.log" >&2
                die "apt-get download $* failed"
            }
        else
            cat "$work/apt.log" >&2
            die "apt-get download $* failed (stale package lists? run: sudo apt-get update)"
        fi
    fi
}

unpack() { # unpack every downloaded .deb into $dir, then forget them
    local deb
    for deb in "$work"/*.deb; do dpkg -x "$deb" "$dir"; done
    rm -f "$work"/*.deb
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$dir/commands"

# --- promtool ------------------------------------------------------------------------------------
if [ ! -x "$dir/usr/bin/promtool" ] && { [ "$force" = 1 ] || ! command -v promtool >/dev/null 2>&1; }; then
    say "fetching promtool (apt-get download prometheus, ~20 MB)"
    download prometheus
    unpack
    [ -x "$dir/usr/bin/promtool" ] || die "the prometheus package holds no usr/bin/promtool"
fi
if [ -x "$dir/usr/bin/promtool" ]; then
    ln -sfn ../usr/bin/promtool "$dir/commands/promtool"
    "$dir/commands/promtool" --version >/dev/null 2>&1 || die "$dir/commands/promtool does not run"
fi

# --- systemd-analyze -----------------------------------------------------------------------------
if [ ! -x "$dir/usr/bin/systemd-analyze" ] && { [ "$force" = 1 ] || ! command -v systemd-analyze >/dev/null 2>&1; }; then
    say "fetching systemd-analyze (apt-get download systemd libsystemd-shared)"
    # The libraries libsystemd-shared links to that this host lacks (a container without systemd).
    missing=()
    for pkg in $(apt-cache depends --no-recommends --no-suggests libsystemd-shared 2>/dev/null |
        sed -nE 's/^ *(Pre)?Depends: ([^<>: ]+).*/\2/p' | sort -u); do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' || missing+=("$pkg")
    done
    download systemd libsystemd-shared "${missing[@]}"
    unpack
    [ -x "$dir/usr/bin/systemd-analyze" ] || die "the systemd package holds no usr/bin/systemd-analyze"
fi
if [ -x "$dir/usr/bin/systemd-analyze" ]; then
    # The binary's RUNPATH is the absolute /usr/lib/<triplet>/systemd: point the loader at our copies.
    libs=$(find "$dir/usr/lib" "$dir/lib" -regextype posix-extended -regex '.*\.so(\.[0-9]+)*' -printf '%h\n' 2>/dev/null | sort -u | tr '\n' ':')
    cat >"$dir/commands/systemd-analyze" <<EOF
#!/bin/sh
# Written by deploy/fetch-tools.sh: the private systemd-analyze with its private libraries.
LD_LIBRARY_PATH="${libs%:}\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}" exec "$dir/usr/bin/systemd-analyze" "\$@"
EOF
    chmod 0755 "$dir/commands/systemd-analyze"
    if ! "$dir/commands/systemd-analyze" --version >/dev/null 2>&1; then
        rm -f "$dir/commands/systemd-analyze" # never shadow a working one with a broken one
        command -v systemd-analyze >/dev/null 2>&1 ||
            die "the private systemd-analyze does not run (missing libraries?); install it instead: sudo apt-get install systemd"
        say "the private systemd-analyze does not run; using $(command -v systemd-analyze)"
    fi
fi

for tool in promtool systemd-analyze; do
    where=$(PATH="$dir/commands:$PATH" command -v "$tool" || true)
    [ -n "$where" ] || die "$tool is still missing"
done
say "ready: promtool and systemd-analyze (private ones in $dir/commands)"
