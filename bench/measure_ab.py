#!/usr/bin/env python3
"""A/B of the SQLite figures between this tree and an older commit (issue 9: "SQLite figures
must not regress"), for bench/run.sh ab. Both builds run interleaved in the same run.

Usage: measure_ab.py QUEUECTL WORKDIR OUTFILE BENCH...
  BENCH: ab_enqueue_one ab_enqueue_file ab_throughput ab_pickup ab_overhead
Environment:
  BENCH_AB_REV        the older commit's name, for the tables
  BENCH_AB_OLD_Q      its queuectl binary
  BENCH_AB_OLD_BENCH  its queue_overhead bench binary
  BENCH_AB_NEW_BENCH  this tree's queue_overhead bench binary
"""

import os
import random
import shutil
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no bench/__pycache__ from importing measure.py
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from measure import (DEVNULL, Q, WORK, emit, fmt_ms, load, log, med, ms, pct, read_stamp, stop,  # noqa: E402
                     time_v, timed, write_ndjson)

REV = os.environ.get("BENCH_AB_REV", "old")
OLD_Q = os.environ.get("BENCH_AB_OLD_Q")
OLD_BENCH = os.environ.get("BENCH_AB_OLD_BENCH")
NEW_BENCH = os.environ.get("BENCH_AB_NEW_BENCH")
BUILDS = {"old": OLD_Q, "new": Q}
_n = [0]


def home(which, label):
    _n[0] += 1
    h = os.path.join(WORK, f"ab-{label}-{which}-{_n[0]}")
    os.makedirs(h)
    subprocess.run([BUILDS[which], "--home", h, "init"], check=True, stdout=DEVNULL)
    return h


def row(figure, old, new, unit_fmt, higher_is_better=False):
    change = new / old
    worse = (1 / change) if higher_is_better else change
    if worse > 1.1:
        note = f"**worse by {100 * (worse - 1):.0f}%**"
    elif worse < 1 / 1.1:
        note = f"better by {100 * (1 - worse):.0f}%"
    else:
        note = "within ±10%"
    emit(f"| {figure} | {unit_fmt(old)} | {unit_fmt(new)} | ×{change:.2f} | {note} |")


def header(title):
    emit(f"\n### {title}\n")
    emit(f"Reproduce: `bash bench/run.sh ab` (AB_REV={REV}; load at start: {load()})\n")
    emit(f"| figure | `{REV}` | now | now ÷ `{REV}` | verdict |")
    emit("|---|---|---|---|---|")


def bench_ab_enqueue_one(n=120):
    homes = {w: home(w, "enq") for w in BUILDS}
    for w, h in homes.items():
        for _ in range(5):
            subprocess.run([BUILDS[w], "--home", h, "enqueue", "--command", "true"], check=True, stdout=DEVNULL)
    kinds = ["old", "new", "floor", "old-version", "new-version"]
    samples = {k: [] for k in kinds}
    for i in range(n):
        for w in kinds[i % 5:] + kinds[:i % 5]:
            if w == "floor":
                cmd = ["/bin/true"]
            elif w.endswith("-version"):
                cmd = [BUILDS[w[:3]], "--version"]
            else:
                cmd = [BUILDS[w], "--home", homes[w], "enqueue", "--command", "true"]
            samples[w].append(timed(cmd))
    header(f"A1. SQLite, one `enqueue --command true` (process start included), {n} runs each, interleaved")
    row("median wall", med(samples["old"]), med(samples["new"]), lambda x: fmt_ms(ms(x)))
    row("p90 wall", pct(samples["old"], 90), pct(samples["new"], 90), lambda x: fmt_ms(ms(x)))
    row("`queuectl --version`, median wall (the binary's start alone)", med(samples["old-version"]),
        med(samples["new-version"]), lambda x: fmt_ms(ms(x)))
    row("enqueue minus `--version`, medians", med(samples["old"]) - med(samples["old-version"]),
        med(samples["new"]) - med(samples["new-version"]), lambda x: fmt_ms(ms(x)))
    emit(f"\nFloor (`/bin/true` from the same harness, interleaved): median {fmt_ms(ms(med(samples['floor'])))}. "
         f"Binaries: `{REV}` {os.path.getsize(OLD_Q) / 1e6:.0f} MB, now {os.path.getsize(Q) / 1e6:.0f} MB "
         f"(with debug info). Load at end: {load()}.")
    log(f"ab enqueue one: old {ms(med(samples['old'])):.2f} new {ms(med(samples['new'])):.2f} ms")


def bench_ab_enqueue_file(n=100_000, runs=3):
    path = os.path.join(WORK, "ab-100k.ndjson")
    write_ndjson(path, "b", n)
    walls = {"old": [], "new": []}
    for r in range(runs):
        for w in (["old", "new"] if r % 2 == 0 else ["new", "old"]):
            h = home(w, "file")
            walls[w].append(timed([BUILDS[w], "--home", h, "enqueue", "--file", path]))
            shutil.rmtree(h)
    header(f"A2. SQLite, `enqueue --file` of {n:,} jobs into a fresh queue, {runs} runs each, alternated")
    row("median wall", med(walls["old"]), med(walls["new"]), lambda x: f"{x/1e9:.2f} s")
    emit(f"\nRuns: `{REV}` {', '.join(f'{t/1e9:.2f}' for t in walls['old'])} s; now "
         f"{', '.join(f'{t/1e9:.2f}' for t in walls['new'])} s. Load at end: {load()}.")


def bench_ab_throughput(jobs=2000, rounds=5):
    ndjson = os.path.join(WORK, "ab-true.ndjson")
    write_ndjson(ndjson, "t", jobs)
    tv = os.path.join(WORK, "ab-time-v.txt")
    walls = {"old": [], "new": [], "xargs": []}
    for r in range(rounds):
        homes = {w: home(w, "tp") for w in BUILDS}
        for w, h in homes.items():
            subprocess.run([BUILDS[w], "--home", h, "enqueue", "--file", ndjson], check=True, stdout=DEVNULL)
        order = ["old", "new", "xargs"]
        for w in order[r % 3:] + order[:r % 3]:
            cmd = ["sh", "-c", f"seq {jobs} | xargs -P 2 -I{{}} sh -c true"] if w == "xargs" else \
                [BUILDS[w], "--home", homes[w], "worker", "start", "--count", "2", "--until-empty", "--quiet",
                 "--no-spool"]
            walls[w].append(time_v(cmd, tv)[0])
        for h in homes.values():
            shutil.rmtree(h)
        log(f"ab throughput round {r+1}: " + " ".join(f"{k} {v[-1]/1e9:.2f}s" for k, v in walls.items()))
    ratio = {w: med(walls["xargs"]) / med(walls[w]) for w in BUILDS}
    header(f"A3. SQLite, throughput: {jobs:,} `true` jobs, `worker start --count 2` ÷ `xargs -P 2`, {rounds} rounds, "
           "order rotated")
    row("throughput ÷ xargs (ratio of medians)", ratio["old"], ratio["new"], lambda x: f"{x:.2f}", higher_is_better=True)
    row("worker wall, median", med(walls["old"]), med(walls["new"]), lambda x: f"{x/1e9:.2f} s")
    emit(f"\nxargs median {med(walls['xargs'])/1e9:.2f} s. Load at end: {load()}.")


def bench_ab_pickup(samples=100):
    homes = {w: home(w, "pickup") for w in BUILDS}
    logs = {w: open(os.path.join(WORK, f"ab-pickup-{w}.log"), "w") for w in BUILDS}
    workers = {w: subprocess.Popen([BUILDS[w], "--home", homes[w], "worker", "start", "--count", "1", "--quiet",
                                    "--no-spool"], stdout=logs[w], stderr=subprocess.STDOUT) for w in BUILDS}
    lat = {"old": [], "new": []}
    try:
        time.sleep(1.0)
        cmd = "date +%s%N > $QUEUECTL_JOB_ID.t"
        rnd = random.Random(5)
        for i in range(samples * 2):
            time.sleep(rnd.uniform(0.01, 0.03))
            w = "old" if (i // 2 + i) % 2 == 0 else "new"
            job = f"lat{i}"
            t0 = time.time_ns()
            subprocess.run([BUILDS[w], "--home", homes[w], "enqueue", "--id", job, "--command", cmd], check=True,
                           stdout=DEVNULL)
            lat[w].append(read_stamp(os.path.join(homes[w], f"{job}.t")) - t0)
    finally:
        for p in workers.values():
            stop(p)
        for f in logs.values():
            f.close()
    header(f"A4. SQLite, pickup latency: idle `worker start --count 1`, `enqueue` from another process, {samples} "
           "samples each, alternated")
    row("median", med(lat["old"]), med(lat["new"]), lambda x: fmt_ms(ms(x)))
    row("p99", pct(lat["old"], 99), pct(lat["new"], 99), lambda x: fmt_ms(ms(x)))
    emit(f"\nLoad at end: {load()}.")


def bench_ab_overhead(pairs=5, jobs=30000):
    """Each run its own process under /usr/bin/time: jobs/s of the drain, and the process's CPU
    per job (init + enqueue + drain), which load changes much less than wall time."""
    rates = {"old": [], "new": []}
    cpus = {"old": [], "new": []}
    binaries = {"old": OLD_BENCH, "new": NEW_BENCH}
    tv = os.path.join(WORK, "ab-overhead-time.txt")
    for r in range(pairs):
        for w in (["old", "new"] if r % 2 == 0 else ["new", "old"]):
            out = subprocess.run(["/usr/bin/time", "-f", "%U %S", "-o", tv, binaries[w], "--rounds", "1", "--finished",
                                  "0", "--jobs", str(jobs), "--dir", WORK], check=True, capture_output=True,
                                 text=True).stdout
            for line in out.splitlines():
                if line.startswith("RESULT queue_overhead_empty_jobs_per_s"):
                    rates[w].append(float(line.split()[2]))
            with open(tv) as f:
                user, system = map(float, f.read().split()[-2:])
            cpus[w].append((user + system) / jobs * 1e6)
        log(f"ab overhead pair {r+1}: old {rates['old'][-1]:.0f} new {rates['new'][-1]:.0f} jobs/s")
    header(f"A5. SQLite, queue overhead: no-op executor through the library, 2 threads, {jobs:,} jobs on an empty "
           f"table, {pairs} pairs of runs, alternated (each run its own process: `queue_overhead --rounds 1 "
           f"--finished 0 --jobs {jobs}`, each commit's own bench file)")
    row("jobs/s, median", med(rates["old"]), med(rates["new"]), lambda x: f"{x:,.0f}", higher_is_better=True)
    row("CPU per job of the whole process (init, enqueue, drain), median", med(cpus["old"]), med(cpus["new"]),
        lambda x: f"{x:.0f} µs")
    emit(f"\nRuns: `{REV}` {', '.join(f'{x:,.0f}' for x in rates['old'])}; now "
         f"{', '.join(f'{x:,.0f}' for x in rates['new'])} jobs/s. CPU per job: `{REV}` "
         f"{', '.join(f'{x:.0f}' for x in cpus['old'])}; now {', '.join(f'{x:.0f}' for x in cpus['new'])} µs. "
         f"Load at end: {load()}.")


def main():
    for name in sys.argv[4:]:
        log(f"[{time.strftime('%H:%M:%S')}] {name} (load {load()})")
        globals()[f"bench_{name}"]()


if __name__ == "__main__":
    main()
