#!/usr/bin/env bash
# The one-off probes behind the "Analysis" section of BENCHMARKS.md (profiles, syscall counts,
# query timings). Each prints what it measured; none changes src/.
#
#   bash bench/probes.sh                      # all of them, ~2 minutes
#   bash bench/probes.sh enqueue-file         # perf + peak RSS of `enqueue --file` 100k
#   bash bench/probes.sh statement-journal    # python3 sqlite3: the count trigger's statement journal
#   bash bench/probes.sh enqueue-syscalls     # strace -c of one `enqueue --command true`
#   bash bench/probes.sh overhead-profile     # perf of the no-op pool (queue_overhead bench)
#   bash bench/probes.sh status-backlog       # status and its queries with 1M pending jobs
#   bash bench/probes.sh loader               # perf of starting /bin/true 300 times
#   bash bench/probes.sh pg-variants          # PostgreSQL: CPU per no-op job with the NOTIFY, the count
#                                             # triggers or the attempts foreign key taken out (private server)
#   bash bench/probes.sh pg-claim-plan        # PostgreSQL: the claim's plan and cost without, with and with
#                                             # stale statistics (BENCH_PG_URL, default the machine's server)
#   bash bench/probes.sh pg-dead-entries      # PostgreSQL: what one claim reads after 50,000 jobs ran, before and
#                                             # after VACUUM (BENCH_PG_URL)
#   bash bench/probes.sh pg-perf              # PostgreSQL: perf of the whole machine while the no-op pool runs
#                                             # (private server): CPU by process and by function
#   bash bench/probes.sh pg-contention-notify # PostgreSQL: run.sh pg's contention measurement (2,000 jobs), as is
#                                             # and with the count triggers' NOTIFY taken out (private server)
#   REV=cc5926e bash bench/probes.sh ...      # the same against src/ as of a commit (built from
#                                             # `git archive` into target/bench-rev; src/ untouched)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
probes=("$@")
if [ ${#probes[@]} -eq 0 ]; then
    probes=(enqueue-file statement-journal enqueue-syscalls overhead-profile status-backlog loader)
fi
WORK=$(mktemp -d "${TMPDIR:-/tmp}/queuectl-probes.XXXXXX")
source "$ROOT/bench/pg_server.sh"
trap 'pg_private_stop; rm -rf "$WORK"' EXIT
PG_URL=${BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432/test}
if [ -n "${REV:-}" ]; then
    # Build src/ as of REV in a copy (with this bench/ for the queue_overhead bench).
    mkdir "$WORK/rev"
    git archive "$REV" Cargo.toml Cargo.lock src | tar -x -C "$WORK/rev"
    cp -r bench "$WORK/rev/"
    if ! grep -q 'name = "queue_overhead"' "$WORK/rev/Cargo.toml"; then
        printf '\n[[bench]]\nname = "queue_overhead"\npath = "bench/queue_overhead.rs"\nharness = false\n' >>"$WORK/rev/Cargo.toml"
    fi
    export CARGO_TARGET_DIR="$ROOT/target/bench-rev"
    echo "probes against src/ as of $REV ($(git rev-parse --short "$REV")), built in target/bench-rev" >&2
    (cd "$WORK/rev" && cargo build --release --quiet --bin queuectl >&2 && cargo bench --quiet --bench queue_overhead --no-run >&2 2>/dev/null)
    BUILD_DIR="$WORK/rev"
    TARGET="$CARGO_TARGET_DIR"
else
    cargo build --release --quiet >&2
    BUILD_DIR="$ROOT"
    TARGET="$ROOT/target"
fi
Q="$TARGET/release/queuectl"
echo "src: ${REV:-working tree} ($(git rev-parse --short "${REV:-HEAD}"))"
echo "load at start: $(uptime | sed 's/.*load average: //')"

ndjson() { # FILE N
    python3 - "$1" "$2" <<'EOF'
import json, sys
with open(sys.argv[1], "w") as f:
    for i in range(int(sys.argv[2])):
        f.write(json.dumps({"id": f"b{i:07d}", "command": "true"}) + "\n")
EOF
}

# Prints the "children" share of each named symbol in a perf.data file.
perf_share() { # DATA SYMBOL...
    local data=$1
    shift
    local report
    report=$(perf report -i "$data" --children --sort symbol --stdio -g none 2>/dev/null)
    for sym in "$@"; do
        printf '  %-32s %s of samples (incl. callees)\n' "$sym" \
            "$(awk -v s="$sym" '$0 ~ "\\] " s "( |$)" {print $1; exit}' <<<"$report")"
    done
}

probe_enqueue_file() {
    echo "## enqueue --file of 100,000 jobs: peak RSS and profile"
    ndjson "$WORK/100k.ndjson" 100000
    local h="$WORK/ef1"
    mkdir "$h" && "$Q" --home "$h" init >/dev/null
    /usr/bin/time -v "$Q" --home "$h" enqueue --file "$WORK/100k.ndjson" 2>"$WORK/tv" >/dev/null
    grep -E "Elapsed|Maximum resident" "$WORK/tv" | sed 's/^\s*/  /'
    h="$WORK/ef2"
    mkdir "$h" && "$Q" --home "$h" init >/dev/null
    perf record -q -g -o "$WORK/ef.data" "$Q" --home "$h" enqueue --file "$WORK/100k.ndjson" >/dev/null 2>&1
    perf_share "$WORK/ef.data" subjournalPageIfRequired __libc_pwrite sqlite3BtreeInsert
}

probe_statement_journal() {
    echo "## statement journal: 100,000 INSERTs in one transaction (python3 sqlite3 on queuectl's schema)"
    python3 - "$Q" "$WORK" <<'EOF'
import os, sqlite3, subprocess, sys, time
Q, WORK = sys.argv[1], sys.argv[2]
print(f"  python3 sqlite3 {sqlite3.sqlite_version}")
SQL = ("INSERT INTO queuectl_jobs (id, kind, command, payload, state, attempts, max_retries, priority, run_at, timeout_seconds, "
       "cwd, env, created_at, updated_at, source) VALUES (?1, ?2, ?3, ?4, 'pending', 0, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11, ?12)")
def run(label, pragma=None, drop_trigger=False, n=[0]):
    n[0] += 1
    home = os.path.join(WORK, f"sj{n[0]}")
    os.makedirs(home)
    subprocess.run([Q, "--home", home, "init"], check=True, stdout=subprocess.DEVNULL)
    c = sqlite3.connect(os.path.join(home, "queue.db"), isolation_level=None)
    c.execute("PRAGMA synchronous = FULL"); c.execute("PRAGMA foreign_keys = ON")
    if pragma: c.execute(pragma)
    if drop_trigger: c.execute("DROP TRIGGER queuectl_jobs_count_insert")
    now = int(time.time() * 1000)
    rows = [(f"b{i:07d}", "shell", "true", None, None, 0, now, None, None, None, now, "cli") for i in range(100000)]
    t = time.perf_counter()
    c.execute("BEGIN IMMEDIATE"); c.executemany(SQL, rows); c.execute("COMMIT")
    took = time.perf_counter() - t
    c.close(); subprocess.run(["rm", "-rf", home], check=True)
    return took
results = {"default": [], "temp_store = MEMORY": [], "count trigger dropped": []}
for _ in range(2):
    results["default"].append(run("default"))
    results["temp_store = MEMORY"].append(run("mem", "PRAGMA temp_store = MEMORY"))
    results["count trigger dropped"].append(run("notrig", drop_trigger=True))
for k, v in results.items():
    print(f"  {k:24s} " + ", ".join(f"{x:.2f} s" for x in v))
EOF
}

probe_enqueue_syscalls() {
    echo "## one enqueue --command true: syscalls (strace -c -f), no other connection open"
    local h="$WORK/sc"
    mkdir "$h" && "$Q" --home "$h" init >/dev/null
    "$Q" --home "$h" enqueue --command true >/dev/null
    strace -c -f -o "$WORK/strace.txt" "$Q" --home "$h" enqueue --command true >/dev/null
    grep -E "fsync|fdatasync|pwrite|unlink|total" "$WORK/strace.txt" | sed 's/^/  /'
}

probe_overhead_profile() {
    echo "## no-op pool, 20,000 jobs, 2 threads: profile"
    (cd "$BUILD_DIR" && cargo bench --quiet --bench queue_overhead --no-run 2>/dev/null)
    local bench
    bench=$(find "$TARGET/release/deps" -name 'queue_overhead-*' ! -name '*.d' -printf '%T@ %p\n' | sort -rn | head -1 | cut -d' ' -f2)
    local rc=0
    perf record -q -g -o "$WORK/ov.data" "$bench" --rounds 1 --finished 0 --jobs 20000 --dir "$WORK" \
        >"$WORK/ov.txt" 2>&1 || rc=$?
    grep "empty-table" "$WORK/ov.txt" | sed 's/^/  /' || true
    [ "$rc" = 0 ] || { echo "  perf record exited with $rc:"; tail -5 "$WORK/ov.txt"; }
    perf_share "$WORK/ov.data" sqlite3Reprepare sqlite3PagerCommitPhaseOne.part.0 subjournalPageIfRequired walCheckpoint
}

probe_status_backlog() {
    echo "## status with 1,000,000 pending jobs"
    local h="$WORK/backlog"
    mkdir "$h" && "$Q" --home "$h" init >/dev/null
    ndjson "$WORK/1m.ndjson" 1000000
    "$Q" --home "$h" enqueue --file "$WORK/1m.ndjson" >/dev/null
    rm "$WORK/1m.ndjson"
    "$Q" --home "$h" status >/dev/null
    python3 - "$Q" "$h" <<'EOF'
import sqlite3, statistics, subprocess, sys, time
Q, home = sys.argv[1], sys.argv[2]
walls = []
for _ in range(5):
    t = time.perf_counter(); subprocess.run([Q, "--home", home, "status"], check=True, stdout=subprocess.DEVNULL)
    walls.append(time.perf_counter() - t)
print(f"  queuectl status: median {statistics.median(walls) * 1000:.0f} ms of 5")
c = sqlite3.connect(f"{home}/queue.db")
now = int(time.time() * 1000)
print(f"  the queries status ran up to cc5926e (32d91bc replaced them), timed in python3 sqlite3 "
      f"{sqlite3.sqlite_version}, second of two runs:")
for name, q in {
    "counts": "SELECT state, n FROM queuectl_job_counts",
    "count_due": f"SELECT COUNT(*) FROM queuectl_jobs INDEXED BY queuectl_jobs_due WHERE state IN ('pending', 'failed') AND run_at <= {now}",
    "waiting_by_kind": "SELECT kind, COUNT(*) FROM queuectl_jobs WHERE state IN ('pending', 'failed') GROUP BY kind ORDER BY kind",
}.items():
    plan = "; ".join(r[3] for r in c.execute("EXPLAIN QUERY PLAN " + q))
    for _ in range(2):
        t = time.perf_counter(); c.execute(q).fetchall(); took = time.perf_counter() - t
    print(f"    {name:16s} {took * 1000:6.1f} ms   plan: {plan}")
EOF
}

probe_loader() {
    echo "## starting /bin/true 300 times: where the time goes"
    perf record -q -o "$WORK/ld.data" -- sh -c 'for i in $(seq 300); do /bin/true; done' 2>/dev/null
    perf report -i "$WORK/ld.data" --no-children --sort dso,symbol --stdio 2>/dev/null >"$WORK/ld.txt" || true
    grep '%' "$WORK/ld.txt" | awk 'NR <= 3' | sed 's/  */ /g; s/^/ /'
}

# The queue_overhead bench executable (built from BUILD_DIR into TARGET).
overhead_bench() {
    (cd "$BUILD_DIR" && cargo bench --quiet --bench queue_overhead --no-run 2>/dev/null)
    find "$TARGET/release/deps" -name 'queue_overhead-*' ! -name '*.d' -printf '%T@ %p\n' | sort -rn | head -1 | cut -d' ' -f2
}

probe_pg_variants() {
    echo "## PostgreSQL: CPU per no-op job (2 threads, 10,000 jobs, VACUUM ANALYZE after the enqueue), parts of the schema taken out"
    echo "   (a private server; each variant's SQL runs in its scratch schema after init; two rounds, alternated)"
    pg_private_start
    local pm bench
    pm=$(head -1 "$PG_PRIVATE_DIR/data/postmaster.pid")
    bench=$(overhead_bench)
    local no_notify=$NO_NOTIFY_SQL
    local no_counts="DROP TRIGGER jobs_count_insert ON {schema}.jobs; DROP TRIGGER jobs_count_update ON {schema}.jobs;"
    local no_fk="ALTER TABLE {schema}.attempts DROP CONSTRAINT attempts_job_seq_fkey;"
    local names=(baseline no-notify no-count-triggers no-attempts-fk all-three)
    local sqls=("" "$no_notify" "$no_counts" "$no_fk" "$no_counts $no_fk")
    for round in 1 2; do
        for i in "${!names[@]}"; do
            local args=(--db "$PG_PRIVATE_URL?schema=probe_variant" --vacuum --server-pid "$pm" --finished 0 --rounds 1
                --jobs 10000 --dir "$WORK")
            [ -z "${sqls[$i]}" ] || args+=(--setup-sql "${sqls[$i]}")
            "$bench" "${args[@]}" 2>/dev/null | awk -v n="${names[$i]}" -v r="$round" '
                /^RESULT queue_overhead_empty_jobs_per_s/ {rate = $3}
                /^RESULT queue_overhead_empty_client_cpu_us_per_job/ {client = $3}
                /^RESULT queue_overhead_empty_server_cpu_us_per_job/ {server = $3}
                END {printf "  round %s %-18s %6d jobs/s   CPU per job: worker process %4d us, server %4d us, sum %4d us\n", r, n, rate, client, server, client + server}'
        done
    done
    pg_private_stop
}

probe_pg_claim_plan() {
    echo "## PostgreSQL: the claim's plan with 100,000 due jobs, by the state of the statistics ($PG_URL)"
    local h="$WORK/plan" url="$PG_URL?schema=probe_claim_plan_$$"
    mkdir "$h" && "$Q" --home "$h" --db "$url" init >/dev/null
    local claim="EXPLAIN (ANALYZE, COSTS OFF) SELECT seq FROM jobs WHERE state IN ('pending', 'failed') AND run_at <= 9000000000000 AND kind = ANY('{shell}')
        ORDER BY priority DESC, run_at, seq LIMIT 2 FOR UPDATE SKIP LOCKED"
    local insert="INSERT INTO jobs (id, kind, command, state, attempts, priority, run_at, created_at, updated_at, source)
        SELECT 'p' || g || '-' || random(), 'shell', 'true', 'pending', 0, 0, 1000 + g, 1000, 1000, 'cli' FROM generate_series(1, 100000) g"
    plan() { psql -X -A -t -q -d "$PG_URL" -c "SET search_path TO probe_claim_plan_$$; $claim" |
        grep -E "Scan|Sort Method|Execution Time" | sed 's/^ */    /'; }
    psql -X -q -d "$PG_URL" -c "SET search_path TO probe_claim_plan_$$; $insert"
    echo "  never analyzed (a new queue; the machine's server has autovacuum off):"; plan
    psql -X -q -d "$PG_URL" -c "SET search_path TO probe_claim_plan_$$; ANALYZE jobs"
    echo "  after ANALYZE:"; plan
    psql -X -q -d "$PG_URL" -c "SET search_path TO probe_claim_plan_$$; UPDATE jobs SET state = 'completed'; ANALYZE jobs; $insert"
    echo "  stale statistics (ANALYZE when every job had finished, then 100,000 new jobs):"; plan
    claim="SET enable_sort = off; $claim"
    echo "  the same, in a session with enable_sort = off (the ordered index is then the only plan without a sort):"; plan
    psql -X -q -d "$PG_URL" -c "DROP SCHEMA probe_claim_plan_$$ CASCADE" 2>/dev/null
    echo "  no-op pool, 2 threads, 10,000 jobs (queue_overhead), by the same states:"
    local bench
    bench=$(overhead_bench)
    for variant in "never analyzed" "VACUUM ANALYZE after the enqueue" "ANALYZE while empty, then the enqueue"; do
        local args=(--db "$PG_URL?schema=probe_claim_rate_$$" --finished 0 --rounds 1 --jobs 10000 --dir "$WORK")
        case "$variant" in
            VACUUM\ ANALYZE\ after*) args+=(--vacuum) ;;
            ANALYZE\ while*) args+=(--setup-sql "ANALYZE {schema}.jobs") ;;
        esac
        printf '    %-40s %s jobs/s\n' "$variant" "$("$bench" "${args[@]}" 2>/dev/null | awk '/^RESULT queue_overhead_empty_jobs_per_s/ {print $3}')"
    done
}

# The trigger functions without their `IF FOUND ... pg_notify ... END IF` block (SQL for a scratch
# schema, `{schema}` standing for its name).
NO_NOTIFY_SQL="DO \$\$ DECLARE f text; d text; BEGIN FOREACH f IN ARRAY ARRAY['jobs_count_insert', 'jobs_count_update'] LOOP
    d := pg_get_functiondef(('{schema}.' || f)::regproc);
    d := regexp_replace(d, 'IF FOUND.*?END IF;', '', 's');
    EXECUTE d; END LOOP; END \$\$;"

probe_pg_contention_notify() {
    echo "## PostgreSQL: 50 single-thread workers vs 2, as is and without the NOTIFY on every state change (private server)"
    pg_private_start
    export BENCH_PG_PRIVATE_URL=$PG_PRIVATE_URL BENCH_PG_PREFIX="probe_$$"
    BENCH_PG_PRIVATE_PID=$(head -1 "$PG_PRIVATE_DIR/data/postmaster.pid")
    export BENCH_PG_PRIVATE_PID
    local variant
    for variant in "as is" "without NOTIFY"; do
        : >"$WORK/contention.md"
        if [ "$variant" = "as is" ]; then
            unset BENCH_PG_SETUP_SQL
        else
            export BENCH_PG_SETUP_SQL=$NO_NOTIFY_SQL
        fi
        python3 -c 'import sys; sys.dont_write_bytecode = True; sys.path.insert(0, "bench"); import measure_pg
measure_pg.bench_pg_contention(jobs=2000, rounds=2)' "$Q" "$WORK" "$WORK/contention.md" 2>/dev/null
        echo "  $variant:"
        grep -E '^\| (2 processes|50 processes|1 process|ratio 50 × 1 ÷ 2 × 1, wall|jobs run)' "$WORK/contention.md" |
            sed -E 's/, median of [0-9]+//; s/^/    /'
    done
    unset BENCH_PG_SETUP_SQL
    pg_private_stop
}

probe_pg_dead_entries() {
    echo "## PostgreSQL: one claim (EXPLAIN ANALYZE, BUFFERS) among 150,000 due jobs, before and after 50,000 ran ($PG_URL)"
    local h="$WORK/dead" s="probe_dead_$$"
    mkdir "$h" && "$Q" --home "$h" --db "$PG_URL?schema=$s" init >/dev/null
    local claim="EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) SELECT seq FROM jobs WHERE state IN ('pending', 'failed')
        AND run_at <= 9000000000000 AND kind = ANY('{noop}') ORDER BY priority DESC, run_at, seq LIMIT 2 FOR UPDATE SKIP LOCKED"
    sql() { psql -X -A -t -q -d "$PG_URL" -c "SET search_path TO $s; $1"; }
    show() { sql "$claim" | awk '/^  Buffers/ && !b {b = $0} /Execution Time/ {e = $0}
        END {gsub(/^ +/, "", b); print "    " b "; " e}'; }
    sql "INSERT INTO jobs (id, kind, command, state, attempts, priority, run_at, created_at, updated_at, source)
        SELECT 'p' || g, 'noop', '', 'pending', 0, 0, 1000 + g, 1000, 1000, 'api' FROM generate_series(1, 150000) g; ANALYZE jobs"
    echo "  150,000 due jobs, none run yet:"; show
    sql "UPDATE jobs SET state = 'processing' WHERE seq <= 50000; UPDATE jobs SET state = 'completed' WHERE seq <= 50000"
    echo "  the first 50,000 claimed and finished (as workers would), first claim after:"; show
    echo "  second claim (the dead entries are marked now, but still read):"; show
    psql -X -q -d "$PG_URL" -c "VACUUM $s.jobs"
    echo "  after VACUUM jobs:"; show
    psql -X -q -d "$PG_URL" -c "DROP SCHEMA $s CASCADE" 2>/dev/null
}

probe_pg_perf() {
    echo "## PostgreSQL: perf -a while the no-op pool runs 10,000 jobs (private server)"
    pg_private_start
    local bench
    bench=$(overhead_bench)
    perf record -q -a -g -o "$WORK/pg.data" -- "$bench" --db "$PG_PRIVATE_URL?schema=probe_perf" --vacuum --finished 0 \
        --rounds 1 --jobs 10000 --dir "$WORK" 2>/dev/null | grep '^round' | sed 's/^/  /'
    echo "  samples by process (other sessions' processes included; the postgres with the most is the worker's backend):"
    perf report -i "$WORK/pg.data" --no-children --sort comm,pid --stdio -g none 2>/dev/null | grep '%' | head -8 | sed 's/^/  /'
    echo "  postgres processes, by function (self):"
    perf report -i "$WORK/pg.data" --comm postgres --no-children --sort dso,symbol --stdio -g none 2>/dev/null |
        grep '%' | head -15 | sed 's/^/  /'
    pg_private_stop
}

for p in "${probes[@]}"; do
    case "$p" in
        enqueue-file) probe_enqueue_file ;;
        statement-journal) probe_statement_journal ;;
        enqueue-syscalls) probe_enqueue_syscalls ;;
        overhead-profile) probe_overhead_profile ;;
        status-backlog) probe_status_backlog ;;
        loader) probe_loader ;;
        pg-variants) probe_pg_variants ;;
        pg-claim-plan) probe_pg_claim_plan ;;
        pg-perf) probe_pg_perf ;;
        pg-dead-entries) probe_pg_dead_entries ;;
        pg-contention-notify) probe_pg_contention_notify ;;
        *) echo "unknown probe: $p" >&2; exit 2 ;;
    esac
done
echo "load at end: $(uptime | sed 's/.*load average: //')"
