/*
 * chips/esp32h2.c - ESP32-H2 memory map, ESP-IDF's default configuration.
 *
 * Describes: memory protection on through PMP (no EXEC), LP RAM as RTC heap
 * (default y), no TEE, no PSRAM. Instruction and data addresses are the same.
 *
 * Sources: shared/spec/chips.md section 0 and section 6 (types 6.1, regions
 * 6.2, reservations 6.3, boot heaps 6.4, alias/alignment 6.5).
 *
 * Reference image (v5.4 real_time_stats report, chip rev v0.1, chips.md 6.4):
 * IRAM text and static data fill 0x40800000..0x4080CB60. The split is not in
 * the log; this model takes IRAM text 0x40800000..0x40809000 and static data
 * 0x40809000..0x4080CB60 (only the sum matters). No RTC data. Booting
 * produces, in table order:
 *
 *   start       len      type    startup stack
 *   0x4080CB60  0x40820  RAM     no    five rows coalesced
 *   0x4084D380  0x02B60  RAM     yes   up to the ROM layout 0x4084FEE0
 *   0x50000000  0x00FE8  RTCRAM  no    top 24 B reserved
 */
#include "capheap/chip.h"
#include "esp_heap_caps.h"

#define H2_COMMON (MALLOC_CAP_DEFAULT | MALLOC_CAP_INTERNAL | MALLOC_CAP_32BIT | MALLOC_CAP_8BIT)

#define H2_SRAM_LOW 0x40800000
#define H2_SRAM_HIGH 0x40850000
#define H2_BLOCK_SIZE 0x10000
#define H2_ROM_STACK_LOW 0x4084D380           /* SOC_ROM_STACK_START 0x4084F380 - 8 KB */
#define H2_ROM_RTOS_RESERVED_START 0x4084FEE0 /* dram0_rtos_reserved_start */

#define H2_LP_RAM_LOW 0x50000000
#define H2_LP_RAM_SIZE 0x1000
#define H2_RTC_RESERVED_SIZE 24

enum { H2_RAM, H2_RTCRAM, H2_TYPE_COUNT };

/* Types in ESP-IDF's enum order. name | caps at prio 0, 1, 2 */
static const soc_memory_type_desc_t h2_types[H2_TYPE_COUNT] = {
    [H2_RAM] = {.name = "RAM", .caps = {H2_COMMON | MALLOC_CAP_DMA, 0, 0}},
    [H2_RTCRAM] = {.name = "RTCRAM", .caps = {MALLOC_CAP_RTCRAM, H2_COMMON, 0}},
};

#define H2_RAM_ROW(start_, size_, stack_)                                                          \
    {.start = (start_), .size = (size_), .type = H2_RAM, .iram_address = (start_),                \
     .startup_stack = (stack_)}

/* Regions in ESP-IDF's table order. start | size | type | iram_address (identity) | startup_stack */
static const soc_memory_region_t h2_regions[] = {
    H2_RAM_ROW(H2_SRAM_LOW, H2_BLOCK_SIZE, false),
    H2_RAM_ROW(H2_SRAM_LOW + H2_BLOCK_SIZE, H2_BLOCK_SIZE, false),
    H2_RAM_ROW(H2_SRAM_LOW + 2 * H2_BLOCK_SIZE, H2_BLOCK_SIZE, false),
    H2_RAM_ROW(H2_SRAM_LOW + 3 * H2_BLOCK_SIZE, H2_BLOCK_SIZE, false),
    H2_RAM_ROW(H2_SRAM_LOW + 4 * H2_BLOCK_SIZE, H2_ROM_STACK_LOW - (H2_SRAM_LOW + 4 * H2_BLOCK_SIZE),
               false),
    H2_RAM_ROW(H2_ROM_STACK_LOW, H2_SRAM_HIGH - H2_ROM_STACK_LOW, true),
    {.start = H2_LP_RAM_LOW, .size = H2_LP_RAM_SIZE, .type = H2_RTCRAM, .iram_address = 0,
     .startup_stack = false},
};

/* Fixed reservations, sorted by start. start | end (exclusive) */
static const soc_reserved_region_t h2_reserved[] = {
    {.start = H2_ROM_RTOS_RESERVED_START, .end = H2_SRAM_HIGH}, /* ROM layout table, 288 B */
    {.start = H2_LP_RAM_LOW + H2_LP_RAM_SIZE - H2_RTC_RESERVED_SIZE, .end = H2_LP_RAM_LOW + H2_LP_RAM_SIZE},
};

const capheap_chip_t capheap_chip_esp32h2 = {
    .name = "esp32h2",
    .types = h2_types,
    .type_count = sizeof h2_types / sizeof h2_types[0],
    .regions = h2_regions,
    .region_count = sizeof h2_regions / sizeof h2_regions[0],
    .reserved = h2_reserved,
    .reserved_count = sizeof h2_reserved / sizeof h2_reserved[0],
#if CAPHEAP_CHIP_ALIASES
    .diram = {.kind = CAPHEAP_ALIAS_NONE},
    .rtc = {.kind = CAPHEAP_ALIAS_NONE},
#endif
    .heap_size_max = 0x50000, /* IRAM_HIGH - IRAM_LOW (chips.md 0.1) */
    .heap_alignment = 4,
    .cache_line_internal = 0,
    .cache_line_external = 0,
    .simd_alignment = 0,
    .dma_desc_axi_alignment = 0,
    .dma_encrypted_alignment = 0,
#if CAPHEAP_PORT_HOST /* the simulator's facts: host builds only (capheap/chip.h) */
    .title = "ESP32-H2 (default config: PMP memprot, LP RAM heap)",
    .image = {.iram_text_start = H2_SRAM_LOW,
              .iram_text_size = 0x9000,
              .data_start = 0x40809000,
              .data_size = 0x3B60,
              .rtc_data_start = H2_LP_RAM_LOW,
              .rtc_data_size = 0},
    .extram = {.window_start = 0},
    /* Facts: 320 KiB HP SRAM + 4 KiB LP SRAM. */
    .internal_ram_bytes = (320 + 4) * 1024,
#endif
};
