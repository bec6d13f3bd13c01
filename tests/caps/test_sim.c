/*
 * tests/caps/test_sim.c - the host simulator (capheap/sim.h), end to end.
 *
 * Boots chips on the host and checks what a firmware would see: the heap list
 * of ESP-IDF's reference ESP32-S3 measurement (chips.md, top), the free-size
 * figures within 1 %, the boot log and heap_caps_print_heap_info(), the D/IRAM
 * alias (one physical word at two addresses), EXEC blocks on ESP32's inverted
 * alias, PSRAM and the malloc policy, the offset path
 * (CAPHEAP_SIM_FORCE_OFFSET=1), the error codes (with the refusal of IRAM text
 * on chips whose image has none, and failures after the boot log), and every
 * built-in chip.
 * Addresses are compared as chip addresses: host address - capheap_sim_offset().
 */
#define _GNU_SOURCE /* MAP_FIXED_NOREPLACE */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "capheap/caps.h"
#include "capheap/chip.h"
#include "capheap/heap.h"
#include "capheap/sim.h"
#include "esp_heap_caps.h"
#include "esp_heap_caps_init.h"
#include "soc/soc_memory_layout.h" /* esp_memory_utils.h, as ported code includes it */
#include "support.h"

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000 /* Linux >= 4.17; older kernels treat it as a hint (checked) */
#endif

#define COMMON (MALLOC_CAP_DEFAULT | MALLOC_CAP_32BIT | MALLOC_CAP_8BIT)
#define KIB 1024u
#define MIB (1024u * 1024u)

/* ------------------------------------------------------------------------ */
/* Reference figures (chips.md, top: ESP-IDF's heap code on the S3 map)      */
/* ------------------------------------------------------------------------ */
#define S3_REF_FREE_DEFAULT 371640u       /* after heap_caps_enable_nonos_stack_heaps() */
#define S3_REF_FREE_DEFAULT_EARLY 350068u /* before it */
#define S3_REF_FREE_DMA 363852u
#define S3_REF_LARGEST 303104u            /* ESP-IDF rounds down to a TLSF class; capheap is exact */

/* ------------------------------------------------------------------------ */
/* ESP32-S3 and ESP32 as chips.md section 3 and spec 2.12 describe them.     */
/* The tests prefer the built-in tables; these stand in where none exist,  */
/* and test_esp32 (no external RAM) is also the "PSRAM on a chip without   */
/* external RAM" case.                                                       */
/* ------------------------------------------------------------------------ */
enum { S3_RAM, S3_DRAM, S3_IRAM, S3_SPIRAM, S3_RTCRAM };
static const soc_memory_type_desc_t s3_types[] = {
    [S3_RAM] = {"RAM", {COMMON | MALLOC_CAP_INTERNAL | MALLOC_CAP_DMA | MALLOC_CAP_RETENTION | MALLOC_CAP_SIMD, 0, 0}},
    [S3_DRAM] = {"DRAM", {0, COMMON | MALLOC_CAP_INTERNAL | MALLOC_CAP_DMA | MALLOC_CAP_SIMD, 0}},
    [S3_IRAM] = {"IRAM", {0, MALLOC_CAP_32BIT | MALLOC_CAP_INTERNAL, 0}},
    [S3_SPIRAM] = {"SPIRAM", {MALLOC_CAP_SPIRAM, 0, COMMON | MALLOC_CAP_SIMD}},
    [S3_RTCRAM] = {"RTCRAM", {MALLOC_CAP_RTCRAM, 0, COMMON | MALLOC_CAP_INTERNAL}},
};
static const soc_memory_region_t s3_regions[] = {
    {0x3FC88000, 0x8000, S3_RAM, 0x40378000, false},
    {0x3FC90000, 0x10000, S3_RAM, 0x40380000, false},
    {0x3FCA0000, 0x10000, S3_RAM, 0x40390000, false},
    {0x3FCB0000, 0x10000, S3_RAM, 0x403A0000, false},
    {0x3FCC0000, 0x10000, S3_RAM, 0x403B0000, false},
    {0x3FCD0000, 0x10000, S3_RAM, 0x403C0000, false},
    {0x3FCE0000, 0x9710, S3_RAM, 0x403D0000, false},
    {0x3FCE9710, 0x68F0, S3_RAM, 0x403D9710, true},
    {0x3FCF0000, 0x8000, S3_DRAM, 0, false},
    {0x3C000000, 0x2000000, S3_SPIRAM, 0, false},
    {0x600FE000, 0x2000, S3_RTCRAM, 0, false},
};
static const soc_reserved_region_t s3_reserved[] = {
    {0x3C000000, 0x3E000000}, /* external RAM window */
    {0x3FCEEE34, 0x3FCF0000}, /* ROM layout: dram0_rtos_reserved_start .. SOC_DIRAM_DRAM_HIGH */
    {0x600FFFE8, 0x60100000}, /* rtc_reserved_data */
};
static const capheap_chip_t test_s3 = {
    .name = "test-esp32s3",
    .title = "ESP32-S3 (test table, default config)",
    .types = s3_types,
    .type_count = sizeof s3_types / sizeof s3_types[0],
    .regions = s3_regions,
    .region_count = sizeof s3_regions / sizeof s3_regions[0],
    .reserved = s3_reserved,
    .reserved_count = sizeof s3_reserved / sizeof s3_reserved[0],
    .diram = {CAPHEAP_ALIAS_LINEAR, 0x3FC88000, 0x3FCF0000, 0x40378000, 0x403E0000},
    .rtc = {CAPHEAP_ALIAS_NONE, 0, 0, 0, 0},
    .heap_size_max = 0x2000000,
    .heap_alignment = 4,
    .cache_line_external = 32,
    .simd_alignment = 16,
    /* Reference image: IRAM text 0x40374000..0x4038B000, static data up to 0x3FC9D3A8. */
    .image = {0x40374000, 0x17000, 0, 0x3FC9D3A8 - 0x3FC9B000, 0, 0},
    .extram = {0x3C000000, 0x2000000, 0x3C110000, 0x1000000,
               {MALLOC_CAP_SPIRAM | MALLOC_CAP_DEFAULT, 0, MALLOC_CAP_8BIT | MALLOC_CAP_32BIT | MALLOC_CAP_SIMD}},
    .internal_ram_bytes = 0x68000 + 0x8000 + 0x2000,
};

enum { E_DRAM, E_DIRAM, E_IRAM, E_SPIRAM, E_RTCRAM };
static const soc_memory_type_desc_t esp32_types[] = {
    [E_DRAM] = {"DRAM", {MALLOC_CAP_8BIT | MALLOC_CAP_DEFAULT, MALLOC_CAP_INTERNAL | MALLOC_CAP_DMA | MALLOC_CAP_32BIT, 0}},
    [E_DIRAM] = {"D/IRAM", {0, MALLOC_CAP_DMA | MALLOC_CAP_8BIT | MALLOC_CAP_INTERNAL | MALLOC_CAP_DEFAULT,
                            MALLOC_CAP_32BIT | MALLOC_CAP_EXEC}},
    [E_IRAM] = {"IRAM", {MALLOC_CAP_INTERNAL | MALLOC_CAP_EXEC | MALLOC_CAP_32BIT, 0, 0}},
    [E_SPIRAM] = {"SPIRAM", {MALLOC_CAP_SPIRAM | MALLOC_CAP_DEFAULT, 0, MALLOC_CAP_8BIT | MALLOC_CAP_32BIT}},
    [E_RTCRAM] = {"RTCRAM", {MALLOC_CAP_RTCRAM, MALLOC_CAP_8BIT | MALLOC_CAP_DEFAULT,
                             MALLOC_CAP_INTERNAL | MALLOC_CAP_32BIT | MALLOC_CAP_EXEC}},
};
#define E8(a) {(a), 0x2000, E_DRAM, 0, false}
#define I8(a) {(a), 0x2000, E_IRAM, 0, false}
static const soc_memory_region_t esp32_regions[] = {
    {0x3FFAE000, 0x2000, E_DRAM, 0, false},
    {0x3FFB0000, 0x8000, E_DRAM, 0, false},
    {0x3FFB8000, 0x8000, E_DRAM, 0, false},
    E8(0x3FFC0000), E8(0x3FFC2000), E8(0x3FFC4000), E8(0x3FFC6000), E8(0x3FFC8000), E8(0x3FFCA000),
    E8(0x3FFCC000), E8(0x3FFCE000), E8(0x3FFD0000), E8(0x3FFD2000), E8(0x3FFD4000), E8(0x3FFD6000),
    E8(0x3FFD8000), E8(0x3FFDA000), E8(0x3FFDC000), E8(0x3FFDE000),
    {0x3FFE0000, 0x4000, E_DIRAM, 0x400BC000, true},
    {0x3FFE4000, 0x4000, E_DIRAM, 0x400B8000, true},
    {0x3FFE8000, 0x8000, E_DIRAM, 0x400B0000, true},
    {0x3FFF0000, 0x8000, E_DIRAM, 0x400A8000, true},
    {0x3FFF8000, 0x4000, E_DIRAM, 0x400A4000, true},
    {0x3FFFC000, 0x4000, E_DIRAM, 0x400A0000, true},
    {0x40070000, 0x8000, E_IRAM, 0, false},
    {0x40078000, 0x8000, E_IRAM, 0, false},
    I8(0x40080000), I8(0x40082000), I8(0x40084000), I8(0x40086000), I8(0x40088000), I8(0x4008A000),
    I8(0x4008C000), I8(0x4008E000), I8(0x40090000), I8(0x40092000), I8(0x40094000), I8(0x40096000),
    I8(0x40098000), I8(0x4009A000), I8(0x4009C000), I8(0x4009E000),
};
static const soc_reserved_region_t esp32_reserved[] = {
    {0x3FFAE000, 0x3FFAE6E0}, /* ROM data */
    {0x3FFE0000, 0x3FFE0440}, /* ROM PRO data */
    {0x3FFE3F20, 0x3FFE4350}, /* ROM APP data */
    {0x40070000, 0x40078000}, /* CPU0 cache */
    {0x40078000, 0x40080000}, /* CPU1 cache */
};
static const capheap_chip_t test_esp32 = {
    .name = "test-esp32",
    .title = "ESP32 (test table, dual core)",
    .types = esp32_types,
    .type_count = sizeof esp32_types / sizeof esp32_types[0],
    .regions = esp32_regions,
    .region_count = sizeof esp32_regions / sizeof esp32_regions[0],
    .reserved = esp32_reserved,
    .reserved_count = sizeof esp32_reserved / sizeof esp32_reserved[0],
    .diram = {CAPHEAP_ALIAS_INVERTED, 0x3FFE0000, 0x40000000, 0x400A0000, 0x400C0000},
    .rtc = {CAPHEAP_ALIAS_LINEAR, 0x3FF80000, 0x3FF82000, 0x400C0000, 0x400C2000},
    .heap_size_max = 0x400000,
    .heap_alignment = 4,
    /* Documentation boot log: _iram_end 0x4008944C, _heap_start 0x3FFB2EC8. */
    .image = {0x40080000, 0x944C, 0x3FFB0000, 0x2EC8, 0, 0},
};

/* The built-in table when it exists (it is what users boot), else the one above. */
static const capheap_chip_t *chip_s3(void)
{
    const capheap_chip_t *c = capheap_chip_find("esp32s3");
    return c ? c : &test_s3;
}
static const capheap_chip_t *chip_esp32(void)
{
    const capheap_chip_t *c = capheap_chip_find("esp32");
    return c ? c : &test_esp32;
}

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */
/* ------------------------------------------------------------------------ */
typedef struct {
    const char *name;
    uintptr_t start; /* chip address */
    size_t len;
    bool registered;
} heap_row_t;

static uintptr_t to_chip(intptr_t host) { return (uintptr_t)host - (uintptr_t)capheap_sim_offset(); }
static void *to_host(uintptr_t chip) { return (void *)(chip + (uintptr_t)capheap_sim_offset()); }

static size_t read_heaps(heap_row_t *rows, size_t max)
{
    size_t n = capheap_heap_count();
    assert_true(n <= max);
    for (size_t i = 0; i < n; i++) {
        capheap_heap_desc_t d;
        assert_true(capheap_heap_get(i, &d));
        rows[i] = (heap_row_t){d.name, to_chip(d.start), (size_t)(d.end - d.start), d.heap != NULL};
    }
    return n;
}

static void print_heaps(const char *title)
{
    heap_row_t rows[64];
    size_t n = read_heaps(rows, 64);
    printf("%s (offset %#llx):\n", title, (unsigned long long)(uintptr_t)capheap_sim_offset());
    for (size_t i = 0; i < n; i++)
        printf("  %-8s %08lX len %08lX %s\n", rows[i].name ? rows[i].name : "?", (unsigned long)rows[i].start,
               (unsigned long)rows[i].len, rows[i].registered ? "" : "(deferred)");
}

static void assert_heaps(const heap_row_t *want, size_t count)
{
    heap_row_t got[64];
    size_t n = read_heaps(got, 64);
    if (n != count)
        print_heaps("heap list");
    assert_int_equal(n, count);
    for (size_t i = 0; i < n; i++) {
        if (got[i].start != want[i].start || got[i].len != want[i].len || got[i].registered != want[i].registered ||
            strcmp(got[i].name, want[i].name) != 0)
            print_heaps("heap list");
        assert_string_equal(got[i].name, want[i].name);
        assert_int_equal(got[i].start, want[i].start);
        assert_int_equal(got[i].len, want[i].len);
        assert_int_equal(got[i].registered, want[i].registered);
    }
}

/* Combined caps of the heap holding p (0 if none). */
static uint32_t caps_of(const void *p)
{
    int i = capheap_heap_find(p);
    capheap_heap_desc_t d;
    if (i < 0 || !capheap_heap_get((size_t)i, &d))
        return 0;
    return d.caps[0] | d.caps[1] | d.caps[2];
}

static void assert_near_ref(const char *what, size_t got, size_t ref)
{
    printf("  %-34s %7zu (ESP-IDF %7zu, %+.2f%%)\n", what, got, ref, 100.0 * ((double)got - (double)ref) / (double)ref);
    assert_true(got >= ref);
    assert_true(got <= ref + ref / 100u);
}

static capheap_sim_options_t quiet_options(void)
{
    capheap_sim_options_t o = CAPHEAP_SIM_OPTIONS_DEFAULT;
    o.quiet = true;
    return o;
}

static int teardown(void **state)
{
    (void)state;
    (void)capheap_sim_shutdown();
    unsetenv("CAPHEAP_SIM_FORCE_OFFSET");
    return 0;
}

/* The S3 reference heaps in search order: by ascending size (spec 2.12). */
static const heap_row_t s3_reference_heaps[] = {
    {"RTCRAM", 0x600FE000, 0x1FE8, true},
    {"RAM", 0x3FCE9710, 0x5724, false},
    {"DRAM", 0x3FCF0000, 0x8000, true},
    {"RAM", 0x3FC9D3A8, 0x4C368, true},
};

/* ------------------------------------------------------------------------ */
/* Tests                                                                     */
/* ------------------------------------------------------------------------ */

static void test_s3_reference_heaps_and_figures(void **state)
{
    (void)state;
    capheap_sim_options_t o = quiet_options();
    o.defer_nonos_stack_heaps = true;
    assert_int_equal(capheap_sim_boot(chip_s3(), &o), ESP_OK);
    assert_ptr_equal(capheap_sim_chip(), chip_s3());
    assert_heaps(s3_reference_heaps, 4);
    assert_true(heap_caps_check_integrity_all(true));

    printf("%s, reference image, capheap vs ESP-IDF:\n", chip_s3()->name);
    assert_near_ref("free DEFAULT before nonos stacks", heap_caps_get_free_size(MALLOC_CAP_DEFAULT),
                    S3_REF_FREE_DEFAULT_EARLY);
    heap_caps_enable_nonos_stack_heaps();
    heap_row_t after[4];
    memcpy(after, s3_reference_heaps, sizeof after);
    after[1].registered = true;
    assert_heaps(after, 4);
    assert_near_ref("free DEFAULT", heap_caps_get_free_size(MALLOC_CAP_DEFAULT), S3_REF_FREE_DEFAULT);
    assert_near_ref("free DMA", heap_caps_get_free_size(MALLOC_CAP_DMA), S3_REF_FREE_DMA);
    size_t largest = heap_caps_get_largest_free_block(MALLOC_CAP_DEFAULT);
    printf("  %-34s %7zu (ESP-IDF %7zu, %+.2f%%: capheap reports the exact block)\n", "largest free block DEFAULT",
           largest, (size_t)S3_REF_LARGEST, 100.0 * ((double)largest - S3_REF_LARGEST) / S3_REF_LARGEST);
    assert_true(largest >= S3_REF_LARGEST);
    assert_true(largest < 0x4C368u);
    /* Honest: the largest block can be allocated, and one byte more cannot. */
    void *big = heap_caps_malloc(largest, MALLOC_CAP_DEFAULT);
    assert_non_null(big);
    assert_int_equal(to_chip((intptr_t)big) >= 0x3FC9D3A8u && to_chip((intptr_t)big) < 0x3FCE9710u, 1);
    heap_caps_free(big);
    void *too_big = heap_caps_malloc(largest + 1, MALLOC_CAP_DEFAULT);
    assert_null(too_big);
    assert_true(heap_caps_check_integrity_all(true));
    assert_int_equal(capheap_sim_shutdown(), ESP_OK);
    assert_null(capheap_sim_chip());
}

static void test_s3_boot_log_and_heap_info(void **state)
{
    (void)state;
    ct_capture_begin();
    esp_err_t err = capheap_sim_boot(chip_s3(), NULL);
    ct_capture_end();
    assert_int_equal(err, ESP_OK);
    assert_true(ct_capture_contains("heap_init: At 3FC9D3A8 len 0004C368 (304 KiB): RAM\n"));
    assert_true(ct_capture_contains("heap_init: At 3FCE9710 len 00005724 (21 KiB): RAM"));
    assert_true(ct_capture_contains("heap_init: At 3FCF0000 len 00008000 (32 KiB): DRAM\n"));
    assert_true(ct_capture_contains("heap_init: At 600FE000 len 00001FE8 (7 KiB): RTCRAM\n"));
    assert_true(ct_capture_contains(capheap_sim_offset() == 0 ? "offset 0" : "host = chip"));

    ct_capture_begin();
    heap_caps_print_heap_info(MALLOC_CAP_8BIT);
    ct_capture_end();
    printf("%s", ct_capture_text());
    /* Every 8-bit heap (all four here) appears with its host address. */
    static const uintptr_t starts[] = {0x3FC9D3A8, 0x3FCE9710, 0x3FCF0000, 0x600FE000};
    for (size_t i = 0; i < sizeof starts / sizeof starts[0]; i++) {
        char lower[32], upper[32];
        snprintf(lower, sizeof lower, "%llx", (unsigned long long)(uintptr_t)to_host(starts[i]));
        snprintf(upper, sizeof upper, "%llX", (unsigned long long)(uintptr_t)to_host(starts[i]));
        assert_true(ct_capture_contains(lower) || ct_capture_contains(upper));
    }
    assert_true(ct_capture_contains("RTCRAM"));
    assert_true(ct_capture_contains("DRAM"));
}

/* The boot log lists the heaps in ESP-IDF's order: table rows in table order
 * (chips.md 2.4 and 7.4: the S2 prints RTCRAM last, the P4 SPM last, though
 * both lie lowest), the pieces of one row by address. An audit found the
 * simulator printing them by address. */
static void assert_log_order_of(const capheap_chip_t *c, const char *chip, const char *const *lines, size_t n)
{
    assert_non_null(c);
    capheap_sim_options_t o = CAPHEAP_SIM_OPTIONS_DEFAULT;
    ct_capture_begin();
    esp_err_t err = capheap_sim_boot(c, &o);
    ct_capture_end();
    assert_int_equal(err, ESP_OK);
    const char *text = ct_capture_text(), *at = text;
    for (size_t i = 0; i < n; i++) {
        const char *found = strstr(at, lines[i]);
        if (found == NULL) {
            fail_msg("%s: \"%s\" missing or out of order in:\n%s", chip, lines[i], text);
        }
        at = found + strlen(lines[i]);
    }
    assert_int_equal(capheap_sim_shutdown(), ESP_OK);
}

static void assert_log_order(const char *chip, const char *const *lines, size_t n)
{
    assert_log_order_of(capheap_chip_find(chip), chip, lines, n);
}

static void test_boot_log_in_table_order(void **state)
{
    (void)state;
    static const char *const s2[] = {
        "At 3FFC2ED0 len 00039130 (228 KiB): RAM\n",
        "At 3FFFC000 len 00003A10 (14 KiB): RAM (start-up stack, deferred)\n",
        "At 3FF9E000 len 00001FE8 (7 KiB): RTCRAM\n",
    };
    assert_log_order("esp32s2", s2, sizeof s2 / sizeof s2[0]);
    static const char *const p4[] = {
        ": RETENT_RAM\n",
        ": RAM (start-up stack, deferred)\n",
        ": RTCRAM\n",
        ": SPM\n",
    };
    assert_log_order("esp32p4", p4, sizeof p4 / sizeof p4[0]);
    /* Two pieces of one row (an S2 whose table reserves 256 bytes inside RTC
     * fast memory): lower address first, and both. */
    static capheap_chip_t split;
    static soc_reserved_region_t reserved[8];
    split = capheap_chip_esp32s2;
    assert_true(split.reserved_count + 1 <= sizeof reserved / sizeof reserved[0]);
    size_t k = 0;
    for (size_t i = 0; i < split.reserved_count; i++) {
        if (k == i && split.reserved[i].start > 0x3FF9F000)
            reserved[k++] = (soc_reserved_region_t){.start = 0x3FF9F000, .end = 0x3FF9F100};
        reserved[k++] = split.reserved[i];
    }
    assert_int_equal(k, split.reserved_count + 1);
    split.reserved = reserved;
    split.reserved_count = k;
    static const char *const pieces[] = {
        "At 3FFC2ED0 len 00039130 (228 KiB): RAM\n",
        "At 3FF9E000 len 00001000 (4 KiB): RTCRAM\n",
        "At 3FF9F100 len 00000EE8 (3 KiB): RTCRAM\n",
    };
    assert_log_order_of(&split, "esp32s2 with RTC fast memory split", pieces, sizeof pieces / sizeof pieces[0]);
}

static void test_s3_diram_alias(void **state)
{
    (void)state;
    capheap_sim_options_t o = quiet_options();
    assert_int_equal(capheap_sim_boot(chip_s3(), &o), ESP_OK);
    const capheap_alias_t *al = &chip_s3()->diram;
    uint32_t *p = heap_caps_malloc(256, MALLOC_CAP_DMA | MALLOC_CAP_INTERNAL);
    assert_non_null(p);
    uintptr_t d = to_chip((intptr_t)p);
    assert_true(d >= (uintptr_t)al->dram_low && d + 256 <= (uintptr_t)al->dram_high);
    volatile uint32_t *i = to_host(d - (uintptr_t)al->dram_low + (uintptr_t)al->iram_low);
    for (uint32_t k = 0; k < 64; k++)
        p[k] = 0xC0DE0000u ^ k;
    for (uint32_t k = 0; k < 64; k++)
        assert_int_equal(i[k], 0xC0DE0000u ^ k); /* DRAM write, IRAM read */
    i[7] = 0x12345678u;
    assert_int_equal(p[7], 0x12345678u);         /* and back */
    /* The edges of the window alias too. */
    volatile uint32_t *first_d = to_host((uintptr_t)al->dram_low), *first_i = to_host((uintptr_t)al->iram_low);
    volatile uint32_t *last_d = to_host((uintptr_t)al->dram_high - 4), *last_i = to_host((uintptr_t)al->iram_high - 4);
    uint32_t saved_first = *first_d, saved_last = *last_d;
    *first_d = 0xA5A5A5A5u;
    *last_d = 0x5A5A5A5Au;
    assert_int_equal(*first_i, 0xA5A5A5A5u);
    assert_int_equal(*last_i, 0x5A5A5A5Au);
    *first_d = saved_first;
    *last_d = saved_last;
    heap_caps_free(p);
    assert_true(heap_caps_check_integrity_all(true));
}

/* ESP32's inverted alias: EXEC blocks from D/IRAM must not disturb the DRAM side (docs/simulator.md). */
static void test_esp32_exec_from_diram(void **state)
{
    (void)state;
    if (!CAPHEAP_EXEC_HEAP) {
        skip(); /* built without EXEC heaps: EXEC requests fail by design */
    }
    capheap_sim_options_t o = quiet_options();
    assert_int_equal(capheap_sim_boot(chip_esp32(), &o), ESP_OK);
    static const heap_row_t want[] = {
        {"DRAM", 0x3FFAE6E0, 0x1920, true},
        {"D/IRAM", 0x3FFE0440, 0x3AE0, true},
        {"IRAM", 0x4008944C, 0x16BB4, true},
        {"D/IRAM", 0x3FFE4350, 0x1BCB0, true},
        {"DRAM", 0x3FFB2EC8, 0x2D138, true},
    };
    assert_heaps(want, 5);
    const capheap_alias_t *al = &chip_esp32()->diram;
    enum { BLOCK = 4096, MAX = 64 };
    void *blocks[MAX];
    size_t n = 0, in_iram_window = 0;
    /* IRAM (priority 0) fills first; then EXEC comes from D/IRAM through the alias. */
    while (n < MAX && (blocks[n] = heap_caps_malloc(BLOCK, MALLOC_CAP_EXEC)) != NULL) {
        uintptr_t c = to_chip((intptr_t)blocks[n]);
        if (c >= (uintptr_t)al->iram_low && c < (uintptr_t)al->iram_high)
            in_iram_window++;
        memset(blocks[n], (int)(0x40 + n), BLOCK);
        n++;
    }
    printf("ESP32: %zu EXEC blocks of %d bytes, %zu of them through the D/IRAM alias\n", n, BLOCK, in_iram_window);
    if (in_iram_window == 0)
        print_heaps("EXEC never reached D/IRAM");
    assert_true(in_iram_window > 0);
    /* A DMA block on the DRAM side keeps its contents while the EXEC blocks are written. */
    uint8_t *dma = heap_caps_malloc(1024, MALLOC_CAP_DMA);
    assert_non_null(dma);
    ct_stamp(dma, 1024);
    for (size_t k = 0; k < n; k++)
        memset(blocks[k], 0xE7, BLOCK);
    assert_true(ct_stamp_ok(dma, 1024));
    assert_true(heap_caps_check_integrity_all(true));
    for (size_t k = 0; k < n; k++)
        heap_caps_free(blocks[k]);
    heap_caps_free(dma);
    assert_true(heap_caps_check_integrity_all(true));
}

/* On ESP32's inverted window an aligned EXEC block can keep a tail the
 * engine did not split off, past the image the user owns; the user's pointer
 * is found again from the block (heap_caps_get_containing_block_size, task
 * tracking's lists) by trying the images from the largest down until the
 * hidden word names the block. A word an earlier, larger block at the same
 * address left in that tail matched first: the containing size was up to 12
 * bytes larger than the block's, from a pointer the program never got (an
 * audit's random test; its seed 3 failed at step 488). Random EXEC
 * allocations, plain and aligned, and frees in a nearly full D/IRAM heap:
 * every live block's containing size equals its allocated size. */
static void test_esp32_exec_aligned_containing_size(void **state)
{
    (void)state;
    if (!CAPHEAP_EXEC_HEAP) {
        skip();
    }
    capheap_sim_options_t o = quiet_options();
    assert_int_equal(capheap_sim_boot(chip_esp32(), &o), ESP_OK);
    /* the IRAM-only EXEC heap first, then a D/IRAM heap with little room left, so addresses recur */
    enum { HELD = 512, LIVE = 64, STEPS = 1500 };
    static void *held[HELD];
    size_t nh = 0;
    static const size_t fill[] = {4096, 256, 16};
    for (size_t f = 0; f < 3; f++) {
        for (;;) {
            void *q = heap_caps_malloc(fill[f], MALLOC_CAP_EXEC);
            assert_non_null(q);
            if (esp_ptr_in_diram_iram(q)) {
                heap_caps_free(q);
                break;
            }
            assert_true(nh < HELD);
            held[nh++] = q;
        }
    }
    static const size_t dram[] = {8192, 2048};
    for (size_t f = 0; f < 2; f++) {
        while (heap_caps_get_largest_free_block(MALLOC_CAP_EXEC) >= (f == 0 ? 12000u : 3000u)) {
            void *q = heap_caps_malloc(dram[f], MALLOC_CAP_8BIT | MALLOC_CAP_DMA);
            if (q == NULL)
                break;
            assert_true(nh < HELD);
            held[nh++] = q;
        }
    }
    unsigned char *live[LIVE];
    size_t len[LIVE], n = 0;
    static const size_t aligns[] = {0, 0, 8, 16, 32, 64};
    for (uint64_t seed = 1; seed <= 4; seed++) {
        ct_rng_t rng;
        ct_rng_init(&rng, seed);
        for (int step = 0; step < STEPS; step++) {
            if (n < LIVE && (n == 0 || ct_rng_below(&rng, 3) != 0)) {
                size_t size = 1u + (size_t)ct_rng_below(&rng, 120);
                size_t a = aligns[ct_rng_below(&rng, 6)];
                unsigned char *p = a != 0 ? heap_caps_aligned_alloc(a, size, MALLOC_CAP_EXEC)
                                          : heap_caps_malloc(size, MALLOC_CAP_EXEC);
                if (p == NULL)
                    continue;
                live[n] = p;
                len[n++] = size;
            } else {
                size_t i = (size_t)ct_rng_below(&rng, n);
                heap_caps_free(live[i]);
                live[i] = live[--n];
                len[i] = len[n];
            }
            for (size_t i = 0; i < n; i++) {
                size_t a = heap_caps_get_allocated_size(live[i]);
                assert_true(a >= len[i]);
                for (size_t k = 0; k < len[i]; k += 4) {
                    size_t c = heap_caps_get_containing_block_size(live[i] + k);
                    if (c != a) {
                        fail_msg("seed %llu step %d: %p + %zu: containing size %zu, allocated size %zu",
                                 (unsigned long long)seed, step, (void *)live[i], k, c, a);
                    }
                }
            }
        }
    }
    while (n > 0)
        heap_caps_free(live[--n]);
    while (nh > 0)
        heap_caps_free(held[--nh]);
    assert_true(heap_caps_check_integrity_all(true));
}

static void test_states_and_errors(void **state)
{
    (void)state;
    capheap_sim_options_t o = quiet_options();
    assert_int_equal(capheap_sim_shutdown(), ESP_ERR_INVALID_STATE);
    assert_null(capheap_sim_chip());
    assert_int_equal(capheap_sim_boot(NULL, &o), ESP_ERR_INVALID_ARG);

    assert_int_equal(capheap_sim_boot(chip_s3(), &o), ESP_OK);
    assert_int_equal(capheap_sim_boot(chip_s3(), &o), ESP_ERR_INVALID_STATE);
    assert_int_equal(capheap_sim_boot(chip_esp32(), &o), ESP_ERR_INVALID_STATE);
    assert_ptr_equal(capheap_sim_chip(), chip_s3());
    assert_int_equal(capheap_sim_shutdown(), ESP_OK);
    assert_int_equal(capheap_sim_shutdown(), ESP_ERR_INVALID_STATE);
    assert_int_equal(capheap_heap_count(), 0);

    /* Another chip after shutdown. */
    assert_int_equal(capheap_sim_boot(chip_esp32(), &o), ESP_OK);
    assert_ptr_equal(capheap_sim_chip(), chip_esp32());
    void *p = heap_caps_malloc(100, MALLOC_CAP_DEFAULT);
    assert_non_null(p);
    assert_true(caps_of(p) & MALLOC_CAP_INTERNAL);
    heap_caps_free(p);
    assert_int_equal(capheap_sim_shutdown(), ESP_OK);

    /* Bad options leave nothing booted. */
    capheap_sim_options_t bad = o;
    bad.static_data_bytes = 2 * MIB; /* past the S3's internal RAM */
    assert_int_equal(capheap_sim_boot(chip_s3(), &bad), ESP_ERR_INVALID_ARG);
    bad = o;
    bad.static_data_bytes = 0x3FCEEE34 - 0x3FC9B000 + 4; /* into the ROM's reserved DRAM */
    assert_int_equal(capheap_sim_boot(chip_s3(), &bad), ESP_ERR_INVALID_ARG);
    bad = o;
    bad.iram_text_bytes = 0x70000; /* past the end of D/IRAM */
    assert_int_equal(capheap_sim_boot(chip_s3(), &bad), ESP_ERR_INVALID_ARG);
    bad = o;
    bad.psram_bytes = chip_s3()->extram.max_size + 4096;
    assert_int_equal(capheap_sim_boot(chip_s3(), &bad), ESP_ERR_INVALID_ARG);
    bad = o;
    bad.psram_bytes = 4 * MIB; /* this ESP32 table has no external RAM */
    assert_int_equal(capheap_sim_boot(&test_esp32, &bad), ESP_ERR_INVALID_ARG);
    bad = o;
    bad.poisoning = 3;
    assert_int_equal(capheap_sim_boot(chip_s3(), &bad), ESP_ERR_INVALID_ARG);
    bad = o;
    bad.poisoning = CT_POISONING ? 0 : 1; /* not this build's mode */
    assert_int_equal(capheap_sim_boot(chip_s3(), &bad), ESP_ERR_NOT_SUPPORTED);
    assert_null(capheap_sim_chip());
    assert_int_equal(capheap_heap_count(), 0);

    /* Explicit sizes: no image at all gives one RAM heap from 0x3FC88000. */
    capheap_sim_options_t bare = o;
    bare.iram_text_bytes = 0;
    bare.static_data_bytes = 0;
    bare.poisoning = CAPHEAP_POISONING_COMPREHENSIVE ? 2 : CAPHEAP_POISONING_LIGHT ? 1 : 0;
    assert_int_equal(capheap_sim_boot(chip_s3(), &bare), ESP_OK);
    capheap_heap_desc_t d;
    assert_true(capheap_heap_get(capheap_heap_count() - 1, &d));
    assert_int_equal(to_chip(d.start), 0x3FC88000u);
    assert_int_equal(to_chip(d.end), 0x3FCE9710u);
}

/* image.iram_text_start == 0 means "no separate IRAM text in this chip's image"
 * (chip.h): any iram_text_bytes > 0 is refused, and the refusal leaves nothing
 * behind, so the same chip then boots with valid options. */
static void test_no_iram_text_chips_refuse_iram_text(void **state)
{
    (void)state;
    size_t tried = 0;
    for (size_t i = 0; i < capheap_chip_count; i++) {
        const capheap_chip_t *chip = capheap_chips[i];
        if (chip->image.iram_text_start != 0)
            continue;
        tried++;
        assert_int_equal(chip->image.iram_text_size, 0);
        capheap_sim_options_t bad = quiet_options();
        bad.iram_text_bytes = 0x1000;
        assert_int_equal(capheap_sim_boot(chip, &bad), ESP_ERR_INVALID_ARG);
        bad.iram_text_bytes = 4;
        assert_int_equal(capheap_sim_boot(chip, &bad), ESP_ERR_INVALID_ARG);
        assert_null(capheap_sim_chip());
        assert_int_equal(capheap_heap_count(), 0);
        assert_null(capheap_caps_chip());

        capheap_sim_options_t good = quiet_options(); /* REFERENCE: iram_text_size, 0 */
        assert_int_equal(capheap_sim_boot(chip, &good), ESP_OK);
        assert_ptr_equal(capheap_sim_chip(), chip);
        void *p = heap_caps_malloc(64, MALLOC_CAP_DEFAULT);
        assert_non_null(p);
        heap_caps_free(p);
        assert_int_equal(capheap_sim_shutdown(), ESP_OK);

        good.iram_text_bytes = 0; /* explicit 0 is the same */
        assert_int_equal(capheap_sim_boot(chip, &good), ESP_OK);
        assert_int_equal(capheap_sim_shutdown(), ESP_OK);
    }
    printf("%zu chips without IRAM text refuse iram_text_bytes > 0\n", tried);
    if (capheap_chip_count > 0)
        assert_true(tried >= 1); /* STM32H743, i.MX RT1062, RP2350, nRF52840 */
}

/* A failure after the start-up heaps exist (step 5, the PSRAM heap) also leaves
 * nothing behind; the boot log was already printed in full (docs/simulator.md). */
static void test_failure_after_boot_log(void **state)
{
    (void)state;
    capheap_sim_options_t o = quiet_options();
    o.quiet = false;
    o.psram_bytes = 1; /* too small to hold a heap */
    ct_capture_begin();
    esp_err_t err = capheap_sim_boot(chip_s3(), &o);
    ct_capture_end();
    assert_int_equal(err, ESP_ERR_INVALID_SIZE);
    assert_true(ct_capture_contains("heap_init: At 3FC9D3A8 len 0004C368 (304 KiB): RAM\n"));
    assert_true(ct_capture_contains("esp_psram: Adding pool of 0K of PSRAM"));
    assert_null(capheap_sim_chip());
    assert_int_equal(capheap_heap_count(), 0);

    o = quiet_options();
    o.psram_bytes = 8 * MIB;
    o.reserve_internal = 1; /* not a multiple of 4: no chunk can take it */
    assert_int_equal(capheap_sim_boot(chip_s3(), &o), ESP_ERR_NO_MEM);
    assert_null(capheap_sim_chip());
    assert_int_equal(capheap_heap_count(), 0);

    o.reserve_internal = 32 * KIB;
    assert_int_equal(capheap_sim_boot(chip_s3(), &o), ESP_OK);
    assert_int_equal(capheap_sim_shutdown(), ESP_OK);
}

static void test_offset_path_same_heaps(void **state)
{
    (void)state;
    capheap_sim_options_t o = quiet_options();
    heap_row_t plain[64], shifted[64];
    assert_int_equal(capheap_sim_boot(chip_s3(), &o), ESP_OK);
    size_t n = read_heaps(plain, 64);
    printf("default boot: offset %#llx\n", (unsigned long long)(uintptr_t)capheap_sim_offset());
    assert_int_equal(capheap_sim_shutdown(), ESP_OK);

    setenv("CAPHEAP_SIM_FORCE_OFFSET", "1", 1);
    ct_capture_begin();
    assert_int_equal(capheap_sim_boot(chip_s3(), NULL), ESP_OK);
    ct_capture_end();
    intptr_t off = capheap_sim_offset();
    printf("forced: offset %#llx\n", (unsigned long long)(uintptr_t)off);
    assert_true(off != 0);
    assert_int_equal((uintptr_t)off & 0xFFFFFu, 0);
    assert_true(ct_capture_contains("CAPHEAP_SIM_FORCE_OFFSET=1"));
    assert_true(ct_capture_contains("heap_init: At 3FC9D3A8 len 0004C368 (304 KiB): RAM\n"));
    assert_int_equal(read_heaps(shifted, 64), n);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(shifted[i].start, plain[i].start);
        assert_int_equal(shifted[i].len, plain[i].len);
        assert_string_equal(shifted[i].name, plain[i].name);
    }
    /* Memory works there, and the alias is still one physical word. */
    uint32_t *p = heap_caps_malloc(64, MALLOC_CAP_DMA);
    assert_non_null(p);
    p[0] = 0xFEEDF00Du;
    const capheap_alias_t *al = &chip_s3()->diram;
    volatile uint32_t *alias = to_host(to_chip((intptr_t)p) - (uintptr_t)al->dram_low + (uintptr_t)al->iram_low);
    assert_int_equal(*alias, 0xFEEDF00Du);
    /* The chip heap_caps sees is the translated copy. */
    const capheap_chip_t *seen = capheap_caps_chip();
    assert_non_null(seen);
    assert_int_equal((uintptr_t)seen->diram.dram_low, (uintptr_t)al->dram_low + (uintptr_t)off);
    heap_caps_free(p);
    assert_true(heap_caps_check_integrity_all(true));
}

static void test_s3_psram(void **state)
{
    (void)state;
    capheap_sim_options_t o = quiet_options();
    o.psram_bytes = 8 * MIB;
    assert_int_equal(capheap_sim_boot(chip_s3(), &o), ESP_OK);
    print_heaps("S3 + 8 MiB PSRAM");
    /* Runtime heaps come first: the DMA pool (newest), then SPIRAM. */
    capheap_heap_desc_t d;
    bool found = false;
    for (size_t i = 0; i < capheap_heap_count(); i++) {
        assert_true(capheap_heap_get(i, &d));
        if ((d.caps[0] | d.caps[1] | d.caps[2]) & MALLOC_CAP_SPIRAM) {
            found = true;
            assert_true(d.runtime);
            assert_int_equal(to_chip(d.start), (uintptr_t)chip_s3()->extram.heap_start);
            assert_int_equal((size_t)(d.end - d.start), 8 * MIB);
        }
    }
    assert_true(found);
    assert_true(heap_caps_get_free_size(MALLOC_CAP_SPIRAM) > 8 * MIB - 8 * KIB);

    void *big = heap_caps_malloc_default(64 * KIB);   /* above the 16 KiB policy limit */
    void *small = heap_caps_malloc_default(100);
    void *dma = heap_caps_malloc(1000, MALLOC_CAP_DMA);
    void *frame = heap_caps_malloc(640 * 480 * 2, MALLOC_CAP_SPIRAM);
    assert_non_null(big);
    assert_non_null(small);
    assert_non_null(dma);
    assert_non_null(frame);
    assert_true(caps_of(big) & MALLOC_CAP_SPIRAM);
    assert_true(caps_of(small) & MALLOC_CAP_INTERNAL);
    assert_true(caps_of(dma) & MALLOC_CAP_INTERNAL);
    assert_true(caps_of(dma) & MALLOC_CAP_DMA);
    assert_true(caps_of(frame) & MALLOC_CAP_SPIRAM);
    memset(frame, 0x11, 640 * 480 * 2);
    /* The reserved internal pool is a DMA|INTERNAL heap of 32 KiB nested in internal RAM. */
    size_t pool = 0;
    for (size_t i = 0; i < capheap_heap_count(); i++) {
        assert_true(capheap_heap_get(i, &d));
        if (d.runtime && d.caps[0] == 0 && d.caps[1] == (MALLOC_CAP_DMA | MALLOC_CAP_INTERNAL))
            pool += (size_t)(d.end - d.start);
    }
    assert_int_equal(pool, 32 * KIB);
    heap_caps_free(big);
    heap_caps_free(small);
    heap_caps_free(dma);
    heap_caps_free(frame);
    assert_true(heap_caps_check_integrity_all(true));
}

/*
 * The heaps a chip file's top comment lists, one row per heap:
 *   " *   0x3FC9D3A8  0x4C368  RAM     no    levels 2-8 ..."
 * (start, length, type name, startup stack yes/no). The file is found from
 * this test's own path (tests/caps/test_sim.c -> chips/<name>.c). Returns the
 * number of rows, or -1 if the file cannot be read.
 */
typedef struct {
    unsigned long start, len;
    char name[32];
    bool startup_stack;
} comment_row_t;

static int read_chip_comment(const char *chip_name, comment_row_t *rows, int max)
{
    char path[1024];
    const char *self = __FILE__, *tail = strstr(self, "tests/caps/test_sim.c");
    if (tail == NULL)
        return -1;
    snprintf(path, sizeof path, "%.*schips/%s.c", (int)(tail - self), self, chip_name);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    char line[256];
    int n = 0;
    while (fgets(line, sizeof line, f) != NULL && strncmp(line, " */", 3) != 0 && n < max) {
        unsigned long start, len;
        int used = 0;
        if (sscanf(line, " * 0x%lx 0x%lx %n", &start, &len, &used) != 2 || used == 0)
            continue;
        const char *rest = line + used, *flag = NULL;
        bool yes = false;
        for (const char *q = rest; *q && flag == NULL; q++) {
            if (q > rest && q[-1] == ' ' && strncmp(q, "yes", 3) == 0 && (q[3] == ' ' || q[3] == '\n' || !q[3]))
                flag = q, yes = true;
            else if (q > rest && q[-1] == ' ' && strncmp(q, "no", 2) == 0 && (q[2] == ' ' || q[2] == '\n' || !q[2]))
                flag = q;
        }
        if (flag == NULL)
            continue;
        size_t name_len = (size_t)(flag - rest);
        while (name_len > 0 && rest[name_len - 1] == ' ')
            name_len--;
        rows[n] = (comment_row_t){start, len, "", yes};
        snprintf(rows[n].name, sizeof rows[n].name, "%.*s", (int)name_len, rest);
        n++;
    }
    fclose(f);
    return n;
}

static void check_builtin_chip(const capheap_chip_t *chip)
{
    capheap_sim_options_t o = quiet_options();
    o.defer_nonos_stack_heaps = true;
    esp_err_t err = capheap_sim_boot(chip, &o);
    printf("%-10s boot 0x%x, offset %#llx, %zu heaps\n", chip->name, (unsigned)err,
           (unsigned long long)(uintptr_t)capheap_sim_offset(), capheap_heap_count());
    assert_int_equal(err, ESP_OK);
    assert_ptr_equal(capheap_sim_chip(), chip);

    comment_row_t rows[16];
    int n = read_chip_comment(chip->name, rows, 16);
    if (n < 0) { /* a silent pass compared nothing (an audit noted it) */
        fail_msg("chips/%s.c not found next to this test's source (%s): its heap list cannot be compared",
                 chip->name, __FILE__);
    } else {
        if ((size_t)n != capheap_heap_count())
            print_heaps(chip->name);
        assert_true(n > 0); /* every chip file states its boot heaps */
        assert_int_equal((size_t)n, capheap_heap_count());
        for (int r = 0; r < n; r++) {
            bool found = false;
            for (size_t i = 0; i < capheap_heap_count() && !found; i++) {
                capheap_heap_desc_t d;
                assert_true(capheap_heap_get(i, &d));
                if (to_chip(d.start) != rows[r].start)
                    continue;
                found = true;
                if ((size_t)(d.end - d.start) != rows[r].len || strcmp(d.name, rows[r].name) != 0 ||
                    (d.heap == NULL) != rows[r].startup_stack)
                    print_heaps(chip->name);
                assert_int_equal((size_t)(d.end - d.start), rows[r].len);
                assert_string_equal(d.name, rows[r].name);
                assert_int_equal(d.heap == NULL, rows[r].startup_stack);
            }
            if (!found) {
                printf("  %s: no heap at 0x%08lX as its comment says\n", chip->name, rows[r].start);
                print_heaps(chip->name);
            }
            assert_true(found);
        }
    }
    heap_caps_enable_nonos_stack_heaps();
    for (size_t i = 0; i < capheap_heap_count(); i++) {
        capheap_heap_desc_t d;
        assert_true(capheap_heap_get(i, &d));
        assert_non_null(d.heap);
    }
    assert_true(heap_caps_check_integrity_all(true));
    void *p[8];
    for (int k = 0; k < 8; k++) {
        p[k] = heap_caps_malloc((size_t)(16 << k), MALLOC_CAP_DEFAULT);
        assert_non_null(p[k]);
        assert_true(caps_of(p[k]) & MALLOC_CAP_DEFAULT);
        ct_stamp(p[k], (size_t)(16 << k));
    }
    for (int k = 0; k < 8; k++) {
        assert_true(ct_stamp_ok(p[k], (size_t)(16 << k)));
        heap_caps_free(p[k]);
    }
    assert_true(heap_caps_check_integrity_all(true));
    assert_int_equal(capheap_sim_shutdown(), ESP_OK);
}

/* Every built-in chip boots (real addresses and forced offset), lists the heaps
 * its file's comment states, checks, allocates and shuts down. */
static void test_every_builtin_chip(void **state)
{
    (void)state;
    if (capheap_chip_count == 0)
        skip(); /* the chip tables have not landed in this tree */
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1)
            setenv("CAPHEAP_SIM_FORCE_OFFSET", "1", 1);
        for (size_t i = 0; i < capheap_chip_count; i++)
            check_builtin_chip(capheap_chips[i]);
    }
}

/* ------------------------------------------------------------------------ */
/* Added after a mutation round of sim/ (the tests above could not fail for  */
/* these behaviours of docs/simulator.md).                                   */
/* ------------------------------------------------------------------------ */

/* True iff [lo, hi) (page multiples) is free on this host: nothing of the
 * process is there, so the simulator's real-address attempt must succeed. */
static bool host_range_free(uintptr_t lo, uintptr_t hi)
{
    if (lo == 0 || hi <= lo)
        return false;
    void *p = mmap((void *)lo, (size_t)(hi - lo), PROT_NONE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
    if (p == MAP_FAILED)
        return false;
    (void)munmap(p, (size_t)(hi - lo));
    return p == (void *)lo;
}

static bool type_external(const capheap_chip_t *chip, size_t type)
{
    const soc_memory_type_desc_t *t = &chip->types[type];
    return ((t->caps[0] | t->caps[1] | t->caps[2]) & MALLOC_CAP_SPIRAM) != 0;
}

/* Every page the simulator maps for chip without PSRAM (its internal rows and
 * both sides of every alias window) is free on this host. */
static bool chip_addresses_free(const capheap_chip_t *chip)
{
    const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    for (size_t i = 0; i < chip->region_count; i++) {
        const soc_memory_region_t *r = &chip->regions[i];
        if (type_external(chip, r->type))
            continue;
        uintptr_t lo = (uintptr_t)r->start & ~(page - 1u);
        uintptr_t hi = ((uintptr_t)r->start + r->size + page - 1u) & ~(page - 1u);
        if (!host_range_free(lo, hi))
            return false;
    }
    const capheap_alias_t *al[2] = {&chip->diram, &chip->rtc};
    for (int a = 0; a < 2; a++) {
        if (al[a]->kind == CAPHEAP_ALIAS_NONE)
            continue;
        if (!host_range_free((uintptr_t)al[a]->dram_low & ~(page - 1u), (uintptr_t)al[a]->dram_high) ||
            !host_range_free((uintptr_t)al[a]->iram_low & ~(page - 1u), (uintptr_t)al[a]->iram_high))
            return false;
    }
    return true;
}

/* Whether the host can read the byte at chip address a of the booted chip: a
 * pipe write from an unmapped or PROT_NONE address fails with EFAULT. */
static bool chip_readable(uintptr_t a)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    ssize_t n = write(fds[1], to_host(a), 1);
    char c;
    if (n == 1)
        assert_int_equal(read(fds[0], &c, 1), 1);
    close(fds[0]);
    close(fds[1]);
    return n == 1;
}

/* docs/simulator.md "Where": the simulator first tries the chip's real
 * addresses; only when one range cannot be placed does it move them all. So
 * a chip whose every range is free here boots with offset 0, and
 * CAPHEAP_SIM_FORCE_OFFSET takes only "1". */
static void test_real_addresses_when_free(void **state)
{
    (void)state;
    size_t tried = 0;
    capheap_sim_options_t o = quiet_options();
    for (size_t i = 0; i < capheap_chip_count; i++) {
        const capheap_chip_t *chip = capheap_chips[i];
        if (!chip_addresses_free(chip))
            continue;
        tried++;
        assert_int_equal(capheap_sim_boot(chip, &o), ESP_OK);
        printf("%-10s real addresses free: offset %#llx\n", chip->name,
               (unsigned long long)(uintptr_t)capheap_sim_offset());
        assert_int_equal(capheap_sim_offset(), 0);
        assert_int_equal(capheap_sim_shutdown(), ESP_OK);
        /* Shut down, the same addresses are free again: a second boot is at 0 too. */
        setenv("CAPHEAP_SIM_FORCE_OFFSET", "0", 1);
        assert_int_equal(capheap_sim_boot(chip, &o), ESP_OK);
        assert_int_equal(capheap_sim_offset(), 0);
        assert_int_equal(capheap_sim_shutdown(), ESP_OK);
        unsetenv("CAPHEAP_SIM_FORCE_OFFSET");
    }
    printf("%zu chips booted at their real addresses\n", tried);
    /* a host where no chip's range is free would test nothing here; on
     * Linux the low ranges of most chips are free, in -m32 builds too */
    assert_true(tried > 0);
}

/* docs/simulator.md "What is mapped": the internal rows, the PSRAM asked for
 * and the alias windows some region touches; not the external-RAM window row
 * and not an alias window no region uses. Also the boot log's lines about the
 * mapping, verbatim from the doc (S3 with 8 MiB of PSRAM, 4 KiB pages). */
static void test_what_is_mapped_and_its_log(void **state)
{
    (void)state;
    capheap_sim_options_t o = quiet_options();
    o.quiet = false;
    o.psram_bytes = 8 * MIB;
    const capheap_chip_t *s3 = chip_s3();
    /* A heap added before the boot is no start-up heap: the log leaves it out. */
    static uint32_t early[1024];
    static const uint32_t early_caps[3] = {MALLOC_CAP_8BIT | MALLOC_CAP_32BIT, 0, 0};
    assert_int_equal(heap_caps_add_region_with_caps(early_caps, (intptr_t)early, (intptr_t)(early + 1024)), ESP_OK);
    ct_capture_begin();
    esp_err_t err = capheap_sim_boot(s3, &o);
    ct_capture_end();
    assert_int_equal(err, ESP_OK);
    printf("%s", ct_capture_text());
    assert_true(ct_capture_contains(
        "sim: D/IRAM 0x3FC88000..0x3FCF0000 shared with IRAM 0x40378000 (one memfd, two addresses)\n"));
    assert_true(ct_capture_contains(
        "esp_psram: Adding pool of 8192K of PSRAM memory to heap allocator at 3C110000\n"));
    assert_true(ct_capture_contains(
        "esp_psram: Reserving pool of 32K of internal memory for DMA/internal allocations\n"));
    if (sysconf(_SC_PAGESIZE) == 4096)
        assert_true(ct_capture_contains(capheap_sim_offset() == 0
                                            ? "(offset 0), 9064 KiB of host memory\n"
                                            : ", 9064 KiB of host memory\n"));
    /* The heap lines in table order, each once (the doc's example; on the
     * S3 it is address order too). */
    const char *text = ct_capture_text();
    static const char *const lines[] = {
        "heap_init: At 3FC9D3A8 len 0004C368 (304 KiB): RAM\n",
        "heap_init: At 3FCE9710 len 00005724 (21 KiB): RAM (start-up stack, deferred)\n",
        "heap_init: At 3FCF0000 len 00008000 (32 KiB): DRAM\n",
        "heap_init: At 600FE000 len 00001FE8 (7 KiB): RTCRAM\n",
    };
    const char *at = text;
    for (size_t k = 0; k < sizeof lines / sizeof lines[0]; k++) {
        const char *hit = strstr(at, lines[k]);
        assert_non_null(hit);
        at = hit + strlen(lines[k]);
    }
    size_t heap_lines = 0;
    for (const char *q = text; (q = strstr(q, "heap_init: At ")) != NULL; q++)
        heap_lines++;
    assert_int_equal(heap_lines, 4);
    /* PSRAM is there, the rest of the 32 MiB window row is not. */
    assert_true(chip_readable(0x3C110000));
    assert_true(chip_readable(0x3C110000 + 8 * MIB - 1));
    assert_false(chip_readable(0x3C110000 + 8 * MIB));
    assert_false(chip_readable(0x3C000000));
    assert_int_equal(capheap_sim_shutdown(), ESP_OK);

    /* quiet: no line at all, the pool included. */
    o.quiet = true;
    ct_capture_begin();
    err = capheap_sim_boot(s3, &o);
    ct_capture_end();
    assert_int_equal(err, ESP_OK);
    assert_string_equal(ct_capture_text(), "");
    assert_int_equal(capheap_sim_shutdown(), ESP_OK);

    /* ESP32: the inverted alias line; its RTC alias window, which no row of the
     * dual-core table uses, is not mapped on either side. */
    o.psram_bytes = 0;
    o.quiet = false;
    ct_capture_begin();
    err = capheap_sim_boot(chip_esp32(), &o);
    ct_capture_end();
    assert_int_equal(err, ESP_OK);
    assert_true(ct_capture_contains(
        "sim: D/IRAM alias is inverted: IRAM 0x400A0000.. is separate memory (see docs/simulator.md)\n"));
    assert_false(ct_capture_contains("shared with IRAM"));
    const capheap_alias_t *rtc = &chip_esp32()->rtc;
    assert_int_equal(rtc->kind, CAPHEAP_ALIAS_LINEAR);
    assert_false(chip_readable((uintptr_t)rtc->dram_low));
    assert_false(chip_readable((uintptr_t)rtc->iram_low));
    assert_true(chip_readable((uintptr_t)chip_esp32()->diram.iram_low)); /* the used window is */
}

/* The offset path's log states the offset exactly ("host = chip + 0x..."),
 * and heap_caps works on a translated copy of every address field of the
 * table (docs/simulator.md), for every built-in chip. */
static void test_offset_translates_the_whole_table(void **state)
{
    (void)state;
    setenv("CAPHEAP_SIM_FORCE_OFFSET", "1", 1);
    for (size_t i = 0; i < capheap_chip_count; i++) {
        const capheap_chip_t *c = capheap_chips[i];
        capheap_sim_options_t o = quiet_options();
        o.quiet = false;
        ct_capture_begin();
        esp_err_t err = capheap_sim_boot(c, &o);
        ct_capture_end();
        assert_int_equal(err, ESP_OK);
        uintptr_t off = (uintptr_t)capheap_sim_offset();
        char want[96];
        snprintf(want, sizeof want, "sim: mapped at host = chip %c 0x%llx (CAPHEAP_SIM_FORCE_OFFSET=1)",
                 (intptr_t)off < 0 ? '-' : '+',
                 (unsigned long long)((intptr_t)off < 0 ? (uintptr_t)0 - off : off));
        assert_true(ct_capture_contains(want));
        const capheap_chip_t *h = capheap_caps_chip();
        assert_non_null(h);
        assert_ptr_not_equal(h, c);
#define SHIFTED(f) assert_int_equal((uintptr_t)h->f, (uintptr_t)c->f + off)
#define SHIFTED_NZ(f) assert_int_equal((uintptr_t)h->f, c->f == 0 ? 0 : (uintptr_t)c->f + off)
        assert_int_equal(h->region_count, c->region_count);
        for (size_t r = 0; r < c->region_count; r++) {
            SHIFTED(regions[r].start);
            SHIFTED_NZ(regions[r].iram_address);
            assert_int_equal(h->regions[r].size, c->regions[r].size);
            assert_int_equal(h->regions[r].type, c->regions[r].type);
        }
        assert_int_equal(h->reserved_count, c->reserved_count);
        for (size_t r = 0; r < c->reserved_count; r++) {
            SHIFTED(reserved[r].start);
            SHIFTED(reserved[r].end);
        }
        const capheap_alias_t *ha[2] = {&h->diram, &h->rtc}, *ca[2] = {&c->diram, &c->rtc};
        for (int a = 0; a < 2; a++) {
            assert_int_equal(ha[a]->kind, ca[a]->kind);
            uintptr_t d = ca[a]->kind == CAPHEAP_ALIAS_NONE ? 0 : off;
            assert_int_equal((uintptr_t)ha[a]->dram_low, (uintptr_t)ca[a]->dram_low + d);
            assert_int_equal((uintptr_t)ha[a]->dram_high, (uintptr_t)ca[a]->dram_high + d);
            assert_int_equal((uintptr_t)ha[a]->iram_low, (uintptr_t)ca[a]->iram_low + d);
            assert_int_equal((uintptr_t)ha[a]->iram_high, (uintptr_t)ca[a]->iram_high + d);
        }
        SHIFTED_NZ(image.iram_text_start);
        SHIFTED_NZ(image.data_start);
        SHIFTED_NZ(image.rtc_data_start);
        SHIFTED_NZ(extram.window_start);
        SHIFTED_NZ(extram.heap_start);
#undef SHIFTED
#undef SHIFTED_NZ
        assert_int_equal(capheap_sim_shutdown(), ESP_OK);
    }
    /* PSRAM on the offset path lands at the translated heap_start. */
    capheap_sim_options_t o = quiet_options();
    o.psram_bytes = 1 * MIB;
    assert_int_equal(capheap_sim_boot(chip_s3(), &o), ESP_OK);
    void *p = heap_caps_malloc(100 * KIB, MALLOC_CAP_SPIRAM);
    assert_non_null(p);
    assert_int_equal(to_chip((intptr_t)p) >= (uintptr_t)chip_s3()->extram.heap_start, 1);
    assert_int_equal(to_chip((intptr_t)p) < (uintptr_t)chip_s3()->extram.heap_start + MIB, 1);
    memset(p, 0x5A, 100 * KIB);
    heap_caps_free(p);
}

/* Boot and shutdown many times, failed boots included: memory, address
 * space and file descriptors all come back ("memory unmapped"; "a failed
 * boot leaves nothing mapped"). */
static size_t vm_size_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    assert_non_null(f);
    char line[256];
    size_t kib = 0;
    while (fgets(line, sizeof line, f) != NULL)
        if (sscanf(line, "VmSize: %zu kB", &kib) == 1)
            break;
    fclose(f);
    return kib;
}

static size_t open_fds(void)
{
    size_t n = 0;
    for (int fd = 0; fd < 1024; fd++)
        if (fcntl(fd, F_GETFD) != -1)
            n++;
    return n;
}

static void boot_cycles(int rounds)
{
    capheap_sim_options_t o = quiet_options(), bad = quiet_options();
    bad.psram_bytes = 1; /* fails in step 5, after the mappings and the heaps */
    for (int k = 0; k < rounds; k++) {
        if (k % 2)
            setenv("CAPHEAP_SIM_FORCE_OFFSET", "1", 1);
        else
            unsetenv("CAPHEAP_SIM_FORCE_OFFSET");
        for (size_t i = 0; i < capheap_chip_count; i++) {
            assert_int_equal(capheap_sim_boot(capheap_chips[i], &o), ESP_OK);
            assert_int_equal(capheap_sim_shutdown(), ESP_OK);
        }
        assert_int_equal(capheap_sim_boot(chip_s3(), &bad), ESP_ERR_INVALID_SIZE);
    }
}

static void test_boot_cycles_give_everything_back(void **state)
{
    (void)state;
    boot_cycles(1); /* warm up: the C library's own buffers */
    size_t vm = vm_size_kib(), fds = open_fds();
    boot_cycles(16);
    size_t vm_after = vm_size_kib(), fds_after = open_fds();
    printf("VmSize %zu -> %zu KiB, %zu -> %zu descriptors after %zu boots\n", vm, vm_after, fds, fds_after,
           16 * (capheap_chip_count + 1));
    assert_int_equal(fds_after, fds);
    assert_true(vm_after <= vm + 4096);
}

/* ------------------------------------------------------------------------ */
/* Tables and options the simulator must refuse or accept (docs/simulator.md */
/* "Errors, by the step that returns them"), on small tables of our own.     */
/* ------------------------------------------------------------------------ */
enum { T_RAM, T_IRAM, T_EXT };
static const soc_memory_type_desc_t t_types[] = {
    [T_RAM] = {"RAM", {COMMON | MALLOC_CAP_INTERNAL | MALLOC_CAP_DMA, 0, 0}},
    [T_IRAM] = {"IRAM", {MALLOC_CAP_INTERNAL | MALLOC_CAP_32BIT, 0, 0}},
    [T_EXT] = {"SPIRAM", {MALLOC_CAP_SPIRAM, 0, COMMON}},
};

/* A one-type chip with the given rows, no image, no alias. */
static capheap_chip_t small_chip(const soc_memory_region_t *regions, size_t n)
{
    capheap_chip_t c = {0};
    c.name = "test-small";
    c.title = "small test chip";
    c.types = t_types;
    c.type_count = sizeof t_types / sizeof t_types[0];
    c.regions = regions;
    c.region_count = n;
    c.heap_size_max = 0x1000000;
    c.heap_alignment = 4;
    return c;
}

static void assert_boot_refused(const capheap_chip_t *chip, const capheap_sim_options_t *o, esp_err_t want)
{
    assert_int_equal(capheap_sim_boot(chip, o), want);
    assert_null(capheap_sim_chip());
    assert_int_equal(capheap_heap_count(), 0);
}

static void test_tables_the_host_cannot_map(void **state)
{
    (void)state;
    capheap_sim_options_t o = quiet_options();
    const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);

    /* A row that wraps the address space, and one that wraps once widened to pages. */
    soc_memory_region_t wrap[] = {{(intptr_t)(UINTPTR_MAX - page + 1u), 2 * page, T_RAM, 0, false}};
    capheap_chip_t c = small_chip(wrap, 1);
    assert_boot_refused(&c, &o, ESP_ERR_INVALID_ARG);
    soc_memory_region_t last[] = {{(intptr_t)(UINTPTR_MAX - 2 * page + 1u), page + 4, T_RAM, 0, false}};
    c = small_chip(last, 1);
    assert_boot_refused(&c, &o, ESP_ERR_INVALID_ARG);

    /* Nothing to map: only an external-RAM row, and no PSRAM asked for. */
    soc_memory_region_t ext[] = {{0x30000000, 0x100000, T_EXT, 0, false}};
    soc_reserved_region_t ext_res[] = {{0x30000000, 0x30100000}};
    c = small_chip(ext, 1);
    c.reserved = ext_res;
    c.reserved_count = 1;
    assert_boot_refused(&c, &o, ESP_ERR_INVALID_ARG);

    /* An alias window whose DRAM and IRAM ranges overlap once widened to pages. */
    soc_memory_region_t ram[] = {{0x31000000, 0x10000, T_RAM, 0, false}};
    c = small_chip(ram, 1);
    c.diram = (capheap_alias_t){CAPHEAP_ALIAS_LINEAR, 0x31000000, 0x31010000, 0x31010000 - 0x10, 0x31020000 - 0x10};
    assert_boot_refused(&c, &o, ESP_ERR_INVALID_ARG);
    /* Two alias windows that overlap each other. */
    c.diram = (capheap_alias_t){CAPHEAP_ALIAS_LINEAR, 0x31000000, 0x31010000, 0x32000000, 0x32010000};
    c.rtc = (capheap_alias_t){CAPHEAP_ALIAS_LINEAR, 0x31008000, 0x31018000, 0x33000000, 0x33010000};
    assert_boot_refused(&c, &o, ESP_ERR_INVALID_ARG);
    c.rtc = (capheap_alias_t){CAPHEAP_ALIAS_LINEAR, 0x34000000, 0x34010000, 0x32008000, 0x32018000};
    assert_boot_refused(&c, &o, ESP_ERR_INVALID_ARG);
    c.rtc = (capheap_alias_t){CAPHEAP_ALIAS_NONE, 0, 0, 0, 0}; /* the same table, sound: boots */
    assert_int_equal(capheap_sim_boot(&c, &o), ESP_OK);
    assert_int_equal(capheap_sim_shutdown(), ESP_OK);

    /* More rows than the simulator's copy holds (128 regions, 64 reservations);
     * no regions or no types at all. */
    static soc_memory_region_t many[129];
    static soc_reserved_region_t many_res[65];
    for (size_t i = 0; i < 129; i++) /* consecutive rows: they coalesce into one heap */
        many[i] = (soc_memory_region_t){(intptr_t)(0x31000000u + 0x1000u * i), 0x1000, T_RAM, 0, false};
    for (size_t i = 0; i < 65; i++) /* in no row: nothing to carve */
        many_res[i] = (soc_reserved_region_t){(intptr_t)(0x38000000u + 0x100u * i),
                                              (intptr_t)(0x38000000u + 0x100u * i + 16u)};
    c = small_chip(many, 129);
    assert_boot_refused(&c, &o, ESP_ERR_INVALID_ARG);
    c.region_count = 128;
    c.reserved = many_res;
    c.reserved_count = 65;
    assert_boot_refused(&c, &o, ESP_ERR_INVALID_ARG);
    c.reserved_count = 64;
    c.regions = NULL;
    assert_boot_refused(&c, &o, ESP_ERR_INVALID_ARG);
    c.regions = many;
    c.types = NULL;
    assert_boot_refused(&c, &o, ESP_ERR_INVALID_ARG);
    c.types = t_types; /* 128 rows and 64 reservations are within the limits */
    assert_int_equal(capheap_sim_boot(&c, &o), ESP_OK);
    assert_int_equal(capheap_sim_shutdown(), ESP_OK);
}

/* A row that lies only on the IRAM side of a linear alias window still gets
 * the window mapped as one memory: a word written through the row's address
 * reads back through its DRAM alias (docs/simulator.md, "D/IRAM aliases"). */
static void test_iram_side_row_is_aliased(void **state)
{
    (void)state;
    soc_memory_region_t rows[] = {{0x40380000, 0x8000, T_IRAM, 0x40380000, false}};
    capheap_chip_t c = small_chip(rows, 1);
    c.diram = (capheap_alias_t){CAPHEAP_ALIAS_LINEAR, 0x3FC88000, 0x3FC98000, 0x40378000, 0x40388000};
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1)
            setenv("CAPHEAP_SIM_FORCE_OFFSET", "1", 1);
        capheap_sim_options_t o = quiet_options();
        assert_int_equal(capheap_sim_boot(&c, &o), ESP_OK);
        uint32_t *p = heap_caps_malloc(64, MALLOC_CAP_32BIT);
        assert_non_null(p);
        uintptr_t i = to_chip((intptr_t)p);
        assert_true(i >= 0x40380000u && i < 0x40388000u);
        assert_true(chip_readable(i - 0x6F0000u));
        volatile uint32_t *d = to_host(i - 0x6F0000u);
        p[3] = 0xD1AA5u;
        assert_int_equal(d[3], 0xD1AA5u);
        d[4] = 0x1A5u;
        assert_int_equal(p[4], 0x1A5u);
        heap_caps_free(p);
        assert_int_equal(capheap_sim_shutdown(), ESP_OK);
    }
}

/* Options: the documented refusals and the documented limits, both ways. */
static void test_option_edges(void **state)
{
    (void)state;
    const capheap_chip_t *s3 = chip_s3();
    capheap_sim_options_t o = quiet_options(), bad;

    bad = o;
    bad.poisoning = -2; /* outside -1..2: INVALID_ARG, not "another build's mode" */
    assert_boot_refused(s3, &bad, ESP_ERR_INVALID_ARG);
    bad = o;
    bad.psram_bytes = MIB;
    bad.reserve_internal = CAPHEAP_SIM_REFERENCE; /* has no reference value */
    assert_boot_refused(s3, &bad, ESP_ERR_INVALID_ARG);
    /* The S3's PSRAM heap starts 0x110000 into its 32 MiB window: the window's
     * end is the limit, max_size itself does not fit. */
    bad = o;
    bad.psram_bytes = 0x2000000 - 0x110000 + 4096;
    assert_boot_refused(s3, &bad, ESP_ERR_INVALID_ARG);

    /* Static data may end exactly where the ROM's reserved DRAM starts... */
    capheap_sim_options_t fit = o;
    fit.static_data_bytes = 0x3FCEEE34 - 0x3FC9B000;
    fit.defer_nonos_stack_heaps = true;
    assert_int_equal(capheap_sim_boot(s3, &fit), ESP_OK);
    assert_int_equal(capheap_sim_shutdown(), ESP_OK);
    /* ...and the IRAM text's DRAM alias must not run into it (refused in step 2,
     * not left to heap_caps_init's overlap check). */
    bad = o;
    bad.static_data_bytes = 0;
    bad.iram_text_bytes = 0x403DEE38 - 0x40374000;
    assert_boot_refused(s3, &bad, ESP_ERR_INVALID_ARG);
    bad.iram_text_bytes = 0x403DEE34 - 0x40374000; /* up to the reservation: fits */
    assert_int_equal(capheap_sim_boot(s3, &bad), ESP_OK);
    assert_int_equal(capheap_sim_shutdown(), ESP_OK);

    /* No IRAM text: the static data starts at the window's first DRAM byte,
     * which is the first byte of a region (docs: "right after the DRAM alias
     * of the IRAM text's end"; the text ends below the window). */
    capheap_sim_options_t data_only = o;
    data_only.iram_text_bytes = 0;
    data_only.static_data_bytes = 0x1000;
    assert_int_equal(capheap_sim_boot(s3, &data_only), ESP_OK);
    capheap_heap_desc_t d;
    bool found = false;
    for (size_t i = 0; i < capheap_heap_count(); i++) {
        assert_true(capheap_heap_get(i, &d));
        found = found || to_chip(d.start) == 0x3FC89000u;
    }
    assert_true(found);
    assert_int_equal(capheap_sim_shutdown(), ESP_OK);

    /* Static data with data_start 0 on a chip without a linear D/IRAM alias has
     * no place, even where a row starts at address 0 (STM32H743's ITCM). */
    soc_memory_region_t at_zero[] = {{0, 0x10000, T_RAM, 0, false}};
    capheap_chip_t z = small_chip(at_zero, 1);
    capheap_sim_options_t zo = o;
    zo.iram_text_bytes = 0;
    zo.static_data_bytes = 0x100;
    assert_boot_refused(&z, &zo, ESP_ERR_INVALID_ARG);
    zo.static_data_bytes = 0; /* without static data the same table boots */
    assert_int_equal(capheap_sim_boot(&z, &zo), ESP_OK);
    assert_int_equal(capheap_sim_shutdown(), ESP_OK);

    /* ...nor with an inverted alias (ESP32-like): data_start 0 is derived only
     * from a linear one. */
    soc_memory_region_t diram[] = {{0x3FFE0000, 0x20000, T_RAM, 0x400A0000, false}};
    capheap_chip_t inv = small_chip(diram, 1);
    inv.diram = (capheap_alias_t){CAPHEAP_ALIAS_INVERTED, 0x3FFE0000, 0x40000000, 0x400A0000, 0x400C0000};
    inv.image = (capheap_image_t){0x40080000, 0x1000, 0, 0, 0, 0};
    zo = o;
    zo.static_data_bytes = 0x100;
    assert_boot_refused(&inv, &zo, ESP_ERR_INVALID_ARG);
    zo.static_data_bytes = 0;
    assert_int_equal(capheap_sim_boot(&inv, &zo), ESP_OK);
    assert_int_equal(capheap_sim_shutdown(), ESP_OK);

    /* C6: IRAM text running into the static data that follows it is refused. */
    const capheap_chip_t *c6 = capheap_chip_find("esp32c6");
    if (c6 != NULL) {
        bad = o;
        bad.iram_text_bytes = c6->image.iram_text_size + 0x1000;
        assert_boot_refused(c6, &bad, ESP_ERR_INVALID_ARG);
    }
}

/* With PSRAM: extmem_always_internal is the malloc policy's limit, and the DMA
 * pool comes in several chunks when no single block is big enough. */
/* heap_alignment: every heap of the chip (start-up, PSRAM, DMA pool) at the
 * alignment asked for instead of the table's 4, so that a 64-bit host's
 * pointer-holding objects are aligned; 0 keeps the chip's; anything but 0, 4,
 * 8 or 16 is refused. */
static void test_heap_alignment_option(void **state)
{
    (void)state;
    const capheap_chip_t *s3 = chip_s3();
    capheap_sim_options_t o = quiet_options(), bad = o;
    bad.heap_alignment = 12;
    assert_boot_refused(s3, &bad, ESP_ERR_INVALID_ARG);
    bad.heap_alignment = 2;
    assert_boot_refused(s3, &bad, ESP_ERR_INVALID_ARG);

    static const unsigned aligns[] = {0, 4, 8, 16};
    for (size_t a = 0; a < sizeof aligns / sizeof aligns[0]; a++) {
        capheap_sim_options_t opt = o;
        opt.heap_alignment = aligns[a];
        opt.psram_bytes = MIB; /* the PSRAM heap and the DMA pool too */
        assert_int_equal(capheap_sim_boot(s3, &opt), ESP_OK);
        size_t want = aligns[a] != 0 ? aligns[a] : s3->heap_alignment;
        assert_int_equal(capheap_caps_chip()->heap_alignment, want);
        assert_ptr_equal(capheap_sim_chip(), s3); /* the caller's table is untouched */
        assert_int_equal(s3->heap_alignment, 4);
        assert_true(capheap_heap_count() >= 5);
        for (size_t i = 0; i < capheap_heap_count(); i++) {
            capheap_heap_desc_t d;
            assert_true(capheap_heap_get(i, &d));
            assert_int_equal(capheap_heap_alignment(d.heap), want);
        }
        void *p[64];
        for (size_t i = 0; i < 64; i++) {
            p[i] = heap_caps_malloc(1 + i * 7, i % 2 ? MALLOC_CAP_DEFAULT : MALLOC_CAP_SPIRAM);
            assert_non_null(p[i]);
            assert_int_equal((uintptr_t)p[i] % want, 0);
        }
        for (size_t i = 0; i < 64; i++)
            heap_caps_free(p[i]);
        assert_true(heap_caps_check_integrity_all(true));
        assert_int_equal(capheap_sim_shutdown(), ESP_OK);
    }
}

static void test_psram_policy_and_pool_chunks(void **state)
{
    (void)state;
    capheap_sim_options_t o = quiet_options();
    o.psram_bytes = 4 * MIB;
    o.extmem_always_internal = 4096;
    o.reserve_internal = 0; /* the largest DMA block as the pool will find it */
    assert_int_equal(capheap_sim_boot(chip_s3(), &o), ESP_OK);
    void *a = heap_caps_malloc_default(4000), *b = heap_caps_malloc_default(8000);
    assert_non_null(a);
    assert_non_null(b);
    assert_true(caps_of(a) & MALLOC_CAP_INTERNAL);
    assert_true(caps_of(b) & MALLOC_CAP_SPIRAM); /* above 4096: external first */
    heap_caps_free(a);
    heap_caps_free(b);
    size_t largest = heap_caps_get_largest_free_block(MALLOC_CAP_DMA | MALLOC_CAP_INTERNAL);
    assert_int_equal(capheap_sim_shutdown(), ESP_OK);

    /* A pool bigger than the largest DMA block: two chunks, the full amount. */
    o.extmem_always_internal = 16384;
    o.reserve_internal = (largest + 16 * KIB) & ~(size_t)3u;
    assert_int_equal(capheap_sim_boot(chip_s3(), &o), ESP_OK);
    size_t pool = 0, chunks = 0;
    for (size_t i = 0; i < capheap_heap_count(); i++) {
        capheap_heap_desc_t d;
        assert_true(capheap_heap_get(i, &d));
        if (d.runtime && d.caps[0] == 0 && d.caps[1] == (MALLOC_CAP_DMA | MALLOC_CAP_INTERNAL)) {
            pool += (size_t)(d.end - d.start);
            chunks++;
        }
    }
    printf("pool of %zu bytes in %zu chunks\n", pool, chunks);
    assert_int_equal(pool, o.reserve_internal);
    assert_true(chunks >= 2);
}

/* IRAM text inside the D/IRAM window reserves its DRAM alias: linear on a
 * small chip (text that ends exactly at iram_high is fine), inverted on the
 * ESP32 (IRAM [a, b) is DRAM [dram_low + iram_high - b, dram_low + iram_high - a)). */
static void test_iram_text_in_the_window(void **state)
{
    (void)state;
    soc_memory_region_t rows[] = {
        {0x3FC88000, 0x10000, T_RAM, 0x40378000, false},
        {0x3FC98000, 0x8000, T_RAM, 0, false},
    };
    capheap_chip_t c = small_chip(rows, 2);
    c.diram = (capheap_alias_t){CAPHEAP_ALIAS_LINEAR, 0x3FC88000, 0x3FC98000, 0x40378000, 0x40388000};
    c.image = (capheap_image_t){0x40378000, 0x10000, 0, 0, 0, 0};
    capheap_sim_options_t o = quiet_options();
    o.static_data_bytes = 0;
    o.iram_text_bytes = 0x10000; /* [iram_low, iram_high) exactly */
    assert_int_equal(capheap_sim_boot(&c, &o), ESP_OK);
    assert_int_equal(capheap_heap_count(), 1); /* the whole window row is the text */
    capheap_heap_desc_t d;
    assert_true(capheap_heap_get(0, &d));
    assert_int_equal(to_chip(d.start), 0x3FC98000u);
    assert_int_equal(capheap_sim_shutdown(), ESP_OK);
    o.iram_text_bytes = 0x10004; /* one word past iram_high */
    assert_boot_refused(&c, &o, ESP_ERR_INVALID_ARG);

    /* Text that starts below the window is clipped to it before translation
     * (docs/adding-a-chip.md 4.1): the DRAM below the window's DRAM side stays
     * a whole heap. */
    soc_memory_region_t below[] = {
        {0x3FC80000, 0x8000, T_RAM, 0, false},
        {0x3FC88000, 0x10000, T_RAM, 0x40378000, false},
    };
    capheap_chip_t b = small_chip(below, 2);
    b.diram = c.diram;
    b.image = (capheap_image_t){0x40374000, 0x8000, 0, 0, 0, 0};
    o = quiet_options();
    o.static_data_bytes = 0;
    assert_int_equal(capheap_sim_boot(&b, &o), ESP_OK);
    size_t whole = 0;
    for (size_t i = 0; i < capheap_heap_count(); i++) {
        assert_true(capheap_heap_get(i, &d));
        whole += to_chip(d.start) == 0x3FC80000u && to_chip(d.end) == 0x3FC88000u;
        assert_false(to_chip(d.start) < 0x3FC8C000u && to_chip(d.end) > 0x3FC88000u); /* the text's alias */
    }
    assert_int_equal(whole, 1);
    assert_int_equal(capheap_sim_shutdown(), ESP_OK);

    /* ESP32: text 0x40080000..0x400A4000 reaches 16 KiB into the IRAM window,
     * whose DRAM alias is the window's top 16 KiB, 0x3FFFC000..0x40000000. */
    const capheap_chip_t *e = chip_esp32();
    o = quiet_options();
    o.iram_text_bytes = 0x400A4000u - (uintptr_t)e->image.iram_text_start;
    assert_int_equal(capheap_sim_boot(e, &o), ESP_OK);
    bool ends_there = false;
    for (size_t i = 0; i < capheap_heap_count(); i++) {
        assert_true(capheap_heap_get(i, &d));
        assert_false(to_chip(d.end) > 0x3FFFC000u && to_chip(d.start) < 0x40000000u);
        ends_there = ends_there || to_chip(d.end) == 0x3FFFC000u;
    }
    assert_true(ends_there);
}

/* heap_caps initialised outside the simulator: the boot is refused in step 4
 * with ESP_ERR_INVALID_STATE and those heaps are left alone (docs/simulator.md). */
static void test_foreign_heaps_left_alone(void **state)
{
    (void)state;
    static uint32_t ram[4096];
    soc_memory_region_t rows[] = {{(intptr_t)ram, sizeof ram, T_RAM, 0, false}};
    capheap_chip_t host = small_chip(rows, 1);
    assert_int_equal(capheap_caps_init(&host, NULL, 0), ESP_OK);
    size_t n = capheap_heap_count();
    assert_true(n > 0);
    void *p = heap_caps_malloc(100, MALLOC_CAP_DEFAULT);
    assert_non_null(p);
    capheap_sim_options_t o = quiet_options();
    assert_int_equal(capheap_sim_boot(chip_s3(), &o), ESP_ERR_INVALID_STATE);
    assert_null(capheap_sim_chip());
    assert_int_equal(capheap_heap_count(), n);
    assert_ptr_equal(capheap_caps_chip(), &host);
    assert_true(heap_caps_check_integrity_all(true));
    heap_caps_free(p);
    capheap_caps_reset();
}

/* esp_memory_utils.h on a booted chip: answers from the (translated) chip
 * table and the heaps added at run time (the header says how each counts). */
static void test_memory_utils(void **state)
{
    (void)state;
    static uint32_t host_static[64];
    uint32_t on_stack = 0;
    /* No chip: nothing is the chip's, only alignment is known. */
    assert_false(esp_ptr_dma_capable(host_static));
    assert_false(esp_ptr_internal(&on_stack));
    assert_false(esp_ptr_byte_accessible(host_static));
    assert_true(esp_ptr_word_aligned(host_static));
    assert_false(esp_ptr_word_aligned((const char *)host_static + 2));

    capheap_sim_options_t o = quiet_options();
    o.psram_bytes = 2u << 20;
    assert_int_equal(capheap_sim_boot(chip_s3(), &o), ESP_OK);
    const capheap_chip_t *c = capheap_caps_chip(); /* host addresses */
    void *dma = heap_caps_malloc(64, MALLOC_CAP_DMA);
    void *ext = heap_caps_malloc(64, MALLOC_CAP_SPIRAM);
    void *rtc = heap_caps_malloc(64, MALLOC_CAP_RTCRAM);
    assert_non_null(dma);
    assert_non_null(ext);
    assert_non_null(rtc);
    assert_true(esp_ptr_dma_capable(dma));
    assert_true(esp_ptr_internal(dma));
    assert_false(esp_ptr_external_ram(dma));
    assert_true(esp_ptr_byte_accessible(dma));
    assert_false(esp_ptr_dma_capable(ext)); /* the S3 registers PSRAM without DMA (chips.md 0.4) */
    assert_false(esp_ptr_internal(ext));
    assert_true(esp_ptr_external_ram(ext));
    assert_true(esp_ptr_byte_accessible(ext));
    assert_true(esp_ptr_internal(rtc));
    assert_false(esp_ptr_dma_capable(rtc));
    assert_false(esp_ptr_external_ram(rtc));
    /* The external RAM window counts, also where no heap lies. */
    assert_true(esp_ptr_external_ram((const void *)(c->extram.window_start + 16)));
    assert_false(esp_ptr_external_ram((const void *)(c->extram.window_start + (intptr_t)c->extram.window_size)));
    /* Host memory is no part of the chip. */
    assert_false(esp_ptr_dma_capable(host_static));
    assert_false(esp_ptr_internal(&on_stack));
    /* Every row counts with its type's caps, the parts reserved for static data
     * and the ROM included (a static DMA buffer is DMA-capable on the chip). */
    for (size_t i = 0; i < c->region_count; i++) {
        const soc_memory_region_t *r = &c->regions[i];
        const uint32_t *t = c->types[r->type].caps;
        uint32_t all = t[0] | t[1] | t[2];
        const void *first = (const void *)r->start, *last = (const void *)(r->start + (intptr_t)r->size - 1);
        assert_int_equal(esp_ptr_dma_capable(first), (all & MALLOC_CAP_DMA) != 0);
        assert_int_equal(esp_ptr_dma_capable(last), (all & MALLOC_CAP_DMA) != 0);
        assert_int_equal(esp_ptr_internal(first), (all & MALLOC_CAP_INTERNAL) != 0);
        assert_int_equal(esp_ptr_external_ram(first), (all & MALLOC_CAP_SPIRAM) != 0); /* the window's row */
    }
    /* D/IRAM: the DMA block's DRAM address and its IRAM alias. */
    assert_true(esp_ptr_in_diram_dram(dma));
    assert_false(esp_ptr_in_diram_iram(dma));
    void *i = esp_ptr_diram_dram_to_iram(dma);
    assert_true(esp_ptr_in_diram_iram(i));
    assert_int_equal((uintptr_t)i - (uintptr_t)c->diram.iram_low, (uintptr_t)dma - (uintptr_t)c->diram.dram_low);
    assert_ptr_equal(esp_ptr_diram_iram_to_dram(i), dma);
    assert_true(esp_ptr_internal(i));
    assert_ptr_equal(esp_ptr_diram_dram_to_iram(ext), ext); /* not in the window: itself */
    assert_ptr_equal(esp_ptr_diram_iram_to_dram(dma), dma);
    /* The windows are [low, high): the last byte is in, high is not. */
    assert_true(esp_ptr_in_diram_dram((const void *)(c->diram.dram_high - 1)));
    assert_false(esp_ptr_in_diram_dram((const void *)c->diram.dram_high));
    assert_true(esp_ptr_in_diram_iram((const void *)(c->diram.iram_high - 1)));
    assert_false(esp_ptr_in_diram_iram((const void *)c->diram.iram_high));
    assert_ptr_equal(esp_ptr_diram_dram_to_iram((const void *)c->diram.dram_high), (void *)c->diram.dram_high);
    assert_ptr_equal(esp_ptr_diram_iram_to_dram((const void *)c->diram.iram_high), (void *)c->diram.iram_high);
    heap_caps_free(dma);
    heap_caps_free(ext);
    heap_caps_free(rtc);
    assert_int_equal(capheap_sim_shutdown(), ESP_OK);

    /* ESP32: the inverted window, ESP-IDF's formula (word order reversed). */
    assert_int_equal(capheap_sim_boot(chip_esp32(), &o), ESP_OK);
    c = capheap_caps_chip();
    const void *d0 = (const void *)c->diram.dram_low;
    assert_ptr_equal(esp_ptr_diram_dram_to_iram(d0), (void *)(c->diram.iram_high - 4));
    assert_ptr_equal(esp_ptr_diram_iram_to_dram((const void *)(c->diram.iram_high - 4)), d0);
    const void *d = (const void *)(c->diram.dram_low + 0x100);
    assert_ptr_equal(esp_ptr_diram_iram_to_dram(esp_ptr_diram_dram_to_iram(d)), d);
    /* Its RTC fast memory has an IRAM alias too: internal on either side. */
    assert_int_not_equal(c->rtc.kind, CAPHEAP_ALIAS_NONE);
    assert_true(esp_ptr_internal((const void *)c->rtc.iram_low));
    assert_true(esp_ptr_internal((const void *)(c->rtc.iram_high - 1)));
    assert_false(esp_ptr_internal((const void *)c->rtc.iram_high));
    assert_int_equal(capheap_sim_shutdown(), ESP_OK);

    /* The RP2350's PSRAM window has no row in its table: the window alone
     * makes an address external and byte-accessible (ESP-IDF's rule), also
     * past the PSRAM that was added. */
    o.psram_bytes = 1u << 20;
    assert_int_equal(capheap_sim_boot(&capheap_chip_rp2350, &o), ESP_OK);
    c = capheap_caps_chip();
    const void *window_end = (const void *)(c->extram.window_start + (intptr_t)c->extram.window_size - 4);
    assert_true(c->extram.window_size > o.psram_bytes);
    assert_true(esp_ptr_external_ram(window_end));
    assert_true(esp_ptr_byte_accessible(window_end));
    assert_false(esp_ptr_byte_accessible((const void *)(c->extram.window_start + (intptr_t)c->extram.window_size)));
    assert_int_equal(capheap_sim_shutdown(), ESP_OK);

    /* A heap added at run time counts with its caps, with no chip started. */
    const uint32_t caps[3] = {MALLOC_CAP_DMA | MALLOC_CAP_INTERNAL | MALLOC_CAP_8BIT, 0, 0};
    assert_int_equal(heap_caps_add_region_with_caps(caps, (intptr_t)host_static,
                                                    (intptr_t)(host_static + 64)), ESP_OK);
    assert_true(esp_ptr_dma_capable(&host_static[10]));
    assert_true(esp_ptr_internal(&host_static[10]));
    assert_false(esp_ptr_external_ram(&host_static[10]));
    assert_false(esp_ptr_dma_capable(&on_stack));
    capheap_caps_reset();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_s3_reference_heaps_and_figures, teardown),
        cmocka_unit_test_teardown(test_s3_boot_log_and_heap_info, teardown),
        cmocka_unit_test_teardown(test_boot_log_in_table_order, teardown),
        cmocka_unit_test_teardown(test_s3_diram_alias, teardown),
        cmocka_unit_test_teardown(test_esp32_exec_from_diram, teardown),
        cmocka_unit_test_teardown(test_esp32_exec_aligned_containing_size, teardown),
        cmocka_unit_test_teardown(test_states_and_errors, teardown),
        cmocka_unit_test_teardown(test_no_iram_text_chips_refuse_iram_text, teardown),
        cmocka_unit_test_teardown(test_failure_after_boot_log, teardown),
        cmocka_unit_test_teardown(test_offset_path_same_heaps, teardown),
        cmocka_unit_test_teardown(test_s3_psram, teardown),
        cmocka_unit_test_teardown(test_every_builtin_chip, teardown),
        cmocka_unit_test_teardown(test_real_addresses_when_free, teardown),
        cmocka_unit_test_teardown(test_what_is_mapped_and_its_log, teardown),
        cmocka_unit_test_teardown(test_offset_translates_the_whole_table, teardown),
        cmocka_unit_test_teardown(test_boot_cycles_give_everything_back, teardown),
        cmocka_unit_test_teardown(test_tables_the_host_cannot_map, teardown),
        cmocka_unit_test_teardown(test_iram_side_row_is_aliased, teardown),
        cmocka_unit_test_teardown(test_option_edges, teardown),
        cmocka_unit_test_teardown(test_psram_policy_and_pool_chunks, teardown),
        cmocka_unit_test_teardown(test_iram_text_in_the_window, teardown),
        cmocka_unit_test_teardown(test_foreign_heaps_left_alone, teardown),
        cmocka_unit_test_teardown(test_memory_utils, teardown),
        cmocka_unit_test_teardown(test_heap_alignment_option, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
