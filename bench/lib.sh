# Shared by the bench scripts (sourced, not run): a temporary directory and the server's pid,
# both cleaned up on exit, and finding and waiting for loopback ports.

tmp=$(mktemp -d)
pid=
# Stops the server $pid (SIGTERM, then waits for it), if there is one.
stop_server() {
  if [ -n "$pid" ]; then kill -TERM "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; fi
  pid=
}
cleanup() {
  stop_server
  rm -rf "$tmp"
}
trap cleanup EXIT

# The variants ($2...) in the order round $1 runs them, one per line: rotated by one each
# round, so that a host getting busier or quieter weighs on every variant alike.
rotation() {
  local r=$1 k
  shift
  for k in $(seq 0 $(($# - 1))); do
    local i=$(((k + r) % $# + 1))
    echo "${!i}"
  done
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

free_port() {
  local p
  for _ in $(seq 1 50); do
    p=$((20000 + RANDOM % 12000)) # below the ephemeral range (32768+)
    if port_free "$p"; then echo "$p"; return 0; fi
  done
  return 1
}

# Waits until something listens on 127.0.0.1:$1, while process $2 lives (up to $3 tenths of a
# second, default 300). Fails if the process exits or the time runs out.
wait_listening() {
  for _ in $(seq 1 "${3:-300}"); do
    port_free "$1" || return 0
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

# Starts `$1 serve` on 127.0.0.1:$3 with the database URL $2 and the benchmark flags, from
# $tmp (a build without --secret-key-file writes its key to its working directory), its log in
# $tmp/server.log; sets $pid and waits up to $4 tenths of a second for it to listen. Says why
# and fails if it does not.
start_pairchat() {
  local bin flags
  bin=$(realpath "$1")
  mapfile -t flags < <(bench_flags "$bin")
  (cd "$tmp" && exec "$bin" serve --bind "127.0.0.1:$3" --database-url "$2" "${flags[@]}") \
    >"$tmp/server.log" 2>&1 &
  pid=$!
  wait_listening "$3" "$pid" "${4:-300}" && return 0
  echo "server $1 did not start"; cat "$tmp/server.log"; return 1
}

# The flags that lift a server's per-client limits out of a benchmark's way, for the server
# binary $1 (older builds lack some flags, so only those its --help names), and a key file in
# the temporary directory rather than ./pairchat.key.
bench_flags() {
  local help
  help=$("$1" serve --help 2>/dev/null || "$1" --help)
  local flag
  for flag in rate-per-sec rate-burst max-conns-per-ip connects-per-sec-per-ip; do
    grep -q -- "--$flag" <<<"$help" && printf '%s\n' "--$flag" 1000000
  done
  # A benchmark's clients all come from one address: never challenged (0 turns it off).
  grep -q -- '--challenge-after' <<<"$help" && printf '%s\n' --challenge-after 0
  grep -q -- '--secret-key-file' <<<"$help" && printf '%s\n' --secret-key-file "$tmp/pairchat.key"
  return 0
}
