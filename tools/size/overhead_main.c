/*
 * overhead_main.c - per-heap RAM metadata, for `make size` (scripts/size.sh).
 *
 * Registers heaps over regions of the sizes ESP-IDF's figures are quoted for
 * (64 KiB and 256 KiB) and prints capheap_heap_overhead(): the bytes of the
 * region the heap keeps for itself (handle, control structure, end marker).
 * Metadata is 32-bit words on every build, so a -m32 host build gives the
 * figure a 32-bit MCU pays; scripts/size.sh builds it -m32 when it can.
 * Output: one line per region, "<region bytes> <overhead bytes>".
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "capheap/heap.h"
#include "multi_heap.h"

int main(void)
{
    static const size_t regions[] = {64u * 1024u, 256u * 1024u};
    for (size_t i = 0; i < sizeof regions / sizeof regions[0]; i++) {
        void *mem = malloc(regions[i]);
        if (mem == NULL) {
            return 1;
        }
        multi_heap_handle_t heap = multi_heap_register(mem, regions[i]);
        if (heap == NULL) {
            free(mem);
            return 1;
        }
        printf("%zu %zu\n", regions[i], capheap_heap_overhead(heap));
        free(mem);
    }
    printf("pointer-bits %zu\n", sizeof(void *) * 8u);
    return 0;
}
