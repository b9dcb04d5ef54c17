#!/usr/bin/env bash
# `make fuzz`: builds the libFuzzer targets of Fuzz/ (ASan + libFuzzer, instrumenting ckpt's own
# targets too) and runs each for FUZZ_SECONDS, seeded from Fuzz/corpus/<target>. New inputs go to
# .build/fuzz/corpus/<target> (the committed seeds stay as they are); a crash leaves its input in
# .build/fuzz/artifacts/<target>/ and fails the run. Prints the executions of each target.
# FUZZ_TARGETS picks targets (default: all); FUZZ_JOBS runs that many processes per target.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${FUZZ_SECONDS:-60}"
targets="${FUZZ_TARGETS:-fuzz-zip fuzz-pickle fuzz-manifest fuzz-safetensors fuzz-rename-map fuzz-catalog fuzz-roundtrip fuzz-dcp-metadata fuzz-sharded-index}"
swift="${SWIFT:-swift}"
# One combined -sanitize= flag: SwiftPM's `--sanitize=fuzzer --sanitize=address` passes two, swiftc
# keeps only the last, and their order varies between runs, so Swift code lost either its coverage
# or ASan (and every run rebuilt everything). `--sanitize=fuzzer` alone still tells SwiftPM that
# libFuzzer supplies main; the combined flag comes after it and wins.
flags=(-c debug --package-path Fuzz --sanitize=fuzzer -Xswiftc -sanitize=fuzzer,address -Xcc -fsanitize=address)
out=.build/fuzz
mkdir -p "$out"
# The sanitized link prints thousands of harmless ld.gold warnings; they go to the log.
if ! "$swift" build "${flags[@]}" >"$out/build.log" 2>&1; then
    grep -E 'error' "$out/build.log" | head -20 || tail -20 "$out/build.log"
    echo "fuzz: the build failed; log $out/build.log"
    exit 1
fi
bin="$("$swift" build "${flags[@]}" --show-bin-path)"
export LSAN_OPTIONS="suppressions=$PWD/Fuzz/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
failed=0
total=0
for target in $targets; do
    mkdir -p "$out/corpus/$target" "$out/artifacts/$target"
    log="$out/$target.log"
    status=0
    "$bin/$target" -max_total_time="$seconds" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="$out/artifacts/$target/" "$out/corpus/$target" "Fuzz/corpus/$target" >"$log" 2>&1 || status=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    if [ "$status" -ne 0 ] || [ -z "$runs" ]; then
        failed=1
        echo "$target: FAILED (exit $status) after ${runs:-?} executions; log $log, inputs in $out/artifacts/$target/"
        grep -m 20 -E 'ERROR|SUMMARY|Fatal error|panic|deadly signal' "$log" || tail -20 "$log"
    else
        echo "$target: $runs executions in ${seconds} s, no crash"
        total=$((total + runs))
    fi
done
echo "fuzz: $total executions in all"
exit "$failed"
