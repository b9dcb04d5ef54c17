#!/usr/bin/env bash
# Makes sure the C libraries ckpt links (libzip, libdeflate, SQLite) and pkg-config are installed.
#
# Installs what is missing where that needs no question: apt-get or dnf as root or through
# password-less sudo, Homebrew on macOS. Otherwise prints the one command to run and exits 2.
# Called by `make demo` and `make test`; quiet when everything is present.
set -euo pipefail

have_libraries() {
    if command -v pkg-config >/dev/null 2>&1; then
        pkg-config --exists libzip libdeflate sqlite3 && return 0
        # Some distributions ship libdeflate without a .pc file: fall through to the compiler.
    elif [ "$(uname -s)" = Darwin ]; then
        return 1  # Homebrew's headers are found through pkg-config only
    fi
    local cc="${CC:-cc}"
    command -v "$cc" >/dev/null 2>&1 || cc=clang
    printf '#include <zip.h>\n#include <libdeflate.h>\n#include <sqlite3.h>\nint main(void) { return 0; }\n' |
        "$cc" -x c - -o /dev/null -lzip -ldeflate -lsqlite3 >/dev/null 2>&1 &&
        command -v pkg-config >/dev/null 2>&1
}

have_libraries && exit 0

# How to run a command as root without asking anything: directly, or through password-less sudo.
if [ "$(id -u)" = 0 ]; then
    as_root=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    as_root=(sudo -n)
else
    as_root=(false)
fi

stop() {
    echo "ckpt needs libzip, libdeflate and SQLite development files and pkg-config. Run:" >&2
    echo "    $1" >&2
    echo "then run make again." >&2
    exit 2
}

case "$(uname -s)" in
Darwin)
    packages="libzip libdeflate sqlite pkg-config"
    command -v brew >/dev/null 2>&1 || stop "brew install $packages   (Homebrew: https://brew.sh)"
    echo "ckpt: installing $packages with Homebrew" >&2
    # shellcheck disable=SC2086
    brew install $packages || stop "brew install $packages"
    ;;
*)
    if command -v apt-get >/dev/null 2>&1; then
        packages="libzip-dev libdeflate-dev libsqlite3-dev pkg-config"
        command="apt-get update && apt-get install -y $packages"
        [ "${as_root[0]:-}" != false ] || stop "sudo sh -c '$command'"
        echo "ckpt: installing $packages with apt-get" >&2
        # shellcheck disable=SC2086
        { "${as_root[@]}" apt-get update -qq &&
            "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $packages; } ||
            stop "sudo sh -c '$command'"
    elif command -v dnf >/dev/null 2>&1; then
        packages="libzip-devel libdeflate-devel sqlite-devel pkgconf-pkg-config"
        [ "${as_root[0]:-}" != false ] || stop "sudo dnf install -y $packages"
        echo "ckpt: installing $packages with dnf" >&2
        # shellcheck disable=SC2086
        "${as_root[@]}" dnf install -y $packages || stop "sudo dnf install -y $packages"
    else
        stop "your package manager's install of: libzip, libdeflate, sqlite3 (development files), pkg-config"
    fi
    ;;
esac

have_libraries || stop "(the libraries were installed but are still not found by pkg-config or cc; check PKG_CONFIG_PATH)"
