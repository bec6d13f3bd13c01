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
    /** IRAM text of the firmware (CAPHEAP_SIM_REFERENCE: the chip's image). Must be 0 (or
     *  REFERENCE, which is 0 there) on a chip whose image.iram_text_start is 0, i.e. whose
     *  image has no separate IRAM text (STM32H743, i.MX RT1062, RP2350, nRF52840):
     *  anything else is ESP_ERR_INVALID_ARG. */
    size_t iram_text_bytes;
    size_t psram_bytes;         /**< external RAM to add (0: none); at most the chip's maximum */
    size_t extmem_always_internal; /**< malloc sizes up to this prefer internal RAM (CONFIG_SPIRAM_MALLOC_ALWAYSINTERNAL, 16384) */
    size_t reserve_internal;    /**< with PSRAM: internal DMA pool kept back (CONFIG_SPIRAM_MALLOC_RESERVE_INTERNAL, 32768) */
    bool defer_nonos_stack_heaps; /**< leave heap_caps_enable_nonos_stack_heaps() to the caller */
    bool quiet;                 /**< no boot log */
    int poisoning;              /**< -1: as built; else must equal the build's mode (0 none, 1 light, 2 comprehensive) */
    /** 0: the chip's block alignment (4 on the ESP32 family); 4, 8 or 16: every heap's
     *  instead. On a 64-bit host, objects that hold pointers want 8 (16 for any type,
     *  alignof(max_align_t)); sizes and out-of-memory points then differ from the chip's. */
    unsigned heap_alignment;
} capheap_sim_options_t;

#define CAPHEAP_SIM_OPTIONS_DEFAULT                                                                \
    {CAPHEAP_SIM_REFERENCE, CAPHEAP_SIM_REFERENCE, 0, 16384, 32768, false, false, -1, 0}

/**
 * Boot chip (options NULL: defaults). ESP_OK, or (docs/simulator.md lists every condition):
 * ESP_ERR_INVALID_STATE  a chip is already booted (shut it down first), or heap_caps was
 *                        already initialised outside the simulator;
 * ESP_ERR_INVALID_ARG    chip NULL, poisoning outside -1..2, heap_alignment not 0, 4, 8 or 16,
 *                        or sizes that do not fit the chip
 *                        (static data past its RAM or into a reservation, IRAM text past
 *                        D/IRAM or on a chip with image.iram_text_start 0, PSRAM on a chip
 *                        without external RAM, above max or past the window,
 *                        reserve_internal REFERENCE with PSRAM), or a table the simulator
 *                        cannot map;
 * ESP_ERR_NOT_SUPPORTED  poisoning differs from the build's;
 * ESP_ERR_NO_MEM         the host refused the mappings, too many heaps, or the DMA pool
 *                        cannot be reserved (not enough DMA|INTERNAL memory, or
 *                        reserve_internal not a multiple of 4);
 * ESP_ERR_INVALID_SIZE   psram_bytes, or reserve_internal (a DMA pool chunk), too small to
 *                        hold a heap;
 * ESP_FAIL               reservations overlap each other or a heap added before the boot.
 * The boot log is printed right after the start-up heaps are built, before PSRAM and the
 * DMA pool are added: a boot that fails there has printed a complete log.
 * A failed boot leaves nothing mapped and nothing booted.
 */
esp_err_t capheap_sim_boot(const capheap_chip_t *chip, const capheap_sim_options_t *options);

/** Forget every heap and give the chip's memory back. Its address ranges stay reserved
 *  (PROT_NONE) until the next boot, so that no host mapping lands where a stale chip
 *  pointer points (docs/simulator.md). ESP_ERR_INVALID_STATE if nothing is booted. */
esp_err_t capheap_sim_shutdown(void);

/** The booted chip, or NULL. */
const capheap_chip_t *capheap_sim_chip(void);

/** Host address minus chip address (0 when the chip sits at its real addresses). */
intptr_t capheap_sim_offset(void);

#ifdef __cplusplus
}
#endif

#endif /* CAPHEAP_SIM_H */
