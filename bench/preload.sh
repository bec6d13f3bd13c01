#!/usr/bin/env bash
# bench/preload.sh - wall time of a real program on glibc's malloc and on libcapheap_malloc.so.
#
#   bench/preload.sh [--runs N] [--check] <builddir>
#
# Runs python3 tests/preload/alloc_heavy.py (the allocation-heavy script of the preload
# tests) N times on glibc and N times with LD_PRELOAD=<builddir>/preload/libcapheap_malloc.so,
# interleaved (glibc, capheap, glibc, capheap, ...) so that drift in the machine's speed hits
# both alike, and prints the medians and their ratio. Builds nothing: <builddir> must hold a
# built capheap_malloc target (a Release build for figures worth quoting: `make bench` makes
# one). The outputs of the two programs are compared once, first: a benchmark of a program
# that misbehaves measures nothing.
#
#   --runs N          runs per allocator (default 7)
#   --check           exit 1 when the ratio is above the target (1.30)
#   --python-malloc   run python3 with PYTHONMALLOC=malloc (CPython's small-object pools off:
#                     every object is a malloc; a harder test than the stated figure)
#
# Environment: PYTHON (default /usr/bin/python3 if present, else python3), TASKSET_CPU (pin
# every run to this CPU with taskset when taskset exists; default: no pinning).
set -euo pipefail

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
    exit 2
}

RUNS=7
CHECK=0
TARGET=1.30
while [ $# -gt 0 ]; do
    case "$1" in
        --runs) RUNS="$2"; shift 2 ;;
        --check) CHECK=1; shift ;;
        --python-malloc) export PYTHONMALLOC=malloc; shift ;;
        -h|--help) usage ;;
        -*) echo "preload.sh: unknown option $1" >&2; usage ;;
        *) break ;;
    esac
done
[ $# -eq 1 ] || usage
builddir="$(cd "$1" && pwd)"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
script="$here/../tests/preload/alloc_heavy.py"
lib="$builddir/preload/libcapheap_malloc.so"

if [ -z "${PYTHON:-}" ]; then
    if [ -x /usr/bin/python3 ]; then PYTHON=/usr/bin/python3; else PYTHON=python3; fi
fi
if ! command -v "$PYTHON" >/dev/null 2>&1; then
    echo "preload.sh: $PYTHON not found (Debian: apt-get install -y python3)" >&2
    exit 1
fi
if [ ! -f "$lib" ]; then
    echo "preload.sh: $lib not found; build the capheap_malloc target in $builddir first" >&2
    exit 1
fi
case "$RUNS" in ''|*[!0-9]*|0) echo "preload.sh: --runs needs a positive integer" >&2; exit 2 ;; esac

pin=()
if [ -n "${TASKSET_CPU:-}" ] && command -v taskset >/dev/null 2>&1; then
    pin=(taskset -c "$TASKSET_CPU")
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/capheap-bench-preload.XXXXXX")"
trap 'rm -rf "$work"' EXIT

# run_once <LD_PRELOAD value or empty> <output file>: prints "wall cpu" in microseconds
# (cpu = user + system time of the program: steadier than wall time on a busy machine).
run_once() {
    local preload="$1" out="$2" t
    local TIMEFORMAT='%3R %3U %3S'
    if [ -n "$preload" ]; then
        t=$( { time env LC_ALL=C PYTHONHASHSEED=0 LD_PRELOAD="$preload" "${pin[@]}" "$PYTHON" "$script" \
                   >"$out" 2>/dev/null; } 2>&1 )
    else
        t=$( { time env -u LD_PRELOAD LC_ALL=C PYTHONHASHSEED=0 "${pin[@]}" "$PYTHON" "$script" \
                   >"$out" 2>/dev/null; } 2>&1 )
    fi
    awk '{ printf "%d %d\n", $1 * 1e6, ($2 + $3) * 1e6 }' <<<"$t"
}

# Once each, untimed: same output, and warm caches (page cache, the interpreter's files).
run_once "" "$work/glibc.out" >/dev/null
run_once "$lib" "$work/capheap.out" >/dev/null
if ! cmp -s "$work/glibc.out" "$work/capheap.out"; then
    echo "preload.sh: the script's output differs under libcapheap_malloc.so:" >&2
    diff "$work/glibc.out" "$work/capheap.out" | head -20 >&2
    exit 1
fi

glibc_wall=() glibc_cpu=() capheap_wall=() capheap_cpu=()
for ((i = 1; i <= RUNS; i++)); do
    read -r w c < <(run_once "" /dev/null)
    glibc_wall+=("$w") glibc_cpu+=("$c")
    read -r w c < <(run_once "$lib" /dev/null)
    capheap_wall+=("$w") capheap_cpu+=("$c")
done

# stats <times...>: "median min max" in seconds (3 decimals).
stats() {
    printf '%s\n' "$@" | sort -n | awk '
        { v[NR] = $1 }
        END {
            m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
            printf "%.3f %.3f %.3f\n", m / 1e6, v[1] / 1e6, v[NR] / 1e6
        }'
}
read -r g_med g_min g_max < <(stats "${glibc_wall[@]}")
read -r c_med c_min c_max < <(stats "${capheap_wall[@]}")
read -r g_cpu _ _ < <(stats "${glibc_cpu[@]}")
read -r c_cpu _ _ < <(stats "${capheap_cpu[@]}")
ratio=$(awk -v c="$c_med" -v g="$g_med" 'BEGIN { printf "%.2f", c / g }')
cpu_ratio=$(awk -v c="$c_cpu" -v g="$g_cpu" 'BEGIN { printf "%.2f", c / g }')
verdict=$(awk -v r="$ratio" -v t="$TARGET" 'BEGIN { print (r <= t) ? "within" : "ABOVE" }')
load=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')

echo "preload: $(basename "$PYTHON") tests/preload/alloc_heavy.py${PYTHONMALLOC:+ (PYTHONMALLOC=$PYTHONMALLOC)}, $RUNS runs each, interleaved"
echo "machine: $(uname -m), $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | sed 's/.*: //' || echo unknown), load average $load"
printf '%-10s %10s %10s %10s %12s\n' allocator "median s" "min s" "max s" "median cpu s"
printf '%-10s %10s %10s %10s %12s\n' glibc "$g_med" "$g_min" "$g_max" "$g_cpu"
printf '%-10s %10s %10s %10s %12s\n' capheap "$c_med" "$c_min" "$c_max" "$c_cpu"
echo "ratio capheap/glibc (median wall time): $ratio  (target <= $TARGET: $verdict); cpu time: $cpu_ratio"

if [ "$CHECK" = 1 ] && [ "$verdict" != within ]; then
    exit 1
fi
