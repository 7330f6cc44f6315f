#!/usr/bin/env bash
# Relay: pairchat against the two reference relays (pairchat-ref-relay), interleaved, each run
# on a freshly started server, so a host that gets busier or quieter during the runs affects
# all three alike. Writes one JSON per run and prints a table: per step, each server's median
# over the rounds, and pairchat's ratio to each reference.
#
#   bench/compare.sh OUT_DIR [ROUNDS] [RATES] [PAIRS]
#   bench/compare.sh /tmp/cmp 5 4000           # five rounds of one 4,000/s step
#   bench/compare.sh /tmp/cmp 3 1000,4000,8000,16000,0
#
# Uses target/release/{pairchat,pairchat-bench,pairchat-ref-relay} (build them first with
# `cargo build --release -p pairchat -p pairchat-bench`), or PAIRCHAT_BIN, PAIRCHAT_BENCH_BIN
# and PAIRCHAT_REF_BIN. With PAIRCHAT_BASE_BIN (another build of pairchat, e.g. before a
# change) that build runs too, as `pairchat-base`, for an A/B comparison. pairchat runs on a fresh SQLite file with its rate limit and per-address
# cap raised (relay never touches the database).
set -uo pipefail
cd "$(dirname "$0")/.."

out=${1:?usage: bench/compare.sh OUT_DIR [ROUNDS] [RATES] [PAIRS]}
rounds=${2:-5}
rates=${3:-4000}
pairs=${4:-500}
server=${PAIRCHAT_BIN:-target/release/pairchat}
bench=${PAIRCHAT_BENCH_BIN:-target/release/pairchat-bench}
ref=${PAIRCHAT_REF_BIN:-target/release/pairchat-ref-relay}
mkdir -p "$out"
# shellcheck source=bench/lib.sh
. bench/lib.sh
port=$(free_port) || { echo "no free port"; exit 1; }

start() {
  case $1 in
    pairchat | pairchat-base)
      rm -f "$tmp"/db*
      bin=$server
      [ "$1" = pairchat-base ] && bin=$PAIRCHAT_BASE_BIN
      start_pairchat "$bin" "sqlite://$tmp/db" "$port" 50
      return
      ;;
    ref-actix) "$ref" --kind actix --bind "127.0.0.1:$port" >"$tmp/server.log" 2>&1 & ;;
    ref-tungstenite) "$ref" --kind tungstenite --bind "127.0.0.1:$port" >"$tmp/server.log" 2>&1 & ;;
  esac
  pid=$!
  wait_listening "$port" "$pid" 50 && return 0
  echo "server $1 did not start"; cat "$tmp/server.log"; return 1
}

servers=(pairchat ref-actix ref-tungstenite)
[ -n "${PAIRCHAT_BASE_BIN:-}" ] && servers+=(pairchat-base)
for r in $(seq 1 "$rounds"); do
  # Rotated each round, so no server always runs first.
  for s in $(rotation "$r" "${servers[@]}"); do
    start "$s" || exit 1
    echo "round $r: $s"
    "$bench" relay --url "ws://127.0.0.1:$port/ws" --server-pid "$pid" --pairs "$pairs" \
      --rate "$rates" --duration 10 --json --no-progress --note "$s" \
      >"$out/$s-$r.json" 2>/dev/null || echo "  relay against $s failed"
    stop_server
    sleep 1
  done
done

command -v python3 >/dev/null || { echo "results in $out (python3 prints the table)"; exit 0; }
python3 - "$out" <<'PY'
import glob, json, os, re, statistics, sys
out = sys.argv[1]
runs = {}  # server -> round -> result
for f in sorted(glob.glob(os.path.join(out, "*.json"))):
    d = json.load(open(f))
    rnd = int(re.search(r"-(\d+)\.json$", f).group(1))
    runs.setdefault(d["note"], {})[rnd] = d
names = [n for n in ["pairchat", "ref-actix", "ref-tungstenite", "pairchat-base"] if n in runs]
med = lambda xs: statistics.median(xs) if xs else float("nan")
def step(server, rnd, i):
    d = runs.get(server, {}).get(rnd)
    return d["steps"][i] if d and len(d["steps"]) > i else None
def vals(server, i, f, quiet=False):
    xs = []
    for rnd in runs.get(server, {}):
        s = step(server, rnd, i)
        if s and f(s) is not None and (not quiet or s["machine"]["steal_pct"] < QUIET):
            xs.append(f(s))
    return xs
QUIET = 3.0
cpu = lambda s: s["cpu_us_per_msg"]
first = next(iter(runs["pairchat"].values()))
print(f"{len(runs['pairchat'])} rounds; medians; steal = the machine's steal time during the step;")
print(f"'quiet' = only steps with steal under {QUIET:.0f} % (n = how many)")
print("step       server            delivered/s  CPU us/msg  ctxsw/msg  p50 ms  p99 ms  p99.9 ms  steal %   quiet: n  CPU   p99")
for i, target in enumerate(s["target"] for s in first["steps"]):
    for n in names:
        q = vals(n, i, cpu, True)
        print(f"{target:<10} {n:<17} {med(vals(n,i,lambda s:s['delivered_per_sec'])):>11.0f}"
              f" {med(vals(n,i,cpu)):>11.1f}"
              f" {med(vals(n,i,lambda s:s.get('ctx_switches_per_msg'))):>10.3f}"
              f" {med(vals(n,i,lambda s:s['latency'].get('p50_ms'))):>7.2f}"
              f" {med(vals(n,i,lambda s:s['latency'].get('p99_ms'))):>7.2f}"
              f" {med(vals(n,i,lambda s:s['latency'].get('p999_ms'))):>9.2f}"
              f" {med(vals(n,i,lambda s:s['machine']['steal_pct'])):>8.2f}"
              f" {len(q):>9} {med(q):>5.1f} {med(vals(n,i,lambda s:s['latency'].get('p99_ms'),True)):>5.2f}")
    for n in names[1:]:
        # Runs of one round are minutes apart at most: their ratio cancels most host drift.
        paired = [cpu(step("pairchat", r, i)) / cpu(step(n, r, i))
                  for r in runs["pairchat"] if step("pairchat", r, i) and step(n, r, i)]
        if paired:
            print(f"{'':<10} pairchat CPU / {n}: median of per-round ratios {med(paired):.2f}"
                  f" (range {min(paired):.2f}-{max(paired):.2f})")
# The same steps grouped by the steal time they ran under: the tail follows the host.
print()
print("by steal time: step  server            steal %   steps  CPU us/msg  p99 ms (median, range)")
for i, target in enumerate(s["target"] for s in first["steps"]):
    for n in names:
        xs = [(st["machine"]["steal_pct"], cpu(st), st["latency"].get("p99_ms"))
              for st in (step(n, r, i) for r in runs[n]) if st]
        for lo, hi in [(0, 1), (1, 3), (3, 10), (10, 100)]:
            b = [x for x in xs if lo <= x[0] < hi]
            if b:
                p99s = [x[2] for x in b]
                print(f"{'':<15}{target:<7} {n:<17} {lo:>2}-{hi:<4} {len(b):>7} {med([x[1] for x in b]):>11.1f}"
                      f"  {med(p99s):.2f} ({min(p99s):.2f}-{max(p99s):.2f})")
PY
