#!/usr/bin/env python3
"""PostgreSQL measurements through the library (the `queue_overhead` and `pickup` benches) for
bench/run.sh pg: the no-op overhead on the machine's server (empty and 1M finished jobs, with and
without statistics), where its CPU goes (client and server, on a private server), statements per
job (log_statement=all on the private server) and pickup latency without a process per job.

Usage: measure_pg_lib.py QUEUECTL WORKDIR OUTFILE BENCH...
  BENCH: pg_overhead pg_flat pg_cpu pg_statements pg_pickup_lib
Environment: as measure_pg.py, plus BENCH_PG_PRIVATE_PID (the private server's postmaster) and
BENCH_PG_PRIVATE_LOG (its log file) for pg_cpu and pg_statements.
"""

import os
import re
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no bench/__pycache__ from importing measure.py
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from measure import WORK, emit, load, log, med, met, section  # noqa: E402
from measure_pg import PG_URL, PREFIX, PRIVATE_URL, psql, server_settings, server_version, with_schema  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PRIVATE_PID = os.environ.get("BENCH_PG_PRIVATE_PID")
PRIVATE_LOG = os.environ.get("BENCH_PG_PRIVATE_LOG")
RIVER_PER_CORE = 5_800  # River: ~46k jobs/s on 8 cores (issue 9)


def cargo_bench(name, *args):
    """Runs `cargo bench --bench NAME -- ARGS`; returns (stdout, {RESULT key: value})."""
    out = subprocess.run(["cargo", "bench", "--quiet", "--bench", name, "--", *args], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout
    sys.stderr.write(out)
    results = {}
    for line in out.splitlines():
        if line.startswith("RESULT "):
            _, key, value = line.split(" ", 2)
            results[key] = value
    return out, results


def host(url):
    return url.split("@")[-1]


def bench_pg_overhead(jobs=50000, finished=1000000, nostats_jobs=10000):
    """The issue's figure: 2 threads, no-op executor, the machine's server; `VACUUM ANALYZE jobs` after
    each round's enqueue (what autovacuum would do), then once without statistics."""
    l0 = load()
    _, r = cargo_bench("queue_overhead", "--db", with_schema(PG_URL, f"{PREFIX}_qo"), "--vacuum", "--jobs", str(jobs),
                       "--finished", str(finished), "--dir", WORK)
    _, r2 = cargo_bench("queue_overhead", "--db", with_schema(PG_URL, f"{PREFIX}_qon"), "--jobs", str(nostats_jobs),
                        "--finished", "0", "--rounds", "1", "--dir", WORK)
    empty, big, ratio = float(r["queue_overhead_empty_jobs_per_s"]), float(r["queue_overhead_big_jobs_per_s"]), \
        float(r["queue_overhead_big_over_empty"])
    nostats = float(r2["queue_overhead_empty_jobs_per_s"])
    section(f"P1. No-op overhead on PostgreSQL: 2 threads through the library, {jobs:,} jobs a round, the machine's "
            f"server ({host(PG_URL)})",
            f"cargo bench --bench queue_overhead -- --db {PG_URL} --vacuum")
    emit(f"| empty table (`VACUUM ANALYZE jobs` after the enqueue), median of 3 | {empty:,.0f} jobs/s = "
         f"{empty / 2:,.0f} per core | ≥ 5,000 jobs/s | {met(empty >= 5000)} |")
    emit(f"| {finished:,} finished jobs in the table (same), median of 3 | {big:,.0f} jobs/s | ≥ 5,000 jobs/s | "
         f"{met(big >= 5000)} |")
    emit(f"| ratio {finished:,} finished ÷ empty (claim cost flat) | {ratio:.2f} | ≥ 0.8 | {met(ratio >= 0.8)} |")
    emit(f"| empty table **without statistics** (no VACUUM ANALYZE: the server's autovacuum is off), {nostats_jobs:,} jobs, "
         "1 run | "
         f"{nostats:,.0f} jobs/s | ≥ 5,000 jobs/s | {met(nostats >= 5000)} |")
    emit(f"| River's figure per core, for comparison (~46k jobs/s on 8 cores) | {RIVER_PER_CORE:,} per core | – | – |")
    emit(f"\nRounds (empty, big interleaved): {r['queue_overhead_rounds']} jobs/s; this process's CPU per job "
         f"(median of the empty rounds): {r['queue_overhead_empty_client_cpu_us_per_job']} µs. "
         + f"The 1M table: one `INSERT … SELECT FROM generate_series` of completed jobs and one of their attempt "
         f"rows, then `VACUUM ANALYZE`; it grows by {jobs:,} finished jobs a round, and `VACUUM ANALYZE jobs` runs after each round's enqueue (without it the dead index entries of earlier rounds pile up: BENCHMARKS.md). Load at start {l0}, at end "
         f"{load()}.")
    log(f"pg overhead: empty {empty:.0f} big {big:.0f} ratio {ratio:.2f} without statistics {nostats:.0f}")


def bench_pg_flat(jobs=20000, finished=1000000, rounds=3):
    """Claim cost with 1,000,000 finished jobs against an empty table, in CPU per job (worker and
    server), which the machine's load hardly changes, on the private server."""
    if not (PRIVATE_URL and PRIVATE_PID):
        raise SystemExit("pg_flat needs BENCH_PG_PRIVATE_URL and BENCH_PG_PRIVATE_PID")
    l0 = load()
    _, r = cargo_bench("queue_overhead", "--db", with_schema(PRIVATE_URL, f"{PREFIX}_flat"), "--vacuum",
                       "--server-pid", PRIVATE_PID, "--jobs", str(jobs), "--finished", str(finished), "--rounds",
                       str(rounds), "--dir", WORK)
    e = float(r["queue_overhead_empty_client_cpu_us_per_job"]) + float(r["queue_overhead_empty_server_cpu_us_per_job"])
    b = float(r["queue_overhead_big_client_cpu_us_per_job"]) + float(r["queue_overhead_big_server_cpu_us_per_job"])
    section(f"P1b. Claim cost flat, in CPU per job: {finished:,} finished jobs vs an empty table, {jobs:,} jobs a "
            f"round, {rounds} rounds interleaved (private server)",
            f"cargo bench --bench queue_overhead -- --db URL --vacuum --server-pid POSTMASTER_PID --jobs {jobs}")
    emit(f"| empty table: CPU per job, worker + server, median | {r['queue_overhead_empty_client_cpu_us_per_job']} + "
         f"{r['queue_overhead_empty_server_cpu_us_per_job']} = {e:.0f} µs | – | – |")
    emit(f"| {finished:,} finished jobs: CPU per job, worker + server, median | "
         f"{r['queue_overhead_big_client_cpu_us_per_job']} + {r['queue_overhead_big_server_cpu_us_per_job']} = "
         f"{b:.0f} µs | – | – |")
    emit(f"| CPU per job, empty ÷ 1M (1 = flat) | {e / b:.2f} | ≥ 0.8 | {met(e / b >= 0.8)} |")
    emit(f"| jobs/s, 1M ÷ empty (wall clock, load-dependent) | {float(r['queue_overhead_big_over_empty']):.2f} | "
         f"(≥ 0.8) | {met(float(r['queue_overhead_big_over_empty']) >= 0.8)} |")
    emit(f"\nRounds: {r['queue_overhead_rounds']} jobs/s. Load at start {l0}, at end {load()}.")
    log(f"pg flat: empty {e:.0f} us, big {b:.0f} us per job")


def bench_pg_cpu(rounds=3, jobs=20000):
    """CPU per job on both sides: PostgreSQL (private server, --server-pid) with 2 threads and
    with 8 (up to 8 finishes and claims per statement), and SQLite with 2; runs rotated."""
    if not (PRIVATE_URL and PRIVATE_PID):
        raise SystemExit("pg_cpu needs BENCH_PG_PRIVATE_URL and BENCH_PG_PRIVATE_PID")
    runs = {k: {"rate": [], "client": [], "server": []} for k in ("pg2", "pg8", "sqlite2")}
    l0 = load()
    common = ["--finished", "0", "--rounds", "1", "--jobs", str(jobs), "--dir", WORK]
    order = list(runs)
    for i in range(rounds):
        for which in order[i % 3:] + order[:i % 3]:
            if which.startswith("pg"):
                _, r = cargo_bench("queue_overhead", "--db", with_schema(PRIVATE_URL, f"{PREFIX}_cpu"), "--vacuum",
                                   "--server-pid", PRIVATE_PID, "--threads", which[2:], *common)
                runs[which]["server"].append(float(r["queue_overhead_empty_server_cpu_us_per_job"]))
            else:
                _, r = cargo_bench("queue_overhead", *common)
            runs[which]["rate"].append(float(r["queue_overhead_empty_jobs_per_s"]))
            runs[which]["client"].append(float(r["queue_overhead_empty_client_cpu_us_per_job"]))
    pg2, pg8, sq = runs["pg2"], runs["pg8"], runs["sqlite2"]
    client, server = med(pg2["client"]), med(pg2["server"])
    per_cpu_s = 1e6 / (client + server)
    per_cpu_s8 = 1e6 / (med(pg8["client"]) + med(pg8["server"]))
    section(f"P7. Where the no-op job's time goes: CPU per job, {jobs:,} jobs, PostgreSQL with 2 and 8 threads and "
            f"SQLite with 2, {rounds} rounds rotated (private server)",
            "cargo bench --bench queue_overhead -- --db URL --vacuum --server-pid POSTMASTER_PID --finished 0")
    emit(f"| PostgreSQL, 2 threads: jobs/s, median | {med(pg2['rate']):,.0f} | – | – |")
    emit(f"| PostgreSQL, 2 threads: CPU per job in the worker process (coordinator, listener, executor threads) | "
         f"{client:.0f} µs | – | – |")
    emit(f"| PostgreSQL, 2 threads: CPU per job in the server (every process of the instance) | {server:.0f} µs | – "
         "| – |")
    emit(f"| PostgreSQL, 2 threads: jobs per CPU-second, both sides (an idle 2-core machine's ceiling ÷ 2) | "
         f"**{per_cpu_s:,.0f}** (River: ~{RIVER_PER_CORE:,} per core) | – | – |")
    emit(f"| PostgreSQL, 8 threads: jobs/s; CPU per job worker + server; jobs per CPU-second | "
         f"{med(pg8['rate']):,.0f}; {med(pg8['client']):.0f} + {med(pg8['server']):.0f} µs; {per_cpu_s8:,.0f} | – | – |")
    emit(f"| SQLite, 2 threads: jobs/s; CPU per job (all in the worker process); jobs per CPU-second | "
         f"{med(sq['rate']):,.0f}; {med(sq['client']):.0f} µs; {1e6 / med(sq['client']):,.0f} | – | – |")
    emit("\nPer run: " + "; ".join(
        f"{k}: " + ", ".join(f"{rate:,.0f} jobs/s ({c:.0f}" + (f" + {s:.0f}" if s is not None else "") + " µs)"
                             for rate, c, s in zip(v["rate"], v["client"], v["server"] or [None] * len(v["rate"])))
        for k, v in runs.items())
         + ". The server's CPU is read from /proc for the postmaster and its children (finished backends through "
         f"the postmaster's children's times), so the private server must serve nobody else. Server: PostgreSQL "
         f"{server_version(PRIVATE_URL)}, {server_settings(PRIVATE_URL)}. Load at start {l0}, at end {load()}.")
    log(f"pg cpu: client {client:.0f} us server {server:.0f} us per job -> {per_cpu_s:.0f} jobs/cpu-s; "
        f"8 threads {per_cpu_s8:.0f}")


def classify(text):
    t = text.strip()
    if t.startswith("WITH f AS"):
        return "the worker's step (finish + claim, one statement)"
    for prefix, name in [("UPDATE workers", "heartbeat (UPDATE workers)"), ("UPDATE jobs SET state = 'processing'",
                                                                             "claim alone"),
                         ("START TRANSACTION", "START TRANSACTION"), ("COMMIT", "COMMIT"),
                         ("SELECT min(run_at)", "next_run_at"), ("SELECT EXISTS (SELECT 1 FROM jobs", "has_unfinished")]:
        if t.startswith(prefix):
            return name
    return "other: " + " ".join(t.split()[:4])


def bench_pg_statements(jobs=5000):
    """Every statement the server receives while the no-op pool runs `jobs` jobs: the server
    log with log_statement=all (set by ALTER SYSTEM on the private server, reset after)."""
    if not (PRIVATE_URL and PRIVATE_LOG):
        raise SystemExit("pg_statements needs BENCH_PG_PRIVATE_URL and BENCH_PG_PRIVATE_LOG")
    psql(PRIVATE_URL, "ALTER SYSTEM SET log_statement = 'all'")
    psql(PRIVATE_URL, "SELECT pg_reload_conf()")
    time.sleep(0.5)
    start = os.path.getsize(PRIVATE_LOG)
    try:
        _, r = cargo_bench("queue_overhead", "--db", with_schema(PRIVATE_URL, f"{PREFIX}_stmt"), "--vacuum",
                             "--finished", "0", "--rounds", "1", "--jobs", str(jobs), "--dir", WORK)
    finally:
        psql(PRIVATE_URL, "ALTER SYSTEM RESET log_statement")
        psql(PRIVATE_URL, "SELECT pg_reload_conf()")
    with open(PRIVATE_LOG, errors="replace") as f:
        f.seek(start)
        text = f.read()
    counts = {}
    # One entry per statement: "LOG:  statement: SQL" (simple protocol) or "LOG:  execute NAME: SQL".
    for m in re.finditer(r"LOG:  (?:statement|execute [^:]*): (.*)", text):
        key = classify(m.group(1))
        counts[key] = counts.get(key, 0) + 1
    # The drain alone: from the pool's start; the enqueue and the schema's creation come before.
    pool = {k: v for k, v in counts.items() if not k.startswith("other")}
    total = sum(counts.values())
    section(f"P8. Statements the server receives per job: no-op pool, 2 threads, {jobs:,} jobs (private server, "
            "log_statement=all)", "bash bench/run.sh pg")
    step = counts.get("the worker's step (finish + claim, one statement)", 0)
    emit(f"| the worker's step statements per job (each one round trip and one transaction) | {step / jobs:.2f} | – | – |")
    emit(f"| all statements of the pool's kinds per job | {sum(pool.values()) / jobs:.2f} | – | – |")
    emit(f"| every statement in the log during the run (init, enqueue, ANALYZE, drop included) per job | "
         f"{total / jobs:.2f} | – | – |")
    emit("\nBy kind: " + "; ".join(f"{k}: {v:,}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1])[:12])
         + f". Rate while logging: {float(r['queue_overhead_empty_jobs_per_s']):,.0f} jobs/s. Load at end: {load()}.")
    log(f"pg statements: {step / jobs:.2f} steps per job, {total / jobs:.2f} statements per job in all")


def bench_pg_pickup_lib(samples=200):
    l0 = load()
    _, pg = cargo_bench("pickup", "--db", with_schema(PG_URL, f"{PREFIX}_pk"), "--samples", str(samples), "--dir",
                        WORK)
    _, sq = cargo_bench("pickup", "--samples", str(samples), "--dir", WORK)
    m = float(pg["pickup_total_median_ms"])
    section(f"P4. Pickup latency through the library: an open `Queue` enqueues, an idle 1-thread pool in the same "
            f"process runs the job, {samples} samples", f"cargo bench --bench pickup -- --db {PG_URL}")
    emit(f"| PostgreSQL (NOTIFY through the server): enqueue call → job start, median (p99) | {m:.2f} ms "
         f"({pg['pickup_total_p99_ms']} ms) | ≤ 10 ms | {met(m <= 10)} |")
    emit(f"| PostgreSQL: commit (enqueue returned) → job start, median (p99) | {pg['pickup_after_commit_median_ms']} ms "
         f"({pg['pickup_after_commit_p99_ms']} ms) | – | – |")
    emit(f"| PostgreSQL: the enqueue call (one durable commit), median (p99) | {pg['pickup_enqueue_call_median_ms']} ms "
         f"({pg['pickup_enqueue_call_p99_ms']} ms) | – | – |")
    emit(f"| SQLite (data_version poll): enqueue call → job start, median (p99) | {sq['pickup_total_median_ms']} ms "
         f"({sq['pickup_total_p99_ms']} ms) | – | – |")
    emit(f"| SQLite: commit → job start, median (p99); the enqueue call, median | {sq['pickup_after_commit_median_ms']} ms "
         f"({sq['pickup_after_commit_p99_ms']} ms); {sq['pickup_enqueue_call_median_ms']} ms | – | – |")
    emit(f"\nNo process starts and no connection opens per job (compare P3, where each enqueue is a CLI process that "
         f"connects). Load at start {l0}, at end {load()}.")
    log(f"pg pickup (library): {m:.2f} ms, sqlite {sq['pickup_total_median_ms']} ms")


def main():
    for name in sys.argv[4:]:
        log(f"[{time.strftime('%H:%M:%S')}] {name} (load {load()})")
        globals()[f"bench_{name}"]()


if __name__ == "__main__":
    main()
