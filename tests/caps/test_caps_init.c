/*
 * test_caps_init.c - building heaps: capheap_caps_init() from a custom chip
 * (spec 2.2-2.4) and registration at run time (spec 1.2, 2.5).
 *
 * The chip's regions are slices of cf_arena (caps_fixture.h), described at run
 * time. Covered:
 *  - carving by reservations: trim start, trim end, hole punch, full cover,
 *    pieces of 16 bytes or less dropped, reservation starts rounded down and
 *    ends rounded up to 4, unsorted reservations, the chip's own reservations
 *    together with the extra ones, overlapping reservations (ESP_FAIL),
 *    start > end (ESP_ERR_INVALID_ARG);
 *  - coalescing of adjacent regions of the same type and start-up flag, in
 *    table order only;
 *  - start-up-stack regions: listed, untouched and invisible until
 *    heap_caps_enable_nonos_stack_heaps();
 *  - the size-sorted list with ESP-IDF's tie rule, names and caps of heaps;
 *  - second init (ESP_ERR_INVALID_STATE), reset then init, bad arguments,
 *    more heaps than CAPHEAP_MAX_HEAPS (ESP_ERR_NO_MEM), and a start-up after
 *    that failure whose unregistered stack region reuses a dropped heap's slot;
 *  - heap_caps_add_region_with_caps(): argument errors, ESP-IDF's overlap rule
 *    (straddling start or end, exact duplicate rejected; nested, adjacent,
 *    disjoint accepted), a region too small, all descriptors in use, the
 *    exported heap_caps_check_add_region_allowed() (start 0 included);
 *  - heap_caps_add_region(): the caps of the chip region containing start,
 *    ESP_ERR_NOT_FOUND elsewhere;
 *  - the request's caps changes without a chip (SPIRAM|DMA, descriptor caps);
 *  - a heap at address 0 (where page 0 can be mapped): free(NULL) and
 *    realloc(NULL, n) stay NULL's after blocks in page 0 were freed.
 *
 *  - soc_get_available_memory_regions() and its max count, which describe the
 *    chip capheap_caps_init() was given (carved, not coalesced, table order);
 *  - heap_caps_init() on a host build without a selected chip, and after
 *    capheap_caps_init(): reported, then the port's abort.
 */
#define _GNU_SOURCE /* MAP_FIXED_NOREPLACE, MAP_ANONYMOUS */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include <cmocka.h>

#include "support.h"
#include "caps_fixture.h"

#define KIB 1024u
#define CAPS_A0 (MALLOC_CAP_8BIT | MALLOC_CAP_DEFAULT)
#define CAPS_A1 (MALLOC_CAP_INTERNAL | MALLOC_CAP_32BIT)

/* Listed heaps as [start, end) pairs, in list order. */
static void expect_heaps(const intptr_t *bounds, size_t n)
{
    if (capheap_heap_count() != n) {
        for (size_t i = 0; i < capheap_heap_count(); i++) {
            capheap_heap_desc_t d = cf_desc(i);
            print_message("  heap %zu: [%p, %p) %s\n", i, (void *)d.start, (void *)d.end, d.name);
        }
        fail_msg("%zu heaps listed, expected %zu", capheap_heap_count(), n);
    }
    for (size_t i = 0; i < n; i++) {
        capheap_heap_desc_t d = cf_desc(i);
        if (d.start != bounds[2 * i] || d.end != bounds[2 * i + 1]) {
            fail_msg("heap %zu is [arena+%td, arena+%td), expected [arena+%td, arena+%td)", i,
                     d.start - cf_at(0), d.end - cf_at(0), bounds[2 * i] - cf_at(0), bounds[2 * i + 1] - cf_at(0));
        }
    }
}

/* One type, one region of 8 KiB at offset 4096, plus the given extra reservations. */
static esp_err_t one_region(const soc_reserved_region_t *res, size_t n)
{
    capheap_caps_reset();
    cf_chip_begin("carve");
    size_t t = cf_chip_type("RAM", CAPS_A0, CAPS_A1, 0);
    cf_chip_region(cf_at(4096), 8u * KIB, t, false);
    return cf_chip_init(res, n);
}

#define R(a, b) {cf_at(a), cf_at(b)}

static void test_carving(void **state)
{
    (void)state;
    const size_t lo = 4096, hi = 4096 + 8 * KIB;

    /* no reservation: the whole region */
    assert_int_equal(one_region(NULL, 0), ESP_OK);
    expect_heaps((intptr_t[]){cf_at(lo), cf_at(hi)}, 1);
    capheap_heap_desc_t d = cf_desc(0);
    assert_string_equal(d.name, "RAM");
    assert_int_equal(d.caps[0], CAPS_A0);
    assert_int_equal(d.caps[1], CAPS_A1);
    assert_int_equal(d.caps[2], 0);
    assert_non_null(d.heap);
    assert_false(d.runtime);
    assert_ptr_equal(capheap_caps_chip(), &cf_chip.chip);

    /* trim the start; the reservation's end is rounded up to 4 */
    {
        soc_reserved_region_t r[] = {R(lo - 64, lo + 101)};
        assert_int_equal(one_region(r, 1), ESP_OK);
        expect_heaps((intptr_t[]){cf_at(lo + 104), cf_at(hi)}, 1);
    }
    /* trim the end; the reservation's start is rounded down to 4 */
    {
        soc_reserved_region_t r[] = {R(hi - 203, hi + 64)};
        assert_int_equal(one_region(r, 1), ESP_OK);
        expect_heaps((intptr_t[]){cf_at(lo), cf_at(hi - 204)}, 1);
    }
    /* a reservation ending exactly at the start, or starting exactly at the end, changes nothing */
    {
        soc_reserved_region_t r[] = {R(lo - 64, lo), R(hi, hi + 64)};
        assert_int_equal(one_region(r, 2), ESP_OK);
        expect_heaps((intptr_t[]){cf_at(lo), cf_at(hi)}, 1);
    }
    /* a hole punch: two heaps, the smaller listed first */
    {
        soc_reserved_region_t r[] = {R(lo + 1001, lo + 2001)};
        assert_int_equal(one_region(r, 1), ESP_OK);
        expect_heaps((intptr_t[]){cf_at(lo), cf_at(lo + 1000), cf_at(lo + 2004), cf_at(hi)}, 2);
    }
    /* two holes given in reverse address order (sorted first): three pieces */
    {
        soc_reserved_region_t r[] = {R(lo + 5000, lo + 5100), R(lo + 1000, lo + 1100)};
        assert_int_equal(one_region(r, 2), ESP_OK);
        expect_heaps((intptr_t[]){cf_at(lo), cf_at(lo + 1000), cf_at(lo + 5100), cf_at(hi), cf_at(lo + 1100),
                                  cf_at(lo + 5000)},
                     3);
    }
    /* full cover drops the region */
    {
        soc_reserved_region_t r[] = {R(lo - 4, hi + 4)};
        assert_int_equal(one_region(r, 1), ESP_OK);
        assert_int_equal(capheap_heap_count(), 0);
        assert_int_equal(heap_caps_get_total_size(0), 0);
        assert_null(heap_caps_malloc(8, MALLOC_CAP_8BIT));
    }
    {
        soc_reserved_region_t r[] = {R(lo, hi)};
        assert_int_equal(one_region(r, 1), ESP_OK);
        assert_int_equal(capheap_heap_count(), 0);
    }
    /* pieces of 16 bytes or less are dropped (both ends) */
    {
        soc_reserved_region_t r[] = {R(lo + 16, lo + 3000), R(hi - 3000, hi - 12)};
        assert_int_equal(one_region(r, 2), ESP_OK);
        expect_heaps((intptr_t[]){cf_at(lo + 3000), cf_at(hi - 3000)}, 1);
    }
    /* a piece of 17 bytes up to one too small for a heap is kept and listed, as
     * ESP-IDF lists it, but no heap is registered there: ever (it is no
     * start-up stack region, which enabling would register) */
    {
        soc_reserved_region_t r[] = {R(lo + 40, hi)};
        assert_int_equal(one_region(r, 1), ESP_OK);
        assert_int_equal(capheap_heap_count(), 1);
        d = cf_desc(0);
        assert_int_equal(d.start, cf_at(lo));
        assert_int_equal(d.end, cf_at(lo + 40));
        assert_null(d.heap);
        heap_caps_enable_nonos_stack_heaps();
        assert_null(cf_desc(0).heap);
        assert_int_equal(heap_caps_get_total_size(0), 0);
        assert_null(heap_caps_malloc(8, MALLOC_CAP_8BIT));
    }
    /* adjacent reservations do not overlap */
    {
        soc_reserved_region_t r[] = {R(lo, lo + 100), R(lo + 100, lo + 200)};
        assert_int_equal(one_region(r, 2), ESP_OK);
        expect_heaps((intptr_t[]){cf_at(lo + 200), cf_at(hi)}, 1);
    }
    /* overlapping reservations: ESP_FAIL, nothing registered */
    {
        soc_reserved_region_t r[] = {R(lo, lo + 100), R(lo + 96, lo + 200)};
        assert_int_equal(one_region(r, 2), ESP_FAIL);
        assert_int_equal(capheap_heap_count(), 0);
    }
    /* ... also when the overlap only appears after rounding to 4 */
    {
        soc_reserved_region_t r[] = {R(lo, lo + 97), R(lo + 98, lo + 200)};
        assert_int_equal(one_region(r, 2), ESP_FAIL);
    }
    /* start > end: ESP_ERR_INVALID_ARG */
    {
        soc_reserved_region_t r[] = {R(lo + 200, lo + 100)};
        assert_int_equal(one_region(r, 1), ESP_ERR_INVALID_ARG);
        assert_int_equal(capheap_heap_count(), 0);
    }
    /* the chip's own reservations are applied with the extra ones */
    {
        capheap_caps_reset();
        cf_chip_begin("carve2");
        size_t t = cf_chip_type("RAM", CAPS_A0, CAPS_A1, 0);
        cf_chip_region(cf_at(lo), 8u * KIB, t, false);
        cf_chip_reserve(cf_at(lo), cf_at(lo + 512));
        soc_reserved_region_t r[] = {R(hi - 512, hi)};
        assert_int_equal(cf_chip_init(r, 1), ESP_OK);
        expect_heaps((intptr_t[]){cf_at(lo + 512), cf_at(hi - 512)}, 1);
        /* a chip reservation overlapping an extra one */
        capheap_caps_reset();
        soc_reserved_region_t r2[] = {R(lo + 256, lo + 1024)};
        assert_int_equal(cf_chip_init(r2, 1), ESP_FAIL);
    }
}

static void test_coalescing(void **state)
{
    (void)state;
    cf_chip_begin("coalesce");
    size_t a = cf_chip_type("A", CAPS_A0, CAPS_A1, 0);
    size_t b = cf_chip_type("B", CAPS_A0, CAPS_A1, 0); /* same caps, another type: no merge */
    /* chain of three A: one heap */
    cf_chip_region(cf_at(0), 4 * KIB, a, false);
    cf_chip_region(cf_at(4 * KIB), 4 * KIB, a, false);
    cf_chip_region(cf_at(8 * KIB), 2 * KIB, a, false);
    /* adjacent, other type */
    cf_chip_region(cf_at(10 * KIB), 3 * KIB, b, false);
    /* adjacent, same type, other start-up flag */
    cf_chip_region(cf_at(13 * KIB), 5 * KIB, b, true);
    /* adjacent by address but listed in the other order: table order decides */
    cf_chip_region(cf_at(40 * KIB), 6 * KIB, a, false);
    cf_chip_region(cf_at(34 * KIB), 6 * KIB, a, false);
    /* same type, not adjacent */
    cf_chip_region(cf_at(64 * KIB), 7 * KIB, a, false);
    assert_int_equal(cf_chip_init(NULL, 0), ESP_OK);
    /* sizes: 10K, 3K, 5K (stack), 6K (40K), 6K (34K, later: first), 7K */
    expect_heaps((intptr_t[]){cf_at(10 * KIB), cf_at(13 * KIB), cf_at(13 * KIB), cf_at(18 * KIB), cf_at(34 * KIB),
                              cf_at(40 * KIB), cf_at(40 * KIB), cf_at(46 * KIB), cf_at(64 * KIB), cf_at(71 * KIB),
                              cf_at(0), cf_at(10 * KIB)},
                 6);
    assert_string_equal(cf_desc(0).name, "B");
    assert_null(cf_desc(1).heap);
    assert_string_equal(cf_desc(5).name, "A");
    /* the merged heap is one heap: a block bigger than any piece fits */
    void *p = heap_caps_malloc(9 * KIB, MALLOC_CAP_8BIT);
    assert_non_null(p);
    assert_int_equal(capheap_heap_find(p), 5);
    heap_caps_free(p);
    /* carving then coalescing: a reservation splitting a chain leaves two heaps */
    capheap_caps_reset();
    soc_reserved_region_t r[] = {R(4 * KIB - 100, 4 * KIB + 100)};
    assert_int_equal(cf_chip_init(r, 1), ESP_OK);
    assert_int_equal(cf_index_of_start(cf_at(0)) >= 0, true);
    int i2 = cf_index_of_start(cf_at(4 * KIB + 100));
    assert_true(i2 >= 0);
    assert_int_equal(cf_desc((size_t)i2).end, cf_at(10 * KIB));
    assert_true(heap_caps_check_integrity_all(true));
}

static void test_sorted_order_and_ties(void **state)
{
    (void)state;
    cf_chip_begin("sorted");
    size_t t = cf_chip_type("RAM", CAPS_A0, 0, 0);
    size_t u = cf_chip_type("FAST", MALLOC_CAP_32BIT, CAPS_A0, 0);
    cf_chip_region(cf_at(0), 8 * KIB, t, false);         /* r0 8K */
    cf_chip_region(cf_at(16 * KIB), 2 * KIB, u, false);  /* r1 2K */
    cf_chip_region(cf_at(32 * KIB), 4 * KIB, t, false);  /* r2 4K */
    cf_chip_region(cf_at(48 * KIB), 2 * KIB, t, false);  /* r3 2K, tie with r1: listed before it */
    cf_chip_region(cf_at(64 * KIB), 2 * KIB, u, false);  /* r4 2K, before r3 */
    cf_chip_region(cf_at(80 * KIB), 16 * KIB, u, false); /* r5 16K */
    assert_int_equal(cf_chip_init(NULL, 0), ESP_OK);
    expect_heaps((intptr_t[]){cf_at(64 * KIB), cf_at(66 * KIB), cf_at(48 * KIB), cf_at(50 * KIB), cf_at(16 * KIB),
                              cf_at(18 * KIB), cf_at(32 * KIB), cf_at(36 * KIB), cf_at(0), cf_at(8 * KIB),
                              cf_at(80 * KIB), cf_at(96 * KIB)},
                 6);
    assert_string_equal(cf_desc(0).name, "FAST");
    assert_string_equal(cf_desc(1).name, "RAM");
    /* so DEFAULT (prio 0 only in RAM) goes to the 2K RAM heap first */
    void *p = heap_caps_malloc(64, MALLOC_CAP_DEFAULT);
    assert_int_equal(capheap_heap_find(p), 1);
    /* capheap_heap_find_desc: the same heap, copied in one step */
    capheap_heap_desc_t want = cf_desc(1), got;
    memset(&got, 0, sizeof got);
    assert_true(capheap_heap_find_desc(p, &got));
    assert_int_equal(got.start, want.start);
    assert_int_equal(got.end, want.end);
    assert_ptr_equal(got.heap, want.heap);
    assert_string_equal(got.name, "RAM");
    assert_memory_equal(got.caps, want.caps, sizeof got.caps);
    assert_false(got.runtime);
    assert_false(capheap_heap_find_desc(p, NULL));
    assert_false(capheap_heap_find_desc(&got, &got)); /* a pointer in no heap */
    assert_false(capheap_heap_find_desc(NULL, &got));
    heap_caps_free(p);
    /* and 32BIT to the first FAST heap (prio 0) */
    p = heap_caps_malloc(64, MALLOC_CAP_32BIT);
    assert_int_equal(capheap_heap_find(p), 0);
    heap_caps_free(p);
    /* fresh heaps: free = region - overhead (- one poison overhead) */
    for (size_t i = 0; i < capheap_heap_count(); i++) {
        capheap_heap_desc_t d = cf_desc(i);
        assert_int_equal(multi_heap_free_size(d.heap), (size_t)(d.end - d.start) - capheap_heap_overhead(d.heap) -
                                                           capheap_heap_poison_overhead(d.heap));
    }
}

#define STACK_OFF (100u * KIB)
#define STACK_BYTES (12u * KIB)

static void test_startup_stack_regions(void **state)
{
    (void)state;
    cf_chip_begin("stack");
    size_t t = cf_chip_type("RAM", CAPS_A0, CAPS_A1, 0);
    size_t s = cf_chip_type("STACK", 0, CAPS_A0 | MALLOC_CAP_RETENTION, 0);
    cf_chip_region(cf_at(0), 8 * KIB, t, false);
    cf_chip_region(cf_at(STACK_OFF), STACK_BYTES, s, true);
    /* "live stack frames": nothing may write there before the region is enabled */
    memset(cf_arena + STACK_OFF, 0x3C, STACK_BYTES);
    assert_int_equal(cf_chip_init(NULL, 0), ESP_OK);

    assert_int_equal(capheap_heap_count(), 2);
    int si = cf_index_of_start(cf_at(STACK_OFF));
    assert_true(si >= 0);
    capheap_heap_desc_t d = cf_desc((size_t)si);
    assert_null(d.heap);
    assert_int_equal(d.end, cf_at(STACK_OFF + STACK_BYTES));
    /* invisible to sizes, info and check */
    assert_int_equal(heap_caps_get_total_size(0), 8 * KIB);
    assert_int_equal(heap_caps_get_total_size(MALLOC_CAP_RETENTION), 0);
    assert_int_equal(heap_caps_get_free_size(MALLOC_CAP_RETENTION), 0);
    assert_int_equal(heap_caps_get_minimum_free_size(MALLOC_CAP_RETENTION), 0);
    multi_heap_info_t info;
    heap_caps_get_info(&info, 0);
    assert_int_equal(info.total_free_bytes, heap_caps_get_free_size(0));
    assert_false(heap_caps_check_integrity_addr(cf_at(STACK_OFF + 100), false));
    assert_int_equal(capheap_heap_find(cf_arena + STACK_OFF + 100), -1);
    ct_capture_begin();
    heap_caps_dump_all();
    ct_capture_end();
    assert_int_equal(ct_capture_count("Showing data for heap"), 1);
    assert_null(heap_caps_malloc(16, MALLOC_CAP_RETENTION));
    assert_int_equal(heap_caps_get_largest_free_block(MALLOC_CAP_RETENTION), 0);
    /* DEFAULT requests never land there, even when the other heap is full */
    void *big = heap_caps_malloc(heap_caps_get_largest_free_block(MALLOC_CAP_8BIT), MALLOC_CAP_8BIT);
    assert_non_null(big);
    assert_null(heap_caps_malloc(64, MALLOC_CAP_8BIT));
    for (size_t i = 0; i < STACK_BYTES; i++) {
        if (cf_arena[STACK_OFF + i] != 0x3C) {
            fail_msg("start-up stack region written at offset %zu before it was enabled", i);
        }
    }
    /* overlap with a listed-but-unregistered heap is still rejected */
    const uint32_t caps[3] = {MALLOC_CAP_8BIT, 0, 0};
    assert_int_equal(heap_caps_add_region_with_caps(caps, cf_at(STACK_OFF - 1024), cf_at(STACK_OFF + 1024)),
                     ESP_FAIL);
    /* and so is a region inside it: nothing was allocated there (the nested
     * case of ESP-IDF's rule), and enabling would lay the start-up heap over it */
    assert_int_equal(heap_caps_add_region_with_caps(caps, cf_at(STACK_OFF + 1024), cf_at(STACK_OFF + 4096)),
                     ESP_FAIL);
    assert_int_equal(heap_caps_add_region_with_caps(caps, cf_at(STACK_OFF), cf_at(STACK_OFF + STACK_BYTES / 2)),
                     ESP_FAIL);
    assert_int_equal(capheap_heap_count(), 2);

    heap_caps_enable_nonos_stack_heaps();
    d = cf_desc((size_t)si);
    assert_non_null(d.heap);
    assert_int_equal(heap_caps_get_total_size(0), 8 * KIB + STACK_BYTES);
    assert_int_equal(heap_caps_get_total_size(MALLOC_CAP_RETENTION), STACK_BYTES);
    size_t f = heap_caps_get_free_size(MALLOC_CAP_RETENTION);
    assert_int_equal(f, STACK_BYTES - capheap_heap_overhead(d.heap) - capheap_heap_poison_overhead(d.heap));
    assert_int_equal(heap_caps_get_minimum_free_size(MALLOC_CAP_RETENTION), f); /* full size as its mark */
    void *p = heap_caps_malloc(64, MALLOC_CAP_8BIT);
    assert_non_null(p);
    assert_int_equal(capheap_heap_find(p), si); /* DEFAULT's other heap is full */
    assert_true(heap_caps_check_integrity_all(true));
    heap_caps_free(p);
    heap_caps_free(big);
    /* a second call changes nothing */
    heap_caps_enable_nonos_stack_heaps();
    assert_int_equal(capheap_heap_count(), 2);
    assert_int_equal(heap_caps_get_free_size(MALLOC_CAP_RETENTION), f);
    assert_true(heap_caps_check_integrity_all(true));
}

static void test_init_state_and_arguments(void **state)
{
    (void)state;
    cf_chip_begin("state");
    size_t t = cf_chip_type("RAM", CAPS_A0, 0, 0);
    cf_chip_region(cf_at(0), 8 * KIB, t, false);
    assert_ptr_equal(capheap_caps_chip(), NULL);
    assert_int_equal(capheap_caps_init(NULL, NULL, 0), ESP_ERR_INVALID_ARG);
    assert_int_equal(capheap_caps_init(cf_chip_finish(), NULL, 1), ESP_ERR_INVALID_ARG);
    /* A table the start-up cannot use is refused, not half used: a heap
     * alignment capheap_heap_register() does not take (every heap failed to
     * register, and init said ESP_OK: an audit found it), arrays missing where
     * the table counts rows, a row naming no type. */
    capheap_chip_t bad = *cf_chip_finish();
    static const unsigned alignments[] = {1, 2, 3, 12, 32, 64};
    for (size_t i = 0; i < sizeof alignments / sizeof alignments[0]; i++) {
        bad.heap_alignment = alignments[i];
        assert_int_equal(capheap_caps_init(&bad, NULL, 0), ESP_ERR_INVALID_ARG);
    }
    bad = *cf_chip_finish();
    bad.regions = NULL;
    assert_int_equal(capheap_caps_init(&bad, NULL, 0), ESP_ERR_INVALID_ARG);
    bad = *cf_chip_finish();
    bad.types = NULL;
    assert_int_equal(capheap_caps_init(&bad, NULL, 0), ESP_ERR_INVALID_ARG);
    bad = *cf_chip_finish();
    bad.reserved_count = 1; /* reserved NULL */
    assert_int_equal(capheap_caps_init(&bad, NULL, 0), ESP_ERR_INVALID_ARG);
    bad = *cf_chip_finish();
    bad.type_count = 0; /* the row's type 0 is no type now */
    assert_int_equal(capheap_caps_init(&bad, NULL, 0), ESP_ERR_INVALID_ARG);
    assert_int_equal(capheap_heap_count(), 0);
    assert_ptr_equal(capheap_caps_chip(), NULL);
    for (unsigned a = 0; a <= 16; a = a == 0 ? 4 : a * 2) { /* 0 (= 4), 4, 8, 16 */
        bad = *cf_chip_finish();
        bad.heap_alignment = a;
        assert_int_equal(capheap_caps_init(&bad, NULL, 0), ESP_OK);
        void *q = heap_caps_malloc(100, MALLOC_CAP_8BIT);
        assert_non_null(q);
        assert_int_equal((uintptr_t)q % (a == 0 ? 4 : a), 0);
        heap_caps_free(q);
        capheap_caps_reset();
    }
    assert_int_equal(cf_chip_init(NULL, 0), ESP_OK);
    void *p = heap_caps_malloc(100, MALLOC_CAP_8BIT);
    assert_non_null(p);
    /* a second init is refused and changes nothing */
    assert_int_equal(cf_chip_init(NULL, 0), ESP_ERR_INVALID_STATE);
    assert_int_equal(capheap_heap_count(), 1);
    assert_int_equal(heap_caps_get_allocated_size(p) >= 100, true);
    heap_caps_free(p);
    /* reset, then init works again (with another layout) */
    capheap_caps_reset();
    assert_ptr_equal(capheap_caps_chip(), NULL);
    assert_int_equal(capheap_heap_count(), 0);
    assert_null(heap_caps_malloc(100, MALLOC_CAP_8BIT));
    cf_chip_region(cf_at(16 * KIB), 4 * KIB, t, false);
    assert_int_equal(cf_chip_init(NULL, 0), ESP_OK);
    assert_int_equal(capheap_heap_count(), 2);
    assert_int_equal(heap_caps_get_total_size(0), 12 * KIB);
    assert_true(heap_caps_check_integrity_all(true));
}

/* True iff no two listed heaps share a byte, except by nesting (I17). */
static bool heaps_apart_or_nested(void)
{
    size_t n = capheap_heap_count();
    for (size_t i = 0; i < n; i++) {
        for (size_t j = i + 1; j < n; j++) {
            capheap_heap_desc_t a = cf_desc(i), b = cf_desc(j);
            bool apart = a.end <= b.start || b.end <= a.start;
            bool nested = (a.start >= b.start && a.end <= b.end) || (b.start >= a.start && b.end <= a.end);
            if (!apart && !nested) {
                return false;
            }
        }
    }
    return true;
}

/* Regions added before init own their memory: init carves its heaps around
 * them as around a reservation (before the fix it laid a start-up heap over
 * them, and both handed out the same bytes). A runtime heap that a chip or
 * firmware reservation overlaps makes the reservations inconsistent: ESP_FAIL,
 * and nothing changes. */
/* Rows that overlap (a chip table that breaks the rule of docs/adding-a-chip.md)
 * would become two heaps over the same bytes, and the heap a pointer belongs to
 * would depend on the build's lookup: refused, unless one reservation holds the
 * whole overlap (the S3's D-cache row inside its reserved external-RAM window),
 * the chip's or the firmware's. Nothing changes on a refusal. */
/* A row that ends exactly at the top of the address space, or wraps past
 * it, has no end the carving can compare: refused as a table the start-up
 * cannot use (it vanished with ESP_OK before: an audit found it; the
 * simulator refused it already). Start-up stack rows: no memory is touched.
 * The last case, a valid row in the last page, was refused as overlapping
 * the row below it: rows were compared as signed intptr_t, so any row in the
 * upper half of the address space (0x80000000 and up on a 32-bit target)
 * "overlapped" every row below it. */
static void test_rows_at_the_top_of_the_address_space(void **state)
{
    (void)state;
    const intptr_t top = (intptr_t)(UINTPTR_MAX - 4095u); /* the last page */
    const size_t sizes[] = {4096, 8192, 4092};
    const esp_err_t want[] = {ESP_ERR_INVALID_ARG, ESP_ERR_INVALID_ARG, ESP_OK};
    for (size_t k = 0; k < 3; k++) {
        cf_chip_begin("top");
        size_t t = cf_chip_type("RAM", CAPS_A0, 0, 0);
        size_t st = cf_chip_type("STACK", CAPS_A0, 0, 0);
        cf_chip_region(cf_at(0), 8 * KIB, t, false);
        cf_chip_region(top, sizes[k], st, true);
        assert_int_equal(cf_chip_init(NULL, 0), want[k]);
        assert_int_equal(capheap_heap_count(), want[k] == ESP_OK ? 2 : 0); /* the stack row listed, unregistered */
        capheap_caps_reset();
    }
}

static void test_overlapping_rows(void **state)
{
    (void)state;
    cf_chip_begin("overlap");
    size_t t = cf_chip_type("RAM", CAPS_A0, 0, 0);
    cf_chip_region(cf_at(16 * KIB), 8 * KIB, t, false); /* [16K, 24K) */
    cf_chip_region(cf_at(0), 64 * KIB, t, false);       /* [0, 64K): around the first */
    assert_int_equal(cf_chip_init(NULL, 0), ESP_ERR_INVALID_ARG);
    assert_int_equal(capheap_heap_count(), 0);
    assert_null(capheap_caps_chip());
    /* a reservation that holds only part of the overlap: still refused */
    soc_reserved_region_t part[] = {R(16 * KIB, 20 * KIB)};
    assert_int_equal(cf_chip_init(part, 1), ESP_ERR_INVALID_ARG);
    /* rows that overlap at their edges only */
    cf_chip_begin("edges");
    t = cf_chip_type("RAM", CAPS_A0, 0, 0);
    cf_chip_region(cf_at(0), 16 * KIB, t, false);        /* [0, 16K) */
    cf_chip_region(cf_at(12 * KIB), 16 * KIB, t, false); /* [12K, 28K) */
    assert_int_equal(cf_chip_init(NULL, 0), ESP_ERR_INVALID_ARG);
    soc_reserved_region_t edge[] = {R(12 * KIB, 16 * KIB)}; /* the firmware's reservation holds it */
    assert_int_equal(cf_chip_init(edge, 1), ESP_OK);
    assert_int_equal(capheap_heap_count(), 2); /* [0, 12K) and [16K, 28K) */
    assert_true(heap_caps_check_integrity_all(true));
    capheap_caps_reset();
    /* by one word, the later row's last (an overlap a row end one word short
     * of the truth missed) */
    cf_chip_begin("word");
    t = cf_chip_type("RAM", CAPS_A0, 0, 0);
    cf_chip_region(cf_at(16 * KIB - 4), 12 * KIB, t, false); /* [16K - 4, 28K - 4) */
    cf_chip_region(cf_at(0), 16 * KIB, t, false);            /* [0, 16K) */
    assert_int_equal(cf_chip_init(NULL, 0), ESP_ERR_INVALID_ARG);
    assert_int_equal(capheap_heap_count(), 0);
    /* the chip's own reservation holds the inner row: accepted, one heap around it */
    cf_chip_begin("window");
    t = cf_chip_type("RAM", CAPS_A0, 0, 0);
    cf_chip_region(cf_at(0), 64 * KIB, t, false);
    cf_chip_region(cf_at(16 * KIB), 8 * KIB, t, false);
    cf_chip_reserve(cf_at(16 * KIB), cf_at(24 * KIB));
    assert_int_equal(cf_chip_init(NULL, 0), ESP_OK);
    void *p = heap_caps_malloc(100, MALLOC_CAP_8BIT);
    assert_non_null(p);
    assert_true((uintptr_t)p < (uintptr_t)cf_at(16 * KIB) || (uintptr_t)p >= (uintptr_t)cf_at(24 * KIB));
    heap_caps_free(p);
    assert_true(heap_caps_check_integrity_all(true));
}

static void test_init_after_runtime_regions(void **state)
{
    (void)state;
    cf_chip_begin("early");
    size_t t = cf_chip_type("RAM", CAPS_A0, 0, 0);
    cf_chip_region(cf_at(0), 64 * KIB, t, false);
    const uint32_t mine[3] = {MALLOC_CAP_SPIRAM, 0, 0};
    /* inside the chip's region, and one straddling its end */
    assert_int_equal(heap_caps_add_region_with_caps(mine, cf_at(4 * KIB), cf_at(8 * KIB)), ESP_OK);
    assert_int_equal(heap_caps_add_region_with_caps(mine, cf_at(60 * KIB), cf_at(68 * KIB)), ESP_OK);
    assert_int_equal(cf_chip_init(NULL, 0), ESP_OK);
    /* the chip's region became [0, 4K) and [8K, 60K); the early heaps stay first */
    assert_int_equal(capheap_heap_count(), 4);
    assert_true(heaps_apart_or_nested());
    assert_int_equal(heap_caps_get_total_size(CAPS_A0), 56 * KIB);
    assert_int_equal(heap_caps_get_total_size(MALLOC_CAP_SPIRAM), 12 * KIB);
    assert_true(cf_desc(0).runtime && cf_desc(1).runtime);
    /* fill every heap: no block is handed out twice */
    enum { MAX_BLOCKS = 2048 };
    static unsigned char *blocks[MAX_BLOCKS];
    size_t n = 0;
    for (uint32_t caps = CAPS_A0;; caps = MALLOC_CAP_SPIRAM) {
        unsigned char *p;
        while (n < MAX_BLOCKS && (p = heap_caps_malloc(256, caps)) != NULL) {
            memset(p, (int)(n & 0xFFu), 256);
            blocks[n++] = p;
        }
        if (caps == MALLOC_CAP_SPIRAM) {
            break;
        }
    }
    assert_true(n > 200 && n < MAX_BLOCKS);
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < 256; k++) {
            if (blocks[i][k] != (unsigned char)(i & 0xFFu)) {
                fail_msg("block %zu (%p) overwritten at byte %zu", i, (void *)blocks[i], k);
            }
        }
    }
    assert_true(heap_caps_check_integrity_all(true));
    for (size_t i = 0; i < n; i++) {
        heap_caps_free(blocks[i]);
    }

    /* a reservation over an early heap: refused, the early heap stays alone */
    capheap_caps_reset();
    assert_int_equal(heap_caps_add_region_with_caps(mine, cf_at(4 * KIB), cf_at(8 * KIB)), ESP_OK);
    const soc_reserved_region_t fw[1] = {R(6 * KIB, 10 * KIB)};
    assert_int_equal(cf_chip_init(fw, 1), ESP_FAIL);
    assert_ptr_equal(capheap_caps_chip(), NULL);
    assert_int_equal(capheap_heap_count(), 1);
    assert_true(heap_caps_check_integrity_all(true));
}

static void test_too_many_heaps(void **state)
{
    (void)state;
    const size_t piece = 1024;
    assert_true((CAPHEAP_MAX_HEAPS + 1u) * 2u * piece <= CF_ARENA_BYTES);
    cf_chip_begin("many");
    size_t t = cf_chip_type("RAM", CAPS_A0, 0, 0);
    for (size_t i = 0; i < CAPHEAP_MAX_HEAPS + 1u; i++) {
        cf_chip_region(cf_at(i * 2u * piece), piece, t, false); /* gaps: no coalescing */
    }
    assert_int_equal(cf_chip_init(NULL, 0), ESP_ERR_NO_MEM);
    /* the heaps made before the descriptors ran out were dropped with their
     * sanitizer marks: the memory is the caller's again (an ASan build
     * reported this write as a use after poison before) */
    memset((void *)cf_at(0), 0x5a, (CAPHEAP_MAX_HEAPS + 1u) * 2u * piece);
    capheap_caps_reset();
    /* exactly CAPHEAP_MAX_HEAPS is fine, and then no runtime region fits */
    cf_chip.chip.region_count = CAPHEAP_MAX_HEAPS;
    assert_int_equal(cf_chip_init(NULL, 0), ESP_OK);
    assert_int_equal(capheap_heap_count(), CAPHEAP_MAX_HEAPS);
    const uint32_t caps[3] = {MALLOC_CAP_8BIT, 0, 0};
    intptr_t s = cf_at((CAPHEAP_MAX_HEAPS + 1u) * 2u * piece);
    assert_int_equal(heap_caps_add_region_with_caps(caps, s, s + (intptr_t)piece), ESP_ERR_NO_MEM);
    assert_int_equal(capheap_heap_count(), CAPHEAP_MAX_HEAPS);
}

/* ---- runtime registration ------------------------------------------------------ */

static void test_add_region_errors(void **state)
{
    (void)state;
    const uint32_t caps[3] = {MALLOC_CAP_8BIT | MALLOC_CAP_DEFAULT, 0, 0};
    /* before any init: allowed (static descriptors) */
    assert_int_equal(heap_caps_add_region_with_caps(caps, cf_at(0), cf_at(8 * KIB)), ESP_OK);
    assert_int_equal(capheap_heap_count(), 1);
    assert_true(cf_desc(0).runtime);
    void *p = heap_caps_malloc(100, MALLOC_CAP_DEFAULT);
    assert_non_null(p);
    heap_caps_free(p);

    assert_int_equal(heap_caps_add_region_with_caps(NULL, cf_at(16 * KIB), cf_at(24 * KIB)), ESP_ERR_INVALID_ARG);
    assert_int_equal(heap_caps_add_region_with_caps(caps, cf_at(24 * KIB), cf_at(16 * KIB)), ESP_ERR_INVALID_ARG);
    assert_int_equal(heap_caps_add_region_with_caps(caps, cf_at(16 * KIB), cf_at(16 * KIB)), ESP_ERR_INVALID_ARG);
    /* too small to hold a heap */
    assert_int_equal(heap_caps_add_region_with_caps(caps, cf_at(16 * KIB), cf_at(16 * KIB + 16)),
                     ESP_ERR_INVALID_SIZE);
    size_t min = capheap_heap_min_region_size(4);
    assert_int_equal(heap_caps_add_region_with_caps(caps, cf_at(16 * KIB), cf_at(16 * KIB) + (intptr_t)min - 4),
                     ESP_ERR_INVALID_SIZE);
    assert_int_equal(capheap_heap_count(), 1);
    /* start 0 is not an argument error (capheap: instruction TCM at 0); an 8-byte
     * region there is refused for its size. (A real heap at 0 cannot be mapped on a host.) */
    assert_int_equal(heap_caps_add_region_with_caps(caps, 0, 8), ESP_ERR_INVALID_SIZE);
    assert_int_equal(capheap_heap_count(), 1);
    /* a start in the last 3 bytes of the address space: rounding it up to 4
     * wraps to 0, which is not "a region at 0" (once a heap over [4, end) on
     * 32-bit builds, which wrote through address 4; an audit found it) */
    for (uintptr_t k = 1; k <= 3; k++)
        assert_int_equal(heap_caps_add_region_with_caps(caps, (intptr_t)(UINTPTR_MAX - k), (intptr_t)UINTPTR_MAX),
                         ESP_ERR_INVALID_SIZE);
    assert_int_equal(capheap_heap_count(), 1);
    /* the smallest region that works */
    assert_int_equal(heap_caps_add_region_with_caps(caps, cf_at(16 * KIB), cf_at(16 * KIB) + (intptr_t)min), ESP_OK);
    assert_int_equal(capheap_heap_count(), 2);
    assert_true(heap_caps_check_integrity_all(true));
    /* options: alignment and name */
    capheap_region_options_t opt = {0};
    opt.alignment = 16;
    opt.name = "Aligned";
    const uint32_t c16[3] = {1u << 29, 0, 0};
    assert_int_equal(capheap_caps_add_region(c16, cf_at(32 * KIB), cf_at(40 * KIB), &opt), ESP_OK);
    assert_string_equal(cf_desc(0).name, "Aligned");
    assert_int_equal(capheap_heap_alignment(cf_desc(0).heap), 16);
    for (size_t n = 1; n < 100; n += 7) {
        void *q = heap_caps_malloc(n, 1u << 29);
        assert_non_null(q);
        assert_int_equal((uintptr_t)q % 16u, 0);
        heap_caps_free(q);
    }
    opt.alignment = 12;
    assert_int_equal(capheap_caps_add_region(c16, cf_at(48 * KIB), cf_at(56 * KIB), &opt), ESP_ERR_INVALID_ARG);
    assert_int_equal(capheap_caps_add_region(c16, cf_at(48 * KIB), cf_at(56 * KIB), NULL), ESP_OK);
    /* a start that is not 4-aligned is rounded up, as ESP-IDF's multi_heap_register does
     * (esp_heap_caps_init.h): the heap lies inside the range, blocks are aligned */
    size_t n = capheap_heap_count();
    assert_int_equal(heap_caps_add_region_with_caps(caps, cf_at(64 * KIB + 2), cf_at(72 * KIB)), ESP_OK);
    assert_int_equal(capheap_heap_count(), n + 1);
    capheap_heap_desc_t d;
    assert_true(capheap_heap_get(0, &d)); /* the newest runtime heap comes first */
    assert_true((uintptr_t)d.heap >= (uintptr_t)cf_at(64 * KIB + 4));
    assert_true((uintptr_t)d.heap % 4u == 0);
}

/* A region whose start is not 4-aligned is registered from the rounded start,
 * but the heap's bounds stay the region's (capheap_heap_get: start, end), and
 * lookups by address (capheap_heap_find, heap_caps_check_integrity_addr) cover
 * all of [start, end). A mutation test caught nothing here before: in registry.c, (speed builds) register_heap:
 * `h->span = h->end - h->start` -> `h->end - s` drops the last bytes of the
 * region from the address index. */
static void test_unaligned_region_lookup_to_end(void **state)
{
    (void)state;
    const uint32_t caps[3] = {CAPS_A0, 0, 0};
    const intptr_t s = cf_at(64 * KIB + 2), e = cf_at(72 * KIB);
    assert_int_equal(heap_caps_add_region_with_caps(caps, s, e), ESP_OK);
    capheap_heap_desc_t d;
    assert_true(capheap_heap_get(0, &d));
    assert_int_equal(d.start, s);
    assert_int_equal(d.end, e);
    for (intptr_t k = 1; k <= 4; k++) {
        assert_int_equal(capheap_heap_find((void *)(e - k)), 0);
        assert_true(heap_caps_check_integrity_addr(e - k, true));
    }
    assert_int_equal(capheap_heap_find((void *)s), 0);
    assert_int_equal(capheap_heap_find((void *)e), -1);
    assert_false(heap_caps_check_integrity_addr(e, false));
}

/* capheap_region_options_t: "Zero-initialise, set what you need"; a name of 0
 * means the chip type with these caps, else "Custom". Options that set only
 * the alignment must not leave the heap nameless. A mutation test caught nothing here before: in registry.c,
 * `options != NULL && options->name != NULL ? options->name : type_name(all)`
 * -> `options != NULL ? options->name : type_name(all)` lists it with name NULL. */
static void test_add_region_options_without_name(void **state)
{
    (void)state;
    capheap_region_options_t opt = {0};
    opt.alignment = 8; /* no name */
    const uint32_t custom[3] = {1u << 29, 0, 0};
    assert_int_equal(capheap_caps_add_region(custom, cf_at(0), cf_at(8 * KIB), &opt), ESP_OK);
    assert_non_null(cf_desc(0).name);
    assert_string_equal(cf_desc(0).name, "Custom");
    assert_int_equal(capheap_heap_alignment(cf_desc(0).heap), 8);

    /* with a chip: the name of the chip type whose caps these are */
    capheap_caps_reset();
    cf_chip_begin("named");
    (void)cf_chip_type("RAM", CAPS_A0, CAPS_A1, 0);
    cf_chip_region(cf_at(0), 8 * KIB, 0, false);
    assert_int_equal(cf_chip_init(NULL, 0), ESP_OK);
    const uint32_t ram[3] = {CAPS_A0, CAPS_A1, 0};
    capheap_region_options_t opt2 = {0};
    opt2.alignment = 16;
    assert_int_equal(capheap_caps_add_region(ram, cf_at(16 * KIB), cf_at(24 * KIB), &opt2), ESP_OK);
    assert_non_null(cf_desc(0).name); /* the newest runtime heap comes first */
    assert_string_equal(cf_desc(0).name, "RAM");
}

static void test_add_region_overlap_rule(void **state)
{
    (void)state;
    /* the exported rule itself, on made-up addresses (nothing is touched) */
    const intptr_t hs = 0x10000, he = 0x20000;
    assert_false(heap_caps_check_add_region_allowed(hs, he, 0x8000, 0x18000));  /* straddles start */
    assert_false(heap_caps_check_add_region_allowed(hs, he, 0x18000, 0x28000)); /* straddles end */
    assert_false(heap_caps_check_add_region_allowed(hs, he, hs, he));           /* duplicate */
    assert_false(heap_caps_check_add_region_allowed(hs, he, 0x8000, 0x28000));  /* covers it */
    assert_true(heap_caps_check_add_region_allowed(hs, he, 0x12000, 0x18000));  /* nested */
    assert_true(heap_caps_check_add_region_allowed(hs, he, hs, 0x18000));       /* nested, same start */
    assert_true(heap_caps_check_add_region_allowed(hs, he, 0x18000, he));       /* nested, same end */
    assert_true(heap_caps_check_add_region_allowed(hs, he, 0x8000, hs));        /* adjacent below */
    assert_true(heap_caps_check_add_region_allowed(hs, he, he, 0x28000));       /* adjacent above */
    assert_true(heap_caps_check_add_region_allowed(hs, he, 0x30000, 0x40000));  /* disjoint */
    assert_true(heap_caps_check_add_region_allowed(hs, he, 0, 0x8000));         /* start 0 */
    assert_true(heap_caps_check_add_region_allowed(hs, he, 0, hs));
    assert_false(heap_caps_check_add_region_allowed(hs, he, 0, 0x18000));
    assert_false(heap_caps_check_add_region_allowed(0, 0x1000, 0, 0x1000));
    assert_true(heap_caps_check_add_region_allowed(0, 0x1000, 0, 0x800));

    /* and registration follows it against every listed heap */
    const uint32_t caps[3] = {MALLOC_CAP_8BIT, 0, 0};
    const uint32_t mine[3] = {1u << 30, 0, 0};
    const size_t base = 64 * KIB;
    assert_int_equal(heap_caps_add_region_with_caps(caps, cf_at(base), cf_at(base + 32 * KIB)), ESP_OK);
    assert_int_equal(heap_caps_add_region_with_caps(caps, cf_at(base - 4 * KIB), cf_at(base + 4 * KIB)), ESP_FAIL);
    assert_int_equal(heap_caps_add_region_with_caps(caps, cf_at(base + 28 * KIB), cf_at(base + 36 * KIB)),
                     ESP_FAIL);
    assert_int_equal(heap_caps_add_region_with_caps(caps, cf_at(base), cf_at(base + 32 * KIB)), ESP_FAIL);
    assert_int_equal(heap_caps_add_region_with_caps(caps, cf_at(base - 4 * KIB), cf_at(base + 36 * KIB)), ESP_FAIL);
    assert_int_equal(capheap_heap_count(), 1);
    /* adjacent on both sides */
    assert_int_equal(heap_caps_add_region_with_caps(caps, cf_at(base - 4 * KIB), cf_at(base)), ESP_OK);
    assert_int_equal(heap_caps_add_region_with_caps(caps, cf_at(base + 32 * KIB), cf_at(base + 40 * KIB)), ESP_OK);
    /* disjoint */
    assert_int_equal(heap_caps_add_region_with_caps(caps, cf_at(base + 64 * KIB), cf_at(base + 72 * KIB)), ESP_OK);
    assert_int_equal(capheap_heap_count(), 4);
    /* nested: as ESP-IDF's reserved DMA pool, a block allocated from a heap becomes a heap of its own */
    int outer = cf_index_of_start(cf_at(base));
    unsigned char *block = multi_heap_malloc(cf_desc((size_t)outer).heap, 4 * KIB);
    assert_non_null(block);
    intptr_t bs = (intptr_t)(uintptr_t)block, be = bs + 4 * KIB;
    assert_int_equal(heap_caps_add_region_with_caps(mine, bs, be), ESP_OK);
    assert_int_equal(cf_desc(0).start, bs);
    /* the nested heap is found first for pointers inside it */
    void *p = heap_caps_malloc(64, 1u << 30);
    assert_non_null(p);
    assert_true(cf_inside(p, 64, bs, be));
    assert_int_equal(capheap_heap_find(p), 0);
    capheap_heap_desc_t inner;
    assert_true(capheap_heap_find_desc(p, &inner)); /* the innermost heap */
    assert_int_equal(inner.start, bs);
    assert_true(inner.runtime);
    assert_int_equal(heap_caps_get_allocated_size(p) >= 64, true);
    heap_caps_free(p);
    /* a block from the outer heap is still found in the outer heap */
    void *q = heap_caps_malloc(64, MALLOC_CAP_8BIT);
    assert_non_null(q);
    assert_false(cf_inside(q, 1, bs, be));
    heap_caps_free(q);
    /* duplicate of the nested one, straddling its end */
    assert_int_equal(heap_caps_add_region_with_caps(mine, bs, be), ESP_FAIL);
    assert_int_equal(heap_caps_add_region_with_caps(mine, be - 64, be + 64), ESP_FAIL);
    assert_true(heap_caps_check_integrity_all(true));
}

static void test_add_region_without_caps(void **state)
{
    (void)state;
    /* no chip: no region can contain start */
    esp_err_t e = heap_caps_add_region(cf_at(0), cf_at(8 * KIB));
    assert_true(e == ESP_ERR_NOT_FOUND || e == ESP_ERR_INVALID_STATE);
    assert_int_equal(capheap_heap_count(), 0);

    cf_chip_begin("addregion");
    size_t t = cf_chip_type("RAM", CAPS_A0, CAPS_A1, 0);
    size_t x = cf_chip_type("EXT", MALLOC_CAP_SPIRAM | MALLOC_CAP_DEFAULT, 0, MALLOC_CAP_8BIT | MALLOC_CAP_32BIT);
    cf_chip_region(cf_at(0), 8 * KIB, t, false);
    cf_chip_region(cf_at(64 * KIB), 128 * KIB, x, false);
    cf_chip_reserve(cf_at(64 * KIB), cf_at(192 * KIB)); /* the whole window: added later */
    assert_int_equal(cf_chip_init(NULL, 0), ESP_OK);
    assert_int_equal(capheap_heap_count(), 1);
    assert_int_equal(heap_caps_get_total_size(MALLOC_CAP_SPIRAM), 0);

    /* the caps of the chip region containing start (reservations are not considered) */
    assert_int_equal(heap_caps_add_region(cf_at(64 * KIB), cf_at(128 * KIB)), ESP_OK);
    capheap_heap_desc_t d = cf_desc(0);
    assert_true(d.runtime);
    assert_int_equal(d.caps[0], MALLOC_CAP_SPIRAM | MALLOC_CAP_DEFAULT);
    assert_int_equal(d.caps[1], 0);
    assert_int_equal(d.caps[2], MALLOC_CAP_8BIT | MALLOC_CAP_32BIT);
    assert_string_equal(d.name, "EXT");
    void *p = heap_caps_malloc(1000, MALLOC_CAP_SPIRAM);
    assert_non_null(p);
    assert_int_equal(capheap_heap_find(p), 0);
    heap_caps_free(p);
    /* only start is looked up: end may lie beyond the region */
    assert_int_equal(heap_caps_add_region(cf_at(188 * KIB), cf_at(200 * KIB)), ESP_OK);
    assert_int_equal(cf_desc(0).caps[0], MALLOC_CAP_SPIRAM | MALLOC_CAP_DEFAULT);
    /* start in no region */
    assert_int_equal(heap_caps_add_region(cf_at(32 * KIB), cf_at(40 * KIB)), ESP_ERR_NOT_FOUND);
    assert_int_equal(heap_caps_add_region(cf_at(300 * KIB), cf_at(310 * KIB)), ESP_ERR_NOT_FOUND);
    /* otherwise the errors of add_region_with_caps */
    assert_int_equal(heap_caps_add_region(cf_at(64 * KIB), cf_at(128 * KIB)), ESP_FAIL);
    assert_int_equal(heap_caps_add_region(cf_at(130 * KIB), cf_at(129 * KIB)), ESP_ERR_INVALID_ARG);
    assert_int_equal(capheap_heap_count(), 3);
    assert_true(heap_caps_check_integrity_all(true));
}

static void test_available_regions(void **state)
{
    (void)state;
    soc_memory_region_t out[16];
    assert_int_equal(soc_get_available_memory_region_max_count(), 0); /* no chip */
    assert_int_equal(soc_get_available_memory_regions(out), 0);

    cf_chip_begin("avail");
    size_t t = cf_chip_type("RAM", CAPS_A0, CAPS_A1, 0);
    size_t u = cf_chip_type("STACK", 0, CAPS_A0, 0);
    cf_chip_region(cf_at(4 * KIB), 8 * KIB, t, false);  /* [4K, 12K) */
    cf_chip_region(cf_at(12 * KIB), 4 * KIB, t, false); /* [12K, 16K): adjacent, same type */
    size_t r32 = cf_chip_region(cf_at(32 * KIB), 8 * KIB, u, true); /* [32K, 40K), start-up stack */
    cf_chip.regions[0].iram_address = 0x40080000; /* each piece keeps its row's, unadjusted (ESP-IDF) */
    cf_chip.regions[r32].iram_address = 0x400A0000;
    cf_chip_reserve(cf_at(4 * KIB), cf_at(4 * KIB + 256));
    soc_reserved_region_t extra[] = {R(8 * KIB, 8 * KIB + 99), R(36 * KIB, 44 * KIB)};
    assert_int_equal(cf_chip_init(extra, 2), ESP_OK);
    assert_int_equal(soc_get_available_memory_region_max_count(), 3 + 1 + 2);
    size_t n = soc_get_available_memory_regions(out);
    /* carved, in table order, not coalesced (that is heap_caps_init's step) */
    const struct {
        size_t start, size, type;
        bool stack;
        intptr_t iram;
    } want[] = {
        {4 * KIB + 256, 4 * KIB - 256, 0, false, 0x40080000},
        {8 * KIB + 100, 4 * KIB - 100, 0, false, 0x40080000},
        {12 * KIB, 4 * KIB, 0, false, 0},
        {32 * KIB, 4 * KIB, 1, true, 0x400A0000},
    };
    assert_int_equal(n, 4);
    for (size_t i = 0; i < n; i++) {
        if (out[i].start != cf_at(want[i].start) || out[i].size != want[i].size) {
            fail_msg("available region %zu is [arena+%td, +%zu), expected [arena+%zu, +%zu)", i,
                     out[i].start - cf_at(0), out[i].size, want[i].start, want[i].size);
        }
        assert_int_equal(out[i].type, want[i].type == 0 ? t : u);
        assert_int_equal(out[i].startup_stack, want[i].stack);
        assert_int_equal(out[i].iram_address, want[i].iram);
    }
    /* the heaps: the two RAM pieces that touch are one heap */
    int k = cf_index_of_start(cf_at(8 * KIB + 100));
    assert_true(k >= 0);
    assert_int_equal(cf_desc((size_t)k).end, cf_at(16 * KIB));
}

/* ---- failed start-up, chip parameters, edges of the lookups ----------------------- */

/* A refused capheap_caps_init() changes nothing (esp_heap_caps_init.h): a
 * region type past the table and a chip with reservations but no table are
 * ESP_ERR_INVALID_ARG; running out of descriptors half-way is
 * ESP_ERR_NO_MEM, and the heaps carved until then are dropped again (the
 * runtime heap added before stays), so a valid chip boots right after,
 * without a reset. */
static void test_failed_init_changes_nothing(void **state)
{
    (void)state;
    cf_chip_begin("bad");
    size_t t = cf_chip_type("RAM", CAPS_A0, 0, 0);
    cf_chip_region(cf_at(0), 8 * KIB, t, false);
    cf_chip.regions[0].type = cf_chip.chip.type_count; /* one past the last type */
    assert_int_equal(cf_chip_init(NULL, 0), ESP_ERR_INVALID_ARG);
    assert_ptr_equal(capheap_caps_chip(), NULL);
    cf_chip.regions[0].type = t;
    const capheap_chip_t *chip = cf_chip_finish();
    cf_chip.chip.reserved_count = 1; /* and no table */
    assert_int_equal(capheap_caps_init(chip, NULL, 0), ESP_ERR_INVALID_ARG);
    assert_ptr_equal(capheap_caps_chip(), NULL);
    assert_int_equal(capheap_heap_count(), 0);

    const size_t piece = 1024, base = 256 * KIB;
    const uint32_t mine[3] = {MALLOC_CAP_SPIRAM, 0, 0};
    assert_int_equal(heap_caps_add_region_with_caps(mine, cf_at(0), cf_at(8 * KIB)), ESP_OK);
    cf_chip_begin("many");
    t = cf_chip_type("RAM", CAPS_A0, 0, 0);
    for (size_t i = 0; i < CAPHEAP_MAX_HEAPS; i++) {
        cf_chip_region(cf_at(base + i * 2u * piece), piece, t, false); /* gaps: no coalescing */
    }
    assert_int_equal(cf_chip_init(NULL, 0), ESP_ERR_NO_MEM); /* 64 start-up heaps and the runtime one */
    assert_ptr_equal(capheap_caps_chip(), NULL);
    assert_int_equal(capheap_heap_count(), 1);
    assert_int_equal(heap_caps_get_total_size(0), 8 * KIB);
    assert_null(heap_caps_malloc(16, CAPS_A0));
    cf_chip.chip.region_count = CAPHEAP_MAX_HEAPS - 1u;
    assert_int_equal(cf_chip_init(NULL, 0), ESP_OK);
    assert_int_equal(capheap_heap_count(), CAPHEAP_MAX_HEAPS);
    assert_int_equal(heap_caps_get_total_size(CAPS_A0), (CAPHEAP_MAX_HEAPS - 1u) * piece);
    assert_true(heap_caps_check_integrity_all(true));
}

/* A start-up that ran out of descriptors registered heaps in slots it then
 * gave up; the next start-up reuses those slots. A slot that now holds a
 * listed but unregistered region (a start-up stack) still carries the old
 * heap's bounds in fields only a registered heap's are read from, so every
 * lookup must skip it: here the old heap covered [0, 4K) and the stack
 * region is [0, 1K), just in front of the heap that serves the block. A
 * lookup that took the stack region's descriptor (the smallest "heap"
 * holding the pointer) would size the block as 0 and free it nowhere
 * (found by mutation testing of the size-optimised lookup, which searches
 * the descriptors). */
static void test_failed_init_leaves_no_stale_heap(void **state)
{
    (void)state;
    const size_t piece = 1024, base = 256 * KIB;
    cf_chip_begin("many");
    size_t t = cf_chip_type("RAM", CAPS_A0, 0, 0);
    cf_chip_region(cf_at(0), 4 * KIB, t, false); /* the first slot: a 4 KiB heap */
    for (size_t i = 0; i < CAPHEAP_MAX_HEAPS; i++) {
        cf_chip_region(cf_at(base + i * 2u * piece), piece, t, false); /* gaps: no coalescing */
    }
    assert_int_equal(cf_chip_init(NULL, 0), ESP_ERR_NO_MEM);
    assert_int_equal(capheap_heap_count(), 0);

    cf_chip_begin("stack first");
    t = cf_chip_type("RAM", CAPS_A0, 0, 0);
    size_t s = cf_chip_type("STACK", CAPS_A0, 0, 0);
    cf_chip_region(cf_at(0), piece, s, true); /* the first slot again, unregistered */
    cf_chip_region(cf_at(piece), 32 * KIB - piece, t, false); /* [1K, 32K) */
    assert_int_equal(cf_chip_init(NULL, 0), ESP_OK);
    assert_int_equal(capheap_heap_count(), 2);
    size_t free0 = heap_caps_get_free_size(CAPS_A0);
    unsigned char *p = heap_caps_malloc(100, CAPS_A0);
    assert_non_null(p);
    assert_true(p < (unsigned char *)cf_arena + 4 * KIB); /* inside the old heap's bounds */
    int k = cf_index_of_start(cf_at(piece));
    assert_true(k >= 0);
    assert_int_equal(capheap_heap_find(p), k);
    assert_true(heap_caps_get_allocated_size(p) >= 100);
    ct_stamp(p, 100);
    assert_true(ct_stamp_ok(p, 100));
    heap_caps_free(p);
    assert_int_equal(heap_caps_get_free_size(CAPS_A0), free0);
    assert_int_equal(capheap_heap_find(cf_arena + 100), -1); /* the stack region: no heap yet */
    assert_true(heap_caps_check_integrity_all(true));
}

/* A start-up that ran out of descriptors leaves registered multi_heap handles
 * in the slots it gave up (ch_g.n is rolled back, the handles are not). The
 * minimum-free monitor must save only the counted heaps: a slot past ch_g.n is
 * "no heap yet" (SIZE_MAX), so a runtime heap that takes that slot during the
 * window keeps its own low-water mark at stop. A mutation test caught nothing here before: in stats.c,
 * `i < ch_g.n ? ch_g.heaps[i].heap : NULL` -> `ch_g.heaps[i].heap` resets the
 * dead heap (writing into memory the caller got back) and at stop restores its
 * small minimum onto the new 64 KiB heap. */
static void test_monitor_ignores_dropped_slots(void **state)
{
    (void)state;
    const size_t piece = 1024, base = 256 * KIB;
    cf_chip_begin("many");
    size_t t = cf_chip_type("RAM", CAPS_A0, 0, 0);
    for (size_t i = 0; i < CAPHEAP_MAX_HEAPS + 1u; i++)
        cf_chip_region(cf_at(base + i * 2u * piece), piece, t, false); /* gaps: no coalescing */
    assert_int_equal(cf_chip_init(NULL, 0), ESP_ERR_NO_MEM); /* slots 0.. hold dropped 1 KiB heaps */
    assert_int_equal(capheap_heap_count(), 0);

    assert_int_equal(heap_caps_monitor_local_minimum_free_size_start(), ESP_OK);
    const uint32_t caps[3] = {MALLOC_CAP_SPIRAM, 0, 0};
    assert_int_equal(heap_caps_add_region_with_caps(caps, cf_at(0), cf_at(64 * KIB)), ESP_OK); /* slot 0 */
    size_t free0 = heap_caps_get_free_size(MALLOC_CAP_SPIRAM);
    assert_true(free0 > 60 * KIB);
    void *p = heap_caps_malloc(1000, MALLOC_CAP_SPIRAM);
    assert_non_null(p);
    heap_caps_free(p);
    size_t min_in_window = heap_caps_get_minimum_free_size(MALLOC_CAP_SPIRAM);
    assert_true(min_in_window >= free0 - 1100u);
    assert_int_equal(heap_caps_monitor_local_minimum_free_size_stop(), ESP_OK);
    /* the new heap had no minimum before the window: it keeps the window's */
    assert_int_equal(heap_caps_get_minimum_free_size(MALLOC_CAP_SPIRAM), min_in_window);
    assert_true(heap_caps_check_integrity_all(true));
}

/* The chip's heap alignment holds for the start-up heaps as for runtime
 * ones (chips.md: heap_alignment); and capheap_caps_reset() forgets the
 * chip's HEAP_SIZE_MAX with the chip: SIZE_MAX / 2 again (caps_private.h). */
static void test_chip_parameters_and_reset(void **state)
{
    (void)state;
    cf_chip_begin("wide");
    size_t t = cf_chip_type("RAM", CAPS_A0, 0, 0);
    cf_chip_region(cf_at(0), 8 * KIB, t, false);
    cf_chip_region(cf_at(16 * KIB), 4 * KIB, t, false);
    cf_chip.chip.heap_alignment = 16;
    cf_chip.chip.heap_size_max = 2 * KIB;
    assert_int_equal(cf_chip_init(NULL, 0), ESP_OK);
    assert_int_equal(capheap_heap_count(), 2);
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(capheap_heap_alignment(cf_desc(i).heap), 16);
    }
    for (size_t n = 1; n < 200; n += 11) {
        void *p = heap_caps_malloc(n, CAPS_A0);
        assert_non_null(p);
        assert_int_equal((uintptr_t)p % 16u, 0);
        heap_caps_free(p);
    }
    assert_null(heap_caps_malloc(3 * KIB, CAPS_A0)); /* above the chip's HEAP_SIZE_MAX */
    const uint32_t caps[3] = {CAPS_A0, 0, 0};
    assert_int_equal(heap_caps_add_region_with_caps(caps, cf_at(32 * KIB), cf_at(40 * KIB)), ESP_OK);
    assert_int_equal(capheap_heap_alignment(cf_desc(0).heap), 16); /* runtime heaps: the chip's too */

    capheap_caps_reset();
    assert_int_equal(heap_caps_add_region_with_caps(caps, cf_at(64 * KIB), cf_at(80 * KIB)), ESP_OK);
    void *p = heap_caps_malloc(3 * KIB, CAPS_A0);
    assert_non_null(p);
    heap_caps_free(p);
    p = heap_caps_malloc(3 * KIB, MALLOC_CAP_8BIT);
    assert_non_null(p);
    heap_caps_free(p);
}

/* A start-up-stack region is registered late, by
 * heap_caps_enable_nonos_stack_heaps(); it gets the chip's heap alignment like
 * every other heap (chips.md: heap_alignment). A mutation test caught nothing here before: in registry.c,
 * `register_heap(h, chip_alignment())` -> `register_heap(h, 4u)` makes that
 * heap 4-aligned on a 16-aligned chip. */
static void test_stack_heaps_take_chip_alignment(void **state)
{
    (void)state;
    cf_chip_begin("wide stack");
    size_t t = cf_chip_type("RAM", CAPS_A0, 0, 0);
    size_t s = cf_chip_type("STACK", MALLOC_CAP_SPIRAM, 0, 0); /* caps only the stack heap has */
    cf_chip_region(cf_at(0), 8 * KIB, t, false);
    cf_chip_region(cf_at(16 * KIB), 8 * KIB, s, true);
    cf_chip.chip.heap_alignment = 16;
    assert_int_equal(cf_chip_init(NULL, 0), ESP_OK);
    assert_null(heap_caps_malloc(16, MALLOC_CAP_SPIRAM)); /* not yet registered */
    heap_caps_enable_nonos_stack_heaps();
    int k = cf_index_of_start(cf_at(16 * KIB));
    assert_true(k >= 0);
    assert_non_null(cf_desc((size_t)k).heap);
    assert_int_equal(capheap_heap_alignment(cf_desc((size_t)k).heap), 16);
    for (size_t n = 1; n < 200; n += 11) {
        void *p = heap_caps_malloc(n, MALLOC_CAP_SPIRAM);
        assert_non_null(p);
        assert_int_equal(capheap_heap_find(p), k);
        assert_int_equal((uintptr_t)p % 16u, 0);
        heap_caps_free(p);
    }
    assert_true(heap_caps_check_integrity_all(true));
}

/* Edges of the start-up carving and of heap_caps_add_region():
 *  - heaps added before init may nest (ESP-IDF's reserved pool): they are
 *    carved around, not checked against each other;
 *  - an empty firmware reservation overlaps nothing: no piece is cut;
 *  - heap_caps_add_region() takes the caps of the chip region containing
 *    start, and a region's end is not in it: ESP_ERR_NOT_FOUND. */
static void test_carving_and_add_region_edges(void **state)
{
    (void)state;
    const uint32_t mine[3] = {MALLOC_CAP_SPIRAM, 0, 0};
    const uint32_t pool[3] = {MALLOC_CAP_RETENTION, 0, 0};
    assert_int_equal(heap_caps_add_region_with_caps(mine, cf_at(128 * KIB), cf_at(160 * KIB)), ESP_OK);
    unsigned char *block = multi_heap_malloc(cf_desc(0).heap, 4 * KIB);
    assert_non_null(block);
    intptr_t bs = (intptr_t)(uintptr_t)block;
    assert_int_equal(heap_caps_add_region_with_caps(pool, bs, bs + 4 * KIB), ESP_OK);
    cf_chip_begin("edges");
    size_t t = cf_chip_type("RAM", CAPS_A0, CAPS_A1, 0);
    cf_chip_region(cf_at(4 * KIB), 8 * KIB, t, false);
    cf_chip_region(cf_at(128 * KIB), 64 * KIB, t, false); /* around both early heaps */
    soc_reserved_region_t empty[] = {R(8 * KIB, 8 * KIB)};
    assert_int_equal(cf_chip_init(empty, 1), ESP_OK);
    assert_true(heaps_apart_or_nested());
    int k = cf_index_of_start(cf_at(4 * KIB));
    assert_true(k >= 0);
    assert_int_equal(cf_desc((size_t)k).end, cf_at(12 * KIB)); /* one heap: nothing cut at 8K */
    soc_memory_region_t out[8];
    assert_int_equal(soc_get_available_memory_regions(out), 2);
    assert_int_equal(out[0].start, cf_at(4 * KIB));
    assert_int_equal(out[0].size, 8 * KIB);
    assert_int_equal(heap_caps_get_total_size(CAPS_A0), 8 * KIB + 32 * KIB);
    void *p = heap_caps_malloc(64, MALLOC_CAP_RETENTION);
    assert_true(cf_inside(p, 64, bs, bs + 4 * KIB));
    heap_caps_free(p);

    /* [12K, 20K) starts where the first region ends: in no region */
    assert_int_equal(heap_caps_add_region(cf_at(12 * KIB), cf_at(20 * KIB)), ESP_ERR_NOT_FOUND);
    assert_int_equal(heap_caps_add_region(cf_at(192 * KIB), cf_at(200 * KIB)), ESP_ERR_NOT_FOUND);
    assert_true(heap_caps_check_integrity_all(true));
}

static void test_heap_caps_init_aborts(void **state)
{
    (void)state;
    bool aborted;
    /* a host test build selects no chip: reported, then the port's abort */
    capheap_clear_last_report();
    ct_capture_begin();
    CT_CATCH_ABORT(aborted, heap_caps_init());
    ct_capture_end();
    assert_true(aborted);
    /* a usage error, not corruption (capheap/report.h) */
    assert_string_equal(ct_capture_text(), "heap_caps_init: no chip selected (CAPHEAP_CHIP, or capheap_sim_boot on a "
                                           "host) (esp_err_t 0x103)\n");
    assert_int_equal(capheap_heap_count(), 0);
    /* after capheap_caps_init: a second initialisation */
    cf_chip_begin("twice");
    size_t t = cf_chip_type("RAM", CAPS_A0, 0, 0);
    cf_chip_region(cf_at(0), 8 * KIB, t, false);
    assert_int_equal(cf_chip_init(NULL, 0), ESP_OK);
    capheap_clear_last_report();
    ct_capture_begin();
    CT_CATCH_ABORT(aborted, heap_caps_init());
    ct_capture_end();
    assert_true(aborted);
    assert_string_equal(ct_capture_text(), "heap_caps_init: called twice (esp_err_t 0x103)\n");
    assert_int_equal(capheap_heap_count(), 1);
    assert_true(heap_caps_check_integrity_all(true));
}

/* Reservations that are refused (overlapping: ESP_FAIL; start > end:
 * ESP_ERR_INVALID_ARG) are found before any region is carved: a refused
 * capheap_caps_init() changes nothing (esp_heap_caps_init.h), not even the
 * bytes of the chip's regions, where carving would have written the heaps'
 * control structures (found by mutation testing: the carving ran anyway,
 * and the heaps it made were only dropped afterwards). */
static void test_refused_reservations_write_nothing(void **state)
{
    (void)state;
    const size_t lo = 4096, hi = lo + 8u * KIB;
    const soc_reserved_region_t bad[2][2] = {{R(lo, lo + 100), R(lo + 96, lo + 200)}, {R(lo + 200, lo + 100)}};
    const esp_err_t want[2] = {ESP_FAIL, ESP_ERR_INVALID_ARG};
    for (size_t k = 0; k < 2; k++) {
        memset(cf_arena + lo, 0xa5, hi - lo);
        assert_int_equal(one_region(bad[k], 2 - k), want[k]);
        assert_int_equal(capheap_heap_count(), 0);
        for (size_t i = lo; i < hi; i++) {
            if (cf_arena[i] != 0xa5) {
                fail_msg("case %zu: byte %zu of the region written by a refused start-up", k, i - lo);
            }
        }
    }
}

/* Without a chip (runtime regions only) the request's caps change as with
 * one (chips.md 0.3): SPIRAM|DMA loses DMA, descriptor caps become DMA. Only
 * the alignment needs the chip's cache lines. */
static void test_caps_changes_without_chip(void **state)
{
    (void)state;
    const uint32_t psram[3] = {MALLOC_CAP_SPIRAM | MALLOC_CAP_DEFAULT, 0, MALLOC_CAP_8BIT | MALLOC_CAP_32BIT};
    const uint32_t dram[3] = {MALLOC_CAP_INTERNAL | MALLOC_CAP_DMA | MALLOC_CAP_8BIT, 0, 0};
    assert_int_equal(heap_caps_add_region_with_caps(psram, cf_at(0), cf_at(16 * KIB)), ESP_OK);
    void *p = heap_caps_malloc(100, MALLOC_CAP_SPIRAM | MALLOC_CAP_DMA);
    assert_non_null(p);
    assert_int_equal(capheap_heap_find(p), 0);
    capheap_fit_t fit;
    assert_true(capheap_would_fit(100, MALLOC_CAP_SPIRAM | MALLOC_CAP_DMA_DESC_AHB, 0, &fit));
    assert_int_equal(fit.caps, MALLOC_CAP_SPIRAM);
    assert_null(heap_caps_malloc(100, MALLOC_CAP_DMA)); /* no DMA heap yet */
    assert_int_equal(heap_caps_add_region_with_caps(dram, cf_at(32 * KIB), cf_at(48 * KIB)), ESP_OK);
    void *d = heap_caps_malloc(100, MALLOC_CAP_DMA_DESC_AHB);
    assert_non_null(d);
    assert_int_equal(capheap_heap_find(d), 0); /* the newest runtime heap: the DRAM one */
    heap_caps_free(d);
    heap_caps_free(p);
    assert_true(heap_caps_check_integrity_all(true));
}

/* A heap at address 0 (instruction TCM on Cortex-M7 parts, compat.md 23): its
 * first page holds NULL, and free's page cache must never answer for it, or
 * heap_caps_free(NULL) and heap_caps_realloc(NULL, n, caps) reach the heap
 * as a foreign pointer and abort (an audit found that: the cache then held
 * the heap for page 0 after any free of a block there). Needs page 0 mapped:
 * root, or vm.mmap_min_addr 0; skipped otherwise. */
static void test_heap_at_address_zero(void **state)
{
    (void)state;
    const size_t len = 64u * KIB;
    void *zero = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
                      -1, 0);
    if (zero != NULL) {
        if (zero != MAP_FAILED)
            munmap(zero, len); /* the kernel placed it elsewhere: no page 0 here */
        print_message("      page 0 cannot be mapped here (not root, vm.mmap_min_addr): skipped\n");
        skip();
    }
    const uint32_t caps[3] = {MALLOC_CAP_8BIT | MALLOC_CAP_DEFAULT, 0, 0};
    assert_int_equal(heap_caps_add_region_with_caps(caps, 0, (intptr_t)len), ESP_OK);
    const size_t free0 = heap_caps_get_free_size(MALLOC_CAP_DEFAULT);
    heap_caps_free(NULL); /* nothing cached yet */
    /* blocks in page 0, each freed: free's lookup has now seen page 0 */
    void *first = heap_caps_malloc(32, MALLOC_CAP_DEFAULT);
    assert_non_null(first);
    assert_true((uintptr_t)first < 4096u);
    void *second = heap_caps_malloc(32, MALLOC_CAP_DEFAULT);
    assert_non_null(second);
    heap_caps_free(first);
    assert_int_equal(heap_caps_get_allocated_size(second), 32);
    /* NULL stays NULL on every path */
    for (int round = 0; round < 3; round++) {
        heap_caps_free(NULL);
        void *p = heap_caps_realloc(NULL, 16, MALLOC_CAP_DEFAULT);
        assert_non_null(p);
        assert_true((uintptr_t)p < len);
        heap_caps_free(p);
        assert_null(heap_caps_realloc(NULL, 0, MALLOC_CAP_DEFAULT));
        assert_int_equal(heap_caps_get_allocated_size(NULL), 0);
        heap_caps_free(second);
        second = heap_caps_malloc(48, MALLOC_CAP_DEFAULT);
        assert_non_null(second);
    }
    heap_caps_free(second);
    assert_true(heap_caps_check_integrity_all(true));
    assert_int_equal(heap_caps_get_free_size(MALLOC_CAP_DEFAULT), free0); /* every block came back */
    capheap_caps_reset();
    /* the reset took the sanitizer marks off the heap's memory, which starts
     * at its alignment, not at 0 (an ASan build reported this write) */
    unsigned char *volatile low = (unsigned char *)(uintptr_t)64u;
    memset(low, 0x5a, len - 64u);
    munmap(NULL, len);
}

#define T(f) cmocka_unit_test_setup_teardown(f, cf_setup, cf_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_carving),
        T(test_coalescing),
        T(test_sorted_order_and_ties),
        T(test_startup_stack_regions),
        T(test_init_state_and_arguments),
        T(test_rows_at_the_top_of_the_address_space),
        T(test_overlapping_rows),
        T(test_init_after_runtime_regions),
        T(test_too_many_heaps),
        T(test_add_region_errors),
        T(test_unaligned_region_lookup_to_end),
        T(test_add_region_options_without_name),
        T(test_add_region_overlap_rule),
        T(test_add_region_without_caps),
        T(test_available_regions),
        T(test_heap_caps_init_aborts),
        T(test_failed_init_changes_nothing),
        T(test_failed_init_leaves_no_stale_heap),
        T(test_monitor_ignores_dropped_slots),
        T(test_refused_reservations_write_nothing),
        T(test_chip_parameters_and_reset),
        T(test_stack_heaps_take_chip_alignment),
        T(test_carving_and_add_region_edges),
        T(test_caps_changes_without_chip),
        T(test_heap_at_address_zero),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
