#!/usr/bin/env bash
# Benchmarks for queuectl (issues 2, 3 and 4, "Speed"). Results and analysis: BENCHMARKS.md.
#
#   bash bench/run.sh                 # everything (core, workers, spool), ~4 minutes
#   bash bench/run.sh core            # issue 2: enqueue, enqueue --file, status/list on 1M jobs
#   bash bench/run.sh workers         # issue 3: throughput vs xargs, pickup latency,
#                                     #          queue overhead (cargo bench), worker RSS
#   bash bench/run.sh spool           # issue 4: 10k-file burst, drop-to-start latency
#
# Builds the release binary, works in temporary homes under `mktemp -d` (removed at exit) and
# prints a markdown summary on stdout (progress goes to stderr). Set BENCH_SUMMARY=FILE to also
# keep the summary in FILE. These are measurements, not tests: nothing fails on a missed target.
# Comparisons are interleaved in one run and reported as medians; the load average is printed
# with every figure because other processes may share the machine.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

sections=("$@")
if [ ${#sections[@]} -eq 0 ]; then
    sections=(core workers spool)
fi
for s in "${sections[@]}"; do
    case "$s" in
        core | workers | spool) ;;
        *) echo "usage: bash bench/run.sh [core|workers|spool]..." >&2; exit 2 ;;
    esac
done

command -v python3 >/dev/null || { echo "bench/run.sh needs python3" >&2; exit 1; }
if [ ! -x /usr/bin/time ]; then
    # GNU time measures peak RSS; install it only where we can do so non-interactively.
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get install -y -qq time >&2 || true
    fi
    [ -x /usr/bin/time ] || { echo "bench/run.sh needs GNU time at /usr/bin/time (apt-get install time)" >&2; exit 1; }
fi

echo "building (cargo build --release) ..." >&2
cargo build --release --quiet >&2
Q="$ROOT/target/release/queuectl"
if [[ " ${sections[*]} " == *" workers "* ]]; then
    cargo bench --bench queue_overhead --no-run --quiet >&2 2>/dev/null || cargo bench --bench queue_overhead --no-run >&2
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/queuectl-bench.XXXXXX")
cleanup() {
    # Stop any worker a failed measurement left behind in our homes (by PID, from the registry).
    for db in "$WORK"/*/queue.db; do
        [ -e "$db" ] || continue
        "$Q" --home "$(dirname "$db")" worker stop --timeout 2s >/dev/null 2>&1 || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
SUMMARY="$WORK/summary.md"
: >"$SUMMARY"

measure() {
    python3 "$ROOT/bench/measure.py" "$Q" "$WORK" "$SUMMARY" "$@"
}

spool_built() {
    "$Q" spool watch --help >/dev/null 2>&1 && "$Q" spool ingest --help >/dev/null 2>&1
}

section_core() {
    echo -e "\n## Core (issue 2)" >>"$SUMMARY"
    measure enqueue_one enqueue_file million
}

section_overhead() {
    local out="$WORK/overhead.txt"
    echo "queue_overhead (cargo bench) ..." >&2
    local load_before
    load_before=$(cut -d' ' -f1-3 /proc/loadavg)
    cargo bench --quiet --bench queue_overhead -- --dir "$WORK" | tee "$out" >&2
    local empty big ratio rounds
    empty=$(awk '/^RESULT queue_overhead_empty_jobs_per_s/ {print $3}' "$out")
    big=$(awk '/^RESULT queue_overhead_big_jobs_per_s/ {print $3}' "$out")
    ratio=$(awk '/^RESULT queue_overhead_big_over_empty/ {print $3}' "$out")
    rounds=$(sed -n 's/^RESULT queue_overhead_rounds //p' "$out")
    local met_empty met_big met_ratio
    met_empty=$(awk -v x="$empty" 'BEGIN {print (x >= 10000) ? "yes" : "**no**"}')
    met_big=$(awk -v x="$big" 'BEGIN {print (x >= 10000) ? "yes" : "**no**"}')
    met_ratio=$(awk -v x="$ratio" 'BEGIN {print (x >= 0.8) ? "yes" : "**no**"}')
    {
        echo
        echo "### 6. Queue overhead: no-op executor through the library, 50,000 jobs, 2 threads"
        echo
        echo "Reproduce: \`cargo bench --bench queue_overhead\` (or \`bash bench/run.sh workers\`; load at start: $load_before)"
        echo
        echo "| figure | measured | target | met? |"
        echo "|---|---|---|---|"
        echo "| empty table, median of 3 | $empty jobs/s | ≥ 10,000 jobs/s | $met_empty |"
        echo "| 1,000,000 finished jobs in the table, median of 3 | $big jobs/s | ≥ 10,000 jobs/s | $met_big |"
        echo "| ratio big / empty | $ratio | ≥ 0.8 (within 20%) | $met_ratio |"
        echo
        echo "Rounds (interleaved empty, big, empty, ...): $rounds jobs/s. The big table is built once (library inserts"
        echo "in batches of 100k, then one SQL UPDATE plus one attempts row per job) and grows by 50,000 per round."
        echo "Load at end: $(cut -d' ' -f1-3 /proc/loadavg)."
    } >>"$SUMMARY"
}

section_workers() {
    echo -e "\n## Workers (issue 3)" >>"$SUMMARY"
    measure throughput pickup
    section_overhead
    measure rss
}

section_spool() {
    echo -e "\n## Spool (issue 4)" >>"$SUMMARY"
    if spool_built; then
        measure spool_burst spool_latency
    else
        echo "skipped: spool not built" >&2
        {
            echo
            echo "**TODO — skipped: spool not built** (\`queuectl spool watch\`/\`spool ingest\` were not available"
            echo "in this build). Re-run \`bash bench/run.sh spool\` once they are."
        } >>"$SUMMARY"
    fi
}

{
    echo "# queuectl benchmark run"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "- commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- src Cargo.toml 2>/dev/null || echo ' (+ uncommitted changes in src/ or Cargo.toml)')"
    echo "- machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), kernel $(uname -r), $(awk '/MemTotal/ {printf "%.0f GB RAM", $2/1048576}' /proc/meminfo)"
    echo "- temp homes on: $(df -T "$WORK" | awk 'NR==2 {print $2, $1}')"
    echo "- load at start: $(uptime | sed 's/.*load average: //')"
    echo "- command: \`bash bench/run.sh${*:+ $*}\`"
} >>"$SUMMARY"

for s in "${sections[@]}"; do
    case "$s" in
        core) section_core ;;
        workers) section_workers ;;
        spool) section_spool ;;
    esac
done
echo -e "\nLoad at end: $(uptime | sed 's/.*load average: //')" >>"$SUMMARY"

cat "$SUMMARY"
if [ -n "${BENCH_SUMMARY:-}" ]; then
    cp "$SUMMARY" "$BENCH_SUMMARY"
fi
