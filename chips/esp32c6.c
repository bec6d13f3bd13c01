/*
 * chips/esp32c6.c - ESP32-C6 memory map, ESP-IDF's default configuration.
 *
 * Describes: memory protection on through PMP (no EXEC), LP RAM as RTC heap
 * (default y, no secure-boot digest, no ULP in HP memory, no TEE), no PSRAM.
 * Instruction and data addresses are the same (no alias path).
 *
 * Sources: shared/spec/chips.md section 0 and section 5 (types 5.1, regions
 * 5.2, reservations 5.3, boot heaps 5.4, alias/alignment 5.5).
 *
 * Reference image (public v5.4 log, chip rev v0.0, chips.md 5.4): IRAM text
 * and static data fill 0x40800000..0x4080D8E0. The log does not give the
 * split; this model takes IRAM text 0x40800000..0x40809000 and static data
 * 0x40809000..0x4080D8E0 (only the sum matters). No RTC data. Booting
 * produces, in table order:
 *
 *   start       len      type    startup stack
 *   0x4080D8E0  0x6ED30  RAM     no    levels 0-3 coalesced
 *   0x4087C610  0x02F54  RAM     yes   up to the ROM layout 0x4087F564
 *   0x50000000  0x03FE8  RTCRAM  no    top 24 B reserved
 */
#include "capheap/chip.h"
#include "esp_heap_caps.h"

#define C6_COMMON (MALLOC_CAP_DEFAULT | MALLOC_CAP_INTERNAL | MALLOC_CAP_32BIT | MALLOC_CAP_8BIT)

#define C6_SRAM_LOW 0x40800000
#define C6_SRAM_HIGH 0x40880000
#define C6_LEVEL_SIZE 0x20000
#define C6_ROM_STACK_LOW 0x4087C610           /* SOC_ROM_STACK_START 0x4087E610 - 8 KB */
#define C6_ROM_RTOS_RESERVED_START 0x4087F564 /* dram0_rtos_reserved_start */

#define C6_LP_RAM_LOW 0x50000000
#define C6_LP_RAM_SIZE 0x4000
#define C6_RTC_RESERVED_SIZE 24

enum { C6_RAM, C6_RTCRAM, C6_TYPE_COUNT };

/* Types in ESP-IDF's enum order. name | caps at prio 0, 1, 2 */
static const soc_memory_type_desc_t c6_types[C6_TYPE_COUNT] = {
    [C6_RAM] = {.name = "RAM", .caps = {C6_COMMON | MALLOC_CAP_DMA, 0, 0}},
    /* DEFAULT at prio 1 here (prio 2 on C3, S2, S3, P4) */
    [C6_RTCRAM] = {.name = "RTCRAM", .caps = {MALLOC_CAP_RTCRAM, C6_COMMON, 0}},
};

#define C6_RAM_ROW(start_, size_, stack_)                                                          \
    {.start = (start_), .size = (size_), .type = C6_RAM, .iram_address = (start_),                \
     .startup_stack = (stack_)}

/* Regions in ESP-IDF's table order. start | size | type | iram_address (identity) | startup_stack */
static const soc_memory_region_t c6_regions[] = {
    C6_RAM_ROW(C6_SRAM_LOW, C6_LEVEL_SIZE, false),                     /* level 0 */
    C6_RAM_ROW(C6_SRAM_LOW + C6_LEVEL_SIZE, C6_LEVEL_SIZE, false),     /* level 1 */
    C6_RAM_ROW(C6_SRAM_LOW + 2 * C6_LEVEL_SIZE, C6_LEVEL_SIZE, false), /* level 2 */
    C6_RAM_ROW(C6_SRAM_LOW + 3 * C6_LEVEL_SIZE, C6_ROM_STACK_LOW - (C6_SRAM_LOW + 3 * C6_LEVEL_SIZE),
               false), /* level 3 below the ROM stack */
    C6_RAM_ROW(C6_ROM_STACK_LOW, C6_SRAM_HIGH - C6_ROM_STACK_LOW, true),
    {.start = C6_LP_RAM_LOW, .size = C6_LP_RAM_SIZE, .type = C6_RTCRAM, .iram_address = 0,
     .startup_stack = false},
};

/* Fixed reservations, sorted by start. start | end (exclusive) */
static const soc_reserved_region_t c6_reserved[] = {
    {.start = C6_ROM_RTOS_RESERVED_START, .end = C6_SRAM_HIGH}, /* ROM layout table */
    {.start = C6_LP_RAM_LOW + C6_LP_RAM_SIZE - C6_RTC_RESERVED_SIZE, .end = C6_LP_RAM_LOW + C6_LP_RAM_SIZE},
};

const capheap_chip_t capheap_chip_esp32c6 = {
    .name = "esp32c6",
    .types = c6_types,
    .type_count = sizeof c6_types / sizeof c6_types[0],
    .regions = c6_regions,
    .region_count = sizeof c6_regions / sizeof c6_regions[0],
    .reserved = c6_reserved,
    .reserved_count = sizeof c6_reserved / sizeof c6_reserved[0],
#if CAPHEAP_CHIP_ALIASES
    .diram = {.kind = CAPHEAP_ALIAS_NONE}, /* I and D addresses are the same */
    .rtc = {.kind = CAPHEAP_ALIAS_NONE},
#endif
    .heap_size_max = 0x80000, /* IRAM_HIGH - IRAM_LOW (chips.md 0.1) */
    .heap_alignment = 4,
    .cache_line_internal = 0,
    .cache_line_external = 0, /* no PSRAM */
    .simd_alignment = 0,
    .dma_desc_axi_alignment = 0,
    .dma_encrypted_alignment = 0,
#if CAPHEAP_PORT_HOST /* the simulator's facts: host builds only (capheap/chip.h) */
    .title = "ESP32-C6 (default config: PMP memprot, LP RAM heap)",
    .image = {.iram_text_start = C6_SRAM_LOW, /* sram_seg origin */
              .iram_text_size = 0x9000,
              .data_start = 0x40809000,
              .data_size = 0x48E0,
              .rtc_data_start = C6_LP_RAM_LOW,
              .rtc_data_size = 0},
    .extram = {.window_start = 0},
    /* Facts: 512 KiB HP SRAM + 16 KiB LP SRAM. */
    .internal_ram_bytes = (512 + 16) * 1024,
#endif
};
