#!/bin/bash
# usage: cg.sh BIN ALLOC TRACE -> instructions per warm op
bin=$1; alloc=$2; tr=$3
cd /tmp/mem-a/clean
ops=$(python3 -c "import json,subprocess;print(json.loads(subprocess.check_output(['$bin','bench/traces/$tr.csv','--backend','simulated','--allocators','$alloc','--warm','0','--json']).decode().splitlines()[0])['ops'])")
ir() { valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null $bin bench/traces/$tr.csv --backend simulated --allocators $alloc --warm $1 2>&1 | grep "I *refs" | tr -d ',' | awk '{print $NF}'; }
a=$(ir 4); b=$(ir 0)
python3 -c "print('$tr $alloc', round(($a-$b)/(4*$ops),1))"
