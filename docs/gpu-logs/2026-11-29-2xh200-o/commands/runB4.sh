#!/usr/bin/env bash
# GPU run B4 (one H200, thirteenth session): inside PyTorch, where the GPU runs behind the host (pending frees
# hold their pages), how many physical allocations the first training steps make with afc9e77's library
# (.devbuild/b4/old: pip wheel of ./python at afc9e77) and with 137b1be's (.devbuild/b4/new: c89d27b's wheel,
# library 137b1be: new pages in chunks where a move is due and nothing is idle), stash.torch's defaults.
# scripts/e2e --warmup 0 so the first (cold) step is timed; num_device_alloc after every step; order
# old, new, new, old. Carry: .devbuild/b4.
export STASH_TORCH_EXTENSION_DIR=/tmp/stash-ext PYTHONUNBUFFERED=1
L=/tmp/gb4; rm -rf $L; mkdir -p $L
pack() { (cd $L && tar czf $OUT/logs.tgz .); }
nvidia-smi --query-gpu=name,driver_version --format=csv > $L/gpu.txt 2>&1
i=0
for w in old new new old; do
  i=$((i+1)); A=stash; [ $i = 1 ] && A=native,stash
  timeout 140 python3 scripts/e2e --reps 1 --steps 3 --warmup 0 --workloads gpt2_varlen,resnet50 --allocators $A \
    --wheels .devbuild/b4/$w --max-minutes 2.2 --out $L/e2e-$i-$w > $L/e2e-$i-$w.out 2>&1; echo "e2e $i $w rc=$?" >> $L/e2e-$i-$w.out
  pack
done
cat $L/gpu.txt; grep -h "rc=\| rep " $L/*.out | cut -c1-110
python3 - $L <<'P'
import json,glob,os,sys
for f in sorted(glob.glob(sys.argv[1]+'/e2e-*/records/*.json')):
    d=json.load(open(f)); run=f.split('/')[-3]
    allocs=[s.get('num_device_alloc') for s in d.get('step_figures',[])]
    print(run, os.path.basename(f), 'ms/step', [round(x,1) for x in d['ms_per_step']], 'device allocs after each step', allocs,
          'peak reserved MiB', (d.get('peak_reserved_allocator') or 0)>>20)
P
