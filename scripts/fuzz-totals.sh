#!/usr/bin/env bash
# `make fuzz-totals`: the executions each fuzz target has had, summed over Fuzz/ledger.tsv (every
# run `make fuzz` recorded: ok, interrupted, and failed runs up to their finding), with the share of
# the 10^7 executions a target should reach (issue 14) and the rate of its recent runs.
#   FUZZ_GOAL  executions per target to measure against (default 10000000)
set -euo pipefail
cd "$(dirname "$0")/.."
goal="${FUZZ_GOAL:-10000000}"
awk -F'\t' -v goal="$goal" '
    NR == 1 { next }
    { runs[$3] += $4; seconds[$3] += $5; if (!($3 in order)) { order[$3] = ++n; names[n] = $3 } }
    END {
        printf "%-20s %14s %8s %10s %12s\n", "target", "executions", "of goal", "inputs/s", "to go (h)"
        for (i = 1; i <= n; i++) {
            t = names[i]; rate = seconds[t] > 0 ? runs[t] / seconds[t] : 0
            left = goal - runs[t]; if (left < 0) left = 0
            hours = rate > 0 ? sprintf("%.1f", left / rate / 3600) : "?"
            printf "%-20s %14d %7.0f%% %10.0f %12s\n", t, runs[t], 100 * runs[t] / goal, rate, hours
        }
    }' Fuzz/ledger.tsv
