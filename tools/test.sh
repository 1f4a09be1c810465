#!/usr/bin/env bash
# The project's test line: every notebook as a test (per-notebook timing), then the process-level tests.
# Usage: bash tools/test.sh   (extra arguments go to pytest)
set -euo pipefail
cd "$(dirname "$0")/.."
# every temporary file of the notebooks and of pytest goes into one folder, removed at the end (runs write GBs of checkpoints)
TMPDIR=$(mktemp -d "${TMPDIR:-/tmp}/mergedepth-tests.XXXXXX"); export TMPDIR
trap 'rm -rf "$TMPDIR"' EXIT
nbdev_test --timing
rc=0; python3 -m pytest tests -q --durations=10 "$@" || rc=$?
[ "$rc" -eq 5 ] && { echo "pytest: no tests collected"; exit 1; }
exit $rc
