#!/usr/bin/env bash
# scripts/target-test.sh - run the target tests (tests/target) on emulated Cortex-M and RV32 cores.
#
#   scripts/target-test.sh [BUILD_ROOT]        (BUILD_ROOT defaults to build/target)
#
# For every configuration below: a cross build (cmake/toolchain-<toolchain>.cmake,
# CAPHEAP_PORT=baremetal, CAPHEAP_BUILD_TARGET_TESTS=ON, CAPHEAP_WERROR=ON) in
# BUILD_ROOT/<name>, then `ctest` there, which runs each program under QEMU
# (tests/target/qemu-run.sh). Needs the packages of `scripts/deps.sh --ci` (cross compilers,
# picolibc, qemu-system-arm, qemu-system-misc).
#
#   m4-os-{none,light,comprehensive}  Cortex-M4, -Os (the size paths a firmware builds), each
#                                     poisoning mode
#   m4-o2                             Cortex-M4, -O2 (the speed paths)
#   m4-os-debug                       Cortex-M4, -Os, light poisoning, tracing + hooks + task
#                                     tracking (golden file: _tracking)
#   m0plus-os                         Cortex-M0+ (Armv6-M: no atomic read-modify-write, so the
#                                     port's critical section), -Os, run on the Cortex-M4 board,
#                                     whose Armv7-M core executes Armv6-M code; unaligned
#                                     accesses fault there, as on an M0+ (target_main.c)
#   m4-strict-comprehensive           Cortex-M4 with -mno-unaligned-access and unaligned
#                                     accesses trapped, comprehensive poisoning (its canaries
#                                     sit at unaligned addresses)
#   m4-os-libc                        Cortex-M4, -Os, CAPHEAP_LIBC_MALLOC: capheap is the C
#                                     library's malloc (target_libc only)
#   rv-os-{none,light,comprehensive}  RV32IMC (no A extension: the critical section), -Os
#   rv-o2                             RV32IMC, -O2
#   rv-os-debug                       RV32IMC, -Os, light poisoning, tracing + hooks + task tracking
#   rv-os-libc                        RV32IMC, -Os, CAPHEAP_LIBC_MALLOC (target_libc only)
#
# Environment: JOBS (parallel builds and tests, default 2), TARGET_ONLY="name ..." (only these).
set -euo pipefail

src_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_root="${1:-$src_root/build/target}"
jobs="${JOBS:-2}"
only="${TARGET_ONLY:-}"

debug_opts="-DCAPHEAP_POISONING=LIGHT -DCAPHEAP_TRACING=ON -DCAPHEAP_USE_HOOKS=ON -DCAPHEAP_TASK_TRACKING=ON"
# name | toolchain | build type | CPU flags replacing the toolchain file's (empty: keep) | cmake arguments
configs=(
    "m4-os-none|cortex-m4|MinSizeRel||-DCAPHEAP_POISONING=NONE"
    "m4-os-light|cortex-m4|MinSizeRel||-DCAPHEAP_POISONING=LIGHT"
    "m4-os-comprehensive|cortex-m4|MinSizeRel||-DCAPHEAP_POISONING=COMPREHENSIVE"
    "m4-o2|cortex-m4|Release||-DCAPHEAP_POISONING=NONE"
    "m4-os-debug|cortex-m4|MinSizeRel||$debug_opts"
    "m0plus-os|cortex-m4|MinSizeRel|-mcpu=cortex-m0plus -mthumb|-DCAPHEAP_POISONING=NONE"
    "m4-strict-comprehensive|cortex-m4|MinSizeRel|-mcpu=cortex-m4 -mthumb -mno-unaligned-access|-DCAPHEAP_POISONING=COMPREHENSIVE"
    "m4-os-libc|cortex-m4|MinSizeRel||-DCAPHEAP_POISONING=NONE -DCAPHEAP_LIBC_MALLOC=ON"
    "rv-os-none|rv32imc|MinSizeRel||-DCAPHEAP_POISONING=NONE"
    "rv-os-light|rv32imc|MinSizeRel||-DCAPHEAP_POISONING=LIGHT"
    "rv-os-comprehensive|rv32imc|MinSizeRel||-DCAPHEAP_POISONING=COMPREHENSIVE"
    "rv-o2|rv32imc|Release||-DCAPHEAP_POISONING=NONE"
    "rv-os-debug|rv32imc|MinSizeRel||$debug_opts"
    "rv-os-libc|rv32imc|MinSizeRel||-DCAPHEAP_POISONING=NONE -DCAPHEAP_LIBC_MALLOC=ON"
)

failed=()
ran=0
for entry in "${configs[@]}"; do
    IFS='|' read -r name toolchain build_type cpu_flags extra <<<"$entry"
    if [ -n "$only" ]; then
        case " $only " in *" $name "*) ;; *) continue ;; esac
    fi
    dir="$build_root/$name"
    echo "==== target test $name ($toolchain${cpu_flags:+ as $cpu_flags}, $build_type, $extra)"
    rm -rf "$dir"
    mkdir -p "$build_root"
    read -r -a more <<<"$extra"
    args=(-S "$src_root" -B "$dir" -DCMAKE_TOOLCHAIN_FILE="$src_root/cmake/toolchain-$toolchain.cmake"
        -DCMAKE_BUILD_TYPE="$build_type" -DCAPHEAP_BUILD_TARGET_TESTS=ON -DCAPHEAP_WERROR=ON "${more[@]}")
    if [ -n "$cpu_flags" ]; then
        args+=("-DCMAKE_C_FLAGS=$cpu_flags")
    fi
    ran=$((ran + 1))
    if cmake "${args[@]}" >"$dir.cmake.log" 2>&1 && cmake --build "$dir" -j "$jobs" >"$dir.build.log" 2>&1 \
        && ctest --test-dir "$dir" --output-on-failure -j "$jobs" --no-tests=error; then
        echo "==== $name: ok"
    else
        echo "==== $name: FAILED (logs: $dir.cmake.log, $dir.build.log)"
        tail -n 30 "$dir.cmake.log" "$dir.build.log" 2>/dev/null || true
        failed+=("$name")
    fi
done

if [ "$ran" -eq 0 ]; then
    echo "target-test.sh: no configuration matched TARGET_ONLY='$only'" >&2
    exit 2
fi
if [ "${#failed[@]}" -ne 0 ]; then
    echo "target-test.sh: FAILED: ${failed[*]}"
    exit 1
fi
echo "target-test.sh: all $ran configurations passed"
