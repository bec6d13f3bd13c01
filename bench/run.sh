#!/usr/bin/env bash
# bench/run.sh - run every workload of shared/bench/workloads.md and print the tables.
#
#   bench/run.sh [options] <builddir> [<m32-builddir>]
#
# <builddir> is a configured capheap build directory (Release, -O2 -DNDEBUG, poisoning NONE
# for the targets; `make bench` makes one). The bench programs are (re)built in it first.
# The -m32 figures come from <m32-builddir> if given, else from <builddir>/bench-m32, which
# this script configures (CAPHEAP_M32=ON, same poisoning) and builds when gcc -m32 works.
#
# Options:
#   --runs N          W1 timing runs per allocator and variant (default 5; the median is shown)
#   --no-m32          64-bit only
#   --callgrind LIST  allocators to count with callgrind: "all" (default), "none", or a comma
#                     list such as capheap,glibc
#   --only LIST       workloads to run, comma list of w1,cg,w2,w3,w4 (default all)
#   --no-build        do not (re)build the bench programs
#   --keep DIR        keep the raw result lines in DIR (default: a temporary directory)
#
# W1: each measurement is a separate process, pinned with `taskset -c 1` (when available),
# interleaved round-robin over allocators and variants; the median of the runs is shown.
# Instructions: valgrind --tool=callgrind --toggle-collect=bench_malloc/free/realloc on the
# full 2,000,000-step W1-lite sequence; per-call figures divide by the program's own counts.
set -euo pipefail

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
    exit 2
}

RUNS=5
M32=auto
CG_LIST=all
ONLY=w1,cg,w2,w3,w4
BUILD=1
KEEP=""
ARGS=()
while [ $# -gt 0 ]; do
    case "$1" in
        --runs) RUNS=$2; shift 2 ;;
        --no-m32) M32=no; shift ;;
        --m32) M32=yes; shift ;;
        --callgrind) CG_LIST=$2; shift 2 ;;
        --only) ONLY=$2; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        --keep) KEEP=$2; shift 2 ;;
        -h|--help) usage ;;
        -*) echo "run.sh: unknown option $1" >&2; usage ;;
        *) ARGS+=("$1"); shift ;;
    esac
done
if [ ${#ARGS[@]} -lt 1 ] || [ ${#ARGS[@]} -gt 2 ]; then usage; fi
B=$(cd "${ARGS[0]}" && pwd)
SRC=$(cd "$(dirname "$0")/.." && pwd)
M=""
M_AUTO=0
if [ ${#ARGS[@]} -eq 2 ]; then
    mkdir -p "${ARGS[1]}"
    M=$(cd "${ARGS[1]}" && pwd)
    [ "$M32" = no ] || M32=yes
fi
case "$RUNS" in ''|*[!0-9]*|0) echo "run.sh: --runs needs a positive number" >&2; exit 2 ;; esac
want() { case ",$ONLY," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }

if [ -n "$KEEP" ]; then
    mkdir -p "$KEEP"
    T=$(cd "$KEEP" && pwd)
else
    T=$(mktemp -d /tmp/capheap-bench.XXXXXX)
    trap 'rm -rf "$T"' EXIT
fi

note() { echo "run.sh: $*" >&2; }
cache_value() { # cache_value <builddir> <VAR>
    sed -n "s/^$2:[A-Z]*=//p" "$1/CMakeCache.txt" 2>/dev/null | head -n 1
}

# ------------------------------------------------------------------ build
[ -f "$B/CMakeCache.txt" ] || { note "$B is not a configured build directory"; exit 2; }
if [ "$BUILD" = 1 ]; then
    cmake --build "$B" --target bench_all -j "$(nproc 2>/dev/null || echo 2)" > "$T/build64.log" 2>&1 \
        || { cat "$T/build64.log" >&2; note "building the bench programs failed"; exit 1; }
fi

if [ "$M32" != no ] && [ -z "$M" ]; then
    CC64=$(cache_value "$B" CMAKE_C_COMPILER)
    if echo 'int main(void) { return 0; }' | "${CC64:-cc}" -m32 -x c - -o "$T/m32check" 2> /dev/null; then
        M="$B/bench-m32"
        M_AUTO=1
    elif [ "$M32" = yes ]; then
        note "-m32 requested but ${CC64:-cc} -m32 cannot link (install gcc-multilib)"; exit 1
    else
        note "-m32 skipped: ${CC64:-cc} -m32 cannot link (install gcc-multilib)"
    fi
fi
if [ -n "$M" ] && [ "$BUILD" = 1 ]; then
    # The automatic directory is reconfigured every time so that it follows the main build's
    # type, flags and poisoning; a directory given by the user is only configured if it is new.
    if [ "$M_AUTO" = 1 ] || [ ! -f "$M/CMakeCache.txt" ]; then
        cmake -S "$SRC" -B "$M" -DCAPHEAP_M32=ON \
            -DCMAKE_BUILD_TYPE="$(cache_value "$B" CMAKE_BUILD_TYPE)" \
            -DCMAKE_C_FLAGS_RELEASE="$(cache_value "$B" CMAKE_C_FLAGS_RELEASE)" \
            -DCMAKE_C_COMPILER="$(cache_value "$B" CMAKE_C_COMPILER)" \
            -DCAPHEAP_POISONING="$(cache_value "$B" CAPHEAP_POISONING)" \
            -DCAPHEAP_BUILD_TESTS=OFF -DCAPHEAP_BUILD_EXAMPLES=OFF -DCAPHEAP_BUILD_FUZZ=OFF \
            -DCAPHEAP_BUILD_SHARED=OFF -DCAPHEAP_BUILD_BENCH=ON > "$T/config32.log" 2>&1 \
            || { cat "$T/config32.log" >&2; note "configuring the -m32 build failed"; exit 1; }
    fi
    cmake --build "$M" --target bench_all -j "$(nproc 2>/dev/null || echo 2)" > "$T/build32.log" 2>&1 \
        || { cat "$T/build32.log" >&2; note "building the -m32 bench programs failed"; exit 1; }
fi

# ------------------------------------------------------------------ the peers
ALLOCS="capheap capheap-a8 capheap-locked caps-s3 caps-one glibc mimalloc jemalloc null"
PEERS=() # "alloc:bits:exe"
for bits in 64 32; do
    dir=$B
    [ $bits = 32 ] && dir=$M
    [ -n "$dir" ] || continue
    for a in $ALLOCS; do
        exe="$dir/bench/bench_${a//-/_}"
        if [ -x "$exe" ]; then
            PEERS+=("$a:$bits:$exe")
        elif [ $bits = 64 ]; then
            note "$a skipped: $exe not built (library not found at configure time)"
        fi
    done
done
[ ${#PEERS[@]} -gt 0 ] || { note "no bench programs in $B/bench"; exit 1; }
peer_alloc() { echo "${1%%:*}"; }
peer_bits() { local r=${1#*:}; echo "${r%%:*}"; }
peer_exe() { local r=${1#*:}; echo "${r#*:}"; }
label() { if [ "$2" = 32 ]; then echo "$1 (-m32)"; else echo "$1"; fi; }

PIN=()
if command -v taskset > /dev/null 2>&1 && taskset -c 1 true 2> /dev/null; then
    PIN=(taskset -c 1)
else
    note "taskset or CPU 1 unavailable: W1/W4 runs are not pinned"
fi

# key=value field of a result line: kv <key> (stdin: lines)
kv() { awk -v k="$1" '{ for (i = 1; i <= NF; i++) { n = index($i, "="); if (n && substr($i, 1, n - 1) == k) print substr($i, n + 1) } }'; }
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "n/a"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
fmt() { awk -v f="$1" -v x="$2" 'BEGIN { if (x == "" || x == "n/a") print "n/a"; else printf f, x }'; }
# pass <condition 0/1> -> PASS/FAIL; targets are collected for the summary
SUMMARY=()
verdict() { if [ "$1" = 1 ]; then echo PASS; else echo FAIL; fi; }
target() { # target <ok 0/1> <text>
    SUMMARY+=("$(verdict "$1"): $2")
}
ge() { awk -v a="$1" -v b="$2" 'BEGIN { print (a != "n/a" && a + 0 >= b + 0) ? 1 : 0 }'; }
le() { awk -v a="$1" -v b="$2" 'BEGIN { print (a != "n/a" && a + 0 <= b + 0) ? 1 : 0 }'; }

# ------------------------------------------------------------------ header
GIT=$(git -C "$SRC" rev-parse --short --verify -q HEAD 2> /dev/null || echo "uncommitted (no commit yet)")
if [ -n "$(git -C "$SRC" status --porcelain -- src include bench 2> /dev/null)" ]; then
    GIT="$GIT + uncommitted changes"
fi
CPU=$(lscpu 2> /dev/null | sed -n 's/^Model name: *//p' | head -n 1)
HYP=$(lscpu 2> /dev/null | sed -n 's/^Hypervisor vendor: *//p' | head -n 1)
[ -z "$HYP" ] || CPU="$CPU ($HYP VM)"
first_exe=$(peer_exe "${PEERS[0]}")
INFO=$("$first_exe" info)
echo "# capheap benchmarks"
echo
echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); source: $GIT"
echo "- machine: ${CPU:-unknown CPU}, $(nproc 2> /dev/null || echo '?') CPUs, $(uname -sr)"
echo "- compiler: $(echo "$INFO" | sed -n 's/.*compiler="\([^"]*\)".*/\1/p'); build: $(cache_value "$B" CMAKE_BUILD_TYPE) ($(cache_value "$B" CMAKE_C_FLAGS_RELEASE)), poisoning $(cache_value "$B" CAPHEAP_POISONING); -m32: ${M:-not built}"
echo "- pinning: ${PIN[*]:-none}; W1 runs per figure: $RUNS (median)"
for p in "${PEERS[@]}"; do
    i=$("$(peer_exe "$p")" info)
    printf -- '- %s: %s' "$(label "$(peer_alloc "$p")" "$(peer_bits "$p")")" \
        "$(echo "$i" | sed -n 's/.*describe="\([^"]*\)".*/\1/p')"
    o=$(echo "$i" | kv overhead_256k)
    [ -z "$o" ] || printf '; heap overhead %s B of 256 KiB, %s B of 64 KiB' "$o" "$(echo "$i" | kv overhead_64k)"
    [ "$(echo "$i" | kv optimized)" = 1 ] || printf ' (NOT OPTIMIZED: figures meaningless)'
    echo
done
echo

# ------------------------------------------------------------------ W1 timing
VARIANTS="full lite norealloc"
variant_args() {
    case "$1" in
        full) echo "" ;;
        lite) echo "--lite" ;;
        norealloc) echo "--no-realloc" ;;
    esac
}
if want w1; then
    for ((run = 1; run <= RUNS; run++)); do
        for v in $VARIANTS; do
            for p in "${PEERS[@]}"; do
                # shellcheck disable=SC2046
                "${PIN[@]}" "$(peer_exe "$p")" w1 $(variant_args "$v") \
                    >> "$T/w1.$(peer_alloc "$p").$(peer_bits "$p").$v" \
                    || note "W1 $v of $(peer_alloc "$p") ($(peer_bits "$p")-bit) failed"
            done
        done
    done
    echo "## W1 churn: ns per call (median of $RUNS runs; 2,000,000 steps, seed 1)"
    echo
    echo "Fixed-heap allocators get a 256 KiB heap, so with 4096 slots many calls fail (failed calls count as calls)."
    echo
    echo "| allocator | W1 (S=4096) | W1-lite (S=512) | W1 no-realloc | failed calls W1 / lite / no-realloc |"
    echo "|---|---|---|---|---|"
    for p in "${PEERS[@]}"; do
        a=$(peer_alloc "$p"); bits=$(peer_bits "$p")
        row="| $(label "$a" "$bits")"
        fails=""
        for v in $VARIANTS; do
            f="$T/w1.$a.$bits.$v"
            row="$row | $(fmt %.1f "$(kv ns_per_op < "$f" | median)")"
            fm=$(kv fail_malloc < "$f" | head -n 1); fr=$(kv fail_realloc < "$f" | head -n 1)
            if [ -n "$fm" ]; then fm=$((fm + fr)); else fm=n/a; fi
            fails="$fails${fails:+ / }$fm"
        done
        echo "$row | $fails |"
    done
    echo
fi

# ------------------------------------------------------------------ callgrind
cg_wanted() {
    case "$CG_LIST" in
        all) return 0 ;;
        none) return 1 ;;
        *) case ",$CG_LIST," in *",$1,"*) return 0 ;; *) return 1 ;; esac ;;
    esac
}
# inclusive Ir of a function in a callgrind output file
cg_inclusive() {
    callgrind_annotate --inclusive=yes --threshold=100 "$1" 2> /dev/null \
        | awk -v fn="$2" '!found && $0 ~ ":" fn "( |$)" { gsub(",", "", $1); print $1; found = 1 }'
}
if want cg; then
    if ! command -v valgrind > /dev/null 2>&1 || ! command -v callgrind_annotate > /dev/null 2>&1; then
        note "valgrind not installed: instruction counts skipped (apt-get install valgrind)"
    else
        echo "## Instructions per call (callgrind, W1-lite, 2,000,000 steps; allocator code only)"
        echo
        echo "Inclusive Ir of bench_malloc / bench_free / bench_realloc (the adapter adds 1-3 instructions: see the null row), divided by the number of calls of each kind."
        echo
        echo "| allocator | instr/op | malloc | free | realloc | target |"
        echo "|---|---|---|---|---|---|"
        echo "| ESP-IDF multi_heap, 64-bit (reference, workloads.md) | 168 | 175 | 149 | 286 | |"
        echo "| TLSF reference implementation (reference) | 122 | 137 | 97 | 211 | |"
        for p in "${PEERS[@]}"; do
            a=$(peer_alloc "$p"); bits=$(peer_bits "$p")
            cg_wanted "$a" || continue
            out="$T/cg.$a.$bits.out"
            valgrind --tool=callgrind --callgrind-out-file="$out" \
                --toggle-collect=bench_malloc --toggle-collect=bench_free \
                --toggle-collect=bench_realloc "$(peer_exe "$p")" w1 --lite \
                > "$T/cg.$a.$bits.txt" 2> "$T/cg.$a.$bits.log" \
                || { note "callgrind of $a ($bits-bit) failed: see $T/cg.$a.$bits.log"; continue; }
            line=$(cat "$T/cg.$a.$bits.txt")
            nm=$(echo "$line" | kv n_malloc); nf=$(echo "$line" | kv n_free); nr=$(echo "$line" | kv n_realloc)
            steps=$(echo "$line" | kv steps)
            im=$(cg_inclusive "$out" bench_malloc); ifr=$(cg_inclusive "$out" bench_free)
            ir=$(cg_inclusive "$out" bench_realloc)
            total=$(sed -n 's/^totals: *//p; s/^summary: *//p' "$out" | head -n 1)
            res=$(awk -v t="${total:-0}" -v s="$steps" -v im="${im:-0}" -v nm="$nm" -v if_="${ifr:-0}" \
                -v nf="$nf" -v ir="${ir:-0}" -v nr="$nr" 'BEGIN {
                    printf "%.1f %.1f %.1f %s %.6f", t / s, nm ? im / nm : 0, nf ? if_ / nf : 0,
                        nr ? sprintf("%.1f", ir / nr) : "n/a", t / s }')
            # per_op_exact: the verdicts compare unrounded figures (99.96 must not pass as 100.0)
            read -r per_op per_m per_f per_r per_op_exact <<< "$res"
            echo "$a $bits $per_op $per_m $per_f $per_r $per_op_exact" >> "$T/cg.summary"
            tgt=""
            if [ "$a" = capheap ] && [ "$bits" = 64 ]; then
                ok=$(le "$per_op_exact" 100)
                tgt="<= 100: $(verdict "$ok")"
                target "$ok" "W1-lite instructions/op $per_op <= 100 (capheap, 64-bit)"
            fi
            if [ "$a" = caps-s3 ] || [ "$a" = caps-one ]; then
                base=$(awk -v b="$bits" '$1 == "capheap-locked" && $2 == b { print $7 }' "$T/cg.summary")
                if [ -n "$base" ]; then
                    d=$(awk -v x="$per_op_exact" -v y="$base" 'BEGIN { printf "%.1f", x - y }')
                    d_exact=$(awk -v x="$per_op_exact" -v y="$base" 'BEGIN { printf "%.6f", x - y }')
                    if [ "$a" = caps-s3 ]; then
                        ok=$(le "$d_exact" 15)
                        tgt="routing +$d vs capheap-locked, <= 15: $(verdict "$ok")"
                        target "$ok" "heap_caps routing adds $d instructions/op over multi_heap with the same lock (<= 15, $bits-bit)"
                    else
                        tgt="routing per call, one heap: +$d vs capheap-locked"
                    fi
                fi
            fi
            echo "| $(label "$a" "$bits") | $per_op | $per_m | $per_f | $per_r | $tgt |"
        done
        echo
    fi
fi

# ------------------------------------------------------------------ heap debugging costs
# Tracing and task tracking are build options: two more builds of the caps programs (same
# type and flags as the main build), counted with callgrind like the table above, against the
# main build's programs without debugging, on both maps: the simulated ESP32-S3 (caps-s3) and
# one heap over the driver's 256 KiB region (caps-one, W1-lite's own setting). Targets
# (issue 4): tracing in LEAKS mode with 4096 records at most 2x, task tracking at most 1.3x.
if want cg && command -v valgrind > /dev/null 2>&1 && [ -x "$B/bench/bench_caps_s3" ]; then
    cg_total() { # cg_total <exe>: total Ir per W1-lite step
        valgrind --tool=callgrind --callgrind-out-file="$T/cg.dbg.out" --toggle-collect=bench_malloc \
            --toggle-collect=bench_free --toggle-collect=bench_realloc "$1" w1 --lite > /dev/null 2>&1 || return 1
        sed -n 's/^totals: *//p; s/^summary: *//p' "$T/cg.dbg.out" | head -n 1 | awk '{ printf "%.1f", $1 / 2000000 }'
    }
    dbg_rows=()
    for kind in trace task; do
        D="$B/bench-$kind"
        opt=$([ $kind = trace ] && echo -DCAPHEAP_TRACING=ON || echo -DCAPHEAP_TASK_TRACKING=ON)
        exes=$([ $kind = trace ] && echo "bench_trace_s3 bench_trace_one" || echo "bench_caps_s3_task bench_caps_one_task")
        if [ "$BUILD" = 1 ]; then
            cmake -S "$SRC" -B "$D" $opt -DCMAKE_BUILD_TYPE="$(cache_value "$B" CMAKE_BUILD_TYPE)" \
                -DCMAKE_C_FLAGS_RELEASE="$(cache_value "$B" CMAKE_C_FLAGS_RELEASE)" \
                -DCMAKE_C_COMPILER="$(cache_value "$B" CMAKE_C_COMPILER)" \
                -DCAPHEAP_BUILD_TESTS=OFF -DCAPHEAP_BUILD_EXAMPLES=OFF -DCAPHEAP_BUILD_FUZZ=OFF \
                -DCAPHEAP_BUILD_SHARED=OFF -DCAPHEAP_BUILD_BENCH=ON > "$T/config.$kind.log" 2>&1 \
                && cmake --build "$D" --target $exes -j "$(nproc 2>/dev/null || echo 2)" > "$T/build.$kind.log" 2>&1 \
                || { note "building the $kind bench failed: see $T/build.$kind.log"; continue; }
        fi
        for map in s3 one; do
            exe=$([ $kind = trace ] && echo bench_trace_$map || echo bench_caps_${map}_task)
            [ -x "$B/bench/bench_caps_$map" ] || { note "bench_caps_$map not built"; continue; }
            [ -x "$D/bench/$exe" ] || { note "$kind bench not built ($D/bench/$exe)"; continue; }
            base=$(cg_total "$B/bench/bench_caps_$map") || { note "callgrind of bench_caps_$map failed"; continue; }
            v=$(cg_total "$D/bench/$exe") || { note "callgrind of $exe failed"; continue; }
            limit=$([ $kind = trace ] && echo 2 || echo 1.3)
            r=$(awk -v a="$v" -v b="$base" 'BEGIN { printf "%.2f", a / b }')
            ok=$(le "$r" "$limit")
            what=$([ $kind = trace ] && echo "tracing, LEAKS mode, 4096 records, stack depth $(cache_value "$D" CAPHEAP_TRACE_STACK_DEPTH)" || echo "task tracking")
            dbg_rows+=("| caps-$map | $what | $base | $v | ${r}x | <= ${limit}x: $(verdict "$ok") |")
            target "$ok" "$what costs ${r}x the instructions/op of heap_caps without it (caps-$map; <= ${limit}x)"
        done
    done
    echo "## Heap debugging: instructions per W1-lite step through heap_caps"
    echo
    echo "caps-s3: the simulated ESP32-S3; caps-one: one heap over the 256 KiB region."
    echo
    echo "| map | build | without | with | ratio | target |"
    echo "|---|---|---|---|---|---|"
    for row in "${dbg_rows[@]}"; do
        echo "$row"
    done
    echo
fi

# ------------------------------------------------------------------ W2
if want w2; then
    echo "## W2 fragmentation to failure: fraction of the 256 KiB heap live at the first failure (20 seeds)"
    echo
    echo "| allocator | build | median | worst seed | best seed | target (median >= 0.95, worst >= 0.90) |"
    echo "|---|---|---|---|---|---|"
    echo "| ESP-IDF multi_heap (reference) | 64-bit | 0.914 | 0.801 | | |"
    echo "| ESP-IDF multi_heap (reference) | -m32 | 0.930 | 0.887 | | |"
    for p in "${PEERS[@]}"; do
        a=$(peer_alloc "$p"); bits=$(peer_bits "$p")
        "$(peer_exe "$p")" w2 > "$T/w2.$a.$bits" || note "W2 of $a ($bits-bit) failed"
        line=$(grep '^w2 ' "$T/w2.$a.$bits" || echo "w2 n/a (failed)")
        bl=$([ "$bits" = 32 ] && echo -m32 || echo 64-bit)
        case "$line" in
            *n/a*) [ "$bits" = 64 ] && echo "| $a | $bl | n/a | n/a | n/a | |"; continue ;;
        esac
        med=$(echo "$line" | kv median); lo=$(echo "$line" | kv min); hi=$(echo "$line" | kv max)
        tgt=""
        if [ "$a" = capheap ]; then
            ok=$(( $(ge "$med" 0.95) && $(ge "$lo" 0.90) ))
            tgt=$(verdict $ok)
            target "$ok" "W2 $bl median $med >= 0.95 and worst $lo >= 0.90 (capheap)"
        fi
        echo "| $a | $bl | $(fmt %.3f "$med") | $(fmt %.3f "$lo") | $(fmt %.3f "$hi") | $tgt |"
    done
    echo
fi

# ------------------------------------------------------------------ W3
W3_N="1 8 16 24 32 64 100 256 1000"
# ESP-IDF multi_heap at -m32 (shared/bench/workloads.md): the floor capheap must reach.
W3_ESP="0.062 0.494 0.790 0.846 0.878 0.929 0.949 0.969 0.946"
if want w3; then
    echo "## W3 fixed-size overhead: 64 KiB heap filled with N-byte blocks, count x N / 65536"
    echo
    hdr="| allocator | build"; sep="|---|---"
    for n in $W3_N; do hdr="$hdr | N=$n"; sep="$sep|---"; done
    echo "$hdr | target |"
    echo "$sep|---|"
    row="| ESP-IDF multi_heap (reference floor) | -m32"
    for x in $W3_ESP; do row="$row | $x"; done
    echo "$row | |"
    for p in "${PEERS[@]}"; do
        a=$(peer_alloc "$p"); bits=$(peer_bits "$p")
        "$(peer_exe "$p")" w3 > "$T/w3.$a.$bits" || note "W3 of $a ($bits-bit) failed"
        bl=$([ "$bits" = 32 ] && echo -m32 || echo 64-bit)
        if grep -q 'n/a' "$T/w3.$a.$bits"; then
            continue
        fi
        row="| $a | $bl"
        ok=1
        i=0
        failed_at=""
        for n in $W3_N; do
            i=$((i + 1))
            x=$(grep " n=$n " "$T/w3.$a.$bits" | kv fraction || true)
            x3=$(fmt %.3f "$x")
            row="$row | $x3"
            floor=$(echo "$W3_ESP" | awk -v i=$i '{ print $i }')
            # ESP-IDF's row has 3 decimals: compared at those (an equal count can round either
            # way). The issue's own 0.97 at N = 1000 is exact: the unrounded fraction against it
            # (0.9695 must not pass as 0.970).
            if [ "$(ge "$x3" "$floor")" != 1 ]; then ok=0; failed_at="$failed_at N=$n ($x3 < $floor)"; fi
            if [ "$n" = 1000 ] && [ "$(ge "$x" 0.97)" != 1 ]; then ok=0; failed_at="$failed_at N=$n ($x < 0.97)"; fi
        done
        tgt=""
        if [ "$a" = capheap ]; then
            tgt=$(verdict $ok)
            target "$ok" "W3 $bl >= ESP-IDF -m32 at every N, >= 0.97 at N=1000 (capheap)${failed_at:+:$failed_at}"
        fi
        echo "$row | $tgt |"
    done
    echo "(host allocators: n/a, no fixed heap)"
    echo
fi

# ------------------------------------------------------------------ W4
if want w4; then
    for p in "${PEERS[@]}"; do
        "${PIN[@]}" "$(peer_exe "$p")" w4 > "$T/w4.$(peer_alloc "$p").$(peer_bits "$p")" \
            || note "W4 of $(peer_alloc "$p") ($(peer_bits "$p")-bit) failed"
    done
    tsc=$(grep -h '^w4tsc' "$T"/w4.* | head -n 1 || true)
    echo "## W4 per-call latency, ns (W1 sequence replayed 5 times in one process; bracket included)"
    echo
    echo "TSC $(fmt %.3f "$(echo "$tsc" | kv tsc_ghz)") GHz; an empty lfence/rdtsc/rdtscp bracket costs $(fmt %.1f "$(echo "$tsc" | kv bracket_ns)") ns (in every figure). Raw: median over the 5 replays of each replay's statistic. Denoised: statistics of the element-wise minimum over the 5 replays."
    echo
    echo "| allocator | call | raw median | raw p99 | raw p99.9 | raw max | denoised median | p99 | p99.9 | max | max/median | target (max <= 3x median) |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
    for p in "${PEERS[@]}"; do
        a=$(peer_alloc "$p"); bits=$(peer_bits "$p")
        f="$T/w4.$a.$bits"
        if grep -q '^w4 .*n/a' "$f"; then
            echo "| $(label "$a" "$bits") | $(grep '^w4 .*n/a' "$f" | sed 's/.*n\/a/n\/a/') |"
        fi
        for op in malloc free realloc; do
            raw=$(grep "^w4 .* op=$op stat=raw" "$f" || true)
            den=$(grep "^w4 .* op=$op stat=denoised" "$f" || true)
            [ -n "$raw" ] || continue
            row="| $(label "$a" "$bits") | $op"
            for k in median_ns p99_ns p999_ns max_ns; do
                row="$row | $(fmt %.0f "$(echo "$raw" | kv $k)")"
            done
            if [ -n "$den" ]; then
                for k in median_ns p99_ns p999_ns max_ns; do
                    row="$row | $(fmt %.0f "$(echo "$den" | kv $k)")"
                done
                ratio=$(echo "$den" | kv max_over_median)
                row="$row | $(fmt %.2f "$ratio")"
            else
                row="$row | n/a | n/a | n/a | n/a | n/a"
                ratio=n/a
            fi
            tgt=""
            if [ "$a" = capheap ] && [ "$bits" = 64 ] && [ "$op" != realloc ]; then
                ok=$(le "$ratio" 3)
                tgt=$(verdict "$ok")
                target "$ok" "W4 denoised worst $op $(fmt %.0f "$(echo "$den" | kv max_ns)") ns <= 3 x median $(fmt %.0f "$(echo "$den" | kv median_ns)") ns (capheap, 64-bit; ratio $(fmt %.2f "$ratio"))"
            fi
            echo "$row | $tgt |"
        done
    done
    echo
fi

# ------------------------------------------------------------------ summary
if [ ${#SUMMARY[@]} -gt 0 ]; then
    echo "## Targets (capheap, no poisoning, no lock)"
    echo
    for s in "${SUMMARY[@]}"; do echo "- $s"; done
    echo
fi
[ -z "$KEEP" ] || note "raw result lines kept in $T"
