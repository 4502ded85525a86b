#!/bin/bash
# usage: NAME [env assignments...]
name=$1; shift
cd /tmp/mem-a/repo && env "$@" build/release/bench/stash-replay bench/traces --backend simulated --allocators stash,stash-small-fill,stash-ordered --warm 3 --json > /tmp/mem-a/res/$name.json
