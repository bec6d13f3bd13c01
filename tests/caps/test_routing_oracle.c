/*
 * test_routing_oracle.c - heap_caps_malloc() picks exactly the heap ESP-IDF's
 * three-priority rule (spec 2.6) picks, on random heap configurations and
 * random heap states.
 *
 * Each round builds 3-10 heaps in cf_arena: some as a custom chip through
 * capheap_caps_init() (random types, some start-up-stack regions, enabled or
 * not), the rest added at run time with heap_caps_add_region_with_caps(). Caps
 * are drawn per priority from the bits real layouts use (DEFAULT, INTERNAL,
 * 8BIT, 32BIT, DMA, SPIRAM, EXEC, RTCRAM, RETENTION). Heaps are then filled to
 * random levels, and thousands of requests with random caps masks and sizes
 * are checked against a slow, literal transcription of the rule kept here:
 *
 *     list  = runtime heaps newest first, then start-up heaps by ascending
 *             size, a tie placed before the earlier equal-sized entry;
 *     for p in 0, 1, 2: for h in list: if h registered and h.caps[p] & req
 *             and all_caps(h) includes req and req fits in h: serve from h.
 *
 * "fits" is size <= multi_heap_get_info(h).largest_free_block, which is exact
 * in capheap (tests/unit/test_stats proves it), for requests whose alignment
 * does not exceed the heap's (the chip here has no cache line and no SIMD, so
 * only DMA_DESC_AHB -> DMA, SPIRAM|DMA -> SPIRAM, the EXEC rules and 32BIT
 * rounding change a request).
 *
 * For every request the test also asks capheap_would_fit() and checks its
 * answer (heap index, or reason and candidate count) and the failure
 * callbacks. Seeded: CAPHEAP_SEED replays a run.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "support.h"
#include "caps_fixture.h"

#define ROUNDS 150
#define REQUESTS_PER_ROUND 220
#define MAX_HEAPS 10
#define MAX_LIVE 1500

static const uint32_t oracle_bits[] = {
    MALLOC_CAP_DEFAULT, MALLOC_CAP_INTERNAL, MALLOC_CAP_8BIT,  MALLOC_CAP_32BIT,     MALLOC_CAP_DMA,
    MALLOC_CAP_SPIRAM,  MALLOC_CAP_EXEC,     MALLOC_CAP_RTCRAM, MALLOC_CAP_RETENTION,
};
#define N_BITS (sizeof oracle_bits / sizeof oracle_bits[0])

/* One heap of the configuration, as the test planned it. */
typedef struct {
    intptr_t start, end;
    uint32_t caps[3];
    bool runtime;
    bool deferred; /* start-up stack region, not (yet) registered */
    size_t fresh_free;
} plan_heap_t;

typedef struct {
    void *p;
    size_t n;
    uint32_t token;
} live_t;

static plan_heap_t plan[MAX_HEAPS];
static size_t plan_count;
static int order[MAX_HEAPS]; /* ESP-IDF list order: indices into plan[] */
static live_t live[MAX_LIVE];
static size_t live_count;

static uint32_t random_prio_caps(ct_rng_t *rng)
{
    uint32_t c = 0;
    for (size_t b = 0; b < N_BITS; b++) {
        if (ct_rng_below(rng, 100) < 22) {
            c |= oracle_bits[b];
        }
    }
    return c;
}

static uint32_t random_subset(ct_rng_t *rng, uint32_t of)
{
    uint32_t c = 0;
    while (c == 0 && of != 0) {
        for (unsigned b = 0; b < 32; b++) {
            if ((of & (1u << b)) && ct_rng_below(rng, 100) < 40) {
                c |= 1u << b;
            }
        }
    }
    return c;
}

static uint32_t random_request_caps(ct_rng_t *rng)
{
    uint64_t k = ct_rng_below(rng, 100);
    if (k < 55) {
        /* Caps some heap has (so most of these are served somewhere). */
        const plan_heap_t *h = &plan[ct_rng_below(rng, plan_count)];
        uint32_t c = random_subset(rng, h->caps[0] | h->caps[1] | h->caps[2]);
        if (ct_rng_below(rng, 10) == 0 && (c & MALLOC_CAP_DMA)) {
            c = (c & ~MALLOC_CAP_DMA) | MALLOC_CAP_DMA_DESC_AHB; /* the virtual cap becomes DMA */
        }
        return c;
    }
    if (k < 93) {
        uint32_t c = 0;
        uint64_t bits = ct_rng_range(rng, 1, 3);
        for (uint64_t i = 0; i < bits; i++) {
            c |= oracle_bits[ct_rng_below(rng, N_BITS)];
        }
        return c;
    }
    static const uint32_t odd[] = {
        0,
        MALLOC_CAP_INVALID,
        MALLOC_CAP_INVALID | MALLOC_CAP_DEFAULT,
        MALLOC_CAP_EXEC | MALLOC_CAP_8BIT,
        MALLOC_CAP_EXEC | MALLOC_CAP_DMA,
        MALLOC_CAP_EXEC | MALLOC_CAP_DMA_DESC_AHB,
        MALLOC_CAP_SPIRAM | MALLOC_CAP_DMA,
        MALLOC_CAP_SPIRAM | MALLOC_CAP_DMA | MALLOC_CAP_EXEC, /* DMA dropped first (step 1), then EXEC is fine */
        MALLOC_CAP_PID2,
        1u << 29,
    };
    return odd[ct_rng_below(rng, sizeof odd / sizeof odd[0])];
}

static size_t random_request_size(ct_rng_t *rng)
{
    uint64_t k = ct_rng_below(rng, 100);
    if (k < 45) {
        return (size_t)ct_rng_range(rng, 1, 64);
    }
    if (k < 85) {
        return (size_t)ct_rng_range(rng, 65, 2048);
    }
    return (size_t)ct_rng_range(rng, 2049, 64 * 1024);
}

/* ---- the configuration ---------------------------------------------------- */

static void build_configuration(ct_rng_t *rng)
{
    plan_count = (size_t)ct_rng_range(rng, 3, MAX_HEAPS);
    size_t startup = (size_t)ct_rng_range(rng, 1, plan_count);
    size_t off = (size_t)ct_rng_below(rng, 64) * 4u;
    size_t prev_size = 0;

    cf_chip_begin("oracle");
    for (size_t i = 0; i < plan_count; i++) {
        size_t size;
        if (i > 0 && i < startup && ct_rng_below(rng, 4) == 0) {
            size = prev_size; /* equal sizes: exercise the tie rule */
        } else {
            size = (size_t)ct_rng_range(rng, 1024, 48 * 1024) & ~(size_t)3u;
        }
        prev_size = size;
        plan_heap_t *h = &plan[i];
        memset(h, 0, sizeof *h);
        do {
            h->caps[0] = random_prio_caps(rng);
            h->caps[1] = random_prio_caps(rng);
            h->caps[2] = random_prio_caps(rng);
        } while ((h->caps[0] | h->caps[1] | h->caps[2]) == 0);
        h->start = cf_at(off);
        h->end = h->start + (intptr_t)size;
        h->runtime = i >= startup;
        off += size + 64u + (size_t)ct_rng_below(rng, 16) * 4u; /* gaps: no coalescing */
        assert_true(off < CF_ARENA_BYTES);
        if (!h->runtime) {
            size_t t = cf_chip_type("T", h->caps[0], h->caps[1], h->caps[2]);
            h->deferred = ct_rng_below(rng, 100) < 15;
            cf_chip_region(h->start, size, t, h->deferred);
        }
    }
    assert_int_equal(cf_chip_init(NULL, 0), ESP_OK);
    if (ct_rng_below(rng, 2) == 0) {
        heap_caps_enable_nonos_stack_heaps();
        for (size_t i = 0; i < startup; i++) {
            plan[i].deferred = false;
        }
    }
    for (size_t i = startup; i < plan_count; i++) {
        assert_int_equal(heap_caps_add_region_with_caps(plan[i].caps, plan[i].start, plan[i].end), ESP_OK);
    }

    /* ESP-IDF's list: start-up records inserted in table order, sorted by size,
     * a tie before the existing equal entry; runtime ones pushed at the head. */
    size_t n = 0;
    for (size_t i = 0; i < startup; i++) {
        size_t size = (size_t)(plan[i].end - plan[i].start);
        size_t at = 0;
        while (at < n && (size_t)(plan[order[at]].end - plan[order[at]].start) < size) {
            at++;
        }
        memmove(&order[at + 1], &order[at], (n - at) * sizeof order[0]);
        order[at] = (int)i;
        n++;
    }
    for (size_t i = startup; i < plan_count; i++) {
        memmove(&order[1], &order[0], n * sizeof order[0]);
        order[0] = (int)i;
        n++;
    }

    /* capheap lists the same heaps in the same order. */
    assert_int_equal(capheap_heap_count(), plan_count);
    for (size_t i = 0; i < plan_count; i++) {
        capheap_heap_desc_t d = cf_desc(i);
        plan_heap_t *h = &plan[order[i]];
        if (d.start != h->start || d.end != h->end) {
            fail_msg("list position %zu: capheap has [%p, %p), ESP-IDF order wants [%p, %p)", i, (void *)d.start,
                     (void *)d.end, (void *)h->start, (void *)h->end);
        }
        assert_int_equal(d.caps[0], h->caps[0]);
        assert_int_equal(d.caps[1], h->caps[1]);
        assert_int_equal(d.caps[2], h->caps[2]);
        assert_int_equal(d.runtime, h->runtime);
        assert_int_equal(d.heap == NULL, h->deferred);
        h->fresh_free = d.heap ? multi_heap_free_size(d.heap) : 0;
    }
}

/* Random heap states: fill each registered heap to a random level. */
static void fill_heaps(ct_rng_t *rng)
{
    for (size_t i = 0; i < plan_count; i++) {
        capheap_heap_desc_t d = cf_desc(i);
        if (!d.heap) {
            continue;
        }
        size_t target = (size_t)ct_rng_below(rng, 101); /* percent to use */
        if (ct_rng_below(rng, 4) == 0) {
            target = 100; /* some heaps full */
        }
        size_t want = d.end - d.start;
        want = want * target / 100u;
        size_t used = 0, misses = 0;
        while (used < want && live_count < MAX_LIVE && misses < 40) {
            size_t n = (size_t)ct_rng_range(rng, 1, 1500);
            void *p = multi_heap_malloc(d.heap, n);
            if (!p) {
                misses++;
                continue;
            }
            ct_stamp(p, n);
            live[live_count++] = (live_t){p, n, ct_token(p)};
            used += n + 8u;
        }
    }
}

/* ---- the oracle ------------------------------------------------------------- */

typedef struct {
    int heap;          /* list index, -1: NULL */
    bool early;        /* rejected before the search */
    bool conflicting;  /* early rejection because of the caps */
    size_t candidates; /* registered heaps with every bit */
} expect_t;

static expect_t oracle(size_t size, uint32_t caps)
{
    expect_t e = {-1, false, false, 0};
    size_t s = size, a = 0;
    uint32_t c = caps;
    if (!cf_adjust(capheap_caps_chip(), &s, &a, &c)) {
        e.early = true;
        e.conflicting = c == 0 || (c & MALLOC_CAP_INVALID) ||
                        ((c & MALLOC_CAP_EXEC) && (!CAPHEAP_EXEC_HEAP || (c & (MALLOC_CAP_8BIT | MALLOC_CAP_DMA))));
        return e;
    }
    multi_heap_info_t info[MAX_HEAPS];
    bool have_info[MAX_HEAPS] = {false};
    for (size_t i = 0; i < plan_count; i++) {
        const plan_heap_t *h = &plan[order[i]];
        if (!h->deferred && ((h->caps[0] | h->caps[1] | h->caps[2]) & c) == c) {
            e.candidates++;
        }
    }
    for (int p = 0; p < 3; p++) {
        for (size_t i = 0; i < plan_count; i++) {
            const plan_heap_t *h = &plan[order[i]];
            if (h->deferred) {
                continue; /* not registered */
            }
            if ((h->caps[p] & c) == 0) {
                continue;
            }
            if (((h->caps[0] | h->caps[1] | h->caps[2]) & c) != c) {
                continue;
            }
            if (!have_info[i]) {
                multi_heap_get_info(cf_desc(i).heap, &info[i]);
                have_info[i] = true;
            }
            if (s <= info[i].largest_free_block) {
                e.heap = (int)i;
                return e;
            }
        }
    }
    return e;
}

static void free_live(size_t k)
{
    live_t b = live[k];
    if (!ct_stamp_ok_token(b.p, b.n, b.token)) {
        fail_msg("block %p (%zu bytes) lost its stamp", b.p, b.n);
    }
    heap_caps_free(b.p);
    live[k] = live[--live_count];
}

static void one_request(ct_rng_t *rng, size_t round, size_t r)
{
    size_t size = random_request_size(rng);
    uint32_t caps = random_request_caps(rng);
    expect_t e = oracle(size, caps);

    capheap_fit_t fit;
    memset(&fit, 0xa5, sizeof fit);
    bool would = capheap_would_fit(size, caps, 0, &fit);
    if (would != (e.heap >= 0) || (e.heap >= 0 && fit.heap_index != e.heap)) {
        fail_msg("round %zu request %zu: capheap_would_fit(%zu, 0x%08x) says %d (heap %d), the rule says heap %d",
                 round, r, size, (unsigned)caps, (int)would, fit.heap_index, e.heap);
    }

    unsigned calls_before = cf_cb.calls, ext_before = cf_cb.ext_calls;
    void *p;
    uint64_t how = ct_rng_below(rng, 10);
    if (how == 0) {
        p = heap_caps_calloc(1, size, caps);
    } else if (how == 1) {
        p = heap_caps_realloc(NULL, size, caps);
    } else if (how == 2) {
        p = heap_caps_aligned_alloc(4, size, caps);
    } else {
        p = heap_caps_malloc(size, caps);
    }

    if (e.heap < 0) {
        if (p) {
            fail_msg("round %zu request %zu: size %zu caps 0x%08x: expected NULL, got %p in heap %d", round, r, size,
                     (unsigned)caps, p, capheap_heap_find(p));
        }
        assert_int_equal(cf_cb.calls, calls_before + 1u);
        assert_int_equal(cf_cb.ext_calls, ext_before + 1u);
        assert_int_equal(cf_cb.size, size);
        capheap_fit_reason_t want;
        if (e.early) {
            want = e.conflicting ? CAPHEAP_FIT_CONFLICTING_CAPS : CAPHEAP_FIT_TOO_LARGE;
        } else if (e.candidates == 0) {
            want = CAPHEAP_FIT_NO_HEAP_WITH_CAPS;
        } else {
            want = CAPHEAP_FIT_NO_ROOM;
        }
        if (cf_cb.why.reason != want || fit.reason != want) {
            fail_msg("round %zu request %zu: size %zu caps 0x%08x: reason %d (callback) / %d (would_fit), want %d",
                     round, r, size, (unsigned)caps, (int)cf_cb.why.reason, (int)fit.reason, (int)want);
        }
        assert_int_equal(cf_cb.why.heap_index, -1);
        if (!e.early) {
            assert_int_equal(cf_cb.why.candidates, e.candidates);
            assert_int_equal(fit.candidates, e.candidates);
        }
        return;
    }
    if (!p) {
        fail_msg("round %zu request %zu: size %zu caps 0x%08x: expected heap %d, got NULL", round, r, size,
                 (unsigned)caps, e.heap);
    }
    const plan_heap_t *h = &plan[order[e.heap]];
    if (!cf_inside(p, size, h->start, h->end) || capheap_heap_find(p) != e.heap) {
        fail_msg("round %zu request %zu: size %zu caps 0x%08x: served by heap %d (%p), the rule says heap %d "
                 "[%p, %p)",
                 round, r, size, (unsigned)caps, cf_scan_find(p), p, e.heap, (void *)h->start, (void *)h->end);
    }
    assert_int_equal(cf_cb.calls, calls_before);
    assert_true(heap_caps_get_allocated_size(p) >= size);
    if (how == 0) {
        for (size_t i = 0; i < size; i++) {
            if (((unsigned char *)p)[i] != 0) {
                fail_msg("calloc'd block %p byte %zu not zero", p, i);
            }
        }
    }
    ct_stamp(p, size);
    if (live_count < MAX_LIVE && ct_rng_below(rng, 100) < 70) {
        live[live_count++] = (live_t){p, size, ct_token(p)};
    } else {
        heap_caps_free(p);
    }
}

static void test_routing_matches_the_rule(void **state)
{
    (void)state;
    ct_rng_t rng;
    ct_rng_init(&rng, ct_seed("caps_routing_oracle"));
    size_t served = 0, total = 0;
    for (size_t round = 0; round < ROUNDS; round++) {
        capheap_caps_reset();
        live_count = 0;
        build_configuration(&rng);
        cf_cb_install();
        fill_heaps(&rng);
        for (size_t r = 0; r < REQUESTS_PER_ROUND; r++) {
            if (live_count > 0 && ct_rng_below(&rng, 100) < 30) {
                free_live((size_t)ct_rng_below(&rng, live_count));
                continue;
            }
            unsigned fails = cf_cb.calls;
            one_request(&rng, round, r);
            total++;
            served += cf_cb.calls == fails;
            if (r % 40 == 0) {
                assert_true(heap_caps_check_integrity_all(true));
            }
        }
        assert_true(heap_caps_check_integrity_all(true));
        while (live_count > 0) {
            free_live(live_count - 1u);
        }
        for (size_t i = 0; i < plan_count; i++) {
            capheap_heap_desc_t d = cf_desc(i);
            if (d.heap) {
                assert_int_equal(multi_heap_free_size(d.heap), plan[order[i]].fresh_free);
            }
        }
    }
    /* The generator must exercise both outcomes. */
    assert_true(served > total / 4u);
    assert_true(served < total);
    capheap_caps_reset();
}

/* A heap that fails at an earlier priority is tried again at a later one in
 * ESP-IDF; capheap skips it. The result must be the same: here the only heap
 * with the caps at two priorities is full, and a later, lower-priority heap
 * serves the request. */
static void test_failed_heap_not_retried_same_result(void **state)
{
    (void)state;
    cf_chip_begin("retry");
    size_t a = cf_chip_type("A", MALLOC_CAP_8BIT, MALLOC_CAP_DEFAULT, 0);
    size_t b = cf_chip_type("B", 0, 0, MALLOC_CAP_8BIT | MALLOC_CAP_DEFAULT);
    cf_chip_region(cf_at(0), 4096, a, false);
    cf_chip_region(cf_at(8192), 8192, b, false);
    assert_int_equal(cf_chip_init(NULL, 0), ESP_OK);
    int ia = cf_index_of_start(cf_at(0)), ib = cf_index_of_start(cf_at(8192));
    assert_int_equal(ia, 0);
    assert_int_equal(ib, 1);
    multi_heap_info_t info;
    multi_heap_get_info(cf_desc(0).heap, &info);
    void *big = multi_heap_malloc(cf_desc(0).heap, info.largest_free_block);
    assert_non_null(big);
    void *p = heap_caps_malloc(32, MALLOC_CAP_8BIT | MALLOC_CAP_DEFAULT);
    assert_non_null(p);
    assert_int_equal(capheap_heap_find(p), ib);
    heap_caps_free(p);
    heap_caps_free(big);
    p = heap_caps_malloc(32, MALLOC_CAP_8BIT | MALLOC_CAP_DEFAULT);
    assert_int_equal(capheap_heap_find(p), ia);
    heap_caps_free(p);
    assert_true(heap_caps_check_integrity_all(true));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_failed_heap_not_retried_same_result, cf_setup, cf_teardown),
        cmocka_unit_test_setup_teardown(test_routing_matches_the_rule, cf_setup, cf_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
