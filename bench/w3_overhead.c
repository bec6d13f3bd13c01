/*
 * w3_overhead.c - W3 fixed-size overhead (fixed-heap allocators).
 *
 * Heap 65,536 B. For each N in {1, 8, 16, 24, 32, 64, 100, 256, 1000}: a fresh
 * heap, malloc(N) until the first NULL, report count x N / 65536.
 */
#include <stdio.h>

#include "bench.h"
#include "bench_adapter.h"

static const uint32_t w3_sizes[] = {1, 8, 16, 24, 32, 64, 100, 256, 1000};

int bench_run_w3(const bench_options_t *opt)
{
    (void)opt;
    unsigned bits = (unsigned)(sizeof(void *) * 8u);
    if (!bench_alloc_fixed_heap) {
        printf("w3 alloc=%s bits=%u n/a (no fixed heap)\n", bench_alloc_name, bits);
        return 0;
    }
    for (size_t i = 0; i < sizeof w3_sizes / sizeof w3_sizes[0]; i++) {
        uint32_t n = w3_sizes[i];
        bench_fresh_heap(BENCH_HEAP_W3);
        uint64_t count = 0;
        while (bench_malloc(n) != NULL) {
            count++;
            if (count > BENCH_HEAP_W3)
                bench_die("w3: more than %u blocks of %u bytes in 64 KiB", BENCH_HEAP_W3, n);
        }
        printf("w3 alloc=%s bits=%u n=%u count=%llu fraction=%.4f\n", bench_alloc_name, bits, n,
               (unsigned long long)count, (double)(count * n) / (double)BENCH_HEAP_W3);
    }
    return 0;
}
