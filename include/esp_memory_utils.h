/*
 * esp_memory_utils.h - ESP-IDF's questions about an address ("is this
 * buffer DMA-capable?"), answered from the chip heap_caps was started with.
 *
 * ESP-IDF answers them with inline range checks on its chip's compile-time
 * address constants. capheap has one library for every chip, so it answers
 * from the chip table given to heap_caps_init() / capheap_caps_init() (the
 * simulator's, at host addresses, when one is booted) and from the heaps
 * registered at run time:
 *
 *   a region of the table counts with the caps of its type (all three
 *   priorities together); a heap added at run time (PSRAM, a DMA pool, a
 *   region of the firmware's own) counts with its caps; on the host the
 *   chip's external RAM window counts as external RAM.
 *
 * So an address in static data or a stack counts with the region it lies in,
 * as on the chip. Before any chip is started only the heaps added at run time
 * count. Addresses the table does not describe (ROM, flash mappings,
 * peripherals, IRAM that holds only code) are in nothing (docs/compat.md 43).
 * esp_ptr_executable() and ESP-IDF's other bus questions are not provided:
 * the table's caps say what a heap may hand out, not which bus can fetch from
 * an address. Each call is O(regions + log heaps); none allocates.
 *
 * Included by soc/soc_memory_layout.h, as in ESP-IDF.
 */
#ifndef CAPHEAP_ESP_MEMORY_UTILS_H
#define CAPHEAP_ESP_MEMORY_UTILS_H

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** p lies in memory the DMA engines reach: a region or heap with MALLOC_CAP_DMA. */
bool esp_ptr_dma_capable(const void *p);

/** p lies in internal memory: a region or heap with MALLOC_CAP_INTERNAL, or an
 * IRAM alias window of the chip. */
bool esp_ptr_internal(const void *p);

/** p lies in external RAM: a heap with MALLOC_CAP_SPIRAM, or (host) the chip's
 * external RAM window. */
bool esp_ptr_external_ram(const void *p);

/** p can be read and written a byte at a time: a region or heap with
 * MALLOC_CAP_8BIT, or external RAM. */
bool esp_ptr_byte_accessible(const void *p);

/** p is a multiple of 4. */
bool esp_ptr_word_aligned(const void *p);

/** p lies in the DRAM side / the IRAM side of the chip's D/IRAM alias window
 * (false where the chip has none). */
bool esp_ptr_in_diram_dram(const void *p);
bool esp_ptr_in_diram_iram(const void *p);

/** The other side's address of p in the D/IRAM alias window, by ESP-IDF's
 * formulas (linear; or inverted, word order reversed: ESP32); p itself when it
 * is not on that side of the window. */
void *esp_ptr_diram_dram_to_iram(const void *p);
void *esp_ptr_diram_iram_to_dram(const void *p);

#ifdef __cplusplus
}
#endif

#endif /* CAPHEAP_ESP_MEMORY_UTILS_H */
