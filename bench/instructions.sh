#!/usr/bin/env bash
# User-space instructions per relayed message, counted by valgrind's callgrind: the same count
# for the same binary and load however busy the host is, so small changes show where CPU time
# drowns in the host's noise. Kernel work (syscalls, wake-ups) is not counted.
#
#   bench/instructions.sh -- SERVER COMMAND LISTENING ON 127.0.0.1:41070
#   bench/instructions.sh -- target/release/pairchat serve --bind 127.0.0.1:41070 \
#       --database-url sqlite:///tmp/cg.db --rate-per-sec 1000000 --rate-burst 1000000 \
#       --max-conns-per-ip 1000000 --connects-per-sec-per-ip 1000000 --challenge-after 0
#   bench/instructions.sh -- target/release/pairchat-ref-relay --kind actix --bind 127.0.0.1:41070
#
# Runs the server under callgrind twice, with relay (100 pairs, 400 msgs/s) for 3 s and for
# 13 s, and divides the difference in instructions by the difference in delivered messages, so
# start-up, connecting and shutdown cancel out. Needs valgrind (Debian: valgrind).
set -uo pipefail
cd "$(dirname "$0")/.."
[ "${1:-}" = "--" ] && shift
[ $# -gt 0 ] || { echo "usage: bench/instructions.sh -- SERVER COMMAND (listening on 127.0.0.1:41070)"; exit 2; }
bench=${PAIRCHAT_BENCH_BIN:-target/release/pairchat-bench}
# shellcheck source=bench/lib.sh
. bench/lib.sh

# Prints "instructions delivered" for one run of $1 seconds.
measure() {
  # Each run on a fresh database, for the SQLite file the usage above names.
  rm -f /tmp/cg.db*
  valgrind --tool=callgrind --callgrind-out-file="$tmp/cg.out.%p" "${@:2}" >"$tmp/vg.log" 2>&1 &
  pid=$!
  wait_listening 41070 "$pid" 200 || { echo "the server did not start:" >&2; cat "$tmp/vg.log" >&2; }
  local out
  out=$("$bench" relay --url ws://127.0.0.1:41070/ws --server-pid "$pid" --pairs 100 --rate 400 \
    --warmup 1 --duration "$1" --json --no-progress 2>/dev/null)
  stop_server
  local ir
  ir=$(grep -h "^summary:\|^totals:" "$tmp"/cg.out.* | awk '{print $2}' | head -1)
  rm -f "$tmp"/cg.out.*
  # Messages timed in the step (both runs have the same warm-up, which cancels out).
  local delivered
  delivered=$(grep -o '"count": [0-9]*' <<<"$out" | awk '{s += $2} END {print s}')
  echo "$ir $delivered"
}

read -r ir1 d1 < <(measure 3 "$@")
read -r ir2 d2 < <(measure 13 "$@")
echo "3 s run:  $ir1 instructions, $d1 messages timed"
echo "13 s run: $ir2 instructions, $d2 messages timed"
if [ -n "$ir1" ] && [ -n "$ir2" ] && [ "${d2:-0}" -gt "${d1:-0}" ]; then
  echo "instructions per delivered message: $(( (ir2 - ir1) / (d2 - d1) ))"
else
  echo "no result (did the server start on 127.0.0.1:41070?)"; exit 1
fi
