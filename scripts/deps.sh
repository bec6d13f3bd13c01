#!/usr/bin/env bash
# scripts/deps.sh - make sure the Debian packages capheap's build needs are installed.
#
#   scripts/deps.sh          what `make test` needs: cmake gcc g++ clang libcmocka-dev gcc-multilib
#                            libclang-rt-14-dev pkg-config valgrind python3 sqlite3
#   scripts/deps.sh --ci     also what .ci/run needs: the Cortex-M4 and RV32 cross compilers with
#                            their C libraries (newlib and picolibc), QEMU for the target tests,
#                            and the i386 cmocka and g++-multilib for the -m32 test build
#   scripts/deps.sh --bench  also what `make bench` compares with: libmimalloc-dev, libjemalloc-dev
#   scripts/deps.sh --demo   only what `make demo` needs: cmake make gcc
#   scripts/deps.sh --check  only report; never install (combines with --ci and --bench)
#
# Missing packages are installed with apt-get when running as root (non-interactive);
# otherwise the one command to run is printed and the exit status is 1.
set -euo pipefail

# python3 and sqlite3: real programs run under libcapheap_malloc.so (tests/preload).
# `make demo` builds the library and one example, nothing else. g++: capheap_sim_cxx (operator
# new in the simulator) and its test; g++-multilib: the same in the -m32 build. libc6-dev: the C
# library's headers and start files, which gcc only recommends (installs here skip recommends).
DEMO_PACKAGES=(cmake make gcc libc6-dev)
BASE_PACKAGES=(cmake make gcc libc6-dev g++ clang libcmocka-dev gcc-multilib libclang-rt-14-dev pkg-config valgrind
    python3 sqlite3)
# picolibc-arm-none-eabi, qemu-system-arm and qemu-system-misc (riscv32): tests/target runs test
# programs on emulated Cortex-M and RV32 cores (scripts/target-test.sh).
CI_PACKAGES=(gcc-arm-none-eabi libnewlib-arm-none-eabi gcc-riscv64-unknown-elf picolibc-riscv64-unknown-elf
    picolibc-arm-none-eabi qemu-system-arm qemu-system-misc cppcheck g++-multilib)
# The -m32 build links the tests against the 32-bit cmocka (needs the i386 architecture).
CI_I386_PACKAGES=(libcmocka-dev:i386)
# The bench's peers (bench/CMakeLists.txt builds bench_mimalloc and bench_jemalloc only when
# they link); without them `make bench` prints no mimalloc or jemalloc rows. Native only: the
# -m32 bench build leaves both out.
BENCH_PACKAGES=(libmimalloc-dev libjemalloc-dev)

ci=0
bench=0
demo=0
check_only=0
for arg in "$@"; do
    case "$arg" in
        --ci) ci=1 ;;
        --bench) bench=1 ;;
        --demo) demo=1 ;;
        --check) check_only=1 ;;
        -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
        *) echo "deps.sh: unknown argument '$arg'" >&2; exit 2 ;;
    esac
done

native_arch="$(dpkg --print-architecture 2>/dev/null || echo unknown)"

# True when the package is fully installed. "name" means the native (or arch: all)
# package; "name:arch" that architecture's. With several architectures installed,
# dpkg-query lists one line per instance, named name:arch.
is_installed() {
    local pkg="$1" want="$1"
    case "$pkg" in *:*) ;; *) want="$pkg:$native_arch" ;; esac
    dpkg-query -W -f='${binary:Package} ${db:Status-Status}\n' "$pkg" 2>/dev/null \
        | grep -qxE "($(printf '%s' "$pkg" | sed 's/[.+]/\\&/g')|$(printf '%s' "$want" | sed 's/[.+]/\\&/g')) installed"
}

wanted=("${BASE_PACKAGES[@]}")
if [ "$demo" = 1 ]; then
    wanted=("${DEMO_PACKAGES[@]}")
fi
if [ "$ci" = 1 ]; then
    wanted+=("${CI_PACKAGES[@]}" "${CI_I386_PACKAGES[@]}")
fi
if [ "$bench" = 1 ]; then
    wanted+=("${BENCH_PACKAGES[@]}")
fi

if ! command -v dpkg-query >/dev/null 2>&1; then
    echo "deps.sh: not a Debian-like system (no dpkg-query); install by hand: ${wanted[*]}" >&2
    exit 1
fi

missing=()
need_i386=0
for pkg in "${wanted[@]}"; do
    if ! is_installed "$pkg"; then
        missing+=("$pkg")
        case "$pkg" in *:i386) need_i386=1 ;; esac
    fi
done

if [ "${#missing[@]}" -eq 0 ]; then
    echo "deps.sh: all ${#wanted[@]} packages present"
    exit 0
fi

arch_cmd=""
if [ "$need_i386" = 1 ] && ! dpkg --print-foreign-architectures | grep -qx i386; then
    arch_cmd="dpkg --add-architecture i386 && "
fi
install_line="${arch_cmd}apt-get update && apt-get install -y --no-install-recommends ${missing[*]}"

echo "deps.sh: missing packages: ${missing[*]}"
if [ "$check_only" = 1 ]; then
    echo "deps.sh: install them with: sudo sh -c '$install_line'"
    exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "deps.sh: not root; run this once, then retry:" >&2
    echo "  sudo sh -c '$install_line'" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
if [ -n "$arch_cmd" ]; then
    dpkg --add-architecture i386
fi
# A mirror in mid-sync can make one index fail to download: retry, and go on to the
# install anyway (it fails clearly if a package really cannot be had).
for attempt in 1 2 3; do
    if apt-get update; then
        break
    fi
    echo "deps.sh: apt-get update failed (attempt $attempt of 3)" >&2
    [ "$attempt" -lt 3 ] && sleep 15
done
apt-get install -y --no-install-recommends "${missing[@]}"

still=()
for pkg in "${missing[@]}"; do
    is_installed "$pkg" || still+=("$pkg")
done
if [ "${#still[@]}" -ne 0 ]; then
    echo "deps.sh: still missing after apt-get: ${still[*]}" >&2
    exit 1
fi
echo "deps.sh: installed ${missing[*]}"
