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
# and PAIRCHAT_REF_BIN. pairchat runs on a fresh SQLite file with its rate limit and per-address
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
port=41040
tmp=$(mktemp -d)
pid=
cleanup() {
  if [ -n "$pid" ]; then kill -TERM "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

start() {
  case $1 in
    pairchat)
      rm -f "$tmp"/db*
      "$server" serve --bind "127.0.0.1:$port" --database-url "sqlite://$tmp/db" \
        --rate-per-sec 1000000 --rate-burst 1000000 --max-conns-per-ip 1000000 \
        >"$tmp/server.log" 2>&1 &
      ;;
    ref-actix) "$ref" --kind actix --bind "127.0.0.1:$port" >"$tmp/server.log" 2>&1 & ;;
    ref-tungstenite) "$ref" --kind tungstenite --bind "127.0.0.1:$port" >"$tmp/server.log" 2>&1 & ;;
  esac
  pid=$!
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "server $1 did not start"; cat "$tmp/server.log"; return 1
}

servers=(pairchat ref-actix ref-tungstenite)
for r in $(seq 1 "$rounds"); do
  for k in 0 1 2; do
    # Rotate the order each round, so no server always runs first.
    s=${servers[$(((k + r) % 3))]}
    start "$s" || exit 1
    echo "round $r: $s"
    "$bench" relay --url "ws://127.0.0.1:$port/ws" --server-pid "$pid" --pairs "$pairs" \
      --rate "$rates" --duration 10 --json --no-progress --note "$s" \
      >"$out/$s-$r.json" 2>/dev/null || echo "  relay against $s failed"
    kill -TERM "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; pid=
    sleep 1
  done
done

command -v python3 >/dev/null || { echo "results in $out (python3 prints the table)"; exit 0; }
python3 - "$out" <<'PY'
import glob, json, os, statistics, sys
out = sys.argv[1]
runs = {}
for f in sorted(glob.glob(os.path.join(out, "*.json"))):
    d = json.load(open(f))
    runs.setdefault(d["note"], []).append(d)
med = lambda xs: statistics.median(xs) if xs else float("nan")
def col(server, i, f):
    return [f(d["steps"][i]) for d in runs.get(server, []) if len(d["steps"]) > i and f(d["steps"][i]) is not None]
names = ["pairchat", "ref-actix", "ref-tungstenite"]
steps = [s["target"] for s in runs["pairchat"][0]["steps"]]
print(f"median of {len(runs['pairchat'])} rounds; steal = machine steal time during the step")
print("step       server            delivered/s  CPU us/msg  p50 ms  p99 ms  p99.9 ms  steal %")
for i, step in enumerate(steps):
    for n in names:
        print(f"{step:<10} {n:<17} {med(col(n,i,lambda s:s['delivered_per_sec'])):>11.0f}"
              f" {med(col(n,i,lambda s:s['cpu_us_per_msg'])):>11.1f}"
              f" {med(col(n,i,lambda s:s['latency'].get('p50_ms'))):>7.2f}"
              f" {med(col(n,i,lambda s:s['latency'].get('p99_ms'))):>7.2f}"
              f" {med(col(n,i,lambda s:s['latency'].get('p999_ms'))):>9.2f}"
              f" {med(col(n,i,lambda s:s['machine']['steal_pct'])):>8.2f}")
    p = med(col("pairchat", i, lambda s: s["cpu_us_per_msg"]))
    for n in names[1:]:
        print(f"{'':<10} pairchat CPU / {n}: {p / med(col(n,i,lambda s:s['cpu_us_per_msg'])):.2f}")
PY
