/*
 * caps_fixture.h - shared helpers of the heap_caps tests (tests/caps/test_caps_*.c,
 * test_routing_oracle.c). Header-only on purpose: tests/CMakeLists.txt builds
 * every tests/caps/test_*.c as its own program, so the helpers are static
 * functions each program includes once.
 *
 * What is here:
 *  - cf_arena: one static, page-aligned 1 MiB array the tests carve into chip
 *    regions and runtime regions (host addresses are known only at run time,
 *    so chip tables are built at run time too);
 *  - a chip builder (cf_chip_*) that fills a static capheap_chip_t with a
 *    types table, regions and the chip parameters the routing reads;
 *  - recorders for the ESP-IDF failure callback and capheap's extended one;
 *  - cf_adjust(): a plain transcription of spec 2.6 steps 1-4 and chips.md 0.3
 *    (hardware alignment, EXEC rules, 32BIT rounding), used as the expectation;
 *  - small accessors over the heap list (capheap_heap_get / capheap_heap_find).
 *
 * Include after <cmocka.h> and "support.h".
 */
#ifndef CAPHEAP_CAPS_FIXTURE_H
#define CAPHEAP_CAPS_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "capheap/caps.h"
#include "capheap/chip.h"
#include "esp_heap_caps.h"
#include "esp_heap_caps_init.h"
#include "heap_memory_layout.h"

/* caps that need an EXEC heap when the build serves EXEC, else a 32BIT one */
#define CF_CAPS_EXEC_OR_32BIT (CAPHEAP_EXEC_HEAP ? MALLOC_CAP_EXEC : MALLOC_CAP_32BIT)

/* ------------------------------------------------------------------------ */
/* The arena                                                                 */
/* ------------------------------------------------------------------------ */

#define CF_ARENA_BYTES (1024u * 1024u)
#define CF_PAGE 4096u
static _Alignas(4096) unsigned char cf_arena[CF_ARENA_BYTES];

/** Address of arena offset off, as the intptr_t the layout tables use. */
static inline intptr_t cf_at(size_t off)
{
    return (intptr_t)(uintptr_t)(cf_arena + off);
}

/** True iff [p, p + n) lies inside [start, end). */
static inline bool cf_inside(const void *p, size_t n, intptr_t start, intptr_t end)
{
    uintptr_t a = (uintptr_t)p;
    return a >= (uintptr_t)start && a + n <= (uintptr_t)end && a + n >= a;
}

/* ------------------------------------------------------------------------ */
/* Chip builder                                                              */
/* ------------------------------------------------------------------------ */

#define CF_MAX_TYPES 16
#define CF_MAX_REGIONS 80
#define CF_MAX_RESERVED 16

typedef struct {
    capheap_chip_t chip;
    soc_memory_type_desc_t types[CF_MAX_TYPES];
    char type_names[CF_MAX_TYPES][24];
    soc_memory_region_t regions[CF_MAX_REGIONS];
    soc_reserved_region_t reserved[CF_MAX_RESERVED]; /* the chip's own reservations */
} cf_chip_t;

static cf_chip_t cf_chip;

/** Start a chip description: no types, no regions, 4-byte heaps, no cache, HEAP_SIZE_MAX = the arena. */
static inline void cf_chip_begin(const char *name)
{
    memset(&cf_chip, 0, sizeof cf_chip);
    cf_chip.chip.name = name;
    cf_chip.chip.title = name;
    cf_chip.chip.heap_size_max = CF_ARENA_BYTES;
    cf_chip.chip.heap_alignment = 4;
}

/** Add a memory type; returns its index. */
static inline size_t cf_chip_type(const char *name, uint32_t c0, uint32_t c1, uint32_t c2)
{
    size_t i = cf_chip.chip.type_count;
    if (i >= CF_MAX_TYPES) {
        fail_msg("too many types");
        return 0; /* not reached: fail_msg does not return */
    }
    snprintf(cf_chip.type_names[i], sizeof cf_chip.type_names[i], "%s", name);
    cf_chip.types[i].name = cf_chip.type_names[i];
    cf_chip.types[i].caps[0] = c0;
    cf_chip.types[i].caps[1] = c1;
    cf_chip.types[i].caps[2] = c2;
    cf_chip.chip.type_count = i + 1u;
    return i;
}

/** Add a region [start, start + size) of type; returns its index. */
static inline size_t cf_chip_region(intptr_t start, size_t size, size_t type, bool startup_stack)
{
    size_t i = cf_chip.chip.region_count;
    if (i >= CF_MAX_REGIONS) {
        fail_msg("too many regions");
        return 0; /* not reached */
    }
    cf_chip.regions[i].start = start;
    cf_chip.regions[i].size = size;
    cf_chip.regions[i].type = type;
    cf_chip.regions[i].iram_address = 0;
    cf_chip.regions[i].startup_stack = startup_stack;
    cf_chip.chip.region_count = i + 1u;
    cf_chip.chip.internal_ram_bytes += size;
    return i;
}

/** Add one of the chip's own (fixed) reservations. */
static inline void cf_chip_reserve(intptr_t start, intptr_t end)
{
    size_t i = cf_chip.chip.reserved_count;
    if (i >= CF_MAX_RESERVED) {
        fail_msg("too many reservations");
        return; /* not reached */
    }
    cf_chip.reserved[i].start = start;
    cf_chip.reserved[i].end = end;
    cf_chip.chip.reserved_count = i + 1u;
}

/** Point the chip at its tables (call after the last cf_chip_* and before init). */
static const capheap_chip_t *cf_chip_finish(void)
{
    cf_chip.chip.types = cf_chip.types;
    cf_chip.chip.regions = cf_chip.regions;
    cf_chip.chip.reserved = cf_chip.chip.reserved_count ? cf_chip.reserved : NULL;
    return &cf_chip.chip;
}

/** capheap_caps_init() with the chip built so far and extra (firmware) reservations. */
static inline esp_err_t cf_chip_init(const soc_reserved_region_t *extra, size_t count)
{
    return capheap_caps_init(cf_chip_finish(), extra, count);
}

/* ------------------------------------------------------------------------ */
/* Failure callbacks                                                         */
/* ------------------------------------------------------------------------ */

typedef struct {
    unsigned calls;          /* ESP-IDF callback */
    size_t size;
    uint32_t caps;
    char function[64];
    unsigned ext_calls;      /* capheap's extended callback */
    size_t ext_size;
    uint32_t ext_caps;
    char ext_function[64];
    capheap_fit_t why;
    void *ext_user;
    unsigned sequence;       /* order of calls: 1 = ESP-IDF first, 2 = extended first */
    unsigned order_idf;
    unsigned order_ext;
} cf_cb_log_t;

static cf_cb_log_t cf_cb;

static inline void cf_failed_cb(size_t size, uint32_t caps, const char *function_name)
{
    cf_cb.calls++;
    cf_cb.size = size;
    cf_cb.caps = caps;
    snprintf(cf_cb.function, sizeof cf_cb.function, "%s", function_name ? function_name : "(null)");
    cf_cb.order_idf = ++cf_cb.sequence;
}

static inline void cf_failed_ext_cb(size_t size, uint32_t caps, const char *function_name, const capheap_fit_t *why,
                             void *user)
{
    cf_cb.ext_calls++;
    cf_cb.ext_size = size;
    cf_cb.ext_caps = caps;
    snprintf(cf_cb.ext_function, sizeof cf_cb.ext_function, "%s", function_name ? function_name : "(null)");
    if (why) {
        cf_cb.why = *why;
    } else {
        memset(&cf_cb.why, 0xff, sizeof cf_cb.why);
    }
    cf_cb.ext_user = user;
    cf_cb.order_ext = ++cf_cb.sequence;
}

static inline void cf_cb_clear(void)
{
    memset(&cf_cb, 0, sizeof cf_cb);
}

/** Install both recorders (user pointer: &cf_cb) and clear the log. */
static inline void cf_cb_install(void)
{
    cf_cb_clear();
    assert_int_equal(heap_caps_register_failed_alloc_callback(cf_failed_cb), ESP_OK);
    assert_int_equal(capheap_register_failed_alloc_callback(cf_failed_ext_cb, &cf_cb), ESP_OK);
}

/* ------------------------------------------------------------------------ */
/* Expected request adjustment (spec 2.6 steps 1-4, chips.md 0.3)            */
/* ------------------------------------------------------------------------ */

#define CF_HW_CAPS                                                                                            \
    (MALLOC_CAP_DMA | MALLOC_CAP_DMA_DESC_AHB | MALLOC_CAP_DMA_DESC_AXI | MALLOC_CAP_CACHE_ALIGNED |            \
     MALLOC_CAP_SIMD)

static inline size_t cf_max(size_t a, size_t b)
{
    return a > b ? a : b;
}

/**
 * What the router does to (size, alignment, caps) before the search, for chip.
 * Returns false when the request must fail before any heap is tried (too large,
 * EXEC with 8BIT or DMA, caps 0 or INVALID). alignment 0 or 4 means "the heap's".
 */
static inline bool cf_adjust(const capheap_chip_t *chip, size_t *size, size_t *alignment, uint32_t *caps)
{
    uint32_t c = *caps;
    size_t a = *alignment;
    size_t s = *size;
    if (c & CF_HW_CAPS) {
        size_t line = (c & MALLOC_CAP_SPIRAM) ? chip->cache_line_external : chip->cache_line_internal;
        a = cf_max(a, line);
        if (c & MALLOC_CAP_DMA_DESC_AXI) {
            a = cf_max(a, chip->dma_desc_axi_alignment);
        }
        if (c & MALLOC_CAP_SIMD) {
            a = cf_max(a, chip->simd_alignment);
        }
        if (c & (MALLOC_CAP_DMA_DESC_AHB | MALLOC_CAP_DMA_DESC_AXI)) {
            c = (c & ~(MALLOC_CAP_DMA_DESC_AHB | MALLOC_CAP_DMA_DESC_AXI)) | MALLOC_CAP_DMA;
        }
        if ((c & MALLOC_CAP_SPIRAM) && (c & MALLOC_CAP_DMA)) {
            c &= ~MALLOC_CAP_DMA;
        }
        c &= ~MALLOC_CAP_CACHE_ALIGNED;
        if (a > 1) {
            s = (s + a - 1u) & ~(a - 1u);
        }
    }
    *caps = c;
    *alignment = a;
    *size = s;
    if (c == 0 || (c & MALLOC_CAP_INVALID)) {
        return false;
    }
    if (s > chip->heap_size_max) {
        return false;
    }
    if (c & MALLOC_CAP_EXEC) {
        /* without CAPHEAP_EXEC_HEAP (ESP-IDF's HAS_EXEC_HEAP=n) EXEC never allocates */
        if (!CAPHEAP_EXEC_HEAP || (c & (MALLOC_CAP_8BIT | MALLOC_CAP_DMA))) {
            return false;
        }
        c |= MALLOC_CAP_32BIT;
        *caps = c;
    }
    if (c & MALLOC_CAP_32BIT) {
        *size = (s + 3u) & ~(size_t)3u;
    }
    return true;
}

/* ------------------------------------------------------------------------ */
/* The heap list                                                             */
/* ------------------------------------------------------------------------ */

static inline capheap_heap_desc_t cf_desc(size_t i)
{
    capheap_heap_desc_t d;
    memset(&d, 0, sizeof d);
    if (!capheap_heap_get(i, &d)) {
        fail_msg("capheap_heap_get(%zu) failed (count %zu)", i, capheap_heap_count());
    }
    return d;
}

static inline uint32_t cf_all_caps(const capheap_heap_desc_t *d)
{
    return d->caps[0] | d->caps[1] | d->caps[2];
}

/** Index of the listed heap whose region starts at start, or -1. */
static inline int cf_index_of_start(intptr_t start)
{
    size_t n = capheap_heap_count();
    for (size_t i = 0; i < n; i++) {
        if (cf_desc(i).start == start) {
            return (int)i;
        }
    }
    return -1;
}

/** The registered heap containing p, found by my own linear scan (an oracle for capheap_heap_find). */
static inline int cf_scan_find(const void *p)
{
    size_t n = capheap_heap_count();
    for (size_t i = 0; i < n; i++) {
        capheap_heap_desc_t d = cf_desc(i);
        if (d.heap && (uintptr_t)p >= (uintptr_t)d.start && (uintptr_t)p < (uintptr_t)d.end) {
            return (int)i;
        }
    }
    return -1;
}

/** Sum of multi_heap_free_size over every registered heap. */
static inline size_t cf_sum_free(void)
{
    size_t n = capheap_heap_count(), sum = 0;
    for (size_t i = 0; i < n; i++) {
        capheap_heap_desc_t d = cf_desc(i);
        if (d.heap) {
            sum += multi_heap_free_size(d.heap);
        }
    }
    return sum;
}

/** Every test starts and ends with an empty registry and no callbacks. */
static inline int cf_setup(void **state)
{
    (void)state;
    capheap_caps_reset();
    cf_cb_clear();
    return 0;
}

static inline int cf_teardown(void **state)
{
    (void)state;
    capheap_caps_reset();
    return 0;
}

#endif /* CAPHEAP_CAPS_FIXTURE_H */
