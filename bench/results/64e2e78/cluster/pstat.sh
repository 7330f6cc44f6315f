#!/usr/bin/env bash
# MariaDB statements/commits per pairing: N servers on one database, pairing flat out 10 s.
set -u
N=${N:-1}
S=/work/target-results/release/pairchat B=/work/target-results/release/pairchat-bench
OUT=/tmp/cl/pstat/n$N; mkdir -p $OUT
R=redis://127.0.0.1:6390/
mariadb -h127.0.0.1 -uroot -e "DROP DATABASE IF EXISTS pairchat_pstat; CREATE DATABASE pairchat_pstat"
F=(--rate-per-sec 1000000 --rate-burst 1000000 --max-conns-per-ip 1000000 --connects-per-sec-per-ip 1000000 --secret-key-file $OUT/key --redis-url $R)
pids=(); urls=()
for k in $(seq 1 $N); do
  port=$((29100+k))
  $S serve --bind 127.0.0.1:$port --database-url mysql://root@127.0.0.1:3306/pairchat_pstat "${F[@]}" > $OUT/server-$k.log 2>&1 &
  pids+=($!); urls+=(ws://127.0.0.1:$port/ws)
  for i in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
done
U=$(IFS=,; echo "${urls[*]}"); P=$(IFS=,; echo "${pids[*]}")
q="SHOW GLOBAL STATUS WHERE Variable_name IN ('Com_commit','Com_select','Com_insert','Com_update','Com_delete','Com_execute_sql','Com_stmt_execute','Questions','Innodb_row_lock_waits','Innodb_deadlocks','Handler_read_next','Handler_read_key','Innodb_rows_read','Innodb_rows_inserted','Innodb_rows_updated','Innodb_rows_deleted','Com_rollback')"
mariadb -h127.0.0.1 -uroot -N -e "$q" > $OUT/before.txt
$B pairing --url $U --server-pid $P --extra-pid redis=$(cat /tmp/cl/redis-6390.pid) --extra-pid mariadb=$(pidof mariadbd) --rate 0 --concurrency 64 --duration 10 --json --no-progress > $OUT/pairing.json 2> $OUT/pairing.err
mariadb -h127.0.0.1 -uroot -N -e "$q" > $OUT/after.txt
for p in "${pids[@]}"; do kill -TERM $p; done
for p in "${pids[@]}"; do wait $p; done
mariadb -h127.0.0.1 -uroot -e "DROP DATABASE IF EXISTS pairchat_pstat"
pairings=$(jq .pairings $OUT/pairing.json)
join $OUT/before.txt $OUT/after.txt | awk -v n=$pairings '{d=$3-$2; printf "%-24s %10d  %8.3f per pairing\n", $1, d, d/n}' | tee $OUT/diff.txt
echo "pairings $pairings  per_sec $(jq .pairings_per_sec $OUT/pairing.json)"
