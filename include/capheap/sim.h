/*
 * capheap/sim.h - a chip's memory map simulated on a Linux host.
 *
 * capheap_sim_boot() backs every region of a chip table with host memory, at
 * the chip's real addresses when the OS allows it (mmap MAP_FIXED_NOREPLACE),
 * otherwise all at one offset that the boot log states. D/IRAM alias ranges are
 * the same physical pages mapped twice (memfd), so a word written through the
 * DRAM address reads back through the IRAM address. It then does what the
 * chip's start-up code does: heap_caps_init() with the reservations of a
 * firmware image (static data, IRAM text), PSRAM registration and the extmem
 * malloc policy, and (unless deferred) heap_caps_enable_nonos_stack_heaps().
 *
 * One chip at a time per process: a second boot without capheap_sim_shutdown()
 * returns ESP_ERR_INVALID_STATE. Host builds only.
 */
#ifndef CAPHEAP_SIM_H
#define CAPHEAP_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "capheap/chip.h"
#include "esp_err.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A size option with this value takes the chip's reference-image figure. */
#define CAPHEAP_SIM_REFERENCE ((size_t)-1)

/** Boot options. Start from CAPHEAP_SIM_OPTIONS_DEFAULT. */
typedef struct {
    size_t static_data_bytes;   /**< static data + bss of the firmware (CAPHEAP_SIM_REFERENCE: the chip's image) */
    size_t iram_text_bytes;     /**< IRAM text of the firmware (CAPHEAP_SIM_REFERENCE: the chip's image) */
    size_t psram_bytes;         /**< external RAM to add (0: none); at most the chip's maximum */
    size_t extmem_always_internal; /**< malloc sizes up to this prefer internal RAM (CONFIG_SPIRAM_MALLOC_ALWAYSINTERNAL, 16384) */
    size_t reserve_internal;    /**< with PSRAM: internal DMA pool kept back (CONFIG_SPIRAM_MALLOC_RESERVE_INTERNAL, 32768) */
    bool defer_nonos_stack_heaps; /**< leave heap_caps_enable_nonos_stack_heaps() to the caller */
    bool quiet;                 /**< no boot log */
    int poisoning;              /**< -1: as built; else must equal the build's mode (0 none, 1 light, 2 comprehensive) */
} capheap_sim_options_t;

#define CAPHEAP_SIM_OPTIONS_DEFAULT                                                                \
    {CAPHEAP_SIM_REFERENCE, CAPHEAP_SIM_REFERENCE, 0, 16384, 32768, false, false, -1}

/**
 * Boot chip (options NULL: defaults). ESP_OK, or:
 * ESP_ERR_INVALID_STATE  a chip is already booted (shut it down first);
 * ESP_ERR_INVALID_ARG    chip NULL, or sizes that do not fit the chip (static data past its RAM, PSRAM above max);
 * ESP_ERR_NOT_SUPPORTED  poisoning differs from the build's;
 * ESP_ERR_NO_MEM         the host refused the mappings;
 * or heap_caps_init()'s errors.
 */
esp_err_t capheap_sim_boot(const capheap_chip_t *chip, const capheap_sim_options_t *options);

/** Forget every heap and unmap the chip. ESP_ERR_INVALID_STATE if nothing is booted. */
esp_err_t capheap_sim_shutdown(void);

/** The booted chip, or NULL. */
const capheap_chip_t *capheap_sim_chip(void);

/** Host address minus chip address (0 when the chip sits at its real addresses). */
intptr_t capheap_sim_offset(void);

#ifdef __cplusplus
}
#endif

#endif /* CAPHEAP_SIM_H */
