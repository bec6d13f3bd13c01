/*
 * test_realloc.c - multi_heap_realloc(): NULL pointer, size 0 (frees and
 * credits the free bytes), shrink and grow in place, moves that keep the
 * contents, failures that leave the block untouched.
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

/* ---- a snapshot of the walk, to ask "what is next to this block?" ---- */
typedef struct {
    unsigned char *ptr;
    size_t size;
    int used;
} entry_t;

typedef struct {
    entry_t e[512];
    size_t n;
} layout_t;

static bool collect_cb(void *block_ptr, size_t block_size, int block_used, void *user_data)
{
    layout_t *l = user_data;
    assert_true(l->n < 512);
    l->e[l->n++] = (entry_t){block_ptr, block_size, block_used};
    return true;
}

static void layout(multi_heap_handle_t h, layout_t *l)
{
    l->n = 0;
    multi_heap_walk(h, collect_cb, l);
}

/* Index of the walk entry of the used block whose user pointer is p. */
static size_t index_of(const layout_t *l, const void *p)
{
    const unsigned char *raw = (const unsigned char *)p - ct_poison_head(4);
    for (size_t i = 0; i < l->n; i++) {
        if (l->e[i].ptr == raw) {
            assert_true(l->e[i].used);
            return i;
        }
    }
    fail_msg("block %p not found by the walk", p);
    return 0;
}

/* Is the block right after p (in address order) free? */
static bool next_is_free(multi_heap_handle_t h, const void *p)
{
    static layout_t l;
    layout(h, &l);
    size_t i = index_of(&l, p);
    return i + 1 < l.n && !l.e[i + 1].used;
}

/* p (n bytes, stamped) followed by the free block of a malloc(m), then a used one. */
static unsigned char *before_free_block(multi_heap_handle_t h, size_t n, size_t m)
{
    unsigned char *p = multi_heap_malloc(h, n);
    unsigned char *q = multi_heap_malloc(h, m);
    unsigned char *g = multi_heap_malloc(h, 16);
    assert_non_null(p);
    assert_non_null(g);
    multi_heap_free(h, q);
    assert_true(next_is_free(h, p));
    ct_stamp(p, n);
    return p;
}

static void test_null_pointer_is_malloc(void **state)
{
    (void)state;
    multi_heap_handle_t h = fresh(8192);
    size_t before = multi_heap_free_size(h);
    void *p = multi_heap_realloc(h, NULL, 100);
    assert_non_null(p);
    assert_int_equal(multi_heap_get_allocated_size(h, p), ct_expected_usable_size(100));
    assert_int_equal(before - multi_heap_free_size(h), ct_expected_full_size(100) + 4);
    /* realloc(NULL, 0) is malloc(0): NULL, nothing changes. */
    size_t mid = multi_heap_free_size(h);
    assert_null(multi_heap_realloc(h, NULL, 0));
    assert_int_equal(multi_heap_free_size(h), mid);
    multi_heap_free(h, p);
    assert_int_equal(multi_heap_free_size(h), before);
}

/* Size 0 frees the block and credits its bytes (ESP-IDF forgot to). */
static void test_size_zero_frees_and_credits(void **state)
{
    (void)state;
    multi_heap_handle_t h = fresh(8192);
    size_t empty = multi_heap_free_size(h);
    void *keep = multi_heap_malloc(h, 10);
    size_t before = multi_heap_free_size(h);
    void *p = multi_heap_malloc(h, 100);
    assert_non_null(p);
    size_t low = multi_heap_minimum_free_size(h);
    assert_null(multi_heap_realloc(h, p, 0));
    assert_int_equal(multi_heap_free_size(h), before);
    assert_int_equal(multi_heap_minimum_free_size(h), low);
    assert_null(multi_heap_find_containing_block(h, p));
    multi_heap_info_t info;
    multi_heap_get_info(h, &info);
    assert_int_equal(info.allocated_blocks, 1);
    assert_true(multi_heap_check(h, false));
    multi_heap_free(h, keep);
    assert_int_equal(multi_heap_free_size(h), empty);
}

static void test_same_size_keeps_pointer(void **state)
{
    (void)state;
    multi_heap_handle_t h = fresh(8192);
    unsigned char *p = multi_heap_malloc(h, 100);
    ct_stamp(p, 100);
    size_t before = multi_heap_free_size(h);
    assert_ptr_equal(multi_heap_realloc(h, p, 100), p);
    assert_ptr_equal(multi_heap_realloc(h, p, 99), p);
    assert_int_equal(multi_heap_free_size(h), before);
    assert_true(ct_stamp_ok(p, 99));
    assert_true(multi_heap_check(h, false));
}

/* Shrinking keeps the pointer and gives the tail back. */
static void test_shrink_in_place(void **state)
{
    (void)state;
    multi_heap_handle_t h = fresh(8192);
    unsigned char *p = multi_heap_malloc(h, 200);
    void *guard = multi_heap_malloc(h, 32); /* so the tail is not merged into the rest */
    assert_non_null(p);
    assert_non_null(guard);
    ct_stamp(p, 200);
    uint32_t tok = ct_token(p);
    size_t before = multi_heap_free_size(h);
    unsigned char *q = multi_heap_realloc(h, p, 50);
    assert_ptr_equal(q, p);
    assert_true(ct_stamp_ok_token(q, 50, tok));
    assert_int_equal(multi_heap_get_allocated_size(h, q), ct_expected_usable_size(50));
    assert_int_equal(multi_heap_free_size(h) - before,
                     ct_expected_full_size(200) - ct_expected_full_size(50));
    assert_true(multi_heap_check(h, false));
    /* Shrinking by less than a minimum block also stays in place. */
    unsigned char *r = multi_heap_realloc(h, q, 46);
    assert_ptr_equal(r, p);
    assert_true(multi_heap_get_allocated_size(h, r) >= 46);
    assert_true(ct_stamp_ok_token(r, 46, tok));
    assert_true(multi_heap_check(h, false));
}

/* Shrinking the last block before the free remainder merges the tail into it. */
static void test_shrink_merges_tail(void **state)
{
    (void)state;
    multi_heap_handle_t h = fresh(8192);
    size_t empty = multi_heap_free_size(h);
    unsigned char *p = multi_heap_malloc(h, 1000);
    ct_stamp(p, 1000);
    unsigned char *q = multi_heap_realloc(h, p, 10);
    assert_ptr_equal(q, p);
    assert_true(ct_stamp_ok_token(q, 10, ct_token(p)));
    assert_int_equal(empty - multi_heap_free_size(h), ct_expected_full_size(10) + 4);
    ct_walk_summary_t s;
    ct_walk_summary(h, &s);
    assert_false(s.adjacent_free);
    assert_int_equal(s.blocks, 2);
    assert_true(multi_heap_check(h, false));
}

/* Growing into a free neighbour keeps the pointer. */
static void test_grow_in_place(void **state)
{
    (void)state;
    multi_heap_handle_t h = fresh(8192);
    void *b[3];
    for (int i = 0; i < 3; i++) {
        b[i] = multi_heap_malloc(h, 64);
        assert_non_null(b[i]);
    }
    /* Find a pair lo < mid of neighbours among the three blocks. */
    static layout_t l;
    layout(h, &l);
    unsigned char *lo = NULL, *mid = NULL;
    for (int i = 0; i < 3 && !lo; i++) {
        size_t k = index_of(&l, b[i]);
        for (int j = 0; j < 3; j++) {
            if (k + 1 < l.n && l.e[k + 1].ptr == (unsigned char *)b[j] - ct_poison_head(4)) {
                lo = b[i];
                mid = b[j];
            }
        }
    }
    assert_non_null(lo);
    multi_heap_free(h, mid);
    assert_true(next_is_free(h, lo));
    ct_stamp(lo, 64);
    size_t before = multi_heap_free_size(h);
    unsigned char *q = multi_heap_realloc(h, lo, 100);
    assert_ptr_equal(q, lo);
    assert_true(ct_stamp_ok(q, 64));
    assert_true(multi_heap_get_allocated_size(h, q) >= 100);
    assert_int_equal(before - multi_heap_free_size(h),
                     multi_heap_get_full_block_size(h, q) - ct_expected_full_size(64));
    assert_true(multi_heap_check(h, false));
    /* Grow to swallow the whole neighbour exactly. */
    size_t whole = ct_expected_full_size(64) * 2 + CT_BLOCK_HEADER - capheap_poison_overhead();
    unsigned char *r = multi_heap_realloc(h, q, whole);
    assert_ptr_equal(r, lo);
    assert_int_equal(multi_heap_get_allocated_size(h, r), whole);
    assert_true(ct_stamp_ok(r, 64));
    assert_int_equal(before - multi_heap_free_size(h), ct_expected_full_size(64) + 4);
    assert_true(multi_heap_check(h, false));
    ct_walk_summary_t s;
    ct_walk_summary(h, &s);
    assert_int_equal(s.used_blocks, 2); /* lo (grown over mid) and the third block */
}

/*
 * Growing into a free neighbour that is 16 bytes (the smallest block) larger
 * than needed: the rest stays a free block of its own, as malloc's split
 * leaves one (docs/design.md: a block is split when the rest is at least 16
 * bytes), so the grown block has exactly the capacity asked for and no free
 * byte is lost. One byte more and the neighbour is swallowed whole.
 */
static void test_grow_leaves_smallest_remainder(void **state)
{
    (void)state;
    for (size_t extra = 0; extra <= 4; extra += 4) {
        multi_heap_handle_t h = fresh(8192);
        unsigned char *p = before_free_block(h, 64, 64);
        static layout_t l;
        layout(h, &l);
        size_t i = index_of(&l, p);
        size_t both = (l.e[i].size + 4u) + (l.e[i + 1].size + 4u); /* p's block and its free neighbour */
        size_t ov = ct_heap_poison_overhead(h);
        /* a request whose block is both - 16 (+ extra: then the rest is 12, not a block) */
        size_t n = both - 16u + extra - CT_BLOCK_HEADER - ov;
        size_t before = multi_heap_free_size(h);
        unsigned char *r = multi_heap_realloc(h, p, n);
        assert_ptr_equal(r, p);
        assert_true(ct_stamp_ok(r, 64));
        layout(h, &l);
        i = index_of(&l, r);
        if (extra == 0) {
            assert_int_equal(l.e[i].size, both - 16u - 4u);
            assert_false(l.e[i + 1].used);
            assert_int_equal(l.e[i + 1].size, 12u);
            assert_int_equal(before - multi_heap_free_size(h), l.e[i].size - ct_expected_full_size(64));
        } else {
            assert_int_equal(l.e[i].size, both - 4u);
            assert_true(l.e[i + 1].used);
        }
        assert_true(multi_heap_check(h, false));
        multi_heap_free(h, r);
    }
}

/* Growing into the free remainder of the heap keeps the pointer. */
static void test_grow_into_remainder(void **state)
{
    (void)state;
    multi_heap_handle_t h = fresh(REGION_BYTES);
    void *first = multi_heap_malloc(h, 100);
    unsigned char *p = multi_heap_malloc(h, 100);
    assert_non_null(first);
    assert_non_null(p);
    if (!next_is_free(h, p)) {
        /* this heap placed the block elsewhere: make the condition hold */
        p = first;
        assert_true(next_is_free(h, p));
    }
    ct_stamp(p, 100);
    unsigned char *q = multi_heap_realloc(h, p, 30000);
    assert_ptr_equal(q, p);
    assert_true(ct_stamp_ok(q, 100));
    assert_true(multi_heap_check(h, false));
}

/* When the neighbours are used, realloc moves and keeps min(old, new) bytes. */
static void test_move_keeps_contents(void **state)
{
    (void)state;
    multi_heap_handle_t h = fresh(16384);
    unsigned char *p = multi_heap_malloc(h, 64);
    void *guard = multi_heap_malloc(h, 16);
    assert_non_null(p);
    assert_non_null(guard);
    ct_stamp(p, 64);
    uint32_t tok = ct_token(p);
    if (next_is_free(h, p)) {
        skip(); /* heap did not place guard behind p; nothing to learn */
    }
    size_t before = multi_heap_free_size(h);
    unsigned char *q = multi_heap_realloc(h, p, 2000);
    assert_non_null(q);
    assert_ptr_not_equal(q, p);
    assert_true(ct_stamp_ok_token(q, 64, tok));
    assert_true(multi_heap_get_allocated_size(h, q) >= 2000);
    assert_int_equal(before - multi_heap_free_size(h),
                     multi_heap_get_full_block_size(h, q) - ct_expected_full_size(64));
    assert_ptr_equal(multi_heap_find_containing_block(h, q + 1999), q);
    assert_true(multi_heap_check(h, false));
    ct_walk_summary_t s;
    ct_walk_summary(h, &s);
    assert_int_equal(s.used_blocks, 2);
    /* Shrink-moving back down is fine too; content of the first 30 bytes kept. */
    unsigned char *r = multi_heap_realloc(h, q, 30);
    assert_non_null(r);
    assert_true(ct_stamp_ok_token(r, 30, tok));
    assert_true(multi_heap_check(h, false));
}

#if CT_POISONING
/* A realloc that moves frees the old block: its head no longer reads as the
 * live canary (as after free), whether the old block merges with a free
 * predecessor, a free successor, or neither. A stale pointer does not look
 * allocated. */
static void test_move_retires_old_head(void **state)
{
    (void)state;
    for (int shape = 0; shape < 3; shape++) {
        multi_heap_handle_t h = fresh(16384);
        unsigned char *a = multi_heap_malloc(h, 64);
        unsigned char *p = multi_heap_malloc(h, 32);
        unsigned char *c = multi_heap_malloc(h, 32);
        unsigned char *g = multi_heap_malloc(h, 16);
        assert_non_null(g);
        if (shape == 0)
            multi_heap_free(h, a); /* a free predecessor */
        if (shape == 1)
            multi_heap_free(h, c); /* a free successor, too small to grow into */
        unsigned char *head = p - ct_poison_head(4);
        assert_int_equal(ct_get32(head), CT_HEAD_CANARY);
        unsigned char *q = multi_heap_realloc(h, p, 2000);
        assert_non_null(q);
        assert_ptr_not_equal(q, p);
        assert_int_not_equal(ct_get32(head), CT_HEAD_CANARY);
        assert_true(multi_heap_check(h, false));
    }
}
#endif

/* A request that cannot be met leaves the block where and as it was. */
static void test_failure_leaves_block(void **state)
{
    (void)state;
    multi_heap_handle_t h = fresh(16384);
    unsigned char *p = multi_heap_malloc(h, 64);
    void *guard = multi_heap_malloc(h, 16);
    assert_non_null(guard);
    ct_stamp(p, 64);
    size_t before = multi_heap_free_size(h);
    size_t low = multi_heap_minimum_free_size(h);
    size_t usable = multi_heap_get_allocated_size(h, p);
    const size_t sizes[] = {
        20000, 16384, SIZE_MAX, SIZE_MAX - 1, SIZE_MAX - 3, SIZE_MAX - 4, SIZE_MAX - 12,
        SIZE_MAX - 16, SIZE_MAX / 2, SIZE_MAX / 2 + 1, (size_t)UINT32_MAX,
#if SIZE_MAX > UINT32_MAX
        ((size_t)1 << 32) + 16u, ((size_t)1 << 32) + 64u,
#endif
    };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        assert_null(multi_heap_realloc(h, p, sizes[i]));
        assert_true(ct_stamp_ok(p, 64));
        assert_int_equal(multi_heap_get_allocated_size(h, p), usable);
        assert_int_equal(multi_heap_free_size(h), before);
        assert_ptr_equal(multi_heap_find_containing_block(h, p + 10), p);
    }
    assert_int_equal(multi_heap_minimum_free_size(h), low);
    assert_true(multi_heap_check(h, false));
    /* The block is still the caller's: it can be used and freed normally. */
    unsigned char *q = multi_heap_realloc(h, p, 100);
    assert_non_null(q);
    assert_true(ct_stamp_ok_token(q, 64, ct_token(p)));
    multi_heap_free(h, q);
    multi_heap_free(h, guard);
    assert_true(multi_heap_check(h, false));
}

/* Growing fails when neither the neighbour nor any other block has room. */
static void test_failure_when_full(void **state)
{
    (void)state;
    multi_heap_handle_t h = fresh(4096);
    unsigned char *a = multi_heap_malloc(h, 1500);
    unsigned char *b = multi_heap_malloc(h, 1500);
    assert_non_null(a);
    assert_non_null(b);
    ct_stamp(a, 1500);
    ct_stamp(b, 1500);
    size_t before = multi_heap_free_size(h);
    assert_null(multi_heap_realloc(h, a, 3000));
    assert_null(multi_heap_realloc(h, b, 3000));
    assert_true(ct_stamp_ok(a, 1500));
    assert_true(ct_stamp_ok(b, 1500));
    assert_int_equal(multi_heap_free_size(h), before);
    assert_true(multi_heap_check(h, false));
}

/*
 * Resizing in place needs no second block: in a full heap, shrinking the one
 * big block, and growing a block into its free neighbour, both succeed.
 */
static void test_resize_in_full_heap(void **state)
{
    (void)state;
    multi_heap_handle_t h = fresh(8192);
    multi_heap_info_t info;
    multi_heap_get_info(h, &info);
    size_t whole = info.largest_free_block;
    unsigned char *p = multi_heap_malloc(h, whole);
    assert_non_null(p);
    ct_stamp(p, 100);
    unsigned char *q = multi_heap_realloc(h, p, 100); /* shrink */
    assert_ptr_equal(q, p);
    assert_true(ct_stamp_ok(q, 100));
    unsigned char *r = multi_heap_realloc(h, q, whole); /* grow back into the freed tail */
    assert_ptr_equal(r, p);
    assert_true(ct_stamp_ok(r, 100));
    assert_int_equal(multi_heap_free_size(h), 0);
    assert_true(multi_heap_check(h, false));
    multi_heap_free(h, r);
}

/* A seeded chain of reallocs over a few slots; contents always survive. */
static void test_random_reallocs(void **state)
{
    (void)state;
    enum { SLOTS = 24, OPS = 3000 };
    unsigned char *ptr[SLOTS] = {0};
    size_t len[SLOTS] = {0};
    uint32_t tok[SLOTS] = {0};
    multi_heap_handle_t h = fresh(REGION_BYTES);
    size_t empty = multi_heap_free_size(h);
    ct_rng_t rng;
    ct_rng_init(&rng, ct_seed("realloc.random"));
    for (int op = 0; op < OPS; op++) {
        size_t i = (size_t)ct_rng_below(&rng, SLOTS);
        size_t n = (size_t)ct_rng_range(&rng, 0, (op % 10 == 0) ? 6000 : 300);
        unsigned char *q = multi_heap_realloc(h, ptr[i], n);
        if (n == 0) {
            assert_null(q);
            ptr[i] = NULL;
            len[i] = 0;
        } else if (q == NULL) {
            if (ptr[i]) {
                assert_true(ct_stamp_ok_token(ptr[i], len[i], tok[i]));
            }
        } else {
            size_t keep = len[i] < n ? len[i] : n;
            if (ptr[i]) {
                assert_true(ct_stamp_ok_token(q, keep, tok[i]));
            }
            assert_true(multi_heap_get_allocated_size(h, q) >= n);
            ptr[i] = q;
            len[i] = n;
            tok[i] = ct_token(q) ^ (uint32_t)op;
            ct_stamp_token(q, n, tok[i]);
        }
        assert_true(multi_heap_check(h, false));
        if (op % 50 == 0) {
            assert_true(ct_largest_is_honest(h, NULL));
        }
    }
    for (size_t i = 0; i < SLOTS; i++) {
        if (ptr[i]) {
            assert_true(ct_stamp_ok_token(ptr[i], len[i], tok[i]));
        }
        multi_heap_free(h, ptr[i]);
    }
    assert_int_equal(multi_heap_free_size(h), empty);
}

#if CAPHEAP_POISONING_COMPREHENSIVE

/*
 * Comprehensive poisoning, growing in place into a free successor
 * (docs/design.md, "realloc"): the bytes the block gains are refilled as a
 * new allocation's (0xCE), so past the old contents every byte of the block
 * but the new tail canary (and with task tracking the new owner word, the
 * block's last) reads 0xCE: the new user bytes (where the old tail canary
 * was too) and the padding after the new canary (where the successor's
 * header, links and free fill were, and the old owner word).
 */
static void test_grow_in_place_fills_new_bytes(void **state)
{
    (void)state;
    for (size_t n = 41; n <= 100; n++) {
        multi_heap_handle_t h = fresh(8192);
        unsigned char *p = before_free_block(h, 40, 100);
        unsigned char *q = multi_heap_realloc(h, p, n);
        assert_ptr_equal(q, p);
        assert_true(ct_stamp_ok(q, 40));
        size_t cap = multi_heap_get_full_block_size(h, q); /* from the engine data, poison head included */
        unsigned char *raw = q - ct_poison_head(4);
        for (size_t i = 40; i < n; i++) {
            if (ct_peek8(q + i) != CT_MALLOC_FILL) {
                fail_msg("realloc to %zu: new byte %zu reads 0x%02x", n, i, ct_peek8(q + i));
            }
        }
        assert_int_equal(ct_get32(q + n), CT_TAIL_CANARY);
        for (unsigned char *x = q + n + 4; x < raw + cap - CT_OWNER_BYTES; x++) { /* not the new owner word */
            if (ct_peek8(x) != CT_MALLOC_FILL) {
                fail_msg("realloc to %zu: padding byte %td of %zu reads 0x%02x", n, x - raw, cap, ct_peek8(x));
            }
        }
        assert_true(multi_heap_check(h, false));
    }
}

/*
 * Comprehensive poisoning: growing in place checks the free fill of every
 * byte it takes from the successor (past its header and links) before it
 * hands it out, as malloc does: a write into the successor's first fill byte,
 * or into the last byte the block takes, is "Invalid data" naming that word,
 * for every growth that takes it. (Until 2026-11-26 the last word taken from
 * a successor that was split was not checked, so growing by 16 bytes checked
 * nothing.)
 */
static void test_grow_in_place_checks_fill(void **state)
{
    (void)state;
    /* volatile: read after CT_CATCH_ABORT's longjmp */
    for (volatile size_t grow = 16; grow <= 64; grow += 4) {
        for (int last = 0; last <= 1; last++) {
            multi_heap_handle_t h = fresh(8192);
            unsigned char *p = before_free_block(h, 40, 100);
            static layout_t l;
            layout(h, &l);
            size_t i = index_of(&l, p);
            unsigned char *next = l.e[i + 1].ptr; /* the successor's data: two links, then fill */
            unsigned char *volatile bad = last ? next - 4 + grow - 1 : next + 8;
            ct_poke8(bad, 0x42);
            bool aborted;
            capheap_clear_last_report();
            ct_capture_begin();
            CT_CATCH_ABORT(aborted, (void)multi_heap_realloc(h, p, 40 + grow));
            ct_capture_end();
            if (!aborted) {
                fail_msg("growing by %zu bytes over a write at byte %td of the successor was not reported", grow,
                         bad - (next - 4));
            }
            assert_string_equal(capheap_last_report().what, "Invalid data");
            assert_ptr_equal(capheap_last_report().address, bad - ((uintptr_t)bad & 3u));
        }
    }
}
#endif

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_null_pointer_is_malloc),
        cmocka_unit_test(test_size_zero_frees_and_credits),
        cmocka_unit_test(test_same_size_keeps_pointer),
        cmocka_unit_test(test_shrink_in_place),
        cmocka_unit_test(test_shrink_merges_tail),
        cmocka_unit_test(test_grow_in_place),
        cmocka_unit_test(test_grow_leaves_smallest_remainder),
        cmocka_unit_test(test_grow_into_remainder),
        cmocka_unit_test(test_move_keeps_contents),
#if CT_POISONING
        cmocka_unit_test(test_move_retires_old_head),
#endif
        cmocka_unit_test(test_failure_leaves_block),
        cmocka_unit_test(test_failure_when_full),
        cmocka_unit_test(test_resize_in_full_heap),
        cmocka_unit_test(test_random_reallocs),
#if CAPHEAP_POISONING_COMPREHENSIVE
        cmocka_unit_test(test_grow_in_place_fills_new_bytes),
        cmocka_unit_test(test_grow_in_place_checks_fill),
#endif
    };
    return cmocka_run_group_tests_name("realloc", tests, NULL, NULL);
}
