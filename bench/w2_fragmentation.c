/*
 * w2_fragmentation.c - W2 fragmentation to failure (fixed-heap allocators).
 *
 * Heap 256 KiB, seeds 1..20. Each step takes four draws (u_coin, u_class,
 * u_size, u_pick). With no live block or u_coin % 10 < 6, allocate
 * size(u_class, u_size); otherwise free live[u_pick % n_live] and swap-remove
 * it. At the first failed allocation, record sum(live requested bytes) /
 * 262144. Report median (mean of the two middle values of 20), min and max.
 */
#include <stdio.h>
#include <stdlib.h>

#include "bench.h"
#include "bench_adapter.h"

#define W2_MAX_LIVE 65536u          /* far above what 256 KiB can hold (16-byte minimum block) */
#define W2_MAX_STEPS 100000000u     /* a working allocator fails long before this */

typedef struct {
    void *p;
    uint32_t size;
} w2_live_t;

static int compare_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int bench_run_w2(const bench_options_t *opt)
{
    unsigned bits = (unsigned)(sizeof(void *) * 8u);
    if (!bench_alloc_fixed_heap) {
        printf("w2 alloc=%s bits=%u n/a (no fixed heap)\n", bench_alloc_name, bits);
        return 0;
    }
    w2_live_t *live = bench_map(W2_MAX_LIVE * sizeof *live);
    double *fraction = bench_map(opt->seeds * sizeof *fraction);
    for (unsigned seed = 1; seed <= opt->seeds; seed++) {
        bench_rng_t rng = {seed};
        bench_fresh_heap(BENCH_HEAP_W1);
        size_t n_live = 0;
        uint64_t live_bytes = 0, step = 0;
        for (;; step++) {
            if (step == W2_MAX_STEPS)
                bench_die("w2: seed %u did not fail in %u steps", seed, W2_MAX_STEPS);
            uint32_t u_coin = bench_draw(&rng);
            uint32_t u_class = bench_draw(&rng);
            uint32_t u_size = bench_draw(&rng);
            uint32_t u_pick = bench_draw(&rng);
            if (n_live == 0 || u_coin % 10u < 6u) {
                uint32_t size = bench_size(u_class, u_size);
                void *p = bench_malloc(size);
                if (p == NULL)
                    break;
                if (n_live == W2_MAX_LIVE)
                    bench_die("w2: more than %u live blocks", W2_MAX_LIVE);
                live[n_live].p = p;
                live[n_live].size = size;
                n_live++;
                live_bytes += size;
            } else {
                size_t k = u_pick % n_live;
                bench_free(live[k].p);
                live_bytes -= live[k].size;
                live[k] = live[--n_live];
            }
        }
        fraction[seed - 1] = (double)live_bytes / (double)BENCH_HEAP_W1;
        printf("w2seed alloc=%s bits=%u seed=%u fraction=%.4f live_bytes=%llu live_blocks=%zu "
               "steps=%llu\n",
               bench_alloc_name, bits, seed, fraction[seed - 1], (unsigned long long)live_bytes,
               n_live, (unsigned long long)step);
    }
    qsort(fraction, opt->seeds, sizeof *fraction, compare_double);
    unsigned n = opt->seeds;
    double median = (n % 2u) ? fraction[n / 2u] : (fraction[n / 2u - 1u] + fraction[n / 2u]) / 2.0;
    printf("w2 alloc=%s bits=%u seeds=%u median=%.4f min=%.4f max=%.4f\n", bench_alloc_name, bits,
           n, median, fraction[0], fraction[n - 1u]);
    return 0;
}
