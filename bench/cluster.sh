#!/usr/bin/env bash
# pairchat as several processes on one MariaDB and one Redis, against one process: each round
# runs every variant below on freshly started servers (a fresh database per run), rotating
# the order each round so that a host getting busier or quieter affects every variant alike.
# Writes one JSON per run and prints per part each variant's median over the rounds and the
# ratios of the multi-process variants to the one-process one.
#
#   bench/cluster.sh OUT_DIR [ROUNDS]
#   bench/cluster.sh /tmp/cluster 3
#   PAIRCHAT_CLUSTER_PARTS=relay bench/cluster.sh /tmp/cluster 5
#   bench/cluster.sh /tmp/cluster 0          # re-print the tables
#
# Parts (PAIRCHAT_CLUSTER_PARTS, default "relay pairing connections"):
# Every relay and connections variant makes its pairs in the same fixed order (side A waits,
# side B joins it; see bench/README.md), the one-server ones too (--same-process), so the
# variants differ only in where the sides sit.
#   relay        1,000 connections (500 pairs) at 4,000 msgs/s: same-1 (one server), same-2
#                (two servers, both sides of each pair on one: --same-process) and cross-2
#                (two servers, every pair split over both: --split-pairs). CPU per delivered
#                message of the servers plus redis-server, p99; ratios cross-2 / same-*.
#   pairing      flat out (--rate 0 --concurrency 64): one server against three on one
#                database. Arrivals go round-robin over the three; who meets whom is random.
#   connections  three servers holding 59,700 idle paired connections (19,900 each, every pair
#                split over two servers), beside one server holding 19,900: RSS per connection
#                per server, drops, and Redis's `INFO memory` used_memory (before, peak during
#                the run) beside. The generator holds them in 4 child processes (<20,000 fds
#                each), each on its own 8 source addresses.
#
# Uses target/release/{pairchat,pairchat-bench} built with `--features mysql` (or PAIRCHAT_BIN,
# PAIRCHAT_BENCH_BIN), MariaDB at PAIRCHAT_BENCH_MYSQL (default mysql://root@127.0.0.1:3306;
# databases pairchat_bench_N are dropped and created for each run) and Redis at
# PAIRCHAT_REDIS_URL (default redis://127.0.0.1:6379/). redis-server's and mariadbd's CPU are
# read from /proc (pidof) and reported beside the servers'.
#
# Servers whose `serve --help` offers --redis-url get it, and then the servers of one run share
# one database (pairchat_bench_1); PAIRCHAT_CLUSTER_FORCE=1 gives the servers after the first
# --force (which a cluster does not need). Older servers have no way to
# reach each other's visitors: two of them on one database strand the pairs that span them.
# So without --redis-url each server gets a database of its own (pairchat_bench_1, _2, ...):
# independent servers, no pair spans two processes (the generator's reports say so: see
# `connections_by_partner`), and the multi-process figures are NOT a cluster's. Force one way
# or the other with PAIRCHAT_CLUSTER_DB=shared|own.
#
# Sizes, for a quick try: PAIRCHAT_CLUSTER_PAIRS (500), PAIRCHAT_CLUSTER_RATE (4000),
# PAIRCHAT_CLUSTER_SECS (10, relay step and pairing), PAIRCHAT_CLUSTER_CONNECTIONS (59700, for
# the three servers; the one server gets a third), PAIRCHAT_CLUSTER_HOLD (15 s),
# PAIRCHAT_CLUSTER_PROCS (4).
set -uo pipefail
cd "$(dirname "$0")/.."

usage="usage: bench/cluster.sh OUT_DIR [ROUNDS]"
out=${1:?$usage}
rounds=${2:-3}
server=${PAIRCHAT_BIN:-target/release/pairchat}
bench=${PAIRCHAT_BENCH_BIN:-target/release/pairchat-bench}
mysql=${PAIRCHAT_BENCH_MYSQL:-mysql://root@127.0.0.1:3306}
redis=${PAIRCHAT_REDIS_URL:-redis://127.0.0.1:6379/}
parts=${PAIRCHAT_CLUSTER_PARTS:-relay pairing connections}
pairs=${PAIRCHAT_CLUSTER_PAIRS:-500}
rate=${PAIRCHAT_CLUSTER_RATE:-4000}
secs=${PAIRCHAT_CLUSTER_SECS:-10}
conns=${PAIRCHAT_CLUSTER_CONNECTIONS:-59700}
hold=${PAIRCHAT_CLUSTER_HOLD:-15}
procs=${PAIRCHAT_CLUSTER_PROCS:-4}
mkdir -p "$out"
# shellcheck source=bench/lib.sh
. bench/lib.sh

# The servers of the current run: their pids and URLs.
pids=()
urls=()
stop_all() {
  local p
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  pids=()
  urls=()
}
# The Redis memory sampler of the current connections run.
sampler=
trap '[ -n "$sampler" ] && kill "$sampler" 2>/dev/null; stop_all; cleanup' EXIT

if [ "$rounds" -gt 0 ]; then
  help=$("$server" serve --help 2>/dev/null) || { echo "cannot run $server"; exit 1; }
  has_redis=0
  grep -q -- '--redis-url' <<<"$help" && has_redis=1
  db_mode=${PAIRCHAT_CLUSTER_DB:-$([ "$has_redis" = 1 ] && echo shared || echo own)}
  force=${PAIRCHAT_CLUSTER_FORCE:-0}
  # The redis-server behind $redis (a host may run several), else the first one found.
  redis_pid=$(redis-cli -u "$redis" info server 2>/dev/null | tr -d '\r' |
    awk -F: '$1 == "process_id" {print $2}')
  [ -n "$redis_pid" ] || redis_pid=$(pidof redis-server | awk '{print $1}')
  mariadb_pid=$(pidof mariadbd | awk '{print $1}')
  extra=()
  [ -n "$redis_pid" ] && extra+=(--extra-pid "redis=$redis_pid")
  [ -n "$mariadb_pid" ] && extra+=(--extra-pid "mariadb=$mariadb_pid")
  command -v redis-cli >/dev/null || echo "no redis-cli: Redis's used_memory is not recorded"
  if [ "$has_redis" = 1 ]; then
    echo "servers get --redis-url $redis; databases: $db_mode"
  else
    echo "NOTE: $server has no --redis-url: servers are independent (databases: $db_mode);"
    echo "      no pair spans two processes and the multi-process figures are not a cluster's"
  fi
  mapfile -t limits < <(bench_flags "$server")
fi

# Starts $1 servers, each on a fresh database (one shared, or one each), one after the other
# (the first creates the key file the others read).
start_servers() {
  local n=$1 k port url db flags
  for k in $(seq 1 "$n"); do
    db=pairchat_bench_1
    [ "$db_mode" = own ] && db=pairchat_bench_$k
    if [ "$k" = 1 ] || [ "$db_mode" = own ]; then
      mariadb --host=127.0.0.1 --user=root \
        -e "DROP DATABASE IF EXISTS $db; CREATE DATABASE $db" || return 1
    fi
    flags=("${limits[@]}")
    [ "$has_redis" = 1 ] && flags+=(--redis-url "$redis")
    [ "$k" -gt 1 ] && [ "$db_mode" = shared ] && [ "$force" = 1 ] && flags+=(--force)
    for _ in 1 2 3 4 5; do
      port=$(free_port) || return 1
      [[ " ${urls[*]} " == *":$port/"* ]] || break
    done
    url="ws://127.0.0.1:$port/ws"
    "$server" serve --bind "127.0.0.1:$port" --database-url "$mysql/$db" "${flags[@]}" \
      >"$tmp/server-$k.log" 2>&1 &
    pids+=($!)
    urls+=("$url")
    if ! wait_listening "$port" "$!" 150; then
      echo "server $k did not start"; cat "$tmp/server-$k.log"; return 1
    fi
  done
}

joined() { local IFS=,; echo "$*"; }

# Runs part $1's variant $2 for round $3 on freshly started servers.
run_variant() {
  local part=$1 v=$2 r=$3 n args=()
  sampler=
  case $part/$v in
    relay/same-1) n=1; args=(--same-process) ;;
    relay/same-2) n=2; args=(--same-process) ;;
    relay/cross-2) n=2; args=(--split-pairs) ;;
    pairing/one) n=1 ;;
    pairing/three) n=3 ;;
    connections/one) n=1; args=(--same-process) ;;
    connections/three) n=3; args=(--split-pairs) ;;
  esac
  start_servers "$n" || { stop_all; return 1; }
  local common=(--url "$(joined "${urls[@]}")" --server-pid "$(joined "${pids[@]}")"
    "${extra[@]}" --json --no-progress --note "$v")
  local file="$out/$part-$v-$r.json"
  echo "round $r: $part $v (${#pids[@]} server(s))"
  case $part in
    relay)
      "$bench" relay "${common[@]}" "${args[@]}" --pairs "$pairs" --rate "$rate" \
        --duration "$secs" >"$file" 2>"$tmp/bench.err"
      ;;
    pairing)
      "$bench" pairing "${common[@]}" --rate 0 --concurrency 64 --duration "$secs" \
        >"$file" 2>"$tmp/bench.err"
      ;;
    connections)
      local c=$conns p=$procs
      [ "$n" = 1 ] && c=$((conns / 3)) && p=$(((procs + 2) / 3))
      # Redis's own count of its memory, before and (its peak) while the connections are held.
      if command -v redis-cli >/dev/null; then
        redis_memory >"$file.redis"
        (while sleep 1; do redis_memory; done) >>"$file.redis" &
        sampler=$!
      fi
      "$bench" connections "${common[@]}" "${args[@]}" -n "$c" --procs "$p" --sources 8 \
        --duration "$hold" >"$file" 2>"$tmp/bench.err"
      ;;
  esac
  local rc=$?
  [ -n "$sampler" ] && kill "$sampler" 2>/dev/null && wait "$sampler" 2>/dev/null
  sampler=
  [ "$rc" = 0 ] || { echo "  $part $v exited $rc"; tail -n 5 "$tmp/bench.err"; }
  stop_all
  # Keep the servers' logs (warnings, errors) and the generator's stderr beside the JSON.
  for k in $(seq 1 "$n"); do
    [ -f "$tmp/server-$k.log" ] && mv "$tmp/server-$k.log" "$out/$part-$v-$r.server-$k.log"
  done
  cp "$tmp/bench.err" "$out/$part-$v-$r.bench.err" 2>/dev/null
  sleep 1
}

# One line: the time and Redis's used_memory (bytes).
redis_memory() {
  local m
  m=$(redis-cli -u "$redis" info memory 2>/dev/null | tr -d '\r' |
    awk -F: '$1 == "used_memory" {print $2}')
  [ -n "$m" ] && echo "$(date +%s) $m"
}

for r in $(seq 1 "$rounds"); do
  for part in $parts; do
    case $part in
      relay) variants=(same-1 same-2 cross-2) ;;
      pairing) variants=(one three) ;;
      connections) variants=(one three) ;;
      *) echo "unknown part $part"; exit 1 ;;
    esac
    for v in $(rotation "$r" "${variants[@]}"); do
      run_variant "$part" "$v" "$r" || exit 1
    done
  done
done

command -v python3 >/dev/null || { echo "results in $out (python3 prints the tables)"; exit 0; }
python3 - "$out" <<'PY'
import glob, json, os, re, statistics, sys
out = sys.argv[1]
runs = {}  # (part, variant) -> round -> result
for f in sorted(glob.glob(os.path.join(out, "*.json"))):
    m = re.match(r"(relay|pairing|connections)-(.+)-(\d+)\.json$", os.path.basename(f))
    try:
        d = json.load(open(f))
    except ValueError:
        continue
    if m:
        runs.setdefault((m[1], m[2]), {})[int(m[3])] = d
med = lambda xs: statistics.median(xs) if xs else float("nan")
def vals(part, v, f):
    xs = []
    for d in runs.get((part, v), {}).values():
        try:
            x = f(d)
        except (KeyError, IndexError, TypeError):
            x = None
        if x is not None:
            xs.append(x)
    return xs
def paired_ratio(part, a, b, f):
    """Median over rounds of f(a) / f(b), each round's two runs minutes apart at most."""
    ra, rb = runs.get((part, a), {}), runs.get((part, b), {})
    xs = []
    for r in ra.keys() & rb.keys():
        try:
            x, y = f(ra[r]), f(rb[r])
        except (KeyError, IndexError, TypeError):
            continue
        if x is not None and y:
            xs.append(x / y)
    return (f"{med(xs):.2f} ({min(xs):.2f}-{max(xs):.2f}, {len(xs)} rounds)" if xs else "-")
def extra(d, name, key):
    return (d.get("extra") or {}).get(name, {}).get(key, 0) or 0
def fmt(x, p=1):
    return "-" if x != x else f"{x:.{p}f}"

# relay: CPU of the servers plus redis-server per delivered message.
def step(d):
    return d["steps"][0]
def relay_cpu(d):
    s = step(d)
    return s["cpu_us_per_msg"] + extra(s, "redis", "cpu_us_per_msg")
if any(p == "relay" for p, _ in runs):
    print("relay (one step; medians over rounds)")
    print("variant   runs  delivered/s  servers us/msg (each)       redis us/msg  servers+redis  p50 ms  p99 ms  cross/same/none  steal %")
    for v in ["same-1", "same-2", "cross-2"]:
        if (("relay", v)) not in runs:
            continue
        each = vals("relay", v, lambda d: step(d).get("server_cpu_us_per_msg_each"))
        each_med = [med([e[i] for e in each if e and e[i] is not None]) for i in range(len(each[0]))] if each and each[0] else []
        placed = vals("relay", v, lambda d: d.get("connections_by_partner"))
        where = "-" if not placed else "/".join(str(placed[-1][k]) for k in ["other_server", "same_server", "none_heard"])
        print(f"{v:<9} {len(runs[('relay', v)]):>4}  {med(vals('relay', v, lambda d: step(d)['delivered_per_sec'])):>11.0f}"
              f"  {fmt(med(vals('relay', v, lambda d: step(d)['cpu_us_per_msg']))):>6} {'(' + ', '.join(fmt(x) for x in each_med) + ')':<19}"
              f"  {fmt(med(vals('relay', v, lambda d: extra(step(d), 'redis', 'cpu_us_per_msg')))):>12}"
              f"  {fmt(med(vals('relay', v, relay_cpu))):>13}"
              f"  {fmt(med(vals('relay', v, lambda d: step(d)['latency']['p50_ms'])), 2):>6}"
              f"  {fmt(med(vals('relay', v, lambda d: step(d)['latency']['p99_ms'])), 2):>6}"
              f"  {where:>15}  {fmt(med(vals('relay', v, lambda d: step(d)['machine']['steal_pct'])), 2):>7}")
    for base in ["same-1", "same-2"]:
        print(f"  cross-2 / {base}: servers+redis CPU per message {paired_ratio('relay', 'cross-2', base, relay_cpu)};"
              f" p99 {paired_ratio('relay', 'cross-2', base, lambda d: step(d)['latency']['p99_ms'])}")
    print()

if any(p == "pairing" for p, _ in runs):
    print("pairing flat out, 64 loops (medians over rounds)")
    print("variant  runs  pairings/s (each)                 median  ttp p50 ms  ttp p99 ms  servers us/pairing  +mariadb+redis  gave up")
    for v in ["one", "three"]:
        if ("pairing", v) not in runs:
            continue
        rates = vals("pairing", v, lambda d: d["pairings_per_sec"])
        total = lambda d: d["server_cpu_us_per_pairing"] + extra(d, "mariadb", "cpu_us_per_pairing") + extra(d, "redis", "cpu_us_per_pairing")
        print(f"{v:<8} {len(rates):>4}  {', '.join(f'{x:.0f}' for x in rates):<32} {med(rates):>7.0f}"
              f"  {fmt(med(vals('pairing', v, lambda d: d['time_to_pair']['p50_ms'])), 2):>10}"
              f"  {fmt(med(vals('pairing', v, lambda d: d['time_to_pair']['p99_ms'])), 2):>10}"
              f"  {fmt(med(vals('pairing', v, lambda d: d['server_cpu_us_per_pairing']))):>18}"
              f"  {fmt(med(vals('pairing', v, total))):>14}"
              f"  {med(vals('pairing', v, lambda d: d['gave_up_waiting'])):>7.0f}")
    print(f"  three / one: pairings/s {paired_ratio('pairing', 'three', 'one', lambda d: d['pairings_per_sec'])}")
    print()

def redis_mem(part, v, r):
    f = os.path.join(out, f"{part}-{v}-{r}.json.redis")
    try:
        xs = [int(l.split()[1]) for l in open(f) if len(l.split()) == 2]
    except (OSError, ValueError):
        return None
    return (xs[0], max(xs)) if xs else None
if any(p == "connections" for p, _ in runs):
    print("connections held idle (medians over rounds)")
    print("variant  runs  opened (each)             unpaired  dropped  open+pair s  ordered s  KiB/conn  KiB/conn each        redis used_memory MiB before/peak  bytes/conn")
    for v in ["one", "three"]:
        rs = runs.get(("connections", v))
        if not rs:
            continue
        each = vals("connections", v, lambda d: d.get("rss_kib_per_connection_each") or [d["rss_kib_per_connection"]])
        each_med = [med([e[i] for e in each if e[i] is not None]) for i in range(len(each[0]))] if each else []
        mem = [(redis_mem("connections", v, r), d["opened"]) for r, d in rs.items()]
        mem = [(m[0], m[1], o) for m, o in mem if m]
        last = rs[max(rs)]
        opened_each = last.get("opened_each") or [last["opened"]]
        print(f"{v:<8} {len(rs):>4}  {last['opened']:>6} {'(' + ', '.join(map(str, opened_each)) + ')':<19}"
              f"  {med(vals('connections', v, lambda d: d['unpaired'])):>7.0f}"
              f"  {med(vals('connections', v, lambda d: d['dropped_while_held'])):>7.0f}"
              f"  {fmt(med(vals('connections', v, lambda d: d['open_and_pair_secs']))):>10}"
              f"  {fmt(med(vals('connections', v, lambda d: d.get('ordered_pairing_secs')))):>9}"
              f"  {fmt(med(vals('connections', v, lambda d: d['rss_kib_per_connection'])), 2):>8}"
              f"  {', '.join(fmt(x, 2) for x in each_med):<19}"
              f"  {fmt(med([a / 2**20 for a, _, _ in mem])):>14} / {fmt(med([b / 2**20 for _, b, _ in mem])):<14}"
              f"  {fmt(med([(b - a) / o for a, b, o in mem if o])):>10}")
    print(f"  three / one: KiB per connection {paired_ratio('connections', 'three', 'one', lambda d: d['rss_kib_per_connection'])}")
PY
