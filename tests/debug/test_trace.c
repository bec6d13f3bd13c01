/*
 * test_trace.c - standalone heap tracing (esp_heap_trace.h), function by
 * function and transition by transition (spec 1.4 and 4.1), on a simulated
 * ESP32-S3 with 2 MiB of PSRAM so that dump_caps has both kinds of memory.
 *
 * The trace is one global object, so every test starts from "no buffer"
 * (trace_reset) and tests run in order. Each test also states the ESP-IDF
 * defect it checks is fixed, where there is one.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>

#include "capheap/caps.h"
#include "capheap/chip.h"
#include "capheap/port.h"
#include "capheap/report.h"
#include "capheap/sim.h"
#include "esp_heap_caps.h"
#include "esp_heap_trace.h"
#include "esp_memory_utils.h"
#include "support.h"

#define DEPTH CONFIG_HEAP_TRACING_STACK_DEPTH
#define CAP 64

static heap_trace_record_t records[CAP];

/* Stop whatever is running and take the buffer back. */
static void trace_reset(void)
{
    (void)heap_trace_stop();
    assert_int_equal(heap_trace_init_standalone(NULL, 0), ESP_OK);
}

/* A fresh trace of capacity records in this file's buffer, started in mode. */
static void trace_begin(size_t capacity, heap_trace_mode_t mode)
{
    trace_reset();
    assert_int_equal(heap_trace_init_standalone(records, capacity), ESP_OK);
    assert_int_equal(heap_trace_start(mode), ESP_OK);
}

static int setup(void **state)
{
    (void)state;
    capheap_sim_options_t o = CAPHEAP_SIM_OPTIONS_DEFAULT;
    o.quiet = true;
    o.psram_bytes = 2u << 20;
    return capheap_sim_boot(&capheap_chip_esp32s3, &o) == ESP_OK ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    (void)heap_trace_stop();
    (void)heap_trace_init_standalone(NULL, 0);
    return capheap_sim_shutdown() == ESP_OK ? 0 : -1;
}

static heap_trace_record_t get(size_t i)
{
    heap_trace_record_t r;
    assert_int_equal(heap_trace_get(i, &r), ESP_OK);
    return r;
}

static heap_trace_summary_t summary(void)
{
    heap_trace_summary_t s;
    memset(&s, 0xA5, sizeof s);
    assert_int_equal(heap_trace_summary(&s), ESP_OK);
    return s;
}

/* ---- arguments and states ------------------------------------------------------ */

static void test_without_buffer(void **state)
{
    (void)state;
    trace_reset();
    heap_trace_record_t r;
    assert_int_equal(heap_trace_start(HEAP_TRACE_LEAKS), ESP_ERR_INVALID_STATE);
    assert_int_equal(heap_trace_stop(), ESP_ERR_INVALID_STATE);
    assert_int_equal(heap_trace_alloc_pause(), ESP_ERR_INVALID_STATE);
    /* ESP-IDF: resume before any start is accepted and the next allocation crashes. */
    assert_int_equal(heap_trace_resume(), ESP_ERR_INVALID_STATE);
    assert_int_equal(heap_trace_get_count(), 0);
    assert_int_equal(heap_trace_get(0, &r), ESP_ERR_INVALID_ARG);
    /* ESP-IDF: ESP_ERR_INVALID_STATE for a NULL output. */
    assert_int_equal(heap_trace_get(0, NULL), ESP_ERR_INVALID_ARG);
    assert_int_equal(heap_trace_summary(NULL), ESP_ERR_INVALID_ARG);
    heap_trace_summary_t s = summary();
    assert_int_equal(s.count, 0);
    assert_int_equal(s.capacity, 0);
    assert_int_equal(heap_trace_init_tohost(), ESP_ERR_NOT_SUPPORTED);
    /* Nothing is recorded without a buffer. */
    void *p = heap_caps_malloc(40, MALLOC_CAP_DEFAULT);
    heap_caps_free(p);
    assert_int_equal(heap_trace_get_count(), 0);
}

static void test_init_arguments(void **state)
{
    (void)state;
    trace_reset();
    assert_int_equal(heap_trace_init_standalone(NULL, 4), ESP_ERR_INVALID_ARG);
    assert_int_equal(heap_trace_init_standalone(records, 0), ESP_ERR_INVALID_ARG);
    assert_int_equal(heap_trace_init_standalone(records, CAP), ESP_OK);
    /* A buffer but no start yet: resume and pause have nothing to go on. */
    assert_int_equal(heap_trace_resume(), ESP_ERR_INVALID_STATE);
    assert_int_equal(heap_trace_alloc_pause(), ESP_ERR_INVALID_STATE);
    assert_int_equal(heap_trace_stop(), ESP_ERR_INVALID_STATE);
    assert_int_equal(heap_trace_start((heap_trace_mode_t)7), ESP_ERR_INVALID_ARG);
    heap_trace_summary_t s = summary();
    assert_int_equal(s.capacity, CAP);
    assert_int_equal(s.count, 0);
    assert_int_equal(s.high_water_mark, 0);
}

static void test_init_while_running_and_release(void **state)
{
    (void)state;
    trace_begin(CAP, HEAP_TRACE_LEAKS);
    assert_int_equal(heap_trace_init_standalone(records, CAP), ESP_ERR_INVALID_STATE);
    assert_int_equal(heap_trace_init_standalone(NULL, 0), ESP_ERR_INVALID_STATE);
    assert_int_equal(heap_trace_alloc_pause(), ESP_OK);
    assert_int_equal(heap_trace_init_standalone(records, CAP), ESP_ERR_INVALID_STATE);
    assert_int_equal(heap_trace_stop(), ESP_OK);
    /* ESP-IDF rejects init(NULL, 0) although its header suggests it to release the buffer. */
    assert_int_equal(heap_trace_init_standalone(NULL, 0), ESP_OK);
    assert_int_equal(heap_trace_start(HEAP_TRACE_ALL), ESP_ERR_INVALID_STATE);
    assert_int_equal(summary().capacity, 0);
    /* The buffer is ours again: scribbling on it changes nothing. */
    memset(records, 0x5A, sizeof records);
    void *p = heap_caps_malloc(24, MALLOC_CAP_DEFAULT);
    heap_caps_free(p);
    assert_int_equal(heap_trace_get_count(), 0);
    /* A new init works on the scribbled buffer. */
    assert_int_equal(heap_trace_init_standalone(records, CAP), ESP_OK);
    assert_int_equal(heap_trace_start(HEAP_TRACE_LEAKS), ESP_OK);
    p = heap_caps_malloc(24, MALLOC_CAP_DEFAULT);
    assert_int_equal(heap_trace_get_count(), 1);
    heap_caps_free(p);
    assert_int_equal(heap_trace_get_count(), 0);
}

static void test_state_machine(void **state)
{
    (void)state;
    trace_begin(CAP, HEAP_TRACE_LEAKS);
    assert_int_equal(heap_trace_resume(), ESP_ERR_INVALID_STATE);       /* started */
    assert_int_equal(heap_trace_start(HEAP_TRACE_LEAKS), ESP_OK);       /* restart */
    assert_int_equal(heap_trace_alloc_pause(), ESP_OK);                 /* started -> paused */
    assert_int_equal(heap_trace_alloc_pause(), ESP_ERR_INVALID_STATE);  /* paused */
    assert_int_equal(heap_trace_resume(), ESP_OK);                      /* paused -> started */
    assert_int_equal(heap_trace_stop(), ESP_OK);                        /* started -> stopped */
    assert_int_equal(heap_trace_stop(), ESP_ERR_INVALID_STATE);         /* stopped */
    assert_int_equal(heap_trace_alloc_pause(), ESP_OK);                 /* stopped -> paused */
    assert_int_equal(heap_trace_stop(), ESP_OK);                        /* paused -> stopped */
    assert_int_equal(heap_trace_resume(), ESP_OK);                      /* stopped -> started */
    assert_int_equal(heap_trace_alloc_pause(), ESP_OK);
    assert_int_equal(heap_trace_start(HEAP_TRACE_ALL), ESP_OK);         /* paused -> started */
    assert_int_equal(summary().mode, HEAP_TRACE_ALL);
    assert_int_equal(heap_trace_stop(), ESP_OK);
    assert_int_equal(heap_trace_start(HEAP_TRACE_LEAKS), ESP_OK);       /* stopped -> started */
    assert_int_equal(summary().mode, HEAP_TRACE_LEAKS);
}

/* ---- recording ------------------------------------------------------------------ */

static void test_leaks_mode(void **state)
{
    (void)state;
    trace_begin(CAP, HEAP_TRACE_LEAKS);
    void *a = heap_caps_malloc(100, MALLOC_CAP_DEFAULT);
    void *b = heap_caps_calloc(3, 10, MALLOC_CAP_8BIT);
    void *c = heap_caps_aligned_alloc(64, 200, MALLOC_CAP_INTERNAL);
    void *d = heap_caps_malloc(10, MALLOC_CAP_32BIT); /* rounded to 12 */
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(c);
    assert_non_null(d);
    assert_int_equal(heap_trace_get_count(), 4);
    heap_caps_free(b);
    assert_int_equal(heap_trace_get_count(), 3);
    heap_trace_record_t r0 = get(0), r1 = get(1), r2 = get(2);
    assert_ptr_equal(r0.address, a);
    assert_int_equal(r0.size, 100);
    assert_false(r0.freed);
    assert_ptr_equal(r1.address, c);
    assert_int_equal(r1.size, 200);
    assert_ptr_equal(r2.address, d);
    assert_int_equal(r2.size, 12);
    assert_true(r1.ccount % 4 == 0);
    heap_trace_record_t r;
    assert_int_equal(heap_trace_get(3, &r), ESP_ERR_INVALID_ARG);
    heap_caps_free(NULL); /* not an event */
    void *never = heap_caps_malloc(0, MALLOC_CAP_DEFAULT);
    assert_null(never);
    heap_trace_summary_t s = summary();
    assert_int_equal(s.mode, HEAP_TRACE_LEAKS);
    assert_int_equal(s.total_allocations, 4);
    assert_int_equal(s.total_frees, 1);
    assert_int_equal(s.count, 3);
    assert_int_equal(s.capacity, CAP);
    assert_int_equal(s.high_water_mark, 4);
    assert_int_equal(s.has_overflowed, 0);
    assert_int_equal(s.total_hashmap_hits, 1);
    assert_int_equal(s.total_hashmap_miss, 0);
    heap_caps_free(a);
    heap_caps_free(c);
    heap_caps_free(d);
    assert_int_equal(heap_trace_get_count(), 0);
    /* A block allocated before the start: its free is seen, and missed. */
    void *early = heap_caps_malloc(16, MALLOC_CAP_DEFAULT);
    assert_int_equal(heap_trace_start(HEAP_TRACE_LEAKS), ESP_OK);
    heap_caps_free(early);
    s = summary();
    assert_int_equal(s.total_frees, 1);
    assert_int_equal(s.total_hashmap_miss, 1);
}

static void test_all_mode(void **state)
{
    (void)state;
    trace_begin(CAP, HEAP_TRACE_ALL);
    void *a = heap_caps_malloc(48, MALLOC_CAP_DEFAULT);
    void *b = heap_caps_malloc(80, MALLOC_CAP_SPIRAM);
    heap_caps_free(a);
    void *c = heap_caps_malloc(48, MALLOC_CAP_DEFAULT); /* probably a's address again */
    assert_int_equal(heap_trace_get_count(), 3);
    heap_trace_record_t r0 = get(0), r1 = get(1), r2 = get(2);
    assert_ptr_equal(r0.address, a);
    assert_true(r0.freed);
    assert_ptr_equal(r1.address, b);
    assert_false(r1.freed);
    assert_ptr_equal(r2.address, c);
    assert_false(r2.freed);
#if DEPTH > 0
    assert_non_null(r0.alloced_by[0]);
    assert_non_null(r0.freed_by[0]);
    assert_null(r1.freed_by[0]);
#endif
    heap_caps_free(c); /* marks the live record of the address, not the freed one */
    r2 = get(2);
    assert_true(r2.freed);
    heap_caps_free(b);
    heap_trace_summary_t s = summary();
    assert_int_equal(s.total_allocations, 3);
    assert_int_equal(s.total_frees, 3);
    assert_int_equal(s.total_hashmap_hits, 3);
    assert_int_equal(s.count, 3);
}

static void test_pause_records_frees_only(void **state)
{
    (void)state;
    trace_begin(CAP, HEAP_TRACE_LEAKS);
    void *a = heap_caps_malloc(32, MALLOC_CAP_DEFAULT);
    assert_int_equal(heap_trace_alloc_pause(), ESP_OK);
    void *b = heap_caps_malloc(32, MALLOC_CAP_DEFAULT);
    assert_int_equal(heap_trace_get_count(), 1);
    heap_caps_free(a);
    assert_int_equal(heap_trace_get_count(), 0);
    heap_caps_free(b);
    heap_trace_summary_t s = summary();
    assert_int_equal(s.total_allocations, 1);
    assert_int_equal(s.total_frees, 2);
    assert_int_equal(s.total_hashmap_miss, 1);
    assert_int_equal(heap_trace_resume(), ESP_OK);
    void *c = heap_caps_malloc(32, MALLOC_CAP_DEFAULT);
    assert_int_equal(heap_trace_get_count(), 1);
    assert_ptr_equal(get(0).address, c);
    heap_caps_free(c);
}

static void test_stop_records_nothing(void **state)
{
    (void)state;
    trace_begin(CAP, HEAP_TRACE_LEAKS);
    void *a = heap_caps_malloc(32, MALLOC_CAP_DEFAULT);
    assert_int_equal(heap_trace_stop(), ESP_OK);
    void *b = heap_caps_malloc(32, MALLOC_CAP_DEFAULT);
    heap_caps_free(a); /* not seen: a stays in the trace */
    heap_trace_summary_t s = summary();
    assert_int_equal(s.count, 1);
    assert_int_equal(s.total_allocations, 1);
    assert_int_equal(s.total_frees, 0);
    assert_ptr_equal(get(0).address, a);
    /* Resume keeps the records; a's address coming back retires the stale record
     * instead of showing a leak twice (capheap; ESP-IDF keeps both). */
    assert_int_equal(heap_trace_resume(), ESP_OK);
    void *c = heap_caps_malloc(32, MALLOC_CAP_DEFAULT);
    if (c == a) {
        assert_int_equal(heap_trace_get_count(), 1);
        assert_ptr_equal(get(0).address, c);
    } else {
        assert_int_equal(heap_trace_get_count(), 2);
    }
    heap_caps_free(b);
    heap_caps_free(c);
}

/* A buffer with room for exactly the blocks alive at once (what
 * docs/tracing.md asks for, LEAKS): a realloc that moves a block out of its
 * heap (to other caps, realloc_base; too big for it, the fast path's move)
 * allocates the new block before it frees the old one, yet no record is
 * lost and nothing overflows: the mover's allocation applies the old
 * block's free first (an audit saw the oldest live record evicted), and the
 * move's own free of it is not counted twice. */
static void test_move_on_a_full_buffer(void **state)
{
    (void)state;
    for (int path = 0; path < 2; path++) {
        trace_begin(2, HEAP_TRACE_LEAKS);
        void *a = heap_caps_malloc(40, MALLOC_CAP_INTERNAL);
        void *b = heap_caps_malloc(50, MALLOC_CAP_INTERNAL);
        assert_non_null(b);
        void *b2 = path == 0 ? heap_caps_realloc(b, 60, MALLOC_CAP_SPIRAM)
                             : heap_caps_realloc(b, 500000, MALLOC_CAP_DEFAULT); /* only PSRAM has room */
        assert_non_null(b2);
        assert_true(esp_ptr_external_ram(b2));
        heap_trace_summary_t s = summary();
        assert_int_equal(s.count, 2);
        assert_int_equal(s.has_overflowed, 0);
        assert_int_equal(s.total_allocations, 3);
        assert_int_equal(s.total_frees, 1);
        assert_ptr_equal(get(0).address, a); /* the oldest is still there */
        assert_ptr_equal(get(1).address, b2);
        /* a failing move keeps the old block and its record */
        assert_null(heap_caps_realloc(a, 64u << 20, MALLOC_CAP_DEFAULT));
        s = summary();
        assert_int_equal(s.count, 2);
        assert_int_equal(s.total_frees, 1);
        assert_ptr_equal(get(0).address, a);
        heap_caps_free(a);
        heap_caps_free(b2);
        assert_int_equal(summary().count, 0);
    }
}

static void test_overflow_and_high_water_mark(void **state)
{
    (void)state;
    enum { SMALL = 4, N = 7 };
    trace_begin(SMALL, HEAP_TRACE_LEAKS);
    void *p[N];
    for (int i = 0; i < N; i++)
        p[i] = heap_caps_malloc((size_t)(16 + i), MALLOC_CAP_DEFAULT);
    heap_trace_summary_t s = summary();
    assert_int_equal(s.count, SMALL);
    assert_int_equal(s.has_overflowed, 1);
    assert_int_equal(s.high_water_mark, SMALL);
    assert_int_equal(s.total_allocations, N);
    /* The oldest went: the records are the last SMALL allocations, oldest first. */
    for (int i = 0; i < SMALL; i++) {
        heap_trace_record_t r = get((size_t)i);
        assert_ptr_equal(r.address, p[N - SMALL + i]);
        assert_int_equal(r.size, 16 + N - SMALL + i);
    }
    /* Evicted blocks are not found; the others are. */
    for (int i = 0; i < N; i++)
        heap_caps_free(p[i]);
    s = summary();
    assert_int_equal(s.count, 0);
    assert_int_equal(s.total_hashmap_hits, SMALL);
    assert_int_equal(s.total_hashmap_miss, N - SMALL);
    /* A restart clears the overflow flag but not the high-water mark. */
    assert_int_equal(heap_trace_start(HEAP_TRACE_LEAKS), ESP_OK);
    s = summary();
    assert_int_equal(s.has_overflowed, 0);
    assert_int_equal(s.high_water_mark, SMALL);
    void *q = heap_caps_malloc(8, MALLOC_CAP_DEFAULT);
    assert_int_equal(summary().high_water_mark, SMALL);
    heap_caps_free(q);
    /* ALL mode overflows the same way, freed records included. */
    assert_int_equal(heap_trace_start(HEAP_TRACE_ALL), ESP_OK);
    for (int i = 0; i < N; i++) {
        p[i] = heap_caps_malloc(20, MALLOC_CAP_DEFAULT);
        heap_caps_free(p[i]);
    }
    s = summary();
    assert_int_equal(s.count, SMALL);
    assert_int_equal(s.has_overflowed, 1);
    for (int i = 0; i < SMALL; i++)
        assert_true(get((size_t)i).freed);
    /* Capacity 1. */
    trace_begin(1, HEAP_TRACE_LEAKS);
    void *x = heap_caps_malloc(8, MALLOC_CAP_DEFAULT), *y = heap_caps_malloc(8, MALLOC_CAP_DEFAULT);
    assert_int_equal(heap_trace_get_count(), 1);
    assert_ptr_equal(get(0).address, y);
    heap_caps_free(x);
    heap_caps_free(y);
    assert_int_equal(heap_trace_get_count(), 0);
}

static void test_realloc_events(void **state)
{
    (void)state;
    trace_begin(CAP, HEAP_TRACE_LEAKS);
    void *a = heap_caps_malloc(200, MALLOC_CAP_INTERNAL);
    void *a2 = heap_caps_realloc(a, 100, MALLOC_CAP_INTERNAL); /* shrinks in place */
    assert_ptr_equal(a2, a);
    assert_int_equal(heap_trace_get_count(), 1);
    assert_int_equal(get(0).size, 100);
    /* Moves to PSRAM: the new block is recorded, the old one gone. */
    void *a3 = heap_caps_realloc(a2, 300, MALLOC_CAP_SPIRAM);
    assert_non_null(a3);
    assert_ptr_not_equal(a3, a2);
    assert_int_equal(heap_trace_get_count(), 1);
    assert_ptr_equal(get(0).address, a3);
    assert_int_equal(get(0).size, 300);
    /* A failed realloc changes nothing (ESP-IDF records a free: the live block vanishes). */
    void *fail = heap_caps_realloc(a3, (size_t)64 << 20, MALLOC_CAP_SPIRAM);
    assert_null(fail);
    assert_int_equal(heap_trace_get_count(), 1);
    assert_ptr_equal(get(0).address, a3);
    assert_int_equal(summary().total_frees, 2);
    /* realloc(p, 0) is a free; realloc(NULL, n) an allocation. */
    assert_null(heap_caps_realloc(a3, 0, MALLOC_CAP_SPIRAM));
    assert_int_equal(heap_trace_get_count(), 0);
    void *n = heap_caps_realloc(NULL, 40, MALLOC_CAP_DEFAULT);
    assert_int_equal(heap_trace_get_count(), 1);
    heap_caps_free(n);
}

/* The caller stack: alloced_by[0] is the call site in the function that called heap_caps. */
#if DEPTH > 0
static void *volatile sink;

typedef void *(*alloc_fn)(void);
static CT_NOINLINE void *call_malloc(void)
{
    sink = ct_call_site();
    void *p = heap_caps_malloc(64, MALLOC_CAP_DEFAULT);
    sink = ct_call_site();
    return p;
}
static CT_NOINLINE void *call_malloc_slow(void)
{
    sink = ct_call_site();
    void *p = heap_caps_malloc(64, MALLOC_CAP_DMA | MALLOC_CAP_8BIT);
    sink = ct_call_site();
    return p;
}
static CT_NOINLINE void *call_calloc(void)
{
    sink = ct_call_site();
    void *p = heap_caps_calloc(4, 8, MALLOC_CAP_DEFAULT);
    sink = ct_call_site();
    return p;
}
static CT_NOINLINE void *call_default(void)
{
    sink = ct_call_site();
    void *p = heap_caps_malloc_default(32);
    sink = ct_call_site();
    return p;
}
static CT_NOINLINE void *call_prefer(void)
{
    sink = ct_call_site();
    void *p = heap_caps_malloc_prefer(32, 2, MALLOC_CAP_SPIRAM, MALLOC_CAP_DEFAULT);
    sink = ct_call_site();
    return p;
}

/* site must lie in fn, which just ran (sink: its last ct_call_site()). */
static void check_call_site(alloc_fn fn, void *site, const char *what)
{
    if (!ct_site_within((uintptr_t)site, (uintptr_t)fn, (uintptr_t)sink))
        fail_msg("%s: alloced_by[0] = %p, expected in the function at %p", what, site, (void *)(uintptr_t)fn);
}

/* The library's event entry points (src/debug/debug_hooks.h), to replay one
 * interleaving of two threads deterministically. */
unsigned ch_trace_realloc_begin(void *old_ptr);
void ch_trace_realloc_cancel(unsigned token);
void ch_trace_alloc(void *ptr, size_t size, uint32_t caps);
void ch_trace_free(void *ptr);
void capheap_debug_realloc(void *old_ptr, unsigned token, void *new_ptr, size_t size, uint32_t caps);

/* A realloc moves block a inside its heap; before its events reach the trace,
 * another thread is given a's address (a block b == a). The realloc's late
 * free of a must not remove b's record: before the in-flight table it did,
 * and a live block vanished from a LEAKS trace (an audit saw it in 1 of 16
 * runs of two real threads). The heap operations are left out: only the
 * order of the events matters to the trace. */
static void test_realloc_racing_reuse(void **state)
{
    (void)state;
    trace_begin(CAP, HEAP_TRACE_LEAKS);
    void *a = heap_caps_malloc(24, MALLOC_CAP_INTERNAL);
    void *elsewhere = heap_caps_malloc(200, MALLOC_CAP_INTERNAL);
    assert_int_equal(heap_trace_get_count(), 2);

    unsigned t1 = ch_trace_realloc_begin(a);                   /* thread 1: realloc(a) starts */
    assert_int_not_equal(t1, 0);
    ch_trace_alloc(a, 24, MALLOC_CAP_INTERNAL);                /* thread 2: malloc got a's address */
    capheap_debug_realloc(a, t1, elsewhere, 200, MALLOC_CAP_INTERNAL); /* thread 1's events, late */
    /* live: thread 2's block at a, and the realloc's block */
    assert_int_equal(heap_trace_get_count(), 2);
    bool have_a = false;
    for (size_t i = 0; i < 2; i++) {
        have_a = have_a || get(i).address == a;
    }
    assert_true(have_a);
    heap_trace_summary_t s = summary();
    assert_int_equal(s.total_frees, 1);
    assert_int_equal(s.total_hashmap_hits, 1);
    assert_int_equal(s.total_hashmap_miss, 0);

    /* Without a reuse in between the pair is a plain free and allocation. */
    capheap_debug_realloc(a, ch_trace_realloc_begin(a), a, 24, MALLOC_CAP_INTERNAL);
    assert_int_equal(heap_trace_get_count(), 2);
    assert_int_equal(summary().total_frees, 2);
    /* A cancelled realloc leaves nothing behind: a later reuse of the address
     * is no realloc's, and counts no free. */
    ch_trace_realloc_cancel(ch_trace_realloc_begin(a));
    ch_trace_alloc(a, 24, MALLOC_CAP_INTERNAL); /* retires a's record as stale, as before */
    assert_int_equal(summary().total_frees, 2);
    assert_int_equal(heap_trace_get_count(), 2);
    heap_trace_stop();
    heap_caps_free(a);
    heap_caps_free(elsewhere);

    /* The same race for a block with no record (allocated before the start):
     * thread 2's new record at its address must stay too, and the realloc's
     * late free counts as a miss (an audit found the record removed). */
    void *b = heap_caps_malloc(24, MALLOC_CAP_INTERNAL);
    void *other = heap_caps_malloc(200, MALLOC_CAP_INTERNAL);
    trace_begin(CAP, HEAP_TRACE_LEAKS);
    assert_int_equal(heap_trace_get_count(), 0);
    unsigned tb = ch_trace_realloc_begin(b);
    ch_trace_alloc(b, 24, MALLOC_CAP_INTERNAL);                  /* thread 2 got b's address */
    capheap_debug_realloc(b, tb, other, 200, MALLOC_CAP_INTERNAL); /* thread 1's events, late */
    assert_int_equal(heap_trace_get_count(), 2);
    have_a = false;
    for (size_t i = 0; i < 2; i++) {
        have_a = have_a || get(i).address == b;
    }
    assert_true(have_a);
    s = summary();
    assert_int_equal(s.total_frees, 1);
    assert_int_equal(s.total_hashmap_hits, 0);
    assert_int_equal(s.total_hashmap_miss, 1);
    heap_trace_stop();
    heap_caps_free(b);
    heap_caps_free(other);
}

/* Two reallocs in flight at one address: thread 1's realloc moved a away,
 * thread 2 was given a and reallocs it in turn, its entry in a lower slot of
 * the table. Thread 1's late free must close its own entry (marked: a was
 * reused) and leave thread 2's record alone; thread 2's realloc then fails
 * and its block keeps its record. Before entries were named by token, the
 * late free took the first entry holding a, thread 2's, and removed thread
 * 2's live record (a TSan soak of test_threads saw such misses). */
static void test_realloc_two_in_flight_one_address(void **state)
{
    (void)state;
    trace_begin(CAP, HEAP_TRACE_LEAKS);
    void *a = heap_caps_malloc(24, MALLOC_CAP_INTERNAL);
    void *z = heap_caps_malloc(40, MALLOC_CAP_INTERNAL);
    void *elsewhere = heap_caps_malloc(200, MALLOC_CAP_INTERNAL);
    assert_int_equal(heap_trace_get_count(), 3);

    unsigned tz = ch_trace_realloc_begin(z); /* a third thread's realloc takes the first slot */
    unsigned t1 = ch_trace_realloc_begin(a); /* thread 1: realloc(a) starts */
    ch_trace_realloc_cancel(tz);             /* the first slot is free again */
    ch_trace_alloc(a, 24, MALLOC_CAP_INTERNAL); /* thread 2: malloc got a's address */
    unsigned t2 = ch_trace_realloc_begin(a);    /* thread 2: realloc(a) starts */
    assert_int_not_equal(t2, t1);
    capheap_debug_realloc(a, t1, elsewhere, 200, MALLOC_CAP_INTERNAL); /* thread 1's events, late */
    ch_trace_realloc_cancel(t2); /* thread 2's realloc failed: a is still its block */

    /* live: thread 2's a, z, and the realloc's block */
    assert_int_equal(heap_trace_get_count(), 3);
    bool have_a = false;
    for (size_t i = 0; i < 3; i++)
        have_a = have_a || get(i).address == a;
    assert_true(have_a);
    heap_trace_summary_t s = summary();
    assert_int_equal(s.total_frees, 1); /* thread 1's old a: its record was retired, a hit */
    assert_int_equal(s.total_hashmap_hits, 1);
    assert_int_equal(s.total_hashmap_miss, 0);
    ch_trace_free(a); /* thread 2 frees a: its record is there */
    s = summary();
    assert_int_equal(s.total_hashmap_miss, 0);
    assert_int_equal(heap_trace_get_count(), 2);
    heap_trace_stop();
    heap_caps_free(a);
    heap_caps_free(z);
    heap_caps_free(elsewhere);
}

/* Every slot of the in-flight table (16) in use at once, each realloc's old
 * address reused before its late free, twice over: each late free must find
 * its own entry, the last slot's included, and leave the newer record alone;
 * and every entry must be given back, or the second round's last realloc
 * finds the table full and its late free removes the new record. A 17th
 * realloc while the table is full goes without an entry: with no reuse, its
 * pair is a plain free and allocation. */
static void test_realloc_every_slot_in_flight(void **state)
{
    (void)state;
    enum { SLOTS = 16 };
    trace_begin(CAP, HEAP_TRACE_LEAKS);
    void *blk[SLOTS + 1], *moved[SLOTS + 1];
    for (size_t i = 0; i <= SLOTS; i++) {
        blk[i] = heap_caps_malloc(24, MALLOC_CAP_INTERNAL);
        moved[i] = heap_caps_malloc(200, MALLOC_CAP_INTERNAL);
        assert_non_null(blk[i]);
        assert_non_null(moved[i]);
    }
    const size_t live = 2 * (SLOTS + 1);
    assert_int_equal(heap_trace_get_count(), live);
    for (int round = 0; round < 2; round++) {
        unsigned tok[SLOTS + 1];
        for (size_t i = 0; i <= SLOTS; i++)
            tok[i] = ch_trace_realloc_begin(blk[i]); /* the 17th finds the table full */
        capheap_debug_realloc(blk[SLOTS], tok[SLOTS], blk[SLOTS], 24, MALLOC_CAP_INTERNAL); /* in place */
        for (size_t i = 0; i < SLOTS; i++) {
            ch_trace_alloc(blk[i], 24, MALLOC_CAP_INTERNAL); /* another thread got blk[i]'s address */
            capheap_debug_realloc(blk[i], tok[i], moved[i], 200, MALLOC_CAP_INTERNAL); /* the late events */
        }
        assert_int_equal(heap_trace_get_count(), live);
        for (size_t i = 0; i <= SLOTS; i++) {
            bool have = false;
            for (size_t k = 0; k < live; k++)
                have = have || get(k).address == blk[i];
            if (!have)
                fail_msg("round %d: the block at blk[%zu] lost its record", round, i);
        }
        heap_trace_summary_t s = summary();
        assert_int_equal(s.total_frees, (size_t)(round + 1) * (SLOTS + 1));
        assert_int_equal(s.total_hashmap_hits, (size_t)(round + 1) * (SLOTS + 1));
        assert_int_equal(s.total_hashmap_miss, 0);
    }
    heap_trace_stop();
    for (size_t i = 0; i <= SLOTS; i++) {
        heap_caps_free(blk[i]);
        heap_caps_free(moved[i]);
    }
}

/* A realloc that begins while the trace is stopped has no in-flight entry.
 * If the trace is started (or resumed) before its late events, the old
 * address may have been given to another thread and traced meanwhile: the
 * late free must not remove that record (a concurrency audit replayed this
 * with all three: LEAKS and ALL via start, LEAKS via resume). */
static void test_realloc_across_start(void **state)
{
    (void)state;
    for (int scenario = 0; scenario < 3; scenario++) {
        heap_trace_mode_t mode = scenario == 1 ? HEAP_TRACE_ALL : HEAP_TRACE_LEAKS;
        bool via_resume = scenario == 2;
        trace_reset();
        assert_int_equal(heap_trace_init_standalone(records, CAP), ESP_OK);
        void *a = heap_caps_malloc(24, MALLOC_CAP_INTERNAL);
        void *elsewhere = heap_caps_malloc(200, MALLOC_CAP_INTERNAL);
        if (via_resume) { /* started once, then stopped: a resume keeps the records */
            assert_int_equal(heap_trace_start(mode), ESP_OK);
            assert_int_equal(heap_trace_stop(), ESP_OK);
        }
        unsigned t1 = ch_trace_realloc_begin(a); /* thread 1: realloc(a) begins, trace stopped */
        if (via_resume) /* thread 3 */
            assert_int_equal(heap_trace_resume(), ESP_OK);
        else
            assert_int_equal(heap_trace_start(mode), ESP_OK);
        ch_trace_alloc(a, 24, MALLOC_CAP_INTERNAL);                        /* thread 2 got a's address */
        capheap_debug_realloc(a, t1, elsewhere, 200, MALLOC_CAP_INTERNAL); /* thread 1's events, late */
        bool have_a = false;
        size_t n = heap_trace_get_count();
        for (size_t i = 0; i < n; i++) {
            heap_trace_record_t r = get(i);
            have_a = have_a || (r.address == a && !r.freed);
        }
        if (!have_a)
            fail_msg("scenario %d: thread 2's live block at a lost its record", scenario);
        /* Without a start in between, the late free is a plain free. */
        unsigned t2 = ch_trace_realloc_begin(elsewhere);
        capheap_debug_realloc(elsewhere, t2, elsewhere, 200, MALLOC_CAP_INTERNAL);
        heap_trace_summary_t s = summary();
        assert_int_equal(s.total_hashmap_miss, 0);
        assert_true(s.total_hashmap_hits >= 1);
        heap_trace_stop();
        heap_caps_free(a);
        heap_caps_free(elsewhere);
    }
}

static void test_caller_stack(void **state)
{
    (void)state;
    static const struct {
        alloc_fn fn;
        const char *name;
    } calls[] = {{call_malloc, "malloc fast path"}, {call_malloc_slow, "malloc slow path"},
                 {call_calloc, "calloc"},           {call_default, "malloc_default"},
                 {call_prefer, "malloc_prefer"}};
    trace_reset();
    assert_int_equal(heap_trace_init_standalone(records, CAP), ESP_OK);
    for (int mode = 0; mode < 2; mode++) {
        assert_int_equal(heap_trace_start(mode ? HEAP_TRACE_LEAKS : HEAP_TRACE_ALL), ESP_OK);
        for (size_t i = 0; i < sizeof calls / sizeof calls[0]; i++) {
            void *p = calls[i].fn();
            assert_non_null(p);
            heap_trace_record_t r = get(heap_trace_get_count() - 1);
            assert_ptr_equal(r.address, p);
            check_call_site(calls[i].fn, r.alloced_by[0], calls[i].name);
            /* The frame above is the test's: it is not capheap's. */
#if DEPTH > 1
            assert_non_null(r.alloced_by[1]);
            assert_ptr_not_equal(r.alloced_by[1], r.alloced_by[0]);
#endif
            heap_caps_free(p);
        }
    }
    /* freed_by in ALL mode, through a realloc that moves (heap_caps_free inside realloc). */
    assert_int_equal(heap_trace_start(HEAP_TRACE_ALL), ESP_OK);
    void *p = heap_caps_malloc(64, MALLOC_CAP_INTERNAL);
    void *q = heap_caps_realloc(p, 128, MALLOC_CAP_SPIRAM);
    assert_non_null(q);
    heap_trace_record_t r = get(0);
    assert_true(r.freed);
    assert_non_null(r.freed_by[0]);
    assert_ptr_equal(r.freed_by[0], get(1).alloced_by[0]); /* same call site: the realloc */
    heap_caps_free(q);
}
#endif

static void test_get_cursor(void **state)
{
    (void)state;
    enum { N = 50 };
    void *p[N];
    trace_begin(CAP, HEAP_TRACE_LEAKS);
    for (int i = 0; i < N; i++)
        p[i] = heap_caps_malloc((size_t)(8 + i), MALLOC_CAP_DEFAULT);
    for (int i = 0; i < N; i += 3)
        heap_caps_free(p[i]);
    /* The live ones, oldest first, whatever order we ask in. */
    void *live[N];
    size_t n = 0;
    for (int i = 0; i < N; i++)
        if (i % 3 != 0)
            live[n++] = p[i];
    assert_int_equal(heap_trace_get_count(), n);
    for (size_t i = 0; i < n; i++)
        assert_ptr_equal(get(i).address, live[i]);
    for (size_t i = n; i-- > 0;)
        assert_ptr_equal(get(i).address, live[i]);
    ct_rng_t rng;
    ct_rng_init(&rng, 42);
    for (int k = 0; k < 200; k++) {
        size_t i = (size_t)ct_rng_below(&rng, n);
        assert_ptr_equal(get(i).address, live[i]);
    }
    for (size_t i = 0; i < n; i++)
        heap_caps_free(live[i]);
}

/* ---- dump --------------------------------------------------------------------- */

static void expect_line(size_t index, const char *fmt, ...)
{
    char want[512], got[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(want, sizeof want, fmt, ap);
    va_end(ap);
    if (!ct_capture_line(index, got, sizeof got))
        fail_msg("dump line %zu missing; expected \"%s\"\n%s", index, want, ct_capture_text());
    if (strcmp(want, got) != 0)
        fail_msg("dump line %zu:\n  got      \"%s\"\n  expected \"%s\"", index, got, want);
}

/* " caller a:b" (as many frames as recorded), or "" at depth 0. */
static const char *stack_text(void *const *frames, size_t depth, char *out, size_t size)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t j = 0; j < depth && frames[j] != NULL; j++)
        used += (size_t)snprintf(out + used, size - used, "%s%p", j ? ":" : "", frames[j]);
    return out;
}

static const char *caller_text(const heap_trace_record_t *r, char *out, size_t size)
{
#if DEPTH > 0
    char s[400];
    stack_text(r->alloced_by, DEPTH, s, sizeof s);
    if (s[0] != '\0') {
        snprintf(out, size, " caller %s", s);
        return out;
    }
#else
    (void)r;
#endif
    out[0] = '\0';
    return out;
}

static void test_dump_leaks(void **state)
{
    (void)state;
    trace_begin(8, HEAP_TRACE_LEAKS);
    void *a = heap_caps_malloc(100, MALLOC_CAP_INTERNAL);
    void *b = heap_caps_malloc(2000, MALLOC_CAP_SPIRAM);
    void *c = heap_caps_malloc(30, MALLOC_CAP_INTERNAL);
    heap_caps_free(c);
    heap_trace_record_t ra = get(0), rb = get(1);
    char ca[512], cb[512];
    ct_capture_begin();
    heap_trace_dump();
    ct_capture_end();
    expect_line(0, "====== Heap Trace: 2 records (8 capacity) ======");
    expect_line(1, "%6u bytes (@ %p, Internal) allocated CPU 0 ccount 0x%08x%s", 100u, a, (unsigned)ra.ccount,
                caller_text(&ra, ca, sizeof ca));
    expect_line(2, "%6u bytes (@ %p,    PSRAM) allocated CPU 0 ccount 0x%08x%s", 2000u, b, (unsigned)rb.ccount,
                caller_text(&rb, cb, sizeof cb));
    expect_line(3, "====== Heap Trace Summary ======");
    expect_line(4, "Mode: Heap Trace Leaks");
    expect_line(5, "2100 bytes 'leaked' in trace (2 allocations)");
    expect_line(6, "records: 2 (8 capacity, 3 high water mark)");
    expect_line(7, "hashmap: 8 capacity (1 hits, 0 misses)");
    expect_line(8, "total allocations: 3");
    expect_line(9, "total frees: 1");
    expect_line(10, "================================");
    assert_int_equal(ct_capture_lines(), 11);

    /* Only PSRAM, only internal. */
    ct_capture_begin();
    heap_trace_dump_caps(MALLOC_CAP_SPIRAM);
    ct_capture_end();
    assert_int_equal(ct_capture_count(", Internal"), 0);
    assert_int_equal(ct_capture_count(",    PSRAM"), 1);
    expect_line(3, "Mode: Heap Trace Leaks");
    expect_line(4, "2000 bytes 'leaked' in trace (1 allocations)");
    ct_capture_begin();
    heap_trace_dump_caps(MALLOC_CAP_INTERNAL);
    ct_capture_end();
    assert_int_equal(ct_capture_count(", Internal"), 1);
    assert_int_equal(ct_capture_count(",    PSRAM"), 0);
    expect_line(4, "100 bytes 'leaked' in trace (1 allocations)");
    ct_capture_begin();
    heap_trace_dump_caps(0);
    ct_capture_end();
    expect_line(1, "====== Heap Trace Summary ======");

    /* Overflow note. */
    for (int i = 0; i < 10; i++)
        heap_caps_free(heap_caps_malloc(0, MALLOC_CAP_DEFAULT)); /* not events */
    void *many[8];
    for (int i = 0; i < 8; i++)
        many[i] = heap_caps_malloc(16, MALLOC_CAP_INTERNAL);
    ct_capture_begin();
    heap_trace_dump();
    ct_capture_end();
    assert_true(ct_capture_contains("(NB: Internal Buffer has overflowed, so trace data is incomplete.)\n"
                                    "================================\n"));
    assert_false(ct_capture_contains("New entries"));
    for (int i = 0; i < 8; i++)
        heap_caps_free(many[i]);
    heap_caps_free(a);
    heap_caps_free(b);
}

static void test_dump_all(void **state)
{
    (void)state;
    trace_begin(16, HEAP_TRACE_ALL);
    void *a = heap_caps_malloc(64, MALLOC_CAP_INTERNAL);
    void *b = heap_caps_malloc(32, MALLOC_CAP_INTERNAL);
    heap_caps_free(a);
    heap_trace_record_t ra = get(0), rb = get(1);
    char ca[512], cb[512];
    ct_capture_begin();
    heap_trace_dump();
    ct_capture_end();
    expect_line(0, "====== Heap Trace: 2 records (16 capacity) ======");
    size_t line = 1;
#if DEPTH > 0
    char fb[400];
    expect_line(line++, "%6u bytes (@ %p, Internal) allocated CPU 0 ccount 0x%08x%s", 64u, a, (unsigned)ra.ccount,
                caller_text(&ra, ca, sizeof ca));
    expect_line(line++, "freed by %s", stack_text(ra.freed_by, DEPTH, fb, sizeof fb));
#else
    expect_line(line++, "%6u bytes (@ %p, Internal) allocated CPU 0 ccount 0x%08x%s freed", 64u, a,
                (unsigned)ra.ccount, caller_text(&ra, ca, sizeof ca));
#endif
    expect_line(line++, "%6u bytes (@ %p, Internal) allocated CPU 0 ccount 0x%08x%s", 32u, b, (unsigned)rb.ccount,
                caller_text(&rb, cb, sizeof cb));
    expect_line(line++, "====== Heap Trace Summary ======");
    expect_line(line++, "Mode: Heap Trace All");
    expect_line(line++, "32 bytes alive in trace (1/2 allocations)");
    expect_line(line++, "records: 2 (16 capacity, 2 high water mark)");
    expect_line(line++, "hashmap: 16 capacity (1 hits, 0 misses)");
    expect_line(line++, "total allocations: 2");
    expect_line(line++, "total frees: 1");
    expect_line(line++, "================================");
    assert_int_equal(ct_capture_lines(), line);
    heap_caps_free(b);
}

/* A writer that allocates while the dump prints: with the trace lock held this
 * would deadlock (the lock is not recursive) or, in ESP-IDF, not be allowed. */
static void *dump_allocs[4];
static size_t dump_alloc_count;
static capheap_write_fn capture_writer;

static void allocating_writer(const char *text, size_t len)
{
    if (dump_alloc_count < 4)
        dump_allocs[dump_alloc_count++] = heap_caps_malloc(24, MALLOC_CAP_INTERNAL);
    capture_writer(text, len);
}

static void test_dump_releases_the_lock(void **state)
{
    (void)state;
    trace_begin(CAP, HEAP_TRACE_LEAKS);
    void *a = heap_caps_malloc(64, MALLOC_CAP_INTERNAL);
    ct_capture_begin();
    capture_writer = capheap_set_writer(allocating_writer);
    dump_alloc_count = 0;
    heap_trace_dump();
    (void)capheap_set_writer(capture_writer);
    ct_capture_end();
    assert_int_equal(dump_alloc_count, 4);
    assert_true(ct_capture_contains("(NB: New entries were traced while dumping, so trace dump may have duplicate "
                                    "entries.)\n"));
    assert_int_equal(heap_trace_get_count(), 5);
    for (size_t i = 0; i < dump_alloc_count; i++)
        heap_caps_free(dump_allocs[i]);
    heap_caps_free(a);
    assert_int_equal(heap_trace_get_count(), 0);
}

/* ---- threads ------------------------------------------------------------------- */

#define THREADS 4
#define OPS 4000

static void *worker(void *arg)
{
    ct_rng_t rng;
    ct_rng_init(&rng, (uint64_t)(uintptr_t)arg);
    void *mine[16] = {0};
    for (int i = 0; i < OPS; i++) {
        size_t k = (size_t)ct_rng_below(&rng, 16);
        if (mine[k] != NULL && ct_rng_below(&rng, 3) == 0) {
            /* grows or shrinks, in place or moved inside the heap: reallocs in flight */
            void *q = heap_caps_realloc(mine[k], (size_t)ct_rng_range(&rng, 1, 300), MALLOC_CAP_DEFAULT);
            if (q != NULL)
                mine[k] = q;
        } else if (mine[k] != NULL) {
            heap_caps_free(mine[k]);
            mine[k] = NULL;
        } else {
            mine[k] = heap_caps_malloc((size_t)ct_rng_range(&rng, 1, 300), MALLOC_CAP_DEFAULT);
        }
    }
    for (size_t k = 0; k < 16; k++)
        heap_caps_free(mine[k]);
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    static heap_trace_record_t big[THREADS * 16 + 8];
    trace_reset();
    assert_int_equal(heap_trace_init_standalone(big, THREADS * 16 + 8), ESP_OK);
    assert_int_equal(heap_trace_start(HEAP_TRACE_LEAKS), ESP_OK);
    pthread_t t[THREADS];
    for (uintptr_t i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, worker, (void *)(i + 1)), 0);
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_join(t[i], NULL), 0);
    /* Every event was counted and the trace ends empty. A free is reported
     * before the block is released; a realloc that moves inside its heap
     * marks its old address in flight, so another thread's allocation there
     * that reaches the trace first is not undone by the realloc's late free
     * (docs/tracing.md; test_realloc_racing_reuse replays it). Misses remain
     * possible only with more than 16 reallocs in flight at once. */
    heap_trace_summary_t s = summary();
    assert_int_equal(s.count, 0);
    assert_int_equal(s.has_overflowed, 0);
    assert_int_equal(s.total_allocations, s.total_frees);
    assert_int_equal(s.total_hashmap_hits + s.total_hashmap_miss, s.total_frees);
    assert_int_equal(s.total_hashmap_miss, 0); /* no event reordered past another (4 threads < 16 in flight) */
    assert_true(s.high_water_mark <= THREADS * 16);
    print_message("threads: %zu allocations\n", s.total_allocations);
}

/* ---- pinned by mutation testing -------------------------------------------------- */

/* capheap_describe_block() (a corruption report's epilogue, capheap/report.h)
 * adds the live record's time stamp and callers to a used block's line: the
 * record is found by the pointer the user holds, past the poison head. */
static void test_describe_names_the_record(void **state)
{
    (void)state;
    trace_begin(8, HEAP_TRACE_LEAKS);
    void *a = heap_caps_malloc(40, MALLOC_CAP_INTERNAL);
    assert_non_null(a);
    heap_trace_record_t r = get(0);
    char want[512];
    int n = snprintf(want, sizeof want, "  block %p: used, ", (void *)((uint8_t *)a - ct_poison_head(4)));
    assert_true(n > 0);
    ct_capture_begin();
    capheap_describe_block(a);
    ct_capture_end();
    const char *line = strstr(ct_capture_text(), want);
    if (line == NULL)
        fail_msg("no line \"%s...\" in:\n%s", want, ct_capture_text());
    const char *eol = strchr(line, '\n');
    assert_non_null(eol);
    char got[512];
    snprintf(got, sizeof got, "%.*s", (int)(eol - line), line);
    snprintf(want, sizeof want, ", ccount 0x%08x", (unsigned)r.ccount);
    if (strstr(got, want) == NULL)
        fail_msg("block line \"%s\" lacks \"%s\"", got, want);
#if DEPTH > 0
    char stack[400], with[420];
    snprintf(with, sizeof with, ", caller %s", stack_text(r.alloced_by, DEPTH, stack, sizeof stack));
    if (stack[0] != '\0' && strstr(got, with) == NULL)
        fail_msg("block line \"%s\" lacks \"%s\"", got, with);
#endif
    /* Three lines, in the order of capheap/report.h's example: the block, then
     * the one before it, then the one after it. */
    void *b = heap_caps_malloc(40, MALLOC_CAP_INTERNAL), *c = heap_caps_malloc(40, MALLOC_CAP_INTERNAL);
    assert_non_null(b);
    assert_non_null(c);
    ct_capture_begin();
    capheap_describe_block(b);
    ct_capture_end();
    const char *t = ct_capture_text(), *lb = strstr(t, "  block "), *lp = strstr(t, "  before "),
               *la = strstr(t, "  after ");
    assert_true(lb == t && lp != NULL && la != NULL);
    assert_true(lb < lp && lp < la);
    assert_int_equal(ct_capture_lines(), 3);
    heap_caps_free(a);
    heap_caps_free(b);
    heap_caps_free(c);
}

/* A realloc that moves a block inside its heap frees the old one after the
 * heap checked it: the tracer keeps no copy of its record (the copy is for a
 * plain free the heap may reject, whose description comes after the free was
 * recorded). A block allocated untraced at the old address later is then
 * described without a record, not with the moved block's. */
static void test_describe_after_realloc_moved(void **state)
{
    (void)state;
    trace_begin(8, HEAP_TRACE_LEAKS);
    void *a = heap_caps_malloc(40, MALLOC_CAP_INTERNAL);
    void *guard = heap_caps_malloc(40, MALLOC_CAP_INTERNAL); /* a cannot grow in place */
    assert_non_null(a);
    assert_non_null(guard);
    int heap = capheap_heap_find(a);
    void *moved = heap_caps_realloc(a, 400, MALLOC_CAP_INTERNAL);
    assert_non_null(moved);
    assert_ptr_not_equal(moved, a);
    assert_int_equal(capheap_heap_find(moved), heap); /* moved inside its heap */
    assert_int_equal(heap_trace_stop(), ESP_OK);
    void *c = heap_caps_malloc(40, MALLOC_CAP_INTERNAL); /* untraced, at a's address */
    assert_ptr_equal(c, a);
    ct_capture_begin();
    capheap_describe_block(c);
    ct_capture_end();
    char want[128];
    snprintf(want, sizeof want, "  block %p: used, ", (void *)((uint8_t *)c - ct_poison_head(4)));
    const char *line = strstr(ct_capture_text(), want);
    if (line == NULL)
        fail_msg("no line \"%s...\" in:\n%s", want, ct_capture_text());
    const char *eol = strchr(line, '\n'), *cc = strstr(line, "ccount");
    assert_non_null(eol);
    if (cc != NULL && cc < eol)
        fail_msg("an untraced block described with the moved block's record:\n%s", ct_capture_text());
    heap_caps_free(c);
    heap_caps_free(guard);
    heap_caps_free(moved);
}

/* The header's argument and state rules at their edges: num_records 2^32 - 1
 * is refused (before the buffer is touched), a mode just past the last one is
 * unknown, and a new init forgets the previous buffer's start: pause, resume
 * and stop need a start since that init. */
static void test_init_and_start_edges(void **state)
{
    (void)state;
    trace_reset();
    assert_int_equal(heap_trace_init_standalone(records, (size_t)UINT32_MAX), ESP_ERR_INVALID_ARG);
    assert_int_equal(summary().capacity, 0);
    assert_int_equal(heap_trace_init_standalone(records, CAP), ESP_OK);
    assert_int_equal(heap_trace_start((heap_trace_mode_t)(HEAP_TRACE_LEAKS + 1)), ESP_ERR_INVALID_ARG);
    assert_int_equal(heap_trace_start(HEAP_TRACE_LEAKS), ESP_OK);
    assert_int_equal(heap_trace_stop(), ESP_OK);
    assert_int_equal(heap_trace_init_standalone(records, CAP), ESP_OK); /* no start since this init */
    assert_int_equal(heap_trace_resume(), ESP_ERR_INVALID_STATE);
    assert_int_equal(heap_trace_alloc_pause(), ESP_ERR_INVALID_STATE);
    assert_int_equal(heap_trace_stop(), ESP_ERR_INVALID_STATE);
    void *p = heap_caps_malloc(24, MALLOC_CAP_DEFAULT); /* still stopped: not recorded */
    heap_caps_free(p);
    assert_int_equal(heap_trace_get_count(), 0);
}

/* heap_trace_get()'s cursor must follow the list when a free removes a record
 * (LEAKS) between two gets: index i is then the next younger record. */
static void test_get_after_free(void **state)
{
    (void)state;
    enum { N = 6 };
    void *p[N];
    trace_begin(CAP, HEAP_TRACE_LEAKS);
    for (int i = 0; i < N; i++)
        p[i] = heap_caps_malloc((size_t)(16 + 4 * i), MALLOC_CAP_DEFAULT);
    assert_ptr_equal(get(3).address, p[3]); /* the cursor now stands at index 3 */
    heap_caps_free(p[1]);                    /* the records behind it move up by one */
    assert_ptr_equal(get(3).address, p[4]);
    assert_ptr_equal(get(2).address, p[3]);
    heap_caps_free(p[0]);
    assert_ptr_equal(get(2).address, p[4]);
    assert_ptr_equal(get(0).address, p[2]);
    for (int i = 2; i < N; i++)
        heap_caps_free(p[i]);
    assert_int_equal(heap_trace_get_count(), 0);
}

/* A writer that frees a traced block while the dump prints: a free changes the
 * trace as much as an allocation does, so the dump must say so. */
static void *dump_victim;

static void freeing_writer(const char *text, size_t len)
{
    if (dump_victim != NULL) {
        heap_caps_free(dump_victim);
        dump_victim = NULL;
    }
    capture_writer(text, len);
}

static void test_dump_notes_a_free_meanwhile(void **state)
{
    (void)state;
    trace_begin(CAP, HEAP_TRACE_LEAKS);
    void *a = heap_caps_malloc(64, MALLOC_CAP_INTERNAL);
    dump_victim = heap_caps_malloc(32, MALLOC_CAP_INTERNAL);
    ct_capture_begin();
    capture_writer = capheap_set_writer(freeing_writer);
    heap_trace_dump();
    (void)capheap_set_writer(capture_writer);
    ct_capture_end();
    assert_null(dump_victim);
    assert_true(ct_capture_contains("(NB: New entries were traced while dumping, so trace dump may have duplicate "
                                    "entries.)\n"));
    heap_caps_free(a);
}

#if DEPTH > 0
/* ALL mode, buffer full: the record evicted for a new allocation may be a
 * freed one; the new record must not inherit its freed_by (a live block). */
static void test_evicted_record_forgets_its_free(void **state)
{
    (void)state;
    trace_begin(2, HEAP_TRACE_ALL);
    void *a = heap_caps_malloc(40, MALLOC_CAP_DEFAULT);
    heap_caps_free(a);
    assert_non_null(get(0).freed_by[0]);
    void *b = heap_caps_malloc(40, MALLOC_CAP_DEFAULT);
    void *c = heap_caps_malloc(40, MALLOC_CAP_DEFAULT); /* evicts a's freed record */
    assert_int_equal(summary().has_overflowed, 1);
    heap_trace_record_t r = get(1);
    assert_ptr_equal(r.address, c);
    assert_false(r.freed);
    for (size_t j = 0; j < DEPTH; j++)
        assert_null(r.freed_by[j]);
    heap_caps_free(b);
    heap_caps_free(c);
}
#endif

/* As test_realloc_racing_reuse, but the realloc starts while allocations are
 * paused (frees are still recorded then) and the reuse comes after a resume:
 * the realloc's late free must still leave the newer record alone. */
static void test_realloc_in_flight_across_resume(void **state)
{
    (void)state;
    trace_begin(CAP, HEAP_TRACE_LEAKS);
    void *a = heap_caps_malloc(24, MALLOC_CAP_INTERNAL);
    void *elsewhere = heap_caps_malloc(200, MALLOC_CAP_INTERNAL);
    assert_int_equal(heap_trace_alloc_pause(), ESP_OK);
    unsigned t1 = ch_trace_realloc_begin(a);    /* thread 1: realloc(a) starts, paused */
    assert_int_equal(heap_trace_resume(), ESP_OK);
    ch_trace_alloc(a, 24, MALLOC_CAP_INTERNAL); /* thread 2: malloc got a's address */
    capheap_debug_realloc(a, t1, elsewhere, 200, MALLOC_CAP_INTERNAL); /* thread 1's events, late */
    assert_int_equal(heap_trace_get_count(), 2);
    bool have_a = get(0).address == a || get(1).address == a;
    assert_true(have_a);
    heap_trace_summary_t s = summary();
    assert_int_equal(s.total_frees, 1);
    assert_int_equal(s.total_hashmap_miss, 0);
    heap_trace_stop();
    heap_caps_free(a);
    heap_caps_free(elsewhere);
}

/* Every way a realloc ends gives its in-flight entry back: a failed realloc
 * (cancel), and one whose late events come after a stop. Were either to keep
 * its entry, 17 of them would fill the table, and a later realloc racing a
 * reuse of its address would go without an entry: its late free would then
 * remove the newer block's record. */
static void test_realloc_entries_given_back(void **state)
{
    (void)state;
    trace_begin(CAP, HEAP_TRACE_LEAKS);
    void *a = heap_caps_malloc(24, MALLOC_CAP_INTERNAL);
    void *elsewhere = heap_caps_malloc(200, MALLOC_CAP_INTERNAL);
    for (int i = 0; i < 17; i++)
        ch_trace_realloc_cancel(ch_trace_realloc_begin(a)); /* realloc(a) failed */
    for (int i = 0; i < 17; i++) {
        unsigned t = ch_trace_realloc_begin(a);
        assert_int_equal(heap_trace_stop(), ESP_OK);
        capheap_debug_realloc(a, t, a, 24, MALLOC_CAP_INTERNAL); /* its events, after the stop */
        assert_int_equal(heap_trace_resume(), ESP_OK);
    }
    assert_int_equal(heap_trace_get_count(), 2);
    assert_int_equal(summary().total_frees, 0); /* nothing counted while stopped */
    unsigned t1 = ch_trace_realloc_begin(a);    /* thread 1: realloc(a) starts */
    ch_trace_alloc(a, 24, MALLOC_CAP_INTERNAL); /* thread 2: malloc got a's address */
    capheap_debug_realloc(a, t1, elsewhere, 200, MALLOC_CAP_INTERNAL); /* thread 1's events, late */
    assert_int_equal(heap_trace_get_count(), 2);
    bool have_a = get(0).address == a || get(1).address == a;
    if (!have_a)
        fail_msg("thread 2's block at a lost its record: the in-flight table was full");
    heap_trace_stop();
    heap_caps_free(a);
    heap_caps_free(elsewhere);
}

/* heap_trace_dump() prints every record (esp_heap_trace.h), also one in a heap
 * that is neither internal nor PSRAM (no label); dump_caps() filters it out.
 * Runs last: the region it adds stays registered. */
static _Alignas(16) unsigned char plain_region[4096];

static void test_dump_heap_neither_internal_nor_psram(void **state)
{
    (void)state;
    const uint32_t caps[3] = {MALLOC_CAP_8BIT | MALLOC_CAP_PID2, 0, 0};
    assert_int_equal(capheap_caps_add_region(caps, (intptr_t)plain_region,
                                             (intptr_t)(plain_region + sizeof plain_region), NULL),
                     ESP_OK);
    trace_begin(8, HEAP_TRACE_LEAKS);
    void *p = heap_caps_malloc(48, MALLOC_CAP_PID2);
    assert_non_null(p);
    assert_true((uintptr_t)p >= (uintptr_t)plain_region &&
                (uintptr_t)p < (uintptr_t)(plain_region + sizeof plain_region));
    heap_trace_record_t r = get(0);
    char text[512];
    ct_capture_begin();
    heap_trace_dump();
    ct_capture_end();
    expect_line(0, "====== Heap Trace: 1 records (8 capacity) ======");
    expect_line(1, "%6u bytes (@ %p) allocated CPU 0 ccount 0x%08x%s", 48u, p, (unsigned)r.ccount,
                caller_text(&r, text, sizeof text));
    expect_line(4, "48 bytes 'leaked' in trace (1 allocations)");
    ct_capture_begin();
    heap_trace_dump_caps(MALLOC_CAP_INTERNAL);
    heap_trace_dump_caps(MALLOC_CAP_SPIRAM);
    ct_capture_end();
    assert_int_equal(ct_capture_count(" bytes (@ "), 0);
    heap_caps_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_without_buffer),
        cmocka_unit_test(test_init_arguments),
        cmocka_unit_test(test_realloc_racing_reuse),
        cmocka_unit_test(test_realloc_two_in_flight_one_address),
        cmocka_unit_test(test_realloc_every_slot_in_flight),
        cmocka_unit_test(test_realloc_across_start),
        cmocka_unit_test(test_init_while_running_and_release),
        cmocka_unit_test(test_state_machine),
        cmocka_unit_test(test_leaks_mode),
        cmocka_unit_test(test_all_mode),
        cmocka_unit_test(test_pause_records_frees_only),
        cmocka_unit_test(test_stop_records_nothing),
        cmocka_unit_test(test_overflow_and_high_water_mark),
        cmocka_unit_test(test_move_on_a_full_buffer),
        cmocka_unit_test(test_realloc_events),
#if DEPTH > 0
        cmocka_unit_test(test_caller_stack),
#endif
        cmocka_unit_test(test_get_cursor),
        cmocka_unit_test(test_dump_leaks),
        cmocka_unit_test(test_dump_all),
        cmocka_unit_test(test_dump_releases_the_lock),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_init_and_start_edges),
        cmocka_unit_test(test_get_after_free),
        cmocka_unit_test(test_dump_notes_a_free_meanwhile),
#if DEPTH > 0
        cmocka_unit_test(test_evicted_record_forgets_its_free),
#endif
        cmocka_unit_test(test_realloc_in_flight_across_resume),
        cmocka_unit_test(test_realloc_entries_given_back),
        cmocka_unit_test(test_describe_names_the_record),
        cmocka_unit_test(test_describe_after_realloc_moved),
        cmocka_unit_test(test_dump_heap_neither_internal_nor_psram), /* last: adds a region */
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
