/*
 * sim/sim_map.h - private interface between the simulator's boot sequence
 * (sim/boot.c) and its host mappings (sim/map.c). Not installed.
 *
 * All addresses here are *chip* addresses (what the chip table says); the map
 * layer chooses where they live on the host and reports one offset:
 * host address = chip address + offset.
 */
#ifndef CAPHEAP_SIM_MAP_H
#define CAPHEAP_SIM_MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "capheap/chip.h"
#include "esp_err.h"

/** How an alias window (D/IRAM or RTC fast memory) ended up on the host. */
typedef enum {
    CAPHEAP_SIM_ALIAS_UNMAPPED = 0, /**< no region uses the window (or the chip has none) */
    CAPHEAP_SIM_ALIAS_SHARED,       /**< one memfd mapped at both addresses: writes are visible on both buses */
    CAPHEAP_SIM_ALIAS_SEPARATE,     /**< two private mappings: the IRAM side does not see DRAM writes (inverted alias) */
} capheap_sim_alias_state_t;

/** What capheap_sim_map() did. */
typedef struct {
    intptr_t offset;        /**< host = chip + offset (0: real addresses) */
    bool forced;            /**< the offset path was forced (CAPHEAP_SIM_FORCE_OFFSET=1) */
    size_t mapped_bytes;    /**< bytes of host memory mapped read/write (alias windows counted once per side) */
    capheap_sim_alias_state_t diram, rtc;
} capheap_sim_map_result_t;

/**
 * Back every region of chip that is not an external-RAM window row (a type
 * with MALLOC_CAP_SPIRAM at some priority), the alias windows those regions
 * touch, and [psram_start, psram_start + psram_bytes) when psram_bytes > 0.
 * Tries the real addresses first unless force_offset. ESP_OK, or
 * ESP_ERR_NO_MEM (the host refused), ESP_ERR_INVALID_ARG (a table the host
 * cannot represent: too many spans, or a window that wraps).
 */
esp_err_t capheap_sim_map(const capheap_chip_t *chip, intptr_t psram_start, size_t psram_bytes,
                          bool force_offset, capheap_sim_map_result_t *out);

/** Undo capheap_sim_map() (harmless when nothing is mapped). hold (the shutdown): the memory
 * is given back but its address ranges stay reserved (PROT_NONE) until the next
 * capheap_sim_map(), so that the host cannot place its own mappings where
 * capheap_sim_was_mapped() answers true; else (a failed boot, which gave out no block)
 * everything is given back, held ranges of an earlier shutdown included. */
void capheap_sim_unmap(bool hold);

/** p lies in host memory the last capheap_sim_unmap() gave back, and no chip has
 * been mapped since (the ranges are held until then: nothing of the host's lies there).
 * Ask only about pointers that are not in a live heap. */
bool capheap_sim_was_mapped(const void *p);

#endif /* CAPHEAP_SIM_MAP_H */
