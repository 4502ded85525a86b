#!/usr/bin/env bash
# GPU run N3 (twenty-fourth session, one H200): PyTorch 2.11 training and generation under stash.torch with
# kept page aliases. scripts/e2e, GPT-2 training with random lengths and ResNet-50 training (2 repetitions of
# 20 timed steps after 3 untimed), under PyTorch's native allocator and stash with its defaults (e2e_default),
# then stash with STASH_CONF=keep_page_aliases:on,max_held_over_live:1.05 (e2e_lean_aliases) and with
# keep_page_aliases:on alone (e2e_aliases). Wheel: pip wheel --no-deps ./python (.devbuild/n3, rev in
# .devbuild/n3/rev). Carry: .devbuild/n3.
export STASH_TORCH_EXTENSION_DIR=/tmp/stash-ext PYTHONUNBUFFERED=1 CUDA_VISIBLE_DEVICES=0
L=/tmp/gn3; rm -rf $L; mkdir -p $L
nvidia-smi --query-gpu=name,driver_version --format=csv > $L/gpu.txt 2>&1
echo "wheel rev $(cat .devbuild/n3/rev)" >> $L/gpu.txt
pack() { (cd $L && tar czf $OUT/logs.tgz .); }
W=${WORKLOADS:-gpt2_varlen,resnet50}
run() {  # name, allocators, STASH_CONF
  STASH_CONF=$3 timeout ${4:-200} python3 scripts/e2e --workloads $W --allocators $2 --reps 2 --steps 20 --warmup 3 \
    --timeout 150 --wheels .devbuild/n3 --out $L/$1 > $L/$1.out 2>&1; echo "$1 rc=$?" >> $L/$1.out; pack
}
run e2e_default native,stash "" 260
run e2e_lean_aliases stash "keep_page_aliases:on,max_held_over_live:1.05" 140
run e2e_aliases stash "keep_page_aliases:on" 140
for n in e2e_default e2e_lean_aliases e2e_aliases; do echo "== $n"; tail -n 2 $L/$n.out; cat $L/$n/summary.md 2>/dev/null | head -30; done
