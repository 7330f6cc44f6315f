#!/bin/bash
# usage: run.sh BIN NAME N
B=$1; NAME=$2; N=${3:-1000}
cd /tmp/ht && rm -f db* $NAME.zst
heaptrack -o /tmp/ht/$NAME $B serve --bind 127.0.0.1:41090 --database-url sqlite:///tmp/ht/db --rate-per-sec 1000000 --rate-burst 1000000 --max-conns-per-ip 1000000 --connects-per-sec-per-ip 1000000 --secret-key-file /tmp/ht/k > /tmp/ht/server.log 2>&1 &
for i in $(seq 50); do sleep 0.2; P=$(pgrep -f "^$B serve --bind 127.0.0.1:41090"); [ -n "$P" ] && (exec 3<>/dev/tcp/127.0.0.1/41090) 2>/dev/null && break; done
/tmp/bins/bench connections --url ws://127.0.0.1:41090/ws --server-pid $P -n $N --duration 3 --json --no-progress > /tmp/ht/$NAME.json 2>/tmp/ht/bench.err
kill -TERM $P; wait
heaptrack_print -f $NAME.zst -p 1 -a 0 -T 0 -n 60 -s 2 -m 0 2>/dev/null > $NAME.peaks.txt
python3 - $NAME.peaks.txt <<'PY'
import re, subprocess, sys
lines=open(sys.argv[1]).read().split('\n')
idx=[i for i,l in enumerate(lines) if 'peak memory consumed over' in l]
for k,i in enumerate(idx[:60]):
    end = idx[k+1] if k+1<len(idx) else len(lines)
    frames=[l.strip() for l in lines[i+1:end] if l.startswith('  ') and not l.startswith('    ')]
    out=subprocess.run(['c++filt'],input='\n'.join(frames),capture_output=True,text=True).stdout.split('\n')
    keep=[f for f in out if not re.search(r'^alloc\[|^<alloc\[|__rust|malloc|raw_vec|std::sys::alloc|GlobalAlloc|<std::alloc|core::ptr::|Box<|Arc<|^core\[|^<core\[|^std\[|^alloc::|^_\$LT\$alloc',f)][:3]
    print(lines[i].replace(' peak memory consumed over',''), ' | '.join(re.sub(r'::h[0-9a-f]{16}|\[[0-9a-f]{16}\]','',f)[:90] for f in keep))
PY
