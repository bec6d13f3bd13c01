/*
 * tests/task/test_task_info.c - per-task heap accounting (esp_heap_task_info.h,
 * capheap/task_info.h), built only with CAPHEAP_TASK_TRACKING=ON.
 *
 * On the host a thread is a task. The model tests run several threads on a
 * simulated ESP32-S3 (with PSRAM) and on a custom set of heaps; every thread
 * mallocs, frees and reallocs with varied caps, also blocks of other threads,
 * and after every phase the library's per-task and per-heap figures (current,
 * peak, live count, the block lists) must equal a model the test keeps.
 * The model's operations are serialised by a mutex so that it knows the exact
 * order of events; test_concurrent_balance runs the threads freely and checks
 * that every figure returns to zero. Peaks: a realloc inside one heap may be
 * seen as free-then-allocate or (when it moves with a larger alignment)
 * allocate-then-free, so the model keeps a lower and an upper bound; a realloc
 * across heaps is always allocate-then-free and exact.
 *
 * The rest covers every function of the header: the stat arrays and their
 * truncation rules, the legacy totals, the print formats (into fmemopen
 * streams), more blocks than any table would hold, a full task table
 * (untracked blocks), task deletion,
 * names, and reset. Seeds: CAPHEAP_SEED (the schedule of the threads is not
 * replayable, the operations each thread draws are).
 */
#define _GNU_SOURCE /* pthread_setname_np, fmemopen, pthread_barrier_t */

#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "capheap/caps.h"
#include "capheap/chip.h"
#include "capheap/port.h"
#include "capheap/sim.h"
#include "capheap/task_info.h"
#include "esp_heap_caps.h"
#include "esp_heap_task_info.h"
#include "multi_heap.h"
#include "support.h"

#include "heap/heap_private.h" /* the owner word, for the between-updates test */

#if defined(CAPHEAP_TRACK_DELETED_TASKS) && CAPHEAP_TRACK_DELETED_TASKS
#define CAPHEAP_TRACK_DELETED_TASKS_VALUE 1
#else
#define CAPHEAP_TRACK_DELETED_TASKS_VALUE 0
#endif

#define N_WORKERS 4
#define MAX_MTASKS 16
#define MAX_MHEAPS CAPHEAP_MAX_HEAPS
#define MAX_LIVE 2048
#define PHASES 5
#define OPS_PER_PHASE 400

/* ------------------------------------------------------------------------ */
/* Set-up                                                                     */
/* ------------------------------------------------------------------------ */

static void boot_chip(const capheap_chip_t *chip, size_t psram)
{
    capheap_sim_options_t o = CAPHEAP_SIM_OPTIONS_DEFAULT;
    o.quiet = true;
    o.psram_bytes = psram;
    if (capheap_sim_chip() != NULL)
        (void)capheap_sim_shutdown();
    assert_int_equal(capheap_sim_boot(chip, &o), ESP_OK);
    capheap_task_tracking_reset();
}

static void boot_s3(size_t psram)
{
    boot_chip(&capheap_chip_esp32s3, psram);
}

static void shutdown_all(void)
{
    if (capheap_sim_chip() != NULL)
        (void)capheap_sim_shutdown();
    capheap_caps_reset();
    capheap_task_tracking_reset();
}

/* Custom heaps: three regions with caps no chip uses, named. */
#define CAP_A (MALLOC_CAP_8BIT | MALLOC_CAP_PID2)
#define CAP_B (MALLOC_CAP_8BIT | MALLOC_CAP_PID3)
#define CAP_C (MALLOC_CAP_8BIT | MALLOC_CAP_PID4)
static _Alignas(16) unsigned char region_a[48 * 1024];
static _Alignas(16) unsigned char region_b[32 * 1024];
static _Alignas(16) unsigned char region_c[24 * 1024];

static void add_region(unsigned char *r, size_t n, uint32_t caps, const char *name)
{
    const uint32_t c[3] = {caps | MALLOC_CAP_DEFAULT, 0, 0};
    capheap_region_options_t o = {0, name};
    assert_int_equal(capheap_caps_add_region(c, (intptr_t)r, (intptr_t)(r + n), &o), ESP_OK);
}

static void boot_custom(void)
{
    shutdown_all();
    add_region(region_a, sizeof region_a, CAP_A, "alpha");
    add_region(region_b, sizeof region_b, CAP_B, "beta");
    add_region(region_c, sizeof region_c, CAP_C, "gamma");
    capheap_task_tracking_reset();
}

static int teardown(void **state)
{
    (void)state;
    shutdown_all();
    return 0;
}

/* ------------------------------------------------------------------------ */
/* The model                                                                  */
/* ------------------------------------------------------------------------ */

typedef struct {
    void *handle;
    size_t cur, peak_lo, peak_hi;
    size_t hcur[MAX_MHEAPS], hpeak_lo[MAX_MHEAPS], hpeak_hi[MAX_MHEAPS], hcount[MAX_MHEAPS];
    bool alive;
} mtask_t;

typedef struct {
    void *p;
    size_t size;
    int task; /* index in model.task */
    int heap; /* capheap_heap_find() */
} mblock_t;

static struct {
    mtask_t task[MAX_MTASKS];
    int n_tasks;
    mblock_t live[MAX_LIVE];
    size_t n_live;
} model;

static pthread_mutex_t op_mutex = PTHREAD_MUTEX_INITIALIZER;

static void model_reset(void)
{
    memset(&model, 0, sizeof model);
}

static int model_task(void *handle)
{
    for (int i = 0; i < model.n_tasks; i++)
        if (model.task[i].handle == handle)
            return i;
    assert_true(model.n_tasks < MAX_MTASKS);
    model.task[model.n_tasks].handle = handle;
    model.task[model.n_tasks].alive = true;
    return model.n_tasks++;
}

static size_t max_sz(size_t a, size_t b)
{
    return a > b ? a : b;
}

static int heap_of(void *p)
{
    int h = capheap_heap_find(p);
    assert_true(h >= 0 && h < MAX_MHEAPS);
    return h;
}

static void model_charge(int t, int h, size_t size, size_t peak_lo_cand, size_t peak_hi_cand, size_t hpeak_lo_cand,
                         size_t hpeak_hi_cand)
{
    mtask_t *m = &model.task[t];
    m->cur += size;
    m->hcur[h] += size;
    m->hcount[h]++;
    m->peak_lo = max_sz(m->peak_lo, peak_lo_cand);
    m->peak_hi = max_sz(m->peak_hi, peak_hi_cand);
    m->hpeak_lo[h] = max_sz(m->hpeak_lo[h], hpeak_lo_cand);
    m->hpeak_hi[h] = max_sz(m->hpeak_hi[h], hpeak_hi_cand);
}

static void model_alloc(int t, void *p)
{
    assert_true(model.n_live < MAX_LIVE);
    mblock_t *b = &model.live[model.n_live++];
    b->p = p;
    b->size = heap_caps_get_allocated_size(p);
    b->task = t;
    b->heap = heap_of(p);
    mtask_t *m = &model.task[t];
    model_charge(t, b->heap, b->size, m->cur + b->size, m->cur + b->size, m->hcur[b->heap] + b->size,
                 m->hcur[b->heap] + b->size);
}

static void model_credit(const mblock_t *b)
{
    mtask_t *m = &model.task[b->task];
    m->cur -= b->size;
    m->hcur[b->heap] -= b->size;
    m->hcount[b->heap]--;
}

static void model_free(size_t i)
{
    model_credit(&model.live[i]);
    model.live[i] = model.live[--model.n_live];
}

/* realloc of live[i] by task t returned np (not NULL). */
static void model_realloc(size_t i, int t, void *np)
{
    mblock_t old = model.live[i];
    size_t nsize = heap_caps_get_allocated_size(np);
    int nh = heap_of(np);
    mtask_t *m = &model.task[t];
    /* Allocate-then-free (always across heaps; possible within one). */
    size_t hi = m->cur + nsize, hhi = m->hcur[nh] + nsize;
    /* Free-then-allocate (the usual within one heap). */
    size_t back = old.task == t ? old.size : 0;
    size_t lo = m->cur - back + nsize, hlo = m->hcur[nh] - (nh == old.heap ? back : 0) + nsize;
    if (nh != old.heap) {
        lo = hi;
        hlo = hhi;
    }
    model_credit(&old);
    model_charge(t, nh, nsize, lo, hi, hlo, hhi);
    model.live[i].p = np;
    model.live[i].size = nsize;
    model.live[i].task = t;
    model.live[i].heap = nh;
}

/* ------------------------------------------------------------------------ */
/* Comparing the library with the model                                       */
/* ------------------------------------------------------------------------ */

static void expect_heap_desc(int h, const heap_stat_t *hs)
{
    capheap_heap_desc_t d;
    assert_true(capheap_heap_get((size_t)h, &d));
    assert_string_equal(hs->name, d.name);
    assert_int_equal(hs->caps, d.caps[0] | d.caps[1] | d.caps[2]);
    assert_int_equal(hs->size, (size_t)(d.end - d.start));
}

/* The model heap of task t that heap_stat hs describes: identified by its
 * blocks if it has any, else by its figures (unused model heaps only). */
static int match_heap(int t, const heap_stat_t *hs, bool *used)
{
    const mtask_t *m = &model.task[t];
    if (hs->alloc_count != 0 && hs->alloc_stat != NULL) {
        int h = heap_of(hs->alloc_stat[0].address);
        assert_false(used[h]);
        return h;
    }
    for (int h = 0; h < MAX_MHEAPS; h++) {
        if (used[h] || m->hpeak_hi[h] == 0 || m->hcount[h] != hs->alloc_count || m->hcur[h] != hs->current_usage)
            continue;
        capheap_heap_desc_t d;
        if (!capheap_heap_get((size_t)h, &d) || strcmp(d.name, hs->name) != 0 ||
            (size_t)(d.end - d.start) != hs->size)
            continue;
        if (hs->peak_usage < m->hpeak_lo[h] || hs->peak_usage > m->hpeak_hi[h])
            continue;
        return h;
    }
    fail_msg("heap %s (current %zu, peak %zu, count %zu) not in the model", hs->name, hs->current_usage,
             hs->peak_usage, hs->alloc_count);
    return -1;
}

static void expect_task(int t, const task_stat_t *ts)
{
    const mtask_t *m = &model.task[t];
    assert_ptr_equal(ts->handle, m->handle);
    assert_int_equal(ts->is_alive, m->alive);
    assert_int_equal(ts->overall_current_usage, m->cur);
    assert_in_range(ts->overall_peak_usage, m->peak_lo, m->peak_hi);
    size_t heaps = 0;
    for (int h = 0; h < MAX_MHEAPS; h++)
        heaps += m->hpeak_hi[h] != 0;
    assert_int_equal(ts->heap_count, heaps);
    assert_non_null(ts->heap_stat);
    bool used[MAX_MHEAPS] = {false};
    for (size_t k = 0; k < ts->heap_count; k++) {
        const heap_stat_t *hs = &ts->heap_stat[k];
        int h = match_heap(t, hs, used);
        used[h] = true;
        expect_heap_desc(h, hs);
        assert_int_equal(hs->current_usage, m->hcur[h]);
        assert_in_range(hs->peak_usage, m->hpeak_lo[h], m->hpeak_hi[h]);
        assert_int_equal(hs->alloc_count, m->hcount[h]);
        if (hs->alloc_count == 0) {
            assert_null(hs->alloc_stat);
            continue;
        }
        assert_non_null(hs->alloc_stat);
        size_t sum = 0;
        for (size_t j = 0; j < hs->alloc_count; j++) {
            const heap_task_block_t *b = &hs->alloc_stat[j];
            if (j > 0)
                assert_true((uintptr_t)b->address > (uintptr_t)hs->alloc_stat[j - 1].address);
            assert_ptr_equal(b->task, m->handle);
            bool found = false;
            for (size_t i = 0; i < model.n_live && !found; i++)
                if (model.live[i].p == b->address) {
                    found = true;
                    assert_int_equal(model.live[i].task, t);
                    assert_int_equal(model.live[i].heap, h);
                    assert_int_equal(b->size, model.live[i].size);
                }
            assert_true(found);
            sum += b->size;
        }
        assert_int_equal(sum, hs->current_usage);
    }
}

/* Every task of the model, through heap_caps_get_all_task_stat() with arrays
 * from heap_caps_alloc_all_task_stat_arrays(), and through
 * heap_caps_get_single_task_stat() for each. */
static void check_model(void)
{
    capheap_task_tracking_stats_t before;
    assert_int_equal(capheap_task_tracking_get_stats(&before), ESP_OK);
    heap_all_tasks_stat_t all;
    bool ours = heap_caps_alloc_all_task_stat_arrays(&all) == ESP_OK;
    if (!ours) {
        /* The heaps are too full for the arrays (small custom heaps): the
         * helper says so and leaves what it got attached. Use the C library. */
        heap_caps_free_all_task_stat_arrays(&all);
        capheap_task_tracking_stats_t st;
        assert_int_equal(capheap_task_tracking_get_stats(&st), ESP_OK);
        all.task_count = st.tasks;
        all.stat_arr = calloc(st.tasks + 1, sizeof *all.stat_arr);
        all.heap_count = st.tasks * CAPHEAP_MAX_HEAPS;
        all.heap_stat_start = calloc(all.heap_count + 1, sizeof *all.heap_stat_start);
        all.alloc_count = st.blocks;
        all.alloc_stat_start = calloc(st.blocks + 1, sizeof *all.alloc_stat_start);
    }
    assert_int_equal(heap_caps_get_all_task_stat(&all), ESP_OK);
    size_t alive_tasks = 0;
    for (int t = 0; t < model.n_tasks; t++) {
        const mtask_t *m = &model.task[t];
        bool listed = m->alive || m->cur != 0 || CAPHEAP_TRACK_DELETED_TASKS_VALUE;
        alive_tasks += listed;
        const task_stat_t *ts = NULL;
        for (size_t i = 0; i < all.task_count; i++)
            if (all.stat_arr[i].handle == m->handle)
                ts = &all.stat_arr[i];
        if (!listed) {
            assert_null(ts);
            continue;
        }
        assert_non_null(ts);
        expect_task(t, ts);

        heap_single_task_stat_t one;
        if (heap_caps_alloc_single_task_stat_arrays(&one, m->handle) == ESP_OK) {
            assert_int_equal(heap_caps_get_single_task_stat(&one, m->handle), ESP_OK);
            expect_task(t, &one.stat);
        } else {
            /* The heaps are too full: possible even when the all-task arrays
             * fitted, since those are still attached. Nothing to compare. */
            (void)ours;
        }
        heap_caps_free_single_task_stat_arrays(&one);
        assert_int_equal(one.heap_count, 0);
        assert_null(one.alloc_stat_start);
    }
    assert_int_equal(all.task_count, alive_tasks);
    for (size_t i = 1; i < all.task_count; i++) /* descending handles */
        assert_true((uintptr_t)all.stat_arr[i - 1].handle > (uintptr_t)all.stat_arr[i].handle);
    if (ours) {
        heap_caps_free_all_task_stat_arrays(&all);
        assert_int_equal(all.task_count, 0);
        assert_null(all.stat_arr);
        /* The arrays came from multi_heap and went back to it: their frees
         * reach neither the tracker (as unknown frees), nor the trace or the
         * user's free hook, which never saw them allocated (an audit found
         * all three) */
        capheap_task_tracking_stats_t after;
        assert_int_equal(capheap_task_tracking_get_stats(&after), ESP_OK);
        assert_int_equal(after.unknown_frees, before.unknown_frees);
    } else {
        free(all.stat_arr);
        free(all.heap_stat_start);
        free(all.alloc_stat_start);
    }
}

/* ------------------------------------------------------------------------ */
/* Worker threads                                                             */
/* ------------------------------------------------------------------------ */

typedef struct {
    const uint32_t *caps;
    size_t n_caps;
    uint64_t seed;
    size_t big; /* occasional large size */
    bool serialised;
} workload_t;

typedef struct {
    pthread_t thread;
    int index;
    const workload_t *w;
    pthread_barrier_t *barrier;
    void *handle;
} worker_t;

static size_t draw_size(ct_rng_t *r, size_t big)
{
    uint64_t c = ct_rng_below(r, 100);
    if (c < 70)
        return (size_t)ct_rng_range(r, 1, 128);
    if (c < 97)
        return (size_t)ct_rng_range(r, 129, 1500);
    return (size_t)ct_rng_range(r, 1501, big);
}

static void one_op(ct_rng_t *r, const workload_t *w, int me)
{
    uint32_t caps = w->caps[ct_rng_below(r, w->n_caps)];
    uint64_t kind = ct_rng_below(r, 10);
    size_t size = draw_size(r, w->big);
    if (model.n_live == 0 || kind < 5) {
        if (model.n_live >= MAX_LIVE)
            return;
        void *p = heap_caps_malloc(size, caps);
        if (p != NULL)
            model_alloc(me, p);
        return;
    }
    size_t i = (size_t)ct_rng_below(r, model.n_live); /* any task's block */
    if (kind < 8) {
        heap_caps_free(model.live[i].p);
        model_free(i);
        return;
    }
    void *np = heap_caps_realloc(model.live[i].p, size, caps);
    if (np != NULL)
        model_realloc(i, me, np);
}

static void *worker_main(void *arg)
{
    worker_t *wk = arg;
    char name[16];
    if (wk->index % 2 == 0) { /* half the workers name themselves */
        snprintf(name, sizeof name, "worker-%d", wk->index);
        pthread_setname_np(pthread_self(), name);
    }
    ct_rng_t r;
    ct_rng_init(&r, wk->w->seed + (uint64_t)wk->index * 7919u);
    wk->handle = capheap_port_current_task();
    pthread_mutex_lock(&op_mutex);
    int me = model_task(wk->handle);
    pthread_mutex_unlock(&op_mutex);
    for (int phase = 0; phase < PHASES; phase++) {
        for (int k = 0; k < OPS_PER_PHASE; k++) {
            pthread_mutex_lock(&op_mutex);
            one_op(&r, wk->w, me);
            pthread_mutex_unlock(&op_mutex);
        }
        pthread_barrier_wait(wk->barrier); /* main checks */
        pthread_barrier_wait(wk->barrier);
    }
    return NULL;
}

static void run_model(const workload_t *w)
{
    model_reset();
    pthread_barrier_t barrier;
    pthread_barrier_init(&barrier, NULL, N_WORKERS + 1);
    worker_t wk[N_WORKERS];
    for (int i = 0; i < N_WORKERS; i++) {
        wk[i].index = i;
        wk[i].w = w;
        wk[i].barrier = &barrier;
        assert_int_equal(pthread_create(&wk[i].thread, NULL, worker_main, &wk[i]), 0);
    }
    for (int phase = 0; phase < PHASES; phase++) {
        pthread_barrier_wait(&barrier);
        check_model();
        pthread_barrier_wait(&barrier);
    }
    for (int i = 0; i < N_WORKERS; i++)
        pthread_join(wk[i].thread, NULL);
    /* The workers have ended: their records stay, DELETED, while they own blocks. */
    for (int t = 0; t < model.n_tasks; t++)
        model.task[t].alive = false;
    check_model();
    heap_single_task_stat_t one = {0};
    for (int t = 0; t < model.n_tasks; t++) {
        esp_err_t e = heap_caps_get_single_task_stat(&one, model.task[t].handle);
        if (model.task[t].cur == 0 && !CAPHEAP_TRACK_DELETED_TASKS_VALUE)
            assert_int_equal(e, ESP_FAIL);
        else
            assert_int_equal(e, ESP_OK);
    }
    /* Free everything; every figure goes back to zero (peaks stay). */
    while (model.n_live > 0) {
        heap_caps_free(model.live[model.n_live - 1].p);
        model_free(model.n_live - 1);
    }
    check_model();
    capheap_task_tracking_stats_t st;
    assert_int_equal(capheap_task_tracking_get_stats(&st), ESP_OK);
    assert_int_equal(st.blocks, 0);
    assert_int_equal(st.untracked_blocks, 0);
    assert_int_equal(st.untracked_task_blocks, 0);
    pthread_barrier_destroy(&barrier);
}

static void test_model_s3(void **state)
{
    (void)state;
    boot_s3(2u * 1024u * 1024u);
    static const uint32_t caps[] = {
        MALLOC_CAP_DEFAULT, MALLOC_CAP_INTERNAL | MALLOC_CAP_8BIT, MALLOC_CAP_DMA, MALLOC_CAP_SPIRAM,
        MALLOC_CAP_32BIT,   MALLOC_CAP_DEFAULT | MALLOC_CAP_SPIRAM, MALLOC_CAP_RTCRAM,
    };
    workload_t w = {caps, sizeof caps / sizeof caps[0], ct_seed("test_model_s3"), 20000, true};
    run_model(&w);
}

static void test_model_custom(void **state)
{
    (void)state;
    boot_custom();
    static const uint32_t caps[] = {MALLOC_CAP_DEFAULT, CAP_A, CAP_B, CAP_C, MALLOC_CAP_8BIT};
    workload_t w = {caps, sizeof caps / sizeof caps[0], ct_seed("test_model_custom"), 6000, true};
    run_model(&w);
}

/* ------------------------------------------------------------------------ */
/* Concurrent threads, no serialisation: the books balance at the end.        */
/* ------------------------------------------------------------------------ */

static void *free_running(void *arg)
{
    uint64_t seed = *(uint64_t *)arg;
    ct_rng_t r;
    ct_rng_init(&r, seed);
    void *slot[64] = {NULL};
    static const uint32_t caps[] = {MALLOC_CAP_DEFAULT, MALLOC_CAP_INTERNAL, MALLOC_CAP_SPIRAM, MALLOC_CAP_DMA};
    for (int k = 0; k < 20000; k++) {
        size_t i = (size_t)ct_rng_below(&r, 64);
        uint32_t c = caps[ct_rng_below(&r, 4)];
        if (slot[i] == NULL)
            slot[i] = heap_caps_malloc((size_t)ct_rng_range(&r, 1, 600), c);
        else if (ct_rng_below(&r, 4) == 0) {
            void *np = heap_caps_realloc(slot[i], (size_t)ct_rng_range(&r, 1, 600), c);
            if (np != NULL)
                slot[i] = np;
        } else {
            heap_caps_free(slot[i]);
            slot[i] = NULL;
        }
    }
    for (int i = 0; i < 64; i++)
        heap_caps_free(slot[i]);
    return NULL;
}

static void test_concurrent_balance(void **state)
{
    (void)state;
    boot_s3(1024u * 1024u);
    uint64_t seed[N_WORKERS];
    pthread_t th[N_WORKERS];
    uint64_t base = ct_seed("test_concurrent_balance");
    for (int i = 0; i < N_WORKERS; i++) {
        seed[i] = base + (uint64_t)i;
        assert_int_equal(pthread_create(&th[i], NULL, free_running, &seed[i]), 0);
    }
    for (int i = 0; i < N_WORKERS; i++)
        pthread_join(th[i], NULL);
    capheap_task_tracking_stats_t st;
    assert_int_equal(capheap_task_tracking_get_stats(&st), ESP_OK);
    assert_int_equal(st.blocks, 0);
    /* Exited threads that own nothing are gone (or kept, DELETED, with zeros). */
    heap_all_tasks_stat_t all;
    assert_int_equal(heap_caps_alloc_all_task_stat_arrays(&all), ESP_OK);
    assert_int_equal(heap_caps_get_all_task_stat(&all), ESP_OK);
    for (size_t i = 0; i < all.task_count; i++) {
        assert_int_equal(all.stat_arr[i].overall_current_usage, 0);
        assert_false(all.stat_arr[i].is_alive);
        assert_true(all.stat_arr[i].overall_peak_usage > 0);
    }
    assert_int_equal(all.task_count, CAPHEAP_TRACK_DELETED_TASKS_VALUE ? N_WORKERS : 0);
    assert_int_equal(all.alloc_count, 0);
    heap_caps_free_all_task_stat_arrays(&all);
}

/* A thread whose own thread-local destructor allocates after capheap's
 * thread-exit destructor has run (another key's destructor, a C++
 * thread_local's) is still a deleted task afterwards: before the fix the
 * tracker listed it as a new live task for good, one per thread. */
static pthread_key_t late_key;
static pthread_once_t late_key_once = PTHREAD_ONCE_INIT;

static void late_destructor(void *v)
{
    (void)v;
    heap_caps_free(heap_caps_malloc(100, MALLOC_CAP_8BIT));
}

static void make_late_key(void)
{
    (void)pthread_key_create(&late_key, late_destructor);
}

static void *allocates_at_exit(void *unused)
{
    (void)unused;
    /* capheap's key exists once this thread allocated; ours is created after
     * it, so its destructor runs after capheap's in each round */
    heap_caps_free(heap_caps_malloc(64, MALLOC_CAP_8BIT));
    (void)pthread_once(&late_key_once, make_late_key);
    (void)pthread_setspecific(late_key, (void *)1);
    return NULL;
}

static void test_allocation_after_thread_exit(void **state)
{
    (void)state;
    boot_s3(0);
    for (int i = 0; i < 6; i++) {
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, allocates_at_exit, NULL), 0);
        pthread_join(th, NULL);
    }
    capheap_task_tracking_stats_t st;
    assert_int_equal(capheap_task_tracking_get_stats(&st), ESP_OK);
    assert_int_equal(st.blocks, 0);
    heap_all_tasks_stat_t all;
    assert_int_equal(heap_caps_alloc_all_task_stat_arrays(&all), ESP_OK);
    assert_int_equal(heap_caps_get_all_task_stat(&all), ESP_OK);
    for (size_t i = 0; i < all.task_count; i++) {
        assert_false(all.stat_arr[i].is_alive); /* no exited thread listed as alive */
    }
    assert_int_equal(all.task_count, CAPHEAP_TRACK_DELETED_TASKS_VALUE ? 6 : 0);
    heap_caps_free_all_task_stat_arrays(&all);
}

/* ------------------------------------------------------------------------ */
/* Directed tests                                                             */
/* ------------------------------------------------------------------------ */

static task_stat_t me_stat;
static heap_stat_t me_heaps[8];
static heap_task_block_t me_blocks[64];

/* task's record (NULL: the calling task's), without its heap and block lists. */
static task_stat_t task_stat_of(void *task)
{
    heap_single_task_stat_t s;
    memset(&s, 0, sizeof s);
    assert_int_equal(heap_caps_get_single_task_stat(&s, task), ESP_OK);
    return s.stat;
}

/* The calling thread's record, into static arrays. */
static esp_err_t my_stat(heap_single_task_stat_t *s)
{
    memset(s, 0, sizeof *s);
    s->heap_count = 8;
    s->heap_stat_start = me_heaps;
    s->alloc_count = 64;
    s->alloc_stat_start = me_blocks;
    esp_err_t e = heap_caps_get_single_task_stat(s, NULL);
    me_stat = s->stat;
    return e;
}

static const heap_stat_t *heap_named(const heap_single_task_stat_t *s, const char *name)
{
    for (size_t i = 0; i < s->stat.heap_count; i++)
        if (strcmp(s->stat.heap_stat[i].name, name) == 0)
            return &s->stat.heap_stat[i];
    return NULL;
}

/* A heap_caps block resized through multi_heap's own API (the handle from
 * capheap_heap_get): the tracker hears nothing of it, so the block loses its
 * owner once its usable size changes. Its charge stays with the task and its
 * free counts as unknown: usage never drops below what the task's other
 * blocks hold (it once wrapped below 0: the free credited the new size). */
static void test_multi_heap_realloc_of_a_caps_block(void **state)
{
    (void)state;
    boot_custom();
    void *keep = heap_caps_malloc(40, CAP_A);
    assert_non_null(keep);
    heap_single_task_stat_t s;
    assert_int_equal(my_stat(&s), ESP_OK);
    size_t k = s.stat.overall_current_usage;
    void *p = heap_caps_malloc(100, CAP_A);
    assert_non_null(p);
    size_t a = heap_caps_get_allocated_size(p);
    capheap_heap_desc_t d;
    assert_true(capheap_heap_find_desc(p, &d));
    void *q = multi_heap_realloc(d.heap, p, 2000);
    assert_non_null(q);
    assert_int_equal(my_stat(&s), ESP_OK);
    assert_int_equal(s.stat.overall_current_usage, k + a); /* unchanged: nobody told */
    capheap_task_tracking_stats_t before, after;
    capheap_task_tracking_get_stats(&before);
    heap_caps_free(q);
    capheap_task_tracking_get_stats(&after);
    assert_int_equal(after.unknown_frees, before.unknown_frees + 1u);
    assert_int_equal(my_stat(&s), ESP_OK);
    assert_int_equal(s.stat.overall_current_usage, k + a); /* the stale charge, not a wrap */
    heap_caps_free(keep);
}

static void test_realloc_between_heaps(void **state)
{
    (void)state;
    boot_custom();
    heap_single_task_stat_t s;
    assert_int_equal(my_stat(&s), ESP_FAIL); /* nothing allocated yet */

    void *p = heap_caps_malloc(1000, CAP_A);
    assert_non_null(p);
    size_t a = heap_caps_get_allocated_size(p);
    assert_int_equal(my_stat(&s), ESP_OK);
    assert_string_equal(s.stat.name, "main");
    assert_true(s.stat.is_alive);
    assert_ptr_equal(s.stat.handle, capheap_port_current_task());
    assert_int_equal(s.stat.overall_current_usage, a);
    assert_int_equal(s.stat.heap_count, 1);
    assert_int_equal(s.heap_count, 1);
    assert_int_equal(s.alloc_count, 1);
    const heap_stat_t *ha = heap_named(&s, "alpha");
    assert_non_null(ha);
    assert_int_equal(ha->caps, CAP_A | MALLOC_CAP_DEFAULT);
    assert_int_equal(ha->size, sizeof region_a);
    assert_int_equal(ha->alloc_count, 1);
    assert_ptr_equal(ha->alloc_stat[0].address, p);
    assert_int_equal(ha->alloc_stat[0].size, a);

    /* Moving to beta: allocate there, then free in alpha. */
    void *q = heap_caps_realloc(p, 3000, CAP_B);
    assert_non_null(q);
    size_t b = heap_caps_get_allocated_size(q);
    assert_int_equal(my_stat(&s), ESP_OK);
    assert_int_equal(s.stat.overall_current_usage, b);
    assert_int_equal(s.stat.overall_peak_usage, a + b); /* both lived for a moment */
    assert_int_equal(s.stat.heap_count, 2);
    ha = heap_named(&s, "alpha");
    const heap_stat_t *hb = heap_named(&s, "beta");
    assert_non_null(ha);
    assert_non_null(hb);
    assert_int_equal(ha->current_usage, 0);
    assert_int_equal(ha->peak_usage, a);
    assert_int_equal(ha->alloc_count, 0);
    assert_null(ha->alloc_stat);
    assert_int_equal(hb->current_usage, b);
    assert_int_equal(hb->peak_usage, b);
    assert_int_equal(hb->alloc_count, 1);

    /* Shrinking in place: free then allocate, the peak does not move. */
    void *r = heap_caps_realloc(q, 100, CAP_B);
    assert_ptr_equal(r, q);
    size_t c = heap_caps_get_allocated_size(r);
    assert_int_equal(my_stat(&s), ESP_OK);
    assert_int_equal(s.stat.overall_current_usage, c);
    assert_int_equal(s.stat.overall_peak_usage, a + b);
    assert_int_equal(heap_named(&s, "beta")->current_usage, c);

    /* A failed realloc changes nothing. */
    assert_null(heap_caps_realloc(r, 1u << 20, CAP_C));
    assert_int_equal(my_stat(&s), ESP_OK);
    assert_int_equal(s.stat.overall_current_usage, c);
    assert_int_equal(s.stat.heap_count, 2);

    /* realloc(p, 0) frees; calloc and aligned allocations count too. */
    assert_null(heap_caps_realloc(r, 0, CAP_B));
    void *z = heap_caps_calloc(10, 10, CAP_C);
    void *al = heap_caps_aligned_alloc(64, 200, CAP_C);
    assert_non_null(z);
    assert_non_null(al);
    assert_int_equal(my_stat(&s), ESP_OK);
    assert_int_equal(s.stat.overall_current_usage,
                     heap_caps_get_allocated_size(z) + heap_caps_get_allocated_size(al));
    assert_int_equal(heap_named(&s, "gamma")->alloc_count, 2);
    heap_caps_free(z);
    heap_caps_aligned_free(al);
    assert_int_equal(my_stat(&s), ESP_OK);
    assert_int_equal(s.stat.overall_current_usage, 0);
    assert_int_equal(s.stat.heap_count, 3);
    assert_int_equal(s.alloc_count, 0);
}

/* A region registered inside a block of another heap (a nested heap):
 * blocks of the nested heap are charged to it, also on the slow paths that
 * look the heap up (aligned allocation), and also after blocks of the host
 * were looked up before the nested heap existed (a cache of the tracker's
 * once went stale there: found by the caps model under -m32). */
static void test_nested_heap(void **state)
{
    (void)state;
    boot_custom();
    heap_single_task_stat_t s;
    /* Looked up in alpha first, at addresses the nested heap will cover. */
    void *early = heap_caps_aligned_alloc(64, 200, CAP_A);
    assert_non_null(early);
    heap_caps_free(early);

    unsigned char *host = heap_caps_aligned_alloc(64, 16 * 1024, CAP_A);
    assert_non_null(host);
    assert_ptr_equal(host, early); /* the same place: the lookup saw it as alpha's */
    size_t host_size = heap_caps_get_allocated_size(host); /* after nesting, host names the nested heap */
    add_region(host, 16 * 1024, CAP_C, "nested");

    void *in = heap_caps_aligned_alloc(64, 300, CAP_C);
    assert_non_null(in);
    assert_true((unsigned char *)in >= host && (unsigned char *)in < host + 16 * 1024);
    assert_int_equal(my_stat(&s), ESP_OK);
    const heap_stat_t *hn = heap_named(&s, "nested");
    const heap_stat_t *ha = heap_named(&s, "alpha");
    assert_non_null(hn);
    assert_non_null(ha);
    assert_int_equal(hn->alloc_count, 1);
    assert_ptr_equal(hn->alloc_stat[0].address, in);
    assert_int_equal(hn->current_usage, heap_caps_get_allocated_size(in));
    assert_int_equal(ha->alloc_count, 1); /* the host block */
    assert_int_equal(ha->current_usage, host_size);
    heap_caps_free(in);
    assert_int_equal(my_stat(&s), ESP_OK);
    assert_int_equal(heap_named(&s, "nested")->current_usage, 0);
    /* The nested heap stays registered (regions are never removed): the
     * teardown resets the registry before region_a's block goes away. */
}

/* The moments between a heap operation and the tracker's update (another
 * thread's block whose word is written but not yet charged, or freed but
 * not yet credited), made by hand with multi_heap's private owner-word
 * calls: a query lists what it finds within what the counters say, and packs
 * its lists with no gap. */
static void test_query_between_updates(void **state)
{
    (void)state;
    boot_custom();
    int k = capheap_heap_find(region_a);
    assert_true(k >= 0);
    capheap_heap_desc_t d;
    assert_true(capheap_heap_get((size_t)k, &d));
    void *a = heap_caps_malloc(100, CAP_A);
    void *b = heap_caps_malloc(200, CAP_A);
    void *c = heap_caps_malloc(300, CAP_A);
    void *e = heap_caps_malloc(40, CAP_B); /* beta's list follows alpha's in the output */
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(c);
    assert_non_null(e);
    uint32_t mine = capheap_heap_get_owner(d.heap, a).owner; /* this task's word */
    assert_true(mine != 0);
    /* b: counted, but its word says nobody (as if freed and not yet credited) */
    assert_int_equal(capheap_heap_swap_owner(d.heap, b, 0).owner, mine);
    /* x: made by multi_heap and given the task's word, not counted (as if not yet charged) */
    void *x = multi_heap_malloc(d.heap, 50);
    assert_non_null(x);
    (void)capheap_heap_swap_owner(d.heap, x, mine);
    heap_single_task_stat_t s;
    assert_int_equal(my_stat(&s), ESP_OK);
    const heap_stat_t *ha = heap_named(&s, "alpha");
    assert_non_null(ha);
    assert_non_null(ha->alloc_stat);
    /* three counted: a, b, c; found with the word: a, c, x; room for three */
    assert_int_equal(ha->alloc_count, 3);
    assert_int_equal(s.alloc_count, 4); /* and beta's e */
    void *want[3] = {a, c, x};
    for (size_t i = 0; i < 3; i++) {
        bool found = false;
        for (size_t j = 0; j < 3; j++)
            found = found || ha->alloc_stat[j].address == want[i];
        assert_true(found);
    }
    /* One found fewer than counted: the next heap's list moves up behind it. */
    (void)capheap_heap_swap_owner(d.heap, x, 0);
    multi_heap_free(d.heap, x);
    assert_int_equal(my_stat(&s), ESP_OK);
    ha = heap_named(&s, "alpha");
    const heap_stat_t *hb = heap_named(&s, "beta");
    assert_non_null(hb);
    assert_int_equal(ha->alloc_count, 2); /* a and c; b's room left empty is gone */
    assert_int_equal(hb->alloc_count, 1);
    assert_int_equal(s.alloc_count, 3);
    assert_ptr_equal(ha->alloc_stat, me_blocks);
    assert_ptr_equal(ha->alloc_stat[0].address, a);
    assert_ptr_equal(ha->alloc_stat[1].address, c);
    assert_ptr_equal(hb->alloc_stat, me_blocks + 2);
    assert_ptr_equal(hb->alloc_stat[0].address, e);
    heap_caps_free(e);
    /* b's word back: its free credits it, the books balance */
    (void)capheap_heap_swap_owner(d.heap, b, mine);
    heap_caps_free(a);
    heap_caps_free(b);
    heap_caps_free(c);
    assert_int_equal(my_stat(&s), ESP_OK);
    assert_int_equal(s.stat.overall_current_usage, 0);
    capheap_task_tracking_stats_t st;
    assert_int_equal(capheap_task_tracking_get_stats(&st), ESP_OK);
    assert_int_equal(st.blocks, 0);
    assert_int_equal(st.unknown_frees, 0);
}

/* EXEC blocks come back as IRAM aliases (ESP32's D/IRAM): charged at the
 * size heap_caps_get_allocated_size() gives the alias, listed at the alias. */
static void test_exec_alias(void **state)
{
    (void)state;
    boot_chip(&capheap_chip_esp32, 0);
    void *p = heap_caps_malloc(200, MALLOC_CAP_EXEC);
    if (p == NULL) {
        skip();
        return;
    }
    heap_single_task_stat_t s;
    assert_int_equal(my_stat(&s), ESP_OK);
    assert_int_equal(s.stat.overall_current_usage, heap_caps_get_allocated_size(p));
    assert_int_equal(s.alloc_count, 1);
    assert_ptr_equal(me_blocks[0].address, p);
    heap_caps_free(p);
    assert_int_equal(my_stat(&s), ESP_OK);
    assert_int_equal(s.stat.overall_current_usage, 0);
    capheap_task_tracking_stats_t st;
    assert_int_equal(capheap_task_tracking_get_stats(&st), ESP_OK);
    assert_int_equal(st.unknown_frees, 0);
}

/* test_exec_alias's block comes from ESP32's IRAM-only heap, which has no
 * alias. With that heap full, EXEC requests are served from D/IRAM through
 * the IRAM alias: the block is listed at the alias the user holds. */
static void test_exec_alias_from_diram(void **state)
{
    (void)state;
    boot_chip(&capheap_chip_esp32, 0);
    void *first = heap_caps_malloc(200, MALLOC_CAP_EXEC);
    if (first == NULL) {
        skip();
        return;
    }
    int k = capheap_heap_find(first);
    assert_true(k >= 0);
    capheap_heap_desc_t iram;
    assert_true(capheap_heap_get((size_t)k, &iram));
    heap_caps_free(first);
    /* fill the IRAM-only heap behind heap_caps' back (owner 0: nobody's) */
    void *fill[64];
    size_t n = 0;
    for (multi_heap_info_t info; n < 64; n++) {
        multi_heap_get_info(iram.heap, &info);
        if (info.largest_free_block < 16)
            break;
        fill[n] = multi_heap_malloc(iram.heap, info.largest_free_block);
        assert_non_null(fill[n]);
    }
    void *p = heap_caps_malloc(200, MALLOC_CAP_EXEC);
    assert_non_null(p);
    assert_false((intptr_t)(uintptr_t)p >= iram.start && (intptr_t)(uintptr_t)p < iram.end);
    heap_single_task_stat_t s;
    assert_int_equal(my_stat(&s), ESP_OK);
    assert_int_equal(s.stat.overall_current_usage, heap_caps_get_allocated_size(p));
    assert_int_equal(s.alloc_count, 1);
    assert_ptr_equal(me_blocks[0].address, p);
    assert_int_equal(me_blocks[0].size, heap_caps_get_allocated_size(p));
    heap_caps_free(p);
    assert_int_equal(my_stat(&s), ESP_OK);
    assert_int_equal(s.stat.overall_current_usage, 0);
    capheap_task_tracking_stats_t st;
    assert_int_equal(capheap_task_tracking_get_stats(&st), ESP_OK);
    assert_int_equal(st.unknown_frees, 0);
    while (n > 0)
        multi_heap_free(iram.heap, fill[--n]);
}

/* Truncation rules and argument checks of the get functions. */
static void test_arrays_and_arguments(void **state)
{
    (void)state;
    boot_custom();
    void *p[6];
    p[0] = heap_caps_malloc(100, CAP_A);
    p[1] = heap_caps_malloc(200, CAP_A);
    p[2] = heap_caps_malloc(300, CAP_B);
    p[3] = heap_caps_malloc(400, CAP_C);
    p[4] = heap_caps_malloc(500, CAP_C);
    p[5] = heap_caps_malloc(600, CAP_C);
    for (int i = 0; i < 6; i++)
        assert_non_null(p[i]);

    assert_int_equal(heap_caps_get_all_task_stat(NULL), ESP_ERR_INVALID_ARG);
    heap_all_tasks_stat_t all = {1, NULL, 0, NULL, 0, NULL};
    assert_int_equal(heap_caps_get_all_task_stat(&all), ESP_ERR_INVALID_ARG);
    all = (heap_all_tasks_stat_t){0, NULL, 1, NULL, 0, NULL};
    assert_int_equal(heap_caps_get_all_task_stat(&all), ESP_ERR_INVALID_ARG);
    all = (heap_all_tasks_stat_t){0, NULL, 0, NULL, 1, NULL};
    assert_int_equal(heap_caps_get_all_task_stat(&all), ESP_ERR_INVALID_ARG);
    assert_int_equal(heap_caps_get_single_task_stat(NULL, NULL), ESP_ERR_INVALID_ARG);
    heap_single_task_stat_t one = {.heap_count = 1};
    assert_int_equal(heap_caps_get_single_task_stat(&one, NULL), ESP_ERR_INVALID_ARG);
    assert_int_equal(heap_caps_alloc_all_task_stat_arrays(NULL), ESP_ERR_INVALID_ARG);
    assert_int_equal(heap_caps_alloc_single_task_stat_arrays(NULL, NULL), ESP_ERR_INVALID_ARG);
    heap_caps_free_all_task_stat_arrays(NULL);
    heap_caps_free_single_task_stat_arrays(NULL);
    memset(&one, 0, sizeof one);
    assert_int_equal(heap_caps_get_single_task_stat(&one, (TaskHandle_t)(uintptr_t)0x7777), ESP_FAIL);
    assert_int_equal(heap_caps_alloc_single_task_stat_arrays(&one, (TaskHandle_t)(uintptr_t)0x7777), ESP_FAIL);
    heap_caps_free_single_task_stat_arrays(&one);

    /* Counts only (NULL arrays, zero counts): nothing written, ESP_OK. */
    all = (heap_all_tasks_stat_t){0};
    assert_int_equal(heap_caps_get_all_task_stat(&all), ESP_OK);
    assert_int_equal(all.task_count, 0);

    /* Room for the task and two of its three heaps: heap_stat NULL. */
    task_stat_t ts[2];
    heap_stat_t hs[3];
    heap_task_block_t bl[6];
    all = (heap_all_tasks_stat_t){2, ts, 2, hs, 6, bl};
    assert_int_equal(heap_caps_get_all_task_stat(&all), ESP_OK);
    assert_int_equal(all.task_count, 1);
    assert_int_equal(ts[0].heap_count, 3);
    assert_null(ts[0].heap_stat);
    assert_int_equal(all.heap_count, 0);
    assert_int_equal(all.alloc_count, 0);

    /* Room for the heaps but only 4 blocks: alpha (2) and beta (1) fit, gamma (3) does not. */
    all = (heap_all_tasks_stat_t){2, ts, 3, hs, 4, bl};
    assert_int_equal(heap_caps_get_all_task_stat(&all), ESP_OK);
    assert_int_equal(all.heap_count, 3);
    assert_int_equal(all.alloc_count, 3);
    assert_ptr_equal(ts[0].heap_stat, hs);
    size_t with = 0;
    for (int i = 0; i < 3; i++) {
        if (strcmp(hs[i].name, "gamma") == 0) {
            assert_null(hs[i].alloc_stat);
            assert_int_equal(hs[i].alloc_count, 3);
        } else {
            assert_non_null(hs[i].alloc_stat);
            with += hs[i].alloc_count;
        }
    }
    assert_int_equal(with, 3);

    /* The allocation helpers size exactly; the arrays are not tracked. */
    heap_all_tasks_stat_t sized;
    assert_int_equal(heap_caps_alloc_all_task_stat_arrays(&sized), ESP_OK);
    assert_int_equal(sized.task_count, 1);
    assert_int_equal(sized.heap_count, 3);
    assert_int_equal(sized.alloc_count, 6);
    assert_int_equal(heap_caps_get_all_task_stat(&sized), ESP_OK);
    assert_int_equal(sized.stat_arr[0].overall_current_usage,
                     heap_caps_get_allocated_size(p[0]) + heap_caps_get_allocated_size(p[1]) +
                         heap_caps_get_allocated_size(p[2]) + heap_caps_get_allocated_size(p[3]) +
                         heap_caps_get_allocated_size(p[4]) + heap_caps_get_allocated_size(p[5]));
    heap_caps_free_all_task_stat_arrays(&sized);
    for (int i = 0; i < 6; i++)
        heap_caps_free(p[i]);
    heap_single_task_stat_t mine;
    assert_int_equal(heap_caps_alloc_single_task_stat_arrays(&mine, NULL), ESP_OK);
    assert_int_equal(mine.heap_count, 3);
    assert_int_equal(mine.alloc_count, 0); /* a task with no blocks: NULL array */
    assert_null(mine.alloc_stat_start);
    heap_caps_free_single_task_stat_arrays(&mine);
}

/* The legacy interface. */
static void *hold_blocks(void *arg)
{
    void **out = arg;
    out[0] = heap_caps_malloc(64, CAP_B);
    out[1] = heap_caps_malloc(32, CAP_C);
    out[2] = capheap_port_current_task();
    return NULL;
}

static void test_per_task_info(void **state)
{
    (void)state;
    boot_custom();
    void *a1 = heap_caps_malloc(100, CAP_A), *a2 = heap_caps_malloc(50, CAP_B);
    void *other[3];
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, hold_blocks, other), 0);
    pthread_join(th, NULL);
    void *me = capheap_port_current_task();
    size_t sa1 = heap_caps_get_allocated_size(a1), sa2 = heap_caps_get_allocated_size(a2);
    size_t so0 = heap_caps_get_allocated_size(other[0]), so1 = heap_caps_get_allocated_size(other[1]);

    assert_int_equal(heap_caps_get_per_task_info(NULL), 0);
    heap_task_totals_t totals[3];
    memset(totals, 0xA5, sizeof totals);
    totals[0].task = (TaskHandle_t)(uintptr_t)0x1234; /* pre-populated, unknown: zeroed, kept */
    size_t num_totals = 1;
    heap_task_block_t blocks[8];
    heap_task_info_params_t p = {
        .caps = {(int32_t)MALLOC_CAP_PID2, (int32_t)MALLOC_CAP_PID3, 0, 0},
        .mask = {(int32_t)MALLOC_CAP_PID2, (int32_t)MALLOC_CAP_PID3, 0, 0},
        .tasks = NULL, .num_tasks = 0,
        .totals = totals, .num_totals = &num_totals, .max_totals = 3,
        .blocks = blocks, .max_blocks = 8,
    };
    assert_int_equal(heap_caps_get_per_task_info(&p), 4);
    assert_int_equal(num_totals, 3);
    assert_ptr_equal(totals[0].task, (TaskHandle_t)(uintptr_t)0x1234);
    for (int c = 0; c < NUM_HEAP_TASK_CAPS; c++) {
        assert_int_equal(totals[0].size[c], 0);
        assert_int_equal(totals[0].count[c], 0);
    }
    const heap_task_totals_t *tm = NULL, *to = NULL;
    for (int i = 1; i < 3; i++) {
        if (totals[i].task == me)
            tm = &totals[i];
        if (totals[i].task == other[2])
            to = &totals[i];
    }
    assert_non_null(tm);
    assert_non_null(to);
    /* Class 0: alpha (PID2); class 1: beta (PID3); class 2 (mask 0): the rest. */
    assert_int_equal(tm->size[0], sa1);
    assert_int_equal(tm->count[0], 1);
    assert_int_equal(tm->size[1], sa2);
    assert_int_equal(tm->size[2], 0);
    assert_int_equal(tm->size[3], 0);
    assert_int_equal(to->size[0], 0);
    assert_int_equal(to->size[1], so0);
    assert_int_equal(to->size[2], so1); /* gamma falls to class 2 */
    assert_int_equal(to->count[2], 1);
    for (int i = 1; i < 4; i++)
        assert_true((uintptr_t)blocks[i - 1].address < (uintptr_t)blocks[i].address);

    /* Asked again with the three entries kept: each known task is found in
     * its own entry, which is zeroed and counted afresh (not added to), in
     * the same order; nothing is appended. */
    heap_task_totals_t first[3];
    memcpy(first, totals, sizeof first);
    totals[1].size[0] = totals[2].size[1] = 999999; /* stale values: zeroed first */
    assert_int_equal(heap_caps_get_per_task_info(&p), 4);
    assert_int_equal(num_totals, 3);
    assert_memory_equal(totals, first, sizeof first);

    /* Blocks of one task only, and a block array that is too small. */
    TaskHandle_t only[1] = {other[2]};
    p.tasks = only;
    p.num_tasks = 1;
    p.totals = NULL;
    p.max_blocks = 1;
    assert_int_equal(heap_caps_get_per_task_info(&p), 1);
    assert_ptr_equal(blocks[0].task, other[2]);
    p.max_blocks = 8;
    assert_int_equal(heap_caps_get_per_task_info(&p), 2);
    /* max_totals caps the appended tasks. */
    num_totals = 0;
    p.totals = totals;
    p.max_totals = 1;
    p.blocks = NULL;
    assert_int_equal(heap_caps_get_per_task_info(&p), 0);
    assert_int_equal(num_totals, 1);
    /* Only the heaps of some class are scanned (spec 1.5): with every class
     * alpha's, the blocks in beta and gamma are neither listed nor counted,
     * and a task that holds blocks there only gets no totals entry. */
    for (int c = 0; c < NUM_HEAP_TASK_CAPS; c++) {
        p.caps[c] = (int32_t)MALLOC_CAP_PID2;
        p.mask[c] = (int32_t)MALLOC_CAP_PID2;
    }
    num_totals = 0;
    p.max_totals = 3;
    p.blocks = blocks;
    p.tasks = NULL;
    p.num_tasks = 0;
    assert_int_equal(heap_caps_get_per_task_info(&p), 1); /* a1 only */
    assert_ptr_equal(blocks[0].address, a1);
    assert_int_equal(num_totals, 1);
    assert_ptr_equal(totals[0].task, me);
    assert_int_equal(totals[0].size[0], sa1);
    heap_caps_free(a1);
    heap_caps_free(a2);
    heap_caps_free(other[0]);
    heap_caps_free(other[1]);
}

/* ------------------------------------------------------------------------ */
/* Printing                                                                   */
/* ------------------------------------------------------------------------ */

static char out_buf[64 * 1024];

static FILE *open_out(void)
{
    memset(out_buf, 0, sizeof out_buf);
    FILE *f = fmemopen(out_buf, sizeof out_buf - 1, "w");
    assert_non_null(f);
    return f;
}

/* Line i of out_buf (0-based), into line. */
static bool out_line(size_t i, char *line, size_t n)
{
    const char *s = out_buf;
    for (; i > 0; i--) {
        s = strchr(s, '\n');
        if (s == NULL)
            return false;
        s++;
    }
    if (*s == '\0')
        return false;
    size_t k = strcspn(s, "\n");
    if (k >= n)
        k = n - 1;
    memcpy(line, s, k);
    line[k] = '\0';
    return true;
}

static size_t out_lines(void)
{
    size_t n = 0;
    for (const char *s = out_buf; *s != '\0'; s++)
        n += *s == '\n';
    return n;
}

static void *named_worker(void *arg)
{
    void **out = arg;
    pthread_setname_np(pthread_self(), "camera");
    out[0] = heap_caps_malloc(40, CAP_C);
    out[1] = capheap_port_current_task();
    return NULL;
}

static void test_print(void **state)
{
    (void)state;
    boot_custom();
    void *p1 = heap_caps_malloc(1000, CAP_A);
    void *p2 = heap_caps_malloc(24, CAP_A);
    void *p3 = heap_caps_malloc(3000, CAP_B);
    void *tmp = heap_caps_malloc(8000, CAP_B);
    size_t s8 = heap_caps_get_allocated_size(tmp);
    heap_caps_free(tmp);
    void *cam[2];
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, named_worker, cam), 0);
    pthread_join(th, NULL); /* "camera" ended: DELETED, owns one block */
    size_t s1 = heap_caps_get_allocated_size(p1), s2 = heap_caps_get_allocated_size(p2);
    size_t s3 = heap_caps_get_allocated_size(p3);
    size_t sc = heap_caps_get_allocated_size(cam[0]);
    size_t cur = s1 + s2 + s3;
    size_t peak = s1 + s2 + s3 + s8;
    char want[512], line[512];

    /* Overview of every task: the camera thread's handle is larger (later). */
    FILE *f = open_out();
    heap_caps_print_all_task_stat_overview(f);
    fclose(f);
    assert_int_equal(out_lines(), 6);
    assert_true(out_line(0, line, sizeof line));
    assert_string_equal(line, "┌────────────────────┬─────────┬──────────────────────┬───────────────────┬─────────────────┐");
    assert_true(out_line(1, line, sizeof line));
    assert_string_equal(line, "│               TASK │  STATUS │ CURRENT MEMORY USAGE │ PEAK MEMORY USAGE │ TOTAL HEAP USED │");
    assert_true(out_line(2, line, sizeof line));
    assert_string_equal(line, "├────────────────────┼─────────┼──────────────────────┼───────────────────┼─────────────────┤");
    assert_true(out_line(3, line, sizeof line));
    snprintf(want, sizeof want, "│ %18s │ %7s │ %20zu │ %17zu │ %15d │", "camera", "DELETED", sc, sc, 1);
    assert_string_equal(line, want);
    assert_true(out_line(4, line, sizeof line));
    snprintf(want, sizeof want, "│ %18s │ %7s │ %20zu │ %17zu │ %15d │", "main", "ALIVE", cur, peak, 2);
    assert_string_equal(line, want);
    assert_true(out_line(5, line, sizeof line));
    assert_string_equal(line, "└────────────────────┴─────────┴──────────────────────┴───────────────────┴─────────────────┘");

    /* One task's overview; NULL stream is stdout (only checked not to crash). */
    f = open_out();
    heap_caps_print_single_task_stat_overview(f, NULL);
    fclose(f);
    assert_int_equal(out_lines(), 5);
    assert_true(out_line(3, line, sizeof line));
    assert_string_equal(line, want);
    heap_caps_print_single_task_stat_overview(NULL, NULL);

    /* The detail tree of the calling task. */
    f = open_out();
    heap_caps_print_single_task_stat(f, NULL);
    fclose(f);
    assert_int_equal(out_lines(), 6);
    assert_true(out_line(0, line, sizeof line));
    snprintf(want, sizeof want, "├ ALIVE: main, CURRENT MEMORY USAGE %zu, PEAK MEMORY USAGE %zu, TOTAL HEAP USED 2:",
             cur, peak);
    assert_string_equal(line, want);
    assert_true(out_line(1, line, sizeof line));
    snprintf(want, sizeof want,
             "│    ├ HEAP: alpha, CAPS: 0x%08x, SIZE: %zu, USAGE: CURRENT %zu (%zu%%), PEAK %zu (%zu%%), ALLOC COUNT: 2",
             (unsigned)(CAP_A | MALLOC_CAP_DEFAULT), sizeof region_a, s1 + s2, (s1 + s2) * 100 / sizeof region_a,
             s1 + s2, (s1 + s2) * 100 / sizeof region_a);
    assert_string_equal(line, want);
    void *lo = (uintptr_t)p1 < (uintptr_t)p2 ? p1 : p2, *hi = lo == p1 ? p2 : p1;
    assert_true(out_line(2, line, sizeof line));
    snprintf(want, sizeof want, "│    │    ├ ALLOC %p, SIZE %zu", lo, heap_caps_get_allocated_size(lo));
    assert_string_equal(line, want);
    assert_true(out_line(3, line, sizeof line));
    snprintf(want, sizeof want, "│    │    ├ ALLOC %p, SIZE %zu", hi, heap_caps_get_allocated_size(hi));
    assert_string_equal(line, want);
    assert_true(out_line(4, line, sizeof line));
    snprintf(want, sizeof want,
             "│    ├ HEAP: beta, CAPS: 0x%08x, SIZE: %zu, USAGE: CURRENT %zu (%zu%%), PEAK %zu (%zu%%), ALLOC COUNT: 1",
             (unsigned)(CAP_B | MALLOC_CAP_DEFAULT), sizeof region_b, s3, s3 * 100 / sizeof region_b, s3 + s8,
             (s3 + s8) * 100 / sizeof region_b);
    assert_string_equal(line, want);

    /* Every task: camera first, then main. */
    f = open_out();
    heap_caps_print_all_task_stat(f);
    fclose(f);
    assert_int_equal(out_lines(), 3 + 6);
    assert_true(out_line(0, line, sizeof line));
    snprintf(want, sizeof want, "├ DELETED: camera, CURRENT MEMORY USAGE %zu, PEAK MEMORY USAGE %zu, TOTAL HEAP USED 1:",
             sc, sc);
    assert_string_equal(line, want);
    assert_true(out_line(2, line, sizeof line));
    snprintf(want, sizeof want, "│    │    ├ ALLOC %p, SIZE %zu", cam[0], sc);
    assert_string_equal(line, want);
    assert_true(out_line(3, line, sizeof line));
    assert_true(strncmp(line, "├ ALIVE: main,", strlen("├ ALIVE: main,")) == 0);

    /* An unknown task prints nothing. */
    f = open_out();
    heap_caps_print_single_task_stat(f, (TaskHandle_t)(uintptr_t)0x999);
    fclose(f);
    assert_int_equal(out_lines(), 0);

    heap_caps_free(p1);
    heap_caps_free(p2);
    heap_caps_free(p3);
    heap_caps_free(cam[0]); /* camera owns nothing: its record goes */
    f = open_out();
    heap_caps_print_all_task_stat_overview(f);
    fclose(f);
    assert_int_equal(out_lines(), CAPHEAP_TRACK_DELETED_TASKS_VALUE ? 6 : 5);
}

/* A block listing longer than one collection chunk (32) prints every block once, in order. */
static void test_print_many_blocks(void **state)
{
    (void)state;
    boot_custom();
    enum { N = 100 };
    void *p[N];
    for (int i = 0; i < N; i++)
        assert_non_null(p[i] = heap_caps_malloc(16 + (size_t)i, CAP_A));
    FILE *f = open_out();
    heap_caps_print_single_task_stat(f, NULL);
    fclose(f);
    assert_int_equal(out_lines(), 2 + N);
    char line[256];
    uintptr_t last = 0;
    for (size_t i = 2; i < 2 + N; i++) {
        assert_true(out_line(i, line, sizeof line));
        void *a = NULL;
        assert_int_equal(sscanf(line, "│    │    ├ ALLOC %p,", &a), 1);
        assert_true((uintptr_t)a > last);
        last = (uintptr_t)a;
    }
    for (int i = 0; i < N; i++)
        heap_caps_free(p[i]);
}

/* ------------------------------------------------------------------------ */
/* Full tables                                                                */
/* ------------------------------------------------------------------------ */

/* No table of blocks: every block carries its owner, so any number of them
 * is tracked (the old table held 4096 on the host). */
static void test_many_blocks(void **state)
{
    (void)state;
    boot_s3(4u * 1024u * 1024u);
    capheap_task_tracking_stats_t st;
    assert_int_equal(capheap_task_tracking_get_stats(&st), ESP_OK);
    assert_int_equal(st.max_blocks, SIZE_MAX);
    size_t n = 6000;
    void **p = calloc(n, sizeof *p);
    assert_non_null(p);
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++) {
        p[i] = heap_caps_malloc(8, MALLOC_CAP_SPIRAM);
        assert_non_null(p[i]);
        bytes += heap_caps_get_allocated_size(p[i]);
    }
    assert_int_equal(capheap_task_tracking_get_stats(&st), ESP_OK);
    assert_int_equal(st.blocks, n);
    assert_int_equal(st.untracked_blocks, 0);
    assert_int_equal(st.untracked_task_blocks, 0);
    heap_single_task_stat_t s;
    memset(&s, 0, sizeof s);
    s.heap_count = 8;
    s.heap_stat_start = me_heaps;
    assert_int_equal(heap_caps_get_single_task_stat(&s, NULL), ESP_OK);
    assert_int_equal(s.stat.overall_current_usage, bytes);
    /* Every block is listed, once, at its address. */
    heap_task_block_t *list = calloc(n, sizeof *list);
    assert_non_null(list);
    heap_task_info_params_t params;
    memset(&params, 0, sizeof params);
    params.blocks = list;
    params.max_blocks = n;
    assert_int_equal(heap_caps_get_per_task_info(&params), n);
    for (size_t i = 1; i < n; i++)
        assert_true((uintptr_t)list[i - 1].address < (uintptr_t)list[i].address);
    FILE *f = open_out();
    heap_caps_print_all_task_stat_overview(f);
    fclose(f);
    assert_null(strstr(out_buf, "UNTRACKED"));
    for (size_t i = 0; i < n; i += 2)
        heap_caps_free(p[i]);
    assert_int_equal(capheap_task_tracking_get_stats(&st), ESP_OK);
    assert_int_equal(st.blocks, n / 2);
    for (size_t i = 1; i < n; i += 2)
        heap_caps_free(p[i]);
    assert_int_equal(capheap_task_tracking_get_stats(&st), ESP_OK);
    assert_int_equal(st.blocks, 0);
    assert_int_equal(st.unknown_frees, 0);
    assert_int_equal(heap_caps_get_single_task_stat(&s, NULL), ESP_OK);
    assert_int_equal(s.stat.overall_current_usage, 0);
    free(list);
    free(p);
}

typedef struct {
    pthread_barrier_t *ready, *go;
    void *block;
} holder_t;

static void *hold_one(void *arg)
{
    holder_t *h = arg;
    h->block = heap_caps_malloc(16, MALLOC_CAP_DEFAULT);
    pthread_barrier_wait(h->ready);
    pthread_barrier_wait(h->go);
    heap_caps_free(h->block);
    return NULL;
}

static void test_task_table_full(void **state)
{
    (void)state;
    boot_s3(0);
    capheap_task_tracking_stats_t st;
    assert_int_equal(capheap_task_tracking_get_stats(&st), ESP_OK);
    size_t n = st.max_tasks + 5;
    pthread_barrier_t ready, go;
    pthread_barrier_init(&ready, NULL, (unsigned)n + 1);
    pthread_barrier_init(&go, NULL, (unsigned)n + 1);
    holder_t *h = calloc(n, sizeof *h);
    pthread_t *th = calloc(n, sizeof *th);
    assert_non_null(h);
    assert_non_null(th);
    for (size_t i = 0; i < n; i++) {
        h[i].ready = &ready;
        h[i].go = &go;
        assert_int_equal(pthread_create(&th[i], NULL, hold_one, &h[i]), 0);
    }
    pthread_barrier_wait(&ready);
    assert_int_equal(capheap_task_tracking_get_stats(&st), ESP_OK);
    assert_int_equal(st.tasks, st.max_tasks);
    assert_int_equal(st.untracked_task_blocks, 5);
    assert_int_equal(st.blocks, st.max_tasks);
    FILE *f = open_out();
    heap_caps_print_all_task_stat_overview(f);
    fclose(f);
    assert_non_null(strstr(out_buf, "5 (task table full"));
    /* every tracked block is listed, the last slot's task's included */
    heap_all_tasks_stat_t all = {0};
    all.task_count = all.heap_count = all.alloc_count = st.max_tasks; /* one block in one heap each */
    all.stat_arr = calloc(st.max_tasks, sizeof *all.stat_arr);
    all.heap_stat_start = calloc(st.max_tasks, sizeof *all.heap_stat_start);
    all.alloc_stat_start = calloc(st.max_tasks, sizeof *all.alloc_stat_start);
    assert_int_equal(heap_caps_get_all_task_stat(&all), ESP_OK);
    assert_int_equal(all.task_count, st.max_tasks);
    assert_int_equal(all.alloc_count, st.max_tasks);
    free(all.stat_arr);
    free(all.heap_stat_start);
    free(all.alloc_stat_start);
    pthread_barrier_wait(&go);
    for (size_t i = 0; i < n; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(capheap_task_tracking_get_stats(&st), ESP_OK);
    assert_int_equal(st.blocks, 0);
    assert_int_equal(st.tasks, CAPHEAP_TRACK_DELETED_TASKS_VALUE ? st.max_tasks : 0);
    assert_int_equal(st.unknown_frees, 5);
    /* A new task is tracked again: in a free slot, or (deleted tasks kept) in
     * one of a deleted task that owns nothing now. */
    void *mine = heap_caps_malloc(24, MALLOC_CAP_DEFAULT);
    heap_single_task_stat_t s;
    assert_int_equal(my_stat(&s), ESP_OK);
    assert_int_equal(s.stat.overall_current_usage, heap_caps_get_allocated_size(mine));
    assert_int_equal(capheap_task_tracking_get_stats(&st), ESP_OK);
    assert_int_equal(st.untracked_task_blocks, 5);
    heap_caps_free(mine);
    pthread_barrier_destroy(&ready);
    pthread_barrier_destroy(&go);
    free(h);
    free(th);
}

/* The task table's hash map (open addressing, backward-shift removal) under
 * churn. Threads start one at a time, each leaves one to three blocks and
 * exits; the main thread frees those blocks in random order, and a dead task
 * leaves the map with its last block (without CAPHEAP_TRACK_DELETED_TASKS),
 * which moves the entries probed past it back. Host handles are consecutive
 * numbers, which Fibonacci hashing spreads without a collision while tasks
 * come and go in order; here the live set is a random subset of them, so
 * homes collide and removals shift entries, as a firmware's TCB addresses
 * do. After every step each recorded task's figures are the model's, and a
 * task that owns nothing any more is gone. */
typedef struct {
    void *handle;
    void *block[3];
    size_t n, usage;
} leaver_t;

static void *leave_blocks(void *arg)
{
    leaver_t *d = arg;
    d->handle = capheap_port_current_task();
    for (size_t i = 0; i < d->n; i++)
        d->block[i] = heap_caps_malloc(16 + 8 * ((size_t)(uintptr_t)d->handle % 23u) + 40 * i, MALLOC_CAP_DEFAULT);
    return NULL;
}

static void test_task_map_churn(void **state)
{
    (void)state;
    boot_s3(0);
    capheap_task_tracking_stats_t st;
    assert_int_equal(capheap_task_tracking_get_stats(&st), ESP_OK);
    size_t base = st.tasks, room = st.max_tasks - base - 1; /* the main thread may join */
    size_t blocks = st.blocks, live = 0;
    enum { STEPS = 1500 };
    leaver_t *set = calloc(room, sizeof *set);
    assert_non_null(set);
    void *gone[8] = {NULL};
    size_t n = 0, n_gone = 0, removed = 0;
    ct_rng_t r;
    ct_rng_init(&r, ct_seed("test_task_map_churn"));
    for (unsigned step = 0; step < STEPS; step++) {
        if (n == 0 || (n < room && ct_rng_below(&r, 2) == 0)) {
            leaver_t *d = &set[n++];
            memset(d, 0, sizeof *d);
            d->n = (size_t)ct_rng_range(&r, 1, 3);
            pthread_t th;
            assert_int_equal(pthread_create(&th, NULL, leave_blocks, d), 0);
            pthread_join(th, NULL);
            live += d->n;
            for (size_t i = 0; i < d->n; i++) {
                assert_non_null(d->block[i]);
                d->usage += heap_caps_get_allocated_size(d->block[i]);
            }
        } else {
            size_t k = (size_t)ct_rng_below(&r, n);
            leaver_t *d = &set[k];
            size_t i = (size_t)ct_rng_below(&r, d->n);
            d->usage -= heap_caps_get_allocated_size(d->block[i]);
            heap_caps_free(d->block[i]);
            live--;
            d->block[i] = d->block[--d->n];
            if (d->n == 0) {
                gone[n_gone++ % 8] = d->handle;
                set[k] = set[--n];
                removed++;
            }
        }
        for (size_t k = 0; k < n; k++) {
            task_stat_t t = task_stat_of(set[k].handle);
            assert_false(t.is_alive);
            assert_int_equal(t.overall_current_usage, set[k].usage);
        }
        heap_single_task_stat_t s;
        for (size_t g = 0; g < 8 && g < n_gone; g++) {
            memset(&s, 0, sizeof s);
            esp_err_t e = heap_caps_get_single_task_stat(&s, gone[g]);
            if (CAPHEAP_TRACK_DELETED_TASKS_VALUE) /* kept until its slot is wanted */
                assert_true(e == ESP_FAIL || (e == ESP_OK && s.stat.overall_current_usage == 0));
            else
                assert_int_equal(e, ESP_FAIL);
        }
        assert_int_equal(capheap_task_tracking_get_stats(&st), ESP_OK);
        assert_int_equal(st.untracked_task_blocks, 0);
        assert_int_equal(st.blocks, blocks + live);
        if (!CAPHEAP_TRACK_DELETED_TASKS_VALUE)
            assert_in_range(st.tasks, base + n, base + n + 1); /* + the main thread's, once it has one */
    }
    assert_true(removed > STEPS / 8);
    while (n > 0) {
        leaver_t *d = &set[--n];
        while (d->n > 0)
            heap_caps_free(d->block[--d->n]);
    }
    assert_int_equal(capheap_task_tracking_get_stats(&st), ESP_OK);
    assert_int_equal(st.blocks, blocks);
    free(set);
}

/* ------------------------------------------------------------------------ */
/* Task deletion, names, reset                                                */
/* ------------------------------------------------------------------------ */

static void *leave_two(void *arg)
{
    void **out = arg;
    void *x = heap_caps_malloc(100, MALLOC_CAP_DEFAULT);
    out[0] = heap_caps_malloc(200, MALLOC_CAP_DEFAULT);
    out[1] = heap_caps_malloc(300, MALLOC_CAP_INTERNAL);
    heap_caps_free(x);
    out[2] = capheap_port_current_task();
    return NULL;
}

static void test_task_deletion(void **state)
{
    (void)state;
    boot_s3(0);
    void *out[3];
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, leave_two, out), 0);
    pthread_join(th, NULL);
    task_stat_t t = task_stat_of(out[2]);
    assert_false(t.is_alive);
    size_t two = heap_caps_get_allocated_size(out[0]) + heap_caps_get_allocated_size(out[1]);
    assert_int_equal(t.overall_current_usage, two);
    char want[16];
    snprintf(want, sizeof want, "thread-%u", (unsigned)(uintptr_t)out[2]);
    assert_string_equal(t.name, want);
    /* The dead task's blocks are still credited to it when freed elsewhere. */
    heap_caps_free(out[0]);
    assert_int_equal(task_stat_of(out[2]).overall_current_usage, heap_caps_get_allocated_size(out[1]));
    heap_caps_free(out[1]);
    heap_single_task_stat_t s;
    memset(&s, 0, sizeof s);
    assert_int_equal(heap_caps_get_single_task_stat(&s, out[2]),
                     CAPHEAP_TRACK_DELETED_TASKS_VALUE ? ESP_OK : ESP_FAIL);

    /* capheap_task_deleted() on a live task, by hand: DELETED, then alive
     * again? No: a deleted handle that allocates stays DELETED. */
    void *mine = heap_caps_malloc(10, MALLOC_CAP_DEFAULT);
    capheap_task_deleted(capheap_port_current_task());
    capheap_task_deleted((void *)(uintptr_t)0x4242); /* unknown: nothing */
    void *more = heap_caps_malloc(10, MALLOC_CAP_DEFAULT);
    t = task_stat_of(NULL);
    assert_false(t.is_alive);
    assert_int_equal(t.overall_current_usage, heap_caps_get_allocated_size(mine) + heap_caps_get_allocated_size(more));
    heap_caps_free(mine);
    heap_caps_free(more);
    assert_int_equal(heap_caps_get_single_task_stat(&s, NULL), CAPHEAP_TRACK_DELETED_TASKS_VALUE ? ESP_OK : ESP_FAIL);
}

static void test_names_and_handles(void **state)
{
    (void)state;
    void *me = capheap_port_current_task();
    assert_non_null(me);
    assert_ptr_equal(capheap_port_current_task(), me); /* stable */
    assert_string_equal(capheap_port_task_name(me), "main");
    assert_string_equal(capheap_port_task_name(NULL), "Pre-scheduler");
    assert_null(capheap_port_task_name((void *)((uintptr_t)me + 1000))); /* not the caller */
}

static void test_reset(void **state)
{
    (void)state;
    boot_custom();
    void *p = heap_caps_malloc(100, CAP_A);
    capheap_task_tracking_stats_t st;
    assert_int_equal(capheap_task_tracking_get_stats(&st), ESP_OK);
    assert_int_equal(st.blocks, 1);
    assert_int_equal(st.tasks, 1);
    assert_int_equal(capheap_task_tracking_get_stats(NULL), ESP_ERR_INVALID_ARG);
    capheap_task_tracking_reset();
    assert_int_equal(capheap_task_tracking_get_stats(&st), ESP_OK);
    assert_int_equal(st.blocks, 0);
    assert_int_equal(st.tasks, 0);
    heap_caps_free(p); /* from before the reset: an unknown free */
    assert_int_equal(capheap_task_tracking_get_stats(&st), ESP_OK);
    assert_int_equal(st.unknown_frees, 1);
    /* Heaps reset (capheap_caps_reset resets the tracker too): the old
     * block is forgotten, the same address handed out again is a new block. */
    void *a = heap_caps_malloc(64, CAP_B);
    assert_non_null(a);
    capheap_caps_reset();
    add_region(region_a, sizeof region_a, CAP_A, "alpha");
    add_region(region_b, sizeof region_b, CAP_B, "beta");
    void *b = heap_caps_malloc(64, CAP_B);
    assert_ptr_equal(b, a); /* a fresh heap hands out the same first block */
    assert_int_equal(capheap_task_tracking_get_stats(&st), ESP_OK);
    assert_int_equal(st.blocks, 1);
    assert_int_equal(task_stat_of(NULL).overall_current_usage, heap_caps_get_allocated_size(b));
    heap_caps_free(b);
    assert_int_equal(capheap_task_tracking_get_stats(&st), ESP_OK);
    assert_int_equal(st.blocks, 0);
    assert_int_equal(task_stat_of(NULL).overall_current_usage, 0);
}

/* ------------------------------------------------------------------------ */
/* Owner words that went stale or were smashed, names, the legacy call      */
/* ------------------------------------------------------------------------ */

/* The line of the captured text that starts with prefix (into out), or false. */
static bool captured_line(const char *prefix, char *out, size_t n)
{
    const char *at = strstr(ct_capture_text(), prefix);
    if (at == NULL)
        return false;
    size_t k = 0;
    while (at[k] != '\0' && at[k] != '\n' && k + 1 < n) {
        out[k] = at[k];
        k++;
    }
    out[k] = '\0';
    return true;
}

/* A block from before a reset carries a word of the old generation: its free
 * is an unknown free, not a credit to the task that has the slot now, and a
 * description names no task for it (task_info.c: a reset makes every word
 * issued so far stale). */
static void test_word_from_before_reset(void **state)
{
    (void)state;
    boot_custom();
    void *x = heap_caps_malloc(100, CAP_A);
    assert_non_null(x);
    capheap_task_tracking_reset();
    void *y = heap_caps_malloc(60, CAP_A); /* the same task, the same slot, a new generation */
    assert_non_null(y);
    heap_single_task_stat_t s;
    assert_int_equal(my_stat(&s), ESP_OK);
    assert_int_equal(s.stat.overall_current_usage, heap_caps_get_allocated_size(y));
    char line[256];
    ct_capture_begin();
    capheap_describe_block(x);
    capheap_describe_block(y);
    ct_capture_end();
    char want[64];
    snprintf(want, sizeof want, "  block %p: used", (void *)((uint8_t *)x - ct_poison_head(4)));
    assert_true(captured_line(want, line, sizeof line));
    assert_null(strstr(line, "task \"")); /* x: nobody's */
    snprintf(want, sizeof want, "  block %p: used", (void *)((uint8_t *)y - ct_poison_head(4)));
    assert_true(captured_line(want, line, sizeof line));
    assert_non_null(strstr(line, ", task \"main\"")); /* y: this task's */
    heap_caps_free(x);
    capheap_task_tracking_stats_t st;
    assert_int_equal(capheap_task_tracking_get_stats(&st), ESP_OK);
    assert_int_equal(st.unknown_frees, 1);
    assert_int_equal(my_stat(&s), ESP_OK);
    assert_int_equal(s.stat.overall_current_usage, heap_caps_get_allocated_size(y));
    heap_caps_free(y);
    assert_int_equal(my_stat(&s), ESP_OK);
    assert_int_equal(s.stat.overall_current_usage, 0);
}

/* A smashed owner word (its check bits wrong) is charged to nobody: the block
 * is not listed, and its free is an unknown free. */
static void test_smashed_word_is_nobodys(void **state)
{
    (void)state;
    boot_custom();
    int k = capheap_heap_find(region_a);
    assert_true(k >= 0);
    capheap_heap_desc_t d;
    assert_true(capheap_heap_get((size_t)k, &d));
    void *a = heap_caps_malloc(100, CAP_A);
    void *b = heap_caps_malloc(200, CAP_A);
    assert_non_null(a);
    assert_non_null(b);
    uint32_t mine = capheap_heap_get_owner(d.heap, b).owner;
    assert_true(mine != 0);
    (void)capheap_heap_swap_owner(d.heap, b, mine ^ 0x00010000u); /* one check bit flipped */
    heap_single_task_stat_t s;
    assert_int_equal(my_stat(&s), ESP_OK);
    const heap_stat_t *ha = heap_named(&s, "alpha");
    assert_non_null(ha);
    assert_int_equal(ha->alloc_count, 1);
    assert_ptr_equal(ha->alloc_stat[0].address, a);
    heap_caps_free(b);
    capheap_task_tracking_stats_t st;
    assert_int_equal(capheap_task_tracking_get_stats(&st), ESP_OK);
    assert_int_equal(st.unknown_frees, 1);
    heap_caps_free(a);
}

/* A query that finds more blocks with a task's word than the task's counters
 * say (a block given its word, not yet charged) lists no more than counted:
 * the extra block never spills into the next heap's list. */
static void test_query_more_found_than_counted(void **state)
{
    (void)state;
    boot_custom();
    int k = capheap_heap_find(region_a);
    assert_true(k >= 0);
    capheap_heap_desc_t d;
    assert_true(capheap_heap_get((size_t)k, &d));
    void *a = heap_caps_malloc(100, CAP_A);
    void *b = heap_caps_malloc(200, CAP_A);
    void *e = heap_caps_malloc(40, CAP_B);
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(e);
    uint32_t mine = capheap_heap_get_owner(d.heap, a).owner;
    void *x = multi_heap_malloc(d.heap, 50);
    assert_non_null(x);
    (void)capheap_heap_swap_owner(d.heap, x, mine); /* found with the word, not counted */
    heap_single_task_stat_t s;
    assert_int_equal(my_stat(&s), ESP_OK);
    const heap_stat_t *ha = heap_named(&s, "alpha");
    const heap_stat_t *hb = heap_named(&s, "beta");
    assert_non_null(ha);
    assert_non_null(hb);
    assert_int_equal(ha->alloc_count, 2);
    assert_int_equal(hb->alloc_count, 1);
    assert_int_equal(s.alloc_count, 3);
    assert_ptr_equal(hb->alloc_stat[0].address, e);
    (void)capheap_heap_swap_owner(d.heap, x, 0);
    multi_heap_free(d.heap, x);
    heap_caps_free(a);
    heap_caps_free(b);
    heap_caps_free(e);
}

/* A task's thread whose record was dropped (deleted, owning nothing) still
 * holds its old word; another task then takes the slot. The old thread's next
 * allocation must not be charged to the new task. */
typedef struct {
    pthread_barrier_t *bar;
    void *handle;
    void *block;
    size_t size;
} stale_t;

static void *stale_a(void *arg)
{
    stale_t *t = arg;
    t->handle = capheap_port_current_task();
    heap_caps_free(heap_caps_malloc(32, CAP_A)); /* its word is known, it owns nothing */
    pthread_barrier_wait(t->bar);                /* 1: main deletes it */
    pthread_barrier_wait(t->bar);                /* 2: B has taken a slot */
    t->block = heap_caps_malloc(t->size, CAP_A);
    pthread_barrier_wait(t->bar);                /* 3: main checks */
    pthread_barrier_wait(t->bar);                /* 4 */
    heap_caps_free(t->block);
    return NULL;
}

static void *stale_b(void *arg)
{
    stale_t *t = arg;
    t->handle = capheap_port_current_task();
    t->block = heap_caps_malloc(t->size, CAP_A);
    pthread_barrier_wait(t->bar); /* 1: allocated */
    pthread_barrier_wait(t->bar); /* 2: main has checked */
    heap_caps_free(t->block);
    return NULL;
}

static void test_dropped_task_word_goes_stale(void **state)
{
    (void)state;
    boot_custom();
    pthread_barrier_t bar_a, bar_b;
    pthread_barrier_init(&bar_a, NULL, 2);
    pthread_barrier_init(&bar_b, NULL, 2);
    stale_t ta = {&bar_a, NULL, NULL, 300}, tb = {&bar_b, NULL, NULL, 100};
    pthread_t tha, thb;
    assert_int_equal(pthread_create(&tha, NULL, stale_a, &ta), 0);
    pthread_barrier_wait(&bar_a); /* 1 */
    capheap_task_deleted(ta.handle);
    assert_int_equal(pthread_create(&thb, NULL, stale_b, &tb), 0);
    pthread_barrier_wait(&bar_b); /* 1: B allocated (in A's old slot unless deleted tasks are kept) */
    pthread_barrier_wait(&bar_a); /* 2 */
    pthread_barrier_wait(&bar_a); /* 3: A allocated with its old word */
    assert_int_equal(task_stat_of(tb.handle).overall_current_usage, heap_caps_get_allocated_size(tb.block));
    assert_int_equal(task_stat_of(ta.handle).overall_current_usage, heap_caps_get_allocated_size(ta.block));
    capheap_task_tracking_stats_t st;
    assert_int_equal(capheap_task_tracking_get_stats(&st), ESP_OK);
    assert_int_equal(st.blocks, 2);
    assert_int_equal(st.untracked_task_blocks, 0);
    pthread_barrier_wait(&bar_b); /* 2 */
    pthread_barrier_wait(&bar_a); /* 4 */
    pthread_join(tha, NULL);
    pthread_join(thb, NULL);
    pthread_barrier_destroy(&bar_a);
    pthread_barrier_destroy(&bar_b);
}

/* capheap_port_task_name's text is kept up to 15 characters (port.h): a
 * 15-character thread name whole, a longer one cut to 15. */
static void *named_15(void *arg)
{
    void **out = arg;
    pthread_setname_np(pthread_self(), "abcdefghijklmno"); /* 15: the most a thread name holds */
    out[0] = heap_caps_malloc(16, MALLOC_CAP_DEFAULT);
    out[1] = capheap_port_current_task();
    return NULL;
}

static void test_name_of_15_characters(void **state)
{
    (void)state;
    boot_s3(0);
    void *out[2];
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, named_15, out), 0);
    pthread_join(th, NULL);
    assert_string_equal(task_stat_of(out[1]).name, "abcdefghijklmno");
    heap_caps_free(out[0]);
}

/* heap_caps_get_per_task_info: blocks in ascending address order whatever the
 * order of the heaps (here registered from the highest address down), and
 * never a write past max_totals, even when *num_totals says more. */
static void test_per_task_info_order_and_bounds(void **state)
{
    (void)state;
    shutdown_all();
    unsigned char *r[3] = {region_a, region_b, region_c};
    size_t n[3] = {sizeof region_a, sizeof region_b, sizeof region_c};
    uint32_t c[3] = {CAP_A, CAP_B, CAP_C};
    const char *name[3] = {"alpha", "beta", "gamma"};
    /* by address, highest first */
    for (int pass = 0; pass < 3; pass++) {
        int best = -1;
        for (int i = 0; i < 3; i++)
            if (r[i] != NULL && (best < 0 || (uintptr_t)r[i] > (uintptr_t)r[best]))
                best = i;
        add_region(r[best], n[best], c[best], name[best]);
        r[best] = NULL;
    }
    capheap_task_tracking_reset();
    void *p[3];
    for (int i = 0; i < 3; i++) {
        p[i] = heap_caps_malloc(64, c[i]);
        assert_non_null(p[i]);
    }
    heap_task_block_t blocks[4];
    heap_task_totals_t totals[6];
    memset(totals, 0x5A, sizeof totals);
    size_t num_totals = 5; /* more than max_totals: at most max_totals are used */
    heap_task_info_params_t q = {
        .caps = {0, 0, 0, 0}, .mask = {0, 0, 0, 0}, .tasks = NULL, .num_tasks = 0,
        .totals = totals, .num_totals = &num_totals, .max_totals = 2,
        .blocks = blocks, .max_blocks = 4,
    };
    assert_int_equal(heap_caps_get_per_task_info(&q), 3);
    for (int i = 1; i < 3; i++)
        assert_true((uintptr_t)blocks[i - 1].address < (uintptr_t)blocks[i].address);
    assert_true(num_totals <= 2);
    for (size_t i = 2; i < 6; i++) {
        const unsigned char *t = (const unsigned char *)&totals[i];
        for (size_t j = 0; j < sizeof totals[i]; j++)
            assert_int_equal(t[j], 0x5A);
    }
    for (int i = 0; i < 3; i++)
        heap_caps_free(p[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names_and_handles),
        cmocka_unit_test_teardown(test_realloc_between_heaps, teardown),
        cmocka_unit_test_teardown(test_multi_heap_realloc_of_a_caps_block, teardown),
        cmocka_unit_test_teardown(test_nested_heap, teardown),
        cmocka_unit_test_teardown(test_query_between_updates, teardown),
        cmocka_unit_test_teardown(test_exec_alias, teardown),
        cmocka_unit_test_teardown(test_exec_alias_from_diram, teardown),
        cmocka_unit_test_teardown(test_arrays_and_arguments, teardown),
        cmocka_unit_test_teardown(test_per_task_info, teardown),
        cmocka_unit_test_teardown(test_print, teardown),
        cmocka_unit_test_teardown(test_print_many_blocks, teardown),
        cmocka_unit_test_teardown(test_task_deletion, teardown),
        cmocka_unit_test_teardown(test_reset, teardown),
        cmocka_unit_test_teardown(test_word_from_before_reset, teardown),
        cmocka_unit_test_teardown(test_smashed_word_is_nobodys, teardown),
        cmocka_unit_test_teardown(test_query_more_found_than_counted, teardown),
        cmocka_unit_test_teardown(test_dropped_task_word_goes_stale, teardown),
        cmocka_unit_test_teardown(test_name_of_15_characters, teardown),
        cmocka_unit_test_teardown(test_per_task_info_order_and_bounds, teardown),
        cmocka_unit_test_teardown(test_many_blocks, teardown),
        cmocka_unit_test_teardown(test_task_table_full, teardown),
        cmocka_unit_test_teardown(test_task_map_churn, teardown),
        cmocka_unit_test_teardown(test_model_custom, teardown),
        cmocka_unit_test_teardown(test_model_s3, teardown),
        cmocka_unit_test_teardown(test_concurrent_balance, teardown),
        cmocka_unit_test_teardown(test_allocation_after_thread_exit, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
