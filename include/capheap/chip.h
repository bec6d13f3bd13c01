/*
 * capheap/chip.h - a chip's memory map as data.
 *
 * A capheap_chip_t wraps ESP-IDF's three layout tables (heap_memory_layout.h)
 * with the chip parameters the routing needs (D/IRAM alias rule, cache lines,
 * DMA and SIMD alignment, HEAP_SIZE_MAX) and a model of a typical firmware
 * image (where IRAM text and static data go), which the host simulator uses to
 * compute the reservations a real link would produce. Built-in tables live in
 * chips/, one file per chip, registered in chips/registry.c; every table
 * describes the chip's *default* configuration (ESP chips: memory protection
 * on where ESP-IDF defaults to it, so no EXEC heaps except on ESP32).
 * docs/adding-a-chip.md says how to add one.
 */
#ifndef CAPHEAP_CHIP_H
#define CAPHEAP_CHIP_H

#include <stddef.h>
#include <stdint.h>

#include "capheap/config.h"
#include "heap_memory_layout.h"

#ifdef __cplusplus
extern "C" {
#endif

/** How a data address of the alias range maps to its instruction address. */
typedef enum {
    CAPHEAP_ALIAS_NONE = 0, /**< one address per byte: EXEC is an ordinary allocation */
    CAPHEAP_ALIAS_LINEAR,   /**< iram(d) = iram_low + (d - dram_low) */
    CAPHEAP_ALIAS_INVERTED, /**< iram(d) = iram_low + (dram_high - d) - 4 (ESP32) */
} capheap_alias_kind_t;

/** A D/IRAM (or RTC fast memory) alias window. Ranges are [low, high). */
typedef struct {
    capheap_alias_kind_t kind;
    intptr_t dram_low, dram_high;
    intptr_t iram_low, iram_high;
} capheap_alias_t;

/**
 * The simulator's model of a firmware image on this chip: where the linker
 * puts IRAM text and static data. The reference values are those of the image
 * the chip file cites; capheap_sim_boot() options override the sizes.
 */
typedef struct {
    /** _iram_start. 0 means "this chip's image has no separate IRAM text in RAM" (code runs
     *  from flash, or the RAM code is part of .data: STM32H743, i.MX RT1062, RP2350,
     *  nRF52840); iram_text_size is then 0, and capheap_sim_boot() refuses any
     *  iram_text_bytes > 0 with ESP_ERR_INVALID_ARG. 0 is never an address here: text at
     *  address 0 (a Cortex-M7 ITCM) cannot be modelled; reserve it as a fixed reservation. */
    intptr_t iram_text_start;
    size_t iram_text_size;    /**< _iram_end - _iram_start of the reference image (0: no IRAM text) */
    /** _data_start. 0 means "the DRAM alias of _iram_end" (D/IRAM shared SRAM: S2, S3, C3);
     *  that needs a LINEAR diram window and iram_text_start != 0, otherwise the simulator
     *  refuses static data with data_start 0 (ESP_ERR_INVALID_ARG). */
    intptr_t data_start;
    size_t data_size;         /**< static data + bss of the reference image (_heap_start - _data_start) */
    intptr_t rtc_data_start;  /**< start of RTC data reserved when the RTC heap is on (0: none) */
    size_t rtc_data_size;     /**< RTC data of the reference image */
} capheap_image_t;

/** External RAM (PSRAM / SDRAM) as the chip maps it. */
typedef struct {
    intptr_t window_start;   /**< virtual window (0: no external RAM) */
    size_t window_size;
    intptr_t heap_start;     /**< where a typical boot maps the heap inside the window */
    size_t max_size;         /**< largest external RAM the chip supports */
    uint32_t caps[SOC_MEMORY_TYPE_NO_PRIOS]; /**< caps the startup code registers it with (chips.md 0.4) */
} capheap_extram_t;

/*
 * Fields a firmware does not read are not in its chip tables (a table is one const object,
 * so a field nothing reads still costs its bytes in every image that links the chip):
 * - the simulator's facts (title, image, extram, internal_ram_bytes) exist in host-port
 *   builds only (CAPHEAP_PORT_HOST), where sim/ and the chip tests read them: 60 bytes per
 *   chip on a 32-bit target, and the title's text (about 90 bytes for the ESP32-S3);
 * - the two alias windows (diram, rtc) exist where something reads them: builds with EXEC
 *   heaps (the alias translation) and host builds (the simulator maps the D/IRAM alias
 *   twice). A bare-metal build without EXEC heaps refuses every EXEC request and never
 *   translates an address: 40 bytes per chip.
 * A chip table puts those initialisers inside `#if CAPHEAP_PORT_HOST` and
 * `#if CAPHEAP_CHIP_ALIASES` (docs/adding-a-chip.md).
 */
#define CAPHEAP_CHIP_ALIASES (CAPHEAP_PORT_HOST || CAPHEAP_EXEC_HEAP)

/** One chip. All pointers point to static const data. */
typedef struct capheap_chip {
    const char *name;        /**< registry key, lower case: "esp32s3", "stm32h743" */

    const soc_memory_type_desc_t *types;
    size_t type_count;
    const soc_memory_region_t *regions; /**< ESP-IDF table order (not always address order) */
    size_t region_count;
    /** Fixed reservations of the default configuration: ROM data, caches, ROM
     *  stack layout, the external-RAM window. Firmware-image ones (static data,
     *  IRAM text) are not here: the firmware or the simulator adds them. */
    const soc_reserved_region_t *reserved;
    size_t reserved_count;

#if CAPHEAP_CHIP_ALIASES
    capheap_alias_t diram;   /**< D/IRAM alias (kind NONE where D and I addresses are the same) */
    capheap_alias_t rtc;     /**< RTC fast memory alias (ESP32, S2), else kind NONE */
#endif

    size_t heap_size_max;    /**< HEAP_SIZE_MAX: largest request (start-up heaps are not checked
                                  against it at run time, compat.md 40; the tests check every
                                  built-in table) */
    uint8_t heap_alignment;  /**< natural block alignment of the chip's heaps: 4 (or 8) */
    uint8_t cache_line_internal; /**< data-cache line in front of internal RAM, 0: uncached (all ESP but P4) */
    uint8_t cache_line_external; /**< data-cache line in front of external RAM, 0: none */
    uint8_t simd_alignment;  /**< MALLOC_CAP_SIMD alignment, 0: no SIMD */
    uint8_t dma_desc_axi_alignment; /**< MALLOC_CAP_DMA_DESC_AXI alignment, 0: no AXI DMA */
    uint8_t dma_encrypted_alignment; /**< DMA alignment with flash encryption on (S3, P4: 16), else 0 */

#if CAPHEAP_PORT_HOST
    /** Human name and configuration: "ESP32-S3 (default config, 32 KB D-cache)"; the
     *  simulator prints it (NULL: it prints name). */
    const char *title;
    capheap_image_t image;
    capheap_extram_t extram;

    /** Figures the chip's facts file gives, checked by tests/caps/test_chips.c. */
    size_t internal_ram_bytes;  /**< sum of internal region sizes (startup-stack ones included) */
#endif
} capheap_chip_t;

/** Every built-in chip, in registry order, and their count. */
extern const capheap_chip_t *const capheap_chips[];
extern const size_t capheap_chip_count;

/** The built-in chip called name ("esp32s3"; case-insensitive), or NULL. */
const capheap_chip_t *capheap_chip_find(const char *name);

/* The built-in tables, for direct reference. */
extern const capheap_chip_t capheap_chip_esp32;
extern const capheap_chip_t capheap_chip_esp32s2;
extern const capheap_chip_t capheap_chip_esp32s3;
extern const capheap_chip_t capheap_chip_esp32c3;
extern const capheap_chip_t capheap_chip_esp32c6;
extern const capheap_chip_t capheap_chip_esp32h2;
extern const capheap_chip_t capheap_chip_esp32p4;
extern const capheap_chip_t capheap_chip_stm32h743;
extern const capheap_chip_t capheap_chip_imxrt1062;
extern const capheap_chip_t capheap_chip_rp2350;
extern const capheap_chip_t capheap_chip_nrf52840;
extern const capheap_chip_t capheap_chip_mpfs;

#ifdef __cplusplus
}
#endif

#endif /* CAPHEAP_CHIP_H */
