#!/usr/bin/env bash
# What-if measurements behind the analysis in BENCHMARKS.md: builds a *copy* of the current
# src/ with up to two one-line changes, each switched on by an environment variable so one binary
# runs every variant, and compares them interleaved in the same run:
#
#   QP_TEMPMEM=1   the store's connections also run `PRAGMA temp_store = MEMORY`
#                  (statement journals in memory instead of a temp file)
#   QP_LITLIMIT=1  the claim query's `LIMIT ?3` is written as a literal, so SQLite 3.50 does
#                  not expire and re-prepare the statement on every claim
#
#   bash bench/whatif.sh            # patch a copy of the working tree's src/
#   bash bench/whatif.sh cc5926e    # patch a copy of src/ as of that commit (git archive)
#
# The repository's src/ is never touched: the copy lives under mktemp -d, its build in
# target/bench-whatif (kept between runs to save the compile). If src/ has changed so that the
# patterns are gone (e.g. a fix landed), that variant is left out (bench/whatif_patch.py).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
WORK=$(mktemp -d "${TMPDIR:-/tmp}/queuectl-whatif.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
ROUNDS=${ROUNDS:-3}

REV=${1:-}
mkdir "$WORK/src-copy"
if [ -n "$REV" ]; then
    git archive "$REV" Cargo.toml Cargo.lock src | tar -x -C "$WORK/src-copy"
    cp -r bench "$WORK/src-copy/"
    if ! grep -q 'name = "queue_overhead"' "$WORK/src-copy/Cargo.toml"; then
        printf '\n[[bench]]\nname = "queue_overhead"\npath = "bench/queue_overhead.rs"\nharness = false\n' >>"$WORK/src-copy/Cargo.toml"
    fi
    echo "whatif: src/ as of $REV ($(git rev-parse --short "$REV"))" >&2
else
    cp -r Cargo.toml Cargo.lock src bench "$WORK/src-copy/"
    echo "whatif: src/ of the working tree" >&2
fi
APPLIED=$(python3 bench/whatif_patch.py "$WORK/src-copy/src/store/mod.rs")

echo "building the patched copy (target/bench-whatif) ..." >&2
export CARGO_TARGET_DIR="$ROOT/target/bench-whatif"
(cd "$WORK/src-copy" && cargo build --release --quiet --bin queuectl --bench queue_overhead >&2)
(cd "$WORK/src-copy" && cargo bench --quiet --bench queue_overhead --no-run >&2 2>/dev/null)
Q="$CARGO_TARGET_DIR/release/queuectl"
BENCH=$(find "$CARGO_TARGET_DIR/release/deps" -name 'queue_overhead-*' ! -name '*.d' -printf '%T@ %p\n' | sort -rn | head -1 | cut -d' ' -f2)

python3 - "$Q" "$BENCH" "$WORK" "$ROUNDS" "$APPLIED" <<'EOF'
import json, os, re, statistics, subprocess, sys, time
Q, BENCH, WORK, ROUNDS = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
APPLIED = sys.argv[5].split()
def load():
    return " ".join(open("/proc/loadavg").read().split()[:3])
variants = {"as is": {}, "temp_store=MEMORY": {"QP_TEMPMEM": "1"},
            "literal LIMIT": {"QP_LITLIMIT": "1"}, "both": {"QP_TEMPMEM": "1", "QP_LITLIMIT": "1"}}
# A switch that could not be patched in (src/ already changed) would only repeat "as is".
variants = {k: v for k, v in variants.items() if all(x in APPLIED for x in v)}
ndjson = os.path.join(WORK, "jobs.ndjson")
with open(ndjson, "w") as f:
    for i in range(100_000):
        f.write(json.dumps({"id": f"b{i:07d}", "command": "true"}) + "\n")
tp_file = os.path.join(WORK, "true-2000.ndjson")
with open(tp_file, "w") as f:
    for i in range(2000):
        f.write(json.dumps({"id": f"t{i}", "command": "true"}) + "\n")
enq = {k: [] for k in variants}
ovh = {k: [] for k in variants}
tp = {k: [] for k in variants}
xargs = []
print(f"load at start: {load()}", file=sys.stderr)
for r in range(ROUNDS):
    order = list(variants.items())
    if r % 2:
        order.reverse()
    for name, env in order:
        e = dict(os.environ, **env)
        home = os.path.join(WORK, f"h{r}-{len(enq[name])}-{abs(hash(name))}")
        os.makedirs(home)
        subprocess.run([Q, "--home", home, "init"], check=True, stdout=subprocess.DEVNULL, env=e)
        t0 = time.perf_counter()
        subprocess.run([Q, "--home", home, "enqueue", "--file", ndjson], check=True, stdout=subprocess.DEVNULL, env=e)
        enq[name].append(time.perf_counter() - t0)
        subprocess.run(["rm", "-rf", home], check=True)
        out = subprocess.run([BENCH, "--rounds", "1", "--finished", "0", "--jobs", "20000", "--dir", WORK],
                             check=True, capture_output=True, text=True, env=e).stdout
        ovh[name].append(float(re.search(r"RESULT queue_overhead_empty_jobs_per_s (\d+)", out).group(1)))
        home = os.path.join(WORK, f"tp{r}-{abs(hash(name))}")
        os.makedirs(home)
        subprocess.run([Q, "--home", home, "init"], check=True, stdout=subprocess.DEVNULL, env=e)
        subprocess.run([Q, "--home", home, "enqueue", "--file", tp_file], check=True, stdout=subprocess.DEVNULL, env=e)
        t0 = time.perf_counter()
        subprocess.run([Q, "--home", home, "worker", "start", "--count", "2", "--until-empty", "--quiet", "--no-spool"],
                       check=True, stdout=subprocess.DEVNULL, env=e)
        tp[name].append(time.perf_counter() - t0)
        subprocess.run(["rm", "-rf", home], check=True)
        print(f"round {r+1} {name}: enqueue --file {enq[name][-1]:.2f} s, overhead {ovh[name][-1]:.0f} jobs/s, "
              f"2000 true jobs {tp[name][-1]:.2f} s", file=sys.stderr)
    t0 = time.perf_counter()
    subprocess.run(["sh", "-c", "seq 2000 | xargs -P 2 -I{} sh -c true"], check=True)
    xargs.append(time.perf_counter() - t0)
    print(f"round {r+1} xargs: {xargs[-1]:.2f} s", file=sys.stderr)
print("\n| variant (patched copy of src/) | `enqueue --file` 100k, median | no-op queue overhead, 20k jobs, 2 threads, median | 2,000 `true` jobs, `--count 2`, median (throughput ÷ xargs -P 2) |")
print("|---|---|---|---|")
xm = statistics.median(xargs)
for name in variants:
    tm = statistics.median(tp[name])
    print(f"| {name} | {statistics.median(enq[name]):.2f} s | {statistics.median(ovh[name]):,.0f} jobs/s | {tm:.2f} s ({xm / tm:.2f}) |")
print(f"| `seq 2000 \\| xargs -P 2 -I{{}} sh -c true` | – | – | {xm:.2f} s (1.00) |")
print(f"\n{ROUNDS} interleaved rounds (order reversed every other round); load at start/end: see stderr, at end {load()}.")
print("Rounds (enqueue s / overhead jobs/s / 2,000 jobs s): " + "; ".join(
    f"{n}: " + ", ".join(f"{a:.2f}/{b:,.0f}/{c:.2f}" for a, b, c in zip(enq[n], ovh[n], tp[n])) for n in variants)
    + "; xargs: " + ", ".join(f"{x:.2f}" for x in xargs))
EOF
