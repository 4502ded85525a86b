#!/usr/bin/env bash
# GPU run C3 (one H200, fourteenth session): what run C2 left out for time. Inside PyTorch, the first training
# steps of gpt2_varlen and resnet50 with eaf6cb0's library (.devbuild/c2/new: pip wheel of ./python; a
# block's edge pages join its chunk) and 828112b's (.devbuild/c2/old: c89d27b's wheel, run B4's "new"),
# stash.torch's defaults, scripts/e2e --warmup 0 so the first (cold) step is timed; order new, old, new.
# Carry: .devbuild/c2.
export STASH_TORCH_EXTENSION_DIR=/tmp/stash-ext PYTHONUNBUFFERED=1
L=/tmp/gc3; rm -rf $L; mkdir -p $L
pack() { (cd $L && tar czf $OUT/logs.tgz .); }
nvidia-smi --query-gpu=name,driver_version --format=csv > $L/gpu.txt 2>&1
start=$SECONDS; i=0
for w in new old new; do
  i=$((i+1))
  [ $((SECONDS - start)) -gt 400 ] && { echo "e2e stopped before $i" >> $L/failed.txt; break; }
  timeout 140 python3 scripts/e2e --reps 1 --steps 3 --warmup 0 --workloads gpt2_varlen,resnet50 --allocators stash \
    --wheels .devbuild/c2/$w --max-minutes 2.2 --out $L/e2e-$i-$w > $L/e2e-$i-$w.out 2>&1; echo "e2e $i $w rc=$?" >> $L/e2e-$i-$w.out
  pack
done
pack; cat $L/gpu.txt $L/failed.txt 2>/dev/null; grep -h "rc=\| rep " $L/*.out | cut -c1-110
python3 - $L <<'P'
import json,glob,sys
for f in sorted(glob.glob(sys.argv[1]+'/e2e-*/results.json')):
    for r in json.load(open(f))['runs']:
        print(f.split('/')[-2], r['workload'], r['allocator'], 'ms/step', [round(x,1) for x in r['ms_per_step']],
              'device allocs after each step', [s.get('num_device_alloc') for s in r['step_figures']],
              'peak reserved MiB', r['peak_reserved_allocator']>>20, 'losses', [round(x,5) for x in r['results']])
P
echo "total $((SECONDS - start)) s"
