/*
 * test_heap_fit.c - malloc in two halves, as heap_caps uses it to pass over
 * a heap without its lock (capheap_heap_fit and capheap_heap_malloc_fit,
 * src/heap/heap_private.h; ce_fit in src/core/tlsf.h), checked against the
 * heap itself on many random states:
 *
 *   sound:     the first half says "no" (0) only when multi_heap_malloc(h, n)
 *              returns NULL;
 *   complete:  "yes" for every n up to largest_free_block (a size malloc
 *              really serves), and "no" for 0 and above max_request;
 *   the same:  after "yes", the second half returns exactly the block
 *              multi_heap_malloc returns (a twin heap driven through the
 *              same operations gives the offset).
 *
 * Routing picks ESP-IDF's heap only if the first half is sound (a heap
 * wrongly passed over would change the choice); it is only worth its cost if
 * it is complete for the sizes a heap can serve. Speed builds only:
 * size-optimised builds have no unlocked first half (their heap_caps locks
 * every candidate).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "support.h"

#if !defined(__OPTIMIZE_SIZE__)
#include "heap/heap_private.h"

#define REGION_BYTES (24u * 1024u)
static _Alignas(16) unsigned char region[REGION_BYTES];
static _Alignas(16) unsigned char twin_region[REGION_BYTES]; /* the same operations, multi_heap_malloc */

/* A request size worth asking about: near the heap's largest block, at size
 * class edges (powers of two and their quarters), or anywhere. */
static size_t probe_size(ct_rng_t *rng, size_t largest)
{
    switch (ct_rng_below(rng, 4)) {
    case 0:
        return largest + (size_t)ct_rng_range(rng, 0, 16) - 8u; /* may wrap below 1: then huge */
    case 1: {
        size_t edge = (size_t)1 << ct_rng_range(rng, 3, 14);
        return edge + (edge >> 2) * (size_t)ct_rng_below(rng, 4) + (size_t)ct_rng_range(rng, 0, 8) - 4u;
    }
    default:
        return (size_t)ct_rng_range(rng, 1, REGION_BYTES);
    }
}

/* Offset of p in its region (SIZE_MAX for NULL), to compare the twins. */
static size_t at(const void *p, const unsigned char *base)
{
    return p == NULL ? SIZE_MAX : (size_t)((const unsigned char *)p - base);
}

static void check_state(multi_heap_handle_t h, multi_heap_handle_t twin, ct_rng_t *rng, size_t align,
                        int step)
{
    multi_heap_info_t info;
    multi_heap_get_info(h, &info);
    size_t largest = info.largest_free_block;
    if (largest > 0 && capheap_heap_fit(h, largest) == 0) {
        fail_msg("fit(%zu) says no, largest_free_block is %zu (alignment %zu, step %d)", largest, largest,
                 align, step);
    }
    for (int k = 0; k < 24; k++) {
        size_t n = probe_size(rng, largest);
        uint32_t fit = capheap_heap_fit(h, n);
        if (n >= 1 && n <= largest && fit == 0) {
            fail_msg("fit(%zu) says no below largest_free_block %zu (alignment %zu, step %d)", n, largest,
                     align, step);
        }
        if (fit == 0) {
            void *p = multi_heap_malloc(h, n);
            if (p != NULL) {
                fail_msg("fit(%zu) says no, malloc served it at %p (alignment %zu, step %d)", n, p, align,
                         step);
            }
            continue;
        }
        /* the second half takes the block multi_heap_malloc takes in the twin */
        void *p = capheap_heap_malloc_fit(h, n, fit);
        void *q = multi_heap_malloc(twin, n);
        if (at(p, region) != at(q, twin_region)) {
            fail_msg("malloc_fit(%zu) gave offset %zu, multi_heap_malloc %zu (alignment %zu, step %d)", n,
                     at(p, region), at(q, twin_region), align, step);
        }
        if (p != NULL) {
            assert_true(multi_heap_get_allocated_size(h, p) >= n);
            multi_heap_free(h, p);
            multi_heap_free(twin, q);
        }
    }
    assert_int_equal(capheap_heap_fit(h, 0), 0);
    assert_int_equal(capheap_heap_fit(h, SIZE_MAX), 0);
    assert_int_equal(capheap_heap_fit(h, REGION_BYTES + 1u), 0);
}

static void test_fit_random_states(void **state)
{
    (void)state;
    enum { SLOTS = 48, STEPS = 1200 };
    static void *live[SLOTS], *twin_live[SLOTS];
    ct_rng_t rng;
    ct_rng_init(&rng, ct_seed("heap_fit.random_states"));
    for (size_t align = 4; align <= 16; align *= 2) {
        capheap_heap_options_t o = {.alignment = align};
        multi_heap_handle_t h = capheap_heap_register(region, REGION_BYTES, &o);
        multi_heap_handle_t twin = capheap_heap_register(twin_region, REGION_BYTES, &o);
        assert_non_null(h);
        assert_non_null(twin);
        memset(live, 0, sizeof live);
        memset(twin_live, 0, sizeof twin_live);
        check_state(h, twin, &rng, align, -1); /* one free block */
        for (int step = 0; step < STEPS; step++) {
            size_t i = (size_t)ct_rng_below(&rng, SLOTS);
            if (live[i] != NULL) {
                multi_heap_free(h, live[i]);
                multi_heap_free(twin, twin_live[i]);
                live[i] = twin_live[i] = NULL;
            } else {
                size_t n = (size_t)ct_rng_range(&rng, 1, ct_rng_below(&rng, 8) == 0 ? 4000 : 300);
                live[i] = multi_heap_malloc(h, n);
                twin_live[i] = multi_heap_malloc(twin, n);
                assert_int_equal(at(live[i], region), at(twin_live[i], twin_region));
            }
            check_state(h, twin, &rng, align, step);
        }
        for (size_t k = 0; k < SLOTS; k++) {
            multi_heap_free(h, live[k]);
            multi_heap_free(twin, twin_live[k]);
        }
        assert_true(multi_heap_check(h, false));
        assert_true(multi_heap_check(twin, false));
    }
}

/* A full heap: nothing fits, and the first half says so for every size. */
static void test_fit_full_heap(void **state)
{
    (void)state;
    multi_heap_handle_t h = multi_heap_register(region, REGION_BYTES);
    assert_non_null(h);
    while (multi_heap_malloc(h, 16) != NULL) {
    }
    while (multi_heap_malloc(h, 1) != NULL) {
    }
    multi_heap_info_t info;
    multi_heap_get_info(h, &info);
    assert_int_equal(info.largest_free_block, 0);
    for (size_t n = 1; n <= 4096; n += 7) {
        assert_int_equal(capheap_heap_fit(h, n), 0);
    }
}

/*
 * One byte more than a fresh heap can serve (its one free block, the whole
 * pool, minus the header and the per-block overhead): "no", as for every size
 * above max_request (src/core/tlsf.h: ce_fit returns 0 for those). A "yes"
 * here would hand capheap_heap_malloc_fit a block size past the pool, whose
 * class may lie beyond the heap's rows. Region sizes around each row count's
 * limit (where the pool's class is the last one) and every alignment.
 */
static void test_fit_one_past_the_pool(void **state)
{
    (void)state;
    static const size_t sizes[] = {256, 300, 1024, 1100, 2048, 2200, 4096, 5000, 8192, 9000, 16384, 20000,
                                   REGION_BYTES};
    for (size_t align = 4; align <= 16; align *= 2) {
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            capheap_heap_options_t o = {.alignment = align};
            multi_heap_handle_t h = capheap_heap_register(region, sizes[i], &o);
            assert_non_null(h);
            multi_heap_info_t info;
            multi_heap_get_info(h, &info);
            size_t largest = info.largest_free_block;
            assert_true(largest > 0);
            if (capheap_heap_fit(h, largest) == 0) {
                fail_msg("fit(%zu) says no on a fresh heap of %zu bytes (alignment %zu)", largest, sizes[i], align);
            }
            uint32_t fit = capheap_heap_fit(h, largest + 1u);
            if (fit != 0) {
                fail_msg("fit(%zu) says %u on a fresh heap of %zu bytes (alignment %zu), largest %zu", largest + 1u,
                         (unsigned)fit, sizes[i], align, largest);
            }
            assert_null(multi_heap_malloc(h, largest + 1u));
            void *p = multi_heap_malloc(h, largest);
            assert_non_null(p);
            multi_heap_free(h, p);
            assert_true(multi_heap_check(h, false));
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fit_random_states),
        cmocka_unit_test(test_fit_full_heap),
        cmocka_unit_test(test_fit_one_past_the_pool),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
#else
int main(void)
{
    return 0; /* size-optimised builds have no unlocked first half */
}
#endif
