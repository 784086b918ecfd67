#!/usr/bin/env bash
# Runs the fuzz targets, each for SECONDS, one after another, and prints a line per target
# with its execution count. Used by .ci/run (briefly) and for the long runs fuzz/README.md
# records.
#
#   bash fuzz/run.sh SECONDS [TARGET...]     (all targets when none are named)
#
# Each target starts from its committed seeds (fuzz/seeds/TARGET) and keeps what it finds in
# fuzz/corpus/TARGET (not committed). A crash stops the script with libFuzzer's report and the
# input in fuzz/artifacts/TARGET/.
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:?usage: run.sh SECONDS [TARGET...]}
shift
if [ $# -eq 0 ]; then
    set -- $(cargo +nightly fuzz list)
fi
cargo +nightly fuzz build -s none 2>&1 | tail -n 1
for t in "$@"; do
    mkdir -p "corpus/$t"
    # Real open data is read where ../shared/data keeps it, never copied into seeds/.
    extra=()
    case "$t" in
        import_json | import_rdf) [ -d ../../shared/data/ngsi-ld ] && extra=(../../shared/data/ngsi-ld) ;;
    esac
    log=$(mktemp)
    if ! cargo +nightly fuzz run -s none "$t" "corpus/$t" "seeds/$t" "${extra[@]}" -- \
        -max_total_time="$secs" -print_final_stats=1 -rss_limit_mb=1024 -timeout=10 >"$log" 2>&1; then
        tail -n 60 "$log"
        rm -f "$log"
        echo "fuzz: $t FAILED"
        exit 1
    fi
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    peak=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log")
    echo "fuzz: $t ${runs:-?} runs in ${secs}s, peak rss ${peak:-?} MB, $(ls "corpus/$t" | wc -l) corpus units"
    rm -f "$log"
done
