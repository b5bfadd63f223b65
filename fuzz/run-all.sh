#!/bin/sh
# Runs every fuzz target one after another, in one process (no -jobs/-workers), for SECONDS each (default 600), on the
# committed corpus; logs go to fuzz/logs/<target>.log (not committed). Needs nightly and
# cargo-fuzz (`cargo install cargo-fuzz --locked`).
set -u
cd "$(dirname "$0")"
SECONDS_EACH=${1:-600}
TARGETS=${TARGETS:-"framing gs1 config modbus_codec hid_decoder"}
mkdir -p logs
for t in $TARGETS; do
    mkdir -p "corpus/$t"   # libFuzzer refuses a corpus folder that does not exist
    dict=""
    [ -f "dict/$t.dict" ] && dict="-dict=dict/$t.dict"
    cargo +nightly fuzz run "$t" "corpus/$t" -- -max_total_time="$SECONDS_EACH" \
        -max_len=4096 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 $dict \
        > "logs/$t.log" 2>&1
    echo "$t: exit $?" >> logs/summary
done
