/*
 * esp_heap_caps_init.h - building the heaps: at start-up from the chip's
 * memory map, and at run time from any region.
 */
#ifndef ESP_HEAP_CAPS_INIT_H
#define ESP_HEAP_CAPS_INIT_H

#include <stdint.h>

#include "esp_err.h"
#include "esp_heap_caps.h"
#include "heap_memory_layout.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Build the start-up heaps from the selected chip (build option CAPHEAP_CHIP,
 * or the firmware's soc_memory_* tables) minus the reserved ranges the
 * firmware declares with SOC_RESERVE_MEMORY_REGION (spec 2.2-2.3). Call once,
 * single-threaded, before any allocation. A second call, or no chip selected
 * (a host build: use capheap_sim_boot()), reports and aborts through the port.
 * capheap_caps_init() (capheap/caps.h) is the same with explicit arguments and
 * an error code instead of the abort.
 */
void heap_caps_init(void);

/** Register the start-up-stack regions heap_caps_init() deferred (call once the boot stack is no longer used). */
void heap_caps_enable_nonos_stack_heaps(void);

/**
 * Register [start, end) with the caps of the chip region containing start.
 * ESP_ERR_NOT_FOUND if no region of the chip contains start, else as
 * heap_caps_add_region_with_caps().
 */
esp_err_t heap_caps_add_region(intptr_t start, intptr_t end);

/**
 * Register [start, end) as a heap with caps[0..2] (priorities 0..2).
 * ESP_ERR_INVALID_ARG: caps NULL, end <= start. A start that is not 4-aligned
 * is rounded up (capheap; ESP-IDF's multi_heap_register refuses it, and the
 * call returns ESP_ERR_INVALID_SIZE there: docs/compat.md 41).
 * ESP_FAIL: the range straddles the start or end of a listed heap, or equals one
 * (nesting inside a heap, adjacency and disjoint ranges are allowed), or lies
 * inside a start-up stack region not yet enabled (capheap; docs/compat.md 30b).
 * ESP_ERR_NO_MEM: all CAPHEAP_MAX_HEAPS descriptors are in use.
 * ESP_ERR_INVALID_SIZE: the region cannot hold a heap.
 * capheap: start may be 0 (instruction TCM at address 0), and the descriptor is
 * static, so a region may be added before any heap exists (heap_caps_init()
 * then carves the start-up heaps around it). Heaps added at run time are tried
 * before the start-up heaps at each priority, newest first.
 */
esp_err_t heap_caps_add_region_with_caps(const uint32_t caps[], intptr_t start, intptr_t end);

/** ESP-IDF's overlap rule, exported for tests: true if [start, end) may be added. */
bool heap_caps_check_add_region_allowed(intptr_t heap_start, intptr_t heap_end, intptr_t start, intptr_t end);

#ifdef __cplusplus
}
#endif

#endif /* ESP_HEAP_CAPS_INIT_H */
