/*
 * tests/caps/test_chips.c - checks every built-in chip table (chips/) in one
 * table-driven pass, and capheap_chip_find().
 *
 * For each registered chip, check_chip() verifies the table's internal
 * consistency (types, regions, reservations, caps, alias windows, external
 * RAM, the RAM total written beside the table) and compares it with facts
 * kept here independently of the chip files (chip_facts[]: HEAP_SIZE_MAX,
 * alias windows (kind and addresses), cache lines and alignments from chips.md;
 * type_facts[]: every type's caps at each priority; extram_facts[]: the
 * external-RAM window, heap start and maximum). boot_heaps() then carves the
 * regions with the fixed and the image reservations and coalesces them
 * exactly as spec 2.2/2.3 say, and the result must equal the chip's expected
 * boot heap list (expected_boots[], the list its file's header comment gives).
 * Every failure is printed with the chip's name and the row; the test fails
 * if there is any.
 *
 * Addresses are compared as uintptr_t: tables store addresses at and above
 * 0x80000000 as their bit pattern, which is negative in a 32-bit intptr_t.
 *
 * A new chip needs a row in chip_facts[] and in expected_boots[] (a chip
 * without them fails, on purpose): docs/adding-a-chip.md.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "capheap/chip.h"
#include "esp_heap_caps.h"

/* ------------------------------------------------------------ facts from chips.md */

typedef struct {
    const char *name;
    bool espressif;
    size_t heap_size_max;         /* chips.md 0.1; proposals: 9.4, 10.4, 11.4, 12.3, 13.2 */
    /* Alias windows, kind and [low, high) addresses: chips.md 0.2 and each chip's alias section
     * (1.5, 2.5, 3.5, 4.5; 12.1/12.2 for nRF). Kind NONE: all addresses 0. */
    capheap_alias_t diram;
    capheap_alias_t rtc;
    unsigned heap_alignment;
    unsigned cache_line_internal; /* chips.md 0.3: 0 on every ESP chip but P4 */
    unsigned cache_line_external; /* chips.md 0.3: the line a SPIRAM request aligns to; 0: no external RAM */
    unsigned simd_alignment;
    unsigned dma_desc_axi_alignment;
    unsigned dma_encrypted_alignment;
} chip_facts_t;

#define KIB ((size_t)1024)
#define MIB (1024 * KIB)

#define NO_ALIAS {CAPHEAP_ALIAS_NONE, 0, 0, 0, 0}
/* kind, dram_low, dram_high, iram_low, iram_high */
#define ALIAS(kind, dl, dh, il, ih) {CAPHEAP_ALIAS_##kind, (dl), (dh), (il), (ih)}

static const chip_facts_t chip_facts[] = {
    /* name, espressif, heap_size_max,
     *   diram, rtc,
     *   heap_alignment, cache_line_internal, cache_line_external, simd, dma_desc_axi, dma_encrypted */
    {"esp32", true, 0x400000,
     ALIAS(INVERTED, 0x3FFE0000, 0x40000000, 0x400A0000, 0x400C0000), /* 1.5 */
     ALIAS(LINEAR, 0x3FF80000, 0x3FF82000, 0x400C0000, 0x400C2000),   /* 1.5 */
     4, 0, 4 /* 1.6: what cache_hal_esp32.c returns */, 0, 0, 0},
    {"esp32s2", true, 0xA80000,
     ALIAS(LINEAR, 0x3FFB0000, 0x40000000, 0x40020000, 0x40070000), /* 2.5 */
     ALIAS(LINEAR, 0x3FF9E000, 0x3FFA0000, 0x40070000, 0x40072000), /* 2.5 */
     4, 0, 32 /* 2.6: DATA_CACHE_LINE default */, 0, 0, 0},
    {"esp32s3", true, 0x2000000,
     ALIAS(LINEAR, 0x3FC88000, 0x3FCF0000, 0x40378000, 0x403E0000), /* 3.5 */
     NO_ALIAS,
     4, 0, 32 /* 3.6: DATA_CACHE_LINE default */, 16, 0, 16},
    {"esp32c3", true, 0x64000,
     ALIAS(LINEAR, 0x3FC80000, 0x3FCE0000, 0x40380000, 0x403E0000), /* 4.5 */
     NO_ALIAS,
     4, 0, 0 /* 4.6: no PSRAM */, 0, 0, 0},
    {"esp32c6", true, 0x80000, NO_ALIAS, NO_ALIAS, 4, 0, 0 /* 5.5: no PSRAM */, 0, 0, 0},
    {"esp32h2", true, 0x50000, NO_ALIAS, NO_ALIAS, 4, 0, 0 /* 6.5: no PSRAM */, 0, 0, 0},
    {"esp32p4", true, 0x4000000, NO_ALIAS, NO_ALIAS, 4, 64, 64 /* 7.6: L2 line, 128/256 KB L2 */, 16, 8, 16},
    {"stm32h743", false, 512 * KIB, NO_ALIAS, NO_ALIAS, 8, 32, 32 /* 9.4: SDRAM 32 B */, 0, 0, 0},
    {"imxrt1062", false, 32 * MIB, NO_ALIAS, NO_ALIAS, 8, 32, 32 /* 10.2, 10.4: SDRAM 32 B */, 0, 0, 0},
    /* rp2350: chips.md gives no XIP/PSRAM line; 8 is chips/rp2350.c's stated judgement
     * (the RP2040's XIP cache line), pinned here so that a change is deliberate. */
    {"rp2350", false, 16 * MIB, NO_ALIAS, NO_ALIAS, 8, 0, 8, 0, 0, 0},
    {"nrf52840", false, 256 * KIB,
     ALIAS(LINEAR, 0x20000000, 0x20040000, 0x00800000, 0x00840000), /* 12.1: Data RAM <-> Code RAM */
     NO_ALIAS,
     8, 0, 0 /* 12.1: no cache, no external RAM */, 0, 0, 0},
    {"mpfs", false, 1024 * MIB, NO_ALIAS, NO_ALIAS, 8, 64, 64 /* 13.1: 64-B L2 block */, 0, 0, 0},
};

/* Boot heaps of the reference image, in table order (each chip file's header). */
typedef struct {
    uintptr_t start;
    size_t len;
    const char *type;
    bool startup_stack;
} heap_row_t;

#define MAX_BOOT_HEAPS 8
typedef struct {
    const char *name;
    heap_row_t heaps[MAX_BOOT_HEAPS];
} boot_list_t;

static const boot_list_t expected_boots[] = {
    {"esp32", {{0x3FFAE6E0, 0x01920, "DRAM", false}, {0x3FFB2EC8, 0x2D138, "DRAM", false},
               {0x3FFE0440, 0x03AE0, "D/IRAM", true}, {0x3FFE4350, 0x1BCB0, "D/IRAM", true},
               {0x4008944C, 0x16BB4, "IRAM", false}}},
    {"esp32s2", {{0x3FFC2ED0, 0x39130, "RAM", false}, {0x3FFFC000, 0x03A10, "RAM", true},
                 {0x3FF9E000, 0x01FE8, "RTCRAM", false}}},
    {"esp32s3", {{0x3FC9D3A8, 0x4C368, "RAM", false}, {0x3FCE9710, 0x05724, "RAM", true},
                 {0x3FCF0000, 0x08000, "DRAM", false}, {0x600FE000, 0x01FE8, "RTCRAM", false}}},
    {"esp32c3", {{0x3FC8BE70, 0x34190, "RAM", false}, {0x3FCC0000, 0x1C710, "Retention RAM", false},
                 {0x3FCDC710, 0x0294C, "Retention RAM", true}, {0x50000024, 0x01FC4, "RTCRAM", false}}},
    {"esp32c6", {{0x4080D8E0, 0x6ED30, "RAM", false}, {0x4087C610, 0x02F54, "RAM", true},
                 {0x50000000, 0x03FE8, "RTCRAM", false}}},
    {"esp32h2", {{0x4080CB60, 0x40820, "RAM", false}, {0x4084D380, 0x02B60, "RAM", true},
                 {0x50000000, 0x00FE8, "RTCRAM", false}}},
    {"esp32p4", {{0x4FF33B20, 0x874A0, "RETENT_RAM", false}, {0x4FFBAFC0, 0x04BF0, "RAM", true},
                 {0x50108080, 0x07F80, "RTCRAM", false}, {0x30100044, 0x01FBC, "SPM", false}}},
    {"stm32h743", {{0x00000400, 0x0FC00, "ITCM", false}, {0x20006000, 0x1A000, "DTCM", false},
                   {0x24000000, 0x80000, "AXI", false}, {0x30000000, 0x48000, "D2", false},
                   {0x38000000, 0x10000, "D3", false}}},
    {"imxrt1062", {{0x00000400, 0x1FC00, "ITCM", false}, {0x20008000, 0x18000, "DTCM", false},
                   {0x20200000, 0xC0000, "OCRAM", false}}},
    {"rp2350", {{0x20004000, 0x7C000, "SRAM", false}, {0x20081000, 0x01000, "SCRATCH", true}}},
    {"nrf52840", {{0x20004000, 0x3C000, "RAM", false}}},
    {"mpfs", {{0x08030000, 0x130000, "LIM", false}, {0x0A000000, 0x80000, "SCRATCH", false}}},
};

/* ------------------------------------------------------------ reporting */

static unsigned failures;
static bool quiet; /* negative tests expect failures without printing them */

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static void report_failure(const capheap_chip_t *chip, const char *fmt, ...)
{
    failures++;
    if (quiet) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    printf("chip %s: ", chip->name ? chip->name : "(unnamed)");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
}

#define CHECK(cond, chip, ...)                                                                     \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            report_failure((chip), __VA_ARGS__);                                                             \
        }                                                                                          \
    } while (0)

static unsigned long long ull(uintptr_t a)
{
    return (unsigned long long)a;
}

/* ------------------------------------------------------------ helpers */

typedef struct {
    uintptr_t start, end; /* [start, end) */
} range_t;

static uintptr_t ua(intptr_t a)
{
    return (uintptr_t)a;
}

static uint32_t all_caps(const soc_memory_type_desc_t *t)
{
    return t->caps[0] | t->caps[1] | t->caps[2];
}

static bool is_pow2_or_zero(unsigned v)
{
    return (v & (v - 1u)) == 0;
}

static bool overlaps(range_t a, range_t b)
{
    return a.start < b.end && b.start < a.end;
}

static range_t region_range(const soc_memory_region_t *r)
{
    range_t x = {ua(r->start), ua(r->start) + r->size};
    return x;
}

static bool region_is_internal(const capheap_chip_t *chip, const soc_memory_region_t *r)
{
    return r->type < chip->type_count && (all_caps(&chip->types[r->type]) & MALLOC_CAP_INTERNAL) != 0;
}

static bool region_is_extram_row(const capheap_chip_t *chip, const soc_memory_region_t *r)
{
    return r->type < chip->type_count && (all_caps(&chip->types[r->type]) & MALLOC_CAP_SPIRAM) != 0;
}

static bool inside_fixed_reservation(const capheap_chip_t *chip, range_t x)
{
    for (size_t k = 0; k < chip->reserved_count; k++) {
        if (ua(chip->reserved[k].start) <= x.start && x.end <= ua(chip->reserved[k].end)) {
            return true;
        }
    }
    return false;
}

static const chip_facts_t *facts_of(const char *name)
{
    for (size_t i = 0; i < sizeof chip_facts / sizeof chip_facts[0]; i++) {
        if (strcmp(chip_facts[i].name, name) == 0) {
            return &chip_facts[i];
        }
    }
    return NULL;
}

static const boot_list_t *boot_of(const char *name)
{
    for (size_t i = 0; i < sizeof expected_boots / sizeof expected_boots[0]; i++) {
        if (strcmp(expected_boots[i].name, name) == 0) {
            return &expected_boots[i];
        }
    }
    return NULL;
}

/* DRAM alias of an instruction address inside the D/IRAM window (chip.h). */
static uintptr_t dram_of_iram(const capheap_alias_t *a, uintptr_t i)
{
    if (a->kind == CAPHEAP_ALIAS_INVERTED) {
        return ua(a->dram_low) + (ua(a->iram_high) - i) - 4u;
    }
    return ua(a->dram_low) + (i - ua(a->iram_low)); /* linear; wraps like the linker's arithmetic */
}

/* Type tables, transcribed from chips.md (x.1 for Espressif chips in the default
 * configuration, memprot on except ESP32; 9.3, 10.3, 11.3, 12.2, 13.2 for the
 * proposals), independently of the chip files: a caps bit dropped, added or
 * moved to another priority in any type, or a type renamed, fails. */
typedef struct {
    const char *chip, *type;
    uint32_t caps[3];
} type_fact_t;

#define F_8 MALLOC_CAP_8BIT
#define F_32 MALLOC_CAP_32BIT
#define F_I MALLOC_CAP_INTERNAL
#define F_D MALLOC_CAP_DEFAULT
#define F_DMA MALLOC_CAP_DMA
#define F_X MALLOC_CAP_EXEC
#define F_COMMON (F_D | F_32 | F_8)          /* chips.md 2.1, 3.1, 7.1 */
#define F_COMMON_I (F_COMMON | F_I)          /* chips.md 4.1, 5.1, 6.1 */
#define F_BWI (F_8 | F_32 | F_I)             /* the proposals' byte/word internal RAM */
#define F_L2 (F_COMMON | F_I | F_DMA)        /* chips.md 7.1 "L2 base" */
#define F_BDMA (1u << 22)                    /* chips.md 9.3: chip-local BDMA cap (bit 22) */

static const type_fact_t type_facts[] = {
    /* 1.1 */
    {"esp32", "DRAM", {F_8 | F_D, F_I | F_DMA | F_32, 0}},
    {"esp32", "D/IRAM", {0, F_DMA | F_8 | F_I | F_D, F_32 | F_X}},
    {"esp32", "IRAM", {F_I | F_X | F_32, 0, 0}},
    {"esp32", "SPIRAM", {MALLOC_CAP_SPIRAM | F_D, 0, F_8 | F_32}},
    {"esp32", "RTCRAM", {MALLOC_CAP_RTCRAM, F_8 | F_D, F_I | F_32 | F_X}},
    /* 2.1 */
    {"esp32s2", "RAM", {F_COMMON | F_I | F_DMA, 0, 0}},
    {"esp32s2", "SPIRAM", {MALLOC_CAP_SPIRAM, 0, F_COMMON}},
    {"esp32s2", "RTCRAM", {MALLOC_CAP_RTCRAM, 0, F_COMMON | F_I}},
    /* 3.1 */
    {"esp32s3", "RAM", {F_COMMON | F_I | F_DMA | MALLOC_CAP_RETENTION | MALLOC_CAP_SIMD, 0, 0}},
    {"esp32s3", "DRAM", {0, F_COMMON | F_I | F_DMA | MALLOC_CAP_SIMD, 0}},
    {"esp32s3", "IRAM", {0, F_32 | F_I, 0}},
    {"esp32s3", "SPIRAM", {MALLOC_CAP_SPIRAM, 0, F_COMMON | MALLOC_CAP_SIMD}},
    {"esp32s3", "RTCRAM", {MALLOC_CAP_RTCRAM, 0, F_COMMON | F_I}},
    /* 4.1 */
    {"esp32c3", "RAM", {F_COMMON_I | F_DMA, 0, 0}},
    {"esp32c3", "Retention RAM", {MALLOC_CAP_RETENTION, F_COMMON_I | F_DMA, 0}},
    {"esp32c3", "RTCRAM", {MALLOC_CAP_RTCRAM, 0, F_COMMON_I}},
    /* 5.1; 6.1 "same as C6" */
    {"esp32c6", "RAM", {F_COMMON_I | F_DMA, 0, 0}},
    {"esp32c6", "RTCRAM", {MALLOC_CAP_RTCRAM, F_COMMON_I, 0}},
    {"esp32h2", "RAM", {F_COMMON_I | F_DMA, 0, 0}},
    {"esp32h2", "RTCRAM", {MALLOC_CAP_RTCRAM, F_COMMON_I, 0}},
    /* 7.1 */
    {"esp32p4", "RETENT_RAM", {MALLOC_CAP_RETENTION | MALLOC_CAP_SIMD, F_L2, 0}},
    {"esp32p4", "RAM", {F_L2 | MALLOC_CAP_SIMD, 0, 0}},
    {"esp32p4", "SPIRAM", {MALLOC_CAP_SPIRAM, 0, F_COMMON | MALLOC_CAP_SIMD}},
    {"esp32p4", "SPM", {MALLOC_CAP_SPM, 0, F_COMMON | F_I}},
    {"esp32p4", "RTCRAM", {MALLOC_CAP_RTCRAM, 0, F_COMMON | F_I}},
    /* 9.3 */
    {"stm32h743", "DTCM", {MALLOC_CAP_SPM | F_BWI | F_D, 0, 0}},
    {"stm32h743", "AXI", {0, F_BWI | F_D | F_DMA, F_X}},
    {"stm32h743", "D2", {F_DMA, F_BWI, F_D | F_X}},
    {"stm32h743", "D3", {F_BDMA, F_DMA | F_BWI, F_D}},
    {"stm32h743", "BKPSRAM", {MALLOC_CAP_RTCRAM, 0, F_BWI}},
    {"stm32h743", "ITCM", {MALLOC_CAP_SPM | F_X, F_32 | F_I, F_8}},
    {"stm32h743", "SDRAM", {MALLOC_CAP_SPIRAM | F_D, 0, F_8 | F_32}},
    /* 10.3 */
    {"imxrt1062", "OCRAM", {F_BWI | F_D, F_DMA, F_X}},
    {"imxrt1062", "DTCM", {MALLOC_CAP_SPM | F_DMA, F_BWI | F_D, 0}},
    {"imxrt1062", "ITCM", {MALLOC_CAP_SPM | F_X, F_32 | F_I, F_8}},
    {"imxrt1062", "SDRAM", {MALLOC_CAP_SPIRAM | F_D, 0, F_8 | F_32}},
    /* 11.3 */
    {"rp2350", "SRAM", {F_BWI | F_D | F_DMA, 0, F_X}},
    {"rp2350", "SCRATCH", {MALLOC_CAP_SPM, F_BWI | F_DMA, 0}},
    {"rp2350", "XIP_SRAM", {MALLOC_CAP_SPM, F_BWI, 0}},
    {"rp2350", "PSRAM", {MALLOC_CAP_SPIRAM | F_D, 0, F_8 | F_32}},
    /* 12.2 */
    {"nrf52840", "RAM", {F_BWI | F_D | F_DMA, 0, F_X}},
    /* 13.2 */
    {"mpfs", "LIM", {F_BWI | F_D, F_DMA, F_X}},
    {"mpfs", "SCRATCH", {MALLOC_CAP_SPM, F_BWI | F_D, F_X}},
    {"mpfs", "DTIM", {MALLOC_CAP_SPM, F_BWI, 0}},
    {"mpfs", "ITIM", {MALLOC_CAP_SPM | F_X, F_32 | F_I, 0}},
    {"mpfs", "DDR", {MALLOC_CAP_SPIRAM | F_D, 0, F_8 | F_32 | F_X}},
};

/* External RAM windows: chips.md 1.7, 2.7, 3.7, 7.7, 10.1, 11.1, 13.1 (window;
 * heap_start where a log or 0.4 gives it, else the window start, as each chip
 * file states; max_size the window, except where the file says otherwise).
 * A chip without a row has no external RAM. */
typedef struct {
    const char *chip;
    uintptr_t window_start;
    size_t window_size;
    uintptr_t heap_start;
    size_t max_size;
} extram_fact_t;

static const extram_fact_t extram_facts[] = {
    {"esp32", 0x3F800000, 0x400000, 0x3F800000 /* 0.4: the mapping starts there */, 0x400000},
    {"esp32s2", 0x3F500000, 0xA80000, 0x3F500000, 0xA80000},
    {"esp32s3", 0x3C000000, 0x2000000, 0x3C110000 /* 3.7: public log */, 0x2000000},
    {"esp32p4", 0x48000000, 0x4000000, 0x48000000, 0x4000000},
    {"imxrt1062", 0x80000000u, 32 * MIB, 0x80000000u, 32 * MIB}, /* EVK SDRAM */
    {"rp2350", 0x11000000, 16 * MIB, 0x11000000, 16 * MIB},      /* 16 MiB inferred */
    {"mpfs", 0x80000000u, 1024 * MIB, 0x80000000u, 1024 * MIB},  /* window length: the file's judgement */
};

static void check_type_facts(const capheap_chip_t *chip)
{
    size_t rows = 0;
    for (size_t k = 0; k < sizeof type_facts / sizeof type_facts[0]; k++) {
        const type_fact_t *f = &type_facts[k];
        if (strcmp(f->chip, chip->name) != 0) {
            continue;
        }
        rows++;
        const soc_memory_type_desc_t *t = NULL;
        for (size_t i = 0; chip->types != NULL && i < chip->type_count && t == NULL; i++) {
            if (chip->types[i].name != NULL && strcmp(chip->types[i].name, f->type) == 0) {
                t = &chip->types[i];
            }
        }
        CHECK(t != NULL, chip, "type %s (chips.md) missing", f->type);
        for (int p = 0; t != NULL && p < 3; p++) {
            CHECK(t->caps[p] == f->caps[p], chip, "type %s prio %d: caps %#x, chips.md says %#x", f->type, p,
                  (unsigned)t->caps[p], (unsigned)f->caps[p]);
        }
    }
    CHECK(rows == chip->type_count, chip, "%zu types, type_facts[] (tests/caps/test_chips.c) has %zu",
          chip->type_count, rows);
}

static void check_extram_facts(const capheap_chip_t *chip)
{
    const capheap_extram_t *x = &chip->extram;
    const extram_fact_t *f = NULL;
    for (size_t k = 0; k < sizeof extram_facts / sizeof extram_facts[0]; k++) {
        if (strcmp(extram_facts[k].chip, chip->name) == 0) {
            f = &extram_facts[k];
        }
    }
    if (f == NULL) {
        CHECK(x->window_start == 0, chip, "extram: a window, but chips.md gives the chip no external RAM");
        return;
    }
    CHECK(ua(x->window_start) == f->window_start && x->window_size == f->window_size &&
              ua(x->heap_start) == f->heap_start && x->max_size == f->max_size,
          chip, "extram window %#llx+%#zx heap %#llx max %#zx, facts say %#llx+%#zx heap %#llx max %#zx",
          ull(ua(x->window_start)), x->window_size, ull(ua(x->heap_start)), x->max_size, ull(f->window_start),
          f->window_size, ull(f->heap_start), f->max_size);
}

/* ------------------------------------------------------------ the boot model (spec 2.2, 2.3) */

#define MAX_RES 32
#define MAX_PIECES 128

typedef struct {
    range_t r;
    size_t type;
    bool startup_stack;
} piece_t;

/* The image's reservations, as the simulator computes them (chip.h). */
static size_t image_reservations(const capheap_chip_t *chip, range_t *out)
{
    const capheap_image_t *im = &chip->image;
    size_t n = 0;
    uintptr_t text_end = ua(im->iram_text_start) + im->iram_text_size;
    uintptr_t data_start = ua(im->data_start);
    if (im->iram_text_size > 0) {
        range_t text = {ua(im->iram_text_start), text_end};
        out[n++] = text;
        range_t window = {ua(chip->diram.iram_low), ua(chip->diram.iram_high)};
        if (chip->diram.kind != CAPHEAP_ALIAS_NONE && overlaps(text, window)) {
            /* The whole range is translated, as ESP-IDF's (_iram_start - offset):
             * on S3 the text starts 16 KB below the window. (The simulator,
             * sim/boot.c, clips the text to the window first; no S3 region lies
             * below the window's DRAM side, so both give the same heaps.) */
            range_t alias;
            if (chip->diram.kind == CAPHEAP_ALIAS_INVERTED) {
                alias.start = dram_of_iram(&chip->diram, text.end - 4u);
                alias.end = dram_of_iram(&chip->diram, text.start) + 4u;
            } else {
                alias.start = dram_of_iram(&chip->diram, text.start);
                alias.end = dram_of_iram(&chip->diram, text.end);
            }
            out[n++] = alias;
        }
    }
    if (data_start == 0) {
        data_start = chip->diram.kind == CAPHEAP_ALIAS_NONE ? text_end : dram_of_iram(&chip->diram, text_end);
    }
    if (im->data_size > 0) {
        range_t data = {data_start, data_start + im->data_size};
        out[n++] = data;
    }
    if (im->rtc_data_size > 0) {
        range_t rtc = {ua(im->rtc_data_start), ua(im->rtc_data_start) + im->rtc_data_size};
        out[n++] = rtc;
    }
    return n;
}

/* All reservations, rounded to 4 and sorted; reports overlaps (ESP-IDF aborts). */
static size_t all_reservations(const capheap_chip_t *chip, range_t *res)
{
    size_t n = 0;
    for (size_t k = 0; k < chip->reserved_count && n < MAX_RES; k++) {
        range_t x = {ua(chip->reserved[k].start), ua(chip->reserved[k].end)};
        res[n++] = x;
    }
    range_t img[4];
    size_t ni = image_reservations(chip, img);
    for (size_t k = 0; k < ni && n < MAX_RES; k++) {
        res[n++] = img[k];
    }
    for (size_t k = 0; k < n; k++) {
        res[k].start &= ~(uintptr_t)3;
        res[k].end = (res[k].end + 3u) & ~(uintptr_t)3;
    }
    for (size_t i = 1; i < n; i++) { /* insertion sort by start */
        range_t x = res[i];
        size_t j = i;
        while (j > 0 && res[j - 1].start > x.start) {
            res[j] = res[j - 1];
            j--;
        }
        res[j] = x;
    }
    for (size_t k = 1; k < n; k++) {
        CHECK(res[k].start >= res[k - 1].end, chip,
              "reservations %#llx..%#llx and %#llx..%#llx overlap (fixed or image; ESP-IDF aborts)",
              ull(res[k - 1].start), ull(res[k - 1].end), ull(res[k].start), ull(res[k].end));
    }
    return n;
}

/* Regions minus reservations (spec 2.2), then coalesced (spec 2.3 step 3). */
static size_t boot_heaps(const capheap_chip_t *chip, piece_t *out)
{
    range_t res[MAX_RES];
    size_t nres = all_reservations(chip, res);
    size_t n = 0;
    for (size_t i = 0; i < chip->region_count; i++) {
        const soc_memory_region_t *reg = &chip->regions[i];
        range_t cur = region_range(reg);
        for (size_t k = 0; k < nres && cur.start < cur.end; k++) {
            range_t r = res[k];
            if (r.end <= cur.start) {
                continue;
            }
            if (r.start >= cur.end) {
                break;
            }
            if (r.start > cur.start && r.end < cur.end) { /* hole punch */
                if (n < MAX_PIECES) {
                    piece_t p = {{cur.start, r.start}, reg->type, reg->startup_stack};
                    out[n++] = p;
                }
                cur.start = r.end;
            } else if (r.start <= cur.start) {
                cur.start = r.end < cur.end ? r.end : cur.end;
            } else {
                cur.end = r.start;
            }
        }
        if (cur.start < cur.end && n < MAX_PIECES) {
            piece_t p = {cur, reg->type, reg->startup_stack};
            out[n++] = p;
        }
    }
    size_t kept = 0; /* drop pieces of 16 bytes or less */
    for (size_t i = 0; i < n; i++) {
        if (out[i].r.end - out[i].r.start > 16) {
            out[kept++] = out[i];
        }
    }
    size_t m = 0; /* coalesce consecutive pieces */
    for (size_t i = 0; i < kept; i++) {
        if (m > 0 && out[m - 1].r.end == out[i].r.start && out[m - 1].type == out[i].type &&
            out[m - 1].startup_stack == out[i].startup_stack) {
            out[m - 1].r.end = out[i].r.end;
        } else {
            out[m++] = out[i];
        }
    }
    return m;
}

/* ------------------------------------------------------------ the checks */

static void check_types(const capheap_chip_t *chip, const chip_facts_t *f)
{
    const uint32_t virtual_caps =
        MALLOC_CAP_DMA_DESC_AHB | MALLOC_CAP_DMA_DESC_AXI | MALLOC_CAP_CACHE_ALIGNED | MALLOC_CAP_INVALID;
    CHECK(chip->types != NULL && chip->type_count > 0, chip, "no types");
    for (size_t t = 0; chip->types != NULL && t < chip->type_count; t++) {
        const soc_memory_type_desc_t *ty = &chip->types[t];
        uint32_t all = all_caps(ty);
        CHECK(ty->name != NULL && ty->name[0] != '\0', chip, "type[%zu] has no name", t);
        const char *tn = ty->name ? ty->name : "?";
        CHECK((all & virtual_caps) == 0, chip, "type[%zu] %s carries a virtual cap (%#x)", t, tn,
              (unsigned)(all & virtual_caps));
        CHECK((ty->caps[0] & ty->caps[1]) == 0 && (ty->caps[0] & ty->caps[2]) == 0 &&
                  (ty->caps[1] & ty->caps[2]) == 0,
              chip, "type[%zu] %s lists a cap at two priorities", t, tn);
        if (all & MALLOC_CAP_DMA) {
            CHECK(all & (MALLOC_CAP_INTERNAL | MALLOC_CAP_8BIT), chip,
                  "type[%zu] %s: DMA without INTERNAL or 8BIT", t, tn);
        }
        if (all & MALLOC_CAP_SPIRAM) {
            CHECK(!(all & MALLOC_CAP_INTERNAL), chip, "type[%zu] %s: SPIRAM and INTERNAL", t, tn);
        }
        if (all & MALLOC_CAP_DEFAULT) {
            CHECK(all & MALLOC_CAP_8BIT, chip, "type[%zu] %s: DEFAULT memory must be byte addressable", t, tn);
        }
        if (all & MALLOC_CAP_RTCRAM) {
            CHECK(!(ty->caps[0] & MALLOC_CAP_DEFAULT), chip,
                  "type[%zu] %s: RTC memory must not serve malloc at prio 0", t, tn);
        }
        if ((all & MALLOC_CAP_SIMD) && (all & MALLOC_CAP_INTERNAL)) {
            CHECK(chip->simd_alignment != 0, chip, "type[%zu] %s: SIMD but no simd_alignment", t, tn);
        }
        if (f != NULL && f->espressif) {
            /* chips.md: memory protection (default on every chip but ESP32) removes EXEC */
            bool esp32 = strcmp(chip->name, "esp32") == 0;
            bool want_exec = esp32 && (strcmp(tn, "D/IRAM") == 0 || strcmp(tn, "IRAM") == 0 ||
                                       strcmp(tn, "RTCRAM") == 0);
            CHECK(((all & MALLOC_CAP_EXEC) != 0) == want_exec, chip, "type[%zu] %s: EXEC %s", t, tn,
                  want_exec ? "missing (ESP32 has EXEC heaps)" : "present, but memprot is on by default");
        }
    }
}

static void check_regions(const capheap_chip_t *chip)
{
    CHECK(chip->regions != NULL && chip->region_count > 0, chip, "no regions");
    size_t internal = 0;
    for (size_t i = 0; chip->regions != NULL && i < chip->region_count; i++) {
        const soc_memory_region_t *r = &chip->regions[i];
        range_t x = region_range(r);
        CHECK(r->type < chip->type_count, chip, "region[%zu] at %#llx: type index %zu out of range", i,
              ull(x.start), r->type);
        if (r->type >= chip->type_count) {
            continue;
        }
        const soc_memory_type_desc_t *ty = &chip->types[r->type];
        CHECK(all_caps(ty) != 0, chip, "region[%zu] at %#llx: type %s has no caps at any priority", i,
              ull(x.start), ty->name);
        CHECK(r->size > 0 && x.end > x.start, chip, "region[%zu] at %#llx: empty or wraps", i, ull(x.start));
        CHECK((x.start & 3u) == 0 && (r->size & 3u) == 0, chip, "region[%zu] at %#llx: not 4-aligned", i,
              ull(x.start));
        if (region_is_internal(chip, r)) {
            internal += r->size;
        }
        if (r->startup_stack) {
            CHECK(region_is_internal(chip, r), chip, "region[%zu] at %#llx: startup stack outside internal RAM",
                  i, ull(x.start));
        }
        /* iram_address matches the alias rule where the row lies in an alias window */
        const capheap_alias_t *windows[2] = {&chip->diram, &chip->rtc};
        bool in_window = false;
        for (int w = 0; w < 2; w++) {
            const capheap_alias_t *a = windows[w];
            if (a->kind == CAPHEAP_ALIAS_NONE || x.start < ua(a->dram_low) || x.end > ua(a->dram_high)) {
                continue;
            }
            in_window = true;
            /* linear: the alias of the first word; inverted: of the last word */
            uintptr_t want = a->kind == CAPHEAP_ALIAS_INVERTED ? ua(a->iram_low) + (ua(a->dram_high) - x.end)
                                                               : ua(a->iram_low) + (x.start - ua(a->dram_low));
            CHECK(ua(r->iram_address) == want, chip, "region[%zu] at %#llx: iram_address %#llx, alias rule gives %#llx",
                  i, ull(x.start), ull(ua(r->iram_address)), ull(want));
        }
        if (!in_window) {
            CHECK(r->iram_address == 0 || r->iram_address == r->start, chip,
                  "region[%zu] at %#llx: iram_address %#llx outside every alias window", i, ull(x.start),
                  ull(ua(r->iram_address)));
        }
        for (size_t j = 0; j < i; j++) {
            range_t y = region_range(&chip->regions[j]);
            if (!overlaps(x, y)) {
                continue;
            }
            /* The one documented exception: a row inside the external-RAM window
             * row (S3's 16-KB-D-cache DRAM row at 0x3C000000), which the window
             * reservation covers. */
            const soc_memory_region_t *ext = region_is_extram_row(chip, r) ? r : &chip->regions[j];
            const soc_memory_region_t *other = ext == r ? &chip->regions[j] : r;
            range_t e = region_range(ext), o = region_range(other);
            bool allowed = region_is_extram_row(chip, ext) && !region_is_extram_row(chip, other) &&
                           o.start >= e.start && o.end <= e.end && inside_fixed_reservation(chip, o);
            CHECK(allowed, chip, "region[%zu] %#llx..%#llx overlaps region[%zu] %#llx..%#llx", i, ull(x.start),
                  ull(x.end), j, ull(y.start), ull(y.end));
        }
    }
    CHECK(internal == chip->internal_ram_bytes, chip,
          "internal regions add up to %zu bytes, internal_ram_bytes (facts figure) says %zu", internal,
          chip->internal_ram_bytes);
}

static void check_reservations(const capheap_chip_t *chip)
{
    CHECK(chip->reserved_count == 0 || chip->reserved != NULL, chip, "reserved_count without a table");
    for (size_t k = 0; chip->reserved != NULL && k < chip->reserved_count; k++) {
        range_t r = {ua(chip->reserved[k].start), ua(chip->reserved[k].end)};
        CHECK(r.start < r.end, chip, "reserved[%zu] %#llx..%#llx: start >= end", k, ull(r.start), ull(r.end));
        CHECK(k == 0 || r.start >= ua(chip->reserved[k - 1].end), chip,
              "reserved[%zu] at %#llx: not sorted / overlaps reserved[%zu]", k, ull(r.start), k - 1);
        bool touches = false;
        for (size_t i = 0; i < chip->region_count; i++) {
            touches = touches || overlaps(r, region_range(&chip->regions[i]));
        }
        CHECK(touches, chip, "reserved[%zu] %#llx..%#llx touches no region", k, ull(r.start), ull(r.end));
    }
}

static void check_alias(const capheap_chip_t *chip, const char *which, const capheap_alias_t *a,
                        const capheap_alias_t *want)
{
    CHECK(a->kind == want->kind, chip, "%s alias kind %d, chips.md says %d", which, (int)a->kind, (int)want->kind);
    CHECK(ua(a->dram_low) == ua(want->dram_low) && ua(a->dram_high) == ua(want->dram_high) &&
              ua(a->iram_low) == ua(want->iram_low) && ua(a->iram_high) == ua(want->iram_high),
          chip, "%s alias window DRAM %#llx..%#llx IRAM %#llx..%#llx, chips.md says DRAM %#llx..%#llx IRAM %#llx..%#llx",
          which, ull(ua(a->dram_low)), ull(ua(a->dram_high)), ull(ua(a->iram_low)), ull(ua(a->iram_high)),
          ull(ua(want->dram_low)), ull(ua(want->dram_high)), ull(ua(want->iram_low)), ull(ua(want->iram_high)));
    if (a->kind == CAPHEAP_ALIAS_NONE) {
        CHECK(a->dram_low == 0 && a->dram_high == 0 && a->iram_low == 0 && a->iram_high == 0, chip,
              "%s alias: kind NONE with a window", which);
        return;
    }
    CHECK(ua(a->dram_high) > ua(a->dram_low) && ua(a->iram_high) > ua(a->iram_low), chip, "%s alias: empty window",
          which);
    CHECK(ua(a->dram_high) - ua(a->dram_low) == ua(a->iram_high) - ua(a->iram_low), chip,
          "%s alias: DRAM range %#llx..%#llx and IRAM range %#llx..%#llx differ in length", which,
          ull(ua(a->dram_low)), ull(ua(a->dram_high)), ull(ua(a->iram_low)), ull(ua(a->iram_high)));
    CHECK(((ua(a->dram_low) | ua(a->dram_high) | ua(a->iram_low) | ua(a->iram_high)) & 3u) == 0, chip,
          "%s alias: window not 4-aligned", which);
    range_t d = {ua(a->dram_low), ua(a->dram_high)}, i = {ua(a->iram_low), ua(a->iram_high)};
    CHECK(!overlaps(d, i), chip, "%s alias: DRAM and IRAM ranges overlap", which);
}

static void check_extram(const capheap_chip_t *chip, const chip_facts_t *f)
{
    const capheap_extram_t *x = &chip->extram;
    size_t rows = 0;
    const soc_memory_region_t *row = NULL;
    for (size_t i = 0; i < chip->region_count; i++) {
        if (region_is_extram_row(chip, &chip->regions[i])) {
            rows++;
            row = &chip->regions[i];
        }
    }
    CHECK(rows <= 1, chip, "%zu external-RAM rows", rows);
    if (x->window_start == 0) {
        CHECK(x->window_size == 0 && x->heap_start == 0 && x->max_size == 0 && x->caps[0] == 0 &&
                  x->caps[1] == 0 && x->caps[2] == 0,
              chip, "extram: no window but other fields set");
        CHECK(rows == 0, chip, "extram: SPIRAM row but no window");
        CHECK(chip->cache_line_external == 0 || !f || !f->espressif, chip,
              "extram: external cache line without external RAM");
        return;
    }
    range_t w = {ua(x->window_start), ua(x->window_start) + x->window_size};
    CHECK(x->window_size > 0 && w.end > w.start, chip, "extram: empty or wrapping window");
    CHECK(ua(x->heap_start) >= w.start && ua(x->heap_start) < w.end, chip, "extram: heap_start %#llx outside the window",
          ull(ua(x->heap_start)));
    CHECK(x->max_size > 0 && x->max_size <= x->window_size, chip, "extram: max_size %zu not in (0, window]",
          x->max_size);
    CHECK(x->max_size <= chip->heap_size_max, chip, "extram: max_size above heap_size_max");
    uint32_t all = x->caps[0] | x->caps[1] | x->caps[2];
    CHECK((all & MALLOC_CAP_SPIRAM) && !(all & MALLOC_CAP_INTERNAL) && (all & MALLOC_CAP_8BIT), chip,
          "extram: caps must be SPIRAM, 8BIT, never INTERNAL");
    if (f != NULL && f->espressif) { /* chips.md 0.4 */
        CHECK(x->caps[0] == (MALLOC_CAP_SPIRAM | MALLOC_CAP_DEFAULT) && x->caps[1] == 0 &&
                  x->caps[2] == (MALLOC_CAP_8BIT | MALLOC_CAP_32BIT | MALLOC_CAP_SIMD),
              chip, "extram: caps differ from chips.md 0.4 {SPIRAM|DEFAULT, 0, 8BIT|32BIT|SIMD}");
        CHECK(row != NULL, chip, "extram: Espressif chip without its SPIRAM row");
    }
    if (row != NULL) {
        range_t r = region_range(row);
        CHECK(r.start == w.start && r.end == w.end, chip, "extram: SPIRAM row %#llx..%#llx differs from the window",
              ull(r.start), ull(r.end));
        CHECK(inside_fixed_reservation(chip, r), chip, "extram: SPIRAM row %#llx not fully reserved", ull(r.start));
    }
    for (size_t i = 0; i < chip->region_count; i++) {
        const soc_memory_region_t *r = &chip->regions[i];
        if (r != row && overlaps(w, region_range(r))) {
            CHECK(inside_fixed_reservation(chip, region_range(r)), chip,
                  "extram: window overlaps region[%zu] at %#llx", i, ull(ua(r->start)));
        }
    }
}

static void check_params(const capheap_chip_t *chip, const chip_facts_t *f)
{
    CHECK(chip->heap_size_max == f->heap_size_max, chip, "heap_size_max %#zx, chips.md says %#zx",
          chip->heap_size_max, f->heap_size_max);
    CHECK(chip->heap_alignment == f->heap_alignment, chip, "heap_alignment %u, expected %u",
          (unsigned)chip->heap_alignment, f->heap_alignment);
    CHECK(chip->cache_line_internal == f->cache_line_internal, chip, "cache_line_internal %u, expected %u",
          (unsigned)chip->cache_line_internal, f->cache_line_internal);
    CHECK(chip->cache_line_external == f->cache_line_external, chip, "cache_line_external %u, expected %u",
          (unsigned)chip->cache_line_external, f->cache_line_external);
    CHECK(chip->simd_alignment == f->simd_alignment, chip, "simd_alignment %u, expected %u",
          (unsigned)chip->simd_alignment, f->simd_alignment);
    CHECK(chip->dma_desc_axi_alignment == f->dma_desc_axi_alignment, chip, "dma_desc_axi_alignment %u, expected %u",
          (unsigned)chip->dma_desc_axi_alignment, f->dma_desc_axi_alignment);
    CHECK(chip->dma_encrypted_alignment == f->dma_encrypted_alignment, chip,
          "dma_encrypted_alignment %u, expected %u", (unsigned)chip->dma_encrypted_alignment,
          f->dma_encrypted_alignment);
    CHECK(is_pow2_or_zero(chip->cache_line_internal) && is_pow2_or_zero(chip->cache_line_external) &&
              is_pow2_or_zero(chip->simd_alignment) && is_pow2_or_zero(chip->dma_desc_axi_alignment) &&
              is_pow2_or_zero(chip->dma_encrypted_alignment),
          chip, "an alignment is not a power of two");
    check_alias(chip, "diram", &chip->diram, &f->diram);
    check_alias(chip, "rtc", &chip->rtc, &f->rtc);
}

static void check_boot(const capheap_chip_t *chip, const boot_list_t *want)
{
    piece_t got[MAX_PIECES];
    size_t n = boot_heaps(chip, got);
    size_t nwant = 0;
    while (nwant < MAX_BOOT_HEAPS && want->heaps[nwant].type != NULL) {
        nwant++;
    }
    CHECK(n == nwant, chip, "boot: %zu heaps, the chip file's list has %zu", n, nwant);
    for (size_t i = 0; i < n && i < nwant; i++) {
        const heap_row_t *w = &want->heaps[i];
        const char *tn = got[i].type < chip->type_count ? chip->types[got[i].type].name : "?";
        size_t len = (size_t)(got[i].r.end - got[i].r.start);
        CHECK(got[i].r.start == w->start && len == w->len && strcmp(tn, w->type) == 0 &&
                  got[i].startup_stack == w->startup_stack,
              chip, "boot heap %zu: got %#llx len %#zx %s%s, expected %#llx len %#zx %s%s", i, ull(got[i].r.start),
              len, tn, got[i].startup_stack ? " (S)" : "", ull(w->start), w->len, w->type,
              w->startup_stack ? " (S)" : "");
        CHECK(len <= chip->heap_size_max, chip, "boot heap %zu at %#llx: larger than heap_size_max", i,
              ull(got[i].r.start));
    }
}

static unsigned check_chip(const capheap_chip_t *chip)
{
    unsigned before = failures;
    CHECK(chip->name != NULL && chip->title != NULL, chip, "name or title missing");
    if (chip->name == NULL) {
        return failures - before;
    }
    for (const char *p = chip->name; *p; p++) {
        CHECK(!(*p >= 'A' && *p <= 'Z'), chip, "name is not lower case");
    }
    const chip_facts_t *f = facts_of(chip->name);
    CHECK(f != NULL, chip, "no row in chip_facts[] (tests/caps/test_chips.c)");
    check_types(chip, f);
    check_regions(chip);
    check_reservations(chip);
    if (f != NULL) {
        check_params(chip, f);
    }
    check_extram(chip, f);
    check_type_facts(chip);
    check_extram_facts(chip);
    const boot_list_t *b = boot_of(chip->name);
    CHECK(b != NULL, chip, "no row in expected_boots[] (tests/caps/test_chips.c)");
    if (b != NULL) {
        check_boot(chip, b);
    }
    return failures - before;
}

/* ------------------------------------------------------------ tests */

static void test_every_chip(void **state)
{
    (void)state;
    failures = 0;
    quiet = false;
    assert_true(capheap_chip_count >= 12);
    for (size_t i = 0; i < capheap_chip_count; i++) {
        const capheap_chip_t *chip = capheap_chips[i];
        assert_non_null(chip);
        unsigned n = check_chip(chip);
        printf("%-10s %2zu types %2zu regions %2zu reserved: %s\n", chip->name, chip->type_count,
               chip->region_count, chip->reserved_count, n == 0 ? "ok" : "FAILED");
        for (size_t j = 0; j < i; j++) {
            if (strcmp(capheap_chips[j]->name, chip->name) == 0) {
                report_failure(chip, "registered twice");
            }
        }
    }
    assert_int_equal(failures, 0);
}

static void test_every_fact_row_is_registered(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof chip_facts / sizeof chip_facts[0]; i++) {
        assert_non_null(capheap_chip_find(chip_facts[i].name));
    }
    for (size_t i = 0; i < sizeof expected_boots / sizeof expected_boots[0]; i++) {
        assert_non_null(capheap_chip_find(expected_boots[i].name));
    }
    for (size_t i = 0; i < sizeof type_facts / sizeof type_facts[0]; i++) {
        assert_non_null(capheap_chip_find(type_facts[i].chip));
    }
    for (size_t i = 0; i < sizeof extram_facts / sizeof extram_facts[0]; i++) {
        assert_non_null(capheap_chip_find(extram_facts[i].chip));
    }
}

static void test_find(void **state)
{
    (void)state;
    assert_ptr_equal(capheap_chip_find("esp32s3"), &capheap_chip_esp32s3);
    assert_null(capheap_chip_find("ESP32-S3")); /* the registry key has no dash */
    assert_ptr_equal(capheap_chip_find("ESP32S3"), &capheap_chip_esp32s3);
    assert_ptr_equal(capheap_chip_find("Esp32"), &capheap_chip_esp32);
    assert_ptr_equal(capheap_chip_find("STM32H743"), &capheap_chip_stm32h743);
    assert_ptr_equal(capheap_chip_find("mpfs"), &capheap_chip_mpfs);
    assert_null(capheap_chip_find(NULL));
    assert_null(capheap_chip_find(""));
    assert_null(capheap_chip_find("esp32s"));   /* prefix of a name */
    assert_null(capheap_chip_find("esp32s33")); /* a name is a prefix of it */
    assert_null(capheap_chip_find("esp8266"));
    for (size_t i = 0; i < capheap_chip_count; i++) {
        assert_ptr_equal(capheap_chip_find(capheap_chips[i]->name), capheap_chips[i]);
    }
}

/* The narrow overlap exception: S3 with the 16 KB D-cache has a DRAM row at
 * 0x3C000000 inside the PSRAM window row, covered by its reservation. */
static void test_extram_overlap_exception(void **state)
{
    (void)state;
    const capheap_chip_t *s3 = &capheap_chip_esp32s3;
    soc_memory_region_t regions[32];
    assert_true(s3->region_count < 32);
    memcpy(regions, s3->regions, s3->region_count * sizeof regions[0]);
    size_t dram = 0, n = s3->region_count;
    while (strcmp(s3->types[dram].name, "DRAM") != 0) {
        dram++;
    }
    soc_memory_region_t extra = {0x3C000000, 0x4000, dram, 0, false};
    regions[n++] = extra;
    capheap_chip_t variant = *s3;
    variant.regions = regions;
    variant.region_count = n;
    variant.internal_ram_bytes += extra.size; /* backed by the unused half of the D-cache */
    quiet = true;
    failures = 0;
    check_regions(&variant);
    check_extram(&variant, facts_of("esp32s3"));
    assert_int_equal(failures, 0);

    /* Outside the reserved window the same overlap is an error. */
    variant.reserved_count = 0;
    failures = 0;
    check_regions(&variant);
    assert_true(failures > 0);
    quiet = false;
}

/* The checker catches broken tables (it would be worthless otherwise). */
static void test_checker_catches_errors(void **state)
{
    (void)state;
    const capheap_chip_t *base = &capheap_chip_esp32c3;
    soc_memory_region_t regions[16];
    soc_reserved_region_t reserved[8];
    memcpy(regions, base->regions, base->region_count * sizeof regions[0]);
    memcpy(reserved, base->reserved, base->reserved_count * sizeof reserved[0]);
    capheap_chip_t bad = *base;
    bad.regions = regions;
    bad.reserved = reserved;
    quiet = true;

    regions[1].start += 0x100; /* overlaps region 2, breaks the alias and the boot list */
    assert_true(check_chip(&bad) > 0);
    memcpy(regions, base->regions, base->region_count * sizeof regions[0]);

    regions[0].type = 99; /* type index out of range */
    assert_true(check_chip(&bad) > 0);
    memcpy(regions, base->regions, base->region_count * sizeof regions[0]);

    reserved[0].end = reserved[0].start - 4; /* start > end */
    assert_true(check_chip(&bad) > 0);
    memcpy(reserved, base->reserved, base->reserved_count * sizeof reserved[0]);

    bad.internal_ram_bytes += 4;
    assert_true(check_chip(&bad) > 0);
    bad.internal_ram_bytes = base->internal_ram_bytes;

    bad.image.data_size += 0x1000; /* the boot list moves */
    assert_true(check_chip(&bad) > 0);
    bad.image = base->image;

    bad.diram.iram_low += 0x1000; /* the alias window moves (and its lengths differ) */
    assert_true(check_chip(&bad) > 0);
    bad.diram = base->diram;

    bad.diram.dram_low += 0x10000; /* both sides moved together: lengths equal, addresses wrong */
    bad.diram.dram_high += 0x10000;
    bad.diram.iram_low += 0x10000;
    bad.diram.iram_high += 0x10000;
    failures = 0;
    check_params(&bad, facts_of(bad.name));
    assert_true(failures > 0);
    bad.diram = base->diram;

    /* One caps bit of one type (C3's Retention RAM loses DMA at prio 1), then
     * the same bit moved to another priority: the type facts catch both. */
    soc_memory_type_desc_t types[8];
    memcpy(types, base->types, base->type_count * sizeof types[0]);
    bad.types = types;
    types[1].caps[1] &= ~MALLOC_CAP_DMA;
    assert_true(check_chip(&bad) > 0);
    types[1].caps[2] |= MALLOC_CAP_DMA;
    assert_true(check_chip(&bad) > 0);
    bad.types = base->types;

    assert_int_equal(check_chip(&bad), 0); /* restored: clean again */

    /* External RAM against its facts: heap start and max size. */
    capheap_chip_t ext = capheap_chip_esp32s3;
    ext.extram.max_size /= 2;
    assert_true(check_chip(&ext) > 0);
    ext = capheap_chip_esp32s3;
    ext.extram.heap_start -= 0x10000;
    assert_true(check_chip(&ext) > 0);

    /* The S3's external line, 32 -> 64: a power of two that nothing else checks. */
    capheap_chip_t s3 = capheap_chip_esp32s3;
    assert_int_equal(check_chip(&s3), 0);
    s3.cache_line_external = 64;
    assert_true(check_chip(&s3) > 0);
    quiet = false;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_chip),
        cmocka_unit_test(test_every_fact_row_is_registered),
        cmocka_unit_test(test_find),
        cmocka_unit_test(test_extram_overlap_exception),
        cmocka_unit_test(test_checker_catches_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
