/*
 * memory_utils.c - esp_memory_utils.h: ESP-IDF's questions about an address,
 * answered from the chip table heap_caps was started with and the heaps
 * registered at run time (the header says how each counts).
 *
 * Readers take no lock, as the allocation paths do (caps_private.h): the chip
 * table is constant once started, and capheap_heap_find_desc reads the
 * registry the way free does.
 */
#include <stdint.h>

#include "capheap/caps.h"
#include "capheap/chip.h"
#include "esp_heap_caps.h"
#include "esp_memory_utils.h"

/* The caps of everything that holds address a: the table regions it lies in
 * (their types' caps, all priorities) and the heap added at run time it lies
 * in. */
static uint32_t caps_at(const void *p)
{
    uintptr_t a = (uintptr_t)p;
    uint32_t caps = 0;
    const capheap_chip_t *chip = capheap_caps_chip();
    if (chip != NULL) {
        for (size_t i = 0; i < chip->region_count; i++) {
            const soc_memory_region_t *r = &chip->regions[i];
            if (a >= (uintptr_t)r->start && a - (uintptr_t)r->start < r->size && r->type < chip->type_count) {
                const uint32_t *c = chip->types[r->type].caps;
                caps |= c[0] | c[1] | c[2];
            }
        }
    }
    capheap_heap_desc_t d;
    if (capheap_heap_find_desc(p, &d) && d.runtime)
        caps |= d.caps[0] | d.caps[1] | d.caps[2];
    return caps;
}

#if CAPHEAP_CHIP_ALIASES
static const capheap_alias_t *diram(void)
{
    const capheap_chip_t *chip = capheap_caps_chip();
    return chip != NULL && chip->diram.kind != CAPHEAP_ALIAS_NONE ? &chip->diram : NULL;
}

static bool in_range(const void *p, intptr_t low, intptr_t high)
{
    return (uintptr_t)p >= (uintptr_t)low && (uintptr_t)p < (uintptr_t)high;
}

/* p in the IRAM side of one of the chip's alias windows. */
static bool in_iram_alias(const void *p)
{
    const capheap_chip_t *chip = capheap_caps_chip();
    if (chip == NULL)
        return false;
    return (chip->diram.kind != CAPHEAP_ALIAS_NONE && in_range(p, chip->diram.iram_low, chip->diram.iram_high)) ||
           (chip->rtc.kind != CAPHEAP_ALIAS_NONE && in_range(p, chip->rtc.iram_low, chip->rtc.iram_high));
}
#else
#define in_iram_alias(p) ((void)(p), false)
#endif

bool esp_ptr_dma_capable(const void *p)
{
    return (caps_at(p) & MALLOC_CAP_DMA) != 0;
}

bool esp_ptr_external_ram(const void *p)
{
#if CAPHEAP_PORT_HOST
    const capheap_chip_t *chip = capheap_caps_chip();
    if (chip != NULL && chip->extram.window_size != 0 && (uintptr_t)p >= (uintptr_t)chip->extram.window_start &&
        (uintptr_t)p - (uintptr_t)chip->extram.window_start < chip->extram.window_size)
        return true;
#endif
    return (caps_at(p) & MALLOC_CAP_SPIRAM) != 0;
}

bool esp_ptr_internal(const void *p)
{
    return (caps_at(p) & MALLOC_CAP_INTERNAL) != 0 || in_iram_alias(p);
}

bool esp_ptr_byte_accessible(const void *p)
{
    return (caps_at(p) & MALLOC_CAP_8BIT) != 0 || esp_ptr_external_ram(p);
}

bool esp_ptr_word_aligned(const void *p)
{
    return ((uintptr_t)p & 3u) == 0;
}

bool esp_ptr_in_diram_dram(const void *p)
{
#if CAPHEAP_CHIP_ALIASES
    const capheap_alias_t *a = diram();
    return a != NULL && in_range(p, a->dram_low, a->dram_high);
#else
    (void)p;
    return false;
#endif
}

bool esp_ptr_in_diram_iram(const void *p)
{
#if CAPHEAP_CHIP_ALIASES
    const capheap_alias_t *a = diram();
    return a != NULL && in_range(p, a->iram_low, a->iram_high);
#else
    (void)p;
    return false;
#endif
}

void *esp_ptr_diram_dram_to_iram(const void *p)
{
#if CAPHEAP_CHIP_ALIASES
    const capheap_alias_t *a = diram();
    if (a != NULL && in_range(p, a->dram_low, a->dram_high)) {
        uintptr_t v = (uintptr_t)p;
        if (a->kind == CAPHEAP_ALIAS_LINEAR)
            return (void *)((uintptr_t)a->iram_low + (v - (uintptr_t)a->dram_low));
        return (void *)((uintptr_t)a->iram_low + ((uintptr_t)a->dram_high - v) - 4u);
    }
#endif
    return (void *)(uintptr_t)p;
}

void *esp_ptr_diram_iram_to_dram(const void *p)
{
#if CAPHEAP_CHIP_ALIASES
    const capheap_alias_t *a = diram();
    if (a != NULL && in_range(p, a->iram_low, a->iram_high)) {
        uintptr_t v = (uintptr_t)p;
        if (a->kind == CAPHEAP_ALIAS_LINEAR)
            return (void *)((uintptr_t)a->dram_low + (v - (uintptr_t)a->iram_low));
        return (void *)((uintptr_t)a->dram_low + ((uintptr_t)a->iram_high - v) - 4u);
    }
#endif
    return (void *)(uintptr_t)p;
}
