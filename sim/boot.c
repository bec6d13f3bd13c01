/*
 * sim/boot.c - the start-up sequence of a simulated chip (capheap/sim.h).
 *
 * capheap_sim_boot() does on a Linux host what a chip's ROM, linker and
 * start-up code do on silicon, in ESP-IDF's order (spec 0, chips.md 0.4):
 *
 *   1. check the options against the chip (sizes, poisoning of this build,
 *      the heap alignment, which replaces the table's in the copy step 3
 *      hands to heap_caps);
 *   2. compute the firmware image's reservations from the chip's image model:
 *        IRAM text   [iram_text_start, +iram_text_bytes) and, where it lies in
 *                    the D/IRAM window, the same bytes seen from the DRAM side;
 *        static data [data_start, +static_data_bytes), data_start 0 meaning
 *                    "right after the DRAM alias of the IRAM text";
 *        RTC data    [rtc_data_start, +rtc_data_size);
 *   3. back the chip with host memory (sim/map.c), at its real addresses or at
 *      one offset; with an offset, translate a private copy of the chip table
 *      (regions, reservations, alias windows, image, external RAM), because
 *      heap_caps works on host addresses and references the table it is given;
 *   4. capheap_caps_init(chip, image reservations)        (heap_caps_init),
 *      then an ESP-IDF-style boot log of the start-up heaps (chip addresses)
 *      unless quiet;
 *   5. with PSRAM: capheap_caps_add_region(extram.caps, ...) and
 *      heap_caps_malloc_extmem_enable(extmem_always_internal)
 *   6. unless deferred: heap_caps_enable_nonos_stack_heaps(), then with PSRAM
 *      the internal DMA pool (reserve_internal bytes of DMA|INTERNAL memory
 *      re-registered as {0, DMA|INTERNAL, DEFAULT|8BIT|32BIT}, in as many
 *      chunks as the free blocks require, like esp_psram_extram_reserve_dma_pool).
 * A boot that fails in step 5 or 6 has printed the log already (docs/simulator.md).
 *
 * The image arithmetic, worked for the ESP32-S3 reference image: IRAM text
 * 0x40374000..0x4038B000 touches the D/IRAM window from 0x40378000, whose
 * DRAM alias is 0x3FC88000..0x3FC9B000; static data follows at 0x3FC9B000 up
 * to 0x3FC9D3A8; the first RAM heap therefore starts at 0x3FC9D3A8. For an
 * inverted alias (ESP32) IRAM word i is DRAM word dram_low + (iram_high - i) - 4,
 * so the IRAM bytes [a, b) are the DRAM bytes
 * [dram_low + iram_high - b, dram_low + iram_high - a).
 *
 * State is one static record: one chip per process. Not thread-safe; boot and
 * shut down from one thread while no other thread uses the heap API.
 */
#include <stdlib.h>
#include <string.h>

#include "capheap/caps.h"
#include "capheap/config.h"
#include "capheap/port.h"
#include "capheap/sim.h"
#include "esp_heap_caps.h"
#include "esp_heap_caps_init.h"
#include "sim_map.h"

/* Largest chip table the translated copy can hold (the biggest built-in one has ~45 rows). */
#define SIM_MAX_REGIONS 128
#define SIM_MAX_RESERVED 64
/* IRAM text, its DRAM alias, static data, RTC data. */
#define SIM_IMAGE_RESERVATIONS 4
/* The internal DMA pool may come in a few chunks (one per heap with room). */
#define SIM_MAX_POOL_CHUNKS 8

static struct {
    bool booted;
    const capheap_chip_t *chip;     /* the table the caller passed */
    capheap_sim_map_result_t map;
    capheap_chip_t shifted;         /* the translated copy (offset path) */
    soc_memory_region_t regions[SIM_MAX_REGIONS];
    soc_reserved_region_t reserved[SIM_MAX_RESERVED];
    soc_reserved_region_t image[SIM_IMAGE_RESERVATIONS];
    size_t image_count;
} sim;

static intptr_t shift(intptr_t a, intptr_t offset)
{
    return (intptr_t)((uintptr_t)a + (uintptr_t)offset);
}

/* Shift an address field that uses 0 for "none". */
static intptr_t shift_nonzero(intptr_t a, intptr_t offset)
{
    return a == 0 ? 0 : shift(a, offset);
}

static int build_poisoning(void)
{
#if CAPHEAP_POISONING_COMPREHENSIVE
    return 2;
#elif CAPHEAP_POISONING_LIGHT
    return 1;
#else
    return 0;
#endif
}

static bool type_is_external(const capheap_chip_t *chip, size_t type)
{
    for (size_t p = 0; type < chip->type_count && p < SOC_MEMORY_TYPE_NO_PRIOS; p++)
        if (chip->types[type].caps[p] & MALLOC_CAP_SPIRAM)
            return true;
    return false;
}

/* True iff the internal regions of chip cover every byte of [s, e) (rows may be consecutive). */
static bool covered_by_regions(const capheap_chip_t *chip, uintptr_t s, uintptr_t e)
{
    while (s < e) {
        bool found = false;
        for (size_t i = 0; i < chip->region_count && !found; i++) {
            const soc_memory_region_t *r = &chip->regions[i];
            uintptr_t r0 = (uintptr_t)r->start, r1 = r0 + r->size;
            if (!type_is_external(chip, r->type) && r0 <= s && s < r1) {
                s = r1;
                found = true;
            }
        }
        if (!found)
            return false;
    }
    return true;
}

static bool overlaps_fixed(const capheap_chip_t *chip, uintptr_t s, uintptr_t e)
{
    for (size_t i = 0; i < chip->reserved_count; i++)
        if (s < (uintptr_t)chip->reserved[i].end && (uintptr_t)chip->reserved[i].start < e)
            return true;
    return false;
}

static void add_image(uintptr_t s, uintptr_t e)
{
    if (s < e)
        sim.image[sim.image_count++] = (soc_reserved_region_t){(intptr_t)s, (intptr_t)e};
}

/* Step 2: the image's reservations in chip addresses; ESP_ERR_INVALID_ARG if they do not fit the chip. */
static esp_err_t plan_image(const capheap_chip_t *chip, size_t iram_bytes, size_t data_bytes)
{
    const capheap_image_t *img = &chip->image;
    const capheap_alias_t *al = &chip->diram;
    uintptr_t t0 = (uintptr_t)img->iram_text_start, t1 = t0 + iram_bytes;
    uintptr_t data_start = (uintptr_t)img->data_start;
    sim.image_count = 0;
    if (t1 < t0 || (iram_bytes > 0 && t0 == 0))
        return ESP_ERR_INVALID_ARG;

    if (al->kind != CAPHEAP_ALIAS_NONE && t0 != 0) {
        uintptr_t il = (uintptr_t)al->iram_low, ih = (uintptr_t)al->iram_high, dl = (uintptr_t)al->dram_low;
        if (t0 < ih && t1 > ih)
            return ESP_ERR_INVALID_ARG; /* text runs past the end of D/IRAM */
        uintptr_t a = t0 > il ? t0 : il, b = t1 < ih ? t1 : ih;
        if (a < b) {
            if (al->kind == CAPHEAP_ALIAS_LINEAR)
                add_image(dl + (a - il), dl + (b - il));
            else
                add_image(dl + (ih - b), dl + (ih - a));
        }
        if (data_start == 0 && al->kind == CAPHEAP_ALIAS_LINEAR) {
            uintptr_t end = t1 < il ? il : (t1 > ih ? ih : t1);
            data_start = dl + (end - il);
        }
    }
    add_image(t0, t1);
    if (data_bytes > 0) {
        uintptr_t d1 = data_start + data_bytes;
        if (data_start == 0 || d1 < data_start || !covered_by_regions(chip, data_start, d1) ||
            overlaps_fixed(chip, data_start, d1))
            return ESP_ERR_INVALID_ARG;
        for (size_t i = 0; i < sim.image_count; i++)
            if (data_start < (uintptr_t)sim.image[i].end && (uintptr_t)sim.image[i].start < d1)
                return ESP_ERR_INVALID_ARG;
        add_image(data_start, d1);
    }
    for (size_t i = 0; i < sim.image_count; i++)
        if (overlaps_fixed(chip, (uintptr_t)sim.image[i].start, (uintptr_t)sim.image[i].end))
            return ESP_ERR_INVALID_ARG;
    if (img->rtc_data_size > 0) /* fixed by the image model; the table's own business if it overlaps */
        add_image((uintptr_t)img->rtc_data_start, (uintptr_t)img->rtc_data_start + img->rtc_data_size);
    return ESP_OK;
}

/* Step 3: the chip as heap_caps must see it on this host. */
static const capheap_chip_t *translate(const capheap_chip_t *chip, intptr_t off)
{
    for (size_t i = 0; i < sim.image_count; i++) {
        sim.image[i].start = shift(sim.image[i].start, off);
        sim.image[i].end = shift(sim.image[i].end, off);
    }
    if (off == 0)
        return chip;
    sim.shifted = *chip;
    for (size_t i = 0; i < chip->region_count; i++) {
        sim.regions[i] = chip->regions[i];
        sim.regions[i].start = shift(chip->regions[i].start, off);
        sim.regions[i].iram_address = shift_nonzero(chip->regions[i].iram_address, off);
    }
    for (size_t i = 0; i < chip->reserved_count; i++) {
        sim.reserved[i].start = shift(chip->reserved[i].start, off);
        sim.reserved[i].end = shift(chip->reserved[i].end, off);
    }
    sim.shifted.regions = sim.regions;
    sim.shifted.reserved = sim.reserved;
    capheap_alias_t *aliases[2] = {&sim.shifted.diram, &sim.shifted.rtc};
    for (int a = 0; a < 2; a++) {
        if (aliases[a]->kind == CAPHEAP_ALIAS_NONE)
            continue;
        aliases[a]->dram_low = shift(aliases[a]->dram_low, off);
        aliases[a]->dram_high = shift(aliases[a]->dram_high, off);
        aliases[a]->iram_low = shift(aliases[a]->iram_low, off);
        aliases[a]->iram_high = shift(aliases[a]->iram_high, off);
    }
    sim.shifted.image.iram_text_start = shift_nonzero(chip->image.iram_text_start, off);
    sim.shifted.image.data_start = shift_nonzero(chip->image.data_start, off);
    sim.shifted.image.rtc_data_start = shift_nonzero(chip->image.rtc_data_start, off);
    sim.shifted.extram.window_start = shift_nonzero(chip->extram.window_start, off);
    sim.shifted.extram.heap_start = shift_nonzero(chip->extram.heap_start, off);
    return &sim.shifted;
}

static unsigned long chip_addr(intptr_t host)
{
    return (unsigned long)((uintptr_t)host - (uintptr_t)sim.map.offset);
}

/* The chip-table row holding the chip address a, or region_count. */
static size_t row_of(const capheap_chip_t *chip, unsigned long a)
{
    size_t i = 0;
    for (; i < chip->region_count; i++) {
        const soc_memory_region_t *r = &chip->regions[i];
        if (a - (unsigned long)(uintptr_t)r->start < (unsigned long)r->size)
            break;
    }
    return i;
}

/* Step 4's log: "heap_init: At 3FC9D3A8 len 0004C368 (304 KiB): RAM", in the
 * order ESP-IDF prints it: the chip table's rows in table order, the pieces
 * of one row in address order (spec 2.3 step 4; the S2 and P4 list a row of
 * low addresses last). */
static void print_boot_log(const capheap_chip_t *chip, size_t psram_bytes)
{
    intptr_t off = sim.map.offset;
    capheap_printf("sim: %s\n", chip->title ? chip->title : chip->name);
    if (off == 0)
        capheap_printf("sim: mapped at the chip's real addresses (offset 0), %zu KiB of host memory\n",
                       sim.map.mapped_bytes / 1024u);
    else
        capheap_printf("sim: mapped at host = chip %c 0x%llx%s, %zu KiB of host memory\n", off < 0 ? '-' : '+',
                       (unsigned long long)(off < 0 ? (uintptr_t)0 - (uintptr_t)off : (uintptr_t)off),
                       sim.map.forced ? " (CAPHEAP_SIM_FORCE_OFFSET=1)" : " (real addresses unavailable)",
                       sim.map.mapped_bytes / 1024u);
    if (sim.map.diram == CAPHEAP_SIM_ALIAS_SHARED)
        capheap_printf("sim: D/IRAM 0x%08lX..0x%08lX shared with IRAM 0x%08lX (one memfd, two addresses)\n",
                       (unsigned long)chip->diram.dram_low, (unsigned long)chip->diram.dram_high,
                       (unsigned long)chip->diram.iram_low);
    else if (sim.map.diram == CAPHEAP_SIM_ALIAS_SEPARATE)
        capheap_printf("sim: D/IRAM alias is inverted: IRAM 0x%08lX.. is separate memory (see docs/simulator.md)\n",
                       (unsigned long)chip->diram.iram_low);
    capheap_printf("heap_init: Initializing. RAM available for dynamic allocation:\n");
    size_t n = capheap_heap_count();
    size_t last_row = 0;
    unsigned long last = 0;
    bool first = true;
    for (size_t printed = 0; printed < n; printed++) { /* O(H^2 R) selection, once per boot */
        capheap_heap_desc_t best = {0}, d;
        size_t best_row = 0;
        bool have = false;
        for (size_t i = 0; i < n; i++) {
            if (!capheap_heap_get(i, &d) || d.runtime)
                continue;
            size_t row = row_of(chip, chip_addr(d.start));
            unsigned long a = chip_addr(d.start);
            bool after = first || row > last_row || (row == last_row && a > last);
            if (after && (!have || row < best_row || (row == best_row && a < chip_addr(best.start)))) {
                best = d;
                best_row = row;
                have = true;
            }
        }
        if (!have)
            break;
        size_t len = (size_t)((uintptr_t)best.end - (uintptr_t)best.start);
        /* Not registered: a start-up stack region until heap_caps_enable_nonos_stack_heaps(),
         * or a piece too small to hold a heap (listed all the same, as ESP-IDF does). */
        const char *note = "";
        if (best.heap == NULL)
            note = best_row < chip->region_count && chip->regions[best_row].startup_stack
                       ? " (start-up stack, deferred)"
                       : " (too small for a heap: not registered)";
        capheap_printf("heap_init: At %08lX len %08lX (%zu KiB): %s%s\n", chip_addr(best.start), (unsigned long)len,
                       len / 1024u, best.name ? best.name : "?", note);
        last_row = best_row;
        last = chip_addr(best.start);
        first = false;
    }
    if (psram_bytes > 0)
        capheap_printf("esp_psram: Adding pool of %zuK of PSRAM memory to heap allocator at %08lX\n",
                       psram_bytes / 1024u, (unsigned long)chip->extram.heap_start);
}

/* Step 6: ESP-IDF's esp_psram_extram_reserve_dma_pool(). */
static esp_err_t reserve_dma_pool(size_t bytes, bool quiet)
{
    static const uint32_t pool_caps[SOC_MEMORY_TYPE_NO_PRIOS] = {
        0, MALLOC_CAP_DMA | MALLOC_CAP_INTERNAL, MALLOC_CAP_DEFAULT | MALLOC_CAP_8BIT | MALLOC_CAP_32BIT};
    const capheap_region_options_t options = {0, "DMA pool"};
    const uint32_t want = MALLOC_CAP_DMA | MALLOC_CAP_INTERNAL;
    if (!quiet)
        capheap_printf("esp_psram: Reserving pool of %zuK of internal memory for DMA/internal allocations\n",
                       bytes / 1024u);
    for (int chunk = 0; bytes > 0 && chunk < SIM_MAX_POOL_CHUNKS; chunk++) {
        size_t size = heap_caps_get_largest_free_block(want);
        size = (size < bytes ? size : bytes) & ~(size_t)3u;
        uint8_t *p = size > 0 ? heap_caps_malloc(size, want) : NULL;
        if (p == NULL)
            return ESP_ERR_NO_MEM;
        esp_err_t err = capheap_caps_add_region(pool_caps, (intptr_t)p, (intptr_t)(p + size), &options);
        if (err != ESP_OK)
            return err;
        bytes -= size;
    }
    return bytes == 0 ? ESP_OK : ESP_ERR_NO_MEM;
}

/* Undo a boot that got as far as the mappings (heaps_built: and capheap_caps_init). */
static esp_err_t fail(esp_err_t err, bool heaps_built)
{
    if (heaps_built)
        capheap_caps_reset();
    capheap_sim_unmap(false);
    memset(&sim, 0, sizeof sim);
    return err;
}

esp_err_t capheap_sim_boot(const capheap_chip_t *chip, const capheap_sim_options_t *options)
{
    static const capheap_sim_options_t defaults = CAPHEAP_SIM_OPTIONS_DEFAULT;
    if (sim.booted)
        return ESP_ERR_INVALID_STATE;
    if (chip == NULL)
        return ESP_ERR_INVALID_ARG;
    const capheap_sim_options_t o = options ? *options : defaults;

    /* Step 1. */
    if (o.poisoning < -1 || o.poisoning > 2)
        return ESP_ERR_INVALID_ARG;
    if (o.poisoning != -1 && o.poisoning != build_poisoning())
        return ESP_ERR_NOT_SUPPORTED;
    if (o.heap_alignment != 0 && o.heap_alignment != 4 && o.heap_alignment != 8 && o.heap_alignment != 16)
        return ESP_ERR_INVALID_ARG;
    if (chip->region_count > SIM_MAX_REGIONS || chip->reserved_count > SIM_MAX_RESERVED ||
        chip->regions == NULL || chip->types == NULL || (chip->reserved == NULL && chip->reserved_count > 0))
        return ESP_ERR_INVALID_ARG;
    size_t iram = o.iram_text_bytes == CAPHEAP_SIM_REFERENCE ? chip->image.iram_text_size : o.iram_text_bytes;
    size_t data = o.static_data_bytes == CAPHEAP_SIM_REFERENCE ? chip->image.data_size : o.static_data_bytes;
    const capheap_extram_t *x = &chip->extram;
    if (o.psram_bytes > 0) {
        uintptr_t h0 = (uintptr_t)x->heap_start, h1 = h0 + o.psram_bytes;
        uintptr_t w0 = (uintptr_t)x->window_start, w1 = w0 + x->window_size;
        if (x->window_size == 0 || o.psram_bytes > x->max_size || h1 < h0 || h0 < w0 || h1 > w1)
            return ESP_ERR_INVALID_ARG;
        if (o.reserve_internal == CAPHEAP_SIM_REFERENCE)
            return ESP_ERR_INVALID_ARG;
    }

    /* Step 2. */
    esp_err_t err = plan_image(chip, iram, data);
    if (err != ESP_OK)
        return err;

    /* Step 3. */
    const char *force = getenv("CAPHEAP_SIM_FORCE_OFFSET");
    bool forced = force != NULL && force[0] == '1';
    err = capheap_sim_map(chip, x->heap_start, o.psram_bytes, forced, &sim.map);
    if (err != ESP_OK)
        return fail(err, false);
    const capheap_chip_t *host_chip = translate(chip, sim.map.offset);
    if (o.heap_alignment != 0 && o.heap_alignment != host_chip->heap_alignment) {
        if (host_chip != &sim.shifted)
            sim.shifted = *chip; /* at its own addresses: only the alignment changes */
        sim.shifted.heap_alignment = (uint8_t)o.heap_alignment;
        host_chip = &sim.shifted;
    }

    /* Step 4. */
    err = capheap_caps_init(host_chip, sim.image, sim.image_count);
    if (err != ESP_OK)
        return fail(err, false); /* e.g. someone else's heaps exist: leave them alone */
    sim.booted = true;
    sim.chip = chip;
    if (!o.quiet)
        print_boot_log(chip, o.psram_bytes);

    /* Step 5. */
    if (o.psram_bytes > 0) {
        intptr_t h0 = host_chip->extram.heap_start;
        const capheap_region_options_t psram_options = {0, "SPIRAM"};
        err = capheap_caps_add_region(x->caps, h0, shift(h0, (intptr_t)o.psram_bytes), &psram_options);
        if (err != ESP_OK)
            return fail(err, true);
        heap_caps_malloc_extmem_enable(o.extmem_always_internal);
    }

    /* Step 6. */
    if (!o.defer_nonos_stack_heaps) {
        heap_caps_enable_nonos_stack_heaps();
        if (o.psram_bytes > 0 && o.reserve_internal > 0) {
            err = reserve_dma_pool(o.reserve_internal, o.quiet);
            if (err != ESP_OK)
                return fail(err, true);
        }
    }
    return ESP_OK;
}

esp_err_t capheap_sim_shutdown(void)
{
    if (!sim.booted)
        return ESP_ERR_INVALID_STATE;
    capheap_caps_reset();
    capheap_sim_unmap(true);
    memset(&sim, 0, sizeof sim);
    return ESP_OK;
}

const capheap_chip_t *capheap_sim_chip(void)
{
    return sim.booted ? sim.chip : NULL;
}

intptr_t capheap_sim_offset(void)
{
    return sim.booted ? sim.map.offset : 0;
}
