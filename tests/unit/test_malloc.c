/*
 * test_malloc.c - multi_heap_malloc(), multi_heap_free(),
 * multi_heap_aligned_free(), multi_heap_get_allocated_size() and
 * multi_heap_get_full_block_size(): capacity rules, accounting, sizes near
 * SIZE_MAX, exhaustion.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "support.h"

#define REGION_BYTES (64u * 1024u)
static _Alignas(16) unsigned char region[REGION_BYTES];

static multi_heap_handle_t fresh(size_t size)
{
    multi_heap_handle_t h = multi_heap_register(region, size);
    assert_non_null(h);
    return h;
}

/* free_size() before any poison correction, i.e. the sum of free blocks. */
static size_t raw_free(multi_heap_handle_t h)
{
    ct_walk_summary_t s;
    ct_walk_summary(h, &s);
    size_t reported = multi_heap_free_size(h);
    if (s.free_raw > capheap_poison_overhead()) {
        assert_int_equal(reported, s.free_raw - capheap_poison_overhead());
    } else {
        assert_int_equal(reported, 0);
    }
    return s.free_raw;
}

static void test_malloc_zero(void **state)
{
    (void)state;
    multi_heap_handle_t h = fresh(4096);
    size_t before = multi_heap_free_size(h);
    assert_null(multi_heap_malloc(h, 0));
    assert_int_equal(multi_heap_free_size(h), before);
    assert_int_equal(multi_heap_minimum_free_size(h), before);
    assert_true(multi_heap_check(h, false));
}

/* Size arithmetic never wraps: sizes near SIZE_MAX give NULL and change nothing. */
static void test_malloc_huge_sizes(void **state)
{
    (void)state;
    multi_heap_handle_t h = fresh(REGION_BYTES);
    size_t before = multi_heap_free_size(h);
    const size_t sizes[] = {
        SIZE_MAX,      SIZE_MAX - 1,  SIZE_MAX - 2,      SIZE_MAX - 3,  SIZE_MAX - 4,
        SIZE_MAX - 7,  SIZE_MAX - 8,  SIZE_MAX - 11,     SIZE_MAX - 12, SIZE_MAX - 13,
        SIZE_MAX - 15, SIZE_MAX - 16, SIZE_MAX - 19,     SIZE_MAX - 20, SIZE_MAX - 31,
        SIZE_MAX / 2,  SIZE_MAX / 2 + 1, SIZE_MAX / 2 - 3, (size_t)UINT32_MAX,
        (size_t)UINT32_MAX - 3, (size_t)UINT32_MAX - 12, REGION_BYTES, REGION_BYTES * 2u,
#if SIZE_MAX > UINT32_MAX
        /* A 64-bit size whose low 32 bits are small must not be truncated. */
        ((size_t)1 << 32) + 16u, ((size_t)1 << 32), ((size_t)1 << 33) + 1u,
        ((size_t)1 << 32) + 4u,
#endif
    };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        assert_null(multi_heap_malloc(h, sizes[i]));
        assert_int_equal(multi_heap_free_size(h), before);
    }
    assert_int_equal(multi_heap_minimum_free_size(h), before);
    assert_true(multi_heap_check(h, false));
    assert_true(ct_largest_is_honest(h, NULL));
}

/* One byte past what the heap can give fails; exactly that succeeds. */
static void test_malloc_whole_heap(void **state)
{
    (void)state;
    multi_heap_handle_t h = fresh(8192);
    size_t raw = 8192 - capheap_heap_overhead(h);
    size_t whole = raw - CT_BLOCK_HEADER - capheap_poison_overhead();
    assert_null(multi_heap_malloc(h, whole + 1u));
    void *p = multi_heap_malloc(h, whole);
    assert_non_null(p);
    assert_int_equal(multi_heap_get_allocated_size(h, p), whole);
    assert_int_equal(multi_heap_free_size(h), 0);
    assert_null(multi_heap_malloc(h, 1));
    ct_stamp(p, whole);
    assert_true(multi_heap_check(h, false));
    assert_true(ct_stamp_ok(p, whole));
    multi_heap_free(h, p);
    assert_int_equal(multi_heap_free_size(h), raw - capheap_poison_overhead());
}

/* Spec 3.8: malloc(1) has capacity 12 (light: 4) and costs 16 bytes (light: 20).
 * Task tracking's owner word takes 4 of those 12 bytes, or adds 4 with poisoning. */
static void test_malloc_one_byte(void **state)
{
    (void)state;
    multi_heap_handle_t h = fresh(4096);
    size_t before = multi_heap_free_size(h);
    unsigned char *p = multi_heap_malloc(h, 1);
    assert_non_null(p);
    assert_int_equal((uintptr_t)p % 4, 0);
#if CT_POISONING
    assert_int_equal(multi_heap_get_allocated_size(h, p), 4);
    assert_int_equal(multi_heap_get_full_block_size(h, p), 16 + CT_OWNER_BYTES);
    assert_int_equal(before - multi_heap_free_size(h), 20 + CT_OWNER_BYTES);
#else
    assert_int_equal(multi_heap_get_allocated_size(h, p), 12 - CT_OWNER_BYTES);
    assert_int_equal(multi_heap_get_full_block_size(h, p), 12);
    assert_int_equal(before - multi_heap_free_size(h), 16);
#endif
    *p = 0x5a;
    assert_true(multi_heap_check(h, false));
    multi_heap_free(h, p);
    assert_int_equal(multi_heap_free_size(h), before);
}

/* Spec 3.8: malloc(13) has capacity 16 (light: 16, full 28), costs 20 (light: 32);
 * the owner word of task tracking builds adds 4 to the full size and the cost. */
static void test_malloc_13_bytes(void **state)
{
    (void)state;
    multi_heap_handle_t h = fresh(4096);
    size_t before = multi_heap_free_size(h);
    unsigned char *p = multi_heap_malloc(h, 13);
    assert_non_null(p);
    assert_int_equal(multi_heap_get_allocated_size(h, p), 16);
#if CT_POISONING
    assert_int_equal(multi_heap_get_full_block_size(h, p), 28 + CT_OWNER_BYTES);
    assert_int_equal(before - multi_heap_free_size(h), 32 + CT_OWNER_BYTES);
#else
    assert_int_equal(multi_heap_get_full_block_size(h, p), 16 + CT_OWNER_BYTES);
    assert_int_equal(before - multi_heap_free_size(h), 20 + CT_OWNER_BYTES);
#endif
    ct_stamp(p, 13);
    assert_true(multi_heap_check(h, false));
    assert_true(ct_stamp_ok(p, 13));
    multi_heap_free(h, p);
    assert_int_equal(multi_heap_free_size(h), before);
}

/*
 * The capacity rule for every size 1..600: usable = max(12, round_up(n, 4))
 * (with poisoning: full = round_up(n + 12, 4), usable = full - 12; task
 * tracking adds its 4-byte owner word to the 12), never a size class; the
 * heap pays full + 4.
 */
static void test_capacity_rule(void **state)
{
    (void)state;
    multi_heap_handle_t h = fresh(REGION_BYTES);
    size_t empty = multi_heap_free_size(h);
    void *guard = NULL;
    for (size_t n = 1; n <= 600; n++) {
        size_t before = multi_heap_free_size(h);
        unsigned char *p = multi_heap_malloc(h, n);
        assert_non_null(p);
        assert_int_equal((uintptr_t)p % 4, 0);
        size_t usable = multi_heap_get_allocated_size(h, p);
        size_t full = multi_heap_get_full_block_size(h, p);
        assert_int_equal(usable, ct_expected_usable_size(n));
        assert_int_equal(full, ct_expected_full_size(n));
        assert_int_equal(full, usable + capheap_poison_overhead());
        assert_int_equal(before - multi_heap_free_size(h), full + CT_BLOCK_HEADER);
        /* Without poisoning the whole capacity is the caller's; with it, n bytes. */
        size_t writable = CT_POISONING ? n : usable;
        ct_stamp(p, writable);
        if (n % 7 == 0) {
            /* keep some blocks to vary the neighbourhood */
            guard = p;
            continue;
        }
        assert_true(multi_heap_check(h, false));
        assert_true(ct_stamp_ok(p, writable));
        multi_heap_free(h, p);
        assert_int_equal(multi_heap_free_size(h), before);
    }
    (void)guard;
    assert_true(multi_heap_check(h, false));
    assert_true(multi_heap_free_size(h) < empty);
}

/*
 * 8- and 16-aligned heaps: a block is the request plus the poison overhead
 * plus its 4-byte header, rounded up to the alignment (so that the next
 * block's data is aligned too), at least 16 bytes; its raw capacity is that
 * minus the header. Nothing is rounded to a size class.
 */
static void test_capacity_rule_wide_heaps(void **state)
{
    (void)state;
    for (size_t align = 8; align <= 16; align *= 2) {
        capheap_heap_options_t o = {.alignment = align};
        multi_heap_handle_t h = capheap_heap_register(region, REGION_BYTES, &o);
        assert_non_null(h);
        size_t poison = ct_poison_overhead(align);
        for (size_t n = 1; n <= 300; n++) {
            size_t before = multi_heap_free_size(h);
            unsigned char *p = multi_heap_malloc(h, n);
            assert_non_null(p);
            assert_int_equal((uintptr_t)p % align, 0);
            size_t full = ct_round_up(n + poison + CT_BLOCK_HEADER, align) - CT_BLOCK_HEADER;
            if (full < CT_MIN_CAPACITY) {
                full = CT_MIN_CAPACITY;
            }
            assert_int_equal(multi_heap_get_full_block_size(h, p), full);
            assert_int_equal(multi_heap_get_allocated_size(h, p), full - poison);
            assert_int_equal(before - multi_heap_free_size(h), full + CT_BLOCK_HEADER);
            ct_stamp(p, n);
            assert_true(ct_stamp_ok(p, n));
            multi_heap_free(h, p);
            assert_int_equal(multi_heap_free_size(h), before);
        }
        assert_true(multi_heap_check(h, false));
    }
}

#if CAPHEAP_POISONING_COMPREHENSIVE
/* Comprehensive poisoning hands out memory filled with 0xCE. */
static void test_malloc_fill_pattern(void **state)
{
    (void)state;
    multi_heap_handle_t h = fresh(8192);
    for (size_t n = 1; n < 300; n += 17) {
        unsigned char *p = multi_heap_malloc(h, n);
        assert_non_null(p);
        for (size_t i = 0; i < n; i++) {
            assert_int_equal(p[i], CT_MALLOC_FILL);
        }
        memset(p, 0x33, n);
        multi_heap_free(h, p);
    }
    assert_true(multi_heap_check(h, false));
}
#endif

/*
 * Fill the heap until malloc fails, checking stamps and accounting on the
 * way; what is left over is too small for the request; freeing everything
 * (shuffled) gives back one free block of the original size.
 */
static void test_exhaustion(void **state)
{
    (void)state;
    enum { MAX = 2048 };
    static void *ptrs[MAX];
    static size_t lens[MAX];
    multi_heap_handle_t h = fresh(16384);
    size_t empty = multi_heap_free_size(h);
    size_t count = 0;
    size_t rounds[] = {24, 1};
    for (size_t r = 0; r < 2; r++) {
        size_t n = rounds[r];
        for (;;) {
            assert_true(count < MAX);
            size_t before = multi_heap_free_size(h);
            void *p = multi_heap_malloc(h, n);
            if (!p) {
                assert_int_equal(multi_heap_free_size(h), before);
                break;
            }
            assert_true(multi_heap_get_allocated_size(h, p) >= n);
            ct_stamp(p, n);
            ptrs[count] = p;
            lens[count] = n;
            count++;
        }
        /* Nothing is left that could hold n bytes. */
        multi_heap_info_t info;
        multi_heap_get_info(h, &info);
        assert_true(info.largest_free_block < n);
        assert_true(ct_largest_is_honest(h, NULL));
    }
    assert_true(count > 16384 / 64);
    assert_null(multi_heap_malloc(h, 1));
    assert_true(multi_heap_free_size(h) < 16 + CT_BLOCK_HEADER);
    assert_true(multi_heap_check(h, false));
    multi_heap_info_t info;
    multi_heap_get_info(h, &info);
    assert_int_equal(info.allocated_blocks, count);

    ct_rng_t rng;
    ct_rng_init(&rng, ct_seed("malloc.exhaustion"));
    for (size_t i = count; i > 1; i--) {
        size_t j = (size_t)ct_rng_below(&rng, i);
        void *tp = ptrs[i - 1];
        size_t tl = lens[i - 1];
        ptrs[i - 1] = ptrs[j];
        lens[i - 1] = lens[j];
        ptrs[j] = tp;
        lens[j] = tl;
    }
    for (size_t i = 0; i < count; i++) {
        assert_true(ct_stamp_ok(ptrs[i], lens[i]));
        multi_heap_free(h, ptrs[i]);
        if (i % 64 == 0) {
            assert_true(multi_heap_check(h, false));
        }
    }
    assert_int_equal(multi_heap_free_size(h), empty);
    ct_walk_summary_t s;
    ct_walk_summary(h, &s);
    assert_int_equal(s.blocks, 1);
    assert_int_equal(s.free_blocks, 1);
    assert_true(multi_heap_check(h, false));
}

/* Live blocks never overlap and keep their contents. */
static void test_blocks_are_disjoint(void **state)
{
    (void)state;
    enum { N = 200 };
    static unsigned char *ptrs[N];
    static size_t lens[N];
    multi_heap_handle_t h = fresh(REGION_BYTES);
    ct_rng_t rng;
    ct_rng_init(&rng, ct_seed("malloc.disjoint"));
    for (size_t i = 0; i < N; i++) {
        lens[i] = (size_t)ct_rng_range(&rng, 1, 200);
        ptrs[i] = multi_heap_malloc(h, lens[i]);
        assert_non_null(ptrs[i]);
        assert_true(ptrs[i] >= region && ptrs[i] + lens[i] <= region + REGION_BYTES);
        ct_stamp(ptrs[i], lens[i]);
    }
    for (size_t i = 0; i < N; i++) {
        assert_true(ct_stamp_ok(ptrs[i], lens[i]));
        for (size_t j = i + 1; j < N; j++) {
            assert_true(ptrs[i] + lens[i] <= ptrs[j] || ptrs[j] + lens[j] <= ptrs[i]);
        }
    }
    for (size_t i = 0; i < N; i += 2) {
        multi_heap_free(h, ptrs[i]);
    }
    for (size_t i = 1; i < N; i += 2) {
        assert_true(ct_stamp_ok(ptrs[i], lens[i]));
    }
    assert_true(multi_heap_check(h, false));
}

/* free(NULL) does nothing. */
static void test_free_null_pointer(void **state)
{
    (void)state;
    multi_heap_handle_t h = fresh(4096);
    void *p = multi_heap_malloc(h, 40);
    size_t before = multi_heap_free_size(h);
    multi_heap_free(h, NULL);
    multi_heap_aligned_free(h, NULL);
    assert_int_equal(multi_heap_free_size(h), before);
    assert_int_equal(multi_heap_get_allocated_size(h, p), ct_expected_usable_size(40));
    assert_true(multi_heap_check(h, false));
}

/* Freed neighbours coalesce: a heap emptied in any order is one free block. */
static void test_free_coalesces(void **state)
{
    (void)state;
    multi_heap_handle_t h = fresh(8192);
    size_t empty = multi_heap_free_size(h);
    void *p[6];
    for (int i = 0; i < 6; i++) {
        p[i] = multi_heap_malloc(h, 100);
        assert_non_null(p[i]);
    }
    static const int order[] = {1, 3, 2, 5, 0, 4};
    for (int i = 0; i < 6; i++) {
        multi_heap_free(h, p[order[i]]);
        ct_walk_summary_t s;
        ct_walk_summary(h, &s);
        assert_false(s.adjacent_free);
        assert_true(multi_heap_check(h, false));
    }
    ct_walk_summary_t s;
    ct_walk_summary(h, &s);
    assert_int_equal(s.blocks, 1);
    assert_int_equal(multi_heap_free_size(h), empty);
    (void)raw_free(h);
}

/* multi_heap_aligned_free() is free(), for aligned and plain blocks. */
static void test_aligned_free_alias(void **state)
{
    (void)state;
    multi_heap_handle_t h = fresh(8192);
    size_t empty = multi_heap_free_size(h);
    void *a = multi_heap_aligned_alloc(h, 100, 64);
    void *b = multi_heap_malloc(h, 100);
    assert_non_null(a);
    assert_non_null(b);
    multi_heap_aligned_free(h, a);
    multi_heap_aligned_free(h, b);
    assert_int_equal(multi_heap_free_size(h), empty);
    assert_true(multi_heap_check(h, false));
}

/*
 * What of get_allocated_size() is writable (multi_heap.h): without poisoning
 * all of it (malloc_usable_size()); with poisoning only the request: the tail
 * canary follows it, inside the usable size, and a write past the request
 * is found as "Bad tail".
 */
static void test_usable_size_writable(void **state)
{
    (void)state;
    multi_heap_handle_t h = fresh(4096);
    for (size_t n = 1; n <= 40; n++) {
        unsigned char *p = multi_heap_malloc(h, n);
        assert_non_null(p);
        size_t usable = multi_heap_get_allocated_size(h, p);
        assert_true(usable >= n);
        memset(p, 0x5a, n);
        assert_true(multi_heap_check(h, false));
#if CT_POISONING
        if (usable > n) {
            uint8_t keep = ct_peek8(p + n);
            ct_poke8(p + n, (uint8_t)(keep ^ 0xffu)); /* the first byte past the request */
            capheap_clear_last_report();
            assert_false(multi_heap_check(h, false));
            assert_string_equal(capheap_last_report().what, "Bad tail");
            ct_poke8(p + n, keep);
            assert_true(multi_heap_check(h, false));
        }
#else
        memset(p, 0xa5, usable); /* the whole usable size is the caller's */
        assert_true(multi_heap_check(h, false));
#endif
        multi_heap_free(h, p);
    }
}

static void test_sizes_of_null(void **state)
{
    (void)state;
    multi_heap_handle_t h = fresh(4096);
    assert_int_equal(multi_heap_get_allocated_size(h, NULL), 0);
    assert_int_equal(multi_heap_get_full_block_size(h, NULL), 0);
}

/* get_allocated_size / get_full_block_size agree with the walk's raw sizes. */
static void test_sizes_match_walk(void **state)
{
    (void)state;
    multi_heap_handle_t h = fresh(8192);
    static const size_t lens[] = {1, 3, 12, 13, 17, 64, 100, 257};
    void *p[8];
    size_t used_raw = 0;
    for (int i = 0; i < 8; i++) {
        p[i] = multi_heap_malloc(h, lens[i]);
        assert_non_null(p[i]);
        used_raw += multi_heap_get_full_block_size(h, p[i]) + CT_BLOCK_HEADER;
    }
    ct_walk_summary_t s;
    ct_walk_summary(h, &s);
    assert_int_equal(s.used_blocks, 8);
    assert_int_equal(s.used_raw, used_raw);
    assert_int_equal(s.used_raw + s.free_raw, 8192 - capheap_heap_overhead(h));
    assert_true(s.contiguous);
    assert_true(s.ordered);
}

/* The minimum-free mark follows every malloc. */
static void test_minimum_follows_malloc(void **state)
{
    (void)state;
    multi_heap_handle_t h = fresh(8192);
    void *a = multi_heap_malloc(h, 1000);
    size_t low = multi_heap_free_size(h);
    assert_int_equal(multi_heap_minimum_free_size(h), low);
    multi_heap_free(h, a);
    assert_int_equal(multi_heap_minimum_free_size(h), low);
    void *b = multi_heap_malloc(h, 500);
    assert_int_equal(multi_heap_minimum_free_size(h), low);
    void *c = multi_heap_malloc(h, 1000);
    assert_int_equal(multi_heap_minimum_free_size(h), multi_heap_free_size(h));
    multi_heap_free(h, b);
    multi_heap_free(h, c);
}

int main(void)
{
    printf("poisoning: %s\n", ct_poisoning_name());
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_malloc_zero),
        cmocka_unit_test(test_malloc_huge_sizes),
        cmocka_unit_test(test_malloc_whole_heap),
        cmocka_unit_test(test_malloc_one_byte),
        cmocka_unit_test(test_malloc_13_bytes),
        cmocka_unit_test(test_capacity_rule),
        cmocka_unit_test(test_capacity_rule_wide_heaps),
#if CAPHEAP_POISONING_COMPREHENSIVE
        cmocka_unit_test(test_malloc_fill_pattern),
#endif
        cmocka_unit_test(test_exhaustion),
        cmocka_unit_test(test_blocks_are_disjoint),
        cmocka_unit_test(test_free_null_pointer),
        cmocka_unit_test(test_free_coalesces),
        cmocka_unit_test(test_aligned_free_alias),
        cmocka_unit_test(test_usable_size_writable),
        cmocka_unit_test(test_sizes_of_null),
        cmocka_unit_test(test_sizes_match_walk),
        cmocka_unit_test(test_minimum_follows_malloc),
    };
    return cmocka_run_group_tests_name("malloc", tests, NULL, NULL);
}
