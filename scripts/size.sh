#!/usr/bin/env bash
# scripts/size.sh - what a firmware pays for capheap (`make size`).
#
#   scripts/size.sh [--werror] [BUILD_ROOT]     (BUILD_ROOT defaults to build/size)
#
# For Cortex-M4 (arm-none-eabi-gcc -mcpu=cortex-m4 -mthumb) and RV32IMC
# (riscv64-unknown-elf-gcc -march=rv32imc_zicsr -mabi=ilp32, picolibc):
#   1. builds libcapheap.a with the toolchain file cmake/toolchain-<target>.cmake:
#      CAPHEAP_PORT=baremetal, no poisoning, MinSizeRel (-Os -DNDEBUG),
#      -ffunction-sections -fdata-sections (with --werror: CAPHEAP_WERROR=ON);
#   2. links tools/size/size_main.c (register + malloc, aligned_alloc, realloc, free)
#      against it with -Wl,--gc-sections and a linker map;
#   3. capheap text = the sizes of the .text* and .rodata* (.srodata* on RISC-V) input
#      sections that come from libcapheap.a members and survive --gc-sections, read from
#      the linker map (so static functions, literal pools and constant tables count);
#      program text = the `text` column of binutils `size` for the whole image (startup
#      code and the C library's memcpy/memset included); for the heap_caps program, table =
#      the part of capheap text that is the chip table's data (chips/$SIZE_CHIP.c).
# Per-heap RAM metadata: capheap_heap_overhead() for a 64 KiB and a 256 KiB region,
# measured by tools/size/overhead_main.c on a -m32 host build (64-bit if -m32 cannot link).
#
# Budgets (issue 2): text <= 2500 B (Cortex-M4), <= 3000 B (RV32IMC); metadata <= 812 B
# (64 KiB), <= 948 B (256 KiB). Figures over budget print an "OVER BUDGET" line. The exit
# status is non-zero only when something fails to build: the figures are a report.
set -euo pipefail

werror=OFF
build_root=""
for arg in "$@"; do
    case "$arg" in
        --werror) werror=ON ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        -*) echo "size.sh: unknown option '$arg'" >&2; exit 2 ;;
        *) build_root="$arg" ;;
    esac
done

src_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_root="${build_root:-$src_root/build/size}"
mkdir -p "$build_root"
build_root="$(cd "$build_root" && pwd)"
jobs="${CAPHEAP_JOBS:-2}"

declare -A CC=([cortex-m4]=arm-none-eabi-gcc [rv32imc]=riscv64-unknown-elf-gcc)
declare -A SIZE=([cortex-m4]=arm-none-eabi-size [rv32imc]=riscv64-unknown-elf-size)
declare -A NAME=([cortex-m4]="Cortex-M4" [rv32imc]="RV32IMC")
declare -A TEXT_BUDGET=([cortex-m4]=2500 [rv32imc]=3000)
# heap_caps (issue 3): caps_size_main, heap_caps_init from the ESP32-S3 table + the four calls.
declare -A CAPS_BUDGET=([cortex-m4]=4500 [rv32imc]=5300)
# The ESP32-S3's default configuration has memory protection on, so ESP-IDF builds it with
# CONFIG_HEAP_HAS_EXEC_HEAP=n: capheap's CAPHEAP_EXEC_HEAP=OFF is the same choice.
SIZE_CHIP="${SIZE_CHIP:-esp32s3}"
# Compile flags: the same as the toolchain files.
declare -A ARCH=(
    [cortex-m4]="-mcpu=cortex-m4 -mthumb"
    [rv32imc]="-march=rv32imc_zicsr -mabi=ilp32 --specs=picolibc.specs")
# Link: the C library's own startup code. newlib-nano + nosys on Arm; picolibc's minimal
# crt0 on RISC-V. Debian's riscv64-unknown-elf-gcc has no multilib for "rv32imc_zicsr", so
# the link step names rv32imc, which selects the rv32im/ilp32 picolibc and libgcc.
declare -A LINK=(
    [cortex-m4]="-mcpu=cortex-m4 -mthumb --specs=nano.specs --specs=nosys.specs"
    [rv32imc]="-march=rv32imc -mabi=ilp32 --specs=picolibc.specs --crt0=minimal")
SECTION_FLAGS="-ffunction-sections -fdata-sections"

log() { printf '%s\n' "$*" >&2; }

# Sum of the capheap input sections kept in the image, from a GNU ld map file.
# Prints "<code bytes> <rodata bytes> <chip table bytes>": the third is the part of
# the first two that comes from the chip table's object (chips/$SIZE_CHIP.c).
capheap_bytes_from_map() {
    awk -v chip="$SIZE_CHIP.c.obj" '
        /^Linker script and memory map/ { in_map = 1; next }
        !in_map { next }
        # An input section line: " .name  0xADDR  0xSIZE  file"; a long name puts the
        # rest on the next line.
        /^ \.[^ ]+$/ { pending = $1; next }
        {
            if (pending != "" && $1 ~ /^0x/) { name = pending; addr = $1; size = $2; file = $3 }
            else if ($1 ~ /^\./ && $2 ~ /^0x/ && NF >= 4) { name = $1; addr = $2; size = $3; file = $4 }
            else { pending = ""; next }
            pending = ""
            if (file !~ /libcapheap\.a\(/) next
            bytes = strtonum_hex(size)
            if (name ~ /^\.text/) code += bytes
            else if (name ~ /^\.s?rodata/) ro += bytes
            else next
            if (index(file, "(" chip ")") > 0) table += bytes
        }
        function strtonum_hex(s,   i, c, v, d) {
            v = 0
            s = tolower(s)
            sub(/^0x/, "", s)
            for (i = 1; i <= length(s); i++) {
                c = substr(s, i, 1)
                d = index("0123456789abcdef", c) - 1
                if (d < 0) break
                v = v * 16 + d
            }
            return v
        }
        END { printf "%d %d %d\n", code, ro, table }
    ' "$1"
}

# Per-object breakdown of the kept capheap sections (for the detail listing).
capheap_detail_from_map() {
    awk '
        /^Linker script and memory map/ { in_map = 1; next }
        !in_map { next }
        /^ \.[^ ]+$/ { pending = $1; next }
        {
            if (pending != "" && $1 ~ /^0x/) { name = pending; size = $2; file = $3 }
            else if ($1 ~ /^\./ && $2 ~ /^0x/ && NF >= 4) { name = $1; size = $3; file = $4 }
            else { pending = ""; next }
            pending = ""
            if (file !~ /libcapheap\.a\(/ || name !~ /^\.(text|s?rodata)/) next
            sub(/.*libcapheap\.a\(/, "", file); sub(/\)$/, "", file)
            s = tolower(size); sub(/^0x/, "", s); v = 0
            for (i = 1; i <= length(s); i++) v = v * 16 + index("0123456789abcdef", substr(s, i, 1)) - 1
            if (v > 0) printf "    %-28s %-40s %6d\n", file, name, v
        }
    ' "$1"
}

results=()
caps_results=()
over=()
failed=0

for target in cortex-m4 rv32imc; do
    cc="${CC[$target]}"
    if ! command -v "$cc" >/dev/null 2>&1; then
        log "size.sh: $cc not found (run scripts/deps.sh --ci); ${NAME[$target]} skipped"
        results+=("$(printf '%-10s %s' "${NAME[$target]}" "skipped: $cc not installed")")
        failed=1
        continue
    fi
    bdir="$build_root/$target"
    log "== ${NAME[$target]}: building libcapheap.a in $bdir"
    # The section flags go through CFLAGS: a -DCMAKE_C_FLAGS would replace the toolchain
    # file's CMAKE_C_FLAGS_INIT (the -mcpu/-march flags). A fresh directory each time, so
    # the flags cannot go stale.
    rm -rf "$bdir"
    CFLAGS="$SECTION_FLAGS" cmake -S "$src_root" -B "$bdir" \
        -DCMAKE_TOOLCHAIN_FILE="$src_root/cmake/toolchain-$target.cmake" \
        -DCMAKE_BUILD_TYPE=MinSizeRel \
        -DCAPHEAP_PORT=baremetal -DCAPHEAP_POISONING=NONE -DCAPHEAP_WERROR="$werror" \
        -DCAPHEAP_CHIP="$SIZE_CHIP" -DCAPHEAP_EXEC_HEAP="${SIZE_EXEC_HEAP:-OFF}" \
        -DCAPHEAP_BUILD_TESTS=OFF -DCAPHEAP_BUILD_BENCH=OFF -DCAPHEAP_BUILD_EXAMPLES=OFF \
        -DCAPHEAP_BUILD_FUZZ=OFF >"$bdir.configure.log" 2>&1 \
        || { cat "$bdir.configure.log" >&2; log "size.sh: configure failed for $target"; exit 1; }
    cmake --build "$bdir" --target capheap -j "$jobs" >&2
    lib="$bdir/libcapheap.a"

    # shellcheck disable=SC2086
    "$cc" ${ARCH[$target]} -std=c11 -Os -DNDEBUG $SECTION_FLAGS -Wall -Wextra \
        -I"$src_root/include" -I"$bdir/include" \
        -c "$src_root/tools/size/size_main.c" -o "$bdir/size_main.o"
    # shellcheck disable=SC2086
    "$cc" ${LINK[$target]} -Os -Wl,--gc-sections -Wl,-Map="$bdir/size_main.map" \
        "$bdir/size_main.o" "$lib" -o "$bdir/size_main.elf"

    read -r code ro _ < <(capheap_bytes_from_map "$bdir/size_main.map")
    capheap_text=$((code + ro))
    prog_text="$("${SIZE[$target]}" -B "$bdir/size_main.elf" | awk 'NR == 2 { print $1 }')"
    log "   capheap sections kept in the image (object, section, bytes):"
    capheap_detail_from_map "$bdir/size_main.map" >&2
    line="$(printf '%-10s %8d %8d %8d %8d %8d' "${NAME[$target]}" "$code" "$ro" "$capheap_text" \
        "${TEXT_BUDGET[$target]}" "$prog_text")"
    results+=("$line")
    if [ "$capheap_text" -gt "${TEXT_BUDGET[$target]}" ]; then
        over+=("OVER BUDGET: ${NAME[$target]} capheap text $capheap_text B > ${TEXT_BUDGET[$target]} B")
    fi

    # The heap_caps program over the selected chip table.
    # shellcheck disable=SC2086
    "$cc" ${ARCH[$target]} -std=c11 -Os -DNDEBUG $SECTION_FLAGS -Wall -Wextra \
        -I"$src_root/include" -I"$bdir/include" \
        -c "$src_root/tools/size/caps_size_main.c" -o "$bdir/caps_size_main.o"
    # shellcheck disable=SC2086
    if "$cc" ${LINK[$target]} -Os -Wl,--gc-sections -Wl,-Map="$bdir/caps_size_main.map" \
            "$bdir/caps_size_main.o" "$lib" -o "$bdir/caps_size_main.elf" 2>"$bdir/caps_link.log"; then
        read -r code ro table < <(capheap_bytes_from_map "$bdir/caps_size_main.map")
        caps_text=$((code + ro))
        prog_text="$("${SIZE[$target]}" -B "$bdir/caps_size_main.elf" | awk 'NR == 2 { print $1 }')"
        log "   heap_caps program: capheap sections kept in the image:"
        capheap_detail_from_map "$bdir/caps_size_main.map" >&2
        caps_results+=("$(printf '%-10s %8d %8d %8d %8d %8d %8d' "${NAME[$target]}" "$code" "$ro" \
            "$caps_text" "${CAPS_BUDGET[$target]}" "$prog_text" "$table")")
        if [ "$caps_text" -gt "${CAPS_BUDGET[$target]}" ]; then
            over+=("OVER BUDGET: ${NAME[$target]} heap_caps text $caps_text B > ${CAPS_BUDGET[$target]} B")
        fi
    else
        cat "$bdir/caps_link.log" >&2
        caps_results+=("$(printf '%-10s %s' "${NAME[$target]}" "not linked (see $bdir/caps_link.log)")")
        failed=1
    fi
done

# ---- per-heap metadata on a host build (-m32 preferred)
meta_lines=()
meta_note=""
host_cc="${CC_HOST:-cc}"
for mode in m32 native; do
    bdir="$build_root/host-$mode"
    m32=OFF
    [ "$mode" = m32 ] && m32=ON
    log "== host ($mode): building libcapheap.a in $bdir"
    if ! cmake -S "$src_root" -B "$bdir" -DCMAKE_BUILD_TYPE=MinSizeRel -DCAPHEAP_M32=$m32 \
            -DCAPHEAP_POISONING=NONE -DCAPHEAP_BUILD_TESTS=OFF -DCAPHEAP_BUILD_BENCH=OFF \
            -DCAPHEAP_BUILD_EXAMPLES=OFF -DCAPHEAP_BUILD_FUZZ=OFF -DCAPHEAP_BUILD_SHARED=OFF \
            >"$bdir.configure.log" 2>&1; then
        log "size.sh: host $mode configure failed (see $bdir.configure.log)"
        continue
    fi
    if ! cmake --build "$bdir" --target capheap -j "$jobs" >&2; then
        log "size.sh: host $mode build failed"
        failed=1
        continue
    fi
    mflag=""
    [ "$mode" = m32 ] && mflag="-m32"
    # shellcheck disable=SC2086
    if ! "$host_cc" $mflag -std=c11 -O1 -I"$src_root/include" -I"$bdir/include" \
            "$src_root/tools/size/overhead_main.c" "$bdir/libcapheap.a" -pthread \
            -o "$bdir/overhead_main" 2>"$bdir/overhead_main.log"; then
        log "size.sh: host $mode overhead program did not build (see $bdir/overhead_main.log)"
        continue
    fi
    mapfile -t meta_lines < <("$bdir/overhead_main")
    meta_note="$mode"
    break
done

echo
echo "capheap code size: size_main (register + malloc + aligned_alloc + realloc + free),"
echo "-Os -ffunction-sections -fdata-sections -DNDEBUG, --gc-sections, no poisoning, port baremetal."
echo "capheap = kept .text*/.rodata* input sections of libcapheap.a members, from the linker map;"
echo "program = 'text' of binutils size for the whole image (startup and libc included)."
echo
printf '%-10s %8s %8s %8s %8s %8s\n' "target" "code" "rodata" "capheap" "budget" "program"
for line in "${results[@]}"; do
    echo "$line"
done
echo
echo "heap_caps: caps_size_main (heap_caps_init from the $SIZE_CHIP table + heap_caps malloc,"
echo "aligned_alloc, realloc, free); capheap includes multi_heap, the engine and the chip table;"
echo "table = the part of capheap that is the chip table's data (chips/$SIZE_CHIP.c)."
printf '%-10s %8s %8s %8s %8s %8s %8s\n' "target" "code" "rodata" "capheap" "budget" "program" "table"
for line in "${caps_results[@]}"; do
    echo "$line"
done

echo
echo "per-heap RAM metadata: capheap_heap_overhead() after multi_heap_register()"
if [ -z "$meta_note" ]; then
    echo "  (not measured: no host build of the overhead program)"
    failed=1
else
    bits="?"
    printf '%-10s %10s %8s\n' "region" "metadata" "budget"
    for l in "${meta_lines[@]}"; do
        set -- $l
        if [ "$1" = "pointer-bits" ]; then
            bits="$2"
            continue
        fi
        region="$1"
        meta="$2"
        budget=""
        case "$region" in
            65536) budget=812 ;;
            262144) budget=948 ;;
        esac
        printf '%-10s %10s %8s\n' "$((region / 1024)) KiB" "$meta" "$budget"
        if [ -n "$budget" ] && [ "$meta" -gt "$budget" ]; then
            over+=("OVER BUDGET: metadata for a $((region / 1024)) KiB region $meta B > $budget B")
        fi
    done
    echo "  (measured on a ${bits}-bit host build, $meta_note)"
fi

echo
if [ "${#over[@]}" -eq 0 ]; then
    echo "all figures within budget"
else
    for l in "${over[@]}"; do
        echo "$l"
    done
fi
if [ "$failed" -ne 0 ]; then
    echo "size.sh: some figures could not be produced" >&2
fi
exit 0
