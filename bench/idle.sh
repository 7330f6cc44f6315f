#!/usr/bin/env bash
# Idle cost: N idle paired connections held on a fresh server, the server's CPU over the hold
# and its RSS per connection, for pairchat and (with PAIRCHAT_BASE_BIN) another build,
# alternating, each run on a fresh server. Writes one JSON per run and prints a table.
#
#   bench/idle.sh OUT_DIR [ROUNDS] [HOLD_SECS] [N]   (default 2 rounds, 60 s, 19,900; ROUNDS 0
#                                                    re-prints the table of OUT_DIR)
#
# Hold a whole number of ping periods (the bench opens every connection within a few seconds,
# so their pings come in waves): 60 s is 3 periods of 20 s and 6 of 10 s.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: bench/idle.sh OUT_DIR [ROUNDS] [HOLD_SECS] [N]}
rounds=${2:-2}
hold=${3:-60}
n=${4:-19900}
server=${PAIRCHAT_BIN:-target/release/pairchat}
bench=${PAIRCHAT_BENCH_BIN:-target/release/pairchat-bench}
mkdir -p "$out"
# shellcheck source=bench/lib.sh
. bench/lib.sh
servers=(pairchat)
[ -n "${PAIRCHAT_BASE_BIN:-}" ] && servers+=(pairchat-base)
for r in $(seq 1 "$rounds"); do
  for s in $(rotation "$r" "${servers[@]}"); do
    bin=$server
    [ "$s" = pairchat-base ] && bin=$PAIRCHAT_BASE_BIN
    port=$(free_port) || { echo "no free port"; exit 1; }
    rm -f "$tmp"/db*
    start_pairchat "$bin" "sqlite://$tmp/db" "$port" 50 || exit 1
    echo "round $r: $s"
    "$bench" connections --url "ws://127.0.0.1:$port/ws" --server-pid "$pid" -n "$n" \
      --duration "$hold" --json --no-progress --note "$s" >"$out/$s-$r.json" 2>/dev/null \
      || echo "  connections against $s failed"
    stop_server
    sleep 1
  done
done
command -v python3 >/dev/null || { echo "results in $out (python3 prints the table)"; exit 0; }
python3 - "$out" <<'PY'
import glob, json, os, re, statistics, sys
runs = {}
for f in sorted(glob.glob(os.path.join(sys.argv[1], "*.json"))):
    d = json.load(open(f))
    runs.setdefault(d["note"], {})[int(re.search(r"-(\d+)\.json$", f).group(1))] = d
pct = lambda d: 100 * d["server_cpu_secs_while_idle"] / d["hold_secs"]
print("server          round  opened  paired  dropped  idle CPU % of a core  KiB/conn  steal %")
for name, rs in runs.items():
    for r, d in sorted(rs.items()):
        print(f"{name:<15} {r:>5} {d['opened']:>7} {d['paired']:>7} {d['dropped_while_held']:>8}"
              f" {pct(d):>21.2f} {d['rss_kib_per_connection']:>9.2f} {d['machine_steal_pct']:>8.2f}")
if "pairchat-base" in runs:
    ratios = [pct(runs["pairchat"][r]) / pct(runs["pairchat-base"][r])
              for r in runs["pairchat"] if r in runs["pairchat-base"]]
    print(f"idle CPU pairchat / pairchat-base per round: {', '.join(f'{x:.2f}' for x in ratios)}"
          f" (median {statistics.median(ratios):.2f})")
PY
