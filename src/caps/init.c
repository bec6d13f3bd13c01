/*
 * init.c - heap_caps_init() on a target, and ESP-IDF's available-region query.
 *
 * The chip comes from the build (CAPHEAP_CHIP=esp32s3 names a built-in table)
 * or, with no chip selected, from the firmware's own ESP-IDF-style tables
 * (soc_memory_types[] and friends: weak references here, so a firmware
 * without them still links). The firmware's reservations come from the
 * section SOC_RESERVE_MEMORY_REGION() fills: GNU ld's automatic
 * __start_/__stop_capheap_reserved_regions, or ESP-IDF's linker-script
 * symbols soc_reserved_memory_region_start / _end. A host build has no chip at link time: it boots one with
 * capheap_sim_boot() (sim/), which calls capheap_caps_init() directly.
 */
#include "caps/caps_private.h"

#if defined(__GNUC__)
#define CH_WEAK __attribute__((weak))
#define CH_ONE_COPY __attribute__((noinline))
#define CH_ALWAYS_INLINE static inline __attribute__((always_inline))
#else
#define CH_WEAK
#define CH_ONE_COPY
#define CH_ALWAYS_INLINE static inline
#endif

extern CH_WEAK const soc_reserved_region_t soc_reserved_memory_region_start[];
extern CH_WEAK const soc_reserved_region_t soc_reserved_memory_region_end[];
extern CH_WEAK const soc_reserved_region_t __start_capheap_reserved_regions[];
extern CH_WEAK const soc_reserved_region_t __stop_capheap_reserved_regions[];
extern CH_WEAK const soc_memory_type_desc_t soc_memory_types[];
extern CH_WEAK const size_t soc_memory_type_count;
extern CH_WEAK const soc_memory_region_t soc_memory_regions[];
extern CH_WEAK const size_t soc_memory_region_count;

#if CAPHEAP_CHIP_SELECTED
extern const capheap_chip_t CAPHEAP_CHIP_SYMBOL;
#endif

#if !CAPHEAP_CHIP_SELECTED
/* The firmware's ESP-IDF tables as a chip without alias, cache or SIMD rules
 * (a built-in table or capheap_caps_init() gives those). */
static capheap_chip_t idf_tables;
#endif

/* The chip in use, else the one the build selected (by symbol, so a firmware
 * links only its own table), else the firmware's ESP-IDF tables, or NULL. */
static const capheap_chip_t *selected_chip(void)
{
    if (ch_g.chip != NULL)
        return ch_g.chip;
#if CAPHEAP_CHIP_SELECTED
    return &CAPHEAP_CHIP_SYMBOL;
#else
    if (&soc_memory_type_count == NULL || &soc_memory_region_count == NULL)
        return NULL;
    idf_tables.name = "idf";
#if CAPHEAP_PORT_HOST
    idf_tables.title = "the firmware's ESP-IDF memory layout tables";
#endif
    idf_tables.types = soc_memory_types;
    idf_tables.type_count = soc_memory_type_count;
    idf_tables.regions = soc_memory_regions;
    idf_tables.region_count = soc_memory_region_count;
    idf_tables.heap_alignment = 4;
    return &idf_tables;
#endif
}

/* ESP-IDF's linker-script pair if both are there, else GNU ld's. The tests
 * as | (both sides are plain loads): no branch per symbol. Inlined into
 * heap_caps_init(), which every firmware links (-24 B on Cortex-M4: no
 * out-parameter in memory, no call; -20 B for a firmware that calls the
 * region queries too); firmware_reserved() below is their one copy. */
CH_ALWAYS_INLINE size_t reserved_regions(const soc_reserved_region_t **out)
{
    const soc_reserved_region_t *a = soc_reserved_memory_region_start, *b = soc_reserved_memory_region_end;
    if ((a == NULL) | (b == NULL)) {
        a = __start_capheap_reserved_regions;
        b = __stop_capheap_reserved_regions;
    }
    *out = a;
    return a != NULL && b != NULL ? (size_t)(b - a) : 0;
}

/* reserved_regions() for the queries: one copy for the two (gcc -Os
 * inlines the form above into each caller). */
CH_ONE_COPY static size_t firmware_reserved(const soc_reserved_region_t **out)
{
    return reserved_regions(out);
}

/* Expected ESP_OK (0), found err. */
static void init_failed(const char *what, esp_err_t err)
{
    ch_report_fatal(what, NULL, (uint32_t)err);
}

void heap_caps_init(void)
{
    /* capheap_caps_init refuses a second call with ESP_ERR_INVALID_STATE (and
     * a chip or reservations it cannot use with another error). */
#if CAPHEAP_CHIP_SELECTED
    const capheap_chip_t *chip = &CAPHEAP_CHIP_SYMBOL; /* in use already: refused as a second call */
#else
    const capheap_chip_t *chip = selected_chip();
#endif
    const char *what = "heap_caps_init: no chip selected (CAPHEAP_CHIP, or capheap_sim_boot on a host)";
    esp_err_t err = ESP_ERR_INVALID_STATE;
    if (chip != NULL) {
        const soc_reserved_region_t *res;
        size_t n = reserved_regions(&res);
#if CAPHEAP_CHIP_SELECTED
        err = ch_caps_init(chip, res, n); /* the table compiled in: tests/caps/test_chips.c checks it */
#else
        err = capheap_caps_init(chip, res, n);
#endif
        what = err == ESP_ERR_INVALID_STATE ? "heap_caps_init: called twice"
                                            : "heap_caps_init: invalid memory map or reservations";
    }
    if (err != ESP_OK)
        init_failed(what, err);
}

size_t soc_get_available_memory_region_max_count(void)
{
    const capheap_chip_t *chip = selected_chip();
    const soc_reserved_region_t *res;
    size_t n = ch_g.chip != NULL ? ch_g.n_reserved : firmware_reserved(&res);
    return chip == NULL ? 0 : chip->region_count + chip->reserved_count + n;
}

size_t soc_get_available_memory_regions(soc_memory_region_t *out)
{
    const capheap_chip_t *chip = selected_chip();
    if (chip == NULL || out == NULL)
        return 0;
    const soc_reserved_region_t *res = ch_g.reserved;
    size_t n = ch_g.chip != NULL ? ch_g.n_reserved : firmware_reserved(&res);
    esp_err_t err;
    size_t count = ch_carve(chip, res, n, out, &err);
    if (err != ESP_OK)
        init_failed(err == ESP_FAIL ? "soc_get_available_memory_regions: overlapping reservations"
                                    : "soc_get_available_memory_regions: a reservation ends before it starts",
                    err);
    return count;
}
