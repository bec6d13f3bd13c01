/*
 * test_aligned.c - multi_heap_aligned_alloc() and
 * multi_heap_aligned_alloc_offs(): bad alignments, every power of two from
 * 1 to 4096, (p + offset) alignment with the offset rounded up to 4, and the
 * accounting of the gap in front of an aligned block.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
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

static void assert_tiled(multi_heap_handle_t h, size_t region_size)
{
    ct_walk_summary_t s;
    ct_walk_summary(h, &s);
    assert_true(s.ordered);
    assert_true(s.contiguous);
    assert_false(s.adjacent_free);
    assert_int_equal(s.used_raw + s.free_raw, region_size - capheap_heap_overhead(h));
    size_t p = ct_heap_poison_overhead(h);
    assert_int_equal(multi_heap_free_size(h), s.free_raw > p ? s.free_raw - p : 0);
}

static void test_bad_alignments(void **state)
{
    (void)state;
    multi_heap_handle_t h = fresh(8192);
    size_t before = multi_heap_free_size(h);
    static const size_t bad[] = {0, 3, 5, 6, 7, 9, 12, 24, 48, 96, 100, 1000, 4095, 4097,
                                 SIZE_MAX, SIZE_MAX - 1, ((size_t)1 << 20) + 4};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_null(multi_heap_aligned_alloc(h, 64, bad[i]));
        assert_null(multi_heap_aligned_alloc_offs(h, 64, bad[i], 0));
        assert_null(multi_heap_aligned_alloc_offs(h, 64, bad[i], 8));
    }
    assert_int_equal(multi_heap_free_size(h), before);
    assert_int_equal(multi_heap_minimum_free_size(h), before);
    assert_true(multi_heap_check(h, false));
}

static void test_size_zero(void **state)
{
    (void)state;
    multi_heap_handle_t h = fresh(8192);
    size_t before = multi_heap_free_size(h);
    assert_null(multi_heap_aligned_alloc(h, 0, 16));
    assert_null(multi_heap_aligned_alloc(h, 0, 4));
    assert_null(multi_heap_aligned_alloc_offs(h, 0, 16, 0));
    assert_null(multi_heap_aligned_alloc_offs(h, 0, 16, 4));
    assert_int_equal(multi_heap_free_size(h), before);
}

/* Alignments that cannot be met in this heap, and sizes near SIZE_MAX. */
static void test_impossible_requests(void **state)
{
    (void)state;
    multi_heap_handle_t h = fresh(8192);
    size_t before = multi_heap_free_size(h);
    assert_null(multi_heap_aligned_alloc(h, 16, (size_t)1 << 20));
    assert_null(multi_heap_aligned_alloc(h, 16, (size_t)1 << (sizeof(size_t) * 8 - 1)));
    static const size_t huge[] = {SIZE_MAX,     SIZE_MAX - 3,  SIZE_MAX - 12, SIZE_MAX - 64,
                                  SIZE_MAX - 4095, SIZE_MAX / 2, 8192,
#if SIZE_MAX > UINT32_MAX
                                  ((size_t)1 << 32) + 16u,
#endif
    };
    static const size_t aligns[] = {4, 8, 64, 4096};
    for (size_t i = 0; i < sizeof huge / sizeof huge[0]; i++) {
        for (size_t a = 0; a < sizeof aligns / sizeof aligns[0]; a++) {
            assert_null(multi_heap_aligned_alloc(h, huge[i], aligns[a]));
            assert_null(multi_heap_aligned_alloc_offs(h, huge[i], aligns[a], 0));
            assert_null(multi_heap_aligned_alloc_offs(h, huge[i], aligns[a], 12));
        }
    }
    /* Offsets near SIZE_MAX must not wrap either. */
    assert_null(multi_heap_aligned_alloc_offs(h, 64, 64, SIZE_MAX));
    assert_null(multi_heap_aligned_alloc_offs(h, 64, 64, SIZE_MAX - 3));
    assert_null(multi_heap_aligned_alloc_offs(h, 64, 64, SIZE_MAX - 60));
    assert_int_equal(multi_heap_free_size(h), before);
    assert_true(multi_heap_check(h, false));
}

/* Alignments 1, 2 and 4 are met by every block. */
static void test_small_alignments(void **state)
{
    (void)state;
    multi_heap_handle_t h = fresh(8192);
    for (size_t align = 1; align <= 4; align *= 2) {
        void *p = multi_heap_aligned_alloc(h, 20, align);
        assert_non_null(p);
        assert_int_equal((uintptr_t)p % 4, 0);
        assert_true(multi_heap_get_allocated_size(h, p) >= 20);
        multi_heap_free(h, p);
    }
    assert_true(multi_heap_check(h, false));
}

/* Every power of two from 8 to 4096, several sizes, on a busy heap. */
static void test_power_of_two_alignments(void **state)
{
    (void)state;
    multi_heap_handle_t h = fresh(REGION_BYTES);
    size_t empty = multi_heap_free_size(h);
    static const size_t sizes[] = {1, 13, 100, 1000};
    /* A few plain blocks first so the free space does not start aligned. */
    void *pad1 = multi_heap_malloc(h, 5);
    void *pad2 = multi_heap_malloc(h, 37);
    assert_non_null(pad1);
    assert_non_null(pad2);
    for (size_t align = 8; align <= 4096; align *= 2) {
        void *keep[4];
        for (size_t i = 0; i < 4; i++) {
            size_t before = multi_heap_free_size(h);
            unsigned char *p = multi_heap_aligned_alloc(h, sizes[i], align);
            assert_non_null(p);
            assert_int_equal((uintptr_t)p % align, 0);
            assert_true(multi_heap_get_allocated_size(h, p) >= sizes[i]);
            /* The gap in front stays free: the heap pays the block only. */
            assert_int_equal(before - multi_heap_free_size(h),
                             multi_heap_get_full_block_size(h, p) + CT_BLOCK_HEADER);
            assert_ptr_equal(multi_heap_find_containing_block(h, p), p);
            ct_stamp(p, sizes[i]);
            keep[i] = p;
            assert_true(multi_heap_check(h, false));
            assert_tiled(h, REGION_BYTES);
        }
        for (size_t i = 0; i < 4; i++) {
            assert_true(ct_stamp_ok(keep[i], sizes[i]));
            multi_heap_free(h, keep[i]);
        }
        assert_true(multi_heap_check(h, false));
        assert_tiled(h, REGION_BYTES);
    }
    multi_heap_free(h, pad1);
    multi_heap_free(h, pad2);
    assert_int_equal(multi_heap_free_size(h), empty);
    ct_walk_summary_t s;
    ct_walk_summary(h, &s);
    assert_int_equal(s.blocks, 1);
}

/* Many aligned blocks interleaved with plain ones until the heap is full. */
static void test_fill_with_aligned_blocks(void **state)
{
    (void)state;
    enum { MAX = 1024 };
    static unsigned char *ptrs[MAX];
    static size_t lens[MAX];
    multi_heap_handle_t h = fresh(32768);
    size_t empty = multi_heap_free_size(h);
    size_t n = 0;
    for (;;) {
        assert_true(n < MAX);
        size_t len = 8 + (n % 5) * 12;
        unsigned char *p = (n % 3 == 0) ? multi_heap_malloc(h, len)
                                        : multi_heap_aligned_alloc(h, len, (size_t)32 << (n % 4));
        if (!p) {
            break;
        }
        if (n % 3 != 0) {
            assert_int_equal((uintptr_t)p % ((size_t)32 << (n % 4)), 0);
        }
        ct_stamp(p, len);
        ptrs[n] = p;
        lens[n] = len;
        n++;
    }
    assert_true(n > 50);
    assert_true(multi_heap_check(h, false));
    assert_tiled(h, 32768);
    assert_true(ct_largest_is_honest(h, NULL));
    for (size_t i = 0; i < n; i++) {
        assert_true(ct_stamp_ok(ptrs[i], lens[i]));
        multi_heap_free(h, ptrs[i]);
    }
    assert_int_equal(multi_heap_free_size(h), empty);
}

/* (p + round_up(offset, 4)) is aligned; the block holds size bytes. */
static void test_offs(void **state)
{
    (void)state;
    multi_heap_handle_t h = fresh(REGION_BYTES);
    size_t empty = multi_heap_free_size(h);
    static const size_t offsets[] = {0, 1, 2, 3, 4, 5, 7, 8, 12, 13, 16, 20, 64, 100};
    void *pad = multi_heap_malloc(h, 9);
    for (size_t align = 8; align <= 1024; align *= 2) {
        for (size_t i = 0; i < sizeof offsets / sizeof offsets[0]; i++) {
            size_t off = offsets[i];
            size_t size = off + 40;
            unsigned char *p = multi_heap_aligned_alloc_offs(h, size, align, off);
            assert_non_null(p);
            assert_int_equal((uintptr_t)(p + ct_round_up(off, 4)) % align, 0);
            assert_true(multi_heap_get_allocated_size(h, p) >= size);
            ct_stamp(p, size);
            assert_true(multi_heap_check(h, false));
            assert_true(ct_stamp_ok(p, size));
            assert_ptr_equal(multi_heap_find_containing_block(h, p + size - 1), p);
            multi_heap_free(h, p);
        }
    }
    /* Offset 0 is plain aligned_alloc. */
    unsigned char *q = multi_heap_aligned_alloc_offs(h, 100, 256, 0);
    assert_non_null(q);
    assert_int_equal((uintptr_t)q % 256, 0);
    multi_heap_free(h, q);
    /* Small alignments with an offset. */
    for (size_t align = 1; align <= 4; align *= 2) {
        unsigned char *r = multi_heap_aligned_alloc_offs(h, 50, align, 6);
        assert_non_null(r);
        multi_heap_free(h, r);
    }
    multi_heap_free(h, pad);
    assert_int_equal(multi_heap_free_size(h), empty);
    assert_true(multi_heap_check(h, false));
}

/* In 8- and 16-aligned heaps, aligned blocks meet both alignments. */
static void test_aligned_in_wide_heaps(void **state)
{
    (void)state;
    for (size_t heap_align = 8; heap_align <= 16; heap_align *= 2) {
        capheap_heap_options_t o = {.alignment = heap_align};
        multi_heap_handle_t h = capheap_heap_register(region, 32768, &o);
        assert_non_null(h);
        size_t empty = multi_heap_free_size(h);
        for (size_t align = 1; align <= 2048; align *= 2) {
            unsigned char *p = multi_heap_aligned_alloc(h, 33, align);
            assert_non_null(p);
            size_t need = align > heap_align ? align : heap_align;
            assert_int_equal((uintptr_t)p % need, 0);
            /* An offset that is a multiple of the heap alignment asks for nothing
             * the heap alignment forbids. */
            unsigned char *q = multi_heap_aligned_alloc_offs(h, 80, align, 32);
            assert_non_null(q);
            assert_int_equal((uintptr_t)(q + 32) % align, 0);
            assert_int_equal((uintptr_t)q % heap_align, 0);
            ct_stamp(p, 33);
            ct_stamp(q, 80);
            assert_true(multi_heap_check(h, false));
            assert_true(ct_largest_is_honest(h, NULL));
            assert_true(ct_stamp_ok(p, 33));
            assert_true(ct_stamp_ok(q, 80));
            multi_heap_free(h, q);
            multi_heap_free(h, p);
        }
        assert_int_equal(multi_heap_free_size(h), empty);
    }
}

/*
 * In a 16-aligned heap every pointer is 16-aligned, so (p + offset) can be
 * aligned to more than 16 only when offset is a multiple of 16: otherwise
 * NULL (documented); with such an offset the request is served.
 */
static void test_offs_in_wide_heap(void **state)
{
    (void)state;
    capheap_heap_options_t o = {.alignment = 16};
    multi_heap_handle_t h = capheap_heap_register(region, 16384, &o);
    assert_non_null(h);
    size_t before = multi_heap_free_size(h);
    static const size_t bad_offsets[] = {4, 8, 12, 20, 1, 9}; /* 1 -> 4, 9 -> 12 */
    for (size_t i = 0; i < sizeof bad_offsets / sizeof bad_offsets[0]; i++) {
        assert_null(multi_heap_aligned_alloc_offs(h, 64, 64, bad_offsets[i]));
        assert_null(multi_heap_aligned_alloc_offs(h, 64, 32, bad_offsets[i]));
    }
    assert_int_equal(multi_heap_free_size(h), before);
    for (size_t off = 0; off <= 64; off += 16) {
        unsigned char *p = multi_heap_aligned_alloc_offs(h, off + 32, 256, off);
        assert_non_null(p);
        assert_int_equal((uintptr_t)p % 16, 0);
        assert_int_equal((uintptr_t)(p + off) % 256, 0);
        ct_stamp(p, off + 32);
        assert_true(multi_heap_check(h, false));
        assert_true(ct_stamp_ok(p, off + 32));
        multi_heap_free(h, p);
    }
    assert_int_equal(multi_heap_free_size(h), before);
}

/*
 * The exact NULL rule of aligned_alloc_offs (multi_heap.h, docs/compat.md
 * item 14): with the offset rounded up to 4, NULL iff it is not a multiple of
 * min(alignment, heap alignment); otherwise served with (p + offset)
 * aligned. So a 16-aligned heap refuses offset 4 for alignment 8 (smaller
 * than the heap's) but serves it for alignment 4, and 4-aligned heaps serve
 * every offset.
 */
static void test_offs_null_rule(void **state)
{
    (void)state;
    for (size_t heap_align = 4; heap_align <= 16; heap_align *= 2) {
        capheap_heap_options_t o = {.alignment = heap_align};
        multi_heap_handle_t h = capheap_heap_register(region, 16384, &o);
        assert_non_null(h);
        size_t empty = multi_heap_free_size(h);
        for (size_t align = 1; align <= 64; align *= 2) {
            size_t unit = align < heap_align ? align : heap_align;
            for (size_t off = 0; off <= 40; off++) {
                size_t rounded = (off + 3u) & ~(size_t)3u;
                unsigned char *p = multi_heap_aligned_alloc_offs(h, 24, align, off);
                if (rounded % unit != 0) {
                    assert_null(p);
                    continue;
                }
                assert_non_null(p);
                assert_int_equal((uintptr_t)(p + rounded) % align, 0);
                assert_int_equal((uintptr_t)p % heap_align, 0);
                multi_heap_free(h, p);
            }
        }
        /* the cases the texts name */
        if (heap_align == 16) {
            assert_null(multi_heap_aligned_alloc_offs(h, 16, 8, 4));
            void *p = multi_heap_aligned_alloc_offs(h, 16, 4, 4);
            assert_non_null(p);
            multi_heap_free(h, p);
        }
        assert_int_equal(multi_heap_free_size(h), empty);
        assert_true(multi_heap_check(h, false));
    }
}

/* When the heap is nearly full, an aligned request that fits is served. */
static void test_aligned_tight_fit(void **state)
{
    (void)state;
    multi_heap_handle_t h = fresh(4096);
    multi_heap_info_t info;
    multi_heap_get_info(h, &info);
    /* The whole heap minus the worst-case gap for 64-byte alignment. */
    size_t size = info.largest_free_block - 64 - 16;
    unsigned char *p = multi_heap_aligned_alloc(h, size, 64);
    assert_non_null(p);
    assert_int_equal((uintptr_t)p % 64, 0);
    ct_stamp(p, size);
    assert_true(multi_heap_check(h, false));
    assert_tiled(h, 4096);
    assert_true(ct_stamp_ok(p, size));
    multi_heap_free(h, p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_alignments),
        cmocka_unit_test(test_size_zero),
        cmocka_unit_test(test_impossible_requests),
        cmocka_unit_test(test_small_alignments),
        cmocka_unit_test(test_power_of_two_alignments),
        cmocka_unit_test(test_fill_with_aligned_blocks),
        cmocka_unit_test(test_offs),
        cmocka_unit_test(test_aligned_in_wide_heaps),
        cmocka_unit_test(test_offs_in_wide_heap),
        cmocka_unit_test(test_offs_null_rule),
        cmocka_unit_test(test_aligned_tight_fit),
    };
    return cmocka_run_group_tests_name("aligned", tests, NULL, NULL);
}
