/*
 * test_register.c - multi_heap_register(), capheap_heap_register() and the
 * facts a fresh heap reports: alignment, overhead, minimum region size,
 * poison overhead. Registration never returns a half-made heap.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "capheap/check.h"
#include "support.h"

#define REGION_BYTES (64u * 1024u)
static _Alignas(64) unsigned char region[REGION_BYTES + 64u];
static _Alignas(64) unsigned char big_region[256u * 1024u];

static const size_t good_alignments[] = {4, 8, 16};

/* Everything a just-registered heap of `size` bytes must satisfy. */
static void assert_fresh_heap(multi_heap_handle_t h, void *start, size_t size, size_t alignment)
{
    assert_non_null(h);
    assert_ptr_equal((void *)h, start); /* the handle lives at the region start */
    assert_int_equal(capheap_heap_alignment(h), alignment);
    assert_true(multi_heap_check(h, false));

    size_t overhead = capheap_heap_overhead(h);
    assert_true(overhead > 0);
    assert_true(overhead < size);
    size_t raw_free = size - overhead;
    size_t poison = ct_poison_overhead(alignment);
    size_t expect_free = raw_free > poison ? raw_free - poison : 0;
    assert_int_equal(multi_heap_free_size(h), expect_free);
    assert_int_equal(multi_heap_minimum_free_size(h), expect_free);

    ct_walk_summary_t s;
    ct_walk_summary(h, &s);
    assert_int_equal(s.blocks, 1);
    assert_int_equal(s.free_blocks, 1);
    assert_int_equal(s.free_raw, raw_free);
    assert_true((const unsigned char *)s.first > (const unsigned char *)start);
    assert_true((const unsigned char *)s.end <= (const unsigned char *)start + size);

    multi_heap_info_t info;
    multi_heap_get_info(h, &info);
    assert_int_equal(info.total_free_bytes, expect_free);
    assert_int_equal(info.minimum_free_bytes, expect_free);
    assert_int_equal(info.total_allocated_bytes, 0);
    assert_int_equal(info.allocated_blocks, 0);
    assert_int_equal(info.free_blocks, 1);
    assert_int_equal(info.total_blocks, 1);
    assert_true(ct_largest_is_honest(h, NULL));
}

static void test_null_start(void **state)
{
    (void)state;
    assert_null(multi_heap_register(NULL, 4096));
    assert_null(capheap_heap_register(NULL, 4096, NULL));
    for (size_t i = 0; i < sizeof good_alignments / sizeof good_alignments[0]; i++) {
        capheap_heap_options_t o = {.alignment = good_alignments[i]};
        assert_null(capheap_heap_register(NULL, 4096, &o));
    }
}

static void test_misaligned_start(void **state)
{
    (void)state;
    static const size_t offsets[] = {1, 2, 3, 5, 6, 7, 9, 13, 15};
    for (size_t i = 0; i < sizeof offsets / sizeof offsets[0]; i++) {
        void *start = region + offsets[i];
        assert_null(multi_heap_register(start, 4096));
        assert_null(capheap_heap_register(start, 4096, NULL));
        for (size_t a = 0; a < sizeof good_alignments / sizeof good_alignments[0]; a++) {
            capheap_heap_options_t o = {.alignment = good_alignments[a]};
            assert_null(capheap_heap_register(start, 4096, &o));
        }
    }
}

/* Every 4-aligned start works, including ones that are not 8- or 16-aligned. */
static void test_four_aligned_starts(void **state)
{
    (void)state;
    for (size_t off = 0; off < 16; off += 4) {
        void *start = region + off;
        assert_fresh_heap(multi_heap_register(start, 4096), start, 4096, 4);
        assert_fresh_heap(capheap_heap_register(start, 4096, NULL), start, 4096, 4);
        for (size_t a = 0; a < sizeof good_alignments / sizeof good_alignments[0]; a++) {
            capheap_heap_options_t o = {.alignment = good_alignments[a]};
            assert_fresh_heap(capheap_heap_register(start, 4096, &o), start, 4096,
                              good_alignments[a]);
        }
    }
}

static void test_alignment_option_zero_means_four(void **state)
{
    (void)state;
    capheap_heap_options_t o;
    memset(&o, 0, sizeof o);
    multi_heap_handle_t h = capheap_heap_register(region, 4096, &o);
    assert_fresh_heap(h, region, 4096, 4);
    assert_int_equal(capheap_heap_min_region_size(0), capheap_heap_min_region_size(4));
    /* ...but a query's alignment 0 is not a power of two: no size (heap.h) */
    assert_true(capheap_heap_largest_request(h, 4) > 0);
    assert_int_equal(capheap_heap_largest_request(h, 0), 0);
    assert_int_equal(capheap_heap_largest_request(h, 12), 0);
}

static void test_bad_alignment_options(void **state)
{
    (void)state;
    static const size_t bad[] = {1, 2, 3, 5, 6, 7, 12, 24, 32, 64, 128, 4096, (size_t)1 << 31,
                                 SIZE_MAX};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        capheap_heap_options_t o = {.alignment = bad[i]};
        assert_null(capheap_heap_register(region, 4096, &o));
        assert_int_equal(capheap_heap_min_region_size(bad[i]), 0); /* no such heap: no size */
    }
}

/* Blocks of a heap honour its alignment, with and without poisoning. */
static void test_alignment_is_honoured(void **state)
{
    (void)state;
    for (size_t off = 0; off < 16; off += 4) {
        for (size_t a = 0; a < sizeof good_alignments / sizeof good_alignments[0]; a++) {
            size_t align = good_alignments[a];
            capheap_heap_options_t o = {.alignment = align};
            multi_heap_handle_t h = capheap_heap_register(region + off, 16384, &o);
            assert_non_null(h);
            void *ptrs[64];
            for (size_t n = 1; n <= 64; n++) {
                ptrs[n - 1] = multi_heap_malloc(h, n * 3u);
                assert_non_null(ptrs[n - 1]);
                assert_int_equal((uintptr_t)ptrs[n - 1] % align, 0);
                assert_true(multi_heap_get_allocated_size(h, ptrs[n - 1]) >= n * 3u);
                ct_stamp(ptrs[n - 1], n * 3u);
            }
            assert_true(multi_heap_check(h, false));
            for (size_t n = 1; n <= 64; n++) {
                assert_true(ct_stamp_ok(ptrs[n - 1], n * 3u));
                multi_heap_free(h, ptrs[n - 1]);
            }
            assert_true(multi_heap_check(h, false));
            assert_int_equal(multi_heap_free_size(h),
                             16384 - capheap_heap_overhead(h) - ct_poison_overhead(align));
        }
    }
}

/*
 * The block malloc(1) takes in a heap of alignment align, header included:
 * the request plus the poison overhead and the owner word (ct_poison_overhead),
 * plus the header, rounded to the alignment, at least 16 bytes.
 */
static size_t smallest_block(size_t align)
{
    size_t n = ct_round_up(1u + ct_poison_overhead(align) + CT_BLOCK_HEADER, align);
    return n < CT_BLOCK_HEADER + CT_MIN_CAPACITY ? CT_BLOCK_HEADER + CT_MIN_CAPACITY : n;
}

/*
 * capheap_heap_min_region_size(a) is accepted at every 4-aligned start and
 * the heap serves malloc(1) there, in every poisoning mode (with poisoning a
 * pool of one 16-byte block would serve nothing); one byte less is refused
 * (for alignment 4 at every start; for 8 and 16, where the padding a start
 * needs differs, at least at the worst start).
 */
static void test_min_region_size(void **state)
{
    (void)state;
    for (size_t a = 0; a < sizeof good_alignments / sizeof good_alignments[0]; a++) {
        size_t align = good_alignments[a];
        size_t min = capheap_heap_min_region_size(align);
        capheap_heap_options_t o = {.alignment = align};
        assert_true(min >= CT_BLOCK_HEADER + CT_MIN_CAPACITY);
        assert_true(min < 1024); /* small regions pay little */
        /* The figure per mode: 140 bytes for alignment 4 with a 16-byte block
         * (no poisoning), one row of control, the worst padding and the end
         * marker around the block malloc(1) needs: 144 with poisoning, 148
         * with poisoning and task tracking. */
        assert_int_equal(min, 140u - 16u + (align - 4u) + smallest_block(align));
        bool some_start_refuses = false;
        for (size_t off = 0; off < 16; off += 4) {
            unsigned char *start = region + off;
            multi_heap_handle_t h = capheap_heap_register(start, min, &o);
            assert_fresh_heap(h, start, min, align);
            /* The region holds at least one block that serves malloc(1). */
            ct_walk_summary_t s;
            ct_walk_summary(h, &s);
            assert_true(s.largest_free >= CT_MIN_CAPACITY);
            multi_heap_info_t info;
            multi_heap_get_info(h, &info);
            assert_true(info.largest_free_block >= 1u);
            void *p = multi_heap_malloc(h, 1);
            assert_non_null(p);
            assert_int_equal((uintptr_t)p % align, 0);
            ct_stamp(p, 1);
            assert_true(multi_heap_check(h, false));
            assert_true(ct_stamp_ok(p, 1));
            multi_heap_free(h, p);
            assert_true(multi_heap_check(h, false));
            if (capheap_heap_register(start, min - 1u, &o) == NULL) {
                some_start_refuses = true;
            } else {
                assert_true(align > 4); /* for alignment 4 every start must refuse */
            }
        }
        assert_true(some_start_refuses);
        if (align == 4) {
            assert_int_equal(min, capheap_heap_min_region_size(4));
            assert_non_null(multi_heap_register(region, min));
            assert_null(multi_heap_register(region, min - 1u));
            assert_null(multi_heap_register(region, min - 4u));
        }
    }
}

/*
 * Sizes from 0 to well above the minimum, at several starts: registration
 * returns NULL or a complete heap (never a handle without a pool).
 */
static void test_no_half_made_heap(void **state)
{
    (void)state;
    for (size_t a = 0; a < sizeof good_alignments / sizeof good_alignments[0]; a++) {
        size_t align = good_alignments[a];
        size_t min = capheap_heap_min_region_size(align);
        capheap_heap_options_t o = {.alignment = align};
        for (size_t off = 0; off < 16; off += 4) {
            unsigned char *start = region + off;
            for (size_t size = 0; size < min + 300u; size++) {
                multi_heap_handle_t h = capheap_heap_register(start, size, &o);
                if (size < min && align == 4) {
                    assert_null(h);
                }
                if (size >= min) {
                    assert_non_null(h);
                }
                if (h) {
                    assert_fresh_heap(h, start, size, align);
                    /* A heap that registers serves the smallest request. */
                    multi_heap_info_t info;
                    multi_heap_get_info(h, &info);
                    assert_true(info.largest_free_block >= 1u);
                    void *one = multi_heap_malloc(h, 1);
                    assert_non_null(one);
                    multi_heap_free(h, one);
                    /* Use it: fill it up with small blocks, then empty it. */
                    void *ptrs[64];
                    size_t n = 0;
                    while (n < 64 && (ptrs[n] = multi_heap_malloc(h, 5)) != NULL) {
                        ct_stamp(ptrs[n], 5);
                        n++;
                    }
                    assert_true(multi_heap_check(h, false));
                    assert_true(ct_largest_is_honest(h, NULL));
                    while (n > 0) {
                        n--;
                        assert_true(ct_stamp_ok(ptrs[n], 5));
                        multi_heap_free(h, ptrs[n]);
                    }
                    (void)multi_heap_reset_minimum_free_bytes(h); /* forget the dip */
                    assert_fresh_heap(h, start, size, align);
                }
            }
        }
    }
}

static void test_tiny_sizes_refused(void **state)
{
    (void)state;
    for (size_t size = 0; size < 64; size++) {
        assert_null(multi_heap_register(region, size));
    }
}

/*
 * A size above UINT32_MAX is refused (multi_heap.h: offsets are 32-bit),
 * also when its low 32 bits would make a fine region, and the region is not
 * written, nor marked for the sanitizers. 64-bit builds only.
 */
#if SIZE_MAX > UINT32_MAX
static void test_sizes_above_4_gib_refused(void **state)
{
    (void)state;
    const size_t sizes[] = {((size_t)1 << 32) + REGION_BYTES, ((size_t)1 << 33) + 4096u,
                            ((size_t)1 << 32) + capheap_heap_min_region_size(4)};
    for (size_t align = 4; align <= 16; align *= 2) {
        capheap_heap_options_t o = {.alignment = align};
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            capheap_sanitizer_release(region, sizeof region); /* an earlier test's heap poisoned it under ASan */
            memset(region, 0x5a, sizeof region);
            assert_null(capheap_heap_register(region, sizes[i], &o));
            if (align == 4) {
                assert_null(multi_heap_register(region, sizes[i]));
            }
            for (size_t k = 0; k < sizeof region; k++) {
                if (region[k] != 0x5a) {
                    fail_msg("byte %zu of the region written by a refused registration of %zu bytes", k, sizes[i]);
                }
            }
        }
    }
}
#endif

/*
 * The overhead is what a fresh heap does not offer. Metadata is 32-bit words
 * on every build, so the figures are the same on 64-bit and -m32; they must
 * not exceed ESP-IDF's multi_heap on 32 bits (812 bytes for a 64 KiB region,
 * 948 for 256 KiB: issue 2).
 */
static void test_overhead(void **state)
{
    (void)state;
    static const size_t sizes[] = {256, 1024, 4096, 6432, 16384, 32768, REGION_BYTES};
    size_t prev = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        multi_heap_handle_t h = multi_heap_register(region, sizes[i]);
        assert_non_null(h);
        size_t overhead = capheap_heap_overhead(h);
        assert_int_equal(multi_heap_free_size(h),
                         sizes[i] - overhead - capheap_poison_overhead());
        assert_true(overhead >= prev); /* bigger regions never pay less */
        prev = overhead;
        if (sizes[i] >= 1024) {
            assert_true(overhead <= sizes[i] / 2u);
        }
    }
    multi_heap_handle_t h64 = multi_heap_register(region, 65536);
    assert_non_null(h64);
    assert_true(capheap_heap_overhead(h64) <= 812);
    multi_heap_handle_t h256 = multi_heap_register(big_region, sizeof big_region);
    assert_non_null(h256);
    assert_true(capheap_heap_overhead(h256) <= 948);
}

static void test_poison_overhead(void **state)
{
    (void)state;
#if CT_POISONING
    assert_int_equal(capheap_poison_overhead(), 12 + CT_OWNER_BYTES);
#else
    assert_int_equal(capheap_poison_overhead(), CT_OWNER_BYTES); /* the owner word, or nothing */
#endif
    assert_int_equal(capheap_poison_overhead(), ct_poison_overhead(4));
    /* Per heap: 16-aligned heaps pad the head to 16 bytes (20 in all). */
    for (size_t a = 0; a < sizeof good_alignments / sizeof good_alignments[0]; a++) {
        capheap_heap_options_t o = {.alignment = good_alignments[a]};
        multi_heap_handle_t h = capheap_heap_register(region, 4096, &o);
        assert_non_null(h);
        assert_int_equal(capheap_heap_poison_overhead(h), ct_poison_overhead(good_alignments[a]));
    }
    assert_int_equal(capheap_heap_poison_overhead(NULL), 0);
}

/* Registering a used region again starts from scratch. */
static void test_reregister(void **state)
{
    (void)state;
    multi_heap_handle_t h = multi_heap_register(region, 8192);
    assert_non_null(multi_heap_malloc(h, 100));
    assert_non_null(multi_heap_malloc(h, 1000));
    h = multi_heap_register(region, 8192);
    assert_fresh_heap(h, region, 8192, 4);
}

/* Two heaps in two halves of one buffer are independent. */
static void test_two_heaps_side_by_side(void **state)
{
    (void)state;
    unsigned char *lo = region, *hi = region + 8192;
    multi_heap_handle_t a = multi_heap_register(lo, 8192);
    multi_heap_handle_t b = multi_heap_register(hi, 8192);
    assert_non_null(a);
    assert_non_null(b);
    void *pa[40], *pb[40];
    for (int i = 0; i < 40; i++) {
        pa[i] = multi_heap_malloc(a, 50);
        pb[i] = multi_heap_malloc(b, 50);
        assert_non_null(pa[i]);
        assert_non_null(pb[i]);
        assert_true((unsigned char *)pa[i] >= lo && (unsigned char *)pa[i] + 50 <= hi);
        assert_true((unsigned char *)pb[i] >= hi && (unsigned char *)pb[i] + 50 <= hi + 8192);
        ct_stamp(pa[i], 50);
        ct_stamp(pb[i], 50);
    }
    for (int i = 0; i < 40; i++) {
        assert_true(ct_stamp_ok(pa[i], 50));
        assert_true(ct_stamp_ok(pb[i], 50));
        multi_heap_free(a, pa[i]);
    }
    assert_true(multi_heap_check(a, false));
    assert_true(multi_heap_check(b, false));
    assert_int_equal(multi_heap_get_allocated_size(b, pb[7]), ct_expected_usable_size(50));
}

#if CAPHEAP_POISONING_COMPREHENSIVE
/* Comprehensive poisoning fills the free area with 0xFE at registration. */
static void test_comprehensive_fill_at_register(void **state)
{
    (void)state;
    capheap_sanitizer_release(region, 4096); /* an earlier test's heap poisoned it under ASan */
    memset(region, 0x11, 4096);
    multi_heap_handle_t h = multi_heap_register(region, 4096);
    assert_non_null(h);
    ct_walk_summary_t s;
    ct_walk_summary(h, &s);
    const unsigned char *first = s.first;
    /* Skip the free block's first words (list links), look at the body. */
    for (size_t i = 16; i + 8 < s.largest_free; i++) {
        assert_int_equal(ct_peek8(&first[i]), CT_FREE_FILL); /* free space: poisoned under ASan */
    }
}
#endif

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_null_start),
        cmocka_unit_test(test_misaligned_start),
        cmocka_unit_test(test_four_aligned_starts),
        cmocka_unit_test(test_alignment_option_zero_means_four),
        cmocka_unit_test(test_bad_alignment_options),
        cmocka_unit_test(test_alignment_is_honoured),
        cmocka_unit_test(test_min_region_size),
        cmocka_unit_test(test_no_half_made_heap),
        cmocka_unit_test(test_tiny_sizes_refused),
#if SIZE_MAX > UINT32_MAX
        cmocka_unit_test(test_sizes_above_4_gib_refused),
#endif
        cmocka_unit_test(test_overhead),
        cmocka_unit_test(test_poison_overhead),
        cmocka_unit_test(test_reregister),
        cmocka_unit_test(test_two_heaps_side_by_side),
#if CAPHEAP_POISONING_COMPREHENSIVE
        cmocka_unit_test(test_comprehensive_fill_at_register),
#endif
    };
    return cmocka_run_group_tests_name("register", tests, NULL, NULL);
}
