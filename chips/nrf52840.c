/*
 * chips/nrf52840.c - Nordic nRF52840 (Cortex-M4F) memory map in ESP-IDF's
 * model.
 *
 * A PROPOSAL (shared/spec/chips.md section 12): ESP-IDF has no such table.
 * One 256 KiB RAM, seen as Data RAM at 0x20000000 (EasyDMA reaches only
 * this) and as Code RAM at 0x00800000. ESP-IDF's linear D/IRAM alias maps
 * directly: an EXEC allocation returns the Code RAM alias and stores the Data
 * RAM address in the word before it; free converts back.
 *
 * The rows follow the RAM power sections (RAM0-7: 8 KiB each; RAM8: 192 KiB)
 * so that retention choices map onto them; they all coalesce into one heap.
 *
 * Sources: chips.md 12.1 (facts), 12.2 (types, region, alias), 12.3
 * (reservations, HEAP_SIZE_MAX).
 *
 * Reference image (Judgement): an S140 SoftDevice application. The SoftDevice
 * owns 0x20000000..0x20001D28 (the DevZone RAM_START of chips.md 12.3); the
 * application's .data, .bss and main stack follow, up to 0x20004000. Booting
 * produces:
 *
 *   start       len      type  startup stack
 *   0x20004000  0x3C000  RAM   no
 */
#include "capheap/chip.h"
#include "esp_heap_caps.h"

#define NRF_DATA_RAM_LOW 0x20000000
#define NRF_DATA_RAM_HIGH 0x20040000
#define NRF_CODE_RAM_LOW 0x00800000
#define NRF_CODE_RAM_HIGH 0x00840000
#define NRF_SMALL_SECTION_SIZE 0x2000          /* RAM0-7: 2 sections of 4 KiB */
#define NRF_RAM8_LOW (NRF_DATA_RAM_LOW + 8 * NRF_SMALL_SECTION_SIZE)
#define NRF_RAM8_SIZE (NRF_DATA_RAM_HIGH - NRF_RAM8_LOW) /* 6 sections of 32 KiB */

#define NRF_SOFTDEVICE_RAM_END 0x20001D28 /* S140 example (image, not fixed) */

enum { NRF_RAM, NRF_TYPE_COUNT };

/* Types (chips.md 12.2). name | caps at prio 0, 1, 2 */
static const soc_memory_type_desc_t nrf_types[NRF_TYPE_COUNT] = {
    [NRF_RAM] = {.name = "RAM",
                 .caps = {MALLOC_CAP_8BIT | MALLOC_CAP_32BIT | MALLOC_CAP_INTERNAL | MALLOC_CAP_DEFAULT |
                              MALLOC_CAP_DMA,
                          0, MALLOC_CAP_EXEC}},
};

#define NRF_ROW(start_, size_)                                                                     \
    {.start = (start_), .size = (size_), .type = NRF_RAM,                                         \
     .iram_address = NRF_CODE_RAM_LOW + ((start_) - NRF_DATA_RAM_LOW), .startup_stack = false}
#define NRF_SMALL_ROW(k) NRF_ROW(NRF_DATA_RAM_LOW + (k) * NRF_SMALL_SECTION_SIZE, NRF_SMALL_SECTION_SIZE)

/* Regions in address order. start | size | type | iram_address (Code RAM) | startup_stack */
static const soc_memory_region_t nrf_regions[] = {
    NRF_SMALL_ROW(0), NRF_SMALL_ROW(1), NRF_SMALL_ROW(2), NRF_SMALL_ROW(3),
    NRF_SMALL_ROW(4), NRF_SMALL_ROW(5), NRF_SMALL_ROW(6), NRF_SMALL_ROW(7),
    NRF_ROW(NRF_RAM8_LOW, NRF_RAM8_SIZE),
};

/* No fixed reservation: the SoftDevice's RAM depends on its configuration,
 * so it is part of the image (data_start/data_size). */

const capheap_chip_t capheap_chip_nrf52840 = {
    .name = "nrf52840",
    .types = nrf_types,
    .type_count = sizeof nrf_types / sizeof nrf_types[0],
    .regions = nrf_regions,
    .region_count = sizeof nrf_regions / sizeof nrf_regions[0],
    .reserved = NULL,
    .reserved_count = 0,
#if CAPHEAP_CHIP_ALIASES
    .diram = {.kind = CAPHEAP_ALIAS_LINEAR,
              .dram_low = NRF_DATA_RAM_LOW, .dram_high = NRF_DATA_RAM_HIGH,
              .iram_low = NRF_CODE_RAM_LOW, .iram_high = NRF_CODE_RAM_HIGH},
    .rtc = {.kind = CAPHEAP_ALIAS_NONE},
#endif
    .heap_size_max = 256 * 1024, /* chips.md 12.3 */
    .heap_alignment = 8,         /* AAPCS: double / long long */
    .cache_line_internal = 0,    /* no data cache */
    .cache_line_external = 0,
    .simd_alignment = 0,
    .dma_desc_axi_alignment = 0,
    .dma_encrypted_alignment = 0,
#if CAPHEAP_PORT_HOST /* the simulator's facts: host builds only (capheap/chip.h) */
    .title = "nRF52840 (proposal: Data RAM with Code RAM alias, S140 SoftDevice image)",
    .image = {.iram_text_start = 0, /* code runs from flash */
              .iram_text_size = 0,
              .data_start = NRF_DATA_RAM_LOW, /* SoftDevice RAM, then the application's */
              .data_size = 0x4000,
              .rtc_data_start = 0,
              .rtc_data_size = 0},
    .extram = {.window_start = 0},
    /* Facts: 256 KiB RAM (8 x 8 KiB + 6 x 32 KiB sections). */
    .internal_ram_bytes = 256 * 1024,
#endif
};
