#!/usr/bin/env bash
# Deploy checks run by `make test`: Prometheus rules/tests (promtool) and systemd units (systemd-analyze).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .ci/tools/usr/bin/promtool ] && export PATH="$PWD/.ci/tools/usr/bin:$PATH"
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
