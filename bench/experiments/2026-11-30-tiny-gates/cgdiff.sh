#!/bin/bash
# usage: cgdiff.sh BIN TRACE ALLOC  (env passes through) -> per-function instructions per warm op
bin=$1; tr=$2; al=$3; t=$(mktemp -d)
for w in 0 4; do valgrind --tool=callgrind --callgrind-out-file=$t/c$w.out $bin /tmp/exp/bench/traces/$tr.csv --backend simulated --allocators $al --warm $w > /dev/null 2>&1
callgrind_annotate --inclusive=no $t/c$w.out 2>/dev/null | grep -E "^ *[0-9,]+ " | sed 's/([0-9. ]*%)//' | awk '{n=$1; gsub(",","",n); $1=""; print n "\t" $0}' > $t/f$w.tsv; done
ops=$($bin /tmp/exp/bench/traces/$tr.csv --backend simulated --allocators $al --warm 0 --json | python3 -c "import json,sys;print(json.loads(sys.stdin.readline())['ops'])")
python3 - $t $ops <<'P'
import sys,re
t,ops=sys.argv[1],int(sys.argv[2])*4
def load(p):
    d={}
    for l in open(p):
        n,f=l.split('\t',1); f=re.sub(r'stash::caching_allocator<[^>]*>','CA',f.strip()); f=re.sub(r'\[/.*\]$','',f); d[f]=d.get(f,0)+int(n)
    return d
a=load(t+'/f0.tsv'); b=load(t+'/f4.tsv')
rows=sorted(((b.get(k,0)-a.get(k,0))/ops,k) for k in set(a)|set(b))
for v,k in rows[::-1][:9]: print("%7.1f %s"%(v,k[:200]))
P
rm -rf $t
