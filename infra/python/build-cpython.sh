#!/usr/bin/env bash
# Build CPython 3.13 from source into PREFIX, for tasq-bench.
#
#   bash infra/python/build-cpython.sh PREFIX     # e.g. ~/.cache/tasq-bench/python-3.13
#
# Source of the code, in this order:
#   1. $CPYTHON_SRC: path to an upstream Python-3.13.x.tar.xz (or .tgz) tarball;
#   2. a tarball downloaded earlier into "$(dirname PREFIX)/downloads/";
#   3. on Debian/Ubuntu with apt: the pristine upstream tarball shipped in Debian trixie's
#      `python3.13` source package (python3.13_3.13.X.orig.tar.xz), fetched with
#      `apt-get source --download-only` after adding a deb-src entry for trixie
#      (/etc/apt/sources.list.d/tasq-bench-trixie-src.sources). apt checks it against the
#      signed Sources index, so its integrity is verified.
#
# The interpreter is configured with --prefix=PREFIX, installed with ensurepip (pip + venv),
# staged under PREFIX.tmp (make install DESTDIR=...), checked, then moved to PREFIX with one
# rename, so a half-built interpreter is never found at PREFIX. Running it again when PREFIX
# already holds a working interpreter does nothing. Needs: a C compiler, make, and the -dev
# packages below (installed with apt-get when missing, with sudo when not root).
#
# Environment: CPYTHON_SRC (tarball), VERBOSE=1 (stream configure/make output instead of
# logging it to PREFIX.build.log), JOBS (parallel make jobs; default: nproc).
set -euo pipefail

say() { printf '[build-cpython] %s\n' "$*"; }
die() { printf '[build-cpython] ERROR: %s\n' "$*" >&2; exit 1; }

[[ $# -eq 1 && -n "$1" ]] || die "usage: $0 PREFIX   (e.g. \$HOME/.cache/tasq-bench/python-3.13)"

WANT_MINOR="3.13"
PREFIX="$(realpath -m -- "$1")"
PARENT="$(dirname -- "$PREFIX")"
STAGE="${PREFIX}.tmp"              # DESTDIR of `make install`; files land in $STAGE$PREFIX
LOG="${PREFIX}.build.log"
DOWNLOADS="${PARENT}/downloads"
MARKER=".tasq-bench-build"         # written into PREFIX by this script
REQUIRED_MODULES="ssl, ctypes, sqlite3, lzma, bz2, zlib, uuid, venv, ensurepip"
CHECK_CODE="import sys, ${REQUIRED_MODULES}; print(sys.version.split()[0])"
JOBS="${JOBS:-$(nproc 2>/dev/null || echo 2)}"
START=$(date +%s)

# check PYTHON: prints the version and succeeds when PYTHON imports every required module.
check() { "$1" -c "$CHECK_CODE" 2>&1; }

mkdir -p -- "$PARENT"

# One build per PREFIX at a time: a second caller waits, then finds the finished interpreter.
if command -v flock >/dev/null 2>&1; then
    exec 9>"${PREFIX}.lock"
    if ! flock -n 9; then
        say "another build of $PREFIX is running; waiting for it (lock ${PREFIX}.lock)"
        flock 9
    fi
fi

# ---- 0. already built? ------------------------------------------------------------------
if [[ -x "$PREFIX/bin/python$WANT_MINOR" ]]; then
    if v=$(check "$PREFIX/bin/python$WANT_MINOR"); then
        say "already built: $PREFIX/bin/python$WANT_MINOR (Python $v); nothing to do"
        exit 0
    fi
    if [[ -f "$PREFIX/$MARKER" ]]; then
        say "existing interpreter at $PREFIX is broken ($v); removing it and rebuilding"
        rm -rf -- "$PREFIX"
    else
        die "$PREFIX exists but its python$WANT_MINOR fails ($v) and was not built by this script; remove it or choose another PREFIX"
    fi
elif [[ -e "$PREFIX" ]]; then
    if [[ -f "$PREFIX/$MARKER" || -z "$(ls -A -- "$PREFIX")" ]]; then
        rm -rf -- "$PREFIX"
    else
        die "$PREFIX exists but holds no python$WANT_MINOR; remove it or choose another PREFIX"
    fi
fi
rm -rf -- "$STAGE"
: >"$LOG"
say "building CPython $WANT_MINOR into $PREFIX"

# ---- helpers for root / apt -------------------------------------------------------------
SUDO=()
if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO=(sudo -n)
    else
        SUDO=(NO_ROOT)
    fi
fi
as_root() {
    if [[ "${SUDO[0]:-}" == NO_ROOT ]]; then
        die "needs root for: $* — run it yourself (or as root), or set CPYTHON_SRC=/path/to/Python-3.13.x.tar.xz and install the build dependencies, then re-run"
    fi
    "${SUDO[@]}" "$@"
}
have_apt() { command -v apt-get >/dev/null 2>&1 && command -v dpkg >/dev/null 2>&1; }

# ---- 1. build dependencies --------------------------------------------------------------
BUILD_DEPS=(build-essential pkg-config xz-utils libssl-dev libffi-dev zlib1g-dev libbz2-dev
            liblzma-dev libsqlite3-dev uuid-dev libreadline-dev libncurses-dev libgdbm-dev)
if have_apt; then
    missing=()
    for p in "${BUILD_DEPS[@]}"; do
        dpkg -s "$p" 2>/dev/null | grep -q '^Status: install ok installed' || missing+=("$p")
    done
    if ((${#missing[@]})); then
        say "installing build dependencies with apt-get: ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        if ! as_root apt-get install -y -q --no-install-recommends "${missing[@]}" >>"$LOG" 2>&1; then
            say "apt-get install failed; running apt-get update and trying again"
            as_root apt-get update -q >>"$LOG" 2>&1 || true
            as_root apt-get install -y -q --no-install-recommends "${missing[@]}" >>"$LOG" 2>&1 ||
                die "could not install ${missing[*]} (see $LOG)"
        fi
    else
        say "build dependencies already installed"
    fi
else
    for t in cc make tar xz; do
        command -v "$t" >/dev/null 2>&1 || die "'$t' not found; install a C toolchain and the development headers of OpenSSL, libffi, zlib, bzip2, xz/lzma, SQLite, libuuid, readline, ncurses"
    done
    say "no apt-get here: assuming OpenSSL, libffi, zlib, bzip2, lzma, SQLite, uuid headers are installed"
fi

# ---- 2. source tarball ------------------------------------------------------------------
WORK="$(mktemp -d "${TMPDIR:-/tmp}/tasq-bench-cpython.XXXXXX")"
cleanup() { rm -rf -- "$WORK" "$STAGE"; }
trap cleanup EXIT

# Fetch python3.13's orig tarball from Debian trixie's source package into $DOWNLOADS;
# sets TARBALL.
fetch_from_debian() {
    have_apt || die "no source: set CPYTHON_SRC=/path/to/Python-3.13.x.tar.xz (apt-get not available to fetch one)"
    local uris="" keyring="" line
    if [[ -r /etc/apt/sources.list.d/debian.sources ]]; then
        # First deb822 stanza that is not the security archive: its URIs and Signed-By file.
        line=$(awk 'BEGIN { RS = ""; FS = "\n" }
            { u = ""; k = ""; sec = 0
              for (i = 1; i <= NF; i++) {
                if ($i ~ /^URIs:/)      { u = $i; sub(/^URIs:[ \t]*/, "", u) }
                if ($i ~ /^Signed-By:/) { k = $i; sub(/^Signed-By:[ \t]*/, "", k) }
                if ($i ~ /^Suites:.*security/) sec = 1 }
              if (u != "" && !sec && u !~ /security/) { print u "\t" k; exit } }' \
            /etc/apt/sources.list.d/debian.sources)
        uris="${line%%$'\t'*}"
        keyring="${line#*$'\t'}"
    fi
    [[ -n "$uris" ]] || uris="http://deb.debian.org/debian"
    [[ "$keyring" == /* && -r "$keyring" ]] || keyring="/usr/share/keyrings/debian-archive-keyring.gpg"
    [[ -r "$keyring" ]] || die "Debian archive keyring $keyring not found (install debian-archive-keyring), or set CPYTHON_SRC"

    local list=/etc/apt/sources.list.d/tasq-bench-trixie-src.sources
    local want
    want=$(printf 'Types: deb-src\nURIs: %s\nSuites: trixie\nComponents: main\nSigned-By: %s\n' "$uris" "$keyring")
    if [[ ! -f "$list" || "$(cat "$list")" != "$want" ]]; then
        say "adding deb-src entry for Debian trixie: $list ($uris)"
        printf '%s\n' "$want" | as_root tee "$list" >/dev/null
    fi
    # Only this source is refreshed; List-Cleanup=0 keeps the other sources' lists.
    local aptopts=(-o "Dir::Etc::sourcelist=$list" -o "Dir::Etc::sourceparts=-" -o "APT::Get::List-Cleanup=0")
    say "apt-get update (trixie deb-src only)"
    as_root apt-get "${aptopts[@]}" update -q >>"$LOG" 2>&1 || die "apt-get update of $list failed (see $LOG); or set CPYTHON_SRC"
    say "apt-get source --download-only python3.13"
    mkdir -p "$WORK/debsrc"
    (cd "$WORK/debsrc" && apt-get "${aptopts[@]}" source --download-only -q python3.13) >>"$LOG" 2>&1 ||
        die "apt-get source python3.13 failed (see $LOG); or set CPYTHON_SRC=/path/to/Python-3.13.x.tar.xz"
    local orig
    orig=$(ls "$WORK"/debsrc/python3.13_3.13.*.orig.tar.* 2>/dev/null | head -n1)
    [[ -n "$orig" ]] || die "no python3.13_*.orig.tar.* in the Debian source package (see $LOG)"
    mkdir -p "$DOWNLOADS"
    cp -- "$orig" "$DOWNLOADS/"
    TARBALL="$DOWNLOADS/$(basename -- "$orig")"
}

if [[ -n "${CPYTHON_SRC:-}" ]]; then
    [[ -r "$CPYTHON_SRC" ]] || die "CPYTHON_SRC=$CPYTHON_SRC is not a readable file"
    TARBALL="$(realpath -- "$CPYTHON_SRC")"
    say "source: \$CPYTHON_SRC = $TARBALL"
else
    TARBALL=$(ls -t "$DOWNLOADS"/python3.13_3.13.*.orig.tar.* "$DOWNLOADS"/Python-3.13.*.tar.* 2>/dev/null | head -n1 || true)
    if [[ -n "$TARBALL" ]]; then
        say "source: previously downloaded $TARBALL"
    else
        fetch_from_debian
        say "source: Debian trixie python3.13 orig tarball, $TARBALL"
    fi
fi

say "unpacking $(basename -- "$TARBALL")"
mkdir -p "$WORK/src"
tar -xf "$TARBALL" -C "$WORK/src" --strip-components=1 || die "cannot unpack $TARBALL"
SRC="$WORK/src"
[[ -f "$SRC/configure" && -f "$SRC/Include/patchlevel.h" ]] || die "$TARBALL does not look like a CPython source tarball"
VERSION=$(sed -n 's/^#define PY_VERSION[[:space:]]*"\(.*\)"/\1/p' "$SRC/Include/patchlevel.h")
[[ "$VERSION" == "$WANT_MINOR".* ]] || die "$TARBALL is Python $VERSION; this script builds $WANT_MINOR.x"
say "building Python $VERSION with $JOBS jobs (log: $LOG)"

run_logged() { # step description, command...
    local what="$1"; shift
    local t0=$(date +%s)
    say "$what ..."
    if [[ "${VERBOSE:-0}" == 1 ]]; then
        "$@" 2>&1 | tee -a "$LOG"
        local rc=${PIPESTATUS[0]}
    else
        local rc=0
        "$@" >>"$LOG" 2>&1 || rc=$?
    fi
    if ((rc != 0)); then
        printf '[build-cpython] --- last 40 lines of %s ---\n' "$LOG" >&2
        tail -n 40 "$LOG" >&2
        die "$what failed (exit $rc); full log: $LOG"
    fi
    say "$what done in $(( $(date +%s) - t0 ))s"
}

cd "$SRC"
run_logged "configure" ./configure --prefix="$PREFIX" --with-ensurepip=install
run_logged "make -j$JOBS" make -j"$JOBS"
run_logged "make install (staged in $STAGE)" make install DESTDIR="$STAGE"

# ---- 3. check the staged interpreter, then publish it with one rename -------------------
STAGED="$STAGE$PREFIX"
[[ -x "$STAGED/bin/python$WANT_MINOR" ]] || die "make install did not produce bin/python$WANT_MINOR"
if ! out=$(check "$STAGED/bin/python$WANT_MINOR"); then
    printf '%s\n' "$out" >&2
    grep -A3 -E "necessary bits to build these optional modules|Failed to build these modules|could not build" "$LOG" >&2 || true
    die "the built interpreter lacks a required module (${REQUIRED_MODULES}); install the matching -dev package and re-run"
fi
printf 'version=%s\nsource=%s\nbuilt=%s\n' "$VERSION" "$(basename -- "$TARBALL")" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$STAGED/$MARKER"
mv -T -- "$STAGED" "$PREFIX"
rm -rf -- "$STAGE"

v=$(check "$PREFIX/bin/python$WANT_MINOR") || die "interpreter at $PREFIX fails after the move: $v"
"$PREFIX/bin/python$WANT_MINOR" -m pip --version >/dev/null 2>&1 || die "pip is missing from $PREFIX (ensurepip failed?)"
say "OK: Python $v at $PREFIX/bin/python$WANT_MINOR (ssl, ctypes, sqlite3, lzma, bz2, zlib, uuid, pip) in $(( $(date +%s) - START ))s"
