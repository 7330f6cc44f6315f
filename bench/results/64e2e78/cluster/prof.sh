#!/usr/bin/env bash
# Profile relay cross-2 (or same-1 with MODE=same): two servers (one for same) on a fresh database, private Redis 6390.
set -u
MODE=${MODE:-split}
S=/work/target-results/release/pairchat B=/work/target-results/release/pairchat-bench
OUT=/tmp/cl/prof/$MODE; mkdir -p $OUT
R=redis://127.0.0.1:6390/
RP=$(cat /tmp/cl/redis-6390.pid)
mariadb -h127.0.0.1 -uroot -e "DROP DATABASE IF EXISTS pairchat_prof; CREATE DATABASE pairchat_prof"
F=(--rate-per-sec 1000000 --rate-burst 1000000 --max-conns-per-ip 1000000 --connects-per-sec-per-ip 1000000 --secret-key-file $OUT/key --redis-url $R)
n=2; [ "$MODE" = same ] && n=1
pids=(); urls=()
for k in $(seq 1 $n); do
  port=$((29000+k))
  $S serve --bind 127.0.0.1:$port --database-url mysql://root@127.0.0.1:3306/pairchat_prof "${F[@]}" > $OUT/server-$k.log 2>&1 &
  pids+=($!); urls+=(ws://127.0.0.1:$port/ws)
  for i in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
done
U=$(IFS=,; echo "${urls[*]}"); P=$(IFS=,; echo "${pids[*]}")
place=--split-pairs; [ "$MODE" = same ] && place=--same-process
$B relay --url $U --server-pid $P --extra-pid redis=$RP $place --pairs 500 --rate 4000 --duration 40 --json --no-progress > $OUT/relay.json 2> $OUT/relay.err &
bp=$!
sleep 14
perf record -F 2999 -g -o $OUT/s1.data -p ${pids[0]} -- sleep 20 > /dev/null 2>&1 &
perf stat -e 'syscalls:sys_enter_sendto,syscalls:sys_enter_recvfrom,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_write,syscalls:sys_enter_read,syscalls:sys_enter_writev,syscalls:sys_enter_futex,context-switches,task-clock' -p ${pids[0]} -o $OUT/s1.stat -- sleep 20 &
if [ "$MODE" != same ]; then
  perf record -F 2999 -g -o $OUT/redis.data -p $RP -- sleep 20 > /dev/null 2>&1 &
  perf stat -e 'syscalls:sys_enter_read,syscalls:sys_enter_write,syscalls:sys_enter_epoll_wait,context-switches,task-clock' -p $RP -o $OUT/redis.stat -- sleep 20 &
fi
wait $bp
sleep 2
for p in "${pids[@]}"; do kill -TERM $p; done
for p in "${pids[@]}"; do wait $p; done
wait
mariadb -h127.0.0.1 -uroot -e "DROP DATABASE IF EXISTS pairchat_prof"
echo done
