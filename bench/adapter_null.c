/*
 * adapter_null.c - the "harness floor": an allocator that does nothing.
 *
 * malloc and realloc return one fixed pointer, free ignores its argument. Its
 * W1 time is the cost of the loop and the call alone (mostly the hard-to-
 * predict empty/occupied branch); its instruction count is what an adapter
 * adds; its W4 latency is the cost of the timing bracket.
 */
#include "bench_adapter.h"

const char bench_alloc_name[] = "null";
const int bench_alloc_fixed_heap = 0;

static long long bench_null_block[2];

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
    return "null allocator (returns a fixed pointer, frees nothing)";
}

void *bench_malloc(size_t size)
{
    (void)size;
    return bench_null_block;
}

void bench_free(void *p)
{
    (void)p;
}

void *bench_realloc(void *p, size_t size)
{
    (void)p;
    (void)size;
    return bench_null_block;
}
