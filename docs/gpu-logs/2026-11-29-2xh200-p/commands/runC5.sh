#!/usr/bin/env bash
# GPU run C5 (two H200s, fourteenth session): why granting the peer costs stash's cold start more when the
# program has not enabled peer access (run C2: mlp_two_streams 7,893 ns/op against 5,370 with it enabled).
# page_costs (bench/page_costs.cpp, built here from 9a6a68e's source with scripts/gpu-test's build
# dir, .devbuild/c5/page_costs): pages granted to the peer with peer access not enabled, then enabled first
# (--enable-peer-access), then own device only (--no-peers); two rounds, the order reversed in the second.
# Carry: .devbuild/c5.
L=/tmp/gc5; rm -rf $L; mkdir -p $L
nvidia-smi --query-gpu=name,driver_version --format=csv > $L/gpu.txt 2>&1
for r in 1 2; do
  [ $r = 1 ] && order="peer enabled own" || order="own enabled peer"
  for m in $order; do
    a=; [ $m = enabled ] && a=--enable-peer-access; [ $m = own ] && a=--no-peers
    timeout 90 .devbuild/c5/page_costs $a > $L/$m-$r.txt 2>&1; echo "rc=$?" >> $L/$m-$r.txt
  done
done
(cd $L && tar czf $OUT/logs.tgz .)
cat $L/gpu.txt
for f in $L/peer-1.txt $L/enabled-1.txt $L/own-1.txt $L/peer-2.txt $L/enabled-2.txt $L/own-2.txt; do
  echo "== $(basename $f)"; grep -E "page size|first map|map_page \(|map_pages of|3 GiB|grant_peer|rc=" $f | cut -c1-110
done
