/*
 * test_check_step.c - checks that do not stall (capheap/check.h).
 *
 * A pass of capheap_heap_check_step() calls with max_blocks 1, 3 and 1000
 * must make exactly the reports of one multi_heap_check() (same lines, same
 * invariant, same result) for corruption placed anywhere: a used block's
 * header (first, middle, last block), a free block's footer, PF bit and list
 * links, the free-byte counter, a bitmap, and with poisoning a canary, with
 * comprehensive poisoning the free fill. No step may check more than
 * max_blocks blocks; steps interleaved with allocations (the caller's own,
 * or another thread's on a locked heap) never report anything on an intact
 * heap. The all-heaps form is run over a simulated ESP32-S3.
 *
 * Corruption is written with ct_put32() (not instrumented), so the test also
 * runs under AddressSanitizer with capheap's poisoning of free space.
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

#include <cmocka.h>

#include "capheap/caps.h"
#include "capheap/check.h"
#include "capheap/sim.h"
#include "esp_heap_caps.h"
#include "support.h"

#define REGION_BYTES (16u * 1024u)
static _Alignas(16) unsigned char region[REGION_BYTES];

/* Heap words may be poisoned (free payload, canaries) under ASan and NOACCESS
 * under memcheck: ct_put32/ct_get32 reach them anyway (tests/support). */
static void put32(void *at, uint32_t v)
{
    ct_put32(at, v);
}

static uint32_t get32(const void *at)
{
    return ct_get32(at);
}

/* ---- heap layout helpers -------------------------------------------------- */

typedef struct {
    unsigned char *data; /* engine data pointer (header is 4 bytes before) */
    size_t cap;
    bool used;
} blk_t;

typedef struct {
    blk_t b[512];
    size_t n;
} blocks_t;

static bool collect_cb(void *data, size_t size, int used, void *user)
{
    blocks_t *bs = user;
    if (bs->n < 512)
        bs->b[bs->n++] = (blk_t){data, size, used != 0};
    return true;
}

static void collect(multi_heap_handle_t h, blocks_t *bs)
{
    bs->n = 0;
    multi_heap_walk(h, collect_cb, bs);
}

/* A heap with used and free blocks spread over it (free blocks of several classes). */
static multi_heap_handle_t populate(void)
{
    multi_heap_handle_t h = multi_heap_register(region, REGION_BYTES);
    assert_non_null(h);
    void *p[60];
    for (int i = 0; i < 60; i++) {
        p[i] = multi_heap_malloc(h, (size_t)(8 + (i * 37) % 300));
        assert_non_null(p[i]);
    }
    for (int i = 1; i < 60; i += 3)
        multi_heap_free(h, p[i]);
    assert_true(multi_heap_check(h, true));
    return h;
}

static const blk_t *nth(const blocks_t *bs, bool used, size_t k)
{
    for (size_t i = 0; i < bs->n; i++) {
        if (bs->b[i].used == used && k-- == 0)
            return &bs->b[i];
    }
    fail_msg("no such block");
    return NULL;
}

static const blk_t *last_of(const blocks_t *bs, bool used)
{
    for (size_t i = bs->n; i-- > 0;) {
        if (bs->b[i].used == used)
            return &bs->b[i];
    }
    fail_msg("no such block");
    return NULL;
}

/* ---- the equivalence ------------------------------------------------------- */

static char expected_text[64 * 1024];

/* Run a pass of steps; return the captured text, the result and the steps taken. */
static bool step_pass(multi_heap_handle_t h, size_t max_blocks, size_t *steps_out)
{
    capheap_check_cursor_t cur = CAPHEAP_CHECK_CURSOR_INIT;
    bool ok = true, done = false;
    size_t steps = 0;
    while (!done) {
        ok = capheap_heap_check_step(h, &cur, max_blocks, true, &done) && ok;
        assert_true(cur.last_step_blocks <= (max_blocks == 0 ? 1 : max_blocks));
        assert_true(++steps < 100000);
    }
    assert_int_equal(cur.passes, 1);
    assert_int_equal(cur.clean_passes, 1);
    *steps_out = steps;
    return ok;
}

/* multi_heap_check's reports and result equal those of a pass of steps, for several budgets. */
static void assert_steps_match_check_n(multi_heap_handle_t h, bool expect_ok, size_t min_steps)
{
    capheap_clear_last_report();
    ct_capture_begin();
    bool ok = multi_heap_check(h, true);
    ct_capture_end();
    assert_int_equal(ok, expect_ok);
    if (!expect_ok)
        assert_true(ct_capture_contains("CORRUPT HEAP: "));
    snprintf(expected_text, sizeof expected_text, "%s", ct_capture_text());
    capheap_report_t want = capheap_last_report();

    static const size_t budgets[] = {1, 3, 1000};
    for (size_t i = 0; i < sizeof budgets / sizeof budgets[0]; i++) {
        size_t steps = 0;
        capheap_clear_last_report();
        ct_capture_begin();
        bool sok = step_pass(h, budgets[i], &steps);
        ct_capture_end();
        assert_int_equal(sok, ok);
        assert_string_equal(ct_capture_text(), expected_text);
        capheap_report_t got = capheap_last_report();
        assert_int_equal(got.invariant, want.invariant);
        assert_ptr_equal(got.address, want.address);
        if (want.what != NULL)
            assert_string_equal(got.what, want.what);
        if (budgets[i] == 1)
            assert_true(steps >= min_steps); /* really cut into pieces */
    }
}

static void assert_steps_match_check(multi_heap_handle_t h, bool expect_ok)
{
    assert_steps_match_check_n(h, expect_ok, 1);
}

static void test_intact(void **state)
{
    (void)state;
    multi_heap_handle_t h = populate();
    assert_steps_match_check_n(h, true, 60); /* 60 blocks, one per step, then the lists */
    assert_steps_match_check(multi_heap_register(region, REGION_BYTES), true); /* one free block */
}

static void test_used_header(void **state)
{
    (void)state;
    for (int where = 0; where < 3; where++) {
        multi_heap_handle_t h = populate();
        blocks_t bs;
        collect(h, &bs);
        const blk_t *b = where == 0 ? nth(&bs, true, 0) : where == 1 ? nth(&bs, true, 20) : last_of(&bs, true);
        put32(b->data - 4, 0x7FFFFFF0u); /* a size that leaves the pool: I1 */
        assert_steps_match_check(h, false);
        assert_int_equal(capheap_last_report().invariant, 1);
    }
}

static void test_used_header_flag(void **state)
{
    (void)state;
    multi_heap_handle_t h = populate();
    blocks_t bs;
    collect(h, &bs);
    const blk_t *b = nth(&bs, true, 5);
    put32(b->data - 4, get32(b->data - 4) ^ 2u); /* PF bit: I2 */
    assert_steps_match_check(h, false);
    assert_int_equal(capheap_last_report().invariant, 2);
}

static void test_free_footer(void **state)
{
    (void)state;
    for (int where = 0; where < 2; where++) {
        multi_heap_handle_t h = populate();
        blocks_t bs;
        collect(h, &bs);
        const blk_t *b = where == 0 ? nth(&bs, false, 0) : last_of(&bs, false);
        put32(b->data + b->cap - 4, 0x12345670u); /* I4 */
        assert_steps_match_check(h, false);
    }
}

static void test_free_links(void **state)
{
    (void)state;
    /* next link into a used block: I5, the list walk stops */
    multi_heap_handle_t h = populate();
    blocks_t bs;
    collect(h, &bs);
    const blk_t *f = nth(&bs, false, 3);
    const blk_t *u = nth(&bs, true, 7);
    put32(f->data, (uint32_t)((u->data - 4) - region));
    assert_steps_match_check(h, false);
    assert_int_equal(capheap_last_report().invariant, 5);

    /* prev link wrong: I5, the walk goes on */
    h = populate();
    collect(h, &bs);
    f = nth(&bs, false, 4);
    put32(f->data + 4, get32(f->data + 4) ^ 0x40u);
    assert_steps_match_check(h, false);

    /* a cycle: next link back to itself: I6 */
    h = populate();
    collect(h, &bs);
    f = nth(&bs, false, 2);
    put32(f->data, (uint32_t)((f->data - 4) - region));
    assert_steps_match_check(h, false);
}

static void test_counters_and_bitmaps(void **state)
{
    (void)state;
    /* free_bytes (control word 5): I7, found only by comparing the pass's sum */
    multi_heap_handle_t h = populate();
    put32(region + 20, get32(region + 20) + 16u);
    assert_steps_match_check(h, false);
    assert_int_equal(capheap_last_report().invariant, 7);

    /* pair bitmap (control word 11): I6 */
    h = populate();
    put32(region + 44, get32(region + 44) ^ 0x100u);
    assert_steps_match_check(h, false);
    assert_int_equal(capheap_last_report().invariant, 6);

    /* magic (control word 2): I12, the first step stops */
    h = populate();
    uint32_t magic = get32(region + 8);
    put32(region + 8, 0);
    assert_steps_match_check(h, false);
    assert_int_equal(capheap_last_report().invariant, 12);
    put32(region + 8, magic);
}

static void test_canary_and_fill(void **state)
{
    (void)state;
#if CT_POISONING
    multi_heap_handle_t h = populate();
    blocks_t bs;
    collect(h, &bs);
    const blk_t *u = nth(&bs, true, 9);
    put32(u->data, 0xDEADBEEFu); /* head canary: I13 */
    assert_steps_match_check(h, false);
    assert_int_equal(capheap_last_report().invariant, 13);

    h = populate();
    void *p = multi_heap_malloc(h, 21);
    assert_non_null(p);
    put32((unsigned char *)p + 21, 0xBAAD5687u); /* tail canary */
    assert_steps_match_check(h, false);
    assert_string_equal(capheap_last_report().what, "Bad tail");
#endif
#if CAPHEAP_POISONING_COMPREHENSIVE
    h = populate();
    collect(h, &bs);
    const blk_t *f = nth(&bs, false, 1);
    assert_true(f->cap > 24);
    put32(f->data + 12, 0x01020304u); /* a write into free memory: I9 */
    assert_steps_match_check(h, false);
    assert_int_equal(capheap_last_report().invariant, 9);
#endif
}

/* The caller's own allocations between steps: never a report, passes complete. */
static void test_interleaved_same_thread(void **state)
{
    (void)state;
    multi_heap_handle_t h = populate();
    ct_rng_t rng;
    ct_rng_init(&rng, ct_seed("check_step interleaved"));
    void *live[64] = {0};
    capheap_check_cursor_t cur = CAPHEAP_CHECK_CURSOR_INIT;
    ct_capture_begin();
    for (int i = 0; i < 20000; i++) {
        size_t k = (size_t)ct_rng_below(&rng, 64);
        if (live[k] != NULL) {
            multi_heap_free(h, live[k]);
            live[k] = NULL;
        } else {
            live[k] = multi_heap_malloc(h, (size_t)ct_rng_range(&rng, 1, 400));
        }
        if (i % 97 == 5 && live[k] != NULL)
            live[k] = multi_heap_realloc(h, live[k], (size_t)ct_rng_range(&rng, 1, 600));
        size_t budget = (size_t)ct_rng_range(&rng, 1, 5);
        assert_true(capheap_heap_check_step(h, &cur, budget, true, NULL));
        assert_true(cur.last_step_blocks <= budget);
    }
    ct_capture_end();
    assert_int_equal(ct_capture_len(), 0);
    assert_true(cur.changes > 0);
    assert_true(cur.passes > 0);
    for (int k = 0; k < 64; k++)
        multi_heap_free(h, live[k]);
    /* quiet heap: the next whole pass is clean and equals multi_heap_check */
    uint32_t clean = cur.clean_passes;
    bool done = false;
    while (!done)
        assert_true(capheap_heap_check_step(h, &cur, 4, true, &done));
    done = false;
    while (!done)
        assert_true(capheap_heap_check_step(h, &cur, 4, true, &done));
    assert_true(cur.clean_passes > clean);
    assert_true(multi_heap_check(h, true));
}

/* One pass of capheap_heap_check_step with the given budgets (the last one
 * repeated), with a change of the heap (malloc and free) before step
 * change_at (0: none). Returns the steps taken. */
static size_t heap_pass(multi_heap_handle_t h, capheap_check_cursor_t *cur, const size_t *budgets, size_t nb,
                        size_t change_at, bool *all_ok)
{
    bool done = false;
    size_t steps = 0;
    *all_ok = true;
    while (!done) {
        if (change_at != 0 && steps == change_at) {
            void *q = multi_heap_malloc(h, 24);
            assert_non_null(q);
            multi_heap_free(h, q);
        }
        size_t budget = budgets[steps < nb ? steps : nb - 1];
        *all_ok = capheap_heap_check_step(h, cur, budget, false, &done) && *all_ok;
        assert_true(++steps < 100000);
    }
    return steps;
}

/* The single-heap cursor's statistics (check.h): passes, clean_passes (no
 * change during the pass), changes (steps that found the heap changed),
 * errors (steps that found corruption) and max_step_blocks (the most any call
 * checked, not the last call's count). */
static void test_heap_cursor_statistics(void **state)
{
    (void)state;
    multi_heap_handle_t h = populate();
    capheap_check_cursor_t cur = CAPHEAP_CHECK_CURSOR_INIT;
    bool ok;
    static const size_t one[] = {1};
    static const size_t three_then_one[] = {3, 1};
    /* a quiet pass of 1-block steps */
    assert_true(heap_pass(h, &cur, one, 1, 0, &ok) > 3);
    assert_true(ok);
    assert_int_equal(cur.passes, 1);
    assert_int_equal(cur.clean_passes, 1);
    assert_int_equal(cur.changes, 0);
    assert_int_equal(cur.errors, 0);
    assert_int_equal(cur.max_step_blocks, 1);
    /* a first step of 3 blocks, then 1-block steps: the most is 3 */
    (void)heap_pass(h, &cur, three_then_one, 2, 0, &ok);
    assert_true(ok);
    assert_int_equal(cur.last_step_blocks, 1);
    assert_int_equal(cur.max_step_blocks, 3);
    assert_int_equal(cur.passes, 2);
    assert_int_equal(cur.clean_passes, 2);
    /* a change in the middle of a pass: counted once, the pass is not clean */
    (void)heap_pass(h, &cur, one, 1, 2, &ok);
    assert_true(ok);
    assert_int_equal(cur.passes, 3);
    assert_int_equal(cur.clean_passes, 2);
    assert_int_equal(cur.changes, 1);
    assert_int_equal(cur.errors, 0);
    /* the next quiet pass is clean again */
    (void)heap_pass(h, &cur, one, 1, 0, &ok);
    assert_int_equal(cur.passes, 4);
    assert_int_equal(cur.clean_passes, 3);
    /* corruption: each step that finds it counts as an error */
    blocks_t bs;
    collect(h, &bs);
    size_t k = 1;
    while (k < bs.n && !(bs.b[k].used && bs.b[k - 1].used))
        k++;
    assert_true(k < bs.n); /* a used block after a used one */
    unsigned char *hdr = bs.b[k].data - 4;
    uint32_t orig = get32(hdr);
    assert_int_equal(orig & 2u, 0);
    put32(hdr, orig | 2u); /* PF set after a used block (I2) */
    static const size_t all[] = {1000};
    (void)heap_pass(h, &cur, all, 1, 0, &ok);
    assert_false(ok);
    assert_int_equal(cur.errors, 1);
    put32(hdr, orig);
    (void)heap_pass(h, &cur, one, 1, 0, &ok);
    assert_true(ok);
    assert_int_equal(cur.errors, 1);
    assert_true(multi_heap_check(h, true));
}

/* Every pass sees a change made between two of its steps, however many
 * passes ran before it: the tokens that tell passes apart (one 16-bit
 * counter for all heaps) never take the value a change leaves (0), also
 * where the counter wraps. */
static void test_change_seen_in_every_pass(void **state)
{
    (void)state;
    multi_heap_handle_t h = populate();
    for (unsigned i = 0; i < 65536u + 2u; i++) {
        capheap_check_cursor_t cur = CAPHEAP_CHECK_CURSOR_INIT;
        bool done = false;
        assert_true(capheap_heap_check_step(h, &cur, 1, true, &done));
        assert_false(done);
        void *q = multi_heap_malloc(h, 24);
        assert_non_null(q);
        multi_heap_free(h, q);
        assert_true(capheap_heap_check_step(h, &cur, 1, true, &done));
        if (cur.changes != 1) {
            fail_msg("pass %u: the change was not seen (changes %u)", i, (unsigned)cur.changes);
        }
    }
}

/* The tokens a heap gets when a step finds it changed come from one 16-bit
 * counter for all heaps, skipping 0 ("changed"): across its wrap, two
 * tokens in a row are never equal. (0 was mapped to 1, so 0x10000 and
 * 0x10001 both gave 1: a pass holding the first missed a change marked with
 * the second and reported a sound heap as corrupt; a review found it.) A
 * white-box test: the cursor's private token_ is the heap's after a step. */
static void test_tokens_across_the_wrap(void **state)
{
    (void)state;
    multi_heap_handle_t h = populate();
    capheap_check_cursor_t c = CAPHEAP_CHECK_CURSOR_INIT;
    bool done = false;
    uint16_t last = 0;
    for (unsigned i = 0; i < 65536u * 2u + 8u; i++) {
        void *x = multi_heap_malloc(h, 16); /* a change: the next step draws a token */
        assert_non_null(x);
        multi_heap_free(h, x);
        assert_true(capheap_heap_check_step(h, &c, 1, false, &done));
        assert_int_not_equal(c.token_, 0);
        if (c.token_ == last) {
            fail_msg("step %u: token %u twice in a row", i, (unsigned)last);
        }
        last = c.token_;
    }
}

/* Two passes side by side on a quiet heap (two tasks each running the
 * periodic check, say) see it quiet: both end, both clean, no change seen.
 * (When each step wrote its own pass's token, each pass saw the other's
 * steps as changes and restarted from the first block; past 32 x budget
 * blocks neither ever ended. An audit found it.) A heap with a lock: no
 * sentinel comes and goes. */
static void test_two_passes_side_by_side(void **state)
{
    (void)state;
    multi_heap_handle_t h = populate();
    capheap_lock_t lock;
    assert_int_equal(capheap_lock_init(&lock), 0);
    multi_heap_set_lock(h, &lock);
    blocks_t bs;
    collect(h, &bs);
    assert_true(bs.n > 40); /* more than one step's hops (32 x 1) */
    capheap_check_cursor_t a = CAPHEAP_CHECK_CURSOR_INIT, b = CAPHEAP_CHECK_CURSOR_INIT;
    size_t steps = 0;
    ct_capture_begin();
    while (a.passes == 0 || b.passes == 0) {
        if (a.passes == 0)
            assert_true(capheap_heap_check_step(h, &a, 1, true, NULL));
        if (b.passes == 0)
            assert_true(capheap_heap_check_step(h, &b, 1, true, NULL));
        assert_true(++steps < 10u * bs.n);
    }
    ct_capture_end();
    assert_int_equal(ct_capture_len(), 0);
    assert_int_equal(a.clean_passes, 1);
    assert_int_equal(b.clean_passes, 1);
    assert_int_equal(a.changes, 0);
    assert_int_equal(b.changes, 0);
    multi_heap_set_lock(h, NULL);
    capheap_lock_destroy(&lock);
}

/* On a heap without a lock, the pass that ends first takes the sentinel
 * lock away; a change made then goes through the unlocked paths, which
 * record nothing. The other pass, still under way, attaches the sentinel
 * again at its next step and counts a change: it resynchronises, reports
 * nothing, and its pass is not clean. */
static void test_pass_after_other_pass_ended(void **state)
{
    (void)state;
    multi_heap_handle_t h = populate();
    capheap_check_cursor_t a = CAPHEAP_CHECK_CURSOR_INIT, b = CAPHEAP_CHECK_CURSOR_INIT;
    ct_capture_begin();
    for (int i = 0; i < 20; i++) { /* both under way */
        assert_true(capheap_heap_check_step(h, &a, 1, true, NULL));
        assert_true(capheap_heap_check_step(h, &b, 1, true, NULL));
    }
    assert_int_equal(a.passes + b.passes, 0);
    bool done = false;
    while (!done)
        assert_true(capheap_heap_check_step(h, &a, 1000, true, &done));
    assert_int_equal(a.clean_passes, 1);
    /* the blocks around b's position change while nobody records it */
    blocks_t bs;
    collect(h, &bs);
    for (size_t k = 0; k < bs.n; k++)
        if (bs.b[k].used && k % 2 == 0)
            multi_heap_free(h, bs.b[k].data + ct_poison_head(4));
    void *q = multi_heap_malloc(h, 700);
    assert_non_null(q);
    assert_int_equal(b.changes, 0);
    done = false;
    for (size_t steps = 0; !done; steps++) {
        assert_true(capheap_heap_check_step(h, &b, 1, true, &done));
        assert_true(steps < 10000);
    }
    ct_capture_end();
    assert_int_equal(ct_capture_len(), 0);
    assert_true(b.changes >= 1);
    assert_int_equal(b.passes, 1);
    assert_int_equal(b.clean_passes, 0);
    done = false;
    while (!done)
        assert_true(capheap_heap_check_step(h, &b, 3, true, &done));
    assert_int_equal(b.clean_passes, 1);
    assert_true(multi_heap_check(h, true));
}

/* A heap of 40 used blocks of 32 bytes, the rest one free block after them. */
static multi_heap_handle_t row_of_blocks(unsigned char *mem, size_t bytes, void *p[40])
{
    multi_heap_handle_t h = multi_heap_register(mem, bytes);
    assert_non_null(h);
    for (int i = 0; i < 40; i++) {
        p[i] = multi_heap_malloc(h, 32);
        assert_non_null(p[i]);
    }
    return h;
}

/* A change that leaves free_bytes as it was: two blocks taken from the free
 * tail, and the first and third blocks (used neighbours on both sides, so
 * nothing merges) given back. */
static void change_keeping_free_bytes(multi_heap_handle_t h, void *p[40])
{
    size_t before = multi_heap_free_size(h);
    assert_non_null(multi_heap_malloc(h, 32));
    assert_non_null(multi_heap_malloc(h, 32));
    multi_heap_free(h, p[0]);
    multi_heap_free(h, p[2]);
    assert_int_equal(multi_heap_free_size(h), before);
}

/* Start capturing the reports, and a pass b that has walked the first blocks. */
static void pass_under_way(multi_heap_handle_t h, capheap_check_cursor_t *b)
{
    ct_capture_begin();
    for (int i = 0; i < 6; i++)
        assert_true(capheap_heap_check_step(h, b, 1, true, NULL));
}

/* Step b to the end of its pass: it sees the change (it reports nothing,
 * its pass is not clean), and the heap is sound. */
static void finish_changed_pass(multi_heap_handle_t h, capheap_check_cursor_t *b)
{
    bool done = false;
    for (size_t steps = 0; !done; steps++) {
        assert_true(capheap_heap_check_step(h, b, 1, true, &done));
        assert_true(steps < 10000);
    }
    ct_capture_end();
    assert_int_equal(ct_capture_len(), 0);
    assert_true(b->changes >= 1);
    assert_int_equal(b->passes, 1);
    assert_int_equal(b->clean_passes, 0);
    assert_true(multi_heap_check(h, true));
}

/* test_pass_after_other_pass_ended with a change nothing records that also
 * leaves the free-byte count as it was: the pass under way still sees it
 * (it re-attaches the sentinel, which is a change by itself), and so does it
 * when a third pass re-attached the sentinel first (that pass draws the heap
 * a new token). A mutation that counted neither, and one that let the third
 * pass keep the old token, made the pass compare a sum from before the change
 * with a count from after it and report the sound heap as corrupt. */
static void test_unrecorded_change_same_free_bytes(void **state)
{
    (void)state;
    for (int third = 0; third < 2; third++) {
        void *p[40];
        multi_heap_handle_t h = row_of_blocks(region, REGION_BYTES, p);
        capheap_check_cursor_t a = CAPHEAP_CHECK_CURSOR_INIT, b = CAPHEAP_CHECK_CURSOR_INIT;
        capheap_check_cursor_t c = CAPHEAP_CHECK_CURSOR_INIT;
        pass_under_way(h, &b);
        bool done = false;
        while (!done) /* a whole pass, which takes the sentinel away */
            assert_true(capheap_heap_check_step(h, &a, 1000, true, &done));
        change_keeping_free_bytes(h, p);
        if (third)
            assert_true(capheap_heap_check_step(h, &c, 1, true, NULL));
        finish_changed_pass(h, &b);
    }
}

/* A pass that finds its own token on the heap after a change (the 16-bit
 * counter went round while it waited: 65534 tokens drawn elsewhere, then the
 * heap's next one) still sees the change, by the free-byte count: it reports
 * nothing and its pass is not clean. White-box: the cursors' token_. */
static void test_own_token_found_after_change(void **state)
{
    (void)state;
    void *p[40];
    multi_heap_handle_t h = row_of_blocks(region, REGION_BYTES, p);
    static _Alignas(16) unsigned char other_region[2048];
    multi_heap_handle_t other = multi_heap_register(other_region, sizeof other_region);
    assert_non_null(other);
    capheap_check_cursor_t b = CAPHEAP_CHECK_CURSOR_INIT, c = CAPHEAP_CHECK_CURSOR_INIT;
    capheap_check_cursor_t d = CAPHEAP_CHECK_CURSOR_INIT;
    pass_under_way(h, &b);
    multi_heap_free(h, p[0]); /* recorded: the heap's token is 0 until the next step */
    uint16_t before = (uint16_t)(b.token_ == 1u ? 0xFFFFu : b.token_ - 1u);
    for (unsigned n = 0; d.token_ != before; n++) { /* tokens drawn for the other heap */
        void *x = multi_heap_malloc(other, 16);
        assert_non_null(x);
        multi_heap_free(other, x);
        assert_true(capheap_heap_check_step(other, &d, 1, true, NULL));
        assert_true(n < 70000u);
    }
    assert_true(capheap_heap_check_step(h, &c, 1, true, NULL)); /* draws the heap's token */
    assert_int_equal(c.token_, b.token_);
    finish_changed_pass(h, &b);
}

/* A busy heap cannot hold a pass in one class list for ever (docs/checks.md:
 * after a change a class list restarts from its head at most twice per class
 * and pass, then the pass goes on with the next class). A heap with one long
 * list (class 15: 12 free blocks of 60 bytes) and a change before every
 * 1-block step: the walk checks a block per step, the pairs take a step, and
 * the long list three more (two restarts, then the step that moves on and
 * finishes the short tail list), so the pass ends within blocks + 1 + 3 steps. */
static void test_busy_list_bounded(void **state)
{
    (void)state;
    multi_heap_handle_t h = multi_heap_register(region, REGION_BYTES);
    assert_non_null(h);
    void *p[24];
    for (int i = 0; i < 24; i++) {
        p[i] = multi_heap_malloc(h, 60 - CT_BLOCK_HEADER - ct_poison_overhead(4)); /* blocks of 60: class 15 */
        assert_non_null(p[i]);
    }
    void *rest = multi_heap_malloc(h, multi_heap_free_size(h) - 400);
    assert_non_null(rest); /* what is left: one free block of about 400 bytes after it */
    for (int i = 0; i < 24; i += 2)
        multi_heap_free(h, p[i]);
    blocks_t bs;
    collect(h, &bs);
    size_t free_blocks = 0;
    for (size_t i = 0; i < bs.n; i++)
        free_blocks += !bs.b[i].used;
    assert_int_equal(free_blocks, 13);
    capheap_check_cursor_t cur = CAPHEAP_CHECK_CURSOR_INIT;
    bool done = false;
    size_t steps = 0;
    while (!done) {
        void *q = multi_heap_malloc(h, 100); /* a change every step (from the last free block, given back) */
        assert_non_null(q);
        multi_heap_free(h, q);
        assert_true(capheap_heap_check_step(h, &cur, 1, true, &done));
        assert_true(++steps < 10000);
    }
    print_message("busy pass: %zu steps, %zu blocks\n", steps, bs.n);
    assert_true(steps <= bs.n + 1u + 3u);
    for (int i = 1; i < 24; i += 2)
        multi_heap_free(h, p[i]);
    multi_heap_free(h, rest);
    assert_true(multi_heap_check(h, true));
}

/* ---- another thread allocating on a locked heap ---------------------------- */

static atomic_bool stop_worker;
static atomic_ulong worker_ops;

static void *worker(void *arg)
{
    multi_heap_handle_t h = arg;
    ct_rng_t rng;
    ct_rng_init(&rng, 1234);
    void *live[48] = {0};
    while (!atomic_load(&stop_worker)) {
        size_t k = (size_t)ct_rng_below(&rng, 48);
        if (live[k] != NULL) {
            if (!ct_stamp_ok(live[k], 8))
                abort();
            multi_heap_free(h, live[k]);
            live[k] = NULL;
        } else if ((live[k] = multi_heap_malloc(h, (size_t)ct_rng_range(&rng, 8, 300))) != NULL) {
            ct_stamp(live[k], 8);
        }
        atomic_fetch_add(&worker_ops, 1);
    }
    for (int k = 0; k < 48; k++)
        multi_heap_free(h, live[k]);
    return NULL;
}

static void test_thread(void **state)
{
    (void)state;
    capheap_lock_t lk;
    assert_int_equal(capheap_lock_init(&lk), 0);
    multi_heap_handle_t h = populate();
    multi_heap_set_lock(h, &lk);
    atomic_store(&stop_worker, false);
    atomic_store(&worker_ops, 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, worker, h), 0);
    capheap_check_cursor_t cur = CAPHEAP_CHECK_CURSOR_INIT;
    ct_capture_begin();
    for (int i = 0; i < 30000 || cur.changes < 10; i++) {
        assert_true(capheap_heap_check_step(h, &cur, (size_t)(1 + i % 4), true, NULL));
        assert_true(cur.last_step_blocks <= (uint32_t)(1 + i % 4));
        if (i > 2000000)
            break;
    }
    atomic_store(&stop_worker, true);
    pthread_join(t, NULL);
    ct_capture_end();
    assert_int_equal(ct_capture_len(), 0);
    assert_true(cur.passes > 0);
    assert_true(cur.max_step_blocks <= 4);
    assert_true(multi_heap_check(h, true));
    multi_heap_set_lock(h, NULL);
    capheap_lock_destroy(&lk);
}

/* ---- all heaps: a simulated ESP32-S3 --------------------------------------- */

static void test_all_heaps(void **state)
{
    (void)state;
    capheap_sim_options_t opts = CAPHEAP_SIM_OPTIONS_DEFAULT;
    opts.quiet = true;
    opts.psram_bytes = 1u << 20;
    assert_int_equal(capheap_sim_boot(&capheap_chip_esp32s3, &opts), ESP_OK);
    void *p[40];
    for (int i = 0; i < 40; i++)
        p[i] = heap_caps_malloc((size_t)(16 + i * 50), i % 3 == 0 ? MALLOC_CAP_SPIRAM : MALLOC_CAP_8BIT);
    for (int i = 0; i < 40; i += 2)
        heap_caps_free(p[i]);
    capheap_check_cursor_t cur = CAPHEAP_CHECK_CURSOR_INIT;
    size_t calls = 0;
    while (cur.passes < 2) {
        assert_true(capheap_check_step(&cur, 7, true));
        assert_true(cur.last_step_blocks <= 7);
        assert_true(++calls < 100000);
    }
    assert_int_equal(cur.clean_passes, 2);

    /* a smashed header in one heap: the same reports as heap_caps_check_integrity_all */
    put32((unsigned char *)p[9] - 4 - (CT_POISONING ? ct_poison_head(4) : 0), 0x7FFFFFF0u);
    ct_capture_begin();
    assert_false(heap_caps_check_integrity_all(true));
    ct_capture_end();
    snprintf(expected_text, sizeof expected_text, "%s", ct_capture_text());
    capheap_check_cursor_init(&cur);
    bool ok = true;
    ct_capture_begin();
    while (cur.passes < 1)
        ok = capheap_check_step(&cur, 3, true) && ok;
    ct_capture_end();
    assert_false(ok);
    assert_string_equal(ct_capture_text(), expected_text);
    /* print_errors false: the same failure, and not a word (no description of the block either) */
    capheap_check_cursor_init(&cur);
    ok = true;
    ct_capture_begin();
    while (cur.passes < 1)
        ok = capheap_check_step(&cur, 3, false) && ok;
    ct_capture_end();
    assert_false(ok);
    assert_string_equal(ct_capture_text(), "");
    assert_int_equal(capheap_sim_shutdown(), ESP_OK);
}

/* ---- all heaps: the budget and the counters (capheap/check.h) --------------- */

/* Teardown: a failed test leaves no simulated chip behind for the next. */
static int sim_down(void **state)
{
    (void)state;
    if (capheap_sim_chip() != NULL)
        (void)capheap_sim_shutdown();
    return 0;
}

static void boot_s3_with_blocks(void **p, size_t n)
{
    capheap_sim_options_t opts = CAPHEAP_SIM_OPTIONS_DEFAULT;
    opts.quiet = true;
    opts.psram_bytes = 1u << 20;
    assert_int_equal(capheap_sim_boot(&capheap_chip_esp32s3, &opts), ESP_OK);
    for (size_t i = 0; i < n; i++)
        p[i] = heap_caps_malloc(16 + i * 50, i % 3 == 0 ? MALLOC_CAP_SPIRAM : MALLOC_CAP_8BIT);
    for (size_t i = 0; i < n; i += 2)
        heap_caps_free(p[i]);
}

/* Blocks and list entries one pass over every registered heap checks: the sum
 * over the heaps of a capheap_heap_check_step() pass. */
static uint64_t units_of_all_heaps(void)
{
    uint64_t total = 0;
    capheap_heap_desc_t d;
    for (size_t i = 0; capheap_heap_get(i, &d); i++) {
        capheap_check_cursor_t c = CAPHEAP_CHECK_CURSOR_INIT;
        bool done = false;
        while (!done) {
            assert_true(capheap_heap_check_step(d.heap, &c, 5, false, &done));
            total += c.last_step_blocks;
        }
    }
    return total;
}

/* One all-heaps pass with max_blocks per call: every call within the budget,
 * the calls' counts add up to the pass's units, max_step_blocks is their
 * maximum. Returns the number of calls. */
static size_t all_heaps_pass(capheap_check_cursor_t *cur, size_t max_blocks, uint64_t units)
{
    uint32_t passes = cur->passes;
    uint64_t sum = 0;
    uint32_t most = cur->max_step_blocks;
    size_t calls = 0;
    size_t budget = max_blocks == 0 ? 1 : max_blocks; /* 0 counts as 1 */
    while (cur->passes == passes) {
        assert_true(capheap_check_step(cur, max_blocks, true));
        assert_true(cur->last_step_blocks <= budget);
        sum += cur->last_step_blocks;
        most = cur->last_step_blocks > most ? cur->last_step_blocks : most;
        assert_true(++calls <= units + 2); /* no call without progress */
    }
    assert_int_equal(cur->passes, passes + 1);
    assert_int_equal(sum, units);
    assert_int_equal(cur->max_step_blocks, most);
    return calls;
}

static void test_all_heaps_budget(void **state)
{
    (void)state;
    void *p[40];
    boot_s3_with_blocks(p, 40);
    assert_true(capheap_heap_count() > 2);
    uint64_t units = units_of_all_heaps();
    assert_true(units > 40);
    ct_capture_begin();
    /* a budget of exactly the pass's units: one call finishes it, heap after
     * heap, and counts it (check.h: passes grows when the last heap's pass
     * ends, not at a later call that checks nothing) */
    capheap_check_cursor_t cur = CAPHEAP_CHECK_CURSOR_INIT;
    assert_true(capheap_check_step(&cur, (size_t)units, true));
    assert_int_equal(cur.passes, 1);
    assert_int_equal(cur.last_step_blocks, units);
    assert_int_equal(cur.max_step_blocks, units);
    /* small budgets; a call goes on with the next heap when one ends with budget left */
    capheap_check_cursor_init(&cur);
    size_t calls = all_heaps_pass(&cur, 7, units);
    assert_true(calls >= (units + 6) / 7);
    assert_true(cur.max_step_blocks <= 7);
    capheap_check_cursor_init(&cur);
    (void)all_heaps_pass(&cur, 1, units);
    /* 0 counts as 1 */
    capheap_check_cursor_init(&cur);
    (void)all_heaps_pass(&cur, 0, units);
    assert_int_equal(cur.max_step_blocks, 1);
    ct_capture_end();
    assert_int_equal(ct_capture_len(), 0);
    /* NULL cursor: nothing checked, false (as capheap_heap_check_step) */
    assert_false(capheap_check_step(NULL, 8, false));
    assert_int_equal(capheap_sim_shutdown(), ESP_OK);
}

/* clean_passes counts the passes during which no checked heap changed: a pass
 * with a change does not count, the clean pass after it does. */
static void test_all_heaps_clean_passes(void **state)
{
    (void)state;
    void *p[40];
    boot_s3_with_blocks(p, 40);
    uint64_t units = units_of_all_heaps();
    capheap_check_cursor_t cur = CAPHEAP_CHECK_CURSOR_INIT;
    do /* into the middle of a heap's pass */
        assert_true(capheap_check_step(&cur, 1, true));
    while (cur.heap == NULL);
    void *x = multi_heap_malloc(cur.heap, 24); /* the heap being checked changes */
    assert_non_null(x);
    multi_heap_free(cur.heap, x);
    while (cur.passes == 0)
        assert_true(capheap_check_step(&cur, 3, true));
    assert_true(cur.changes > 0);
    assert_int_equal(cur.clean_passes, 0);
    (void)all_heaps_pass(&cur, 3, units);
    assert_int_equal(cur.passes, 2);
    assert_int_equal(cur.clean_passes, 1);
    assert_int_equal(capheap_sim_shutdown(), ESP_OK);
}

/* A region added during a pass goes in front of the list (newest first): the
 * cursor finds its heap again by handle and goes on where it was, and the new
 * heap joins the next pass. So the pass checks exactly the units of the heaps
 * it started with, none twice. */
static _Alignas(16) unsigned char late_region[8 * 1024];

static void test_all_heaps_region_added_mid_pass(void **state)
{
    (void)state;
    void *p[40];
    boot_s3_with_blocks(p, 40);
    uint64_t units = units_of_all_heaps();
    capheap_check_cursor_t cur = CAPHEAP_CHECK_CURSOR_INIT;
    uint64_t sum = 0;
    /* into the second heap or later, in the middle of one */
    while (cur.heap_index < 1 || cur.heap == NULL) {
        assert_true(capheap_check_step(&cur, 1, true));
        sum += cur.last_step_blocks;
        assert_int_equal(cur.passes, 0);
    }
    multi_heap_handle_t at = cur.heap;
    size_t index = cur.heap_index;
    const uint32_t caps[3] = {MALLOC_CAP_8BIT | MALLOC_CAP_PID2, 0, 0};
    assert_int_equal(capheap_caps_add_region(caps, (intptr_t)late_region,
                                             (intptr_t)(late_region + sizeof late_region), NULL),
                     ESP_OK);
    capheap_heap_desc_t d;
    assert_true(capheap_heap_get(index + 1, &d)); /* everything moved back by one */
    assert_ptr_equal(d.heap, at);
    while (cur.passes == 0) {
        assert_true(capheap_check_step(&cur, 3, true));
        sum += cur.last_step_blocks;
    }
    assert_int_equal(sum, units);
    /* the next pass includes the new heap */
    uint64_t more = units_of_all_heaps();
    assert_true(more > units);
    (void)all_heaps_pass(&cur, 3, more);
    assert_int_equal(capheap_sim_shutdown(), ESP_OK);
}

/* The heaps of a pass vanish under the cursor (the simulator shut down, a
 * caps reset): with none left the pass is over; with another chip's heaps
 * in their place the cursor's heap is gone, so it goes on with the heap at
 * its position, from that heap's start. A cursor that still held the old
 * heap's position would report the new heap corrupt. */
static void test_all_heaps_gone_mid_pass(void **state)
{
    (void)state;
    void *p[40];
    boot_s3_with_blocks(p, 40);
    capheap_check_cursor_t cur = CAPHEAP_CHECK_CURSOR_INIT;
    while (cur.heap_index < 1 || cur.heap == NULL) /* in the middle of the second heap or later */
        assert_true(capheap_check_step(&cur, 1, true));
    assert_int_equal(capheap_sim_shutdown(), ESP_OK);
    assert_int_equal(capheap_heap_count(), 0);
    ct_capture_begin();
    assert_true(capheap_check_step(&cur, 5, true));
    assert_int_equal(cur.passes, 1); /* nothing left to check: complete */
    assert_null(cur.heap);
    assert_int_equal(cur.heap_index, 0);
    assert_true(capheap_check_step(&cur, 5, true)); /* and again: an empty pass each call */
    assert_int_equal(cur.passes, 2);

    boot_s3_with_blocks(p, 40);
    capheap_check_cursor_init(&cur);
    while (cur.heap_index < 1 || cur.heap == NULL)
        assert_true(capheap_check_step(&cur, 1, true));
    size_t index = cur.heap_index;
    assert_int_equal(capheap_sim_shutdown(), ESP_OK);
    capheap_sim_options_t opts = CAPHEAP_SIM_OPTIONS_DEFAULT;
    opts.quiet = true;
    assert_int_equal(capheap_sim_boot(&capheap_chip_esp32c3, &opts), ESP_OK);
    assert_true(capheap_heap_count() > index); /* a heap at the cursor's position */
    uint64_t sum = 0;
    while (cur.passes == 0) {
        assert_true(capheap_check_step(&cur, 2, true));
        sum += cur.last_step_blocks;
    }
    /* the C3's heaps from the cursor's position on, each from its start */
    uint64_t want = 0;
    capheap_heap_desc_t d;
    for (size_t i = index; capheap_heap_get(i, &d); i++) {
        capheap_check_cursor_t one;
        capheap_check_cursor_init(&one);
        bool done = false;
        while (!done)
            assert_true(capheap_heap_check_step(d.heap, &one, 1000, true, &done));
        want += one.last_step_blocks;
    }
    assert_int_equal(sum, want);
    ct_capture_end();
    assert_int_equal(ct_capture_len(), 0); /* no report */
    assert_int_equal(capheap_sim_shutdown(), ESP_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_intact),
        cmocka_unit_test(test_used_header),
        cmocka_unit_test(test_used_header_flag),
        cmocka_unit_test(test_free_footer),
        cmocka_unit_test(test_free_links),
        cmocka_unit_test(test_counters_and_bitmaps),
        cmocka_unit_test(test_canary_and_fill),
        cmocka_unit_test(test_interleaved_same_thread),
        cmocka_unit_test(test_heap_cursor_statistics),
        cmocka_unit_test(test_change_seen_in_every_pass),
        cmocka_unit_test(test_tokens_across_the_wrap),
        cmocka_unit_test(test_two_passes_side_by_side),
        cmocka_unit_test(test_pass_after_other_pass_ended),
        cmocka_unit_test(test_unrecorded_change_same_free_bytes),
        cmocka_unit_test(test_own_token_found_after_change),
        cmocka_unit_test(test_busy_list_bounded),
        cmocka_unit_test(test_thread),
        cmocka_unit_test(test_all_heaps),
        cmocka_unit_test_teardown(test_all_heaps_budget, sim_down),
        cmocka_unit_test_teardown(test_all_heaps_clean_passes, sim_down),
        cmocka_unit_test_teardown(test_all_heaps_region_added_mid_pass, sim_down),
        cmocka_unit_test_teardown(test_all_heaps_gone_mid_pass, sim_down),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
