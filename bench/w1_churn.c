/*
 * w1_churn.c - W1 churn (and its lite and no-realloc variants).
 *
 * A slot table of S pointers starts empty. Each step takes four draws
 * (u_slot, u_coin, u_class, u_size) and makes exactly one allocator call:
 * malloc into an empty slot (NULL: a failure, the slot stays empty); realloc
 * of an occupied slot when realloc is enabled and u_coin % 10 == 0 (NULL: a
 * failure, the old block stays); otherwise free and empty the slot. So
 * ns/op = loop time / steps. The steps are generated before timing; the
 * timed loop only reads them, calls the allocator and updates the slots and
 * the call counters (which live in registers).
 */
#include <stdio.h>
#include <string.h>

#include "bench.h"
#include "bench_adapter.h"

void bench_w1_generate(bench_step_t *steps, size_t n, uint64_t seed, uint32_t slots,
                       int use_realloc)
{
    bench_rng_t rng = {seed};
    for (size_t i = 0; i < n; i++) {
        uint32_t u_slot = bench_draw(&rng);
        uint32_t u_coin = bench_draw(&rng);
        uint32_t u_class = bench_draw(&rng);
        uint32_t u_size = bench_draw(&rng);
        uint32_t size = bench_size(u_class, u_size);
        if (use_realloc && u_coin % 10u == 0u)
            size |= BENCH_STEP_REALLOC;
        steps[i].slot = (uint16_t)(u_slot % slots);
        steps[i].size = (uint16_t)size;
    }
}

/* The timed loop. Kept out of line so that its code is the same in every
 * program and every variant. */
#if defined(__GNUC__)
__attribute__((noinline))
#endif
static void
w1_loop(const bench_step_t *steps, size_t n, void **slot_table, bench_counts_t *counts)
{
    uint64_t n_malloc = 0, n_realloc = 0, fail_malloc = 0, fail_realloc = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned slot = steps[i].slot;
        unsigned size = steps[i].size;
        void *p = slot_table[slot];
        if (p == NULL) {
            void *q = bench_malloc(size & BENCH_STEP_SIZE_MASK);
            slot_table[slot] = q;
            n_malloc++;
            fail_malloc += (q == NULL);
        } else if (size & BENCH_STEP_REALLOC) {
            void *q = bench_realloc(p, size & BENCH_STEP_SIZE_MASK);
            n_realloc++;
            if (q != NULL)
                slot_table[slot] = q;
            else
                fail_realloc++;
        } else {
            bench_free(p);
            slot_table[slot] = NULL;
        }
    }
    counts->calls[BENCH_KIND_MALLOC] = n_malloc;
    counts->calls[BENCH_KIND_REALLOC] = n_realloc;
    counts->calls[BENCH_KIND_FREE] = (uint64_t)n - n_malloc - n_realloc;
    counts->fail_malloc = fail_malloc;
    counts->fail_realloc = fail_realloc;
}

int bench_run_w1(const bench_options_t *opt)
{
    size_t n = (size_t)opt->steps;
    bench_step_t *steps = bench_map(n * sizeof *steps);
    void **slot_table = bench_map(opt->slots * sizeof *slot_table);
    bench_w1_generate(steps, n, opt->seed, opt->slots, opt->use_realloc);
    memset(slot_table, 0, opt->slots * sizeof *slot_table);
    bench_fresh_heap(BENCH_HEAP_W1);

    bench_counts_t counts;
    uint64_t t0 = bench_now_ns();
    w1_loop(steps, n, slot_table, &counts);
    uint64_t t1 = bench_now_ns();

    size_t live = 0;
    for (uint32_t s = 0; s < opt->slots; s++) {
        if (slot_table[s] == NULL)
            continue;
        live++;
        if (!bench_alloc_fixed_heap)
            bench_free(slot_table[s]); /* untimed; keeps leak checkers quiet */
    }
    printf("w1 alloc=%s bits=%u slots=%u use_realloc=%d steps=%zu seed=%llu ns_per_op=%.3f "
           "n_malloc=%llu n_realloc=%llu n_free=%llu fail_malloc=%llu fail_realloc=%llu live=%zu\n",
           bench_alloc_name, (unsigned)(sizeof(void *) * 8u), (unsigned)opt->slots,
           opt->use_realloc, n, (unsigned long long)opt->seed, (double)(t1 - t0) / (double)n,
           (unsigned long long)counts.calls[BENCH_KIND_MALLOC],
           (unsigned long long)counts.calls[BENCH_KIND_REALLOC],
           (unsigned long long)counts.calls[BENCH_KIND_FREE],
           (unsigned long long)counts.fail_malloc, (unsigned long long)counts.fail_realloc, live);
    return 0;
}
