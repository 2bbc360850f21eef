#!/usr/bin/env python3
"""PostgreSQL measurement loops for bench/run.sh (issue 9, "Speed"; see BENCHMARKS.md).

Usage: measure_pg.py QUEUECTL WORKDIR OUTFILE BENCH...
  BENCH: pg_throughput pg_pickup pg_million pg_contention
Environment:
  BENCH_PG_URL          the server to measure (default postgres://postgres@127.0.0.1:5432/test)
  BENCH_PG_PRIVATE_URL  a private server for pg_contention (50 workers hold 100+ connections)
  BENCH_PG_PREFIX       prefix of the scratch schemas (default bench_PID); each measurement makes
                        its own schemas and drops them, and run.sh drops any left with the prefix
  BENCH_PG_PRIVATE_PID  the private server's postmaster: pg_contention then reports its CPU per job
  BENCH_PG_SETUP_SQL    SQL run in every scratch schema right after `init` ({schema} stands for its
                        name): for experiments (bench/probes.sh pg-contention-notify)

Shares measure.py's helpers (the same argv), its table format and its method: comparisons
interleaved in one run, medians, the 1-minute load average with every figure. SQL goes through
`psql` (python3 has no PostgreSQL driver here).
"""

import atexit
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no bench/__pycache__ from importing measure.py
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from measure import (DEVNULL, Q, WORK, emit, fmt_ms, load, log, med, met, ms, pct, read_stamp,  # noqa: E402
                     section, stop, time_v, timed, write_ndjson)

PG_URL = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432/test")
PRIVATE_URL = os.environ.get("BENCH_PG_PRIVATE_URL")
PREFIX = os.environ.get("BENCH_PG_PREFIX", f"bench_{os.getpid()}")
PRIVATE_PID = os.environ.get("BENCH_PG_PRIVATE_PID")
SETUP_SQL = os.environ.get("BENCH_PG_SETUP_SQL")

_schemas = []  # (server url, schema) of every scratch schema made, dropped at exit
_counter = [0]


def psql(url, sql, check=True):
    """Runs SQL on the server at url; returns psql's unaligned, tuples-only output."""
    out = subprocess.run(["psql", "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql],
                         check=check, capture_output=True, text=True)
    return out.stdout.strip()


def drop_all():
    for url, schema in _schemas:
        psql(url, f"DROP SCHEMA IF EXISTS {schema} CASCADE", check=False)
    _schemas.clear()


atexit.register(drop_all)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


def with_schema(url, schema):
    return f"{url}{'&' if '?' in url else '?'}schema={schema}"


class PgHome:
    """A queue home whose jobs live in a scratch schema of the server at url."""

    def __init__(self, label, url=PG_URL):
        _counter[0] += 1
        self.schema = f"{PREFIX}_{label}_{_counter[0]}"
        self.url = url
        self.db = with_schema(url, self.schema)
        self.home = os.path.join(WORK, f"pg-{label}-{_counter[0]}")
        os.makedirs(self.home)
        _schemas.append((url, self.schema))
        self.q("init")
        if SETUP_SQL:
            self.sql(SETUP_SQL.replace("{schema}", self.schema))

    def argv(self, *args):
        return [Q, "--home", self.home, "--db", self.db, *args]

    def q(self, *args, **kw):
        return subprocess.run(self.argv(*args), check=True, stdout=kw.pop("stdout", DEVNULL), **kw)

    def sql(self, sql):
        return psql(self.url, f"SET search_path TO {self.schema}; {sql}")

    def status(self):
        import json
        out = subprocess.run(self.argv("status", "--json"), check=True, capture_output=True, text=True).stdout
        return json.loads(out)

    def drop(self):
        psql(self.url, f"DROP SCHEMA IF EXISTS {self.schema} CASCADE", check=False)
        if (self.url, self.schema) in _schemas:
            _schemas.remove((self.url, self.schema))
        shutil.rmtree(self.home, ignore_errors=True)


def sqlite_home(label):
    _counter[0] += 1
    home = os.path.join(WORK, f"sqlite-{label}-{_counter[0]}")
    os.makedirs(home)
    subprocess.run([Q, "--home", home, "init"], check=True, stdout=DEVNULL)
    return home


def server_version(url):
    return psql(url, "SHOW server_version")


def server_settings(url):
    return psql(url, "SELECT string_agg(name || '=' || setting, ', ' ORDER BY name) FROM pg_settings WHERE name IN "
                     "('fsync', 'synchronous_commit', 'full_page_writes', 'autovacuum', 'shared_buffers', "
                     "'max_connections')")


# ---------------------------------------------------------------------------- throughput

def bench_pg_throughput(jobs=2000, rounds=5):
    """2,000 `true` jobs through `worker start --count 2` on PostgreSQL (as enqueued, and after
    an ANALYZE) and on SQLite, against `xargs -P 2`, in rotated order each round."""
    ndjson = os.path.join(WORK, "pg-true-2000.ndjson")
    write_ndjson(ndjson, "t", jobs)
    tv = os.path.join(WORK, "pg-time-v.txt")
    worker = ["worker", "start", "--count", "2", "--until-empty", "--quiet", "--no-spool"]
    walls = {"pg": [], "pg-analyzed": [], "sqlite": [], "xargs": []}
    rss = []
    for r in range(rounds):
        pg, pg2 = PgHome("tp"), PgHome("tpa")
        pg.q("enqueue", "--file", ndjson)
        pg2.q("enqueue", "--file", ndjson)
        pg2.sql("ANALYZE jobs")
        sq = sqlite_home("tp")
        subprocess.run([Q, "--home", sq, "enqueue", "--file", ndjson], check=True, stdout=DEVNULL)
        runs = [("pg", pg.argv(*worker)), ("pg-analyzed", pg2.argv(*worker)),
                ("sqlite", [Q, "--home", sq, *worker]),
                ("xargs", ["sh", "-c", f"seq {jobs} | xargs -P 2 -I{{}} sh -c true"])]
        runs = runs[r % 4:] + runs[:r % 4]
        for name, cmd in runs:
            wall, kb = time_v(cmd, tv)
            walls[name].append(wall)
            if name.startswith("pg"):
                rss.append(kb)
        for h in (pg, pg2):
            st = h.status()
            assert st["jobs"]["completed"] == jobs, st
            h.drop()
        shutil.rmtree(sq)
        log(f"pg throughput round {r+1}: " + " ".join(f"{k} {v[-1]/1e9:.2f}s" for k, v in walls.items()))
    rate = {k: jobs / (med(v) / 1e9) for k, v in walls.items()}
    ratio = {k: rate[k] / rate["xargs"] for k in rate}
    per_round = {k: [x / w for w, x in zip(v, walls["xargs"])] for k, v in walls.items()}
    section(f"P2. Throughput on PostgreSQL: {jobs:,} `true` jobs, `worker start --count 2 --until-empty --no-spool` "
            "÷ `xargs -P 2`", "bash bench/run.sh pg")
    emit(f"| PostgreSQL, as enqueued, median of {rounds} | {med(walls['pg'])/1e9:.2f} s = {rate['pg']:,.0f} jobs/s "
         f"(÷ xargs: **{ratio['pg']:.2f}**) | ≥ 0.8 × xargs | {met(ratio['pg'] >= 0.8)} |")
    emit(f"| PostgreSQL, `ANALYZE jobs` after the enqueue, median of {rounds} | {med(walls['pg-analyzed'])/1e9:.2f} s = "
         f"{rate['pg-analyzed']:,.0f} jobs/s (÷ xargs: {ratio['pg-analyzed']:.2f}) | ≥ 0.8 × xargs | "
         f"{met(ratio['pg-analyzed'] >= 0.8)} |")
    emit(f"| SQLite, same rounds, median of {rounds} | {med(walls['sqlite'])/1e9:.2f} s = {rate['sqlite']:,.0f} jobs/s "
         f"(÷ xargs: {ratio['sqlite']:.2f}) | ≥ 0.7 × xargs | {met(ratio['sqlite'] >= 0.7)} |")
    emit(f"| `xargs -P 2 -I{{}} sh -c true`, median of {rounds} | {med(walls['xargs'])/1e9:.2f} s = "
         f"{rate['xargs']:,.0f} jobs/s | – | – |")
    emit(f"| worker peak RSS on PostgreSQL (`/usr/bin/time -v`), max | {max(rss)/1024:.1f} MB | ≤ 30 MB | "
         f"{met(max(rss) <= 30 * 1024)} |")
    emit("\nPer-round ratios to xargs (the four runs rotate their order each round): "
         + "; ".join(f"{k} {', '.join(f'{x:.2f}' for x in v)}" for k, v in per_round.items() if k != "xargs")
         + f". Each PostgreSQL queue is a fresh scratch schema on {PG_URL.split('@')[-1]}. Load at end: {load()}.")


# ---------------------------------------------------------------------------- pickup

def bench_pg_pickup(samples=200):
    """Idle `worker start --count 1` on PostgreSQL (woken by NOTIFY) and on SQLite (polling
    data_version), `enqueue` from another process; samples alternate between the two queues and
    a floor (the harness spawning the same shell command)."""
    pg = PgHome("pickup")
    sq = sqlite_home("pickup")
    logs = [open(os.path.join(WORK, f"pickup-{n}.log"), "w") for n in ("pg", "sqlite")]
    base = ["worker", "start", "--count", "1", "--quiet", "--no-spool"]
    workers = [subprocess.Popen(pg.argv(*base), stdout=logs[0], stderr=subprocess.STDOUT),
               subprocess.Popen([Q, "--home", sq, *base], stdout=logs[1], stderr=subprocess.STDOUT)]
    lat = {"pg": [], "sqlite": []}
    after = {"pg": [], "sqlite": []}
    floor = []
    try:
        deadline = time.time() + 15
        while not pg.status()["workers"]:
            if time.time() > deadline:
                raise SystemExit("the PostgreSQL worker did not register")
            time.sleep(0.02)
        time.sleep(0.3)
        cmd = "date +%s%N > $QUEUECTL_JOB_ID.t"
        rnd = random.Random(11)
        for i in range(samples * 2):
            time.sleep(rnd.uniform(0.01, 0.03))  # the worker is idle again
            if i % 4 == 0:
                path = os.path.join(WORK, f"pgfloor{i}.t")
                t0 = time.time_ns()
                subprocess.run(["sh", "-c", f"date +%s%N > {path}"], check=True)
                floor.append(read_stamp(path) - t0)
            which = "pg" if (i // 2 + i) % 2 == 0 else "sqlite"
            job = f"lat{i}"
            argv = pg.argv("enqueue", "--id", job, "--command", cmd) if which == "pg" else \
                [Q, "--home", sq, "enqueue", "--id", job, "--command", cmd]
            home = pg.home if which == "pg" else sq
            t0 = time.time_ns()
            subprocess.run(argv, check=True, stdout=DEVNULL)
            t1 = time.time_ns()
            stamp = read_stamp(os.path.join(home, f"{job}.t"))
            lat[which].append(stamp - t0)
            after[which].append(stamp - t1)
        pg.q("wait", "--timeout", "10s")
    finally:
        for w in workers:
            stop(w)
        for f in logs:
            f.close()
    section("P3. Pickup latency on PostgreSQL through NOTIFY: idle `worker start --count 1`, `enqueue` from "
            "another process", "bash bench/run.sh pg")
    m = ms(med(lat["pg"]))
    emit(f"| PostgreSQL: enqueue start → job's `date`, median of {len(lat['pg'])} (p99) | {fmt_ms(m)} "
         f"({fmt_ms(ms(pct(lat['pg'], 99)))}) | ≤ 10 ms | {met(m <= 10)} |")
    emit(f"| PostgreSQL: enqueue returned → job's `date`, median (p99) | {fmt_ms(ms(med(after['pg'])))} "
         f"({fmt_ms(ms(pct(after['pg'], 99)))}) | – | – |")
    ew = [a - b for a, b in zip(lat["pg"], after["pg"])]
    emit(f"| PostgreSQL: the `enqueue` process's wall, median (p99) | {fmt_ms(ms(med(ew)))} "
         f"({fmt_ms(ms(pct(ew, 99)))}) | – | – |")
    m2 = ms(med(lat["sqlite"]))
    emit(f"| SQLite, same run: enqueue start → job's `date`, median of {len(lat['sqlite'])} (p99) | {fmt_ms(m2)} "
         f"({fmt_ms(ms(pct(lat['sqlite'], 99)))}) | ≤ 20 ms | {met(m2 <= 20)} |")
    emit(f"| SQLite: enqueue returned → job's `date`, median (p99) | {fmt_ms(ms(med(after['sqlite'])))} "
         f"({fmt_ms(ms(pct(after['sqlite'], 99)))}) | – | – |")
    emit(f"| floor: `sh -c 'date …'` spawned directly, median of {len(floor)} (p99) | {fmt_ms(ms(med(floor)))} "
         f"({fmt_ms(ms(pct(floor, 99)))}) | – | – |")
    neg = sum(1 for x in after["pg"] if x < 0)
    emit(f"\nSamples alternate between the two queues (both workers idle, each after a random 10–30 ms pause); "
         f"{neg} PostgreSQL jobs started before their `enqueue` had exited (the job is visible at its commit, the "
         f"process exits after). Load at end: {load()}.")
    pg.drop()
    shutil.rmtree(sq)
    log(f"pg pickup: median {m:.2f} ms, sqlite {m2:.2f} ms, floor {ms(med(floor)):.2f} ms")


# ---------------------------------------------------------------------------- 1M jobs

BULK = ("INSERT INTO jobs (id, kind, command, state, attempts, priority, run_at, created_at, updated_at, "
        "finished_at, source) SELECT 'm' || g, 'shell', 'true', {state}, {attempts}, 0, {now}, {now}, {now}, "
        "{finished}, 'cli' FROM generate_series(1, {n}) g")


def bench_pg_million(total=1_000_000, runs=20, file_jobs=100_000):
    """`status` and `list` on 1,000,000 jobs in a schema bulk-loaded with SQL: first all pending
    (the backlog case), then 940k completed, 50k dead, 10k pending. Also `enqueue --file` of
    100,000 jobs into a fresh schema (3 runs)."""
    path = os.path.join(WORK, "pg-100k.ndjson")
    write_ndjson(path, "b", file_jobs)
    file_walls = []
    for _ in range(3):
        h = PgHome("file")
        file_walls.append(timed(h.argv("enqueue", "--file", path)))
        assert h.status()["jobs"]["pending"] == file_jobs
        h.drop()
    os.remove(path)

    pg = PgHome("million")
    now = int(time.time() * 1000)
    t0 = time.perf_counter()
    pg.sql(BULK.format(state="'pending'", attempts=0, now=now, finished="NULL", n=total))
    load_s = time.perf_counter() - t0
    backlog = {"status": pg.argv("status"), "list --state pending --limit 50": pg.argv("list", "--state", "pending",
                                                                                        "--limit", "50")}
    backlog_samples = {k: [] for k in backlog}
    for _ in range(6):
        for name, cmd in backlog.items():
            backlog_samples[name].append(timed(cmd))
    t0 = time.perf_counter()
    pg.sql(f"UPDATE jobs SET state = CASE WHEN seq <= {total * 94 // 100} THEN 'completed' "
           f"WHEN seq <= {total * 99 // 100} THEN 'dead' ELSE 'pending' END, attempts = 1, finished_at = {now} "
           f"WHERE seq <= {total * 99 // 100}")
    update_s = time.perf_counter() - t0
    st = pg.status()
    assert st["jobs"]["completed"] == total * 94 // 100 and st["jobs"]["dead"] == total * 5 // 100, st
    cmds = {
        "status": pg.argv("status"),
        "status --json": pg.argv("status", "--json"),
        "list --state dead --limit 50": pg.argv("list", "--state", "dead", "--limit", "50"),
        "list --state dead --limit 50 --json": pg.argv("list", "--state", "dead", "--limit", "50", "--json"),
        "floor (/bin/true)": ["/bin/true"],
    }
    for cmd in cmds.values():
        subprocess.run(cmd, check=True, stdout=DEVNULL)
    samples = {k: [] for k in cmds}
    for r in range(runs):
        order = list(cmds.items())
        random.Random(r).shuffle(order)
        for name, cmd in order:
            samples[name].append(timed(cmd))
    size = pg.sql(f"SELECT pg_size_pretty(sum(pg_total_relation_size(c.oid))) FROM pg_class c JOIN pg_namespace n "
                  f"ON n.oid = c.relnamespace WHERE n.nspname = '{pg.schema}' AND c.relkind = 'r'")
    section(f"P5. `status` and `list` on PostgreSQL with {total:,} jobs (940k completed, 50k dead, 10k pending)",
            "bash bench/run.sh pg")
    for name in cmds:
        m, p90 = ms(med(samples[name])), ms(pct(samples[name], 90))
        floor = name.startswith("floor")
        emit(f"| `{name}`, median of {runs} (p90) | {fmt_ms(m)} ({fmt_ms(p90)}) | {'–' if floor else '≤ 50 ms'} | "
             f"{'–' if floor else met(m <= 50)} |")
    for name, values in backlog_samples.items():
        m = ms(med(values[1:]))
        emit(f"| backlog case: `{name}` with all 1M jobs pending, median of {len(values) - 1} | {fmt_ms(m)} | "
             f"(≤ 50 ms) | {met(m <= 50)} |")
    fm = med(file_walls) / 1e9
    emit(f"| *extra:* `enqueue --file` of {file_jobs:,} jobs into a fresh schema, median of 3 | {fm:.2f} s | "
         f"(SQLite's target: ≤ 2 s) | {met(fm <= 2)} |")
    emit(f"\nThe 1M rows went in by one `INSERT … SELECT FROM generate_series` ({load_s:.1f} s) and one `UPDATE` "
         f"({update_s:.1f} s); the count triggers kept `status` right (checked). No ANALYZE (the server's "
         f"autovacuum is off). Tables and indexes: {size}. `enqueue --file` runs: "
         f"{', '.join(f'{t/1e9:.2f} s' for t in file_walls)}. Load at end: {load()}.")
    log("pg million:", {k: round(ms(med(v)), 2) for k, v in samples.items()})
    pg.drop()


# ---------------------------------------------------------------------------- contention

def proc_cpu_ticks(pid):
    """(utime + stime, cutime + cstime) of a process, in clock ticks."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12]), int(fields[13]) + int(fields[14])


def server_cpu_s(pid):
    """CPU seconds of a server: its postmaster, its live children and its reaped ones."""
    own, reaped = proc_cpu_ticks(pid)
    ticks = own + reaped
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            for child in f.read().split():
                try:
                    ticks += proc_cpu_ticks(child)[0]
                except OSError:
                    pass
    except OSError:
        pass
    return ticks / os.sysconf("SC_CLK_TCK")


def children_cpu_s():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_workers(pg, procs, threads, label):
    """Starts procs `worker start --count THREADS --until-empty` processes at once; returns
    (wall ns from the first start to the last exit, exit codes, CPU seconds of the workers and
    their jobs, CPU seconds of the server or None)."""
    argv = pg.argv("worker", "start", "--count", str(threads), "--until-empty", "--quiet", "--no-spool")
    server0 = server_cpu_s(PRIVATE_PID) if PRIVATE_PID and pg.url == PRIVATE_URL else None
    with open(os.path.join(WORK, f"contention-{label}.log"), "a") as logf:
        cpu0 = children_cpu_s()
        t0 = time.perf_counter_ns()
        ps = [subprocess.Popen(argv, stdout=logf, stderr=subprocess.STDOUT) for _ in range(procs)]
        codes = [p.wait(timeout=600) for p in ps]
        wall = time.perf_counter_ns() - t0
        cpu = children_cpu_s() - cpu0
    server = None
    if server0 is not None:
        time.sleep(0.2)  # the workers' backends exit a moment after their connections close
        server = server_cpu_s(PRIVATE_PID) - server0
    return wall, codes, cpu, server


def bench_pg_contention(jobs=4000, rounds=3, many=50):
    """`many` worker processes of 1 thread each against 2 of 1 thread (the target's reference)
    and 1 of 2 threads, on one private server, each draining `jobs` jobs that append their id to
    a file; the order rotates each round. Afterwards every job must have run once: one line in
    the file, one attempt row, state completed; every worker exited 0."""
    if not PRIVATE_URL:
        raise SystemExit("pg_contention needs BENCH_PG_PRIVATE_URL (bash bench/run.sh pg starts a private server)")
    configs = [("2x1", 2, 1), (f"{many}x1", many, 1), ("1x2", 1, 2)]
    # What starting and stopping the workers costs alone: each on an empty queue.
    startup = {}
    for label, procs, threads in configs:
        pg = PgHome(f"s{procs}x{threads}", url=PRIVATE_URL)
        startup[label] = run_workers(pg, procs, threads, f"startup-{label}")
        pg.drop()
    walls = {c[0]: [] for c in configs}
    spans = {c[0]: [] for c in configs}
    cpus = {c[0]: [] for c in configs}
    servers = {c[0]: [] for c in configs}
    checks = []
    for r in range(rounds):
        for label, procs, threads in configs[r % 3:] + configs[:r % 3]:
            pg = PgHome(f"c{procs}x{threads}", url=PRIVATE_URL)
            runs_file = os.path.join(WORK, f"runs-{label}-{r}.txt")
            ndjson = os.path.join(WORK, f"contention-{label}.ndjson")
            with open(ndjson, "w") as f:
                for i in range(jobs):
                    f.write(f'{{"id": "c{i:05d}", "command": "echo $QUEUECTL_JOB_ID >> {runs_file}"}}\n')
            pg.q("enqueue", "--file", ndjson)
            pg.sql("ANALYZE jobs")
            wall, codes, cpu, server = run_workers(pg, procs, threads, label)
            cpus[label].append(cpu / jobs * 1e6)
            if server is not None:
                servers[label].append(server / jobs * 1e6)
            with open(runs_file) as f:
                lines = f.read().split()
            distinct = len(set(lines))
            attempts = int(pg.sql("SELECT count(*) FROM attempts"))
            per_job_max = int(pg.sql("SELECT COALESCE(max(n), 0) FROM (SELECT count(*) AS n FROM attempts "
                                     "GROUP BY job_seq) a"))
            completed = int(pg.sql("SELECT count(*) FROM jobs WHERE state = 'completed'"))
            span_ms = int(pg.sql("SELECT max(finished_at) - min(started_at) FROM attempts"))
            ok = (len(lines) == jobs and distinct == jobs and attempts == jobs and per_job_max == 1
                  and completed == jobs and all(c == 0 for c in codes))
            checks.append((label, len(lines), distinct, attempts, per_job_max, completed, codes.count(0), ok))
            walls[label].append(wall)
            spans[label].append(span_ms)
            log(f"contention round {r+1}, {label}: {wall/1e9:.2f} s wall, jobs span {span_ms} ms, lines {len(lines)} "
                f"distinct {distinct} attempts {attempts} max/job {per_job_max} exit-0 {codes.count(0)} ok={ok}")
            pg.drop()
            os.remove(runs_file)
    rate = {k: jobs / (med(v) / 1e9) for k, v in walls.items()}
    span_rate = {k: jobs / (med(v) / 1e3) for k, v in spans.items()}
    big = f"{many}x1"
    ratio, span_ratio = rate[big] / rate["2x1"], span_rate[big] / span_rate["2x1"]
    all_ok = all(c[-1] for c in checks)
    section(f"P6. Contention: {many} worker processes of 1 thread each, one private server, {jobs:,} jobs a run",
            "bash bench/run.sh pg")
    names = {"2x1": "2 processes × 1 thread", big: f"{many} processes × 1 thread", "1x2": "1 process × 2 threads"}
    for label in walls:
        emit(f"| {names[label]}, median of {rounds}: wall, first start → last exit (jobs/s); first claim → last "
             f"finish (jobs/s) | {med(walls[label])/1e9:.2f} s ({rate[label]:,.0f}); {med(spans[label])/1e3:.2f} s "
             f"({span_rate[label]:,.0f}) | – | – |")
    emit(f"| ratio {many} × 1 ÷ 2 × 1, wall | **{ratio:.2f}** | ≥ 0.8 | {met(ratio >= 0.8)} |")
    emit(f"| same, first claim → last finish | {span_ratio:.2f} | (≥ 0.8) | {met(span_ratio >= 0.8)} |")
    emit(f"| ratio {many} × 1 ÷ 1 × 2, wall | {rate[big] / rate['1x2']:.2f} | – | – |")
    for label in walls:
        server = f" + server {med(servers[label]):.0f} µs" if servers[label] else ""
        emit(f"| {names[label]}: CPU per job, median: worker processes and their jobs{' + server' if server else ''} | "
             f"{med(cpus[label]):.0f} µs{server} | – | – |")
    emit(f"| jobs run more than once, all runs | {0 if all_ok else '**see below**'} | 0 | {met(all_ok)} |")
    for label, (wall, codes, cpu, server) in startup.items():
        server_text = f", server {server * 1000:.0f} ms" if server is not None else ""
        emit(f"| {names[label]} on an empty queue (start, register, find nothing, exit): wall; CPU of the workers"
             f"{', server' if server_text else ''} | {wall / 1e9:.2f} s; {cpu * 1000:.0f} ms{server_text} | – | – |")
    emit("\nEach job runs `echo $QUEUECTL_JOB_ID >> FILE` (a shell builtin: the job is one `sh`); after each run: "
         "lines in FILE / distinct ids / attempt rows / most attempts of one job / completed jobs / workers that "
         "exited 0 — " + "; ".join(f"{k}: {n}/{d}/{a}/{mx}/{c}/{z}" for k, n, d, a, mx, c, z, _ in checks)
         + ". Walls: " + "; ".join(f"{k}: {', '.join(f'{w/1e9:.2f}' for w in v)} s" for k, v in walls.items())
         + f". Server: PostgreSQL {server_version(PRIVATE_URL)}, {server_settings(PRIVATE_URL)}; "
         f"`ANALYZE jobs` after each enqueue. Load at end: {load()}.")


def main():
    try:
        for name in sys.argv[4:]:
            log(f"[{time.strftime('%H:%M:%S')}] {name} (load {load()})")
            globals()[f"bench_{name}"]()
    finally:
        drop_all()


if __name__ == "__main__":
    main()
