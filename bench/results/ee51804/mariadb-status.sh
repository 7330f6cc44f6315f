st() { mysql -uroot -h127.0.0.1 -N -e "SHOW GLOBAL STATUS WHERE Variable_name IN ('Questions','Com_commit','Com_stmt_execute','Com_stmt_prepare','Com_select','Com_insert_select','Com_delete_multi','Innodb_os_log_fsyncs','Innodb_data_fsyncs')" | tr '\n' ' '; echo; }
mpid=$(pidof mariadbd)
cpu() { awk '{print $14+$15}' /proc/$mpid/stat; }
mysql -uroot -h127.0.0.1 -e 'DROP DATABASE IF EXISTS pb; CREATE DATABASE pb'
/work/bin-chain/pairchat serve --bind 127.0.0.1:29555 --database-url mysql://root@127.0.0.1:3306/pb --rate-per-sec 1000000 --rate-burst 1000000 --max-conns-per-ip 1000000 --connects-per-sec-per-ip 1000000 --secret-key-file /tmp/pb.key > /tmp/pb.log 2>&1 &
sp=$!; sleep 2
st; c0=$(cpu)
/work/bin-chain/pairchat-bench pairing --url ws://127.0.0.1:29555/ws --server-pid $sp --rate 0 --concurrency 64 --duration 10 --json --no-progress > /tmp/pb.json 2>/dev/null
c1=$(cpu); st
echo "mariadbd cpu ticks: $((c1-c0))"; python3 -c "import json; d=json.load(open('/tmp/pb.json')); print(d['pairings'], d['pairings_per_sec'], d['server_cpu_secs'], d['generator_cpu_secs'])"
kill $sp; wait $sp
