#!/usr/bin/env bash
# NetWire soak: MINUTES of guest and namespace traffic with churn, SPICE clients and QMP polling,
# reporting RSS, open fds and threads over time (tools/soak.py; docs/reliability.md).
#
#   tools/soak.sh MINUTES [--out DIR] [--no-fail]     needs root and a Release build
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ $# -lt 1 ]]; then
    echo "usage: tools/soak.sh MINUTES [--out DIR] [--no-fail]" >&2
    exit 2
fi
exec /usr/bin/python3 tools/soak.py "$@"
