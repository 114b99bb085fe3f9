#!/usr/bin/env bash
# Install (if needed) and run the whole test suite against a PostgreSQL the suite provisions itself.
# Extra arguments go to pytest, for example: scripts/test.sh -k runtime -x
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install.sh
exec .venv/bin/pytest "$@"
