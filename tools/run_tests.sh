#!/usr/bin/env bash
# Set up the environment (idempotent) and run the test suite on CPU.
# Extra arguments go to pytest, e.g. `bash tools/run_tests.sh -k loss -x`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="$(bash "$ROOT/tools/setup_env.sh" | tail -n 1)"
cd "$ROOT"
exec "$PY" -m pytest tests -q -p no:cacheprovider "$@"
