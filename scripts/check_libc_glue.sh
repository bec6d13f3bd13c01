#!/usr/bin/env bash
# scripts/check_libc_glue.sh LIBCAPHEAP_A - the bare-metal libc glue replaces newlib's allocator.
#
# newlib's own functions (strdup, asprintf, stdio buffers) allocate through its reentrant
# _malloc_r / _free_r / _realloc_r / _calloc_r. A libcapheap.a built for Cortex-M4 with
# CAPHEAP_LIBC_MALLOC=ON defines them (src/caps/libc.c); this links tools/size/libc_glue_main.c
# against it with newlib-nano and with full newlib, and fails unless every one of those symbols
# used is defined by libcapheap.a (libc.c.obj) and by nothing else. Before the glue had them,
# newlib's allocator served strdup and heap_caps_free then reported its block as foreign.
set -euo pipefail
lib="${1:?usage: check_libc_glue.sh path/to/libcapheap.a}"
src_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
status=0
for specs in "--specs=nano.specs --specs=nosys.specs" "--specs=nosys.specs"; do
    trace=()
    for s in _malloc_r _free_r _realloc_r _calloc_r; do
        trace+=("-Wl,--trace-symbol=$s")
    done
    arm-none-eabi-gcc -mcpu=cortex-m4 -mthumb -Os $specs "$src_root/tools/size/libc_glue_main.c" "$lib" \
        -Wl,--gc-sections "${trace[@]}" -o "$work/glue.elf" > "$work/link.log" 2>&1 || {
        cat "$work/link.log"
        echo "check_libc_glue: link failed ($specs)" >&2
        exit 1
    }
    defs="$(grep -E ': definition of _(malloc|free|realloc|calloc)_r$' "$work/link.log" || true)"
    for s in _malloc_r _free_r _realloc_r; do
        if ! grep -q "libcapheap.a(libc.c.obj): definition of $s\$" <<< "$defs"; then
            echo "check_libc_glue: $s is not capheap's ($specs):" >&2
            grep -E "$s" "$work/link.log" >&2 || true
            status=1
        fi
    done
    if grep -v 'libcapheap.a(libc.c.obj)' <<< "$defs" | grep -q .; then
        echo "check_libc_glue: newlib's allocator is linked as well ($specs):" >&2
        grep -v 'libcapheap.a(libc.c.obj)' <<< "$defs" >&2
        status=1
    fi
    [ "$status" -eq 0 ] && echo "check_libc_glue: ok ($specs): newlib allocates through capheap"
done
exit "$status"
