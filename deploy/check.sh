#!/usr/bin/env bash
# Deploy checks run by `make test`: Prometheus rules/tests (promtool), systemd units (systemd-analyze)
# and deploy/install.sh on a throwaway root. The tools come from deploy/fetch-tools.sh (private copies
# in .ci/tools/commands when the host has none); run standalone, this fetches them too.
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/fetch-tools.sh
export PATH="$PWD/.ci/tools/commands:$PATH"
status=0
for script in deploy/prometheus/check.sh systemd/check.sh deploy/test-install.sh; do
    if [ -f "$script" ]; then
        echo "== $script"
        bash "$script" || { echo "FAILED: $script" >&2; status=1; }
    else
        echo "FAILED: $script is missing" >&2; status=1
    fi
done
exit $status
