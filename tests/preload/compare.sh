#!/usr/bin/env bash
# tests/preload/compare.sh - run a real program with and without libcapheap_malloc.so and
# require the same stdout and the same exit status.
#
#   compare.sh [--env NAME=VALUE]... <libcapheap_malloc.so> <stdin-file or -> <program> [args...]
#
# --env sets a variable for both runs (e.g. PYTHONMALLOC=malloc: every Python object through
# malloc instead of CPython's own small-object pools).
#
# Exit status: 0 outputs equal; 1 they differ, a run failed, or the preload did not take
# effect; 77 (CTest's SKIP_RETURN_CODE) the program is not installed.
#
# Guards against a vacuous pass: the dynamic loader does not fail when it cannot preload an
# object, it prints "cannot be preloaded ... ignored" and runs the program on glibc. So the
# preloaded run's stderr is searched for that message, and a probe (the same loader, the same
# LD_PRELOAD, reading /proc/self/maps) must show the library mapped.
#
# The environment is pinned for both runs (LC_ALL=C, PYTHONHASHSEED=0, no MALLOC_* tuning)
# so that the only difference between them is LD_PRELOAD.
set -uo pipefail

extra_env=()
while [ $# -gt 0 ] && [ "$1" = --env ]; do
    extra_env+=("$2")
    shift 2
done
if [ $# -lt 3 ]; then
    sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
fi
lib="$1"
input="$2"
shift 2
program="$1"

if ! command -v "$program" >/dev/null 2>&1; then
    echo "SKIP: '$program' is not installed (Debian: apt-get install -y $(basename "$program"))"
    exit 77
fi
if [ ! -f "$lib" ]; then
    echo "FAIL: $lib does not exist (build the capheap_malloc target)" >&2
    exit 1
fi
case "$lib" in /*) ;; *) lib="$(pwd)/$lib" ;; esac

work="$(mktemp -d "${TMPDIR:-/tmp}/capheap-preload.XXXXXX")"
trap 'rm -rf "$work"' EXIT

run() { # run <tag> <LD_PRELOAD value or empty>
    local tag="$1" preload="$2" rc
    shift 2
    local -a envs=(-u MALLOC_CHECK_ -u MALLOC_PERTURB_ -u LD_PRELOAD LC_ALL=C PYTHONHASHSEED=0
                   PYTHONDONTWRITEBYTECODE=1 "${extra_env[@]}")
    [ -n "$preload" ] && envs+=(LD_PRELOAD="$preload")
    local start end
    start=$(date +%s%N)
    if [ "$input" = - ]; then
        env "${envs[@]}" "$@" </dev/null >"$work/$tag.out" 2>"$work/$tag.err"
    else
        env "${envs[@]}" "$@" <"$input" >"$work/$tag.out" 2>"$work/$tag.err"
    fi
    rc=$?
    end=$(date +%s%N)
    echo "$rc" >"$work/$tag.rc"
    printf '%-8s exit %d, %d lines of output, %d ms\n' "$tag" "$rc" "$(wc -l <"$work/$tag.out")" \
        $(( (end - start) / 1000000 ))
}

run glibc "" "$@"
run capheap "$lib" "$@"

status=0
if grep -q "cannot be preloaded" "$work/capheap.err"; then
    echo "FAIL: the loader ignored the preload:" >&2
    cat "$work/capheap.err" >&2
    status=1
fi
maps="$(env LD_PRELOAD="$lib" cat /proc/self/maps 2>/dev/null || true)"
if [[ "$maps" != *libcapheap_malloc* ]]; then
    echo "FAIL: probe: LD_PRELOAD=$lib does not map the library into a process" >&2
    status=1
fi
rc_glibc="$(cat "$work/glibc.rc")"
rc_capheap="$(cat "$work/capheap.rc")"
if [ "$rc_glibc" != 0 ]; then
    echo "FAIL: the program fails without the preload (exit $rc_glibc); its stderr:" >&2
    tail -n 20 "$work/glibc.err" >&2
    status=1
fi
if [ "$rc_capheap" != "$rc_glibc" ]; then
    echo "FAIL: exit status $rc_capheap under capheap, $rc_glibc under glibc; stderr under capheap:" >&2
    tail -n 40 "$work/capheap.err" >&2
    status=1
fi
if ! cmp -s "$work/glibc.out" "$work/capheap.out"; then
    echo "FAIL: stdout differs (< glibc, > capheap):" >&2
    diff "$work/glibc.out" "$work/capheap.out" | head -n 40 >&2
    status=1
fi
if [ "$status" = 0 ]; then
    echo "PASS: identical output ($(wc -c <"$work/glibc.out") bytes) with and without $(basename "$lib")"
fi
exit "$status"
