#!/usr/bin/env bash
# Pairing with interests against plain pairing, side by side: each round runs the pairing
# scenario plain and with `--interests 3 --vocabulary 50` (every visitor 3 tags of 50), on
# SQLite and on MariaDB, each run on a freshly started server with a fresh database, the order
# rotated each round so that a host getting busier or quieter affects every variant alike.
# Writes one JSON per run and prints, per backend, each round's interests / plain ratio.
#
#   bench/interests.sh OUT_DIR ROUNDS [pairchat-bench pairing flags...]
#   bench/interests.sh /tmp/int 3 --rate 0 --concurrency 64 --duration 10
#   bench/interests.sh /tmp/int 0        # re-print the table
#
# Uses target/release/{pairchat,pairchat-bench} built with `--features mysql` (or PAIRCHAT_BIN,
# PAIRCHAT_BENCH_BIN) and MariaDB at PAIRCHAT_BENCH_MYSQL (default mysql://root@127.0.0.1:3306,
# database pairchat_bench, dropped and created for each run).
set -uo pipefail
cd "$(dirname "$0")/.."

out=${1:?usage: bench/interests.sh OUT_DIR ROUNDS [pairing flags...]}
rounds=${2:?usage: bench/interests.sh OUT_DIR ROUNDS [pairing flags...]}
shift 2
server=${PAIRCHAT_BIN:-target/release/pairchat}
bench=${PAIRCHAT_BENCH_BIN:-target/release/pairchat-bench}
mysql=${PAIRCHAT_BENCH_MYSQL:-mysql://root@127.0.0.1:3306}
mkdir -p "$out"
# shellcheck source=bench/lib.sh
. bench/lib.sh
port=$(free_port) || { echo "no free port"; exit 1; }

start() {
  local url
  case $1 in
    sqlite-*)
      rm -f "$tmp"/db*
      url="sqlite://$tmp/db"
      ;;
    mysql-*)
      mariadb --host=127.0.0.1 --user=root \
        -e 'DROP DATABASE IF EXISTS pairchat_bench; CREATE DATABASE pairchat_bench' || return 1
      url="$mysql/pairchat_bench"
      ;;
  esac
  start_pairchat "$server" "$url" "$port" 100
}

variants=(sqlite-plain sqlite-interests mysql-plain mysql-interests)
for r in $(seq 1 "$rounds"); do
  for v in $(rotation "$r" "${variants[@]}"); do
    extra=()
    case $v in *-interests) extra=(--interests 3 --vocabulary 50) ;; esac
    start "$v" || exit 1
    echo "round $r: $v"
    "$bench" pairing --url "ws://127.0.0.1:$port/ws" --server-pid "$pid" "$@" "${extra[@]}" \
      --json --no-progress --note "$v" >"$out/$v-$r.json" 2>/dev/null ||
      echo "  pairing against $v exited non-zero"
    stop_server
    sleep 1
  done
done

command -v python3 >/dev/null || { echo "results in $out (python3 prints the table)"; exit 0; }
python3 - "$out" <<'PY'
import glob, json, os, re, statistics, sys
runs = {}
for f in sorted(glob.glob(os.path.join(sys.argv[1], "*.json"))):
    m = re.match(r"(.*)-(\d+)\.json$", os.path.basename(f))
    try:
        d = json.load(open(f))
    except ValueError:
        continue
    runs[(m.group(1), int(m.group(2)))] = d
rounds = sorted({r for (_, r) in runs})
print("backend  round  plain pairings/s  interests pairings/s  ratio  on a common interest  ttp p50 ms (plain / interests)")
for b in ["sqlite", "mysql"]:
    ratios = []
    for r in rounds:
        p, i = runs.get((f"{b}-plain", r)), runs.get((f"{b}-interests", r))
        if not p or not i:
            continue
        ratio = i["pairings_per_sec"] / p["pairings_per_sec"]
        ratios.append(ratio)
        # Both sides of a pair count themselves told a common interest.
        share = i.get("paired_on_a_common_interest", 0) / max(1, 2 * i["pairings"])
        print(f"{b:<8} {r:>5}  {p['pairings_per_sec']:>16.0f}  {i['pairings_per_sec']:>20.0f}  {ratio:>5.2f}"
              f"  {share * 100:>18.0f} %  {p['time_to_pair']['p50_ms']:>6.1f} / {i['time_to_pair']['p50_ms']:.1f}")
    if ratios:
        print(f"{b:<8} median {statistics.median(ratios):.2f} (range {min(ratios):.2f}-{max(ratios):.2f})")
PY
