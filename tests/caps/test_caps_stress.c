/*
 * test_caps_stress.c - the whole public heap_caps API at once, from several
 * threads, on a simulated ESP32 with PSRAM.
 *
 * Three workers allocate (malloc, calloc, realloc, aligned_alloc,
 * aligned_calloc, the prefer variants) and free with DEFAULT, INTERNAL, DMA,
 * SPIRAM, 32BIT, EXEC and mixed masks, stamp every block and check the stamp
 * before it is resized or freed, check that each block honours its caps and
 * alignment, that get_allocated_size and get_containing_block_size agree,
 * ask capheap_would_fit, and now and then make a request no heap can serve
 * (failure callbacks) or add a runtime region. With task tracking each
 * worker's own figure must equal what it holds. An observer thread meanwhile
 * asks every question the API has (sizes, info, print_heap_info into a
 * counting writer, monitor windows, walks with a read-only callback, the
 * full and the incremental checks, both failure callbacks re-registered,
 * heap tracing started, dumped, summarised and stopped, the task-tracking
 * queries and reports). At the end every block is freed: every heap is back
 * to its free size at the start and intact.
 *
 * A second test swaps the output and abort sinks while another thread
 * prints and reports; a third describes a block (as every corruption
 * report does) while another thread gives tracing a new buffer; a fourth
 * makes fatal reports while another registers heaps.
 *
 * Meant for ThreadSanitizer as much as for plain builds (CI runs it in its
 * tsan builds; helgrind knows neither the atomics of the unlocked readers
 * nor the tracer's and the tracker's spinlocks, and reports both); bounded
 * (STRESS_OPS per worker, or the environment's CAPHEAP_STRESS_OPS). Failures
 * inside threads are recorded and asserted by the main thread. Seeded
 * (CAPHEAP_SEED).
 */
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <unistd.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "support.h"
#include "caps_fixture.h"
#include "capheap/check.h"
#include "capheap/report.h"
#include "capheap/sim.h"
#include "esp_heap_task_info.h"
#include "esp_heap_trace.h"
#include "esp_memory_utils.h"

#define KIB 1024u
#define WORKERS 3
#define STRESS_OPS 40000 /* per worker; CAPHEAP_STRESS_OPS overrides (valgrind runs) */
static int stress_ops = STRESS_OPS;
#define SLOTS 48
#define EXTRA_REGIONS 3
#define EXTRA_BYTES (16u * KIB)

static atomic_int workers_joined; /* set after they have exited (the tracker learns of it) */

/* ---- callbacks, hooks, the writer ------------------------------------------ */

static atomic_ulong written_bytes, failures_seen, ext_failures_seen, ext_mismatches;
static int ext_tag1 = 1, ext_tag2 = 2;

static void counting_writer(const char *text, size_t len)
{
    (void)text;
    atomic_fetch_add_explicit(&written_bytes, len, memory_order_relaxed);
}

static void failed_cb(size_t size, uint32_t caps, const char *fn)
{
    (void)size, (void)caps, (void)fn;
    atomic_fetch_add(&failures_seen, 1);
}

static void ext_cb(size_t size, uint32_t caps, const char *fn, const capheap_fit_t *why, void *user)
{
    (void)size, (void)caps, (void)fn;
    atomic_fetch_add(&ext_failures_seen, 1);
    if ((user != &ext_tag1 && user != &ext_tag2) || why == NULL)
        atomic_fetch_add(&ext_mismatches, 1);
}

#ifdef CONFIG_HEAP_USE_HOOKS
static atomic_ulong hook_allocs, hook_frees, hook_reallocs;

/* They run with no lock held and may ask the heap (esp_heap_caps.h); a
 * realloc inside its heap calls the realloc hook only, so every alloc hook
 * is matched by a free hook once everything is freed. */
void esp_heap_trace_alloc_hook(void *ptr, size_t size, uint32_t caps)
{
    (void)caps;
    atomic_fetch_add(&hook_allocs, 1);
    if (heap_caps_get_allocated_size(ptr) < size)
        ct_fail_in_thread("alloc hook: %p has %zu bytes, not %zu", ptr, heap_caps_get_allocated_size(ptr), size);
}

void capheap_heap_trace_realloc_hook(void *old_ptr, void *new_ptr, size_t size, uint32_t caps)
{
    (void)old_ptr, (void)caps;
    atomic_fetch_add(&hook_reallocs, 1);
    if (heap_caps_get_allocated_size(new_ptr) < size)
        ct_fail_in_thread("realloc hook: %p has %zu bytes, not %zu", new_ptr, heap_caps_get_allocated_size(new_ptr),
                          size);
}

void esp_heap_trace_free_hook(void *ptr)
{
    atomic_fetch_add(&hook_frees, 1);
    if (heap_caps_get_allocated_size(ptr) == 0)
        ct_fail_in_thread("free hook: %p is no live block", ptr);
}
#endif

/* ---- workers ----------------------------------------------------------------- */

static const uint32_t stress_caps[] = {
    MALLOC_CAP_DEFAULT, MALLOC_CAP_INTERNAL, MALLOC_CAP_DMA, MALLOC_CAP_SPIRAM,
    MALLOC_CAP_32BIT,   MALLOC_CAP_8BIT | MALLOC_CAP_INTERNAL, MALLOC_CAP_DMA | MALLOC_CAP_INTERNAL,
#if CAPHEAP_EXEC_HEAP
    MALLOC_CAP_EXEC,
#endif
};
#define N_CAPS (sizeof stress_caps / sizeof stress_caps[0])

/* Runtime regions the workers add (from the host's memory, apart from the chip). */
static _Alignas(16) unsigned char extra[EXTRA_REGIONS][EXTRA_BYTES];
static atomic_uint extra_added;
#define LATE_REGIONS 40 /* test_report_while_registering's */
#define LATE_BYTES 1024u
static _Alignas(16) unsigned char late[LATE_REGIONS][LATE_BYTES];
static const uint32_t extra_caps[3] = {MALLOC_CAP_INTERNAL | MALLOC_CAP_DEFAULT,
                                       MALLOC_CAP_8BIT | MALLOC_CAP_32BIT | MALLOC_CAP_DMA, 0};

/* The heap holding p (n bytes) has every bit of caps; EXEC blocks are
 * IRAM-side pointers (ESP32's alias), checked by their size alone. */
static bool placed_right(const void *p, size_t n, uint32_t caps)
{
    if (caps & MALLOC_CAP_EXEC)
        return esp_ptr_internal(p) && heap_caps_get_allocated_size((void *)p) >= n;
    for (int attempt = 0; attempt < 100; attempt++) {
        int i = capheap_heap_find(p);
        capheap_heap_desc_t d;
        if (i < 0 || !capheap_heap_get((size_t)i, &d) || !cf_inside(p, n, d.start, d.end))
            continue; /* the list grew meanwhile: indices shifted */
        return (cf_all_caps(&d) & caps) == caps;
    }
    return false;
}

typedef struct {
    unsigned char *p;
    size_t n;
    uint32_t token;
} block_t;

typedef struct {
    unsigned id;
    uint64_t seed;
    block_t slot[SLOTS];
} worker_t;

/* A new block of n bytes with caps; *align: the alignment asked for (0: none). */
static unsigned char *new_block(ct_rng_t *rng, size_t n, uint32_t caps, size_t *align)
{
    *align = 0;
    switch (ct_rng_below(rng, 7)) {
    case 0:
        return heap_caps_calloc(1, n, caps);
    case 1:
        *align = (size_t)1 << ct_rng_range(rng, 2, 7);
        return heap_caps_aligned_alloc(*align, n, caps);
    case 2:
        *align = (size_t)1 << ct_rng_range(rng, 2, 6);
        return heap_caps_aligned_calloc(*align, 1, n, caps);
    case 3:
        return heap_caps_malloc_prefer(n, 2, caps | MALLOC_CAP_INTERNAL, caps); /* both have caps */
    case 4:
        return heap_caps_calloc_prefer(1, n, 2, caps | MALLOC_CAP_INTERNAL, caps);
    default:
        return heap_caps_malloc(n, caps);
    }
}

/* With task tracking, what this thread holds equals the tracker's figure for it. */
static void check_own_usage(worker_t *w)
{
#if CAPHEAP_TASK_TRACKING
    static _Thread_local heap_stat_t heaps[CAPHEAP_MAX_HEAPS];
    static _Thread_local heap_task_block_t blocks[SLOTS + 8];
    size_t held = 0, count = 0;
    for (size_t k = 0; k < SLOTS; k++)
        if (w->slot[k].p) {
            held += heap_caps_get_allocated_size(w->slot[k].p);
            count++;
        }
    heap_single_task_stat_t st;
    memset(&st, 0, sizeof st);
    st.heap_count = CAPHEAP_MAX_HEAPS;
    st.heap_stat_start = heaps;
    st.alloc_count = SLOTS + 8;
    st.alloc_stat_start = blocks;
    esp_err_t e = heap_caps_get_single_task_stat(&st, NULL);
    if (e == ESP_FAIL && count == 0)
        return; /* no block yet: the tracker does not know this thread */
    if (e != ESP_OK || st.stat.overall_current_usage != held || st.alloc_count != count)
        ct_fail_in_thread("worker %u: the tracker says %zu bytes in %zu blocks (%s), the worker holds %zu in %zu",
                          w->id, st.stat.overall_current_usage, st.alloc_count, esp_err_to_name(e), held, count);
#else
    (void)w;
#endif
}

static void *worker(void *argp)
{
    worker_t *w = argp;
    ct_rng_t rng;
    ct_rng_init(&rng, w->seed);
    for (int op = 0; op < stress_ops && !ct_thread_failed(); op++) {
        block_t *b = &w->slot[ct_rng_below(&rng, SLOTS)];
        uint32_t caps = stress_caps[ct_rng_below(&rng, N_CAPS)];
        size_t n = (size_t)ct_rng_range(&rng, 1, ct_rng_below(&rng, 8) == 0 ? 3000 : 200);
        unsigned what = (unsigned)ct_rng_below(&rng, 64);
        if (what == 0) { /* no heap can serve it: both failure callbacks */
            if (heap_caps_malloc(64u * 1024u * 1024u, caps) != NULL)
                ct_fail_in_thread("worker %u: a 64 MiB request succeeded", w->id);
            continue;
        }
        if (op % (stress_ops / (EXTRA_REGIONS + 1)) == 0 && op > 0) { /* spread over the run */
            unsigned i = atomic_fetch_add(&extra_added, 1);
            if (i < EXTRA_REGIONS) {
                esp_err_t e = heap_caps_add_region_with_caps(extra_caps, (intptr_t)extra[i],
                                                             (intptr_t)(extra[i] + EXTRA_BYTES));
                if (e != ESP_OK)
                    ct_fail_in_thread("worker %u: add_region %u = %s", w->id, i, esp_err_to_name(e));
            }
            continue;
        }
        if (what == 1) { /* the libc policy, which the observer changes meanwhile */
            void *p = ct_rng_below(&rng, 2) ? heap_caps_malloc_default(n) : heap_caps_aligned_alloc_default(16, n);
            if (p != NULL && heap_caps_get_allocated_size(p) < n)
                ct_fail_in_thread("worker %u: a policy block of %zu bytes holds %zu", w->id, n,
                                  heap_caps_get_allocated_size(p));
            p = heap_caps_realloc_default(p, n * 2);
            heap_caps_free(p);
            continue;
        }
        if (what == 2) {
            capheap_fit_t fit;
            bool ok = capheap_would_fit(n, caps, 0, &fit);
            if (ok != (fit.reason == CAPHEAP_FIT_OK) || (ok && fit.heap_index < 0))
                ct_fail_in_thread("worker %u: would_fit(%zu, 0x%x) = %d, reason %d", w->id, n, (unsigned)caps, ok,
                                  (int)fit.reason);
            continue;
        }
        if (what == 3) {
            check_own_usage(w);
            continue;
        }
        if (b->p) {
            if (!ct_stamp_ok_token(b->p, b->n, b->token)) {
                ct_fail_in_thread("worker %u: block %p (%zu bytes) lost its stamp", w->id, (void *)b->p, b->n);
                break;
            }
            size_t got = heap_caps_get_allocated_size(b->p);
            size_t inside = heap_caps_get_containing_block_size(b->p + b->n / 2);
            if (got < b->n || inside != got) {
                ct_fail_in_thread("worker %u: %p of %zu bytes: allocated size %zu, containing block %zu", w->id,
                                  (void *)b->p, b->n, got, inside);
                break;
            }
            if (!heap_caps_check_integrity_addr((intptr_t)b->p, true)) {
                ct_fail_in_thread("worker %u: the heap of %p is not intact", w->id, (void *)b->p);
                break;
            }
            if (ct_rng_below(&rng, 3) == 0) {
                unsigned char *q = ct_rng_below(&rng, 4)
                                       ? heap_caps_realloc(b->p, n, caps)
                                       : heap_caps_realloc_prefer(b->p, n, 2, caps | MALLOC_CAP_INTERNAL, caps);
                if (q == NULL) {
                    if (!ct_stamp_ok_token(b->p, b->n, b->token))
                        ct_fail_in_thread("worker %u: a failed realloc damaged the block", w->id);
                    continue;
                }
                size_t keep = n < b->n ? n : b->n;
                if (!ct_stamp_ok_token(q, keep, b->token) || !placed_right(q, n, caps)) {
                    ct_fail_in_thread("worker %u: realloc(%zu, 0x%x) -> %p lost the contents or the caps", w->id, n,
                                      (unsigned)caps, (void *)q);
                    break;
                }
                b->p = q;
            } else {
                heap_caps_free(b->p);
                b->p = NULL;
                continue;
            }
        } else {
            size_t align;
            b->p = new_block(&rng, n, caps, &align);
            if (b->p == NULL)
                continue;
            if (!placed_right(b->p, n, caps) || (align && (uintptr_t)b->p % align != 0)) {
                ct_fail_in_thread("worker %u: %zu bytes, caps 0x%x, alignment %zu -> %p", w->id, n, (unsigned)caps,
                                  align, (void *)b->p);
                break;
            }
        }
        b->n = n;
        b->token = ct_token(b->p);
        ct_stamp_token(b->p, n, b->token);
    }
    check_own_usage(w);
    for (size_t k = 0; k < SLOTS; k++) {
        if (w->slot[k].p && !ct_stamp_ok_token(w->slot[k].p, w->slot[k].n, w->slot[k].token))
            ct_fail_in_thread("worker %u: block %p lost its stamp", w->id, (void *)w->slot[k].p);
        heap_caps_free(w->slot[k].p);
        w->slot[k].p = NULL;
    }
    return NULL;
}

/* ---- the observer ------------------------------------------------------------ */

typedef struct {
    size_t blocks;
    size_t bad;
} walk_count_t;

/* Reads its arguments only (a walk callback may not open monitor windows or walk). */
static bool walk_reader(walker_heap_into_t heap, walker_block_info_t block, void *user)
{
    walk_count_t *c = user;
    c->blocks++;
    if ((intptr_t)block.ptr < heap.start || (intptr_t)block.ptr + (intptr_t)block.size > heap.end)
        c->bad++;
    return true;
}

#if CAPHEAP_TRACING
static heap_trace_record_t trace_records[512];
#endif

static atomic_ulong observer_rounds;

static void observe_tasks(FILE *sink)
{
#if CAPHEAP_TASK_TRACKING
    static heap_task_totals_t totals[16];
    static heap_task_block_t blocks[64];
    size_t num_totals = 0;
    heap_task_info_params_t params = {{0}, {0}, NULL, 0, totals, &num_totals, 16, blocks, 64};
    params.caps[0] = MALLOC_CAP_SPIRAM;
    params.mask[0] = MALLOC_CAP_SPIRAM; /* class 0: PSRAM, class 1: everything else */
    (void)heap_caps_get_per_task_info(&params);
    heap_all_tasks_stat_t all;
    memset(&all, 0, sizeof all);
    if (heap_caps_alloc_all_task_stat_arrays(&all) == ESP_OK)
        (void)heap_caps_get_all_task_stat(&all);
    heap_caps_free_all_task_stat_arrays(&all);
    heap_caps_print_all_task_stat_overview(sink);
    heap_caps_print_all_task_stat(sink);
    capheap_task_tracking_stats_t ts;
    if (capheap_task_tracking_get_stats(&ts) != ESP_OK)
        ct_fail_in_thread("observer: capheap_task_tracking_get_stats failed");
#else
    (void)sink;
#endif
}

static void observe_trace(unsigned round)
{
#if CAPHEAP_TRACING
    switch (round % 4) {
    case 0:
        if (heap_trace_start(round % 8 ? HEAP_TRACE_LEAKS : HEAP_TRACE_ALL) != ESP_OK)
            ct_fail_in_thread("observer: heap_trace_start failed");
        break;
    case 1: {
        heap_trace_summary_t s;
        if (heap_trace_summary(&s) != ESP_OK || heap_trace_get_count() > 512u)
            ct_fail_in_thread("observer: heap_trace_summary");
        heap_trace_record_t r;
        if (heap_trace_get_count() > 0)
            (void)heap_trace_get(0, &r);
        break;
    }
    case 2:
        heap_trace_dump();
        if (round % 3 == 0 && heap_trace_alloc_pause() == ESP_OK)
            (void)heap_trace_resume(); /* frees are still recorded while paused */
        break;
    default:
        (void)heap_trace_stop();
        break;
    }
#else
    (void)round;
#endif
}

static void *observer(void *sinkp)
{
    FILE *sink = sinkp;
    capheap_check_cursor_t cur = CAPHEAP_CHECK_CURSOR_INIT;
    for (unsigned round = 0; !atomic_load(&workers_joined) && !ct_thread_failed(); round++) {
        if (round == 40)
            heap_caps_enable_nonos_stack_heaps(); /* deferred by the boot: registered under load */
        multi_heap_info_t info;
        heap_caps_get_info(&info, 0);
        if (info.total_blocks != info.allocated_blocks + info.free_blocks)
            ct_fail_in_thread("observer: inconsistent block counts");
        (void)heap_caps_get_free_size(MALLOC_CAP_8BIT);
        (void)heap_caps_get_minimum_free_size(MALLOC_CAP_INTERNAL);
        (void)heap_caps_get_largest_free_block(MALLOC_CAP_DMA);
        (void)heap_caps_get_total_size(MALLOC_CAP_SPIRAM);
        (void)capheap_get_largest_free_block_aligned(MALLOC_CAP_DEFAULT, 64);
        if (!capheap_check_step(&cur, 32, true))
            ct_fail_in_thread("observer: capheap_check_step found corruption");
        switch (round % 6) {
        case 0:
            heap_caps_print_heap_info(MALLOC_CAP_DEFAULT);
            if (round % 12 == 0)
                heap_caps_dump(MALLOC_CAP_DMA);
            if (round % 18 == 0)
                heap_caps_malloc_extmem_enable(round % 36 ? 64 : 4096);
            else if (round % 30 == 0)
                capheap_malloc_extmem_disable();
            break;
        case 1:
            if (heap_caps_monitor_local_minimum_free_size_start() != ESP_OK)
                ct_fail_in_thread("observer: monitor start");
            break;
        case 2: {
            walk_count_t c = {0, 0};
            heap_caps_walk_all(walk_reader, &c);
            heap_caps_walk(MALLOC_CAP_SPIRAM, walk_reader, &c);
            if (c.blocks == 0 || c.bad != 0)
                ct_fail_in_thread("observer: walk saw %zu blocks, %zu outside their heap", c.blocks, c.bad);
            break;
        }
        case 3:
            if (heap_caps_monitor_local_minimum_free_size_stop() != ESP_OK)
                ct_fail_in_thread("observer: monitor stop");
            if (!heap_caps_check_integrity_all(true))
                ct_fail_in_thread("observer: heap_caps_check_integrity_all failed");
            break;
        case 4:
            (void)heap_caps_register_failed_alloc_callback(round % 12 ? failed_cb : NULL);
            (void)capheap_register_failed_alloc_callback(ext_cb, round % 12 ? &ext_tag1 : &ext_tag2);
            observe_tasks(sink);
            break;
        default:
            observe_trace(round / 6);
            break;
        }
        atomic_fetch_add(&observer_rounds, 1);
    }
    (void)heap_caps_monitor_local_minimum_free_size_stop(); /* a window left open: ESP_FAIL otherwise */
    return NULL;
}

/* ---- the test ------------------------------------------------------------------ */

static int stress_setup(void **state)
{
    (void)state;
    const capheap_chip_t *chip = capheap_chip_find("esp32");
    if (chip == NULL)
        return -1;
    capheap_sim_options_t o = CAPHEAP_SIM_OPTIONS_DEFAULT;
    o.quiet = true;
    o.psram_bytes = 512u * KIB;
    o.defer_nonos_stack_heaps = true; /* the observer enables them while the workers run */
    return capheap_sim_boot(chip, &o) == ESP_OK ? 0 : -1;
}

static int stress_teardown(void **state)
{
    (void)state;
    esp_err_t e = capheap_sim_shutdown();
    capheap_sanitizer_release(extra, sizeof extra);
    capheap_sanitizer_release(late, sizeof late);
    return e == ESP_OK ? 0 : -1;
}

static void test_stress(void **state)
{
    (void)state;
    uint64_t seed = ct_seed("caps_stress");
    const char *ops = getenv("CAPHEAP_STRESS_OPS");
    if (ops != NULL && atoi(ops) >= 1000)
        stress_ops = atoi(ops);
    size_t heaps0 = capheap_heap_count();
    intptr_t starts[CAPHEAP_MAX_HEAPS];
    size_t free0[CAPHEAP_MAX_HEAPS];
    for (size_t i = 0; i < heaps0; i++) {
        capheap_heap_desc_t d = cf_desc(i);
        starts[i] = d.start;
        free0[i] = d.heap ? multi_heap_free_size(d.heap) : 0;
    }
    multi_heap_info_t info0;
    heap_caps_get_info(&info0, 0);
#ifdef CONFIG_HEAP_USE_HOOKS
    unsigned long live0 = atomic_load(&hook_allocs) - atomic_load(&hook_frees); /* the boot's DMA pool */
#endif
#if CAPHEAP_TRACING
    assert_int_equal(heap_trace_init_standalone(trace_records, 512), ESP_OK);
#endif
    FILE *sink = fopen("/dev/null", "w");
    assert_non_null(sink);
    capheap_write_fn old_writer = capheap_set_writer(counting_writer);
    assert_int_equal(heap_caps_register_failed_alloc_callback(failed_cb), ESP_OK);
    assert_int_equal(capheap_register_failed_alloc_callback(ext_cb, &ext_tag1), ESP_OK);
    ct_thread_failure_reset();
    atomic_store(&workers_joined, 0);
    atomic_store(&extra_added, 0);

    static worker_t w[WORKERS];
    pthread_t t[WORKERS], obs;
    assert_int_equal(pthread_create(&obs, NULL, observer, sink), 0);
    for (unsigned i = 0; i < WORKERS; i++) {
        memset(&w[i], 0, sizeof w[i]);
        w[i].id = i;
        w[i].seed = seed + 0x9E37u * (i + 1u);
        assert_int_equal(pthread_create(&t[i], NULL, worker, &w[i]), 0);
    }
    for (unsigned i = 0; i < WORKERS; i++)
        pthread_join(t[i], NULL);
    atomic_store(&workers_joined, 1);
    pthread_join(obs, NULL);
    heap_caps_enable_nonos_stack_heaps(); /* registers nothing if the observer did (a slow run may not) */
#if CAPHEAP_TRACING
    (void)heap_trace_stop();
    assert_int_equal(heap_trace_init_standalone(NULL, 0), ESP_OK);
#endif
    (void)capheap_set_writer(old_writer);
    fclose(sink);
    assert_int_equal(heap_caps_register_failed_alloc_callback(NULL), ESP_OK);
    assert_int_equal(capheap_register_failed_alloc_callback(NULL, NULL), ESP_OK);
    if (ct_thread_failed())
        fail_msg("%s", ct_thread_failure());
    print_message("%lu observer rounds, %lu bytes printed, %lu + %lu failure callbacks, %u regions added\n",
                  (unsigned long)atomic_load(&observer_rounds), (unsigned long)atomic_load(&written_bytes),
                  (unsigned long)atomic_load(&failures_seen), (unsigned long)atomic_load(&ext_failures_seen),
                  atomic_load(&extra_added) < EXTRA_REGIONS ? atomic_load(&extra_added) : EXTRA_REGIONS);
    assert_true(atomic_load(&observer_rounds) > 0);
    assert_int_equal(atomic_load(&ext_mismatches), 0);
    assert_true(atomic_load(&ext_failures_seen) > 0);
#ifdef CONFIG_HEAP_USE_HOOKS
    assert_true(atomic_load(&hook_allocs) > 0 && atomic_load(&hook_reallocs) > 0);
    assert_int_equal(atomic_load(&hook_allocs) - atomic_load(&hook_frees), live0);
#endif

    /* every block freed: every heap as it was, the added ones empty */
    assert_true(heap_caps_check_integrity_all(true));
    for (size_t i = 0; i < heaps0; i++) {
        int k = cf_index_of_start(starts[i]);
        assert_true(k >= 0);
        capheap_heap_desc_t d = cf_desc((size_t)k);
        if (free0[i] != 0) /* else registered during the run: below */
            assert_int_equal(multi_heap_free_size(d.heap), free0[i]);
    }
    for (size_t i = 0; i < capheap_heap_count(); i++) {
        capheap_heap_desc_t d = cf_desc(i);
        bool fresh = d.runtime && (unsigned char *)d.start >= extra[0] &&
                     (unsigned char *)d.start < (unsigned char *)extra + sizeof extra;
        for (size_t k = 0; k < heaps0; k++)
            fresh = fresh || (starts[k] == d.start && free0[k] == 0); /* a start-up-stack heap */
        assert_non_null(d.heap);
        if (fresh)
            assert_int_equal(multi_heap_free_size(d.heap), (size_t)(d.end - d.start) -
                                                               capheap_heap_overhead(d.heap) -
                                                               capheap_heap_poison_overhead(d.heap));
    }
    multi_heap_info_t info;
    heap_caps_get_info(&info, 0);
    assert_int_equal(info.allocated_blocks, info0.allocated_blocks);
}

/* ---- the sinks replaced while another thread prints -------------------------- */

/* capheap_set_writer() and capheap_set_abort_handler() may be called while
 * another thread reports (a program capturing a dump while a worker fails an
 * ESP_ERROR_CHECK). The printer read its sink twice, as a plain variable: a
 * test for NULL, then the call, which a concurrent restore of the default
 * (NULL) could turn into a call through NULL, and ThreadSanitizer reported
 * the race (a concurrency audit). Here one thread prints and "aborts" (a
 * handler that longjmps back) while the other swaps both sinks, NULL included;
 * stderr, the default sink's, goes to /dev/null meanwhile. */
#define SWAPS 20000

#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define CT_TSAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__) && !defined(CT_TSAN)
#define CT_TSAN 1
#endif
#ifdef CT_TSAN
void __sanitizer_set_report_fd(void *fd); /* the sanitizer's interface: its reports keep the real stderr */
#endif

static atomic_int swap_stop;
static atomic_ulong aborts_seen;

static _Thread_local jmp_buf reporter_jump;

static void counting_abort(const char *reason)
{
    (void)reason;
    atomic_fetch_add(&aborts_seen, 1);
    longjmp(reporter_jump, 1); /* an abort handler does not return */
}

static void counting_abort2(const char *reason)
{
    counting_abort(reason);
}

static void *reporter(void *unused)
{
    (void)unused;
    while (!atomic_load(&swap_stop)) {
        heap_caps_print_heap_info(MALLOC_CAP_SPIRAM);
        if (setjmp(reporter_jump) == 0)
            (void)capheap_esp_error_check(ESP_FAIL, __FILE__, __LINE__, __func__, "swap", 1);
    }
    return NULL;
}

static void test_sinks_swapped_while_printing(void **state)
{
    (void)state;
    fflush(stderr);
    int saved = dup(2), null = open("/dev/null", O_WRONLY);
    assert_true(saved >= 0 && null >= 0);
#ifdef CT_TSAN
    __sanitizer_set_report_fd((void *)(intptr_t)saved);
#endif
    capheap_write_fn old_writer = capheap_set_writer(counting_writer);
    capheap_abort_fn old_abort = capheap_set_abort_handler(counting_abort);
    atomic_store(&written_bytes, 0);
    atomic_store(&aborts_seen, 0);
    atomic_store(&swap_stop, 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, reporter, NULL), 0);
    while (atomic_load(&written_bytes) == 0 || atomic_load(&aborts_seen) == 0)
        sched_yield(); /* the reporter is running */
    assert_int_equal(dup2(null, 2), 2);
    for (unsigned i = 0; i < SWAPS; i++) {
        (void)capheap_set_writer(i % 3 == 0 ? NULL : counting_writer);
        (void)capheap_set_abort_handler(i % 3 == 1 ? counting_abort2 : counting_abort);
    }
    (void)capheap_set_writer(counting_writer);
    (void)capheap_set_abort_handler(counting_abort);
    atomic_store(&swap_stop, 1);
    pthread_join(t, NULL);
    assert_int_equal(dup2(saved, 2), 2);
#ifdef CT_TSAN
    __sanitizer_set_report_fd((void *)(intptr_t)2);
#endif
    close(saved);
    close(null);
    (void)capheap_set_writer(old_writer);
    (void)capheap_set_abort_handler(old_abort);
    assert_true(atomic_load(&written_bytes) > 0 && atomic_load(&aborts_seen) > 0);
}

/* ---- a block described while tracing is given a new buffer ------------------- */

/* capheap_describe_block() (every corruption report calls it) asks the
 * tracer for the block's record. It tested that tracing had a buffer before
 * taking the trace lock, and heap_trace_init_standalone() sets the buffer
 * under that lock: ThreadSanitizer reported the race (a concurrency audit).
 * One thread gives tracing a buffer and takes it back, the other describes a
 * traced block meanwhile. */
#define DESCRIBES 20000

static atomic_int describe_stop;

static void *trace_reinit(void *unused)
{
    (void)unused;
#if CAPHEAP_TRACING
    static heap_trace_record_t records[64];
    while (!atomic_load(&describe_stop)) {
        if (heap_trace_init_standalone(records, 64) != ESP_OK || heap_trace_init_standalone(NULL, 0) != ESP_OK)
            ct_fail_in_thread("heap_trace_init_standalone failed while stopped");
    }
#endif
    return NULL;
}

static void test_describe_while_trace_reinitialised(void **state)
{
    (void)state;
    if (!CAPHEAP_TRACING)
        skip(); /* no tracer to ask */
    ct_thread_failure_reset();
    capheap_write_fn old_writer = capheap_set_writer(counting_writer);
    void *p = heap_caps_malloc(100, MALLOC_CAP_DEFAULT);
    assert_non_null(p);
    atomic_store(&describe_stop, 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, trace_reinit, NULL), 0);
    for (unsigned i = 0; i < DESCRIBES; i++)
        capheap_describe_block(p);
    atomic_store(&describe_stop, 1);
    pthread_join(t, NULL);
    (void)capheap_set_writer(old_writer);
    heap_caps_free(p);
    if (ct_thread_failed())
        fail_msg("%s", ct_thread_failure());
}

/* ---- a fatal report while a heap is registered ---------------------------------- */

/* Registering a heap installs the report's epilogue (the block description)
 * with a plain store, and a fatal report read it with a plain load: a report
 * in one thread (here a foreign pointer freed, caught by an abort handler
 * that longjmps back) while another registers a runtime region (external
 * RAM found late, libcapheap_malloc.so growing) was a data race that
 * ThreadSanitizer reported (a concurrency audit). */
static atomic_int report_stop;

static void *foreign_freer(void *unused)
{
    (void)unused;
    static char not_a_block[64];
    while (!atomic_load(&report_stop))
        if (setjmp(reporter_jump) == 0)
            heap_caps_free(not_a_block + 16); /* in no heap: reported, then the abort handler */
    return NULL;
}

static void test_report_while_registering(void **state)
{
    (void)state;
    const uint32_t caps[3] = {MALLOC_CAP_8BIT | MALLOC_CAP_32BIT, 0, 0};
    capheap_write_fn old_writer = capheap_set_writer(counting_writer);
    capheap_abort_fn old_abort = capheap_set_abort_handler(counting_abort);
    atomic_store(&aborts_seen, 0);
    atomic_store(&report_stop, 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, foreign_freer, NULL), 0);
    while (atomic_load(&aborts_seen) == 0)
        sched_yield(); /* the reports are coming */
    size_t room = CAPHEAP_MAX_HEAPS - capheap_heap_count();
    for (size_t i = 0; i < LATE_REGIONS && i < room; i++) {
        assert_int_equal(heap_caps_add_region_with_caps(caps, (intptr_t)late[i], (intptr_t)(late[i] + LATE_BYTES)),
                         ESP_OK);
        for (unsigned long seen = atomic_load(&aborts_seen); atomic_load(&aborts_seen) < seen + 2u;)
            sched_yield(); /* a report or two in between */
    }
    atomic_store(&report_stop, 1);
    pthread_join(t, NULL);
    (void)capheap_set_abort_handler(old_abort);
    (void)capheap_set_writer(old_writer);
    assert_true(heap_caps_check_integrity_all(true));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_stress, stress_setup, stress_teardown),
        cmocka_unit_test_setup_teardown(test_sinks_swapped_while_printing, stress_setup, stress_teardown),
        cmocka_unit_test_setup_teardown(test_describe_while_trace_reinitialised, stress_setup, stress_teardown),
        cmocka_unit_test_setup_teardown(test_report_while_registering, stress_setup, stress_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
