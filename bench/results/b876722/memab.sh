#!/usr/bin/env bash
# memab.sh OUT ROUNDS HOLD N NAME=BIN... : bench/idle.sh's runs for several builds, rotated each round
set -uo pipefail
cd /work/wt/perf
out=$1; rounds=$2; hold=$3; n=$4; shift 4
names=(); bins=()
for a in "$@"; do names+=("${a%%=*}"); bins+=("${a#*=}"); done
mkdir -p "$out"
. bench/lib.sh
bench=${PAIRCHAT_BENCH_BIN:-/tmp/bins/bench}
for r in $(seq 1 "$rounds"); do
  for k in $(seq 0 $((${#names[@]} - 1))); do
    i=$(((k + r) % ${#names[@]}))
    s=${names[$i]}; bin=${bins[$i]}
    port=$(free_port) || exit 1
    rm -f "$tmp"/db*
    start_pairchat "$bin" "sqlite://$tmp/db" "$port" 50 || exit 1
    "$bench" connections --url "ws://127.0.0.1:$port/ws" --server-pid "$pid" -n "$n" \
      --duration "$hold" --json --no-progress --note "$s" >"$out/$s-$r.json" 2>/dev/null || echo "  failed $s"
    stop_server
    python3 -c "import json,sys;d=json.load(open('$out/$s-$r.json'));print('round $r $s', d['opened'], d['dropped_while_held'], d['rss_kib_per_connection'], round(100*d['server_cpu_secs_while_idle']/d['hold_secs'],2), d['machine_steal_pct'])"
    sleep 1
  done
done
