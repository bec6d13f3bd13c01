/*
 * chips/esp32c3.c - ESP32-C3 memory map, ESP-IDF's default configuration.
 *
 * Describes: memory protection on (no EXEC), fixed 16 KB I-cache, RTC fast
 * memory as heap (default y), no PSRAM.
 *
 * Sources: shared/spec/chips.md section 0 and section 4 (types 4.1, regions
 * 4.2, reservations 4.3, boot heaps 4.4, alias 4.5, alignment 4.6).
 *
 * ROM layout: dram0_rtos_reserved_start is per ROM revision (chips.md 14.1).
 * This table uses 0x3FCDF05C, the value the chip rev v1.0 log of chips.md 4.4
 * implies (the bootloader comment says 0x3FCDF060, 4 B higher).
 *
 * Reference image (examples/system/efuse log, chips.md 4.4): IRAM text
 * 0x40380000..0x40389200 (text ends at 0x4038901C; _iram_end is padded to
 * the 512-B memprot line SOC_MEMPROT_MEM_ALIGN_SIZE), static data from its
 * DRAM alias 0x3FC89200 to 0x3FC8BE70, RTC data 0x50000000..0x50000024.
 * Booting produces, in table order:
 *
 *   start       len      type           startup stack
 *   0x3FC8BE70  0x34190  RAM            no    levels 1-2 coalesced
 *   0x3FCC0000  0x1C710  Retention RAM  no
 *   0x3FCDC710  0x0294C  Retention RAM  yes   up to the ROM layout 0x3FCDF05C
 *   0x50000024  0x01FC4  RTCRAM         no    top 24 B reserved
 */
#include "capheap/chip.h"
#include "esp_heap_caps.h"

/* COMMON of chips.md 4.1 (memprot on: no EXEC). */
#define C3_COMMON (MALLOC_CAP_DEFAULT | MALLOC_CAP_INTERNAL | MALLOC_CAP_32BIT | MALLOC_CAP_8BIT)

/* D/IRAM alias, linear, IRAM = DRAM + 0x700000 (chips.md 4.5). */
#define C3_DIRAM_DRAM_LOW 0x3FC80000
#define C3_DIRAM_DRAM_HIGH 0x3FCE0000
#define C3_DIRAM_IRAM_LOW 0x40380000
#define C3_DIRAM_IRAM_HIGH 0x403E0000
#define C3_IRAM_OFFSET (C3_DIRAM_IRAM_LOW - C3_DIRAM_DRAM_LOW)

#define C3_LEVEL_SIZE 0x20000
#define C3_RETENTION_LOW 0x3FCC0000        /* level 3: reachable by the backup DMA */
#define C3_ROM_STACK_LOW 0x3FCDC710        /* SOC_ROM_STACK_START 0x3FCDE710 - 8 KB */
#define C3_ROM_RTOS_RESERVED_START 0x3FCDF05C

#define C3_RTC_LOW 0x50000000
#define C3_RTC_SIZE 0x2000
#define C3_RTC_RESERVED_SIZE 24

enum { C3_RAM, C3_RETENTION_RAM, C3_RTCRAM, C3_TYPE_COUNT };

/* Types in ESP-IDF's enum order. name | caps at prio 0, 1, 2 */
static const soc_memory_type_desc_t c3_types[C3_TYPE_COUNT] = {
    [C3_RAM] = {.name = "RAM", .caps = {C3_COMMON | MALLOC_CAP_DMA, 0, 0}},
    [C3_RETENTION_RAM] = {.name = "Retention RAM",
                          .caps = {MALLOC_CAP_RETENTION, C3_COMMON | MALLOC_CAP_DMA, 0}},
    [C3_RTCRAM] = {.name = "RTCRAM", .caps = {MALLOC_CAP_RTCRAM, 0, C3_COMMON}},
};

#define C3_DIRAM_ROW(start_, size_, type_, stack_)                                                 \
    {.start = (start_), .size = (size_), .type = (type_), .iram_address = (start_) + C3_IRAM_OFFSET, \
     .startup_stack = (stack_)}

/* Regions in ESP-IDF's table order. start | size | type | iram_address | startup_stack */
static const soc_memory_region_t c3_regions[] = {
    C3_DIRAM_ROW(C3_DIRAM_DRAM_LOW, C3_LEVEL_SIZE, C3_RAM, false),                 /* level 1 */
    C3_DIRAM_ROW(C3_DIRAM_DRAM_LOW + C3_LEVEL_SIZE, C3_LEVEL_SIZE, C3_RAM, false), /* level 2 */
    C3_DIRAM_ROW(C3_RETENTION_LOW, C3_ROM_STACK_LOW - C3_RETENTION_LOW, C3_RETENTION_RAM, false),
    C3_DIRAM_ROW(C3_ROM_STACK_LOW, C3_DIRAM_DRAM_HIGH - C3_ROM_STACK_LOW, C3_RETENTION_RAM, true),
    {.start = C3_RTC_LOW, .size = C3_RTC_SIZE, .type = C3_RTCRAM, .iram_address = 0,
     .startup_stack = false},
};

/* Fixed reservations, sorted by start. start | end (exclusive) */
static const soc_reserved_region_t c3_reserved[] = {
    {.start = C3_ROM_RTOS_RESERVED_START, .end = C3_DIRAM_DRAM_HIGH}, /* ROM layout table */
    {.start = C3_RTC_LOW + C3_RTC_SIZE - C3_RTC_RESERVED_SIZE, .end = C3_RTC_LOW + C3_RTC_SIZE},
};

const capheap_chip_t capheap_chip_esp32c3 = {
    .name = "esp32c3",
    .types = c3_types,
    .type_count = sizeof c3_types / sizeof c3_types[0],
    .regions = c3_regions,
    .region_count = sizeof c3_regions / sizeof c3_regions[0],
    .reserved = c3_reserved,
    .reserved_count = sizeof c3_reserved / sizeof c3_reserved[0],
#if CAPHEAP_CHIP_ALIASES
    .diram = {.kind = CAPHEAP_ALIAS_LINEAR,
              .dram_low = C3_DIRAM_DRAM_LOW, .dram_high = C3_DIRAM_DRAM_HIGH,
              .iram_low = C3_DIRAM_IRAM_LOW, .iram_high = C3_DIRAM_IRAM_HIGH},
    .rtc = {.kind = CAPHEAP_ALIAS_NONE}, /* RTC memory: same address on both buses */
#endif
    .heap_size_max = 0x64000, /* IRAM_HIGH - IRAM_LOW = 0x403E0000 - 0x4037C000 (chips.md 0.1) */
    .heap_alignment = 4,
    .cache_line_internal = 0,
    .cache_line_external = 0, /* no PSRAM */
    .simd_alignment = 0,
    .dma_desc_axi_alignment = 0,
    .dma_encrypted_alignment = 0, /* GDMA, but no PSRAM/flash DMA */
#if CAPHEAP_PORT_HOST /* the simulator's facts: host builds only (capheap/chip.h) */
    .title = "ESP32-C3 (default config: memprot, RTC heap, ROM rev v1.0 layout)",
    .image = {.iram_text_start = C3_DIRAM_IRAM_LOW, /* 0x4037C000 + the 16 KB I-cache */
              .iram_text_size = 0x9200,
              .data_start = 0, /* right after the IRAM text's DRAM alias (0x3FC89200) */
              .data_size = 0x2C70,
              .rtc_data_start = C3_RTC_LOW,
              .rtc_data_size = 0x24},
    .extram = {.window_start = 0},
    /* Facts: 400 KiB SRAM less the 16 KiB I-cache, plus 8 KiB RTC fast memory. */
    .internal_ram_bytes = (400 - 16 + 8) * 1024,
#endif
};
