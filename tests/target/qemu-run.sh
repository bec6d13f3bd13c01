#!/usr/bin/env bash
# tests/target/qemu-run.sh - run one bare-metal test program under QEMU (tests/target/README.md).
#
#   qemu-run.sh BOARD PROGRAM.elf [ARG...]
#
# BOARD: mps2-an386 (Cortex-M4, qemu-system-arm) or virt32 (RV32, qemu-system-riscv32 -M virt).
# The program is linked with picolibc's semihosting crt0: its stdout and stderr, the files it
# opens and its exit status go through QEMU's semihosting to this host, and the ARGs become its
# argv[1..]. A NAME=VALUE argument is passed as it is: the program's main sees it in argv
# (tests/target/target_main.c turns it into an environment variable). The exit status is the
# program's; 124 if it ran longer than CAPHEAP_TARGET_TIMEOUT seconds (default 300).
set -euo pipefail

if [ "$#" -lt 2 ]; then
    sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
fi
board="$1"
program="$2"
shift 2

case "$board" in
    mps2-an386) qemu=(qemu-system-arm -M mps2-an386) ;;
    virt32) qemu=(qemu-system-riscv32 -M virt -m 64M -bios none) ;;
    *) echo "qemu-run.sh: unknown board '$board' (mps2-an386 or virt32)" >&2; exit 2 ;;
esac
if ! command -v "${qemu[0]}" >/dev/null 2>&1; then
    echo "qemu-run.sh: ${qemu[0]} not found (Debian: scripts/deps.sh --ci installs it)" >&2
    exit 2
fi

# Semihosting arguments are separated by commas in QEMU's option syntax: refuse one that has a
# comma rather than split it silently.
config="enable=on,target=native"
for arg in "$@"; do
    case "$arg" in *,*) echo "qemu-run.sh: argument with a comma: '$arg'" >&2; exit 2 ;; esac
    config="$config,arg=$arg"
done

exec timeout "${CAPHEAP_TARGET_TIMEOUT:-300}" "${qemu[@]}" -nographic -monitor none -serial none \
    -semihosting-config "$config" -kernel "$program"
