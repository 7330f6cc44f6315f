#!/usr/bin/env bash
# Smoke test of pairchat-bench: starts a pairchat server on a free loopback port with a temporary
# SQLite file, runs every scenario for about a second against it, checks the exit codes, stops
# the server. Not a benchmark: the figures it prints mean nothing.
#
#   bench/smoke.sh            # builds and runs the debug server and tool
#   PAIRCHAT_BIN=path/to/pairchat PAIRCHAT_BENCH_BIN=path/to/pairchat-bench bench/smoke.sh
set -uo pipefail
cd "$(dirname "$0")/.."

server=${PAIRCHAT_BIN:-}
bench=${PAIRCHAT_BENCH_BIN:-}
if [ -z "$server" ]; then
  cargo build -q -p pairchat || exit 1
  server=target/debug/pairchat
fi
if [ -z "$bench" ]; then
  cargo build -q -p pairchat-bench || exit 1
  bench=target/debug/pairchat-bench
fi

# shellcheck source=bench/lib.sh
. bench/lib.sh

# Later servers limit each connection's rate and each address's connections: raise the limits.
mapfile -t extra < <(bench_flags "$server")

port=$(free_port) || { echo "no free port"; exit 1; }
"$server" serve --bind "127.0.0.1:$port" --database-url "sqlite://$tmp/smoke.db" "${extra[@]}" \
  >"$tmp/server.log" 2>&1 &
pid=$!
wait_listening "$port" "$pid" || { echo "server did not start:"; cat "$tmp/server.log"; exit 1; }
url="ws://127.0.0.1:$port/ws"
common=(--url "$url" --server-pid "$pid" --no-progress)

passed=0 failed=0
expect= # a line the output must hold (grep -F), for the next run only
run() {
  local name=$1; shift
  echo "=== smoke: $name"
  if timeout 120 "$bench" "$@" >"$tmp/out.txt" 2>&1; then
    if [ -n "$expect" ] && ! grep -qF -- "$expect" "$tmp/out.txt"; then
      echo "FAILED (no \"$expect\" in the output): $bench $*"
      cat "$tmp/out.txt"
      failed=$((failed + 1))
    else
      passed=$((passed + 1))
      tail -n 40 "$tmp/out.txt"
    fi
  else
    echo "FAILED ($?): $bench $*"
    cat "$tmp/out.txt"
    failed=$((failed + 1))
  fi
  expect=
}

run connections connections "${common[@]}" -n 200 --duration 1 --settle 0.5
run pairing-rate pairing "${common[@]}" --rate 200 --duration 1
run pairing-flat pairing "${common[@]}" --rate 0 --concurrency 8 --duration 1
run relay relay "${common[@]}" --pairs 20 --rate 500,0 --warmup 0.2 --duration 1
run churn churn "${common[@]}" --clients 20 --duration 1
run soak soak "${common[@]}" --short --clients 50 --duration 2 --json
run hiccup hiccup --no-progress --duration 1
# One server behind two URLs: one pool of waiting visitors, as in a cluster, so the placed
# pairs must come out split, every partner heard on the "other" URL.
expect='"other_server": 40,' run relay-split-one-pool relay --url "$url,$url" \
  --server-pid "$pid,$pid" --no-progress --pairs 20 --rate 500 --warmup 0.2 --duration 1 --json
expect='"other_server": 200,' run connections-split-one-pool connections --url "$url,$url" \
  --server-pid "$pid,$pid" --no-progress -n 200 --procs 2 --duration 1 --settle 0.5 --json

# Two URLs: a second, independent server (its own SQLite file). Without a cluster between
# them no pair can span the two, so the placed pairs end up two by two on one server each;
# what is checked is that connections spread over both and every figure comes per server.
port2=$(free_port) || { echo "no free port"; exit 1; }
"$server" serve --bind "127.0.0.1:$port2" --database-url "sqlite://$tmp/smoke2.db" "${extra[@]}" \
  >"$tmp/server2.log" 2>&1 &
pid2=$!
if wait_listening "$port2" "$pid2"; then
  two=(--url "$url,ws://127.0.0.1:$port2/ws" --server-pid "$pid,$pid2" --no-progress)
  expect='"opened_each": [' run connections-2-urls connections "${two[@]}" -n 200 --duration 1 \
    --settle 0.5 --procs 2 --json
  expect='"placement": "split"' run relay-2-urls-split relay "${two[@]}" --pairs 20 --rate 500 \
    --warmup 0.2 --duration 1 --json
  expect='same-process' run relay-2-urls-same relay "${two[@]}" --same-process --pairs 20 \
    --rate 500 --warmup 0.2 --duration 1
  expect='server_cpu_us_per_pairing_each' run pairing-2-urls pairing "${two[@]}" --rate 0 \
    --concurrency 8 --duration 1
else
  echo "second server did not start:"; cat "$tmp/server2.log"; failed=$((failed + 1))
fi
kill -TERM "$pid2" 2>/dev/null; wait "$pid2" 2>/dev/null

stop_server
sport=$(free_port) || { echo "no free port"; exit 1; }
run startup startup --url "ws://127.0.0.1:$sport/ws" --no-progress --runs 2 --idle 0.2 -- \
  "$server" serve --bind "127.0.0.1:$sport" --database-url "sqlite://$tmp/startup.db" "${extra[@]}"

echo "smoke: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
