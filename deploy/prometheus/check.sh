#!/usr/bin/env bash
# Prometheus deploy checks (called by deploy/check.sh, i.e. `make test`): the scrape config, the alert
# rules and their unit tests. Fails — never skips — when promtool is missing: `make test` fetches it
# with deploy/fetch-tools.sh (apt-get download prometheus + dpkg -x into .ci/tools; no service is started).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
[ -d "$repo/.ci/tools/commands" ] && export PATH="$repo/.ci/tools/commands:$PATH"
if ! command -v promtool >/dev/null 2>&1; then
    echo "promtool not found: run deploy/fetch-tools.sh (apt-get download prometheus + dpkg -x into .ci/tools)" >&2
    exit 1
fi
cd "$here" # rule_files in prometheus.yml and tests.yml are relative to this folder
promtool check config prometheus.yml
promtool check rules alerts.yml
promtool test rules tests.yml
python3 -c 'import json, sys; json.load(open(sys.argv[1]))' "$repo/deploy/grafana/ibkr-watchdog.json"
echo "prometheus checks: OK"
