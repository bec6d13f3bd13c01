/*
 * adapter_mimalloc.c - mimalloc's own API (mi_malloc, mi_free, mi_realloc).
 *
 * The explicit API is used so the measured calls are mimalloc's whether or not
 * the Debian shared library also overrides malloc for the process.
 */
#include "bench_adapter.h"

#include <stdio.h>

#include <mimalloc.h>

const char bench_alloc_name[] = "mimalloc";
const int bench_alloc_fixed_heap = 0;

int bench_alloc_init(void *region, size_t size)
{
    (void)region;
    (void)size;
    return 0;
}

size_t bench_alloc_overhead(void)
{
    return 0;
}

const char *bench_alloc_describe(void)
{
    static char text[160];
    int v = mi_version();
    snprintf(text, sizeof text, "mimalloc %d.%d.%d (mi_malloc/mi_free/mi_realloc)", v / 100,
             (v / 10) % 10, v % 10);
    return text;
}

void *bench_malloc(size_t size)
{
    return mi_malloc(size);
}

void bench_free(void *p)
{
    mi_free(p);
}

void *bench_realloc(void *p, size_t size)
{
    return mi_realloc(p, size);
}
