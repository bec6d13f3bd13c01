/*
 * test_stats.c - multi_heap_free_size(), multi_heap_minimum_free_size(),
 * multi_heap_reset_minimum_free_bytes(), multi_heap_restore_minimum_free_bytes()
 * and multi_heap_get_info(): exact values on known sequences, consistency
 * with the walk, and an honest largest_free_block on many random states.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "support.h"

#define REGION_BYTES (32u * 1024u)
static _Alignas(16) unsigned char region[REGION_BYTES + 16u];

/* Poison overhead of 4-aligned heaps (12 with poisoning, else 0). */
static size_t poison(void)
{
    return capheap_poison_overhead();
}

static size_t minus_poison(size_t raw)
{
    return raw > poison() ? raw - poison() : 0;
}

/* The same for the heap h, whatever its alignment (20 for 16-aligned heaps). */
static size_t minus_heap_poison(multi_heap_handle_t h, size_t raw)
{
    size_t p = ct_heap_poison_overhead(h);
    return raw > p ? raw - p : 0;
}

/* A fresh heap: one free block; largest_free_block is all of it. */
static void test_fresh_heap_info(void **state)
{
    (void)state;
    static const size_t sizes[] = {1024, 4096, 6432, 16384, REGION_BYTES};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        multi_heap_handle_t h = multi_heap_register(region, sizes[i]);
        assert_non_null(h);
        size_t raw = sizes[i] - capheap_heap_overhead(h);
        multi_heap_info_t info;
        memset(&info, 0xa5, sizeof info);
        multi_heap_get_info(h, &info);
        assert_int_equal(info.total_free_bytes, minus_poison(raw));
        assert_int_equal(info.total_free_bytes, multi_heap_free_size(h));
        assert_int_equal(info.minimum_free_bytes, minus_poison(raw));
        assert_int_equal(info.total_allocated_bytes, 0);
        assert_int_equal(info.allocated_blocks, 0);
        assert_int_equal(info.free_blocks, 1);
        assert_int_equal(info.total_blocks, 1);
        /* Honest fit: the single free block can be had whole. */
        assert_int_equal(info.largest_free_block, raw - CT_BLOCK_HEADER - poison());
        assert_true(ct_largest_is_honest(h, NULL));
    }
}

/*
 * malloc(100), malloc(13), malloc(1), free(the 13): every field exactly.
 * The freed block sits between two used ones, so it cannot merge.
 */
static void test_known_sequence(void **state)
{
    (void)state;
    multi_heap_handle_t h = multi_heap_register(region, 4096);
    assert_non_null(h);
    size_t raw = 4096 - capheap_heap_overhead(h);
    size_t fa = ct_expected_full_size(100), fb = ct_expected_full_size(13),
           fc = ct_expected_full_size(1);
    void *a = multi_heap_malloc(h, 100);
    void *b = multi_heap_malloc(h, 13);
    void *c = multi_heap_malloc(h, 1);
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(c);
    size_t raw_low = raw - (fa + 4) - (fb + 4) - (fc + 4);
    assert_int_equal(multi_heap_free_size(h), minus_poison(raw_low));
    multi_heap_free(h, b);
    size_t raw_now = raw_low + fb + 4;
    size_t remainder = raw_now - (fb + 4); /* the big free block, header included */

    multi_heap_info_t info;
    multi_heap_get_info(h, &info);
    assert_int_equal(info.total_free_bytes, minus_poison(raw_now));
    assert_int_equal(info.total_allocated_bytes, (fa - poison()) + (fc - poison()));
    assert_int_equal(info.largest_free_block, remainder - CT_BLOCK_HEADER - poison());
    assert_int_equal(info.minimum_free_bytes, minus_poison(raw_low));
    assert_int_equal(info.allocated_blocks, 2);
    assert_int_equal(info.free_blocks, 2);
    assert_int_equal(info.total_blocks, 4);
    assert_int_equal(multi_heap_free_size(h), info.total_free_bytes);
    assert_int_equal(multi_heap_minimum_free_size(h), info.minimum_free_bytes);
    assert_true(ct_largest_is_honest(h, NULL));

    /* Free everything: back to the fresh figures, low mark kept. */
    multi_heap_free(h, a);
    multi_heap_free(h, c);
    multi_heap_get_info(h, &info);
    assert_int_equal(info.total_free_bytes, minus_poison(raw));
    assert_int_equal(info.minimum_free_bytes, minus_poison(raw_low));
    assert_int_equal(info.allocated_blocks, 0);
    assert_int_equal(info.free_blocks, 1);
    assert_int_equal(info.total_blocks, 1);
}

/* get_info(h, NULL) writes nothing and does not crash. */
static void test_info_null_out(void **state)
{
    (void)state;
    multi_heap_handle_t h = multi_heap_register(region, 4096);
    multi_heap_get_info(h, NULL);
    assert_true(multi_heap_check(h, false));
}

/* reset returns the old mark and sets it to the current free bytes; restore lowers it. */
static void test_reset_and_restore(void **state)
{
    (void)state;
    multi_heap_handle_t h = multi_heap_register(region, 8192);
    size_t f0 = multi_heap_free_size(h);
    assert_int_equal(multi_heap_minimum_free_size(h), f0);
    void *a = multi_heap_malloc(h, 100);
    size_t f1 = multi_heap_free_size(h);
    assert_int_equal(f0 - f1, ct_expected_full_size(100) + 4);
    assert_int_equal(multi_heap_minimum_free_size(h), f1);
    multi_heap_free(h, a);
    assert_int_equal(multi_heap_free_size(h), f0);
    assert_int_equal(multi_heap_minimum_free_size(h), f1);

    assert_int_equal(multi_heap_reset_minimum_free_bytes(h), f1);
    assert_int_equal(multi_heap_minimum_free_size(h), f0);
    /* restore(v) makes the mark min(mark, v) */
    multi_heap_restore_minimum_free_bytes(h, f0 + 1000);
    assert_int_equal(multi_heap_minimum_free_size(h), f0);
    multi_heap_restore_minimum_free_bytes(h, f1);
    assert_int_equal(multi_heap_minimum_free_size(h), f1);
    multi_heap_restore_minimum_free_bytes(h, f0);
    assert_int_equal(multi_heap_minimum_free_size(h), f1);

    /* Round trip: reset then restore with what reset returned is a no-op. */
    void *b = multi_heap_malloc(h, 500);
    size_t mark = multi_heap_minimum_free_size(h);
    size_t old = multi_heap_reset_minimum_free_bytes(h);
    assert_int_equal(old, mark);
    assert_int_equal(multi_heap_minimum_free_size(h), multi_heap_free_size(h));
    multi_heap_restore_minimum_free_bytes(h, old);
    assert_int_equal(multi_heap_minimum_free_size(h), mark);

    /* After a reset the mark follows new dips only. */
    multi_heap_free(h, b);
    (void)multi_heap_reset_minimum_free_bytes(h);
    assert_int_equal(multi_heap_minimum_free_size(h), f0);
    void *c = multi_heap_malloc(h, 40);
    assert_int_equal(multi_heap_minimum_free_size(h), f0 - ct_expected_full_size(40) - 4);
    multi_heap_free(h, c);
    multi_heap_restore_minimum_free_bytes(h, 0);
    assert_int_equal(multi_heap_minimum_free_size(h), 0);
    assert_int_equal(multi_heap_reset_minimum_free_bytes(h), 0);
    assert_int_equal(multi_heap_minimum_free_size(h), f0);
}

/*
 * restore(v) is min(mark, v) for every v, SIZE_MAX included: the conversion
 * to the engine's figure (v + the block overhead, 12 to 24 bytes with
 * poisoning or task tracking) must not wrap, which set the mark to 0. Heaps
 * of every alignment (16-aligned ones have the largest overhead).
 */
static void test_restore_near_size_max(void **state)
{
    (void)state;
    for (size_t align = 4; align <= 16; align *= 2) {
        capheap_heap_options_t o = {.alignment = align};
        multi_heap_handle_t h = capheap_heap_register(region, 8192, &o);
        assert_non_null(h);
        void *a = multi_heap_malloc(h, 100);
        assert_non_null(a);
        multi_heap_free(h, a);
        size_t mark = multi_heap_minimum_free_size(h);
        assert_true(mark < multi_heap_free_size(h)); /* the dip is remembered */
        for (size_t k = 0; k <= 32; k++) {
            multi_heap_restore_minimum_free_bytes(h, SIZE_MAX - k);
            assert_int_equal(multi_heap_minimum_free_size(h), mark);
            multi_heap_info_t info;
            multi_heap_get_info(h, &info);
            assert_int_equal(info.minimum_free_bytes, mark);
        }
        /* Values above 4 GiB (64-bit) keep it too: the engine counts in 32 bits. */
        multi_heap_restore_minimum_free_bytes(h, (size_t)UINT32_MAX);
        assert_int_equal(multi_heap_minimum_free_size(h), mark);
        assert_int_equal(multi_heap_reset_minimum_free_bytes(h), mark);
        assert_true(multi_heap_check(h, false));
    }
}

/* The mark follows aligned allocations and reallocs that grow. */
static void test_minimum_follows_every_allocation(void **state)
{
    (void)state;
    multi_heap_handle_t h = multi_heap_register(region, 8192);
    void *a = multi_heap_aligned_alloc(h, 100, 256);
    assert_non_null(a);
    assert_int_equal(multi_heap_minimum_free_size(h), multi_heap_free_size(h));
    void *b = multi_heap_aligned_alloc_offs(h, 100, 128, 8);
    assert_non_null(b);
    assert_int_equal(multi_heap_minimum_free_size(h), multi_heap_free_size(h));
    void *c = multi_heap_realloc(h, NULL, 64);
    assert_int_equal(multi_heap_minimum_free_size(h), multi_heap_free_size(h));
    c = multi_heap_realloc(h, c, 3000);
    assert_non_null(c);
    assert_true(multi_heap_minimum_free_size(h) <= multi_heap_free_size(h));
    size_t low = multi_heap_minimum_free_size(h);
    multi_heap_free(h, a);
    multi_heap_free(h, b);
    multi_heap_free(h, c);
    assert_int_equal(multi_heap_minimum_free_size(h), low);
}

/* Everything get_info says agrees with the walk and with the caller's blocks. */
static void assert_info_consistent(multi_heap_handle_t h, size_t region_size, void *const *live,
                                   size_t nlive)
{
    multi_heap_info_t info;
    multi_heap_get_info(h, &info);
    ct_walk_summary_t s;
    ct_walk_summary(h, &s);
    assert_true(s.ordered);
    assert_true(s.contiguous);
    assert_false(s.adjacent_free);
    assert_int_equal(s.used_raw + s.free_raw, region_size - capheap_heap_overhead(h));
    assert_int_equal(info.total_free_bytes, multi_heap_free_size(h));
    assert_int_equal(info.total_free_bytes, minus_heap_poison(h, s.free_raw));
    assert_int_equal(info.minimum_free_bytes, multi_heap_minimum_free_size(h));
    assert_true(info.minimum_free_bytes <= info.total_free_bytes);
    assert_int_equal(info.allocated_blocks, s.used_blocks);
    assert_int_equal(info.free_blocks, s.free_blocks);
    assert_int_equal(info.total_blocks, s.blocks);
    assert_int_equal(info.allocated_blocks, nlive);
    size_t usable = 0;
    for (size_t i = 0; i < nlive; i++) {
        usable += multi_heap_get_allocated_size(h, live[i]);
    }
    assert_int_equal(info.total_allocated_bytes, usable);
    /* Never more than the largest free block can give. */
    size_t cap = minus_heap_poison(h, s.largest_free);
    assert_true(info.largest_free_block <= cap);
}

/*
 * Random heap states (mallocs, aligned allocs, reallocs, frees) on heaps of
 * alignment 4, 8 and 16: after every step the statistics agree with the
 * walk, and largest_free_block is honest.
 */
static void test_random_states(void **state)
{
    (void)state;
    enum { SLOTS = 64, STEPS = 1500 };
    static void *live[SLOTS];
    static size_t lens[SLOTS];
    ct_rng_t rng;
    ct_rng_init(&rng, ct_seed("stats.random_states"));
    for (size_t align = 4; align <= 16; align *= 2) {
        capheap_heap_options_t o = {.alignment = align};
        size_t region_size = REGION_BYTES - (size_t)ct_rng_below(&rng, 64) * 4u;
        multi_heap_handle_t h = capheap_heap_register(region, region_size, &o);
        assert_non_null(h);
        memset(live, 0, sizeof live);
        size_t observed_low = multi_heap_free_size(h);
        for (int step = 0; step < STEPS; step++) {
            size_t i = (size_t)ct_rng_below(&rng, SLOTS);
            uint64_t kind = ct_rng_below(&rng, 10);
            size_t n = (size_t)ct_rng_range(&rng, 1, kind == 0 ? 8000 : 400);
            if (live[i] && kind < 4) {
                assert_true(ct_stamp_ok(live[i], lens[i]));
                multi_heap_free(h, live[i]);
                live[i] = NULL;
            } else if (live[i] && kind < 6) {
                uint32_t tok = ct_token(live[i]);
                void *q = multi_heap_realloc(h, live[i], n);
                if (q) {
                    size_t keep = lens[i] < n ? lens[i] : n;
                    assert_true(ct_stamp_ok_token(q, keep, tok));
                    live[i] = q;
                    lens[i] = n;
                    ct_stamp(q, n);
                }
            } else if (!live[i]) {
                void *q = (kind >= 8)
                              ? multi_heap_aligned_alloc(h, n, (size_t)1 << ct_rng_range(&rng, 3, 9))
                              : multi_heap_malloc(h, n);
                if (q) {
                    live[i] = q;
                    lens[i] = n;
                    ct_stamp(q, n);
                }
            }
            if (multi_heap_free_size(h) < observed_low) {
                observed_low = multi_heap_free_size(h);
            }
            assert_true(multi_heap_minimum_free_size(h) <= observed_low);
            void *compact[SLOTS];
            size_t nlive = 0;
            for (size_t k = 0; k < SLOTS; k++) {
                if (live[k]) {
                    compact[nlive++] = live[k];
                }
            }
            assert_info_consistent(h, region_size, compact, nlive);
            size_t largest = 0;
            if (!ct_largest_is_honest(h, &largest)) {
                fail_msg("largest_free_block %zu is not honest (alignment %zu, step %d)",
                         largest, align, step);
            }
            if (step % 100 == 0) {
                assert_true(multi_heap_check(h, false));
            }
        }
        for (size_t k = 0; k < SLOTS; k++) {
            if (live[k]) {
                assert_true(ct_stamp_ok(live[k], lens[k]));
                multi_heap_free(h, live[k]);
            }
        }
        assert_int_equal(multi_heap_free_size(h),
                         minus_heap_poison(h, region_size - capheap_heap_overhead(h)));
    }
}

/*
 * Fragmented states: fill with blocks of one size, free every other one,
 * then probe largest_free_block for many sizes of holes.
 */
static void test_largest_in_fragmented_heaps(void **state)
{
    (void)state;
    enum { MAX = 2048 };
    static void *p[MAX];
    for (size_t align = 4; align <= 16; align *= 2) {
        capheap_heap_options_t o = {.alignment = align};
        for (size_t sz = 1; sz < 300; sz += 23) {
            multi_heap_handle_t h = capheap_heap_register(region, 16384, &o);
            assert_non_null(h);
            size_t n = 0;
            while (n < MAX && (p[n] = multi_heap_malloc(h, sz)) != NULL) {
                n++;
            }
            assert_true(ct_largest_is_honest(h, NULL));
            for (size_t i = 0; i < n; i += 2) {
                multi_heap_free(h, p[i]);
            }
            size_t largest = 0;
            assert_true(ct_largest_is_honest(h, &largest));
            assert_true(largest >= sz);
            /* Free one more, making one hole three blocks long. */
            if (n > 4) {
                multi_heap_free(h, p[3]);
                assert_true(ct_largest_is_honest(h, &largest));
                assert_true(largest >= sz * 3);
            }
            assert_true(multi_heap_check(h, false));
        }
    }
}

/*
 * capheap_heap_largest_request() on the smallest heaps: at the heap's own
 * alignment (or less) no gap is needed, so it is largest_free_block even
 * when that alignment is above the heap's largest request (a 16-aligned
 * heap of a few dozen bytes); above it, a gap the heap cannot give is 0.
 * (fuzz_caps found heap_caps_get_largest_free_block(EXEC) saying 0 while
 * heap_caps_malloc(1, EXEC) succeeded in such a heap.)
 */
static void test_largest_request_tiny_heaps(void **state)
{
    (void)state;
    for (size_t align = 4; align <= 16; align *= 2) {
        capheap_heap_options_t o = {.alignment = align};
        multi_heap_handle_t h = NULL;
        size_t size = 16;
        while (h == NULL && size < 512) /* the smallest region that makes a heap */
            h = capheap_heap_register(region, ++size, &o);
        assert_non_null(h);
        for (int grow = 0; grow < 64; grow++, size++) {
            h = capheap_heap_register(region, size, &o);
            assert_non_null(h);
            multi_heap_info_t info;
            multi_heap_get_info(h, &info);
            for (size_t a = 1; a <= align; a *= 2) {
                size_t r = capheap_heap_largest_request(h, a);
                if (r != info.largest_free_block) {
                    fail_msg("largest_request(%zu) = %zu, largest_free_block %zu (alignment %zu, %zu bytes)", a,
                             r, info.largest_free_block, align, size);
                }
            }
            void *p = info.largest_free_block > 0 ? multi_heap_malloc(h, info.largest_free_block) : NULL;
            assert_true(info.largest_free_block == 0 || p != NULL);
            multi_heap_free(h, p);
            assert_null(multi_heap_malloc(h, info.largest_free_block + 1));
            size_t big = capheap_heap_largest_request(h, 64); /* above the heap's alignment: a gap */
            if (big > 0) {
                void *q = multi_heap_aligned_alloc(h, big, 64);
                assert_non_null(q);
                multi_heap_free(h, q);
            }
        }
    }
}

/*
 * capheap_heap_largest_request() above the heap's alignment is exact
 * (capheap/heap.h) in both directions: aligned_alloc(L) succeeds and
 * aligned_alloc(L + 1) fails, and L = 0 means not even one byte. Fresh heaps
 * of every size from the smallest one up, so the pool, the largest block,
 * passes through every size near the gap the alignment needs (a block that
 * can hold the gap block but no data, and a few bytes more).
 */
static void test_largest_request_above_heap_alignment(void **state)
{
    (void)state;
    for (size_t align = 4; align <= 16; align *= 2) {
        capheap_heap_options_t o = {.alignment = align};
        size_t size = capheap_heap_min_region_size(align);
        for (size_t k = 0; k < 160; k++, size++) {
            multi_heap_handle_t h = capheap_heap_register(region, size, &o);
            assert_non_null(h);
            for (size_t a = align * 2; a <= 128; a *= 2) {
                size_t L = capheap_heap_largest_request(h, a);
                void *p = multi_heap_aligned_alloc(h, L > 0 ? L : 1, a);
                if ((p != NULL) != (L > 0)) {
                    fail_msg("largest_request(%zu) = %zu, but aligned_alloc(%zu) %s (alignment %zu, %zu bytes)", a,
                             L, L > 0 ? L : 1, p != NULL ? "succeeds" : "fails", align, size);
                }
                multi_heap_free(h, p);
                void *q = multi_heap_aligned_alloc(h, L + 1, a);
                if (q != NULL) {
                    fail_msg("largest_request(%zu) = %zu, but aligned_alloc(%zu) succeeds (alignment %zu, %zu bytes)",
                             a, L, L + 1, align, size);
                }
            }
            assert_true(multi_heap_check(h, false));
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fresh_heap_info),
        cmocka_unit_test(test_known_sequence),
        cmocka_unit_test(test_info_null_out),
        cmocka_unit_test(test_reset_and_restore),
        cmocka_unit_test(test_restore_near_size_max),
        cmocka_unit_test(test_minimum_follows_every_allocation),
        cmocka_unit_test(test_random_states),
        cmocka_unit_test(test_largest_in_fragmented_heaps),
        cmocka_unit_test(test_largest_request_tiny_heaps),
        cmocka_unit_test(test_largest_request_above_heap_alignment),
    };
    return cmocka_run_group_tests_name("stats", tests, NULL, NULL);
}
