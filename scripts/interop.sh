#!/usr/bin/env bash
# make interop: real PyTorch reads what ckpt writes.
# Usage: scripts/interop.sh PYTHON CKPT_TOOL
#   PYTHON     a python with torch and safetensors (the venv make uses)
#   CKPT_TOOL  the built ckpt-tool binary
# For every fixture in Tests/Fixtures/pt, ckpt-tool converts it to .ckpt, .pt and .safetensors and
# scripts/interop_check.py compares what torch (and safetensors, and plain zipfile + json) reads
# back with the original. Prints a PASS/FAIL line per check; exits non-zero if any check fails.
set -euo pipefail

if [ "$#" -ne 2 ]; then
    echo "usage: $0 PYTHON CKPT_TOOL" >&2
    exit 2
fi
python=$1
tool=$2
here=$(cd "$(dirname "$0")" && pwd)

if [ ! -x "$python" ]; then
    echo "interop: no python at $python; NOT RUN" >&2
    exit 1
fi
if [ ! -x "$tool" ]; then
    echo "interop: no ckpt-tool at $tool (build it first); NOT RUN" >&2
    exit 1
fi

workdir=$(mktemp -d "${TMPDIR:-/tmp}/ckpt-interop.XXXXXX")
trap 'rm -rf "$workdir"' EXIT

"$python" "$here/interop_check.py" --tool "$tool" --fixtures "$here/../Tests/Fixtures/pt" --workdir "$workdir"
