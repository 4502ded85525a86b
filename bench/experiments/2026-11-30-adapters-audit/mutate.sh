#!/bin/bash
# mutate.sh name file 'python-replace-old' 'python-replace-new' driver args
name=$1; file=/tmp/audit-adapt/$2; old=$3; new=$4; driver=$5; shift 5
python3 - "$file" "$old" "$new" <<'PY'
import sys
f,old,new=sys.argv[1:4]
s=open(f).read()
assert s.count(old)==1, "pattern count %d" % s.count(old)
open(f,'w').write(s.replace(old,new))
PY
[ $? -ne 0 ] && { echo "$name: PATTERN FAIL"; exit 1; }
export ASAN_OPTIONS=allocator_may_return_null=1
if ./build.sh $driver.cpp mut_$name > mut_$name.build 2>&1; then
  timeout 300 ./mut_$name "$@" > mut_$name.out 2>&1; rc=$?
  if [ $rc -eq 0 ]; then echo "$name: SURVIVED"; else echo "$name: CAUGHT (rc $rc): $(grep -v WARNING mut_$name.out | grep -E 'ENSURE|ERROR|terminate|what|not a live|stash::' | head -2 | tr '\n' ' ')"; fi
else echo "$name: BUILD FAILED"; grep error mut_$name.build | head -2; fi
(cd /tmp/audit-adapt && git checkout -q -- .)
