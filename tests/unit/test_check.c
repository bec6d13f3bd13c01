/*
 * test_check.c - multi_heap_check(): true on intact heaps, false plus a
 * "CORRUPT HEAP" report after a smashed header or free-list link, never
 * aborting and never reading outside the region; with poisoning, bad tail
 * ("Expected 0xbaad5678 got 0xbaad5687"), bad head, bad size; with
 * comprehensive poisoning, a write into a free block ("Invalid data").
 * These corruptions are pinned to the exact first report line they
 * make (which invariant, at which word, expected and found): two adjacent
 * free blocks (I3), a misaligned list link and a block listed in another
 * class's list (I5), a class bitmap bit and a pair bit of the summary word
 * (I6), the free_bytes and min_free counters (I7), the end marker (I10), bits
 * after the last class (I11).
 *
 * All corruption is written inside the static region array, so ASan sees
 * only in-bounds accesses; an out-of-region read by check would be flagged.
 */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pthread.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "capheap/check.h"
#include "support.h"

#define REGION_BYTES (16u * 1024u)
static _Alignas(16) unsigned char region[REGION_BYTES];

static multi_heap_handle_t fresh(void)
{
    multi_heap_handle_t h = multi_heap_register(region, REGION_BYTES);
    assert_non_null(h);
    return h;
}

/* check must return false, print a CORRUPT HEAP line, and not abort. */
static void assert_check_fails(multi_heap_handle_t h)
{
    bool aborted;
    volatile bool ok = true;
    ct_capture_begin();
    CT_CATCH_ABORT(aborted, ok = multi_heap_check(h, false));
    ct_capture_end();
    assert_false(aborted);
    assert_false(ok);
    assert_int_equal(ct_capture_len(), 0); /* print_errors false: silent */

    capheap_clear_last_report();
    ct_capture_begin();
    CT_CATCH_ABORT(aborted, ok = multi_heap_check(h, true));
    ct_capture_end();
    assert_false(aborted);
    assert_false(ok);
    assert_true(ct_capture_contains("CORRUPT HEAP: "));
    assert_non_null(capheap_last_report().what);
}

static void test_intact_heap(void **state)
{
    (void)state;
    multi_heap_handle_t h = fresh();
    ct_capture_begin();
    assert_true(multi_heap_check(h, true));
    void *p[20];
    for (int i = 0; i < 20; i++) {
        p[i] = multi_heap_malloc(h, (size_t)(i * 37 + 1));
        assert_non_null(p[i]);
    }
    for (int i = 0; i < 20; i += 3) {
        multi_heap_free(h, p[i]);
    }
    assert_true(multi_heap_check(h, true));
    assert_true(multi_heap_check(h, false));
    ct_capture_end();
    assert_int_equal(ct_capture_len(), 0);
}

/* A smashed header of a used block is found; restoring it heals the heap. */
static void test_smashed_used_header(void **state)
{
    (void)state;
    static const uint32_t xors[] = {0x1, 0x2, 0x3, 0x4, 0x10, 0x100, 0x8000, 0x80000000u,
                                    0x7ffffff0u};
    static const uint32_t sets[] = {0, 0xffffffffu, 0xfffffffcu, 12, 16, 0x7fffffffu};
    multi_heap_handle_t h = fresh();
    unsigned char *a = multi_heap_malloc(h, 64);
    unsigned char *b = multi_heap_malloc(h, 64);
    unsigned char *c = multi_heap_malloc(h, 64);
    ct_stamp(a, 64);
    ct_stamp(b, 64);
    ct_stamp(c, 64);
    unsigned char *hb = ct_header_of(b);
    uint32_t orig = ct_get32(hb);
    for (size_t i = 0; i < sizeof xors / sizeof xors[0] + sizeof sets / sizeof sets[0]; i++) {
        uint32_t bad = i < sizeof xors / sizeof xors[0]
                           ? orig ^ xors[i]
                           : sets[i - sizeof xors / sizeof xors[0]];
        if (bad == orig) {
            continue;
        }
        ct_put32(hb, bad);
        assert_check_fails(h);
        ct_put32(hb, orig);
        assert_true(multi_heap_check(h, false));
    }
    assert_true(ct_stamp_ok(a, 64));
    assert_true(ct_stamp_ok(b, 64));
    assert_true(ct_stamp_ok(c, 64));
}

/* The same for the header of a free block and its free-list links. */
static void test_smashed_free_block(void **state)
{
    (void)state;
    multi_heap_handle_t h = fresh();
    unsigned char *a = multi_heap_malloc(h, 64);
    unsigned char *b = multi_heap_malloc(h, 64);
    unsigned char *c = multi_heap_malloc(h, 64);
    assert_non_null(a);
    assert_non_null(c);
    multi_heap_free(h, b);
    unsigned char *hb = ct_header_of(b);
    uint32_t orig = ct_get32(hb);
    static const uint32_t xors[] = {0x1, 0x2, 0x10, 0x80000000u};
    for (size_t i = 0; i < sizeof xors / sizeof xors[0]; i++) {
        ct_put32(hb, orig ^ xors[i]);
        assert_check_fails(h);
        ct_put32(hb, orig);
        assert_true(multi_heap_check(h, false));
    }
    /* The first data word of a free block is a list link. */
    unsigned char *link = hb + CT_BLOCK_HEADER;
    uint32_t orig_link = ct_get32(link);
    static const uint32_t junk[] = {0xffffffffu, 0x12345678u, 0x3u};
    for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++) {
        if (junk[i] == orig_link) {
            continue;
        }
        ct_put32(link, junk[i]);
        assert_check_fails(h);
        ct_put32(link, orig_link);
        assert_true(multi_heap_check(h, false));
    }
}

/* check fails, and the first line it prints is the report (src/debug/report.c's
 * format) of a "Broken invariant" at `at`, expected `expected`, found `found`,
 * naming invariant inv. */
static void assert_first_report(multi_heap_handle_t h, const void *at, uint32_t expected, uint32_t found,
                                unsigned inv)
{
    char want[256];
    snprintf(want, sizeof want, "CORRUPT HEAP: Broken invariant at 0x%" PRIxPTR ". Expected 0x%08" PRIx32
             " got 0x%08" PRIx32 " (invariant I%u, docs/design.md)", (uintptr_t)at, expected, found, inv);
    ct_capture_begin();
    bool ok = multi_heap_check(h, true);
    ct_capture_end();
    assert_false(ok);
    char line[256];
    assert_true(ct_capture_line(0, line, sizeof line));
    if (strcmp(line, want) != 0) {
        fail_msg("first report\n  %s\nwanted\n  %s", line, want);
    }
}

/* The word at `at` set to bad: check fails, and the first line it prints is
 * the report of a "Broken invariant" at `at`, expected `expected`, found bad,
 * naming invariant inv (assert_first_report); with the word restored the
 * heap is sound again. */
static void assert_invariant_report(multi_heap_handle_t h, unsigned char *at, uint32_t bad, uint32_t expected,
                                    unsigned inv)
{
    uint32_t orig = ct_get32(at);
    ct_put32(at, bad);
    assert_first_report(h, at, expected, bad, inv);
    ct_put32(at, orig);
    assert_true(multi_heap_check(h, false));
}

/* The offset of the first block's header in a 4-aligned heap registered at
 * region: the control structure (docs/design.md: 48 bytes, 68 per row, one
 * zero word) and nothing else in front of it. */
static uint32_t first_header(multi_heap_handle_t h, unsigned *rows)
{
    ct_walk_summary_t s;
    ct_walk_summary(h, &s);
    uint32_t first = (uint32_t)((const unsigned char *)s.first - region) - CT_BLOCK_HEADER;
    assert_int_equal((first - 52u) % 68u, 0);
    *rows = (first - 52u) / 68u;
    return first;
}

/*
 * A free-list link that names a free block's offset plus one (not 4-aligned;
 * the bytes there read as a free header: the block's size has bit 8 set):
 * I5, reported at the link with the bad offset, before anything is read
 * through it.
 */
static void test_misaligned_list_link(void **state)
{
    (void)state;
    multi_heap_handle_t h = fresh();
    unsigned char *a = multi_heap_malloc(h, 320);
    unsigned char *g1 = multi_heap_malloc(h, 16);
    unsigned char *c = multi_heap_malloc(h, 320);
    unsigned char *g2 = multi_heap_malloc(h, 16);
    assert_non_null(g1);
    assert_non_null(g2);
    multi_heap_free(h, a);
    multi_heap_free(h, c); /* the same class: c at the head, its next link a */
    unsigned char *ha = ct_header_of(a), *hc = ct_header_of(c);
    assert_int_equal(ct_get32(ha) & 0x101u, 0x101u); /* free, bit 8 of the size set */
    unsigned char *link = hc + CT_BLOCK_HEADER;
    uint32_t orig = ct_get32(link);
    assert_int_equal(orig, (uint32_t)(ha - region));
    assert_invariant_report(h, link, orig + 1u, 0, 5);
}

/*
 * A class bitmap bit cleared while its list holds a block: I6 at the bitmap
 * word, which expects the bit set. The layout is docs/design.md's: pair k of
 * classes (bitmap word, 32 list heads) at 48 + 132 k; class c = s / 4 below 128
 * bytes. Another class of the same pair stays non-empty, so the pair's own
 * bit in the summary word stays right.
 */
static void test_class_bit_cleared(void **state)
{
    (void)state;
    multi_heap_handle_t h = fresh();
    unsigned rows;
    (void)first_header(h, &rows);
    unsigned char *a = multi_heap_malloc(h, 60 - CT_BLOCK_HEADER - ct_poison_overhead(4)); /* block 60: class 15 */
    unsigned char *g1 = multi_heap_malloc(h, 16);
    unsigned char *c = multi_heap_malloc(h, 100 - CT_BLOCK_HEADER - ct_poison_overhead(4)); /* block 100: class 25 */
    unsigned char *g2 = multi_heap_malloc(h, 16);
    assert_non_null(g1);
    assert_non_null(g2);
    assert_int_equal(ct_get32(ct_header_of(a)) & ~3u, 60u);
    assert_int_equal(ct_get32(ct_header_of(c)) & ~3u, 100u);
    multi_heap_free(h, a);
    multi_heap_free(h, c);
    unsigned char *bitmap = region + 48; /* pair 0 */
    uint32_t orig = ct_get32(bitmap);
    assert_int_equal(orig & ((1u << 15) | (1u << 25)), (1u << 15) | (1u << 25));
    assert_invariant_report(h, bitmap, orig & ~(1u << 15), orig, 6);
}

/*
 * A bit set for a class after the last one the heap's rows have (I11: the
 * upper half of the last pair's bitmap, or the zero word after the last pair,
 * which the class search may read).
 */
static void test_bits_after_last_class(void **state)
{
    (void)state;
    multi_heap_handle_t h = fresh();
    unsigned rows;
    (void)first_header(h, &rows);
    unsigned classes = rows * 16u;
    unsigned char *word = region + 48 + 132u * (classes >> 5);
    uint32_t orig = ct_get32(word);
    assert_int_equal(orig >> (classes & 31u), 0);
    for (unsigned bit = classes & 31u; bit < 32; bit += 5)
        assert_invariant_report(h, word, orig | (1u << bit), orig, 11);
}

/*
 * Words of the engine's control structure at the start of a heap registered
 * at region (ce_heap_t, src/core/tlsf.h: 32-bit fields at the same offsets on
 * every build, 48 bytes in all as docs/design.md says): the offsets of the
 * first block and of the end marker, free_bytes and min_free (I7), and
 * pair_bitmap, one bit per pair of classes (I6). assert_control_words()
 * holds each offset against what the heap shows through its API, so a
 * change of the struct fails there, not as a test corrupting the wrong word.
 */
#define CTRL_FIRST 12u
#define CTRL_END 16u
#define CTRL_FREE_BYTES 20u
#define CTRL_MIN_FREE 24u
#define CTRL_PAIR_BITMAP 44u

/* Pair k of classes (bitmap word, then 32 list heads) and the list head of
 * class c, as in test_class_bit_cleared; a class as the check's reports
 * encode it: first-level index << 8 | second-level index. */
#define PAIR_AT(k) (region + 48u + 132u * (k))
#define CLASS_HEAD_AT(c) (PAIR_AT((c) >> 5) + 4u * (1u + ((c) & 31u)))
#define CLASS_CODE(c) ((((c) >> 4) << 8) | ((c) & 15u))

static void assert_control_words(multi_heap_handle_t h)
{
    unsigned rows;
    uint32_t first = first_header(h, &rows);
    ct_walk_summary_t s;
    ct_walk_summary(h, &s);
    assert_int_equal(ct_get32(region + CTRL_FIRST), first);
    assert_int_equal(ct_get32(region + CTRL_END), (uint32_t)((const unsigned char *)s.end - region));
    size_t ov = ct_heap_poison_overhead(h);
    uint32_t free_bytes = ct_get32(region + CTRL_FREE_BYTES), min_free = ct_get32(region + CTRL_MIN_FREE);
    assert_int_equal(free_bytes, s.free_raw);
    assert_int_equal(free_bytes > ov ? free_bytes - ov : 0, multi_heap_free_size(h));
    assert_int_equal(min_free > ov ? min_free - ov : 0, multi_heap_minimum_free_size(h));
    uint32_t summary = 0;
    for (unsigned k = 0; k < (rows * 16u + 31u) / 32u; k++) {
        if (ct_get32(PAIR_AT(k)) != 0)
            summary |= 1u << k;
    }
    assert_int_equal(ct_get32(region + CTRL_PAIR_BITMAP), summary);
}

/*
 * The free bit set in the header of a used block that follows a free block
 * (its PF bit, which says so, is right: I2 does not come first): two free
 * blocks side by side. I3 at that header, which expects the free bit clear,
 * the header as it was.
 */
static void test_free_after_free(void **state)
{
    (void)state;
    multi_heap_handle_t h = fresh();
    unsigned char *a = multi_heap_malloc(h, 64);
    unsigned char *b = multi_heap_malloc(h, 64);
    unsigned char *c = multi_heap_malloc(h, 64);
    unsigned char *g = multi_heap_malloc(h, 16);
    assert_non_null(a);
    assert_non_null(g);
    multi_heap_free(h, b);
    unsigned char *hc = ct_header_of(c);
    uint32_t orig = ct_get32(hc);
    assert_int_equal(orig & 3u, 2u); /* used, the block before it free */
    assert_invariant_report(h, hc, orig | 1u, orig, 3);
}

/*
 * The end marker ("used, 16 bytes", PF set exactly when the last block is
 * free) with a wrong PF bit, free bit or size: I10 at the marker, which
 * expects 0x12 after a free last block and 0x10 after a used one. The
 * marker's offset is the control structure's end word.
 */
static void test_bad_end_marker(void **state)
{
    (void)state;
    multi_heap_handle_t h = fresh();
    unsigned char *a = multi_heap_malloc(h, 64); /* the rest of the pool, free, is the last block */
    assert_non_null(a);
    assert_control_words(h);
    unsigned char *end = region + ct_get32(region + CTRL_END);
    assert_int_equal(ct_get32(end), 0x12u);
    static const uint32_t after_free[] = {0x10u, 0x13u, 0x11u, 0x32u, 0x16u, 0x0u, 0xffffffffu};
    for (size_t i = 0; i < sizeof after_free / sizeof after_free[0]; i++)
        assert_invariant_report(h, end, after_free[i], 0x12u, 10);

    multi_heap_info_t info;
    multi_heap_get_info(h, &info);
    unsigned char *rest = multi_heap_malloc(h, info.largest_free_block); /* all of it: the last block is used */
    assert_non_null(rest);
    assert_int_equal(multi_heap_free_size(h), 0);
    assert_int_equal(ct_get32(end), 0x10u);
    static const uint32_t after_used[] = {0x12u, 0x11u, 0x13u, 0x14u, 0x20u, 0x0u};
    for (size_t i = 0; i < sizeof after_used / sizeof after_used[0]; i++)
        assert_invariant_report(h, end, after_used[i], 0x10u, 10);
    multi_heap_free(h, rest);
    assert_true(multi_heap_check(h, false));
}

/* A fresh heap whose free_bytes lies at least 1000 above min_free (a block
 * freed after the low point), the control words checked. */
static multi_heap_handle_t fresh_with_slack(void)
{
    multi_heap_handle_t h = fresh();
    unsigned char *a = multi_heap_malloc(h, 1000);
    unsigned char *g = multi_heap_malloc(h, 16);
    assert_non_null(g);
    multi_heap_free(h, a);
    assert_control_words(h);
    assert_true(ct_get32(region + CTRL_MIN_FREE) + 1000u <= ct_get32(region + CTRL_FREE_BYTES));
    return h;
}

/*
 * free_bytes, the engine's count of free bytes, a few bytes too high or too
 * low: I7 at the counter, which expects the sum of the sizes of the free
 * blocks the walk found. A block freed after the low point keeps min_free
 * below every value written, so min_free (the other I7 report) stays quiet.
 * A free_bytes written below min_free is reported once, at free_bytes: the
 * min_free test would compare with the wrong count and blame a good word
 * (it did until 2026-11-26).
 */
static void test_free_bytes_wrong(void **state)
{
    (void)state;
    multi_heap_handle_t h = fresh_with_slack();
    unsigned char *at = region + CTRL_FREE_BYTES;
    uint32_t orig = ct_get32(at);
    static const int32_t deltas[] = {4, 16, 1, -4, -16, -1};
    for (size_t i = 0; i < sizeof deltas / sizeof deltas[0]; i++)
        assert_invariant_report(h, at, orig + (uint32_t)deltas[i], orig, 7);
    uint32_t below_min = ct_get32(region + CTRL_MIN_FREE) - 4u;
    assert_invariant_report(h, at, below_min, orig, 7);
    ct_put32(at, below_min);
    ct_capture_begin();
    assert_false(multi_heap_check(h, true));
    ct_capture_end();
    ct_put32(at, orig);
    if (ct_capture_lines() != 1) {
        fail_msg("%zu report lines, wanted the one at free_bytes:\n%s", ct_capture_lines(), ct_capture_text());
    }
    assert_true(multi_heap_check(h, false));
}

/*
 * min_free, the low-water mark, above free_bytes: I7 at min_free, which
 * expects (at most) free_bytes, the value the report names. free_bytes
 * itself is right, so this is the only report.
 */
static void test_min_free_above_free_bytes(void **state)
{
    (void)state;
    multi_heap_handle_t h = fresh_with_slack();
    unsigned char *at = region + CTRL_MIN_FREE;
    uint32_t free_bytes = ct_get32(region + CTRL_FREE_BYTES);
    static const uint32_t bad[] = {1, 4, 1000};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_invariant_report(h, at, free_bytes + bad[i], free_bytes, 7);
    assert_invariant_report(h, at, 0xffffffffu, free_bytes, 7);
}

/*
 * pair_bitmap, the summary word with one bit per pair of classes, wrong for
 * one pair: the bit of a pair holding a free block cleared (pair 0: a block
 * of 60 bytes; the pair of the rest of the pool), or the bit of an empty
 * pair set; then several bits at once, and a bit above the last pair. I6 at
 * pair_bitmap, once, expecting the whole word as the pairs' bitmaps say it
 * must read (until 2026-11-26 each wrong bit was a report of its own whose
 * expected value flipped only that bit of the corrupt word). The pairs' own
 * bitmap words and lists are right, so nothing else is reported.
 */
static void test_pair_bit_wrong(void **state)
{
    (void)state;
    multi_heap_handle_t h = fresh();
    unsigned rows;
    (void)first_header(h, &rows);
    unsigned pairs = (rows * 16u + 31u) / 32u;
    unsigned char *a = multi_heap_malloc(h, 60 - CT_BLOCK_HEADER - ct_poison_overhead(4)); /* block 60: class 15 */
    unsigned char *g = multi_heap_malloc(h, 16);
    assert_non_null(g);
    assert_int_equal(ct_get32(ct_header_of(a)) & ~3u, 60u);
    multi_heap_free(h, a);
    assert_control_words(h);
    unsigned char *at = region + CTRL_PAIR_BITMAP;
    uint32_t orig = ct_get32(at);
    assert_int_equal(orig & 1u, 1u);      /* pair 0 holds the 60-byte block */
    assert_true(orig != 1u);              /* another pair holds the rest of the pool */
    assert_true(orig != (1u << pairs) - 1u); /* and some pair is empty */
    for (unsigned k = 0; k < pairs; k++)
        assert_invariant_report(h, at, orig ^ (1u << k), orig, 6);
    /* several bits wrong at once, and bits above the last pair: one report,
     * the whole right word expected */
    assert_invariant_report(h, at, orig ^ ((1u << pairs) - 1u), orig, 6);
    assert_invariant_report(h, at, 0, orig, 6); /* all cleared: malloc would find nothing */
    for (unsigned k = pairs; k < 32u; k += 7)
        assert_invariant_report(h, at, orig | 1u << k, orig, 6);
}

/*
 * get_info's largest_free_block (and capheap_heap_largest_request) read one
 * list head, the top class's. Rows that send that read elsewhere make it
 * answer 0 without reading outside the control structure and the pool, and
 * the check reports them (fuzz_misuse found both: a summary bit above the
 * last pair read a "bitmap" and a head from the pool, and a head naming a
 * word past the region was read there).
 */
static void test_largest_with_bad_rows(void **state)
{
    (void)state;
    multi_heap_handle_t h = fresh();
    unsigned rows;
    (void)first_header(h, &rows);
    unsigned pairs = (rows * 16u + 31u) / 32u;
    /* a used block whose bytes 2..5 read as the header of a 64-byte block */
    unsigned char *u = multi_heap_malloc(h, 16);
    assert_non_null(u);
    memset(u, 0, 16);
    ct_put32(u + 2, 64u | 1u);
    multi_heap_info_t info;
    multi_heap_get_info(h, &info);
    size_t largest = info.largest_free_block;
    assert_true(largest > 1000u);

    unsigned char *summary = region + CTRL_PAIR_BITMAP;
    uint32_t orig = ct_get32(summary);
    uint32_t k = 31u - (uint32_t)__builtin_clz(orig);
    unsigned char *bitmap = PAIR_AT(k);
    uint32_t bits = ct_get32(bitmap);
    uint32_t top = 32u * k + 31u - (uint32_t)__builtin_clz(bits);
    unsigned char *head = CLASS_HEAD_AT(top);
    uint32_t head_orig = ct_get32(head);
    struct {
        unsigned char *at;
        uint32_t bad;
    } cases[] = {
        {summary, orig | 1u << pairs},              /* a pair past the rows */
        {bitmap, bits | 1u << 31},                  /* a class past the rows (odd rows) or an empty one */
        {bitmap, 0},                                /* the pair's bit without a class in it */
        {head, REGION_BYTES + 64u},                 /* past the region */
        {head, head_orig + 2u},                     /* off the word */
        {head, (uint32_t)(u + 2 - region)},         /* off the word, at a word that looks like a header */
        {head, 8u},                                 /* the control structure */
        {head, 0x80000000u},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint32_t was = ct_get32(cases[i].at);
        ct_put32(cases[i].at, cases[i].bad);
        multi_heap_get_info(h, &info);
        assert_int_equal(info.largest_free_block, 0);
        assert_int_equal(capheap_heap_largest_request(h, 1), 0);
        assert_check_fails(h);
        ct_put32(cases[i].at, was);
        assert_true(multi_heap_check(h, false));
    }
    multi_heap_get_info(h, &info);
    assert_int_equal(info.largest_free_block, largest);
}

/*
 * A free block found in the list of another class: the list head of class 15
 * (block size 60) set to the block of 100 bytes (class 25), then class 25's
 * head set to the 60-byte block, then the next link of the 60-byte block,
 * alone in its list, set to the 100-byte block (a write into freed memory).
 * I5 at the header of the block met in the wrong list, which expects the
 * list's class and got its own, each as first-level << 8 | second-level
 * (class 15: 0x00f, class 25: 0x109). A head set so keeps the bitmaps and
 * prev links right and the listed count equal to the free blocks (one block
 * listed twice, one not at all): the only report. The next link is also
 * reported for the entry's prev link (I5) and the count (I6), after it.
 */
static void test_listed_in_wrong_class(void **state)
{
    (void)state;
    multi_heap_handle_t h = fresh();
    unsigned char *a = multi_heap_malloc(h, 60 - CT_BLOCK_HEADER - ct_poison_overhead(4)); /* block 60: class 15 */
    unsigned char *g1 = multi_heap_malloc(h, 16);
    unsigned char *c = multi_heap_malloc(h, 100 - CT_BLOCK_HEADER - ct_poison_overhead(4)); /* block 100: class 25 */
    unsigned char *g2 = multi_heap_malloc(h, 16);
    assert_non_null(g1);
    assert_non_null(g2);
    unsigned char *ha = ct_header_of(a), *hc = ct_header_of(c);
    assert_int_equal(ct_get32(ha) & ~3u, 60u);
    assert_int_equal(ct_get32(hc) & ~3u, 100u);
    multi_heap_free(h, a);
    multi_heap_free(h, c);
    uint32_t off_a = (uint32_t)(ha - region), off_c = (uint32_t)(hc - region);
    unsigned char *head15 = CLASS_HEAD_AT(15u), *head25 = CLASS_HEAD_AT(25u);
    assert_int_equal(ct_get32(head15), off_a); /* each alone in its list */
    assert_int_equal(ct_get32(head25), off_c);
    assert_int_equal(ct_get32(ha + 4), 0);

    ct_put32(head15, off_c);
    assert_first_report(h, hc, CLASS_CODE(15u), CLASS_CODE(25u), 5);
    ct_put32(head15, off_a);
    assert_true(multi_heap_check(h, false));

    ct_put32(head25, off_a);
    assert_first_report(h, ha, CLASS_CODE(25u), CLASS_CODE(15u), 5);
    ct_put32(head25, off_c);
    assert_true(multi_heap_check(h, false));

    ct_put32(ha + 4, off_c);
    assert_first_report(h, hc, CLASS_CODE(15u), CLASS_CODE(25u), 5);
    ct_put32(ha + 4, 0);
    assert_true(multi_heap_check(h, false));
}

/*
 * A list entry that is no block: three words inside a used block's data made
 * to look like a free block of class 15 (header, links), and the class head
 * pointed at them instead of at the real free block of that class. The count
 * of I6 still matches (one entry for one block), so the check must ask more
 * of each entry, as the walk does of each free block: its footer names it
 * (I4) and the next block has PF set (I2). Before this (an audit found it) the
 * check passed, and the next malloc of that class handed out the middle of the
 * live block.
 */
static void test_forged_list_entry(void **state)
{
    (void)state;
    multi_heap_handle_t h = fresh();
    unsigned char *a = multi_heap_malloc(h, 60 - CT_BLOCK_HEADER - ct_poison_overhead(4)); /* block 60: class 15 */
    unsigned char *g1 = multi_heap_malloc(h, 16);
    unsigned char *u = multi_heap_malloc(h, 200);
    unsigned char *g2 = multi_heap_malloc(h, 16);
    assert_non_null(a);
    assert_non_null(g1);
    assert_non_null(u);
    assert_non_null(g2);
    unsigned char *ha = ct_header_of(a);
    assert_int_equal(ct_get32(ha) & ~3u, 60u);
    multi_heap_free(h, a);
    unsigned char *head15 = CLASS_HEAD_AT(15u);
    uint32_t off_a = (uint32_t)(ha - region);
    assert_int_equal(ct_get32(head15), off_a);

    memset(u, 0, 200);
    unsigned char *f = u + 16; /* the forged block: 60 bytes inside u's data */
    uint32_t off_f = (uint32_t)(f - region);
    ct_put32(f, 60u | 1u); /* free, 60 bytes */
    ct_put32(f + 4, 0);    /* next */
    ct_put32(f + 8, 0);    /* prev */
    ct_put32(head15, off_f);
    /* its footer slot holds 0, not off_f | 3 */
    assert_first_report(h, f + 56, off_f | 3u, 0, 4);
    /* with a forged footer too: the word after it is no header with PF set */
    ct_put32(f + 56, off_f | 3u);
    assert_first_report(h, f + 60, 2u, 0, 2);
    /* and with that word forged too (a used "header" with PF set): every
     * word the entry checks read agrees, and the count of entries is the
     * count of free blocks. The set is not the same: the fingerprint of the
     * entries is not that of the free blocks the walk found (I5; an audit
     * showed malloc then handing out memory of the live block u). */
    ct_put32(f + 60, 16u | 2u);
    {
        capheap_check_cursor_t cur = CAPHEAP_CHECK_CURSOR_INIT;
        bool done = false, ok = true;
        ct_capture_begin();
        bool whole = multi_heap_check(h, true);
        while (!done)
            ok = capheap_heap_check_step(h, &cur, 2, true, &done) && ok;
        ct_capture_end();
        assert_false(whole);
        assert_false(ok);
        assert_true(ct_capture_contains("(invariant I5, docs/design.md)"));
    }
    ct_put32(f + 60, 0);
    /* sized past the pool's end: I1 at the entry, and the check reads nothing there */
    ct_put32(f, 0x7ffffff0u | 1u);
    assert_false(multi_heap_check(h, false));
    ct_put32(f, 60u | 1u);

    ct_put32(head15, off_a);
    memset(u, 0, 200);
    assert_true(multi_heap_check(h, false));
    multi_heap_free(h, u);
    assert_true(multi_heap_check(h, false));
}

/* Words at f that look like a free 60-byte block (class 15) with links prev
 * and next: header, links, footer, and a used "header" with PF set after it. */
static void forge_free_60(unsigned char *f, uint32_t prev, uint32_t next)
{
    uint32_t off = (uint32_t)(f - region);
    ct_put32(f, 60u | 1u);
    ct_put32(f + 4, next);
    ct_put32(f + 8, prev);
    ct_put32(f + 56, off | 3u);
    ct_put32(f + 60, 16u | 2u);
}

/* Two forged entries in place of two real free blocks, whose offsets add up
 * to the same sum as theirs: the fingerprint of the set (I5) is no plain sum
 * of offsets, which these would match (a mutation that made it one passed
 * every other test). */
static void test_two_forged_list_entries(void **state)
{
    (void)state;
    multi_heap_handle_t h = fresh();
    size_t n60 = 60 - CT_BLOCK_HEADER - ct_poison_overhead(4); /* block 60: class 15 */
    unsigned char *u1 = multi_heap_malloc(h, 200), *a1 = multi_heap_malloc(h, n60);
    unsigned char *g1 = multi_heap_malloc(h, 16), *a2 = multi_heap_malloc(h, n60);
    unsigned char *u2 = multi_heap_malloc(h, 400), *g2 = multi_heap_malloc(h, 16);
    assert_true(u1 && a1 && g1 && a2 && u2 && g2);
    uint32_t off1 = (uint32_t)(ct_header_of(a1) - region), off2 = (uint32_t)(ct_header_of(a2) - region);
    multi_heap_free(h, a1);
    multi_heap_free(h, a2);
    memset(u1, 0, 200);
    memset(u2, 0, 400);
    unsigned char *f = u1 + 16;
    uint32_t off_f = (uint32_t)(f - region), off_g = off1 + off2 - off_f;
    unsigned char *g = region + off_g;
    assert_true(g >= u2 && g + 64 <= u2 + 400 && (off_g & 3u) == 0);
    forge_free_60(f, 0, off_g);
    forge_free_60(g, off_f, 0);
    unsigned char *head15 = CLASS_HEAD_AT(15u);
    uint32_t was = ct_get32(head15);
    ct_put32(head15, off_f);
    ct_capture_begin();
    bool ok = multi_heap_check(h, true);
    ct_capture_end();
    assert_false(ok);
    assert_true(ct_capture_contains("(invariant I5, docs/design.md)"));
    ct_put32(head15, was);
    memset(u1, 0, 200);
    memset(u2, 0, 400);
    assert_true(multi_heap_check(h, false));
}

/*
 * A free block taken out of its list, its class left consistent (head 0, bit
 * clear): every list and bitmap agrees with itself, but the lists hold one
 * block fewer than the walk found free (I6: every free block listed exactly
 * once; docs/checks.md, end: entries listed = free blocks walked). Malloc
 * would never find the block again.
 */
static void test_free_block_in_no_list(void **state)
{
    (void)state;
    multi_heap_handle_t h = fresh();
    unsigned rows;
    (void)first_header(h, &rows);
    unsigned char *a = multi_heap_malloc(h, 60 - CT_BLOCK_HEADER - ct_poison_overhead(4)); /* block 60: class 15 */
    unsigned char *g1 = multi_heap_malloc(h, 16);
    unsigned char *c = multi_heap_malloc(h, 100 - CT_BLOCK_HEADER - ct_poison_overhead(4)); /* block 100: class 25 */
    unsigned char *g2 = multi_heap_malloc(h, 16);
    assert_non_null(g1);
    assert_non_null(g2);
    assert_int_equal(ct_get32(ct_header_of(a)) & ~3u, 60u);
    multi_heap_free(h, a);
    multi_heap_free(h, c);
    multi_heap_info_t info;
    multi_heap_get_info(h, &info);
    unsigned char *bitmap = region + 48; /* pair 0: classes 15 and 25 both set, so the pair stays listed */
    unsigned char *head15 = CLASS_HEAD_AT(15u);
    uint32_t orig_bits = ct_get32(bitmap), orig_head = ct_get32(head15);
    assert_int_equal(orig_head, (uint32_t)(ct_header_of(a) - region));
    ct_put32(bitmap, orig_bits & ~(1u << 15));
    ct_put32(head15, 0);
    char want[96];
    snprintf(want, sizeof want, "Expected 0x%08zx got 0x%08zx (invariant I6", info.free_blocks, info.free_blocks - 1u);
    ct_capture_begin();
    bool ok = multi_heap_check(h, true);
    ct_capture_end();
    assert_false(ok);
    if (!ct_capture_contains(want)) {
        fail_msg("no report containing \"%s\":\n%s", want, ct_capture_text());
    }
    ct_put32(bitmap, orig_bits);
    ct_put32(head15, orig_head);
    assert_true(multi_heap_check(h, false));
}

/*
 * The walk checks every free block's footer where it meets the block
 * (docs/checks.md: walk, I4, block-local, in address order), not only when
 * the lists reach it: a smashed footer is the first report even when a block
 * further on is damaged too (here a used block's PF bit set after a used
 * block, I2).
 */
static void test_free_footer_in_address_order(void **state)
{
    (void)state;
    multi_heap_handle_t h = fresh();
    unsigned char *a = multi_heap_malloc(h, 64);
    unsigned char *b = multi_heap_malloc(h, 64);
    unsigned char *c = multi_heap_malloc(h, 64);
    unsigned char *d = multi_heap_malloc(h, 64);
    assert_non_null(a);
    assert_non_null(c);
    assert_non_null(d);
    multi_heap_free(h, b);
    unsigned char *hb = ct_header_of(b);
    uint32_t size_b = ct_get32(hb) & ~3u;
    uint32_t off_b = (uint32_t)(hb - region);
    unsigned char *foot = hb + size_b - 4u;
    assert_int_equal(ct_get32(foot), off_b | 3u);
    unsigned char *hd = ct_header_of(d);
    uint32_t orig_d = ct_get32(hd);
    assert_int_equal(orig_d & 2u, 0);
    ct_put32(foot, 0x5A5A5A58u);
    ct_put32(hd, orig_d | 2u);
    assert_first_report(h, foot, off_b | 3u, 0x5A5A5A58u, 4);
    ct_put32(hd, orig_d);
    assert_first_report(h, foot, off_b | 3u, 0x5A5A5A58u, 4);
    ct_put32(foot, off_b | 3u);
    assert_true(multi_heap_check(h, false));
    multi_heap_free(h, a);
    multi_heap_free(h, c);
    multi_heap_free(h, d);
    assert_true(multi_heap_check(h, false));
}

/* A size that points far outside the region: check stays inside it. */
static void test_check_never_leaves_region(void **state)
{
    (void)state;
    multi_heap_handle_t h = fresh();
    unsigned char *p[8];
    for (int i = 0; i < 8; i++) {
        p[i] = multi_heap_malloc(h, 100);
    }
    multi_heap_free(h, p[2]);
    multi_heap_free(h, p[5]);
    for (int i = 0; i < 8; i++) {
        unsigned char *hd = ct_header_of(p[i]);
        uint32_t orig = ct_get32(hd);
        ct_put32(hd, 0xfffffff0u | (orig & 3u));
        assert_check_fails(h);
        ct_put32(hd, (orig & 3u) | 0x00100000u);
        assert_check_fails(h);
        ct_put32(hd, orig);
        assert_true(multi_heap_check(h, false));
    }
}

/*
 * The control structure's fixed words (I12: docs/design.md), each made
 * wrong in turn in a heap that fills its region up to an inaccessible page:
 * the end word moved past the region's end (a walk bounded by it would read
 * the guard page and crash the test), the first block, the region size, the
 * largest request, the magic, the row count and the alignment bytes. Each is
 * the check's first and only report, at the word that is wrong (the row count
 * and the alignment at the first block's word, which they place), and every
 * walk (multi_heap_walk, dump, get_info, find_containing_block) reads nothing
 * rather than read past the region, and the largest free block reads 0; a double free's description still names
 * the double free (the end word moved up or down), and a smashed header
 * whose size reaches past the end marker a smashed header. Until 2026-11-26 the check tested only the magic: an end
 * word moved by 64 bytes made check, walk, dump, get_info and a double free's
 * description read past the region.
 */
#define CTRL_MAGIC 8u
#define CTRL_MAX_REQUEST 28u
#define CTRL_DATA_SPAN 32u
#define CTRL_REGION_BYTES 36u
#define CTRL_ALIGN_MASK 40u /* the byte after it: fl_count */

/* Blocks multi_heap_walk() visits. */
static size_t walked_blocks(multi_heap_handle_t h)
{
    ct_walk_summary_t s;
    ct_walk_summary(h, &s);
    return s.blocks;
}

/* What the first block's offset must be for a heap at a page start with
 * alignment mask a and rows rows (docs/design.md: 48 bytes, 68 per row, a
 * zero word, then the first header placed so that its data is aligned). */
static uint32_t first_for(uint32_t a, uint32_t rows)
{
    return ((48u + 68u * rows + 4u + 4u + a) & ~a) - 4u;
}

/* A heap over `pages` pages mapped right before a PROT_NONE page: a free
 * block *a (100 bytes asked), a used block *b of size_b, then the free rest.
 * The caller unmaps *bytes_out + one page. */
static multi_heap_handle_t guarded_heap(size_t pages, size_t size_b, unsigned char **m_out, size_t *bytes_out,
                                        unsigned char **a_out, unsigned char **b_out)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE), bytes = pages * page;
    unsigned char *m = mmap(NULL, bytes + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(m != MAP_FAILED);
    assert_int_equal(mprotect(m + bytes, page, PROT_NONE), 0);
    multi_heap_handle_t h = multi_heap_register(m, bytes);
    assert_non_null(h);
    unsigned char *a = multi_heap_malloc(h, 100), *b = multi_heap_malloc(h, size_b);
    assert_non_null(b);
    multi_heap_free(h, a);
    *m_out = m;
    *bytes_out = bytes;
    *a_out = a;
    *b_out = b;
    return h;
}

/* A free-list link naming the footer of the heap's last block (a free
 * block's last word, offset end - 4, whose free bit is set like a header's):
 * the check reports the link, and reads nothing past the region (it once
 * read the "previous" link 8 bytes on, the word after the region: a guard
 * page here; an audit found it). The same in the incremental check. */
static void test_list_link_to_last_footer(void **state)
{
    (void)state;
    unsigned char *m, *a, *b;
    size_t bytes, page = (size_t)sysconf(_SC_PAGESIZE);
    multi_heap_handle_t h = guarded_heap(1, 100, &m, &bytes, &a, &b);
    uint32_t end = ct_get32(m + CTRL_END);
    assert_int_equal(end + 4u, bytes); /* the end marker is the region's last word */
    unsigned char *link = ct_header_of(a) + 4; /* a's "next free" */
    uint32_t orig = ct_get32(link);
    ct_put32(link, end - 4u);
    assert_first_report(h, link, 0, end - 4u, 5);
    capheap_check_cursor_t cur = CAPHEAP_CHECK_CURSOR_INIT;
    bool done = false;
    ct_capture_begin();
    for (int steps = 0; !done && steps < 1000; steps++)
        (void)capheap_heap_check_step(h, &cur, 3, true, &done);
    ct_capture_end();
    assert_true(done);
    assert_true(ct_capture_contains("Broken invariant"));
    /* A link to words inside the used block b that read as a free block
     * whose size ends 16 bytes past the end marker: reported at its header
     * (I1), its "footer" not read (it lies past the region: the guard page). */
    unsigned char *e = b + 16;
    uint32_t off_e = (uint32_t)(e - m), e_was = ct_get32(e);
    ct_put32(e, (end - off_e + 16u) | 1u);
    ct_put32(link, off_e);
    ct_capture_begin();
    assert_false(multi_heap_check(h, true));
    ct_capture_end();
    assert_true(ct_capture_contains("(invariant I1, docs/design.md)"));
    ct_put32(e, e_was);
    ct_put32(link, orig);
    assert_true(multi_heap_check(h, false));
    munmap(m, bytes + page);
}

/* multi_heap_free(h, p) is reported as what at `at`, and reaches the abort handler. */
static void assert_free_reported(multi_heap_handle_t h, void *p, const char *what, const void *at)
{
    bool aborted;
    ct_capture_begin();
    CT_CATCH_ABORT(aborted, multi_heap_free(h, p));
    ct_capture_end();
    assert_true(aborted);
    assert_string_equal(capheap_last_report().what, what);
    assert_ptr_equal(capheap_last_report().address, at);
}

static void test_control_words_wrong(void **state)
{
    (void)state;
    unsigned char *m, *a, *b;
    size_t bytes, page = (size_t)sysconf(_SC_PAGESIZE);
    multi_heap_handle_t h = guarded_heap(2, 200, &m, &bytes, &a, &b);
    assert_true(walked_blocks(h) >= 3);
    uint32_t first = ct_get32(m + CTRL_FIRST), end = ct_get32(m + CTRL_END), span = ct_get32(m + CTRL_DATA_SPAN);
    uint32_t align_rows = ct_get32(m + CTRL_ALIGN_MASK); /* align_mask, fl_count, check token */
    uint32_t amask = align_rows & 0xffu, rows = (align_rows >> 8) & 0xffu;
    uint32_t magic = ct_get32(m + CTRL_MAGIC);
    assert_int_equal(magic, 0xCA9EA9u | amask << 24);
    bool same_first = first_for(amask ^ 4u, rows) == first;
    assert_int_equal(end, first + span + 16u);
    assert_true(end + 4u <= bytes);
    assert_int_equal(first, first_for(amask, rows));
    struct {
        uint32_t off, bad, at, expected, found; /* at: the word reported */
    } cases[] = {
        {CTRL_END, end + 64u, CTRL_END, end, end + 64u}, /* past the region: the guard page */
        {CTRL_END, end + 4u, CTRL_END, end, end + 4u},
        {CTRL_END, end - 16u, CTRL_END, end, end - 16u},
        {CTRL_FIRST, first + 4u, CTRL_FIRST, first, first + 4u},
        {CTRL_REGION_BYTES, end, CTRL_REGION_BYTES, end + 4u, end}, /* too small for the end marker */
        {CTRL_MAX_REQUEST, span + 28u, CTRL_MAX_REQUEST, span + 12u, span + 28u},
        {CTRL_MAGIC, magic ^ 1u, CTRL_MAGIC, magic, magic ^ 1u},
        /* the magic's top byte repeats align_mask: a mask that still gives the same
         * first block (3 -> 7 or 15 -> 7 where that offset is aligned) disagrees with it */
        {CTRL_MAGIC, magic ^ 0x04000000u, CTRL_MAGIC, magic, magic ^ 0x04000000u},
        /* 3 <-> 7: the first block moves or not, depending on the row count */
        {CTRL_ALIGN_MASK, align_rows ^ 4u, same_first ? CTRL_MAGIC : CTRL_FIRST,
         same_first ? (magic & 0xFFFFFFu) | (amask ^ 4u) << 24 : first_for(amask ^ 4u, rows),
         same_first ? magic : first},
        {CTRL_ALIGN_MASK, (align_rows & ~0xff00u) | 200u << 8, CTRL_FIRST, first_for(amask, 200), first},
        {CTRL_ALIGN_MASK, (align_rows & ~0xffu) | (amask == 15u ? 3u : 15u), CTRL_FIRST,
         first_for(amask == 15u ? 3u : 15u, rows), first},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        unsigned char *w = m + cases[i].off;
        uint32_t orig = ct_get32(w);
        ct_put32(w, cases[i].bad);
        assert_first_report(h, m + cases[i].at, cases[i].expected, cases[i].found, 12);
        assert_int_equal(ct_capture_lines(), 1);
        assert_int_equal(walked_blocks(h), 0);
        multi_heap_info_t info;
        multi_heap_get_info(h, &info);
        assert_int_equal(info.total_blocks, 0);
        assert_int_equal(info.largest_free_block, 0); /* it reads a list head: I12 first */
        ct_capture_begin();
        multi_heap_dump(h);
        ct_capture_end();
        assert_null(multi_heap_find_containing_block(h, b));
        ct_put32(w, orig);
        assert_true(multi_heap_check(h, false));
    }
    /* A double free's description walks the blocks too: up to the end the
     * fast path uses (first + data_span + 16), not the end word. */
    ct_put32(m + CTRL_END, end + 64u);
    capheap_clear_last_report();
    assert_free_reported(h, a, "Double free", a);
    /* and a pointer between the end marker and the moved end is outside */
    unsigned char *beyond = m + end + 8u + ct_poison_head(4);
    assert_free_reported(h, beyond, "Pointer outside heap", beyond);
    ct_put32(m + CTRL_END, end);
    assert_true(walked_blocks(h) >= 3);
    /* The description's walk is bounded by that end both ways: with the end
     * word moved down onto the free rest's header it walks on to the rest (a
     * walk that stopped at the end word named that header a bad end marker),
     * and with the end word moved up it refuses a header whose size reaches
     * past the end marker (a walk that trusted the end word followed it past
     * the region, into the guard page). */
    unsigned char *hb = ct_header_of(b);
    uint32_t hb_word = ct_get32(hb), hb_off = (uint32_t)(hb - m);
    unsigned char *rest_hdr = hb + (hb_word & ~3u), *rest = rest_hdr + 4 + ct_poison_head(4);
    ct_put32(m + CTRL_END, (uint32_t)(rest_hdr - m));
    assert_free_reported(h, rest, "Double free", rest);
    ct_put32(m + CTRL_END, end + 64u);
    ct_put32(hb, (end - hb_off + 16u) | (hb_word & 3u));
    assert_free_reported(h, b, "Smashed header", hb);
    ct_put32(hb, hb_word);
    ct_put32(m + CTRL_END, end);
    assert_true(multi_heap_check(h, false));
    /* Both copies of the mask changed alike (fuzz_misuse found a bit flipped
     * in each, 15 -> 14, which kept the first block where it was and let
     * malloc round sizes to odd values): every value that is no mask is
     * reported, by the first block's place or, where that does not move,
     * by the magic, which should name the nearest mask above (at most 15). */
    static const uint32_t not_masks[] = {0, 1, 2, 4, 5, 6, 8, 9, 10, 11, 12, 13, 14, 16, 31, 32, 64, 128, 255};
    size_t by_magic = 0;
    for (size_t i = 0; i < sizeof not_masks / sizeof not_masks[0]; i++) {
        uint32_t bad = not_masks[i], want = bad < 4u ? 3u : bad < 8u ? 7u : 15u;
        bool moved = first_for(bad, rows) != first;
        uint32_t bad_magic = (magic & 0xFFFFFFu) | bad << 24;
        ct_put32(m + CTRL_ALIGN_MASK, (align_rows & ~0xffu) | bad);
        ct_put32(m + CTRL_MAGIC, bad_magic);
        if (moved)
            assert_first_report(h, m + CTRL_FIRST, first_for(bad, rows), first, 12);
        else
            assert_first_report(h, m + CTRL_MAGIC, (magic & 0xFFFFFFu) | want << 24, bad_magic, 12);
        by_magic += !moved;
        assert_int_equal(walked_blocks(h), 0);
        ct_put32(m + CTRL_ALIGN_MASK, align_rows);
        ct_put32(m + CTRL_MAGIC, magic);
        assert_true(multi_heap_check(h, false));
    }
    assert_true(by_magic > 0); /* the new rule was needed for some */
    multi_heap_free(h, b);
    assert_true(multi_heap_check(h, false));
    assert_int_equal(munmap(m, bytes + page), 0);
}

/*
 * The byte after the requested size: detected with poisoning (bad tail),
 * without poisoning it lands in the block's own slack and is harmless.
 */
static void test_one_byte_past_the_end(void **state)
{
    (void)state;
    static const size_t lens[] = {1, 2, 3, 4, 13, 16, 21, 100};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        multi_heap_handle_t h = fresh();
        size_t n = lens[i];
        unsigned char *p = multi_heap_malloc(h, n);
        unsigned char *q = multi_heap_malloc(h, 16); /* a neighbour */
        assert_non_null(q);
#if CT_POISONING
        unsigned char saved = ct_peek8(&p[n]);
        ct_poke8(&p[n], 0x87); /* first byte of the tail canary: 0xbaad5678 -> 0xbaad5687 */
        assert_check_fails(h);
        capheap_report_t r = capheap_last_report();
        assert_string_equal(r.what, "Bad tail");
        assert_ptr_equal(r.address, p + n);
        assert_int_equal(r.expected, CT_TAIL_CANARY);
        assert_int_equal(r.found, 0xbaad5687u);
        ct_capture_begin();
        assert_false(multi_heap_check(h, true));
        ct_capture_end();
        assert_true(ct_capture_contains("CORRUPT HEAP: Bad tail at "));
        assert_true(ct_capture_contains("Expected 0xbaad5678 got 0xbaad5687"));
        ct_poke8(&p[n], saved);
        assert_true(multi_heap_check(h, false));
#else
        if (n < multi_heap_get_allocated_size(h, p)) {
            ct_poke8(&p[n], 0x87);
            assert_true(multi_heap_check(h, false));
        }
#endif
        multi_heap_free(h, p);
        multi_heap_free(h, q);
        assert_true(multi_heap_check(h, false));
    }
}

#if CT_POISONING
/* Every byte of the tail canary is checked. */
static void test_each_tail_byte(void **state)
{
    (void)state;
    multi_heap_handle_t h = fresh();
    unsigned char *p = multi_heap_malloc(h, 10);
    for (size_t k = 0; k < 4; k++) {
        unsigned char saved = ct_peek8(&p[10 + k]);
        ct_poke8(&p[10 + k], (uint8_t)(ct_peek8(&p[10 + k]) ^ 0x40));
        assert_check_fails(h);
        capheap_report_t r = capheap_last_report();
        assert_string_equal(r.what, "Bad tail");
        assert_int_equal(r.expected, CT_TAIL_CANARY);
        assert_int_equal(r.found, CT_TAIL_CANARY ^ (0x40u << (8 * k)));
        ct_poke8(&p[10 + k], saved);
        assert_true(multi_heap_check(h, false));
    }
}

/* A smashed head canary: "Bad head", expected 0xabba1234. */
static void test_bad_head(void **state)
{
    (void)state;
    multi_heap_handle_t h = fresh();
    unsigned char *a = multi_heap_malloc(h, 40);
    unsigned char *p = multi_heap_malloc(h, 40);
    assert_non_null(a);
    unsigned char *head = p - ct_poison_head(4);
    assert_int_equal(ct_get32(head), CT_HEAD_CANARY);
    for (size_t k = 0; k < 4; k++) {
        unsigned char saved = ct_peek8(&head[k]);
        ct_poke8(&head[k], 0x00);
        assert_check_fails(h);
        capheap_report_t r = capheap_last_report();
        assert_string_equal(r.what, "Bad head");
        assert_ptr_equal(r.address, head);
        assert_int_equal(r.expected, CT_HEAD_CANARY);
        assert_int_equal(r.found, CT_HEAD_CANARY & ~(0xffu << (8 * k)));
        ct_capture_begin();
        (void)multi_heap_check(h, true);
        ct_capture_end();
        assert_true(ct_capture_contains("CORRUPT HEAP: Bad head at "));
        assert_true(ct_capture_contains("Expected 0xabba1234"));
        ct_poke8(&head[k], saved);
        assert_true(multi_heap_check(h, false));
    }
}

/* The size word of the head must fit the block. It holds the size mixed
 * with the heap's tag (the same for every block of the heap, not 0). */
static void test_bad_size_word(void **state)
{
    (void)state;
    multi_heap_handle_t h = fresh();
    unsigned char *p = multi_heap_malloc(h, 40);
    unsigned char *q = multi_heap_malloc(h, 1000);
    assert_non_null(q);
    unsigned char *size_word = p - 4;
    uint32_t orig = ct_get32(size_word);
    uint32_t tag = orig ^ 40u;
    assert_int_not_equal(tag, 0);
    assert_int_equal(ct_get32(q - 4) ^ tag, 1000);
    static const uint32_t bad[] = {0x7fffffffu, 0xffffffffu, 4096, 41 + 12, 40};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ct_put32(size_word, i + 1 < sizeof bad / sizeof bad[0] ? bad[i] ^ tag : bad[i]);
        assert_check_fails(h);
        ct_put32(size_word, orig);
        assert_true(multi_heap_check(h, false));
    }
}

/* Canaries of 8- and 16-aligned heaps are checked as well. */
static void test_tail_in_wide_heaps(void **state)
{
    (void)state;
    for (size_t align = 8; align <= 16; align *= 2) {
        capheap_heap_options_t o = {.alignment = align};
        multi_heap_handle_t h = capheap_heap_register(region, REGION_BYTES, &o);
        assert_non_null(h);
        unsigned char *p = multi_heap_malloc(h, 21);
        assert_int_equal((uintptr_t)p % align, 0);
        assert_int_equal(ct_get32(p - ct_poison_head(align)), CT_HEAD_CANARY);
        ct_poke8(&p[21], 0x87);
        assert_check_fails(h);
        assert_string_equal(capheap_last_report().what, "Bad tail");
        assert_int_equal(capheap_last_report().found, 0xbaad5687u);
        ct_poke8(&p[21], 0x78);
        assert_true(multi_heap_check(h, false));
    }
}
#endif

#if CAPHEAP_POISONING_COMPREHENSIVE
/* A write into free memory: "Invalid data", expected the free fill. */
static void test_write_into_free_block(void **state)
{
    (void)state;
    multi_heap_handle_t h = fresh();
    unsigned char *a = multi_heap_malloc(h, 256);
    unsigned char *b = multi_heap_malloc(h, 256);
    unsigned char *c = multi_heap_malloc(h, 256);
    assert_non_null(a);
    assert_non_null(c);
    multi_heap_free(h, b);
    for (size_t i = 32; i < 200; i++) {
        assert_int_equal(ct_peek8(&b[i]), CT_FREE_FILL); /* free space: poisoned under ASan */
    }
    static const size_t where[] = {40, 101, 128, 199};
    for (size_t i = 0; i < sizeof where / sizeof where[0]; i++) {
        unsigned char *x = b + where[i];
        ct_poke8(x, 0x42);
        assert_check_fails(h);
        capheap_report_t r = capheap_last_report();
        assert_string_equal(r.what, "Invalid data");
        /* The report names the bad byte (or the word holding it). */
        assert_true((const unsigned char *)r.address <= x &&
                    (const unsigned char *)r.address + 4 > x);
        assert_true(r.expected == 0xfeu || r.expected == 0xfefefefeu);
        assert_true(r.found == 0x42u || (r.found & 0xffu) == 0x42u ||
                    ((r.found >> 8) & 0xffu) == 0x42u || ((r.found >> 16) & 0xffu) == 0x42u ||
                    (r.found >> 24) == 0x42u);
        ct_capture_begin();
        (void)multi_heap_check(h, true);
        ct_capture_end();
        assert_true(ct_capture_contains("CORRUPT HEAP: Invalid data at "));
        ct_poke8(x, CT_FREE_FILL);
        assert_true(multi_heap_check(h, false));
    }
    /* The free remainder at the end is checked too. */
    ct_walk_summary_t s;
    ct_walk_summary(h, &s);
    unsigned char *last = (unsigned char *)s.end - 40;
    ct_poke8(last, 0x00);
    assert_check_fails(h);
    assert_string_equal(capheap_last_report().what, "Invalid data");
    ct_poke8(last, CT_FREE_FILL);
    assert_true(multi_heap_check(h, false));
}
#endif

#if CAPHEAP_POISONING_COMPREHENSIVE
/* Every byte of a free block's fill, from after its links to its footer,
 * the last one included, is checked (I9). */
static void test_write_into_every_fill_byte(void **state)
{
    (void)state;
    multi_heap_handle_t h = fresh();
    unsigned char *a = multi_heap_malloc(h, 64);
    unsigned char *b = multi_heap_malloc(h, 64);
    unsigned char *c = multi_heap_malloc(h, 64);
    assert_non_null(a);
    assert_non_null(c);
    multi_heap_free(h, b);
    unsigned char *hb = ct_header_of(b);
    uint32_t size = ct_get32(hb) & ~3u;
    for (uint32_t i = 12; i < size - 4u; i++) { /* header and links before, the footer after */
        unsigned char *x = hb + i;
        assert_int_equal(ct_peek8(x), CT_FREE_FILL);
        ct_poke8(x, 0x42);
        assert_check_fails(h);
        assert_string_equal(capheap_last_report().what, "Invalid data");
        ct_poke8(x, CT_FREE_FILL);
    }
    assert_true(multi_heap_check(h, false));
}
#endif

/*
 * check keeps no global state (ESP-IDF kept print_errors in a global): a
 * silent check of one heap running in another thread never mutes a printing
 * check of another heap.
 */
static _Alignas(16) unsigned char quiet_region[4096];
static atomic_int stop_quiet;

static void *quiet_checker(void *arg)
{
    multi_heap_handle_t q = arg;
    while (!atomic_load(&stop_quiet)) {
        (void)multi_heap_check(q, false);
    }
    return NULL;
}

static void test_check_is_thread_safe(void **state)
{
    (void)state;
    multi_heap_handle_t h = fresh();
    unsigned char *a = multi_heap_malloc(h, 64);
    unsigned char *b = multi_heap_malloc(h, 64);
    assert_non_null(b);
    unsigned char *hb = ct_header_of(b);
    uint32_t orig = ct_get32(hb);
    ct_put32(hb, orig ^ 0x2u); /* "previous block is free": wrong */
    multi_heap_handle_t q = multi_heap_register(quiet_region, sizeof quiet_region);
    assert_non_null(q);
    atomic_store(&stop_quiet, 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, quiet_checker, q), 0);
    ct_capture_begin();
    size_t reported = 0;
    /* 200 rounds: enough overlap with the other thread's checks (this runs for
     * minutes under ASan with 2000). */
    for (int i = 0; i < 200; i++) {
        size_t before = ct_capture_count("CORRUPT HEAP: ");
        if (!multi_heap_check(h, true) && ct_capture_count("CORRUPT HEAP: ") > before) {
            reported++;
        }
        if (ct_capture_len() > CT_CAPTURE_BYTES / 2) {
            ct_capture_clear();
        }
    }
    ct_capture_end();
    atomic_store(&stop_quiet, 1);
    pthread_join(t, NULL);
    ct_put32(hb, orig);
    assert_int_equal(reported, 200);
    assert_true(multi_heap_check(h, false));
    (void)a;
}

int main(void)
{
    printf("poisoning: %s\n", ct_poisoning_name());
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_intact_heap),
        cmocka_unit_test(test_smashed_used_header),
        cmocka_unit_test(test_smashed_free_block),
        cmocka_unit_test(test_check_never_leaves_region),
        cmocka_unit_test(test_control_words_wrong),
        cmocka_unit_test(test_list_link_to_last_footer),
        cmocka_unit_test(test_one_byte_past_the_end),
        cmocka_unit_test(test_misaligned_list_link),
        cmocka_unit_test(test_class_bit_cleared),
        cmocka_unit_test(test_free_block_in_no_list),
        cmocka_unit_test(test_bits_after_last_class),
        cmocka_unit_test(test_free_after_free),
        cmocka_unit_test(test_bad_end_marker),
        cmocka_unit_test(test_free_bytes_wrong),
        cmocka_unit_test(test_min_free_above_free_bytes),
        cmocka_unit_test(test_pair_bit_wrong),
        cmocka_unit_test(test_largest_with_bad_rows),
        cmocka_unit_test(test_listed_in_wrong_class),
        cmocka_unit_test(test_forged_list_entry),
        cmocka_unit_test(test_two_forged_list_entries),
        cmocka_unit_test(test_free_footer_in_address_order),
        cmocka_unit_test(test_check_is_thread_safe),
#if CT_POISONING
        cmocka_unit_test(test_each_tail_byte),
        cmocka_unit_test(test_bad_head),
        cmocka_unit_test(test_bad_size_word),
        cmocka_unit_test(test_tail_in_wide_heaps),
#endif
#if CAPHEAP_POISONING_COMPREHENSIVE
        cmocka_unit_test(test_write_into_free_block),
        cmocka_unit_test(test_write_into_every_fill_byte),
#endif
    };
    return cmocka_run_group_tests_name("check", tests, NULL, NULL);
}
