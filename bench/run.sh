#!/usr/bin/env bash
# Benchmarks for queuectl (issues 2, 3, 4 and 9, "Speed"). Results and analysis: BENCHMARKS.md.
#
#   bash bench/run.sh                 # core, workers and spool (SQLite), ~4 minutes
#   bash bench/run.sh core            # issue 2: enqueue, enqueue --file, status/list on 1M jobs
#   bash bench/run.sh workers         # issue 3: throughput vs xargs, pickup latency,
#                                     #          queue overhead (cargo bench), worker RSS
#   bash bench/run.sh spool           # issue 4: 10k-file burst, drop-to-start latency
#   bash bench/run.sh pg              # issue 9: PostgreSQL: no-op overhead (empty / 1M finished),
#                                     #          throughput vs xargs, pickup (CLI and library), status
#                                     #          on 1M jobs, 50-process contention, CPU split,
#                                     #          statements per job; ~12 minutes
#   bash bench/run.sh ab              # issue 9: SQLite A/B against AB_REV (default 9e96f41, before
#                                     #          the store trait), built in target/bench-rev
#   bash bench/run.sh core workers spool pg ab   # what BENCHMARKS.md's issue 9 section reports
#
# pg measures the server at BENCH_PG_URL (default postgres://postgres@127.0.0.1:5432/test), in
# scratch schemas named bench_run_PID_* that are dropped (also at exit), and starts a private
# server (bench/pg_server.sh: initdb + pg_ctl as the postgres user, stopped at exit) for what
# needs more than that server's 100 connections or its own statement log and CPU accounting.
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
        core | workers | spool | pg | ab) ;;
        *) echo "usage: bash bench/run.sh [core|workers|spool|pg|ab]..." >&2; exit 2 ;;
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
PG_URL=${BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432/test}
export BENCH_PG_PREFIX="bench_run_$$"
source "$ROOT/bench/pg_server.sh"
drop_scratch_schemas() { # URL: drops every schema this run made there
    local url=$1 sql
    sql=$(psql -X -A -t -q -d "$url" -c "SELECT string_agg(format('DROP SCHEMA %I CASCADE', nspname), '; ')
        FROM pg_namespace WHERE nspname LIKE '${BENCH_PG_PREFIX//_/\\_}\\_%'" 2>/dev/null) || return 0
    [ -z "$sql" ] || psql -X -q -d "$url" -c "$sql" >/dev/null 2>&1 || true
}
cleanup() {
    if [[ " ${sections[*]} " == *" pg "* ]]; then
        drop_scratch_schemas "$PG_URL"
        [ -z "${PG_PRIVATE_URL:-}" ] || drop_scratch_schemas "$PG_PRIVATE_URL"
        pg_private_stop
    fi
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

section_pg() {
    echo -e "\n## PostgreSQL (issue 9)" >>"$SUMMARY"
    if ! psql -X -q -d "$PG_URL" -c 'SELECT 1' >/dev/null; then
        echo "no PostgreSQL server at $PG_URL (set BENCH_PG_URL)" >&2
        exit 1
    fi
    echo -e "\nServer: $PG_URL ($(psql -X -A -t -d "$PG_URL" -c "SELECT 'PostgreSQL ' || current_setting('server_version') || '; ' || string_agg(name || '=' || setting, ', ' ORDER BY name) FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit', 'full_page_writes', 'autovacuum', 'shared_buffers', 'max_connections')"))." >>"$SUMMARY"
    pg_private_start
    export BENCH_PG_URL=$PG_URL BENCH_PG_PRIVATE_URL=$PG_PRIVATE_URL BENCH_PG_PRIVATE_LOG=$PG_PRIVATE_LOG
    BENCH_PG_PRIVATE_PID=$(head -1 "$PG_PRIVATE_DIR/data/postmaster.pid")
    export BENCH_PG_PRIVATE_PID
    cargo bench --bench pickup --no-run --quiet >&2 2>/dev/null || cargo bench --bench pickup --no-run >&2
    cargo bench --bench queue_overhead --no-run --quiet >&2 2>/dev/null || cargo bench --bench queue_overhead --no-run >&2
    local m="$ROOT/bench/measure_pg.py" l="$ROOT/bench/measure_pg_lib.py"
    python3 "$l" "$Q" "$WORK" "$SUMMARY" pg_overhead pg_flat
    python3 "$m" "$Q" "$WORK" "$SUMMARY" pg_throughput pg_pickup
    python3 "$l" "$Q" "$WORK" "$SUMMARY" pg_pickup_lib
    python3 "$m" "$Q" "$WORK" "$SUMMARY" pg_million pg_contention
    python3 "$l" "$Q" "$WORK" "$SUMMARY" pg_cpu pg_statements
    drop_scratch_schemas "$PG_URL"
    drop_scratch_schemas "$PG_PRIVATE_URL"
    pg_private_stop
}

# The queue_overhead bench executable of the package in the current directory.
bench_executable() {
    cargo bench --bench queue_overhead --no-run --message-format=json 2>/dev/null | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("executable") and m.get("target", {}).get("name") == "queue_overhead":
        print(m["executable"])'
}

section_ab() {
    local rev=${AB_REV:-9e96f41} short src old_bench new_bench
    short=$(git rev-parse --short "$rev")
    echo -e "\n## SQLite A/B: now against \`$short\` (issue 9: no regression)" >>"$SUMMARY"
    # A copy of the older tree at a fixed place, so cargo builds it incrementally across runs.
    src="$ROOT/target/bench-rev/src-$short"
    if [ ! -d "$src" ]; then
        mkdir -p "$src"
        git archive "$rev" Cargo.toml Cargo.lock src bench | tar -x -C "$src"
    fi
    echo "building $short in target/bench-rev ..." >&2
    (cd "$src" && CARGO_TARGET_DIR="$ROOT/target/bench-rev" cargo build --release --quiet --bin queuectl >&2)
    old_bench=$(cd "$src" && CARGO_TARGET_DIR="$ROOT/target/bench-rev" bench_executable)
    new_bench=$(bench_executable)
    cp "$ROOT/target/bench-rev/release/queuectl" "$WORK/queuectl-$short"
    BENCH_AB_REV=$short BENCH_AB_OLD_Q="$WORK/queuectl-$short" BENCH_AB_OLD_BENCH=$old_bench BENCH_AB_NEW_BENCH=$new_bench \
        python3 "$ROOT/bench/measure_ab.py" "$Q" "$WORK" "$SUMMARY" \
        ab_enqueue_one ab_enqueue_file ab_throughput ab_pickup ab_overhead
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
        pg) section_pg ;;
        ab) section_ab ;;
    esac
done
echo -e "\nLoad at end: $(uptime | sed 's/.*load average: //')" >>"$SUMMARY"

cat "$SUMMARY"
if [ -n "${BENCH_SUMMARY:-}" ]; then
    cp "$SUMMARY" "$BENCH_SUMMARY"
fi
