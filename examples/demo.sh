#!/usr/bin/env bash
# The spec's example run, end to end, in a fresh queue home:
# init -> enqueue (CLI and spool file) -> list -> workers -> status -> DLQ -> retry.
# Usage: bash examples/demo.sh [HOME_DIR]   (default: a new temporary directory)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
queuectl() { "$PWD/target/release/queuectl" "$@"; }
QUEUECTL_HOME="${1:-$(mktemp -d)}"
export QUEUECTL_HOME
step() { printf '\n\033[1m$ queuectl %s\033[0m\n' "$*"; queuectl "$@"; }
[ -n "${NO_COLOR:-}" ] && step() { printf '\n$ queuectl %s\n' "$*"; queuectl "$@"; }

step init
# Small backoff so the demo finishes in seconds: retries 1.5 s and 2.25 s after failures.
step config set backoff-base 1.5
step config set max-retries 2
step enqueue '{"id":"hello","command":"echo hi"}'
step enqueue --file examples/jobs.ndjson
# A third way in: another program drops a file into the spool directory.
printf '{"id":"from-spool","command":"echo dropped into the spool"}\n' > "$QUEUECTL_HOME/spool/tmp/drop.json"
mv "$QUEUECTL_HOME/spool/tmp/drop.json" "$QUEUECTL_HOME/spool/incoming/drop.json"
step list --state pending
# Exit code 3 says jobs died during the run: the demo's failing jobs, as intended.
step worker start --count 2 --until-empty || [ $? -eq 3 ]
step status
step dlq list
step show job2
step dlq retry job2
step list --state pending
echo
echo "queue home: $QUEUECTL_HOME"
