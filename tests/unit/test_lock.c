/*
 * test_lock.c - multi_heap_set_lock() with the host port's capheap_lock_t:
 * the lock is recursive, every block-touching call takes it (a call from
 * another thread waits while the test holds it), NULL detaches it, and two
 * threads sharing one locked heap never corrupt it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "support.h"

#if CAPHEAP_PORT_HOST
#include <errno.h>
#include <pthread.h>
#endif

#define REGION_BYTES (64u * 1024u)
static _Alignas(16) unsigned char region[REGION_BYTES];

static multi_heap_handle_t fresh(void)
{
    multi_heap_handle_t h = multi_heap_register(region, REGION_BYTES);
    assert_non_null(h);
    return h;
}

#if CAPHEAP_PORT_HOST

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

static void test_lock_init_and_recursion(void **state)
{
    (void)state;
    capheap_lock_t lock;
    assert_int_equal(capheap_lock_init(&lock), 0);
    capheap_port_lock_acquire(&lock);
    capheap_port_lock_acquire(&lock); /* recursive: no deadlock */
    capheap_port_lock_acquire(&lock);
    capheap_port_lock_release(&lock);
    capheap_port_lock_release(&lock);
    capheap_port_lock_release(&lock);
    /* Fully released: a plain trylock succeeds. */
    assert_int_equal(pthread_mutex_trylock(&lock.mutex), 0);
    pthread_mutex_unlock(&lock.mutex);
    capheap_lock_destroy(&lock);
}

struct trylock_arg {
    capheap_lock_t *lock;
    int result;
};

static void *trylock_thread(void *p)
{
    struct trylock_arg *a = p;
    a->result = pthread_mutex_trylock(&a->lock->mutex);
    if (a->result == 0) {
        pthread_mutex_unlock(&a->lock->mutex);
    }
    return NULL;
}

/* While one thread holds the lock (twice), another cannot take it. */
static void test_lock_excludes_other_threads(void **state)
{
    (void)state;
    capheap_lock_t lock;
    assert_int_equal(capheap_lock_init(&lock), 0);
    capheap_port_lock_acquire(&lock);
    capheap_port_lock_acquire(&lock);
    capheap_port_lock_release(&lock);
    struct trylock_arg a = {&lock, -1};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, trylock_thread, &a), 0);
    pthread_join(t, NULL);
    assert_int_equal(a.result, EBUSY);
    capheap_port_lock_release(&lock);
    a.result = -1;
    assert_int_equal(pthread_create(&t, NULL, trylock_thread, &a), 0);
    pthread_join(t, NULL);
    assert_int_equal(a.result, 0);
    capheap_lock_destroy(&lock);
}

/* ---- "every call takes the lock": run one call in a thread while we hold it ---- */

enum op { OP_MALLOC, OP_FREE, OP_REALLOC, OP_ALIGNED, OP_ALIGNED_OFFS, OP_INFO, OP_CHECK,
          OP_WALK, OP_DUMP, OP_FIND, OP_COUNT };
static const char *const op_names[OP_COUNT] = {"malloc", "free", "realloc", "aligned_alloc",
                                                "aligned_alloc_offs", "get_info", "check",
                                                "walk", "dump", "find_containing_block"};

struct op_arg {
    multi_heap_handle_t h;
    enum op op;
    void *block;
    atomic_int done;
};

static bool count_cb(void *b, size_t s, int u, void *user)
{
    (void)b;
    (void)s;
    (void)u;
    (*(size_t *)user)++;
    return true;
}

static void silent_writer(const char *t, size_t n)
{
    (void)t;
    (void)n;
}

static void *op_thread(void *p)
{
    struct op_arg *a = p;
    multi_heap_info_t info;
    size_t n = 0;
    switch (a->op) {
    case OP_MALLOC: a->block = multi_heap_malloc(a->h, 40); break;
    case OP_FREE: multi_heap_free(a->h, a->block); break;
    case OP_REALLOC: a->block = multi_heap_realloc(a->h, a->block, 400); break;
    case OP_ALIGNED: a->block = multi_heap_aligned_alloc(a->h, 40, 64); break;
    case OP_ALIGNED_OFFS: a->block = multi_heap_aligned_alloc_offs(a->h, 40, 64, 8); break;
    case OP_INFO: multi_heap_get_info(a->h, &info); break;
    case OP_CHECK: (void)multi_heap_check(a->h, false); break;
    case OP_WALK: multi_heap_walk(a->h, count_cb, &n); break;
    case OP_DUMP: multi_heap_dump(a->h); break;
    case OP_FIND: (void)multi_heap_find_containing_block(a->h, a->block); break;
    default: break;
    }
    atomic_store(&a->done, 1);
    return NULL;
}

static void test_every_call_takes_the_lock(void **state)
{
    (void)state;
    multi_heap_handle_t h = fresh();
    capheap_lock_t lock;
    assert_int_equal(capheap_lock_init(&lock), 0);
    multi_heap_set_lock(h, &lock);
    capheap_write_fn old = capheap_set_writer(silent_writer);
    for (int op = 0; op < OP_COUNT; op++) {
        struct op_arg a = {.h = h, .op = (enum op)op, .block = multi_heap_malloc(h, 24)};
        atomic_init(&a.done, 0);
        capheap_port_lock_acquire(&lock);
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, op_thread, &a), 0);
        sleep_ms(40);
        if (atomic_load(&a.done)) {
            capheap_port_lock_release(&lock);
            pthread_join(t, NULL);
            fail_msg("multi_heap %s ran while another thread held the heap's lock", op_names[op]);
        }
        capheap_port_lock_release(&lock);
        pthread_join(t, NULL);
        assert_int_equal(atomic_load(&a.done), 1);
        if (op != OP_FREE) {
            multi_heap_free(h, a.block);
        }
    }
    capheap_set_writer(old);
    assert_true(multi_heap_check(h, false));
    multi_heap_set_lock(h, NULL);
    capheap_lock_destroy(&lock);
}

/* set_lock(h, NULL) detaches: calls no longer wait for our lock. */
static void test_set_lock_null_detaches(void **state)
{
    (void)state;
    multi_heap_handle_t h = fresh();
    capheap_lock_t lock;
    assert_int_equal(capheap_lock_init(&lock), 0);
    multi_heap_set_lock(h, &lock);
    multi_heap_set_lock(h, NULL);
    capheap_port_lock_acquire(&lock);
    struct op_arg a = {.h = h, .op = OP_MALLOC};
    atomic_init(&a.done, 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, op_thread, &a), 0);
    pthread_join(t, NULL); /* would hang if the heap still used the lock */
    capheap_port_lock_release(&lock);
    assert_int_equal(atomic_load(&a.done), 1);
    assert_non_null(a.block);
    multi_heap_free(h, a.block);
    capheap_lock_destroy(&lock);
}

/* Recursion: heap calls made while the same thread already holds the lock. */
static bool nested_cb(void *b, size_t s, int u, void *user)
{
    (void)b;
    (void)s;
    (void)u;
    multi_heap_handle_t h = user;
    multi_heap_info_t info;
    multi_heap_get_info(h, &info); /* takes the lock again inside walk */
    assert_true(info.total_blocks > 0);
    return true;
}

static void test_recursive_use(void **state)
{
    (void)state;
    multi_heap_handle_t h = fresh();
    capheap_lock_t lock;
    assert_int_equal(capheap_lock_init(&lock), 0);
    multi_heap_set_lock(h, &lock);
    capheap_port_lock_acquire(&lock);
    void *p = multi_heap_malloc(h, 100);
    assert_non_null(p);
    p = multi_heap_realloc(h, p, 300);
    assert_non_null(p);
    assert_true(multi_heap_check(h, false));
    multi_heap_walk(h, nested_cb, h);
    multi_heap_free(h, p);
    capheap_port_lock_release(&lock);
    /* Released exactly as often as taken: another thread can lock it now. */
    struct trylock_arg a = {&lock, -1};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, trylock_thread, &a), 0);
    pthread_join(t, NULL);
    assert_int_equal(a.result, 0);
    multi_heap_set_lock(h, NULL);
    capheap_lock_destroy(&lock);
}

/* Two threads hammer one locked heap; blocks stay stamped; the heap stays whole. */
struct stress_arg {
    multi_heap_handle_t h;
    uint64_t seed;
    int failures;
};

static void *stress_thread(void *p)
{
    enum { SLOTS = 48, OPS = 20000 };
    struct stress_arg *a = p;
    void *blk[SLOTS] = {0};
    size_t len[SLOTS] = {0};
    ct_rng_t rng;
    ct_rng_init(&rng, a->seed);
    for (int op = 0; op < OPS; op++) {
        size_t i = (size_t)ct_rng_below(&rng, SLOTS);
        if (blk[i]) {
            if (!ct_stamp_ok(blk[i], len[i])) {
                a->failures++;
            }
            if (ct_rng_below(&rng, 4) == 0) {
                size_t n = (size_t)ct_rng_range(&rng, 1, 500);
                uint32_t tok = ct_token(blk[i]);
                void *q = multi_heap_realloc(a->h, blk[i], n);
                if (q) {
                    if (!ct_stamp_ok_token(q, len[i] < n ? len[i] : n, tok)) {
                        a->failures++;
                    }
                    blk[i] = q;
                    len[i] = n;
                    ct_stamp(q, n);
                }
            } else {
                multi_heap_free(a->h, blk[i]);
                blk[i] = NULL;
            }
        } else {
            len[i] = (size_t)ct_rng_range(&rng, 1, 500);
            blk[i] = (ct_rng_below(&rng, 8) == 0)
                         ? multi_heap_aligned_alloc(a->h, len[i], 64)
                         : multi_heap_malloc(a->h, len[i]);
            if (blk[i]) {
                ct_stamp(blk[i], len[i]);
            }
        }
    }
    for (size_t i = 0; i < SLOTS; i++) {
        if (blk[i] && !ct_stamp_ok(blk[i], len[i])) {
            a->failures++;
        }
        multi_heap_free(a->h, blk[i]);
    }
    return NULL;
}

static void test_two_threads(void **state)
{
    (void)state;
    multi_heap_handle_t h = fresh();
    size_t empty = multi_heap_free_size(h);
    capheap_lock_t lock;
    assert_int_equal(capheap_lock_init(&lock), 0);
    multi_heap_set_lock(h, &lock);
    uint64_t seed = ct_seed("lock.two_threads");
    struct stress_arg a = {h, seed, 0}, b = {h, seed ^ 0x9e3779b97f4a7c15ull, 0};
    pthread_t ta, tb;
    assert_int_equal(pthread_create(&ta, NULL, stress_thread, &a), 0);
    assert_int_equal(pthread_create(&tb, NULL, stress_thread, &b), 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    assert_int_equal(a.failures, 0);
    assert_int_equal(b.failures, 0);
    assert_true(multi_heap_check(h, false));
    assert_int_equal(multi_heap_free_size(h), empty);
    multi_heap_set_lock(h, NULL);
    capheap_lock_destroy(&lock);
}

/*
 * Reports are per thread: two threads checking two different corrupt heaps
 * at once (and, with poisoning, freeing a block whose tail canary is smashed,
 * which is reported and aborts) each see only their own heap's fault, in the
 * report the abort carries and in capheap_last_report(). The reporter once
 * kept one process-wide copy that every report wrote and free's reject path
 * read back: a data race (ThreadSanitizer flags it; the CI runs this test in
 * its TSan build), and a free could abort naming the other heap's fault.
 */
#define REPORT_REGION 4096u
static _Alignas(16) unsigned char report_region[2][REPORT_REGION];
static _Thread_local jmp_buf report_env;
static _Thread_local const char *report_reason;

struct report_arg {
    multi_heap_handle_t h;
    const unsigned char *lo; /* the heap's region */
    void *smashed;           /* poisoning: a block with a bad tail canary */
    unsigned rounds, failures;
};

static void report_abort(const char *reason)
{
    report_reason = reason;
    longjmp(report_env, 1);
}

static void report_sink(const char *text, size_t len)
{
    (void)text;
    (void)len;
}

static bool report_is_own(const struct report_arg *a, const capheap_report_t *r)
{
    const unsigned char *at = r->address;
    return r->what != NULL && at >= a->lo && at < a->lo + REPORT_REGION;
}

#if CT_POISONING
/* free(a->smashed): true if it was reported, as this heap's fault. */
static bool free_is_reported_as_own(const struct report_arg *a)
{
    report_reason = NULL;
    if (setjmp(report_env) == 0) {
        multi_heap_free(a->h, a->smashed);
        return false; /* not reported */
    }
    capheap_report_t r = capheap_last_report();
    return report_reason != NULL && strcmp(report_reason, "Bad tail") == 0 &&
           strcmp(r.what, "Bad tail") == 0 && report_is_own(a, &r);
}
#endif

static void *report_thread(void *p)
{
    struct report_arg *a = p;
    for (unsigned i = 0; i < a->rounds; i++) {
        capheap_clear_last_report();
        if (multi_heap_check(a->h, false)) {
            a->failures++; /* the corruption was not found */
        }
        capheap_report_t r = capheap_last_report();
        if (!report_is_own(a, &r)) {
            a->failures++;
        }
#if CT_POISONING
        if (!free_is_reported_as_own(a)) {
            a->failures++;
        }
#endif
    }
    return NULL;
}

static void test_reports_are_per_thread(void **state)
{
    (void)state;
    struct report_arg args[2];
    uint32_t saved[2];
    unsigned char *flipped[2];
    for (int k = 0; k < 2; k++) {
        multi_heap_handle_t h = multi_heap_register(report_region[k], REPORT_REGION);
        assert_non_null(h);
        unsigned char *smashed = multi_heap_malloc(h, 10);
        (void)multi_heap_malloc(h, 64);
        unsigned char *b = multi_heap_malloc(h, 64);
        assert_non_null(b);
#if CT_POISONING
        ct_poke8(smashed + 10, (uint8_t)(ct_peek8(smashed + 10) ^ 0xffu)); /* the tail canary */
#endif
        /* and, in every mode, a header the check refuses: "previous block is free" */
        flipped[k] = ct_header_of(b);
        saved[k] = ct_get32(flipped[k]);
        ct_put32(flipped[k], saved[k] ^ 0x2u);
        args[k] = (struct report_arg){h, report_region[k], smashed, 500, 0};
    }
    capheap_abort_fn old_abort = capheap_set_abort_handler(report_abort);
    capheap_write_fn old_writer = capheap_set_writer(report_sink);
    pthread_t t[2];
    for (int k = 0; k < 2; k++) {
        assert_int_equal(pthread_create(&t[k], NULL, report_thread, &args[k]), 0);
    }
    for (int k = 0; k < 2; k++) {
        pthread_join(t[k], NULL);
    }
    capheap_set_writer(old_writer);
    capheap_set_abort_handler(old_abort);
    for (int k = 0; k < 2; k++) {
        assert_int_equal(args[k].failures, 0);
        ct_put32(flipped[k], saved[k]);
#if !CT_POISONING
        assert_true(multi_heap_check(args[k].h, false));
#endif
    }
}

#else /* bare-metal port: the lock hooks are weak no-ops */

static void test_baremetal_lock_is_noop(void **state)
{
    (void)state;
    static int token;
    multi_heap_handle_t h = fresh();
    multi_heap_set_lock(h, &token);
    void *p = multi_heap_malloc(h, 10);
    assert_non_null(p);
    multi_heap_free(h, p);
    assert_true(multi_heap_check(h, false));
    multi_heap_set_lock(h, NULL);
}
#endif

static void test_set_lock_null_heap(void **state)
{
    (void)state;
    static int token;
    multi_heap_set_lock(NULL, &token);
    multi_heap_set_lock(NULL, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#if CAPHEAP_PORT_HOST
        cmocka_unit_test(test_lock_init_and_recursion),
        cmocka_unit_test(test_lock_excludes_other_threads),
        cmocka_unit_test(test_every_call_takes_the_lock),
        cmocka_unit_test(test_set_lock_null_detaches),
        cmocka_unit_test(test_recursive_use),
        cmocka_unit_test(test_two_threads),
        cmocka_unit_test(test_reports_are_per_thread),
#else
        cmocka_unit_test(test_baremetal_lock_is_noop),
#endif
        cmocka_unit_test(test_set_lock_null_heap),
    };
    return cmocka_run_group_tests_name("lock", tests, NULL, NULL);
}
