#!/bin/sh
# Makes every .txt in this folder, from the root of a checkout with remap_pending_pages: the sweep
# (options_sweep.cpp) over bench/traces with remapping off (defaults.txt), on as it ships
# (remap_min_pages 256, remap_min_age 1: remap_p256_age1.txt), with other remap_min_pages (1, 64) and
# remap_min_age (2, 3), the shipped option and off also with chunks_per_block 16 and moves_per_block 0
# (*_cpb16_mpb0.txt), and, built from a copy of include/ with rules.patch applied (rules selected by
# the bits of XV, for measurement only), on with remap_min_pages 1 and each other rule (rule_*.txt):
#   1  only requests that raise the high tide of touched pages
#   2  only from free blocks at least as large as the request's pages
#   4  only from free blocks wholly above the request
#   16 only the chunk at the top of its free block
#   32 only a chunk with nothing mapped above it in its region
#   64 only pages mapped alone;  128 only chunks of at most 8 pages
#   256 only while the pages held are at their high tide (where a new page would raise it)
set -e
HERE=bench/experiments/2026-11-29-pending-remap
CXX="g++ -std=c++20 -O2 -Ibench -I/usr/local/cuda/include"
rm -rf /tmp/pending-remap-rules && mkdir -p /tmp/pending-remap-rules && cp -r include /tmp/pending-remap-rules/
patch -s -d /tmp/pending-remap-rules -p1 < $HERE/rules.patch
$CXX -Iinclude $HERE/options_sweep.cpp bench/allocators/ordered_allocator.cpp -o /tmp/pending-remap-sweep
$CXX -I/tmp/pending-remap-rules/include $HERE/options_sweep.cpp bench/allocators/ordered_allocator.cpp -o /tmp/pending-remap-sweep-rules
/tmp/pending-remap-sweep bench/traces/*.csv > $HERE/defaults.txt
XREMAP=1 /tmp/pending-remap-sweep bench/traces/*.csv > $HERE/remap_p256_age1.txt
for p in 1 64; do XREMAP=1 XRMP=$p /tmp/pending-remap-sweep bench/traces/*.csv > $HERE/remap_p${p}_age1.txt; done
for a in 2 3; do XREMAP=1 XRMA=$a /tmp/pending-remap-sweep bench/traces/*.csv > $HERE/remap_p256_age$a.txt; done
# main's defaults before 7a54cc1 (large blocks in chunks of 32 pages, moves rationed per 8 pages)
XCPB=16 XMPB=0 /tmp/pending-remap-sweep bench/traces/*.csv > $HERE/defaults_cpb16_mpb0.txt
XCPB=16 XMPB=0 XREMAP=1 /tmp/pending-remap-sweep bench/traces/*.csv > $HERE/remap_p256_age1_cpb16_mpb0.txt
for v in 1 2 4 16 32 64 128 256 17 65; do
  XV=$v XREMAP=1 XRMP=1 /tmp/pending-remap-sweep-rules bench/traces/*.csv > $HERE/rule_$v.txt
done
rm -rf /tmp/pending-remap-rules
