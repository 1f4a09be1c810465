#!/usr/bin/env bash
# The project's test line: every notebook as a test (per-notebook timing), then the process-level tests.
# Usage: bash tools/test.sh   (extra arguments go to pytest)
set -euo pipefail
cd "$(dirname "$0")/.."
# every temporary file of the notebooks and of pytest goes into one folder, removed at the end (runs write GBs of checkpoints)
TMPDIR=$(mktemp -d "${TMPDIR:-/tmp}/mergedepth-tests.XXXXXX"); export TMPDIR
trap 'rm -rf "$TMPDIR"' EXIT
# notebooks run one per core, each with one torch thread: on 2 cores, two notebooks with two threads each took about
# 590 s of wall time (CI, 35fc300), with one thread each 178 s (the threads of one stall while the other's run)
# the notebooks' files go before pytest starts (their training tests write checkpoints of 0.4 to 0.9 GB a run)
mkdir "$TMPDIR/notebooks"
TMPDIR="$TMPDIR/notebooks" OMP_NUM_THREADS=${MERGEDEPTH_NB_THREADS:-1} nbdev_test --timing
rm -rf "$TMPDIR/notebooks"
rc=0; python3 -m pytest tests -q --durations=10 "$@" || rc=$?
[ "$rc" -eq 5 ] && { echo "pytest: no tests collected"; exit 1; }
exit $rc
