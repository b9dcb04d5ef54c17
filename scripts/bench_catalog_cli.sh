#!/usr/bin/env bash
# `ckpt-tool ls --json` and `ckpt-tool latest` on a catalog of 10,000 checkpoints (CHECKPOINTS to
# change it), release build, whole-process wall time: best and median of 10 runs each. The catalog
# is built in a temporary directory, removed at the end (KEEP_DIR=path keeps and reuses one).
set -euo pipefail
cd "$(dirname "$0")/.."
SWIFT=${SWIFT:-swift}
"$SWIFT" build -c release --product ckpt-tool
"$SWIFT" build -c release --product catalog-cli-bench
bin=$("$SWIFT" build -c release --show-bin-path)
if [ -n "${KEEP_DIR:-}" ]; then
    dir=$KEEP_DIR
else
    dir=$(mktemp -d "${TMPDIR:-/tmp}/ckpt-catalog-bench.XXXXXX")
    trap 'rm -rf "$dir"' EXIT
fi
"$bin/catalog-cli-bench" "$bin/ckpt-tool" "$dir/run" "${CHECKPOINTS:-10000}"
