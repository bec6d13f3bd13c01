/*
 * test_trace_model.c - heap tracing against a shadow model, with random
 * heap_caps operations on a simulated ESP32-S3 with PSRAM.
 *
 * The model is what the trace must contain: an age-ordered list of records
 * {address, size, freed} and the counters of heap_trace_summary_t, updated by
 * the rules of esp_heap_trace.h (LEAKS deletes on free, ALL marks; a full
 * buffer evicts the oldest record; paused records frees only; stopped nothing;
 * an allocation at an address whose record is still live retires it). After
 * every operation the trace is read back with heap_trace_get() and
 * heap_trace_summary() and compared field by field; the state transitions'
 * return codes are compared too.
 *
 * Variants: both modes x {a buffer larger than the live set (realloc and
 * state changes included), a buffer of 8 records (eviction on most
 * allocations)}, plus "pure" runs (started throughout, LEAKS and ALL) in
 * which the records must also equal the real set of blocks the program holds.
 *
 * Seeded and replayable: the seed is printed; CAPHEAP_SEED=<n> repeats a run.
 * On a mismatch the program prints seed, variant and step, and exits 1.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "capheap/caps.h"
#include "capheap/chip.h"
#include "capheap/sim.h"
#include "esp_heap_caps.h"
#include "esp_heap_trace.h"
#include "support.h"

#define DEPTH CONFIG_HEAP_TRACING_STACK_DEPTH
#define MAX_BLOCKS 192
#define BIG_CAP 8192 /* more than the allocations of a run: no eviction */
#define SMALL_CAP 8
#define STEPS 5000

typedef struct {
    void *ptr;
    size_t size; /* as the trace records it (after heap_caps' adjustment) */
    size_t user; /* bytes stamped */
} block_t;

typedef struct {
    void *addr;
    size_t size;
    bool freed;
} entry_t;

enum { M_STOPPED, M_STARTED, M_PAUSED };

static struct {
    /* the program's blocks */
    block_t blocks[MAX_BLOCKS];
    size_t nblocks;
    /* the trace as it must be */
    entry_t list[BIG_CAP];
    size_t len, cap;
    int state;
    heap_trace_mode_t mode;
    size_t allocs, frees, hits, misses, hwm;
    bool overflowed;
} M;

static heap_trace_record_t records[BIG_CAP];
static uint64_t seed_now;
static int variant_now;
static size_t step_now;

#define CHECK(cond, ...)                                                                                  \
    do {                                                                                                  \
        if (!(cond)) {                                                                                    \
            printf("trace_model: FAILED at %s:%d: %s\n  ", __FILE__, __LINE__, #cond);                    \
            printf(__VA_ARGS__);                                                                          \
            printf("\n  replay: CAPHEAP_SEED=%llu (variant %d, step %zu)\n", (unsigned long long)seed_now, \
                   variant_now, step_now);                                                                \
            fail();                                                                                       \
        }                                                                                                 \
    } while (0)

/* ---- the model ---------------------------------------------------------------- */

static void model_remove(size_t i)
{
    memmove(&M.list[i], &M.list[i + 1], (M.len - i - 1) * sizeof M.list[0]);
    M.len--;
}

static long model_find_live(const void *addr)
{
    for (size_t i = M.len; i-- > 0;)
        if (M.list[i].addr == addr && !M.list[i].freed)
            return (long)i;
    return -1;
}

static void model_alloc(void *addr, size_t size)
{
    if (M.state != M_STARTED)
        return;
    long stale = model_find_live(addr);
    if (stale >= 0) {
        if (M.mode == HEAP_TRACE_LEAKS)
            model_remove((size_t)stale);
        else
            M.list[stale].freed = true;
    }
    if (M.len == M.cap) {
        model_remove(0);
        M.overflowed = true;
    }
    M.list[M.len++] = (entry_t){addr, size, false};
    M.allocs++;
    if (M.len > M.hwm)
        M.hwm = M.len;
}

static void model_free(void *addr)
{
    if (M.state != M_STARTED && M.state != M_PAUSED)
        return;
    M.frees++;
    long i = model_find_live(addr);
    if (i < 0) {
        M.misses++;
        return;
    }
    M.hits++;
    if (M.mode == HEAP_TRACE_LEAKS)
        model_remove((size_t)i);
    else
        M.list[i].freed = true;
}

static void model_start(heap_trace_mode_t mode)
{
    M.len = 0;
    M.allocs = M.frees = M.hits = M.misses = 0;
    M.overflowed = false;
    M.mode = mode;
    M.state = M_STARTED;
}

/* ---- comparing ------------------------------------------------------------------ */

static void compare(bool pure)
{
    heap_trace_summary_t s;
    CHECK(heap_trace_summary(&s) == ESP_OK, "summary");
    CHECK(s.count == M.len, "count %zu, model %zu", s.count, M.len);
    CHECK(s.capacity == M.cap, "capacity %zu", s.capacity);
    CHECK(s.mode == M.mode, "mode");
    CHECK(s.total_allocations == M.allocs, "total_allocations %zu, model %zu", s.total_allocations, M.allocs);
    CHECK(s.total_frees == M.frees, "total_frees %zu, model %zu", s.total_frees, M.frees);
    CHECK(s.total_hashmap_hits == M.hits, "hits %u, model %zu", (unsigned)s.total_hashmap_hits, M.hits);
    CHECK(s.total_hashmap_miss == M.misses, "misses %u, model %zu", (unsigned)s.total_hashmap_miss, M.misses);
    CHECK(s.high_water_mark == M.hwm, "high_water_mark %zu, model %zu", s.high_water_mark, M.hwm);
    CHECK((s.has_overflowed != 0) == M.overflowed, "has_overflowed %zu", s.has_overflowed);
    CHECK(heap_trace_get_count() == M.len, "get_count");
    for (size_t i = 0; i < M.len; i++) {
        heap_trace_record_t r;
        CHECK(heap_trace_get(i, &r) == ESP_OK, "get(%zu)", i);
        CHECK(r.address == M.list[i].addr, "record %zu address %p, model %p", i, r.address, M.list[i].addr);
        CHECK(r.size == M.list[i].size, "record %zu size %zu, model %zu", i, r.size, M.list[i].size);
        CHECK(r.freed == M.list[i].freed, "record %zu freed %d, model %d", i, r.freed, M.list[i].freed);
#if DEPTH > 0
        CHECK(r.alloced_by[0] != NULL, "record %zu without a caller", i);
#endif
    }
    heap_trace_record_t r;
    CHECK(heap_trace_get(M.len, &r) == ESP_ERR_INVALID_ARG, "get past the end");
    if (pure && M.mode == HEAP_TRACE_LEAKS) {
        /* Started throughout with room to spare: the records ARE the live blocks. */
        CHECK(M.len == M.nblocks, "%zu records, %zu live blocks", M.len, M.nblocks);
        for (size_t b = 0; b < M.nblocks; b++) {
            long i = model_find_live(M.blocks[b].ptr);
            CHECK(i >= 0 && M.list[i].size == M.blocks[b].size, "live block %p (%zu bytes) not in the trace",
                  M.blocks[b].ptr, M.blocks[b].size);
        }
    }
    if (pure && M.mode == HEAP_TRACE_ALL) {
        size_t live = 0;
        for (size_t i = 0; i < M.len; i++)
            live += !M.list[i].freed;
        CHECK(live == M.nblocks && M.allocs == M.len, "ALL: %zu unfreed records, %zu live blocks", live, M.nblocks);
    }
}

/* ---- operations ------------------------------------------------------------------ */

static const uint32_t caps_choice[] = {
    MALLOC_CAP_DEFAULT,  MALLOC_CAP_8BIT,   MALLOC_CAP_INTERNAL, MALLOC_CAP_SPIRAM,
    MALLOC_CAP_32BIT,    MALLOC_CAP_DMA,    MALLOC_CAP_SIMD,     MALLOC_CAP_INTERNAL | MALLOC_CAP_8BIT,
};
#define NCAPS (sizeof caps_choice / sizeof caps_choice[0])

static void add_block(void *p, size_t size, size_t user)
{
    ct_stamp(p, user);
    M.blocks[M.nblocks++] = (block_t){p, size, user};
}

static size_t adjusted(size_t size, uint32_t caps, size_t align)
{
    capheap_fit_t fit;
    (void)capheap_would_fit(size, caps, align, &fit);
    return fit.size;
}

static void op_alloc(ct_rng_t *rng)
{
    if (M.nblocks == MAX_BLOCKS)
        return;
    size_t size = (size_t)ct_rng_range(rng, 1, ct_rng_below(rng, 8) == 0 ? 4000 : 200);
    uint32_t caps = caps_choice[ct_rng_below(rng, NCAPS)];
    void *p = NULL;
    size_t recorded = 0;
    switch (ct_rng_below(rng, 4)) {
    case 0:
        recorded = adjusted(size, caps, 0);
        p = heap_caps_malloc(size, caps);
        break;
    case 1: {
        size_t n = (size_t)ct_rng_range(rng, 1, 8);
        recorded = adjusted(n * size, caps, 0);
        p = heap_caps_calloc(n, size, caps);
        size *= n;
        break;
    }
    case 2: {
        size_t align = (size_t)1 << ct_rng_range(rng, 2, 7);
        recorded = adjusted(size, caps, align);
        p = heap_caps_aligned_alloc(align, size, caps);
        break;
    }
    default:
        recorded = size;
        p = heap_caps_malloc_prefer(size, 2, MALLOC_CAP_SPIRAM, MALLOC_CAP_DEFAULT);
        break;
    }
    if (p == NULL)
        return;
    add_block(p, recorded, size);
    model_alloc(p, recorded);
}

static void op_free(ct_rng_t *rng)
{
    if (M.nblocks == 0 || ct_rng_below(rng, 20) == 0) {
        heap_caps_free(NULL); /* no event */
        return;
    }
    size_t b = (size_t)ct_rng_below(rng, M.nblocks);
    block_t blk = M.blocks[b];
    CHECK(ct_stamp_ok(blk.ptr, blk.user), "block %p damaged", blk.ptr);
    M.blocks[b] = M.blocks[--M.nblocks];
    heap_caps_free(blk.ptr);
    model_free(blk.ptr);
}

static void op_realloc(ct_rng_t *rng)
{
    if (M.nblocks == 0)
        return;
    size_t b = (size_t)ct_rng_below(rng, M.nblocks);
    block_t blk = M.blocks[b];
    CHECK(ct_stamp_ok(blk.ptr, blk.user), "block %p damaged", blk.ptr);
    uint32_t caps = ct_rng_below(rng, 2) ? MALLOC_CAP_DEFAULT : caps_choice[ct_rng_below(rng, NCAPS)];
    size_t size = ct_rng_below(rng, 16) == 0 ? 0 : (size_t)ct_rng_range(rng, 1, 600);
    if (ct_rng_below(rng, 16) == 0)
        size = (size_t)256 << 20; /* fails: nothing changes */
    size_t recorded = size ? adjusted(size, caps, 0) : 0;
    void *q = heap_caps_realloc(blk.ptr, size, caps);
    if (size == 0) {
        M.blocks[b] = M.blocks[--M.nblocks];
        model_free(blk.ptr);
        return;
    }
    if (q == NULL)
        return; /* the block stays, and so does its record */
    /* In place or moved, the trace sees the old block go and the new one come:
     * free then alloc when multi_heap's realloc served it, alloc then free when
     * heap_caps moved it through a new allocation. From outside only the
     * high-water mark can tell them apart (LEAKS: one record more for a moment);
     * without eviction (roomy variants) everything else is the same. */
    size_t keep = blk.user < size ? blk.user : size;
    CHECK(ct_stamp_ok_token(q, keep, ct_token(blk.ptr)), "realloc lost data");
    size_t len_before = M.len, hwm_before = M.hwm;
    M.blocks[b] = M.blocks[--M.nblocks];
    model_free(blk.ptr);
    add_block(q, recorded, size);
    model_alloc(q, recorded);
    if (q != blk.ptr && M.state == M_STARTED && M.mode == HEAP_TRACE_LEAKS) {
        heap_trace_summary_t s;
        (void)heap_trace_summary(&s);
        size_t moved = hwm_before > len_before + 1 ? hwm_before : len_before + 1;
        CHECK(s.high_water_mark == M.hwm || s.high_water_mark == moved, "realloc: high water %zu, model %zu or %zu",
              s.high_water_mark, M.hwm, moved);
        M.hwm = s.high_water_mark;
    }
}

static void op_state(ct_rng_t *rng)
{
    esp_err_t got, want;
    switch (ct_rng_below(rng, 4)) {
    case 0:
        got = heap_trace_stop();
        want = M.state == M_STOPPED ? ESP_ERR_INVALID_STATE : ESP_OK;
        if (want == ESP_OK)
            M.state = M_STOPPED;
        break;
    case 1:
        got = heap_trace_alloc_pause();
        want = M.state == M_PAUSED ? ESP_ERR_INVALID_STATE : ESP_OK;
        if (want == ESP_OK)
            M.state = M_PAUSED;
        break;
    case 2:
        got = heap_trace_resume();
        want = M.state == M_STARTED ? ESP_ERR_INVALID_STATE : ESP_OK;
        if (want == ESP_OK)
            M.state = M_STARTED;
        break;
    default: {
        heap_trace_mode_t mode = ct_rng_below(rng, 2) ? HEAP_TRACE_ALL : HEAP_TRACE_LEAKS;
        got = heap_trace_start(mode);
        want = ESP_OK;
        model_start(mode);
        break;
    }
    }
    CHECK(got == want, "transition returned %d, expected %d", (int)got, (int)want);
}

/* ---- runs ---------------------------------------------------------------------- */

typedef struct {
    const char *name;
    heap_trace_mode_t mode;
    size_t cap;
    bool realloc_ops, state_ops, pure;
} variant_t;

static const variant_t variants[] = {
    {"leaks, roomy, realloc, states", HEAP_TRACE_LEAKS, BIG_CAP, true, true, false},
    {"all, roomy, realloc, states", HEAP_TRACE_ALL, BIG_CAP, true, true, false},
    {"leaks, 8 records", HEAP_TRACE_LEAKS, SMALL_CAP, false, true, false},
    {"all, 8 records", HEAP_TRACE_ALL, SMALL_CAP, false, true, false},
    {"leaks, pure", HEAP_TRACE_LEAKS, BIG_CAP, true, false, true},
    {"all, pure", HEAP_TRACE_ALL, BIG_CAP, true, false, true},
};

static void run(int v, uint64_t seed)
{
    const variant_t *var = &variants[v];
    ct_rng_t rng;
    ct_rng_init(&rng, seed + (uint64_t)v);
    variant_now = v;
    memset(&M, 0, sizeof M);
    M.cap = var->cap;
    (void)heap_trace_stop();
    CHECK(heap_trace_init_standalone(records, var->cap) == ESP_OK, "init");
    CHECK(heap_trace_start(var->mode) == ESP_OK, "start");
    model_start(var->mode);
    for (step_now = 0; step_now < STEPS; step_now++) {
        uint64_t dice = ct_rng_below(&rng, 100);
        if (dice < 45)
            op_alloc(&rng);
        else if (dice < 85)
            op_free(&rng);
        else if (dice < 95 && var->realloc_ops)
            op_realloc(&rng);
        else if (dice < 98 && var->state_ops)
            op_state(&rng);
        else if (dice < 98)
            op_free(&rng);
        else
            CHECK(heap_caps_malloc((size_t)256 << 20, MALLOC_CAP_DEFAULT) == NULL, "huge malloc");
        if (M.len <= 256 || step_now % 8 == 0)
            compare(var->pure);
        if (step_now % 1000 == 0)
            CHECK(heap_caps_check_integrity_all(true), "heap integrity");
    }
    while (M.nblocks > 0) {
        block_t blk = M.blocks[--M.nblocks];
        heap_caps_free(blk.ptr);
        model_free(blk.ptr);
        compare(var->pure);
    }
    printf("trace_model: %-32s %d steps, %zu allocations, %zu frees, high water %zu: ok\n", var->name, STEPS,
           M.allocs, M.frees, M.hwm);
}

static void test_trace_model(void **state)
{
    (void)state;
    capheap_sim_options_t o = CAPHEAP_SIM_OPTIONS_DEFAULT;
    o.quiet = true;
    o.psram_bytes = 2u << 20;
    assert_int_equal(capheap_sim_boot(&capheap_chip_esp32s3, &o), ESP_OK);
    seed_now = ct_seed("trace_model");
    for (int v = 0; v < (int)(sizeof variants / sizeof variants[0]); v++)
        run(v, seed_now);
    (void)heap_trace_stop();
    assert_int_equal(heap_trace_init_standalone(NULL, 0), ESP_OK);
    assert_int_equal(capheap_sim_shutdown(), ESP_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_trace_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
