/*
 * size_main.c - the firmware `make size` measures (scripts/size.sh).
 *
 * What an application pays for capheap's core API: one heap registered over a
 * static array, and one call each of malloc, aligned_alloc, realloc and free.
 * Every size and the alignment come from volatile objects and every result is
 * stored to a volatile sink, so the compiler can neither fold the calls nor
 * drop them. Built -Os -ffunction-sections -fdata-sections -DNDEBUG without
 * poisoning and linked with --gc-sections: capheap code that these calls do not
 * reach is not in the image.
 */
#include <stddef.h>
#include <stdint.h>

#include "multi_heap.h"

#define SIZE_REGION_BYTES 8192u

static uint32_t region[SIZE_REGION_BYTES / sizeof(uint32_t)];

static volatile size_t request_sizes[3] = {40, 24, 100};
static volatile size_t request_alignment = 32;
volatile uintptr_t size_main_sink;

int main(void)
{
    multi_heap_handle_t heap = multi_heap_register(region, sizeof region);
    void *a = multi_heap_malloc(heap, request_sizes[0]);
    void *b = multi_heap_aligned_alloc(heap, request_sizes[1], request_alignment);
    a = multi_heap_realloc(heap, a, request_sizes[2]);
    size_main_sink = (uintptr_t)a ^ (uintptr_t)b;
    multi_heap_free(heap, b);
    multi_heap_free(heap, a);
    return (int)(size_main_sink & 1u);
}
