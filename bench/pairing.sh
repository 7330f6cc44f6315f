#!/usr/bin/env bash
# Pairing on both backends, interleaved: each round runs the same pairing scenario against a
# freshly started server on SQLite and on MariaDB (a fresh file, a fresh database), and, with
# PAIRCHAT_BASE_BIN, against that other build on both too, rotating the order each round so
# that a host getting busier or quieter affects every variant alike. Writes one JSON per run
# and prints each variant's median over the rounds and its ratio to `sqlite`.
#
#   bench/pairing.sh OUT_DIR ROUNDS [pairchat-bench pairing flags...]
#   bench/pairing.sh /tmp/pair 3 --rate 0 --concurrency 64 --duration 10
#   PAIRCHAT_BASE_BIN=/tmp/base/pairchat bench/pairing.sh /tmp/pair 3 --rate 1000 --duration 10
#   bench/pairing.sh /tmp/pair 0        # re-print the table
#
# Uses target/release/{pairchat,pairchat-bench} built with `--features mysql` (or PAIRCHAT_BIN,
# PAIRCHAT_BENCH_BIN), MariaDB at PAIRCHAT_BENCH_MYSQL (default mysql://root@127.0.0.1:3306,
# database pairchat_bench, dropped and created for each run), and PAIRCHAT_BENCH_SCENARIO
# (default pairing; `soak` works too, with no extra flags).
set -uo pipefail
cd "$(dirname "$0")/.."

out=${1:?usage: bench/pairing.sh OUT_DIR ROUNDS [pairing flags...]}
rounds=${2:?usage: bench/pairing.sh OUT_DIR ROUNDS [pairing flags...]}
shift 2
server=${PAIRCHAT_BIN:-target/release/pairchat}
bench=${PAIRCHAT_BENCH_BIN:-target/release/pairchat-bench}
mysql=${PAIRCHAT_BENCH_MYSQL:-mysql://root@127.0.0.1:3306}
scenario=${PAIRCHAT_BENCH_SCENARIO:-pairing}
mkdir -p "$out"
# shellcheck source=bench/lib.sh
. bench/lib.sh
port=$(free_port) || { echo "no free port"; exit 1; }

start() {
  local bin=$server url
  case $1 in base-*) bin=$PAIRCHAT_BASE_BIN ;; esac
  case $1 in
    *sqlite)
      rm -f "$tmp"/db*
      url="sqlite://$tmp/db"
      ;;
    *mysql)
      mariadb --host=127.0.0.1 --user=root \
        -e 'DROP DATABASE IF EXISTS pairchat_bench; CREATE DATABASE pairchat_bench' || return 1
      url="$mysql/pairchat_bench"
      ;;
  esac
  start_pairchat "$bin" "$url" "$port" 100
}

variants=(sqlite mysql)
[ -n "${PAIRCHAT_BASE_BIN:-}" ] && variants+=(base-sqlite base-mysql)
for r in $(seq 1 "$rounds"); do
  for v in $(rotation "$r" "${variants[@]}"); do
    start "$v" || exit 1
    echo "round $r: $v"
    "$bench" "$scenario" --url "ws://127.0.0.1:$port/ws" --server-pid "$pid" "$@" \
      --json --no-progress --note "$v" >"$out/$v-$r.json" 2>/dev/null ||
      echo "  $scenario against $v exited non-zero (its checks failed, or it did not run)"
    stop_server
    sleep 1
  done
done

command -v python3 >/dev/null || { echo "results in $out (python3 prints the table)"; exit 0; }
python3 - "$out" <<'PY'
import glob, json, os, statistics, sys
runs = {}
for f in sorted(glob.glob(os.path.join(sys.argv[1], "*.json"))):
    try:
        d = json.load(open(f))
    except ValueError:
        continue
    runs.setdefault(d.get("note") or os.path.basename(f).rsplit("-", 1)[0], []).append(d)
med = lambda xs: statistics.median(xs) if xs else float("nan")
def figure(d, key):
    return d.get(key) if key in d else d.get("summary", {}).get(key)
ref = med([figure(d, "pairings_per_sec") for d in runs.get("sqlite", [])])
print("variant       runs  pairings/s (each)            median   vs sqlite  ttp p50 ms  ttp p99 ms  CPU us/pairing")
for v in ["sqlite", "mysql", "base-sqlite", "base-mysql"]:
    ds = runs.get(v)
    if not ds:
        continue
    rates = [figure(d, "pairings_per_sec") for d in ds]
    ttp = lambda k: med([d["time_to_pair"][k] for d in ds if "time_to_pair" in d])
    cpu = med([d["server_cpu_us_per_pairing"] for d in ds if "server_cpu_us_per_pairing" in d])
    print(f"{v:<13} {len(ds):>4}  {', '.join(f'{x:.0f}' for x in rates):<27} {med(rates):>7.0f}"
          f"   {med(rates) / ref:>7.2f}   {ttp('p50_ms'):>9.1f}   {ttp('p99_ms'):>9.1f}   {cpu:>12.0f}")
PY
