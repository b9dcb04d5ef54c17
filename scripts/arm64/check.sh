#!/usr/bin/env bash
# Runs the C kernels' portable build on arm64 under qemu and checks that it computes the same bits
# as this machine's baseline build (Adagrad and SGD: every path, dtype and option set, 3 steps).
# Needs Debian's qemu-user, libc6-dev-arm64-cross and libgcc for the cross target; installs them as
# root, else says what to install. `make arm64-check` runs it.
set -euo pipefail
cd "$(dirname "$0")/../.."
packages="qemu-user libc6-dev-arm64-cross gcc-aarch64-linux-gnu"
missing=()
for package in $packages; do dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package"); done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then echo "arm64-check: needs: apt-get install -y ${missing[*]}"; exit 2; fi
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi
gcc_dir=$(ls -d /usr/lib/gcc-cross/aarch64-linux-gnu/* | sort -V | tail -1)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
sources=(scripts/arm64/kernels_check.c Sources/CKernels/*.c Sources/CStats/stats.c)
includes=(-ISources/CKernels/include -ISources/CStats/include)
clang -O2 -Wall -Wextra -Werror "${includes[@]}" "${sources[@]}" -lpthread -lm -o "$out/native"
clang --target=aarch64-linux-gnu --sysroot=/usr/aarch64-linux-gnu --gcc-install-dir="$gcc_dir" \
    --ld-path=/usr/bin/aarch64-linux-gnu-ld -O2 -Wall -Wextra -Werror "${includes[@]}" "${sources[@]}" \
    -lpthread -lm -static -o "$out/arm64"
native=$("$out/native")
arm64=$(qemu-aarch64 "$out/arm64")
echo "native ($(uname -m)): $native"
echo "arm64 (qemu):   $arm64"
# Adagrad and SGD must agree bit for bit; the statistics agree to rounding (line printed for information).
[ "$(echo "$native" | head -2)" = "$(echo "$arm64" | head -2)" ] || { echo "arm64-check: optimizer kernels differ"; exit 1; }
echo "arm64-check: Adagrad and SGD kernels give the same bits on arm64"
