/*
 * test_caps_model.c - a shadow model of every live block (pointer, size, caps,
 * alignment, stamp) under random operations with random caps: malloc, calloc,
 * realloc (in place, moving between heaps, to NULL), aligned alloc and calloc,
 * the prefer variants and free. After every operation:
 *
 *   - heap_caps_check_integrity_all(true);
 *   - every new block lies in a registered heap whose combined caps include
 *     the request's caps after the chip's adjustment (cf_adjust), at the
 *     alignment asked for;
 *   - capheap_would_fit() said beforehand what the allocation then did;
 *   - exact accounting, as deltas from the state after boot: the number of
 *     used blocks and heap_caps_get_info()'s allocated bytes equal the model's
 *     (sum of heap_caps_get_allocated_size), and every heap's free size is its
 *     boot value minus the raw size (capacity + 4-byte header) of the model's
 *     blocks in it.
 *
 * Runs on a multi-region custom chip (start-up heaps, a start-up-stack heap,
 * runtime heaps with alignment 4 and 16), and on every built-in chip booted
 * through the simulator (capheap_sim_boot) when the build has the simulator:
 * CT_MODEL_BUILTIN_CHIPS=1 (set automatically when sim/boot.c exists, or pass
 * -DCT_MODEL_BUILTIN_CHIPS=1). With no built-in chip the second test is skipped.
 * Seeded: CAPHEAP_SEED replays a run.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "support.h"
#include "caps_fixture.h"

#ifndef CT_MODEL_BUILTIN_CHIPS
#if defined(__has_include)
#if __has_include("../../sim/boot.c") || __has_include("../../sim/sim.c")
#define CT_MODEL_BUILTIN_CHIPS 1
#endif
#endif
#endif
#ifndef CT_MODEL_BUILTIN_CHIPS
#define CT_MODEL_BUILTIN_CHIPS 0
#endif
#if CT_MODEL_BUILTIN_CHIPS
#include "capheap/sim.h"
#endif

#define KIB 1024u
#define MAX_LIVE 256
/* Per built-in chip. Comprehensive poisoning makes the validator O(bytes),
 * and it runs after every operation: fewer steps and less PSRAM there. */
#if CAPHEAP_POISONING_COMPREHENSIVE
#define BUILTIN_STEPS 300
#define PSRAM_BYTES (256u * KIB)
#else
#define BUILTIN_STEPS 1500
#define PSRAM_BYTES (1024u * KIB)
#endif
#define MAX_MASKS 48
#define LIST_MAX 64

typedef struct {
    unsigned char *p;
    size_t n;
    uint32_t caps;  /* effective caps (after the adjustment) */
    size_t align;   /* alignment the pointer must have */
    uint32_t token;
} block_t;

static block_t live[MAX_LIVE];
static size_t live_count;
static uint32_t masks[MAX_MASKS];
static size_t mask_count;

/* Boot-time baseline. */
static size_t base_free[LIST_MAX];
static size_t base_blocks, base_allocated;
static size_t heap_count;

static void take_baseline(void)
{
    heap_count = capheap_heap_count();
    assert_true(heap_count <= LIST_MAX);
    for (size_t i = 0; i < heap_count; i++) {
        capheap_heap_desc_t d = cf_desc(i);
        base_free[i] = d.heap ? multi_heap_free_size(d.heap) : 0;
    }
    multi_heap_info_t info;
    heap_caps_get_info(&info, 0);
    base_blocks = info.allocated_blocks;
    base_allocated = info.total_allocated_bytes;
    live_count = 0;
}

static void add_mask(uint32_t m)
{
    for (size_t i = 0; i < mask_count; i++) {
        if (masks[i] == m) {
            return;
        }
    }
    if (mask_count < MAX_MASKS) {
        masks[mask_count++] = m;
    }
}

/* ---- checks ------------------------------------------------------------------ */

static void check_block_placement(const block_t *b, const char *op)
{
    int i = capheap_heap_find(b->p);
    if (i < 0) {
        fail_msg("%s: block %p (%zu bytes, caps 0x%08x) is in no heap", op, (void *)b->p, b->n, (unsigned)b->caps);
    }
    capheap_heap_desc_t d = cf_desc((size_t)i);
    if (!cf_inside(b->p, b->n, d.start, d.end)) {
        fail_msg("%s: block %p + %zu leaves heap %d [%p, %p)", op, (void *)b->p, b->n, i, (void *)d.start,
                 (void *)d.end);
    }
    if ((cf_all_caps(&d) & b->caps) != b->caps) {
        fail_msg("%s: block %p with caps 0x%08x is in heap %d (%s) whose caps are 0x%08x", op, (void *)b->p,
                 (unsigned)b->caps, i, d.name, (unsigned)cf_all_caps(&d));
    }
    if (b->align > 1 && (uintptr_t)b->p % b->align != 0) {
        fail_msg("%s: block %p (%zu bytes, caps 0x%08x) is not aligned to %zu", op, (void *)b->p, b->n,
                 (unsigned)b->caps, b->align);
    }
    if (heap_caps_get_allocated_size(b->p) < b->n) {
        fail_msg("%s: block %p has %zu usable bytes, %zu asked", op, (void *)b->p, heap_caps_get_allocated_size(b->p),
                 b->n);
    }
}

static void check_accounting(size_t step)
{
    if (!heap_caps_check_integrity_all(true)) {
        fail_msg("step %zu: heap_caps_check_integrity_all failed", step);
    }
    size_t cost[LIST_MAX] = {0};
    size_t usable = 0;
    for (size_t k = 0; k < live_count; k++) {
        int i = capheap_heap_find(live[k].p);
        assert_true(i >= 0);
        capheap_heap_desc_t d = cf_desc((size_t)i);
        cost[i] += multi_heap_get_full_block_size(d.heap, live[k].p) + CT_BLOCK_HEADER;
        usable += heap_caps_get_allocated_size(live[k].p);
    }
    multi_heap_info_t info;
    heap_caps_get_info(&info, 0);
    if (info.allocated_blocks != base_blocks + live_count) {
        fail_msg("step %zu: %zu used blocks, the model has %zu (+%zu at boot)", step, info.allocated_blocks,
                 live_count, base_blocks);
    }
    if (info.total_allocated_bytes != base_allocated + usable) {
        fail_msg("step %zu: %zu allocated bytes, the model's blocks hold %zu (+%zu at boot)", step,
                 info.total_allocated_bytes, usable, base_allocated);
    }
    size_t free_sum = 0;
    for (size_t i = 0; i < heap_count; i++) {
        capheap_heap_desc_t d = cf_desc(i);
        if (!d.heap) {
            continue;
        }
        size_t f = multi_heap_free_size(d.heap);
        free_sum += f;
        /* free bytes = free raw bytes minus one poison overhead, clamped at 0 (multi_heap.h) */
        size_t poison = ct_heap_poison_overhead(d.heap);
        size_t raw = base_free[i] + poison - cost[i];
        size_t want = raw > poison ? raw - poison : 0;
        if (f != want) {
            fail_msg("step %zu: heap %zu (%s) has %zu free, expected %zu + %zu - %zu", step, i, d.name, f,
                     base_free[i], poison, cost[i]);
        }
    }
    assert_int_equal(heap_caps_get_free_size(0), free_sum);
}

/* ---- one random operation ------------------------------------------------------ */

static size_t random_size(ct_rng_t *rng)
{
    uint64_t k = ct_rng_below(rng, 100);
    if (k < 50) {
        return (size_t)ct_rng_range(rng, 1, 48);
    }
    if (k < 90) {
        return (size_t)ct_rng_range(rng, 49, 1024);
    }
    return (size_t)ct_rng_range(rng, 1025, 12 * KIB);
}

static uint32_t random_caps(ct_rng_t *rng)
{
    return masks[ct_rng_below(rng, mask_count)];
}

/* Effective caps and alignment of a successful request, per the chip's rules. */
static bool effective(size_t size, size_t align, uint32_t caps, uint32_t *eff_caps, size_t *eff_align)
{
    size_t s = size, a = align;
    uint32_t c = caps;
    if (!cf_adjust(capheap_caps_chip(), &s, &a, &c)) {
        return false;
    }
    *eff_caps = c;
    *eff_align = a < 4 ? 4 : a;
    return true;
}

static void remember(void *p, size_t n, uint32_t caps, size_t align, const char *op)
{
    block_t b = {p, n, 0, 4, 0};
    if (!effective(n, align, caps, &b.caps, &b.align)) {
        fail_msg("%s: %p returned for a request (%zu, 0x%08x) that must fail", op, p, n, (unsigned)caps);
    }
    check_block_placement(&b, op);
    ct_stamp(p, n);
    b.token = ct_token(p);
    live[live_count++] = b;
}

static void forget(size_t k)
{
    live[k] = live[--live_count];
}

static void one_op(ct_rng_t *rng, size_t step)
{
    uint64_t op = ct_rng_below(rng, 100);
    if (live_count >= MAX_LIVE - 1u || (live_count > 0 && op < 28)) {
        size_t k = (size_t)ct_rng_below(rng, live_count);
        if (!ct_stamp_ok_token(live[k].p, live[k].n, live[k].token)) {
            fail_msg("step %zu: block %p lost its stamp", step, (void *)live[k].p);
        }
        heap_caps_free(live[k].p);
        forget(k);
        return;
    }
    size_t n = random_size(rng);
    uint32_t caps = random_caps(rng);
    if (op < 55) {
        capheap_fit_t fit;
        bool would = capheap_would_fit(n, caps, 0, &fit);
        void *p = heap_caps_malloc(n, caps);
        if ((p != NULL) != would) {
            fail_msg("step %zu: malloc(%zu, 0x%08x) = %p (heap %d), capheap_would_fit said %d (%s, heap %d, "
                     "%zu candidates, largest %zu, size %zu)",
                     step, n, (unsigned)caps, p, p ? capheap_heap_find(p) : -1, (int)would,
                     capheap_fit_reason_text(fit.reason), fit.heap_index, fit.candidates, fit.largest_block,
                     fit.size);
        }
        if (p) {
            remember(p, n, caps, 0, "malloc");
        }
    } else if (op < 65) {
        size_t m = (size_t)ct_rng_range(rng, 1, 8);
        size_t each = n / m + 1u;
        bool would = capheap_would_fit(m * each, caps, 0, NULL);
        unsigned char *p = heap_caps_calloc(m, each, caps);
        if ((p != NULL) != would) {
            fail_msg("step %zu: calloc(%zu, %zu, 0x%08x) = %p, capheap_would_fit said %d", step, m, each,
                     (unsigned)caps, (void *)p, (int)would);
        }
        if (p) {
            for (size_t i = 0; i < m * each; i++) {
                if (p[i] != 0) {
                    fail_msg("step %zu: calloc byte %zu is 0x%02x", step, i, p[i]);
                }
            }
            remember(p, m * each, caps, 0, "calloc");
        }
    } else if (op < 75) {
        size_t a = (size_t)1u << ct_rng_range(rng, 0, 9);
        bool would = capheap_would_fit(n, caps, a, NULL);
        void *p = ct_rng_below(rng, 4) == 0 ? heap_caps_aligned_calloc(a, 1, n, caps)
                                            : heap_caps_aligned_alloc(a, n, caps);
        if ((p != NULL) != would) {
            fail_msg("step %zu: aligned(%zu, %zu, 0x%08x) = %p, capheap_would_fit said %d", step, a, n,
                     (unsigned)caps, p, (int)would);
        }
        if (p) {
            remember(p, n, caps, a, "aligned");
        }
    } else if (op < 80) {
        uint32_t c2 = random_caps(rng);
        bool first = capheap_would_fit(n, caps, 0, NULL);
        bool second = capheap_would_fit(n, c2, 0, NULL);
        void *p = heap_caps_malloc_prefer(n, 2, caps, c2);
        if ((p != NULL) != (first || second)) {
            fail_msg("step %zu: malloc_prefer(%zu, 0x%08x, 0x%08x) = %p, capheap_would_fit said %d, %d", step, n,
                     (unsigned)caps, (unsigned)c2, p, (int)first, (int)second);
        }
        if (p) {
            /* served under caps when that was possible, else under c2 */
            uint32_t e1;
            size_t a1;
            int i = capheap_heap_find(p);
            assert_true(i >= 0);
            capheap_heap_desc_t d = cf_desc((size_t)i);
            bool under_first = effective(n, 0, caps, &e1, &a1) && (cf_all_caps(&d) & e1) == e1;
            if (first && !under_first) {
                fail_msg("step %zu: malloc_prefer(%zu, 0x%08x, 0x%08x) skipped the first caps, which fit", step, n,
                         (unsigned)caps, (unsigned)c2);
            }
            remember(p, n, under_first ? caps : c2, 0, "malloc_prefer");
        }
    } else {
        /* realloc of a live block (or NULL) to a new size and caps */
        if (live_count == 0 || ct_rng_below(rng, 8) == 0) {
            void *p = heap_caps_realloc(NULL, n, caps);
            if (p) {
                remember(p, n, caps, 0, "realloc(NULL)");
            }
            return;
        }
        size_t k = (size_t)ct_rng_below(rng, live_count);
        block_t old = live[k];
        if (!ct_stamp_ok_token(old.p, old.n, old.token)) {
            fail_msg("step %zu: block %p lost its stamp", step, (void *)old.p);
        }
        size_t free_before = heap_caps_get_free_size(0);
        void *p = heap_caps_realloc(old.p, n, caps);
        if (!p) {
            /* the old block is intact and still owned */
            assert_true(ct_stamp_ok_token(old.p, old.n, old.token));
            assert_int_equal(heap_caps_get_free_size(0), free_before);
            return;
        }
        size_t keep = old.n < n ? old.n : n;
        if (!ct_stamp_ok_token(p, keep, old.token)) {
            fail_msg("step %zu: realloc(%p, %zu, 0x%08x) -> %p lost the first %zu bytes", step, (void *)old.p, n,
                     (unsigned)caps, p, keep);
        }
        forget(k);
        remember(p, n, caps, 0, "realloc");
    }
}

static void run_model(ct_rng_t *rng, size_t steps, const char *what)
{
    take_baseline();
    check_accounting(0);
    for (size_t step = 1; step <= steps; step++) {
        one_op(rng, step);
        check_accounting(step);
    }
    for (size_t k = 0; k < live_count; k++) {
        if (!ct_stamp_ok_token(live[k].p, live[k].n, live[k].token)) {
            fail_msg("%s: block %p lost its stamp", what, (void *)live[k].p);
        }
    }
    while (live_count > 0) {
        heap_caps_free(live[live_count - 1u].p);
        live_count--;
        check_accounting(steps + 1u);
    }
    for (size_t i = 0; i < heap_count; i++) {
        capheap_heap_desc_t d = cf_desc(i);
        if (d.heap) {
            assert_int_equal(multi_heap_free_size(d.heap), base_free[i]);
        }
    }
}

/* ---- the custom chip --------------------------------------------------------------- */

static void test_model_custom_chip(void **state)
{
    (void)state;
    ct_rng_t rng;
    ct_rng_init(&rng, ct_seed("caps_model_custom"));
    cf_chip_begin("model");
    size_t tdram = cf_chip_type("DRAM", MALLOC_CAP_8BIT | MALLOC_CAP_DEFAULT,
                                MALLOC_CAP_INTERNAL | MALLOC_CAP_DMA | MALLOC_CAP_32BIT, 0);
    size_t tiram = cf_chip_type("IRAM", MALLOC_CAP_INTERNAL | MALLOC_CAP_EXEC | MALLOC_CAP_32BIT, 0, 0);
    size_t trtc = cf_chip_type("RTCRAM", MALLOC_CAP_RTCRAM, MALLOC_CAP_8BIT | MALLOC_CAP_DEFAULT,
                               MALLOC_CAP_INTERNAL | MALLOC_CAP_32BIT | MALLOC_CAP_EXEC);
    cf_chip_region(cf_at(0), 16 * KIB, tdram, false);
    cf_chip_region(cf_at(32 * KIB), 48 * KIB, tdram, false);
    cf_chip_region(cf_at(96 * KIB), 24 * KIB, tiram, false);
    cf_chip_region(cf_at(128 * KIB), 8 * KIB, trtc, false);
    cf_chip_region(cf_at(144 * KIB), 12 * KIB, tdram, true); /* start-up stack */
    cf_chip.chip.cache_line_external = 32;
    cf_chip.chip.simd_alignment = 16;
    cf_chip.chip.dma_desc_axi_alignment = 8;
    /* reservations: static data at the start of the big DRAM, a hole in IRAM */
    soc_reserved_region_t res[] = {{cf_at(32 * KIB), cf_at(32 * KIB + 3000)},
                                   {cf_at(100 * KIB), cf_at(101 * KIB)}};
    assert_int_equal(cf_chip_init(res, 2), ESP_OK);
    heap_caps_enable_nonos_stack_heaps();
    const uint32_t spi[3] = {MALLOC_CAP_SPIRAM | MALLOC_CAP_DEFAULT, 0,
                             MALLOC_CAP_8BIT | MALLOC_CAP_32BIT | MALLOC_CAP_SIMD};
    assert_int_equal(heap_caps_add_region_with_caps(spi, cf_at(256 * KIB), cf_at(384 * KIB)), ESP_OK);
    capheap_region_options_t opt = {0};
    opt.alignment = 16;
    opt.name = "RET16";
    const uint32_t ret[3] = {MALLOC_CAP_RETENTION, MALLOC_CAP_8BIT | MALLOC_CAP_INTERNAL, 0};
    assert_int_equal(capheap_caps_add_region(ret, cf_at(400 * KIB), cf_at(420 * KIB), &opt), ESP_OK);

    mask_count = 0;
    static const uint32_t fixed[] = {
        MALLOC_CAP_8BIT,
        MALLOC_CAP_DEFAULT,
        MALLOC_CAP_INTERNAL,
        MALLOC_CAP_DMA,
        MALLOC_CAP_32BIT,
        MALLOC_CAP_EXEC,
        MALLOC_CAP_SPIRAM,
        MALLOC_CAP_RTCRAM,
        MALLOC_CAP_RETENTION,
        MALLOC_CAP_DEFAULT | MALLOC_CAP_INTERNAL,
        MALLOC_CAP_DMA | MALLOC_CAP_8BIT,
        MALLOC_CAP_DMA | MALLOC_CAP_SPIRAM,
        MALLOC_CAP_CACHE_ALIGNED | MALLOC_CAP_SPIRAM,
        MALLOC_CAP_SIMD,
        MALLOC_CAP_DMA_DESC_AHB,
        MALLOC_CAP_DMA_DESC_AXI,
        MALLOC_CAP_RETENTION | MALLOC_CAP_8BIT,
        MALLOC_CAP_EXEC | MALLOC_CAP_8BIT, /* never */
        MALLOC_CAP_PID3,                   /* no heap */
    };
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
        add_mask(fixed[i]);
    }
    run_model(&rng, 3000, "custom chip");
}

/* ---- every built-in chip through the simulator ---------------------------------------- */

#if CT_MODEL_BUILTIN_CHIPS
static void model_on_builtin_chip(const capheap_chip_t *chip, ct_rng_t *rng)
{
    capheap_sim_options_t o = CAPHEAP_SIM_OPTIONS_DEFAULT;
    o.quiet = true;
    if (chip->extram.window_start != 0) {
        o.psram_bytes = chip->extram.max_size < PSRAM_BYTES ? chip->extram.max_size : PSRAM_BYTES;
    }
    esp_err_t e = capheap_sim_boot(chip, &o);
    if (e == ESP_ERR_NO_MEM && o.psram_bytes != 0) {
        /* the host refused the external-RAM mapping (a -m32 process has little room): go on without */
        print_message("  %s: no room for %zu bytes of external RAM on this host, booting without\n", chip->name,
                      o.psram_bytes);
        o.psram_bytes = 0;
        e = capheap_sim_boot(chip, &o);
    }
    if (e != ESP_OK) {
        fail_msg("capheap_sim_boot(%s) = %s", chip->name, esp_err_to_name(e));
    }
    /* caps masks from the chip's own heaps: their combined caps and random parts of them */
    bool alias = chip->diram.kind != CAPHEAP_ALIAS_NONE || chip->rtc.kind != CAPHEAP_ALIAS_NONE;
    mask_count = 0;
    static const uint32_t common[] = {
        MALLOC_CAP_8BIT,  MALLOC_CAP_DEFAULT, MALLOC_CAP_INTERNAL,        MALLOC_CAP_DMA,
        MALLOC_CAP_32BIT, MALLOC_CAP_SPIRAM,  MALLOC_CAP_CACHE_ALIGNED,   MALLOC_CAP_DEFAULT | MALLOC_CAP_INTERNAL,
        MALLOC_CAP_SIMD,  MALLOC_CAP_RTCRAM,  MALLOC_CAP_DMA_DESC_AHB,    MALLOC_CAP_EXEC,
    };
    for (size_t i = 0; i < sizeof common / sizeof common[0]; i++) {
        if (!(alias && (common[i] & MALLOC_CAP_EXEC))) {
            add_mask(common[i]);
        }
    }
    for (size_t i = 0; i < capheap_heap_count(); i++) {
        capheap_heap_desc_t d = cf_desc(i);
        uint32_t all = cf_all_caps(&d) & ~(alias ? MALLOC_CAP_EXEC : 0u);
        for (int k = 0; k < 3 && all; k++) {
            uint32_t m = 0;
            while (m == 0) {
                m = all & (uint32_t)ct_rng_next(rng);
            }
            add_mask(m);
        }
    }
    run_model(rng, BUILTIN_STEPS, chip->name);
    assert_int_equal(capheap_sim_shutdown(), ESP_OK);
}
#endif

static void test_model_builtin_chips(void **state)
{
    (void)state;
#if CT_MODEL_BUILTIN_CHIPS
    if (capheap_chip_count == 0) {
        skip();
    }
    ct_rng_t rng;
    ct_rng_init(&rng, ct_seed("caps_model_builtin"));
    for (size_t i = 0; i < capheap_chip_count; i++) {
        print_message("model on %s\n", capheap_chips[i]->name);
        model_on_builtin_chip(capheap_chips[i], &rng);
    }
#else
    skip();
#endif
}

static int model_teardown(void **state)
{
    (void)state;
#if CT_MODEL_BUILTIN_CHIPS
    if (capheap_sim_chip() != NULL) {
        (void)capheap_sim_shutdown();
    }
#endif
    capheap_caps_reset();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_model_custom_chip, cf_setup, model_teardown),
        cmocka_unit_test_setup_teardown(test_model_builtin_chips, cf_setup, model_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
