/*
 * adapter_capheap.c - capheap's multi_heap as a bench allocator.
 *
 * BENCH_CAPHEAP_ALIGNMENT selects the registration call:
 *   0 (default)  multi_heap_register(): ESP-IDF's 4-byte alignment ("capheap")
 *   4, 8, 16     capheap_heap_register() with that alignment ("capheap-a8", ...)
 * No lock is attached (the state after registration), as in the targets.
 */
#include "bench_adapter.h"

#include <stdio.h>

#include "capheap/config.h"
#include "capheap/heap.h"
#include "multi_heap.h"

#ifndef BENCH_CAPHEAP_ALIGNMENT
#define BENCH_CAPHEAP_ALIGNMENT 0
#endif

#define BENCH_STR2(x) #x
#define BENCH_STR(x) BENCH_STR2(x)

#if BENCH_CAPHEAP_ALIGNMENT == 0
const char bench_alloc_name[] = "capheap";
#else
const char bench_alloc_name[] = "capheap-a" BENCH_STR(BENCH_CAPHEAP_ALIGNMENT);
#endif
const int bench_alloc_fixed_heap = 1;

static multi_heap_handle_t bench_heap;

int bench_alloc_init(void *region, size_t size)
{
#if BENCH_CAPHEAP_ALIGNMENT == 0
    bench_heap = multi_heap_register(region, size);
#else
    capheap_heap_options_t options = {0};
    options.alignment = BENCH_CAPHEAP_ALIGNMENT;
    bench_heap = capheap_heap_register(region, size, &options);
#endif
    return bench_heap != NULL ? 0 : -1;
}

size_t bench_alloc_overhead(void)
{
    return capheap_heap_overhead(bench_heap);
}

const char *bench_alloc_describe(void)
{
    static char text[160];
    const char *poisoning = CAPHEAP_POISONING_COMPREHENSIVE ? "comprehensive"
                            : CAPHEAP_POISONING_LIGHT       ? "light"
                                                            : "none";
    snprintf(text, sizeof text, "capheap multi_heap, %s, alignment %u, poisoning %s, no lock",
             BENCH_CAPHEAP_ALIGNMENT == 0 ? "multi_heap_register" : "capheap_heap_register",
             BENCH_CAPHEAP_ALIGNMENT == 0 ? 4u : (unsigned)BENCH_CAPHEAP_ALIGNMENT, poisoning);
    return text;
}

void *bench_malloc(size_t size)
{
    return multi_heap_malloc(bench_heap, size);
}

void bench_free(void *p)
{
    multi_heap_free(bench_heap, p);
}

void *bench_realloc(void *p, size_t size)
{
    return multi_heap_realloc(bench_heap, p, size);
}
