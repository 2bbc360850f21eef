#!/usr/bin/env bash
# The spec's example run, end to end, in a fresh queue home:
# init -> enqueue (CLI and spool file) -> list -> workers -> status -> DLQ -> retry,
# checking each outcome it shows: it exits 1, saying what differed, if one is not as described.
#
# Usage: bash examples/demo.sh [HOME_DIR]
#   HOME_DIR  keep the queue home there; by default it lives in a temporary directory that is
#             removed when the demo ends (as is the worker log, in any case).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
queuectl() { "$PWD/target/release/queuectl" "$@"; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/queuectl-demo.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
QUEUECTL_HOME="${1:-$WORK/home}"
export QUEUECTL_HOME
LOG="$WORK/worker.log"

step() { printf '\n\033[1m$ queuectl %s\033[0m\n' "$*"; queuectl "$@"; }
[ -n "${NO_COLOR:-}" ] && step() { printf '\n$ queuectl %s\n' "$*"; queuectl "$@"; }

fail() {
    echo "demo: FAILED: $*" >&2
    exit 1
}
# expect WHAT EXPECTED ACTUAL
expect() {
    [ "$2" = "$3" ] || fail "$1: expected
$2
got
$3"
}
# ID STATE RUNS/MAX_RUNS of every job (or of one state), sorted by id.
jobs_table() { queuectl list "$@" --format id,state,attempts | tr '\t' ' ' | sort; }

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
expect "pending before the workers run" "hello
job1
job2
job3
job4
job5
job6" "$(jobs_table --state pending | cut -d' ' -f1)"

# Exit code 3 says jobs died during the run: the demo's failing jobs, as intended.
set +o pipefail
step worker start --count 2 --until-empty | tee "$LOG"
worker_exit=${PIPESTATUS[0]}
set -o pipefail
expect "worker exit code (3: jobs died, as intended)" 3 "$worker_exit"
step status
step dlq list
step show job2

# What the run must have done: successes completed once, the failures retried up to
# max_retries (2) and then dead, the timed-out job (max_retries 0) dead at once, the spool
# file's job run too.
expect "states after the run" "from-spool completed 1/3
hello completed 1/3
job1 completed 1/3
job2 dead 3/3
job3 completed 1/3
job4 dead 3/3
job5 dead 1/1
job6 completed 1/3" "$(jobs_table)"
expect "the dead-letter queue" "job2
job4
job5" "$(queuectl dlq list | awk 'NR > 1 { print $1 }' | sort)"
expect "hello's output" "hi" "$(queuectl logs hello)"
expect "job3's output" "done" "$(queuectl logs job3)"
for line in \
    "Job job2 moved to DLQ after 3 attempts: exit 1" \
    "Job job4 moved to DLQ after 3 attempts: command not found (exit 127)" \
    "Job job5 moved to DLQ after 1 attempt: timed out after 1s" \
    "Job job2 failed (attempt 1 of 3, exit 1), retrying in 1.5s"; do
    grep -qF "$line" "$LOG" || fail "the worker did not print: $line"
done
# job6 has priority 10: the first claim (two jobs, one per thread) took it.
grep -m2 'Executing job' "$LOG" | grep -q 'Executing job job6:' \
    || fail "job6 (priority 10) was not among the first jobs claimed"

step dlq retry job2
step list --state pending
expect "pending after dlq retry" "job2 pending 0/3" "$(jobs_table --state pending)"
expect "the dead-letter queue after the retry" "job4
job5" "$(queuectl dlq list | awk 'NR > 1 { print $1 }' | sort)"

echo
echo "demo: every outcome as expected"
if [ $# -ge 1 ]; then
    echo "queue home: $QUEUECTL_HOME"
fi
