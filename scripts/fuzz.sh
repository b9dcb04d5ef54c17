#!/usr/bin/env bash
# `make fuzz`: builds the libFuzzer targets of Fuzz/ (ASan + libFuzzer, instrumenting ckpt's own
# targets too) and runs each for FUZZ_SECONDS, seeded from Fuzz/corpus/<target>. New inputs go to
# .build/fuzz/corpus/<target> (the committed seeds stay as they are); a crash leaves its input in
# .build/fuzz/artifacts/<target>/ and fails the run. Prints the executions of each target and adds
# a line per target to Fuzz/ledger.tsv (date, commit, target, executions, seconds, result, build,
# CPU), which is committed: the executions each target has had, run after run.
#   FUZZ_TARGETS   targets to run (default: all)
#   FUZZ_PARALLEL  targets run at once (default 1; each is one process on one core)
#   FUZZ_CONFIG    release (default) or debug. Release runs 10-20 times more inputs a second, since
#                  -Onone Swift spends its time in retain/release and unspecialized generics; debug
#                  builds in about half the time, which wins for a few seconds' smoke.
#   FUZZ_RUN_ID    names this run's libFuzzer logs, .build/fuzz/<target>.<id>.log (default:
#                  <target>.log; build.log stays shared). Two runs of one target with different
#                  ids share its corpus, one core each; each adds its own ledger row.
#   FUZZ_LEAKS     at-exit (default) or each-input. libFuzzer's -detect_leaks=1 runs LeakSanitizer
#                  after every input that mallocs more than it frees, stopping the process to scan
#                  it; Swift's runtime and Foundation caches make that most inputs of some targets
#                  (fuzz-sharded-index ran 3.5x, fuzz-roundtrip 4.4x fewer inputs a second). At
#                  exit, LeakSanitizer still checks the whole run (libFuzzer's -detect_leaks=0 only
#                  turns off the per-input check). The ledger's build column records the mode.
#   An interrupted run (SIGINT: libFuzzer prints its counts and exits 72) is recorded as
#   "interrupted" with its executions, not as a finding.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${FUZZ_SECONDS:-60}"
targets="${FUZZ_TARGETS:-fuzz-zip fuzz-pickle fuzz-manifest fuzz-safetensors fuzz-rename-map fuzz-catalog fuzz-roundtrip fuzz-dcp-metadata fuzz-sharded-index}"
parallel="${FUZZ_PARALLEL:-1}"
config="${FUZZ_CONFIG:-release}"
leaks="${FUZZ_LEAKS:-at-exit}"
run_id="${FUZZ_RUN_ID:-}"
case "$leaks" in
    at-exit) detect_leaks=0 ;;
    each-input) detect_leaks=1 ;;
    *) echo "fuzz: FUZZ_LEAKS is at-exit or each-input, not $leaks"; exit 2 ;;
esac
swift="${SWIFT:-swift}"
# One combined -sanitize= flag: SwiftPM's `--sanitize=fuzzer --sanitize=address` passes two, swiftc
# keeps only the last, and their order varies between runs, so Swift code lost either its coverage
# or ASan (and every run rebuilt everything). `--sanitize=fuzzer` alone still tells SwiftPM that
# libFuzzer supplies main; the combined flag comes after it and wins.
flags=(-c "$config" --package-path Fuzz --scratch-path ".build/fuzz-$config"
    --sanitize=fuzzer -Xswiftc -sanitize=fuzzer,address -Xcc -fsanitize=address)
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
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -1)
ledger=Fuzz/ledger.tsv
[ -s "$ledger" ] || printf 'date\tcommit\ttarget\texecutions\tseconds\tresult\tbuild\tcpu\n' >"$ledger"
# The build column: the configuration, and the leak check when it is not per input (the ledger's
# first rows, before FUZZ_LEAKS, checked each input).
build="$config"
[ "$leaks" = each-input ] || build="$config, leaks at exit"
# log_path TARGET: the path of this run's libFuzzer output for TARGET.
log_path() { printf '%s/%s%s.log' "$out" "$1" "${run_id:+.$run_id}"; }
# record TARGET EXECUTIONS RESULT SECONDS (the run's own wall time: an interrupted run is shorter).
record() { printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$(date -u +%FT%TZ)" "$commit" "$1" "$2" "$4" "$3" "$build" "${cpu:-unknown}" >>"$ledger"; }

# Runs one target; prints its line and appends to the ledger; exit status 1 on a finding.
run_one() {
    local target=$1 log status=0 runs started=$SECONDS
    log=$(log_path "$target")
    mkdir -p "$out/corpus/$target" "$out/artifacts/$target"
    "$bin/$target" -max_total_time="$seconds" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 -detect_leaks="$detect_leaks" \
        -artifact_prefix="$out/artifacts/$target/" "$out/corpus/$target" "Fuzz/corpus/$target" >"$log" 2>&1 || status=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    if [ "$status" -eq 72 ] && [ -n "$runs" ] && grep -q 'libFuzzer: run interrupted' "$log"; then
        record "$target" "$runs" interrupted $((SECONDS - started))
        echo "$target: interrupted after $runs executions, no crash"
        return 0
    fi
    if [ "$status" -ne 0 ] || [ -z "$runs" ]; then
        record "$target" "${runs:-0}" failed $((SECONDS - started))
        echo "$target: FAILED (exit $status) after ${runs:-?} executions; log $log, inputs in $out/artifacts/$target/"
        grep -m 20 -E 'ERROR|SUMMARY|Fatal error|panic|deadly signal' "$log" || tail -20 "$log"
        return 1
    fi
    record "$target" "$runs" ok $((SECONDS - started))
    echo "$target: $runs executions in ${seconds} s, no crash"
}

failed=0
pids=()
for target in $targets; do
    run_one "$target" &
    pids+=($!)
    if [ "${#pids[@]}" -ge "$parallel" ]; then
        wait "${pids[0]}" || failed=1
        pids=("${pids[@]:1}")
    fi
done
for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
total=0
for target in $targets; do
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$(log_path "$target")" | tail -1)
    total=$((total + ${runs:-0}))
done
echo "fuzz: $total executions in all"
exit "$failed"
