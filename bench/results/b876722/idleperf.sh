#!/usr/bin/env bash
# idlestat.sh BIN NAME OUT [extra serve flags...]: 19,900 idle paired connections on a fresh
# SQLite server; once all are established and paired, perf stat of the server for 40 s
# (two ping periods at the default 20 s heartbeat).
set -uo pipefail
bin=$1; name=$2; out=$3; shift 3
cd /work/wt/perf; . bench/lib.sh
port=$(free_port)
start_pairchat "$bin" "sqlite://$tmp/db" "$port" 50 || exit 1
if [ $# -gt 0 ]; then stop_server; mapfile -t flags < <(bench_flags "$(realpath "$bin")")
  (cd "$tmp" && exec "$(realpath "$bin")" serve --bind "127.0.0.1:$port" --database-url "sqlite://$tmp/db" "${flags[@]}" "$@") >"$tmp/server.log" 2>&1 &
  pid=$!; wait_listening "$port" "$pid" 300 || exit 1; fi
/tmp/bins/bench connections --url "ws://127.0.0.1:$port/ws" --server-pid "$pid" -n 19900 --duration 100 --json --no-progress --note "$name" > "$out/$name.conn.json" 2>"$out/$name.bench.err" &
b=$!
for i in $(seq 600); do sleep 0.5; n=$(ss -Htn state established "( sport = :$port )" | wc -l); [ "$n" -ge 19900 ] && break; done
sleep 8  # pairing settles
perf record -F 2999 -g -o "$out/$name.perf.data" -p "$pid" -- sleep 40 2> "$out/$name.perfrec.err"
perf report -i "$out/$name.perf.data" --sort dso --stdio --no-children 2>/dev/null | grep -v "^#" | grep -v "^$" | head -12 > "$out/$name.dso.txt"; cat "$out/$name.dso.txt"
wait $b
stop_server
