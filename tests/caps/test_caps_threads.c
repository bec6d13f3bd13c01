/*
 * test_caps_threads.c - heap_caps under concurrency.
 *
 * Four start-up heaps with different caps (a custom chip in cf_arena). Three
 * worker threads allocate, calloc, realloc (also across heaps) and free with
 * random caps, stamping every block and checking the stamp before it is freed
 * or resized; meanwhile a registrar thread adds runtime regions (which reorder
 * the search lists while requests are routed) and a monitor thread runs
 * heap_caps_check_integrity_all(), heap_caps_get_info() and the size queries
 * in a loop. Every new block must lie in a heap whose caps include the
 * request's. At the end every block is freed: every heap's free size is back
 * to its value at registration, and every heap is intact.
 *
 * A second test races readers (malloc, the size sums) against a burst of
 * registrations, round after round; a third, the lookup of a block of a
 * heap nested in another against registrations that reorder the address
 * index; a fourth, a request walking its candidate list while another
 * thread refills the route-cache entry it shares with another mask; a
 * fifth, failures while the extended failure callback is re-registered; a
 * sixth, a walk whose callback asks for the total size while another thread
 * opens and closes minimum-free monitor windows, or takes and gives back
 * every lock with capheap_caps_lock_all (a fork's handlers); a seventh,
 * threads opening and closing the one monitor window at random (never two
 * stops for one start).
 *
 * A third forks while two threads allocate and another registers regions,
 * with capheap_caps_lock_all, _unlock_all and _unlock_all_child as the
 * pthread_atfork handlers (what libcapheap_malloc.so does): every child
 * must allocate, free and check
 * the heaps within 5 s (a lock inherited held would hang it), and in builds
 * with heap tracing or task tracking their locks are among those handled, so
 * the child traces and charges its allocations too.
 *
 * Failures inside threads are recorded (cmocka's assertions are not
 * thread-safe) and asserted by the main thread. Seeded (CAPHEAP_SEED).
 */
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "support.h"
#include "caps_fixture.h"
#include "esp_heap_trace.h"

#define KIB 1024u
#define WORKERS 3
#define OPS_PER_WORKER 60000
#define SLOTS 64
#define RUNTIME_REGIONS 8
#define RUNTIME_BYTES (24u * KIB)
#define RUNTIME_BASE (512u * KIB)

static atomic_int workers_done;
static atomic_ulong total_ops;
static atomic_ulong spiram_blocks; /* SPIRAM requests served while regions were being added */
static atomic_int registrar_done; /* workers run on until the registrar has finished */

static const uint32_t worker_caps[] = {
    MALLOC_CAP_8BIT,  MALLOC_CAP_DEFAULT, MALLOC_CAP_INTERNAL, MALLOC_CAP_DMA,
    MALLOC_CAP_32BIT, MALLOC_CAP_EXEC,    MALLOC_CAP_RTCRAM,   MALLOC_CAP_DEFAULT | MALLOC_CAP_INTERNAL,
    MALLOC_CAP_SPIRAM, /* only in runtime heaps: fails until the registrar adds one */
};
#define N_CAPS (sizeof worker_caps / sizeof worker_caps[0])

/* The heap containing p has every bit of caps. The list may grow meanwhile
 * (indices shift), so retry until the descriptor read really contains p. */
static bool placed_right(const void *p, size_t n, uint32_t caps)
{
    for (int attempt = 0; attempt < 100; attempt++) {
        int i = capheap_heap_find(p);
        if (i < 0) {
            continue;
        }
        capheap_heap_desc_t d;
        if (!capheap_heap_get((size_t)i, &d) || !cf_inside(p, n, d.start, d.end)) {
            continue;
        }
        uint32_t want = caps & MALLOC_CAP_EXEC ? caps | MALLOC_CAP_32BIT : caps;
        return (cf_all_caps(&d) & want) == want;
    }
    return false;
}

typedef struct {
    unsigned id;
    uint64_t seed;
} worker_arg_t;

static void *worker(void *argp)
{
    worker_arg_t *arg = argp;
    ct_rng_t rng;
    ct_rng_init(&rng, arg->seed);
    struct {
        unsigned char *p;
        size_t n;
        uint32_t token;
    } slot[SLOTS];
    memset(slot, 0, sizeof slot);
    for (int op = 0; (op < OPS_PER_WORKER || !atomic_load(&registrar_done)) && !ct_thread_failed(); op++) {
        atomic_fetch_add(&total_ops, 1);
        size_t k = (size_t)ct_rng_below(&rng, SLOTS);
        uint32_t caps = worker_caps[ct_rng_below(&rng, N_CAPS)];
        size_t n = (size_t)ct_rng_range(&rng, 1, ct_rng_below(&rng, 8) == 0 ? 4000 : 200);
        if (slot[k].p) {
            if (!ct_stamp_ok_token(slot[k].p, slot[k].n, slot[k].token)) {
                ct_fail_in_thread("worker %u: block %p (%zu bytes) lost its stamp", arg->id, (void *)slot[k].p,
                                  slot[k].n);
                break;
            }
            if (ct_rng_below(&rng, 3) == 0) {
                unsigned char *q = heap_caps_realloc(slot[k].p, n, caps);
                if (q) {
                    size_t keep = n < slot[k].n ? n : slot[k].n;
                    if (!ct_stamp_ok_token(q, keep, slot[k].token)) {
                        ct_fail_in_thread("worker %u: realloc lost the contents", arg->id);
                        break;
                    }
                    if (!placed_right(q, n, caps)) {
                        ct_fail_in_thread("worker %u: realloc(%zu, 0x%08x) -> %p in a heap without the caps", arg->id,
                                          n, (unsigned)caps, (void *)q);
                        break;
                    }
                    slot[k].p = q;
                    slot[k].n = n;
                    slot[k].token = ct_token(q);
                    ct_stamp_token(q, n, slot[k].token);
                } else if (!ct_stamp_ok_token(slot[k].p, slot[k].n, slot[k].token)) {
                    ct_fail_in_thread("worker %u: failed realloc damaged the block", arg->id);
                    break;
                }
            } else {
                heap_caps_free(slot[k].p);
                slot[k].p = NULL;
            }
            continue;
        }
        unsigned char *p = ct_rng_below(&rng, 5) == 0 ? heap_caps_calloc(1, n, caps) : heap_caps_malloc(n, caps);
        if (!p) {
            continue;
        }
        if (!placed_right(p, n, caps)) {
            ct_fail_in_thread("worker %u: malloc(%zu, 0x%08x) -> %p in a heap without the caps", arg->id, n,
                              (unsigned)caps, (void *)p);
            break;
        }
        if (caps == MALLOC_CAP_SPIRAM && capheap_heap_count() < 4u + RUNTIME_REGIONS) {
            atomic_fetch_add(&spiram_blocks, 1);
        }
        slot[k].p = p;
        slot[k].n = n;
        slot[k].token = ct_token(p);
        ct_stamp_token(p, n, slot[k].token);
    }
    for (size_t k = 0; k < SLOTS; k++) {
        if (slot[k].p) {
            if (!ct_stamp_ok_token(slot[k].p, slot[k].n, slot[k].token)) {
                ct_fail_in_thread("worker %u: block %p lost its stamp", arg->id, (void *)slot[k].p);
            }
            heap_caps_free(slot[k].p);
        }
    }
    atomic_fetch_add(&workers_done, 1);
    return NULL;
}

static void *registrar(void *unused)
{
    (void)unused;
    const uint32_t caps[3] = {MALLOC_CAP_SPIRAM | MALLOC_CAP_DEFAULT, 0, MALLOC_CAP_8BIT | MALLOC_CAP_32BIT};
    while (atomic_load(&total_ops) < 3000u && !ct_thread_failed()) {
        sched_yield(); /* start once the workers are busy */
    }
    for (unsigned i = 0; i < RUNTIME_REGIONS && !ct_thread_failed(); i++) {
        struct timespec ts = {0, 1000 * 1000}; /* let the workers run in between */
        nanosleep(&ts, NULL);
        intptr_t s = cf_at(RUNTIME_BASE + i * (RUNTIME_BYTES + 64u));
        esp_err_t e = heap_caps_add_region_with_caps(caps, s, s + (intptr_t)RUNTIME_BYTES);
        if (e != ESP_OK) {
            ct_fail_in_thread("registrar: add_region %u = %s", i, esp_err_to_name(e));
        }
        /* Before the last region, make sure the workers allocated from the new
         * ones (on a loaded machine the sleeps alone do not promise it); at
         * most 10 s, then the test's assertion says what happened. */
        for (unsigned wait = 0; i + 2u == RUNTIME_REGIONS && atomic_load(&spiram_blocks) == 0 && wait < 10000u;
             wait++) {
            nanosleep(&ts, NULL);
        }
    }
    atomic_store(&registrar_done, 1);
    return NULL;
}

static atomic_ulong monitor_rounds;

static void *monitor(void *unused)
{
    (void)unused;
    while (atomic_load(&workers_done) < WORKERS && !ct_thread_failed()) {
        if (!heap_caps_check_integrity_all(true)) {
            ct_fail_in_thread("monitor: heap_caps_check_integrity_all failed");
            break;
        }
        multi_heap_info_t info;
        heap_caps_get_info(&info, 0);
        if (info.total_blocks != info.allocated_blocks + info.free_blocks) {
            ct_fail_in_thread("monitor: inconsistent block counts");
        }
        (void)heap_caps_get_free_size(MALLOC_CAP_8BIT);
        (void)heap_caps_get_largest_free_block(MALLOC_CAP_DEFAULT);
        (void)heap_caps_get_minimum_free_size(0);
        atomic_fetch_add(&monitor_rounds, 1);
    }
    return NULL;
}

/* The chip of both tests: four start-up heaps, the largest (96 KiB DRAM) last
 * in the list order. */
static void threads_chip(void)
{
    cf_chip_begin("threads");
    size_t tdram = cf_chip_type("DRAM", MALLOC_CAP_8BIT | MALLOC_CAP_DEFAULT,
                                MALLOC_CAP_INTERNAL | MALLOC_CAP_DMA | MALLOC_CAP_32BIT, 0);
    size_t tiram = cf_chip_type("IRAM", MALLOC_CAP_INTERNAL | MALLOC_CAP_EXEC | MALLOC_CAP_32BIT, 0, 0);
    size_t trtc = cf_chip_type("RTCRAM", MALLOC_CAP_RTCRAM, MALLOC_CAP_8BIT | MALLOC_CAP_DEFAULT,
                               MALLOC_CAP_INTERNAL | MALLOC_CAP_32BIT | MALLOC_CAP_EXEC);
    cf_chip_region(cf_at(0), 32 * KIB, tdram, false);
    cf_chip_region(cf_at(64 * KIB), 96 * KIB, tdram, false);
    cf_chip_region(cf_at(192 * KIB), 48 * KIB, tiram, false);
    cf_chip_region(cf_at(256 * KIB), 16 * KIB, trtc, false);
    assert_int_equal(cf_chip_init(NULL, 0), ESP_OK);
    heap_caps_enable_nonos_stack_heaps();
}

static void test_threads(void **state)
{
    (void)state;
    uint64_t seed = ct_seed("caps_threads");
    threads_chip();
    size_t startup = capheap_heap_count();
    intptr_t starts[4];
    size_t free0[4];
    for (size_t i = 0; i < startup; i++) {
        capheap_heap_desc_t d = cf_desc(i);
        starts[i] = d.start;
        free0[i] = multi_heap_free_size(d.heap);
    }

    atomic_store(&workers_done, 0);
    atomic_store(&total_ops, 0);
    atomic_store(&spiram_blocks, 0);
    atomic_store(&registrar_done, 0);
    ct_thread_failure_reset();
    pthread_t w[WORKERS], r, m;
    worker_arg_t args[WORKERS];
    assert_int_equal(pthread_create(&m, NULL, monitor, NULL), 0);
    for (unsigned i = 0; i < WORKERS; i++) {
        args[i].id = i;
        args[i].seed = seed + 0x9E37u * (i + 1u);
        assert_int_equal(pthread_create(&w[i], NULL, worker, &args[i]), 0);
    }
    assert_int_equal(pthread_create(&r, NULL, registrar, NULL), 0);
    for (unsigned i = 0; i < WORKERS; i++) {
        pthread_join(w[i], NULL);
    }
    pthread_join(r, NULL);
    pthread_join(m, NULL);
    if (ct_thread_failed()) {
        fail_msg("%s", ct_thread_failure());
    }
    assert_true(atomic_load(&monitor_rounds) > 0);
    print_message("monitor rounds %lu, SPIRAM blocks during registration %lu\n",
                  (unsigned long)atomic_load(&monitor_rounds), (unsigned long)atomic_load(&spiram_blocks));
    assert_true(atomic_load(&spiram_blocks) > 0); /* allocations really overlapped the registrations */

    /* everything freed: every heap as it was at registration */
    assert_int_equal(capheap_heap_count(), startup + RUNTIME_REGIONS);
    assert_true(heap_caps_check_integrity_all(true));
    for (size_t i = 0; i < startup; i++) {
        int k = cf_index_of_start(starts[i]);
        assert_true(k >= 0);
        assert_int_equal(multi_heap_free_size(cf_desc((size_t)k).heap), free0[i]);
    }
    for (size_t i = 0; i < capheap_heap_count(); i++) {
        capheap_heap_desc_t d = cf_desc(i);
        assert_int_equal(multi_heap_free_size(d.heap), (size_t)(d.end - d.start) - capheap_heap_overhead(d.heap) -
                                                           capheap_heap_poison_overhead(d.heap));
    }
    multi_heap_info_t info;
    heap_caps_get_info(&info, 0);
    assert_int_equal(info.allocated_blocks, 0);
    /* the runtime heaps were used */
    assert_true(heap_caps_get_total_size(MALLOC_CAP_SPIRAM) == RUNTIME_REGIONS * RUNTIME_BYTES);
}

/*
 * Readers that run while heaps are registered see every heap that was there
 * before: a registration rebuilds (speed builds) or shifts (size-optimised
 * builds) the list order in place, and an unlocked walk over it used to miss
 * the last heap for a moment (a malloc only that heap can serve failed) or
 * count a heap twice or not at all (totals went down). Each round: one
 * thread registers 4 KiB regions as fast as it can, one allocates 80 KiB
 * (only the last heap in the order, 96 KiB of DRAM, has room), one sums
 * the heaps' sizes, which may only grow.
 */
#define RACE_ROUNDS 12
#define RACE_REGION (4u * KIB)
#define RACE_BASE (320u * KIB)

static atomic_int race_stop;
static atomic_ulong race_mallocs, race_sums;

static void *race_allocator(void *unused)
{
    (void)unused;
    while (!atomic_load(&race_stop) && !ct_thread_failed()) {
        void *p = heap_caps_malloc(80u * KIB, MALLOC_CAP_8BIT);
        if (p == NULL) {
            ct_fail_in_thread("malloc(80 KiB, 8BIT) failed while heaps were being registered (%zu heaps)",
                              capheap_heap_count());
            break;
        }
        heap_caps_free(p);
        atomic_fetch_add(&race_mallocs, 1);
    }
    return NULL;
}

static void *race_summer(void *unused)
{
    (void)unused;
    size_t last_total = 0, last_spiram = 0;
    while (!atomic_load(&race_stop) && !ct_thread_failed()) {
        size_t total = heap_caps_get_total_size(0);
        size_t spiram = heap_caps_get_total_size(MALLOC_CAP_SPIRAM);
        if (total < last_total || spiram < last_spiram || spiram % RACE_REGION != 0) {
            ct_fail_in_thread("a total went down while heaps were being registered: size %zu after %zu, "
                              "SPIRAM %zu after %zu",
                              total, last_total, spiram, last_spiram);
            break;
        }
        last_total = total;
        last_spiram = spiram;
        atomic_fetch_add(&race_sums, 1);
    }
    return NULL;
}

static void test_registration_races(void **state)
{
    (void)state;
    const uint32_t caps[3] = {MALLOC_CAP_SPIRAM | MALLOC_CAP_DEFAULT, 0, MALLOC_CAP_8BIT | MALLOC_CAP_32BIT};
    ct_thread_failure_reset();
    atomic_store(&race_mallocs, 0);
    atomic_store(&race_sums, 0);
    for (int round = 0; round < RACE_ROUNDS && !ct_thread_failed(); round++) {
        threads_chip();
        size_t room = CAPHEAP_MAX_HEAPS - capheap_heap_count();
        size_t regions = room < 48u ? room : 48u;
        atomic_store(&race_stop, 0);
        pthread_t a, b;
        assert_int_equal(pthread_create(&a, NULL, race_allocator, NULL), 0);
        assert_int_equal(pthread_create(&b, NULL, race_summer, NULL), 0);
        unsigned long m0 = atomic_load(&race_mallocs), s0 = atomic_load(&race_sums);
        while ((atomic_load(&race_mallocs) == m0 || atomic_load(&race_sums) == s0) && !ct_thread_failed()) {
            sched_yield(); /* both readers are running before the first registration */
        }
        for (size_t i = 0; i < regions && !ct_thread_failed(); i++) {
            for (volatile int k = 0; k < 20000; k++) {
            }
            intptr_t s = cf_at(RACE_BASE + i * RACE_REGION);
            assert_int_equal(heap_caps_add_region_with_caps(caps, s, s + (intptr_t)RACE_REGION), ESP_OK);
        }
        atomic_store(&race_stop, 1);
        pthread_join(a, NULL);
        pthread_join(b, NULL);
        assert_true(heap_caps_check_integrity_all(true));
        capheap_caps_reset();
    }
    if (ct_thread_failed()) {
        fail_msg("%s", ct_thread_failure());
    }
    print_message("%lu mallocs and %lu sums during registrations\n", (unsigned long)atomic_load(&race_mallocs),
                  (unsigned long)atomic_load(&race_sums));
    assert_true(atomic_load(&race_mallocs) > 0);
    assert_true(atomic_load(&race_sums) > 0);
}

/* ---- a nested heap's blocks while the address index is rebuilt -------------- */

/* Heap N is a block of heap H registered as a heap of its own (as the DMA
 * pool is); its blocks lie inside H's bounds. A reader asks for the size of a
 * block of N (whose page slot another block keeps evicting, so the lookup
 * searches the address index) while the main thread registers heaps below
 * all others, each of which rebuilds the index in place. A lookup that read
 * the index half-rebuilt could name H, whose bounds hold the pointer too:
 * multi_heap then reported a valid pointer as interior and aborted (a
 * concurrency audit; registry.c's index_gen now sends such a reader to the
 * locked scan). Such a report aborts this program. */
#define NEST_ROUNDS 400
#define NEST_LOW 48 /* heaps registered below the others, per round */

static atomic_int nest_stop;
static void *nest_p, *nest_x;
static atomic_ulong nest_lookups;

static void *nest_reader(void *unused)
{
    (void)unused;
    size_t want = heap_caps_get_allocated_size(nest_p);
    while (!atomic_load_explicit(&nest_stop, memory_order_relaxed) && !ct_thread_failed()) {
        size_t got = heap_caps_get_allocated_size(nest_p);
        (void)heap_caps_get_allocated_size(nest_x); /* takes nest_p's page slot */
        if (got != want) {
            ct_fail_in_thread("a block of the nested heap read %zu bytes, %zu before", got, want);
            break;
        }
        atomic_fetch_add_explicit(&nest_lookups, 1, memory_order_relaxed);
    }
    return NULL;
}

static void test_nested_lookup_during_registration(void **state)
{
    (void)state;
    const uint32_t ch[3] = {MALLOC_CAP_8BIT | MALLOC_CAP_32BIT | MALLOC_CAP_INTERNAL, 0, 0};
    const uint32_t cn[3] = {MALLOC_CAP_8BIT | MALLOC_CAP_32BIT | MALLOC_CAP_SPIRAM, 0, 0};
    const uint32_t cx[3] = {MALLOC_CAP_8BIT | MALLOC_CAP_32BIT | MALLOC_CAP_DMA, 0, 0};
    size_t low = NEST_LOW < CAPHEAP_MAX_HEAPS - 3 ? NEST_LOW : CAPHEAP_MAX_HEAPS - 3;
    ct_thread_failure_reset();
    atomic_store(&nest_lookups, 0);
    for (int round = 0; round < NEST_ROUNDS && !ct_thread_failed(); round++) {
        intptr_t h = cf_at(512 * KIB); /* H: [512 KiB, +256 KiB) of the arena, X above it */
        assert_int_equal(capheap_caps_add_region(ch, h, h + 256 * KIB, NULL), ESP_OK);
        unsigned char *blk = heap_caps_malloc(64 * KIB, ch[0]);
        assert_non_null(blk);
        assert_int_equal(capheap_caps_add_region(cn, (intptr_t)blk, (intptr_t)(blk + 64 * KIB), NULL), ESP_OK);
        assert_int_equal(capheap_caps_add_region(cx, h + 256 * KIB, h + 512 * KIB, NULL), ESP_OK);
        nest_p = heap_caps_malloc(64, MALLOC_CAP_SPIRAM); /* a block of N */
        nest_x = heap_caps_malloc(64, MALLOC_CAP_DMA);
        assert_non_null(nest_p);
        assert_non_null(nest_x);
        atomic_store(&nest_stop, 0);
        pthread_t r;
        unsigned long l0 = atomic_load(&nest_lookups);
        assert_int_equal(pthread_create(&r, NULL, nest_reader, NULL), 0);
        while (atomic_load(&nest_lookups) == l0 && !ct_thread_failed()) {
            sched_yield(); /* the reader is running before the first registration */
        }
        for (size_t k = 0; k < low && !ct_thread_failed(); k++) { /* each below all the others */
            intptr_t s = h - (intptr_t)((k + 1) * 8 * KIB);
            assert_int_equal(capheap_caps_add_region(ch, s, s + 8 * KIB, NULL), ESP_OK);
        }
        atomic_store(&nest_stop, 1);
        pthread_join(r, NULL);
        assert_true(heap_caps_check_integrity_all(true));
        capheap_caps_reset();
    }
    if (ct_thread_failed()) {
        fail_msg("%s", ct_thread_failure());
    }
    print_message("%lu lookups of a nested heap's block during registrations\n",
                  (unsigned long)atomic_load(&nest_lookups));
    assert_true(atomic_load(&nest_lookups) > 0);
}

/* ---- a route entry refilled for another mask while a request walks it ------ */

/* Masks X = 8BIT and Y = PID7 share a route-cache entry (route.c slot()).
 * Heaps: A = {X|Y} (registered last: first for both), B = {X, Y}, C = {Y, X};
 * X's order is [A, B, C], Y's [A, C, B]. A is kept full except for free
 * 960-byte blocks, so a 975-byte X request passes A's unlocked peek, fails
 * under A's lock, and belongs in B. Another thread only makes requests no heap
 * can serve, X and Y by turns, each refilling the shared entry and changing
 * no heap. A block from C means the request walked Y's list under X's key:
 * before the walk took a whole copy of the list (ch_candidates), 0.05% of the
 * requests did (a concurrency audit). */
#define TEAR_X MALLOC_CAP_8BIT
#define TEAR_Y MALLOC_CAP_PID7
#define TEAR_REQUESTS 300000

static atomic_int tear_stop;
static unsigned char *tear_b, *tear_c;

static bool tear_in(const void *p, const unsigned char *lo)
{
    return (const unsigned char *)p >= lo && (const unsigned char *)p < lo + 256 * KIB;
}

static void *tear_refiller(void *unused)
{
    (void)unused;
    for (unsigned long i = 0; !atomic_load_explicit(&tear_stop, memory_order_relaxed); i++)
        (void)heap_caps_malloc(600 * KIB, (i & 1u) ? TEAR_X : TEAR_Y); /* fails: larger than any heap */
    return NULL;
}

static void test_route_refill_race(void **state)
{
    (void)state;
    const uint32_t cb[3] = {TEAR_X, TEAR_Y, 0}, cc[3] = {TEAR_Y, TEAR_X, 0}, ca[3] = {TEAR_X | TEAR_Y, 0, 0};
    tear_b = cf_arena;
    tear_c = cf_arena + 256 * KIB;
    unsigned char *a = cf_arena + 512 * KIB;
    assert_int_equal(capheap_caps_add_region(cb, (intptr_t)tear_b, (intptr_t)(tear_b + 256 * KIB), NULL), ESP_OK);
    assert_int_equal(capheap_caps_add_region(cc, (intptr_t)tear_c, (intptr_t)(tear_c + 256 * KIB), NULL), ESP_OK);
    assert_int_equal(capheap_caps_add_region(ca, (intptr_t)a, (intptr_t)(a + 256 * KIB), NULL), ESP_OK);
    /* A: 960-byte blocks with 16-byte separators, the rest in 16-byte blocks;
     * then the 960-byte ones freed */
    static void *big[400];
    size_t nb = 0;
    for (;;) {
        void *p = heap_caps_malloc(960, TEAR_X | TEAR_Y);
        if (!tear_in(p, a)) {
            heap_caps_free(p);
            break;
        }
        big[nb++] = p;
        void *sep = heap_caps_malloc(16, TEAR_X | TEAR_Y);
        if (!tear_in(sep, a)) {
            heap_caps_free(sep);
            break;
        }
    }
    for (;;) {
        void *sep = heap_caps_malloc(16, TEAR_X | TEAR_Y);
        if (!tear_in(sep, a)) {
            heap_caps_free(sep);
            break;
        }
    }
    for (size_t i = 0; i < nb; i++)
        heap_caps_free(big[i]);
    void *probe = heap_caps_malloc(975, TEAR_X);
    assert_true(tear_in(probe, tear_b)); /* alone, the request lands in B */
    heap_caps_free(probe);

    atomic_store(&tear_stop, 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, tear_refiller, NULL), 0);
    unsigned long in_b = 0, wrong = 0;
    for (unsigned long i = 0; i < TEAR_REQUESTS; i++) {
        void *p = heap_caps_malloc(975, TEAR_X);
        if (tear_in(p, tear_b))
            in_b++;
        else
            wrong++;
        heap_caps_free(p);
    }
    atomic_store(&tear_stop, 1);
    pthread_join(t, NULL);
    print_message("%lu X requests during refills: %lu from B, %lu elsewhere\n", (unsigned long)TEAR_REQUESTS, in_b,
                  wrong);
    assert_int_equal(wrong, 0);
    assert_true(heap_caps_check_integrity_all(true));
}

/* ---- the extended failure callback re-registered during failures ------------ */

/* capheap_register_failed_alloc_callback(cb, user) sets a pair: a failure
 * must call a callback with its own registration's user pointer. With plain
 * stores and loads, 5 of 20 calls got the other one (a concurrency audit);
 * the pair is now written and read under the registry lock. */
#define FLIP_FAILURES 100000

static int flip_tag1 = 1, flip_tag2 = 2;
static atomic_ulong flip_calls, flip_mismatches;
static atomic_int flip_stop;

static void flip_cb1(size_t size, uint32_t caps, const char *fn, const capheap_fit_t *why, void *user)
{
    (void)size, (void)caps, (void)fn, (void)why;
    atomic_fetch_add(&flip_calls, 1);
    if (user != &flip_tag1)
        atomic_fetch_add(&flip_mismatches, 1);
}

static void flip_cb2(size_t size, uint32_t caps, const char *fn, const capheap_fit_t *why, void *user)
{
    (void)size, (void)caps, (void)fn, (void)why;
    atomic_fetch_add(&flip_calls, 1);
    if (user != &flip_tag2)
        atomic_fetch_add(&flip_mismatches, 1);
}

static void *flipper(void *unused)
{
    (void)unused;
    while (!atomic_load_explicit(&flip_stop, memory_order_relaxed)) {
        (void)capheap_register_failed_alloc_callback(flip_cb1, &flip_tag1);
        (void)capheap_register_failed_alloc_callback(flip_cb2, &flip_tag2);
    }
    return NULL;
}

static void test_failure_callback_pair(void **state)
{
    (void)state;
    const uint32_t caps[3] = {MALLOC_CAP_8BIT | MALLOC_CAP_32BIT | MALLOC_CAP_INTERNAL, 0, 0};
    assert_int_equal(capheap_caps_add_region(caps, cf_at(0), cf_at(64 * KIB), NULL), ESP_OK);
    assert_int_equal(capheap_register_failed_alloc_callback(flip_cb1, &flip_tag1), ESP_OK);
    atomic_store(&flip_calls, 0);
    atomic_store(&flip_mismatches, 0);
    atomic_store(&flip_stop, 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, flipper, NULL), 0);
    for (unsigned long i = 0; i < FLIP_FAILURES; i++)
        assert_null(heap_caps_malloc(128 * KIB, MALLOC_CAP_8BIT)); /* larger than the heap */
    atomic_store(&flip_stop, 1);
    pthread_join(t, NULL);
    assert_int_equal(capheap_register_failed_alloc_callback(NULL, NULL), ESP_OK);
    assert_int_equal(atomic_load(&flip_calls), FLIP_FAILURES);
    assert_int_equal(atomic_load(&flip_mismatches), 0);
}

/* work() in a child process; its wait status. */
static int in_child(int (*work)(void))
{
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(work());
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return status;
}

/* ---- a walk that asks for statistics, against the monitor and lock_all ----- */

/* A walk callback runs under the walked heap's lock and may ask for a size
 * (which takes the registry lock, briefly); the minimum-free monitor took the
 * registry lock and then each heap's: the two deadlocked (an audit's probe,
 * within a second). capheap_caps_lock_all (a fork's prepare handler) did the
 * same, the registry's lock and then every heap's: it hung with such a walk
 * within milliseconds, and ThreadSanitizer reported the inversion (a
 * concurrency audit); it now takes the heaps' locks first. The callback asks
 * for the total size, which takes the registry lock and no other heap's: the
 * free size would also take the other heaps' locks, an order ThreadSanitizer
 * rightly reports against the walks of those heaps (esp_heap_caps.h: a second
 * walk doing the same deadlocks). Both threads must make progress; a hang
 * fails by the alarm in a child process, so that this process can report it. */
#define WALK_ROUNDS 300
#define OTHER_ROUNDS 20000 /* monitor windows, or lock_all and unlock_all pairs */

static atomic_int walk_stop;
static atomic_ulong other_count;

static bool walk_asks_size(walker_heap_into_t heap, walker_block_info_t block, void *user)
{
    (void)heap, (void)block;
    *(size_t *)user += heap_caps_get_total_size(MALLOC_CAP_8BIT) != 0;
    return true;
}

static void *monitor_windows(void *unused)
{
    (void)unused;
    while (!atomic_load(&walk_stop)) {
        (void)heap_caps_monitor_local_minimum_free_size_start();
        (void)heap_caps_monitor_local_minimum_free_size_stop();
        atomic_fetch_add(&other_count, 1);
    }
    return NULL;
}

static void *lock_all_rounds(void *unused)
{
    (void)unused;
    while (!atomic_load(&walk_stop)) {
        capheap_caps_lock_all(); /* what a fork's prepare and parent handlers do */
        capheap_caps_unlock_all();
        atomic_fetch_add(&other_count, 1);
    }
    return NULL;
}

/* Walks asking for sizes while other() runs in a second thread; 0 if both made progress. */
static int walk_against(void *(*other)(void *))
{
    alarm(10);
    pthread_t t;
    if (pthread_create(&t, NULL, other, NULL) != 0)
        return 2;
    size_t asked = 0;
    void *p[8];
    for (int i = 0; i < 8; i++)
        p[i] = heap_caps_malloc(64u + (size_t)i * 32u, MALLOC_CAP_DEFAULT);
    /* both sides busy for a while: the walks overlap many rounds of the other */
    for (int r = 0; r < WALK_ROUNDS || atomic_load(&other_count) < OTHER_ROUNDS; r++)
        heap_caps_walk_all(walk_asks_size, &asked);
    atomic_store(&walk_stop, 1);
    pthread_join(t, NULL);
    for (int i = 0; i < 8; i++)
        heap_caps_free(p[i]);
    return asked >= WALK_ROUNDS && heap_caps_check_integrity_all(true) ? 0 : 3;
}

static int walk_and_monitor(void)
{
    return walk_against(monitor_windows);
}

static int walk_and_lock_all(void)
{
    return walk_against(lock_all_rounds);
}

static void run_walk_against(int (*work)(void), const char *what)
{
    threads_chip();
    atomic_store(&walk_stop, 0);
    atomic_store(&other_count, 0);
    int status = in_child(work);
    if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
        fail_msg("%s: %s %d (SIGALRM 14: a deadlock)", what, WIFSIGNALED(status) ? "signal" : "exit status",
                 WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
    }
}

static void test_walk_callback_against_monitor(void **state)
{
    (void)state;
    run_walk_against(walk_and_monitor, "walk and monitor");
}

static void test_walk_callback_against_lock_all(void **state)
{
    (void)state;
    run_walk_against(walk_and_lock_all, "walk and lock_all");
}

/* ---- minimum-free windows opened and closed by several threads ------------- */

/* Threads open and close the one monitor window at random: each start and
 * each stop either succeeds or finds the window in the other state, one at a
 * time. So the stops that succeed are never more than the starts that did,
 * and at most one window is left open. (A stop that tested and cleared the
 * flag outside the monitor's lock let two stops close one window.) */
#define WINDOW_THREADS 4
#define WINDOW_ROUNDS 20000

static atomic_long window_starts, window_stops;

static void *window_opener(void *argp)
{
    ct_rng_t rng;
    ct_rng_init(&rng, (uint64_t)(uintptr_t)argp);
    for (int i = 0; i < WINDOW_ROUNDS; i++) {
        if (ct_rng_below(&rng, 2)) {
            if (heap_caps_monitor_local_minimum_free_size_start() == ESP_OK)
                atomic_fetch_add(&window_starts, 1);
        } else if (heap_caps_monitor_local_minimum_free_size_stop() == ESP_OK) {
            atomic_fetch_add(&window_stops, 1);
        }
    }
    return NULL;
}

static void test_monitor_windows_from_threads(void **state)
{
    (void)state;
    threads_chip();
    atomic_store(&window_starts, 0);
    atomic_store(&window_stops, 0);
    uint64_t seed = ct_seed("monitor_windows");
    pthread_t t[WINDOW_THREADS];
    for (uintptr_t i = 0; i < WINDOW_THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, window_opener, (void *)(uintptr_t)(seed + i)), 0);
    for (size_t i = 0; i < WINDOW_THREADS; i++)
        pthread_join(t[i], NULL);
    long open = atomic_load(&window_starts) - atomic_load(&window_stops);
    if (open != 0 && open != 1)
        fail_msg("%ld starts and %ld stops succeeded", atomic_load(&window_starts), atomic_load(&window_stops));
    assert_int_equal(heap_caps_monitor_local_minimum_free_size_stop(), open == 1 ? ESP_OK : ESP_FAIL);
    assert_true(heap_caps_check_integrity_all(true));
}

/* ---- fork while busy ------------------------------------------------------ */

#define FORKS 40
#define CHILD_BLOCKS 64

static atomic_int fork_stop;
static atomic_ulong fork_ops;

static void *fork_churner(void *argp)
{
    ct_rng_t rng;
    ct_rng_init(&rng, (uint64_t)(uintptr_t)argp);
    unsigned char *slot[32] = {0};
    while (!atomic_load(&fork_stop)) {
        size_t k = (size_t)ct_rng_below(&rng, 32);
        if (slot[k] != NULL) {
            heap_caps_free(slot[k]);
            slot[k] = NULL;
        } else {
            uint32_t caps = ct_rng_below(&rng, 2) ? MALLOC_CAP_DEFAULT : MALLOC_CAP_8BIT | MALLOC_CAP_INTERNAL;
            slot[k] = heap_caps_malloc((size_t)ct_rng_range(&rng, 1, 600), caps);
        }
        atomic_fetch_add(&fork_ops, 1);
    }
    for (size_t k = 0; k < 32; k++)
        heap_caps_free(slot[k]);
    return NULL;
}

/* The child: allocate, stamp, check, free, check the heaps; with tracing,
 * its allocations are recorded. Exit status 0 if all of it worked. */
static int fork_child_work(void)
{
    alarm(5); /* a lock inherited held: SIGALRM ends the child, the parent sees it */
    unsigned char *p[CHILD_BLOCKS];
    size_t before = heap_trace_get_count();
    for (unsigned i = 0; i < CHILD_BLOCKS; i++) {
        p[i] = heap_caps_malloc(16u + i * 8u, MALLOC_CAP_DEFAULT);
        if (p[i] == NULL)
            return 2;
        ct_stamp(p[i], 16u + i * 8u);
    }
    if (CAPHEAP_TRACING && heap_trace_get_count() < before + CHILD_BLOCKS)
        return 3; /* the trace lock was inherited held or the records lost */
    for (unsigned i = 0; i < CHILD_BLOCKS; i++) {
        if (!ct_stamp_ok(p[i], 16u + i * 8u))
            return 4;
        heap_caps_free(p[i]);
    }
    /* the monitor's lock too: a third thread opens and closes windows (a
     * review found the child hanging here, its lock not among lock_all's) */
    (void)heap_caps_monitor_local_minimum_free_size_stop(); /* a window the parent's thread had open */
    if (heap_caps_monitor_local_minimum_free_size_start() != ESP_OK ||
        heap_caps_monitor_local_minimum_free_size_stop() != ESP_OK)
        return 6;
    return heap_caps_check_integrity_all(true) ? 0 : 5;
}

static void *fork_monitor(void *unused)
{
    (void)unused;
    while (!atomic_load(&fork_stop)) {
        (void)heap_caps_monitor_local_minimum_free_size_start();
        (void)heap_caps_monitor_local_minimum_free_size_stop();
    }
    return NULL;
}

/* Registers runtime regions between forks, first in the search order: the
 * churners' requests go there at once. capheap_caps_lock_all takes the heaps'
 * locks before the registry's, so a heap registered while it does so must be
 * found and locked too, or a child inherits its lock held (a narrow window:
 * this shows registrations and forks get on, it rarely hits the window). */
#define FORK_REGIONS 24

static atomic_int forks_done;

static void *fork_registrar(void *unused)
{
    (void)unused;
    const uint32_t caps[3] = {MALLOC_CAP_DEFAULT | MALLOC_CAP_8BIT | MALLOC_CAP_32BIT, 0, 0};
    for (size_t i = 0; i < FORK_REGIONS && !atomic_load(&fork_stop); i++) {
        while (atomic_load(&forks_done) < (int)i && !atomic_load(&fork_stop))
            sched_yield(); /* one region per fork, while the next one comes */
        intptr_t s = cf_at(RACE_BASE + i * RACE_REGION);
        if (heap_caps_add_region_with_caps(caps, s, s + (intptr_t)RACE_REGION) != ESP_OK)
            ct_fail_in_thread("fork_registrar: region %zu refused", i);
    }
    return NULL;
}

static void test_fork_while_busy(void **state)
{
    (void)state;
    static bool registered;
    if (!registered) { /* handlers stay for the process: once */
        assert_int_equal(pthread_atfork(capheap_caps_lock_all, capheap_caps_unlock_all, capheap_caps_unlock_all_child),
                         0);
        registered = true;
    }
    threads_chip();
#if CAPHEAP_TRACING
    static heap_trace_record_t records[4096];
    assert_int_equal(heap_trace_init_standalone(records, 4096), ESP_OK);
    /* leaks mode: a free drops its record, so the churners keep few and the
     * child's 64 allocations must each add one */
    assert_int_equal(heap_trace_start(HEAP_TRACE_LEAKS), ESP_OK);
#endif
    atomic_store(&fork_stop, 0);
    atomic_store(&fork_ops, 0);
    ct_thread_failure_reset();
    atomic_store(&forks_done, 0);
    pthread_t t[4];
    for (uintptr_t i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, fork_churner, (void *)(i + 1u)), 0);
    assert_int_equal(pthread_create(&t[2], NULL, fork_monitor, NULL), 0);
    assert_int_equal(pthread_create(&t[3], NULL, fork_registrar, NULL), 0);
    int bad = 0, bad_status = 0;
    for (int f = 0; f < FORKS; f++) {
        unsigned long ops = atomic_load(&fork_ops);
        while (atomic_load(&fork_ops) < ops + 200u)
            sched_yield(); /* the threads are inside the allocator at the fork, often */
        int status = in_child(fork_child_work);
        atomic_fetch_add(&forks_done, 1);
        if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
            bad++;
            bad_status = status;
        }
    }
    atomic_store(&fork_stop, 1);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    if (ct_thread_failed())
        fail_msg("%s", ct_thread_failure());
#if CAPHEAP_TRACING
    assert_int_equal(heap_trace_stop(), ESP_OK);
    assert_int_equal(heap_trace_init_standalone(NULL, 0), ESP_OK);
#endif
    if (bad != 0) {
        fail_msg("%d of %d children failed; the last: %s %d (5 s alarm: a hang; 2 malloc failed, 3 not traced, "
                 "4 stamp lost, 5 integrity, 6 monitor)",
                 bad, FORKS, WIFSIGNALED(bad_status) ? "signal" : "exit status",
                 WIFSIGNALED(bad_status) ? WTERMSIG(bad_status) : WEXITSTATUS(bad_status));
    }
    assert_true(heap_caps_check_integrity_all(true));
    assert_int_equal(capheap_heap_count(), 4u + FORK_REGIONS);
    print_message("%d forks during %lu allocator calls\n", FORKS, (unsigned long)atomic_load(&fork_ops));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_threads, cf_setup, cf_teardown),
        cmocka_unit_test_setup_teardown(test_registration_races, cf_setup, cf_teardown),
        cmocka_unit_test_setup_teardown(test_nested_lookup_during_registration, cf_setup, cf_teardown),
        cmocka_unit_test_setup_teardown(test_route_refill_race, cf_setup, cf_teardown),
        cmocka_unit_test_setup_teardown(test_failure_callback_pair, cf_setup, cf_teardown),
        cmocka_unit_test_setup_teardown(test_walk_callback_against_monitor, cf_setup, cf_teardown),
        cmocka_unit_test_setup_teardown(test_walk_callback_against_lock_all, cf_setup, cf_teardown),
        cmocka_unit_test_setup_teardown(test_monitor_windows_from_threads, cf_setup, cf_teardown),
        cmocka_unit_test_setup_teardown(test_fork_while_busy, cf_setup, cf_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
