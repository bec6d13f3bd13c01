/*
 * test_owner.c - the owner word of task tracking builds (src/heap/heap_private.h):
 * every block ends with a 32-bit word multi_heap stores and returns but never
 * interprets, which the task tracker uses to find a block's owner without a
 * table. Checked here, for heaps of alignment 4, 8 and 16, with and without a
 * lock, in whatever poisoning mode the build has:
 *
 *   - capheap_heap_malloc_owned writes the word; the usable size it returns is
 *     multi_heap_get_allocated_size's, 0 on failure;
 *   - the public API writes 0 (malloc, aligned_alloc, aligned_alloc_offs, and
 *     the speed builds' locked variants), multi_heap_realloc carries
 *     the word over while the usable size stays the same (in place or moved)
 *     and writes 0 when it changes;
 *   - capheap_heap_realloc_owned in place (grow, shrink), moved and failing:
 *     the old word and size, the new word, the new size;
 *   - capheap_heap_free_owned without and with free neighbours;
 *   - get and swap, and {0, 0} without any report for pointers that are not
 *     live blocks (foreign, interior, misaligned, freed, another heap's, bad
 *     canaries);
 *   - capheap_heap_walk_owners (every used block once, stops on false) and
 *     capheap_block_owner on what multi_heap_walk reports;
 *   - the user writing every usable byte never changes the word;
 *   - rejected pointers are reported by free_owned, realloc_owned and
 *     move_out exactly as multi_heap_free / multi_heap_realloc report them,
 *     and with an abort handler that returns, the results say nothing;
 *   - largest_free_block stays a size malloc really serves.
 *
 * Registered only in task tracking builds (tests/CMakeLists.txt).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "capheap/check.h" /* capheap_sanitizer_release */
#include "support.h"

#include "heap/heap_private.h"

#if !CAPHEAP_TASK_TRACKING
#error "test_owner is built in task tracking builds only (tests/CMakeLists.txt)"
#endif

#define REGION_BYTES (32u * 1024u)
#define SMALL_BYTES 4096u

/* capheap_heap_malloc_owned with the usable size in *u (the tests' form). */
static void *malloc_owned(multi_heap_handle_t h, size_t n, uint32_t owner, size_t *u)
{
    capheap_made_t m = capheap_heap_malloc_owned(h, n, owner);
    *u = m.usable;
    return m.p;
}

static _Alignas(16) unsigned char region[REGION_BYTES];
static _Alignas(16) unsigned char region_b[SMALL_BYTES];
static _Alignas(16) unsigned char elsewhere[256];
#if !defined(__OPTIMIZE_SIZE__)
static _Alignas(16) unsigned char dst[4096]; /* capheap_heap_move_out's destination (speed builds) */
#endif

typedef struct {
    size_t align;
    bool locked;
} cfg_t;

static const cfg_t configs[] = {{4, false}, {8, false}, {16, false}, {4, true}, {8, true}, {16, true}};
#define NCONFIGS (sizeof configs / sizeof configs[0])

#if CAPHEAP_PORT_HOST
static capheap_lock_t the_lock;
#endif

/* A heap over buf, prefilled with 0xA5 (so a word nobody wrote is not 0). */
static multi_heap_handle_t fresh_in(unsigned char *buf, size_t bytes, const cfg_t *c)
{
    capheap_sanitizer_release(buf, bytes); /* a previous heap here left it poisoned (ASan) */
    memset(buf, 0xA5, bytes);
    capheap_heap_options_t o = {.alignment = c->align};
    multi_heap_handle_t h = capheap_heap_register(buf, bytes, &o);
    assert_non_null(h);
#if CAPHEAP_PORT_HOST
    if (c->locked)
        multi_heap_set_lock(h, &the_lock);
#endif
    return h;
}

static multi_heap_handle_t fresh(const cfg_t *c)
{
    return fresh_in(region, REGION_BYTES, c);
}

/* A distinct, non-zero owner word for each i. */
static uint32_t tag(size_t i)
{
    return 0x7A000001u ^ (uint32_t)(i * 2654435761u);
}

/* p's owner word is owner, and get_owner's size is the allocated size. */
static void assert_owner(multi_heap_handle_t h, void *p, uint32_t owner)
{
    capheap_owned_t o = capheap_heap_get_owner(h, p);
    if (o.owner != owner)
        fail_msg("block %p: owner word 0x%08x, expected 0x%08x", p, (unsigned)o.owner, (unsigned)owner);
    assert_int_equal(o.usable, multi_heap_get_allocated_size(h, p));
}

static void assert_owned(capheap_owned_t o, uint32_t owner, size_t usable)
{
    if (o.owner != owner || o.usable != usable)
        fail_msg("got {0x%08x, %zu}, expected {0x%08x, %zu}", (unsigned)o.owner, o.usable, (unsigned)owner,
                 usable);
}

static void assert_heap_ok(multi_heap_handle_t h)
{
    ct_capture_begin();
    bool ok = multi_heap_check(h, true);
    ct_capture_end();
    if (!ok)
        fail_msg("heap check failed: %s", ct_capture_text());
}

/* ------------------------------------------------------------------ malloc */

static void test_malloc_owned(void **state)
{
    (void)state;
    for (size_t k = 0; k < NCONFIGS; k++) {
        const cfg_t *c = &configs[k];
        multi_heap_handle_t h = fresh(c);
        size_t free0 = multi_heap_free_size(h);
        static const size_t extra[] = {500, 1000, 1021, 4000, 9999};
        for (size_t i = 0; i < 160 + sizeof extra / sizeof extra[0]; i++) {
            size_t n = i < 160 ? i + 1 : extra[i - 160];
            size_t u = 12345;
            void *p = malloc_owned(h, n, tag(i), &u);
            assert_non_null(p);
            assert_int_equal((uintptr_t)p % c->align, 0);
            assert_true(u >= n);
            assert_int_equal(u, multi_heap_get_allocated_size(h, p));
            assert_owner(h, p, tag(i));
            assert_owned(capheap_heap_free_owned(h, p), tag(i), u);
        }
        assert_int_equal(multi_heap_free_size(h), free0);

        size_t u = 7;
        assert_null(malloc_owned(h, 0, 1, &u));
        assert_int_equal(u, 0);
        u = 7;
        assert_null(malloc_owned(h, SIZE_MAX, 1, &u));
        assert_int_equal(u, 0);
        u = 7;
        assert_null(malloc_owned(h, SIZE_MAX - 2, 1, &u));
        assert_int_equal(u, 0);
        u = 7;
        assert_null(malloc_owned(h, REGION_BYTES, 1, &u));
        assert_int_equal(u, 0);

        /* until the heap is full: the failing call says 0, every block keeps its word */
        static void *blocks[REGION_BYTES / 16];
        size_t nb = 0;
        for (;;) {
            u = 7;
            void *p = malloc_owned(h, 40, tag(nb), &u);
            if (p == NULL) {
                assert_int_equal(u, 0);
                break;
            }
            blocks[nb++] = p;
        }
        assert_true(nb > 100);
        for (size_t i = 0; i < nb; i++)
            assert_owner(h, blocks[i], tag(i));
        assert_heap_ok(h);
        for (size_t i = 0; i < nb; i++)
            multi_heap_free(h, blocks[i]);
        assert_int_equal(multi_heap_free_size(h), free0);
    }
}

/* The public API (and the private locked variants) write 0. */
static void test_public_api_writes_zero(void **state)
{
    (void)state;
    for (size_t k = 0; k < NCONFIGS; k++) {
        const cfg_t *c = &configs[k];
        multi_heap_handle_t h = fresh(c);
        static const size_t sizes[] = {1, 13, 100, 1000};
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            void *p = multi_heap_malloc(h, sizes[i]);
            assert_non_null(p);
            assert_owner(h, p, 0);
            /* the same block again after its word was set and it was freed: written, not left */
            assert_owned(capheap_heap_swap_owner(h, p, tag(i)), 0, multi_heap_get_allocated_size(h, p));
            multi_heap_free(h, p);
            void *q = multi_heap_malloc(h, sizes[i]);
            assert_ptr_equal(q, p);
            assert_owner(h, q, 0);
        }
        for (size_t al = 4; al <= 1024; al *= 2) {
            void *p = multi_heap_aligned_alloc(h, 40, al);
            assert_non_null(p);
            assert_int_equal((uintptr_t)p % al, 0);
            assert_owner(h, p, 0);
            void *q = multi_heap_aligned_alloc_offs(h, 72, al, 32); /* an offset every heap alignment divides */
            assert_non_null(q);
            assert_int_equal(((uintptr_t)q + 32) % al, 0);
            assert_owner(h, q, 0);
            /* aligned blocks take words like any other */
            size_t u = multi_heap_get_allocated_size(h, p);
            assert_owned(capheap_heap_swap_owner(h, p, tag(al)), 0, u);
            assert_owned(capheap_heap_free_owned(h, p), tag(al), u);
        }
        assert_heap_ok(h);
    }
}

/* Aligned blocks: words, sizes, realloc and free like other blocks. */
static void test_aligned_blocks(void **state)
{
    (void)state;
    for (size_t k = 0; k < NCONFIGS; k++) {
        const cfg_t *c = &configs[k];
        multi_heap_handle_t h = fresh(c);
        size_t free0 = multi_heap_free_size(h);
        for (size_t al = 4; al <= 1024; al *= 2) {
            void *p = multi_heap_aligned_alloc(h, 40 + al / 8, al);
            assert_non_null(p);
            size_t u = multi_heap_get_allocated_size(h, p);
            assert_owned(capheap_heap_swap_owner(h, p, tag(al)), 0, u);
            assert_owner(h, p, tag(al));
            size_t nu = 0;
            capheap_owned_t old = {1, 1};
            void *q = capheap_heap_realloc_owned(h, p, 300, tag(al + 1), &nu, &old);
            assert_non_null(q);
            assert_owned(old, tag(al), u);
            assert_int_equal(nu, multi_heap_get_allocated_size(h, q));
            assert_owner(h, q, tag(al + 1));
            assert_owned(capheap_heap_free_owned(h, q), tag(al + 1), nu);
        }
        assert_int_equal(multi_heap_free_size(h), free0);
        assert_heap_ok(h);
    }
}

/* ------------------------------------------------------------------ the user's bytes */

/* Writing every byte the user owns never touches the word. With poisoning
 * the bytes past the request belong to the tail canary's padding, so the
 * sizes written there are those whose usable size is the request. */
static void test_user_writes_keep_owner(void **state)
{
    (void)state;
    for (size_t k = 0; k < NCONFIGS; k++) {
        const cfg_t *c = &configs[k];
        multi_heap_handle_t h = fresh(c);
        for (size_t n = 1; n <= 300; n++) {
            size_t u = 0;
            unsigned char *p = malloc_owned(h, n, tag(n), &u);
            assert_non_null(p);
            assert_int_equal(multi_heap_get_allocated_size(h, p), u); /* makes them the caller's (ASan) */
            size_t w = CT_POISONING ? n : u;
            if (CT_POISONING && u != n) {
                multi_heap_free(h, p);
                continue;
            }
            memset(p, 0xFF, w);
            assert_owner(h, p, tag(n));
            memset(p, 0x00, w);
            assert_owner(h, p, tag(n));
            assert_true(multi_heap_check(h, false));
            assert_owned(capheap_heap_free_owned(h, p), tag(n), u);
        }
        assert_heap_ok(h);
    }
}

/* ------------------------------------------------------------------ realloc */

static void test_realloc_owned(void **state)
{
    (void)state;
    for (size_t k = 0; k < NCONFIGS; k++) {
        const cfg_t *c = &configs[k];
        multi_heap_handle_t h = fresh(c);
        size_t free0 = multi_heap_free_size(h);
        size_t ua, ub, uc;
        unsigned char *a = malloc_owned(h, 40, tag(1), &ua);
        void *b = malloc_owned(h, 200, tag(2), &ub);
        void *g = malloc_owned(h, 40, tag(3), &uc); /* keeps the rest of the heap away */
        assert_non_null(a);
        assert_non_null(b);
        assert_non_null(g);
        uint32_t token = ct_token(a);
        ct_stamp(a, 40);
        assert_owned(capheap_heap_free_owned(h, b), tag(2), ub);

        /* grow in place, into b's space */
        size_t u = 0;
        capheap_owned_t old = {0, 0};
        unsigned char *q = capheap_heap_realloc_owned(h, a, 120, tag(4), &u, &old);
        assert_ptr_equal(q, a);
        assert_owned(old, tag(1), ua);
        assert_int_equal(u, multi_heap_get_allocated_size(h, q));
        assert_true(u >= 120);
        assert_owner(h, q, tag(4));
        assert_true(ct_stamp_ok_token(q, 40, token));

        /* shrink in place */
        size_t u2 = 0;
        capheap_owned_t old2 = {0, 0};
        unsigned char *q2 = capheap_heap_realloc_owned(h, q, 16, tag(5), &u2, &old2);
        assert_ptr_equal(q2, q);
        assert_owned(old2, tag(4), u);
        assert_int_equal(u2, multi_heap_get_allocated_size(h, q2));
        assert_owner(h, q2, tag(5));
        assert_true(ct_stamp_ok_token(q2, 16, token));

        /* moved: more than fits in front of g */
        size_t u3 = 0;
        capheap_owned_t old3 = {0, 0};
        unsigned char *q3 = capheap_heap_realloc_owned(h, q2, 2000, tag(6), &u3, &old3);
        assert_non_null(q3);
        assert_true(q3 != q2);
        assert_owned(old3, tag(5), u2);
        assert_int_equal(u3, multi_heap_get_allocated_size(h, q3));
        assert_owner(h, q3, tag(6));
        assert_true(ct_stamp_ok_token(q3, 16, token));
        assert_owner(h, g, tag(3));

        /* failing: NULL, {0, 0}, 0, the block as it was */
        static const size_t too_big[] = {REGION_BYTES, REGION_BYTES * 4, SIZE_MAX, SIZE_MAX - 3};
        for (size_t i = 0; i < sizeof too_big / sizeof too_big[0]; i++) {
            size_t u4 = 7;
            capheap_owned_t old4 = {7, 7};
            assert_null(capheap_heap_realloc_owned(h, q3, too_big[i], tag(7), &u4, &old4));
            assert_int_equal(u4, 0);
            assert_owned(old4, 0, 0);
            assert_owner(h, q3, tag(6));
            assert_true(ct_stamp_ok_token(q3, 16, token));
        }
        /* size 0 is not a resize: it fails the same way */
        {
            size_t u4 = 7;
            capheap_owned_t old4 = {7, 7};
            assert_null(capheap_heap_realloc_owned(h, q3, 0, tag(7), &u4, &old4));
            assert_int_equal(u4, 0);
            assert_owned(old4, 0, 0);
            assert_owner(h, q3, tag(6));
        }
        assert_owned(capheap_heap_free_owned(h, q3), tag(6), u3);
        multi_heap_free(h, g);
        assert_int_equal(multi_heap_free_size(h), free0);
        assert_heap_ok(h);
    }
}

/* multi_heap_realloc (and the private locked variant) carry the word while
 * the block's usable size stays what its owner was charged, and write 0 (no
 * owner) once it changes: the tracker hears nothing of these reallocs, and
 * a free that credited the new size against the old charge once drove a
 * task's usage below 0 (an audit found it). */
static void test_public_realloc_carries(void **state)
{
    (void)state;
    for (size_t k = 0; k < NCONFIGS; k++) {
        const cfg_t *c = &configs[k];
        for (int variant = 0; variant < 2; variant++) {
#if defined(__OPTIMIZE_SIZE__)
            if (variant == 1)
                continue; /* no locked variant in size-optimised builds */
#else
            if (variant == 1 && !c->locked)
                continue; /* heap_caps' fast paths: heaps with a lock */
#endif
            multi_heap_handle_t h = fresh(c);
            size_t free0 = multi_heap_free_size(h);
            size_t u;
            void *x = malloc_owned(h, 64, tag(10), &u);
            void *y = multi_heap_malloc(h, 64); /* x's successor: x cannot grow in place */
            void *z = malloc_owned(h, 64, tag(11), &u);
            void *w = multi_heap_malloc(h, 64);
            assert_non_null(w);
            multi_heap_free(h, z); /* w's predecessor is free: w can grow... */
            /* the same usable size (x stays, its owner kept), then sizes that
             * change it: moved (y follows x), shrunk in place twice */
            void *r[5] = {x, NULL, NULL, NULL, NULL};
            size_t sizes[5] = {0, u, 1000, 30, 8};
            for (int step = 1; step < 5; step++) {
#if !defined(__OPTIMIZE_SIZE__)
                if (variant == 1)
                    r[step] = capheap_heap_realloc_locked(h, r[step - 1], sizes[step]);
                else
#endif
                    r[step] = multi_heap_realloc(h, r[step - 1], sizes[step]);
                assert_non_null(r[step]);
                assert_owner(h, r[step], step == 1 ? tag(10) : 0);
            }
            assert_ptr_equal(r[1], x);    /* the same usable size: in place, owner kept */
            assert_true(r[2] != x);       /* moved (y follows x) */
            assert_ptr_equal(r[3], r[2]); /* shrunk in place */
            assert_ptr_equal(r[4], r[2]);
            /* grow in place into a free successor: w after its free predecessor's space */
            assert_owned(capheap_heap_swap_owner(h, w, tag(12)), 0, multi_heap_get_allocated_size(h, w));
            size_t uw = multi_heap_get_allocated_size(h, w);
            void *w1 = multi_heap_realloc(h, w, uw); /* the same usable size: carried */
            assert_ptr_equal(w1, w);
            assert_owner(h, w1, tag(12));
            void *w2 = multi_heap_realloc(h, w1, 20);
            assert_ptr_equal(w2, w);
            assert_owner(h, w2, 0);
            void *w3 = multi_heap_realloc(h, w2, 600);
            assert_non_null(w3);
            assert_owner(h, w3, 0);
            multi_heap_free(h, r[4]);
            multi_heap_free(h, y);
            multi_heap_free(h, w3);
            assert_int_equal(multi_heap_free_size(h), free0);
            assert_heap_ok(h);
        }
#if !defined(__OPTIMIZE_SIZE__)
        if (c->locked) { /* heap_caps' two-half malloc writes 0 too */
            multi_heap_handle_t h = fresh(c);
            uint32_t fit = capheap_heap_fit(h, 24);
            assert_int_not_equal(fit, 0);
            void *p = capheap_heap_malloc_fit(h, 24, fit);
            assert_non_null(p);
            assert_owner(h, p, 0);
            capheap_heap_free_locked(h, p);
        }
#endif
    }
}

/* ------------------------------------------------------------------ free */

static void test_free_owned(void **state)
{
    (void)state;
    for (size_t k = 0; k < NCONFIGS; k++) {
        const cfg_t *c = &configs[k];
        multi_heap_handle_t h = fresh(c);
        size_t free0 = multi_heap_free_size(h);
        enum { N = 10 };
        void *p[N];
        size_t u[N];
        for (size_t i = 0; i < N; i++) {
            p[i] = malloc_owned(h, 24 + 40 * i, tag(i), &u[i]);
            assert_non_null(p[i]);
        }
        /* 2: both neighbours used; 3: predecessor free; 5, then 4: both free; 9: successor free
         * (the rest of the heap); 0: the first block; the rest in between */
        static const size_t order[N] = {2, 3, 5, 4, 9, 0, 7, 8, 6, 1};
        for (size_t j = 0; j < N; j++) {
            size_t i = order[j];
            assert_owned(capheap_heap_free_owned(h, p[i]), tag(i), u[i]);
            assert_true(multi_heap_check(h, false));
        }
        assert_int_equal(multi_heap_free_size(h), free0);
        assert_owned(capheap_heap_free_owned(h, NULL), 0, 0);
        assert_heap_ok(h);
    }
}

/* ------------------------------------------------------------------ get, swap */

static capheap_owned_t g_res; /* written inside CT_CATCH_ABORT: not a local (longjmp) */

/* get and swap answer {0, 0} for bad, report nothing and change nothing
 * (and the heap passes its check, unless check_heap is false: a block with
 * bad canaries fails it). */
static void assert_quiet_miss_as(multi_heap_handle_t h, void *bad, bool check_heap)
{
    size_t free_before = multi_heap_free_size(h);
    for (int swap = 0; swap < 2; swap++) {
        bool aborted;
        capheap_clear_last_report();
        g_res.owner = 1;
        g_res.usable = 1;
        ct_capture_begin();
        if (swap)
            CT_CATCH_ABORT(aborted, g_res = capheap_heap_swap_owner(h, bad, 0xBADu));
        else
            CT_CATCH_ABORT(aborted, g_res = capheap_heap_get_owner(h, bad));
        ct_capture_end();
        if (aborted)
            fail_msg("%s(%p) aborted: %s", swap ? "swap" : "get", bad, ct_abort_reason());
        assert_owned(g_res, 0, 0);
        assert_null(capheap_last_report().what);
        assert_int_equal(ct_capture_len(), 0);
    }
    assert_int_equal(multi_heap_free_size(h), free_before);
    if (check_heap)
        assert_heap_ok(h);
}

static void assert_quiet_miss(multi_heap_handle_t h, void *bad)
{
    assert_quiet_miss_as(h, bad, true);
}

static void test_get_swap(void **state)
{
    (void)state;
    for (size_t k = 0; k < NCONFIGS; k++) {
        const cfg_t *c = &configs[k];
        multi_heap_handle_t h = fresh(c);
        multi_heap_handle_t hb = fresh_in(region_b, SMALL_BYTES, c);
        size_t u;
        unsigned char *p = malloc_owned(h, 50, tag(1), &u);
        assert_non_null(p);
        memset(p, 0, 50); /* zero data forges no header for the interior pointers below */
        assert_owned(capheap_heap_get_owner(h, p), tag(1), u);
        assert_owned(capheap_heap_swap_owner(h, p, tag(2)), tag(1), u);
        assert_owned(capheap_heap_get_owner(h, p), tag(2), u);
        assert_owned(capheap_heap_swap_owner(h, p, 0), tag(2), u);
        assert_owned(capheap_heap_get_owner(h, p), 0, u);
        assert_owned(capheap_heap_swap_owner(h, p, UINT32_MAX), 0, u);
        assert_owner(h, p, UINT32_MAX);

        void *freed = malloc_owned(h, 30, tag(3), &u);
        void *guard = multi_heap_malloc(h, 30);
        assert_non_null(guard);
        multi_heap_free(h, freed);
        void *other = multi_heap_malloc(hb, 30);
        assert_non_null(other);

        assert_owned(capheap_heap_get_owner(h, NULL), 0, 0);
        assert_owned(capheap_heap_get_owner(NULL, p), 0, 0);
        assert_quiet_miss(h, elsewhere + 16);   /* foreign */
        assert_quiet_miss(h, other);            /* another heap's block */
        assert_quiet_miss(h, p + 4);            /* interior */
        assert_quiet_miss(h, p + 16);           /* interior */
        assert_quiet_miss(h, p + 1);            /* misaligned */
        assert_quiet_miss(h, freed);            /* freed */
        assert_quiet_miss(h, (unsigned char *)h + 8); /* the control structure */
        assert_owner(h, p, UINT32_MAX);         /* the misses swapped nothing */

#if CT_POISONING
        /* bad canaries: a miss too, until they are repaired */
        unsigned char *head = p - ct_poison_head(c->align);
        uint32_t saved = ct_get32(head);
        ct_put32(head, 0);
        assert_quiet_miss_as(h, p, false);
        ct_put32(head, saved);
        unsigned char *tail = p + 50;
        saved = ct_get32(tail);
        ct_put32(tail, saved ^ 1u);
        assert_quiet_miss_as(h, p, false);
        ct_put32(tail, saved);
        assert_owner(h, p, UINT32_MAX);
#endif
        multi_heap_free(h, p);
        multi_heap_free(h, guard);
        multi_heap_free(hb, other);
    }
}

/* ------------------------------------------------------------------ walks */

typedef struct {
    void *p;
    size_t usable;
    uint32_t owner;
} seen_t;

typedef struct {
    seen_t seen[512];
    size_t n;
    size_t stop_after; /* 0: never */
} walk_log_t;

static bool log_owner(void *p, size_t usable, uint32_t owner, void *ctx)
{
    walk_log_t *w = ctx;
    if (w->n < sizeof w->seen / sizeof w->seen[0])
        w->seen[w->n] = (seen_t){p, usable, owner};
    w->n++;
    return w->stop_after == 0 || w->n < w->stop_after;
}

static void test_walk_owners(void **state)
{
    (void)state;
    for (size_t k = 0; k < NCONFIGS; k++) {
        const cfg_t *c = &configs[k];
        multi_heap_handle_t h = fresh(c);
        enum { N = 60 };
        static void *p[N];
        static uint32_t owner[N];
        size_t live = 0;
        for (size_t i = 0; i < N; i++) {
            size_t u;
            if (i % 5 == 4) {
                p[i] = multi_heap_aligned_alloc(h, 8 + 7 * i, 64);
                owner[i] = 0;
            } else if (i % 5 == 3) {
                p[i] = multi_heap_malloc(h, 8 + 7 * i);
                owner[i] = 0;
            } else {
                p[i] = malloc_owned(h, 8 + 7 * i, tag(i), &u);
                owner[i] = tag(i);
            }
            assert_non_null(p[i]);
        }
        for (size_t i = 0; i < N; i += 3) {
            multi_heap_free(h, p[i]);
            p[i] = NULL;
        }
        for (size_t i = 0; i < N; i++)
            live += p[i] != NULL;

        static walk_log_t w;
        memset(&w, 0, sizeof w);
        capheap_heap_walk_owners(h, log_owner, &w);
        assert_int_equal(w.n, live);
        for (size_t j = 0; j < w.n; j++) {
            if (j > 0)
                assert_true((uintptr_t)w.seen[j].p > (uintptr_t)w.seen[j - 1].p); /* address order */
            size_t i = 0;
            while (i < N && p[i] != w.seen[j].p)
                i++;
            if (i == N)
                fail_msg("walk_owners reported %p, not a live block", w.seen[j].p);
            assert_int_equal(w.seen[j].owner, owner[i]);
            assert_int_equal(w.seen[j].usable, multi_heap_get_allocated_size(h, p[i]));
        }
        /* stop on false */
        memset(&w, 0, sizeof w);
        w.stop_after = 5;
        capheap_heap_walk_owners(h, log_owner, &w);
        assert_int_equal(w.n, 5);
        memset(&w, 0, sizeof w);
        w.stop_after = 1;
        capheap_heap_walk_owners(h, log_owner, &w);
        assert_int_equal(w.n, 1);
        capheap_heap_walk_owners(h, NULL, NULL);
        capheap_heap_walk_owners(NULL, log_owner, &w);
        assert_int_equal(w.n, 1);
        assert_heap_ok(h);
    }
}

/* capheap_block_owner on what multi_heap_walk reports, inside the walk (under
 * the heap's lock) and after it. */
typedef struct {
    void *block[512];
    size_t size[512];
    uint32_t inside[512];
    size_t n;
} blocks_log_t;

static bool log_block(void *block, size_t size, int used, void *user)
{
    blocks_log_t *b = user;
    if (used && b->n < 512) {
        b->block[b->n] = block;
        b->size[b->n] = size;
        b->inside[b->n] = capheap_block_owner(block, size);
        b->n++;
    }
    return true;
}

static void test_block_owner(void **state)
{
    (void)state;
    for (size_t k = 0; k < NCONFIGS; k++) {
        const cfg_t *c = &configs[k];
        multi_heap_handle_t h = fresh(c);
        enum { N = 40 };
        void *p[N];
        for (size_t i = 0; i < N; i++) {
            size_t u;
            p[i] = malloc_owned(h, 1 + 13 * i, tag(i), &u);
            assert_non_null(p[i]);
        }
        for (size_t i = 1; i < N; i += 4)
            multi_heap_free(h, p[i]);
        static blocks_log_t b;
        memset(&b, 0, sizeof b);
        multi_heap_walk(h, log_block, &b);
        size_t found = 0;
        for (size_t j = 0; j < b.n; j++) {
            void *user = (unsigned char *)b.block[j] + capheap_heap_user_offset(h);
            assert_int_equal(capheap_heap_user_offset(h), ct_poison_head(c->align));
            size_t i = 0;
            while (i < N && p[i] != user)
                i++;
            assert_true(i < N);
            assert_true(i % 4 != 1);
            found++;
            assert_int_equal(b.inside[j], tag(i));
            assert_int_equal(capheap_block_owner(b.block[j], b.size[j]), tag(i));
            assert_int_equal(b.size[j], multi_heap_get_full_block_size(h, user));
        }
        assert_int_equal(found, N - N / 4);
        assert_int_equal(capheap_block_owner(NULL, 16), 0);
        for (size_t i = 0; i < N; i++)
            if (i % 4 != 1)
                multi_heap_free(h, p[i]);
    }
}

/* ------------------------------------------------------------------ rejected pointers */

static void *g_ptr;

/* Run op (0 free_owned, 1 multi_heap_free, 2 realloc_owned, 3 multi_heap_realloc,
 * 4 move_out) on bad, which must be reported and abort; return the report. */
static capheap_report_t expect_report(multi_heap_handle_t h, void *bad, int op)
{
    static size_t u;
    static capheap_owned_t old;
    bool aborted;
    capheap_clear_last_report();
    ct_capture_begin();
    switch (op) {
    case 0:
        CT_CATCH_ABORT(aborted, g_res = capheap_heap_free_owned(h, bad));
        break;
    case 1:
        CT_CATCH_ABORT(aborted, multi_heap_free(h, bad));
        break;
    case 2:
        CT_CATCH_ABORT(aborted, g_ptr = capheap_heap_realloc_owned(h, bad, 64, 1, &u, &old));
        break;
    case 3:
        CT_CATCH_ABORT(aborted, g_ptr = multi_heap_realloc(h, bad, 64));
        break;
#if !defined(__OPTIMIZE_SIZE__)
    default:
        CT_CATCH_ABORT(aborted, g_res = capheap_heap_move_out(h, bad, dst, 16));
        break;
#else
    default:
        aborted = false;
        fail_msg("no move_out in size-optimised builds");
#endif
    }
    ct_capture_end();
    if (!aborted)
        fail_msg("op %d on %p was not reported", op, bad);
    assert_true(ct_capture_contains("CORRUPT HEAP: "));
    capheap_report_t r = capheap_last_report();
    assert_non_null(r.what);
    return r;
}

static void assert_same_report(const capheap_report_t *a, const capheap_report_t *b)
{
    if (strcmp(a->what, b->what) != 0 || a->address != b->address || a->expected != b->expected ||
        a->found != b->found || a->invariant != b->invariant)
        fail_msg("reports differ: \"%s\" at %p (0x%x, 0x%x, I%u) vs \"%s\" at %p (0x%x, 0x%x, I%u)", a->what,
                 a->address, (unsigned)a->expected, (unsigned)a->found, a->invariant, b->what, b->address,
                 (unsigned)b->expected, (unsigned)b->found, b->invariant);
}

static unsigned g_returned;

static void returning_handler(const char *reason)
{
    (void)reason;
    g_returned++; /* returns: capheap goes on as the brief of each function says */
}

static void test_rejected_pointers(void **state)
{
    (void)state;
    for (size_t k = 0; k < NCONFIGS; k++) {
        const cfg_t *c = &configs[k];
        multi_heap_handle_t h = fresh(c);
        multi_heap_handle_t hb = fresh_in(region_b, SMALL_BYTES, c);
        size_t u;
        unsigned char *p = malloc_owned(h, 48, tag(1), &u);
        void *freed = malloc_owned(h, 48, tag(2), &u);
        void *guard = multi_heap_malloc(h, 48);
        void *other = multi_heap_malloc(hb, 48);
        assert_non_null(p);
        assert_non_null(freed);
        assert_non_null(guard);
        assert_non_null(other);
        memset(p, 0, 48);
        assert_owned(capheap_heap_free_owned(h, freed), tag(2), u);
        size_t free_before = multi_heap_free_size(h);

        void *bad[] = {freed, p + 8, p + 2, elsewhere + 16, other};
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            capheap_report_t want = expect_report(h, bad[i], 1);
            capheap_report_t got = expect_report(h, bad[i], 0);
            assert_same_report(&got, &want);
            want = expect_report(h, bad[i], 3);
            got = expect_report(h, bad[i], 2);
            assert_same_report(&got, &want);
#if !defined(__OPTIMIZE_SIZE__)
            want = expect_report(h, bad[i], 1);
            got = expect_report(h, bad[i], 4);
            assert_same_report(&got, &want);
#endif
            assert_int_equal(multi_heap_free_size(h), free_before);
            assert_heap_ok(h);
            assert_owner(h, p, tag(1));
        }

        /* an abort handler that returns: the results say nothing */
        capheap_abort_fn prev = capheap_set_abort_handler(returning_handler);
        ct_capture_begin();
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            unsigned before = g_returned;
            assert_owned(capheap_heap_free_owned(h, bad[i]), 0, 0);
            size_t nu = 7;
            capheap_owned_t old = {7, 7};
            assert_null(capheap_heap_realloc_owned(h, bad[i], 64, 1, &nu, &old));
            assert_int_equal(nu, 0);
            assert_owned(old, 0, 0);
#if !defined(__OPTIMIZE_SIZE__)
            assert_owned(capheap_heap_move_out(h, bad[i], dst, 16), 0, 0);
            assert_int_equal(g_returned, before + 3);
#else
            assert_int_equal(g_returned, before + 2);
#endif
        }
        ct_capture_end();
        (void)capheap_set_abort_handler(prev);
        assert_int_equal(multi_heap_free_size(h), free_before);
        assert_heap_ok(h);

        multi_heap_free(h, p);
        multi_heap_free(h, guard);
        multi_heap_free(hb, other);
    }
}

#if !defined(__OPTIMIZE_SIZE__)
/* heap_caps_realloc's move out: the word and size of the block it frees. */
static void test_move_out(void **state)
{
    (void)state;
    for (size_t k = 0; k < NCONFIGS; k++) {
        const cfg_t *c = &configs[k];
        multi_heap_handle_t h = fresh(c);
        size_t free0 = multi_heap_free_size(h);
        size_t u;
        unsigned char *p = malloc_owned(h, 100, tag(1), &u);
        assert_non_null(p);
        uint32_t token = ct_token(p);
        ct_stamp(p, 100);
        assert_owned(capheap_heap_move_out(h, p, dst, 100), tag(1), u);
        assert_true(ct_stamp_ok_token(dst, 100, token));
        assert_int_equal(multi_heap_free_size(h), free0);
        assert_heap_ok(h);
    }
}
#endif

/* ------------------------------------------------------------------ statistics */

/* largest_free_block and capheap_heap_largest_request are sizes the owned
 * malloc serves, one byte more is not (the owner word counted once). */
static void test_largest_is_served(void **state)
{
    (void)state;
    uint64_t seed = ct_seed("owner.largest");
    for (size_t k = 0; k < NCONFIGS; k++) {
        const cfg_t *c = &configs[k];
        multi_heap_handle_t h = fresh(c);
        ct_rng_t rng;
        ct_rng_init(&rng, seed + k);
        static void *live[64];
        for (int step = 0; step < 400; step++) {
            size_t i = (size_t)ct_rng_below(&rng, 64);
            if (live[i] != NULL) {
                multi_heap_free(h, live[i]);
                live[i] = NULL;
            } else {
                size_t u;
                live[i] = malloc_owned(h, (size_t)ct_rng_range(&rng, 1, 1500), tag(i), &u);
            }
            if (step % 20 != 0)
                continue;
            assert_true(ct_largest_is_honest(h, NULL));
            size_t L = capheap_heap_largest_request(h, c->align);
            if (L > 0) {
                size_t u;
                void *q = malloc_owned(h, L, 9, &u);
                assert_non_null(q);
                multi_heap_free(h, q);
            }
            size_t u;
            void *q = malloc_owned(h, L + 1, 9, &u);
            assert_null(q);
            assert_int_equal(u, 0);
        }
        for (size_t i = 0; i < 64; i++) {
            multi_heap_free(h, live[i]);
            live[i] = NULL;
        }
        assert_heap_ok(h);
    }
}

static int group_setup(void **state)
{
    (void)state;
#if CAPHEAP_PORT_HOST
    return capheap_lock_init(&the_lock);
#else
    return 0;
#endif
}

static int group_teardown(void **state)
{
    (void)state;
#if CAPHEAP_PORT_HOST
    capheap_lock_destroy(&the_lock);
#endif
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_malloc_owned),
        cmocka_unit_test(test_public_api_writes_zero),
        cmocka_unit_test(test_aligned_blocks),
        cmocka_unit_test(test_user_writes_keep_owner),
        cmocka_unit_test(test_realloc_owned),
        cmocka_unit_test(test_public_realloc_carries),
        cmocka_unit_test(test_free_owned),
        cmocka_unit_test(test_get_swap),
        cmocka_unit_test(test_walk_owners),
        cmocka_unit_test(test_block_owner),
        cmocka_unit_test(test_rejected_pointers),
#if !defined(__OPTIMIZE_SIZE__)
        cmocka_unit_test(test_move_out),
#endif
        cmocka_unit_test(test_largest_is_served),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
