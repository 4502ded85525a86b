#!/usr/bin/env bash
# GPU run N4 (twenty-fourth session, one H200): every GPU suite under every sanitizer at the session's final
# library and tests (build/gpu of fe18688, rev in build/gpu/rev). Carry: build/gpu. (Run as one command line;
# the summary, synccheck and thrust logs did not come back, the file count being over the limit.)
OUT_ROOT=$OUT; STASH_GPU_DEADLINE=300 OUT=$OUT_ROOT/suites scripts/gpu-test run all > $OUT_ROOT/suites.txt 2>&1
echo "suites rc=$?" >> $OUT_ROOT/suites.txt; tail -n 14 $OUT_ROOT/suites.txt
