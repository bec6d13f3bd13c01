/*
 * chips/esp32s2.c - ESP32-S2 memory map, ESP-IDF's default configuration.
 *
 * Describes: memory protection on (no EXEC), 8 KB I-cache and 8 KB D-cache
 * (the defaults; with CONFIG_SPIRAM the D-cache cannot be 0), so SRAM0 keeps
 * two 8 KB head rows 0x3FFB4000 and 0x3FFB6000; RTC fast memory as heap (default
 * y); PSRAM window row present and fully reserved.
 *
 * Sources: shared/spec/chips.md section 0 and section 2 (types 2.1, regions
 * 2.2, reservations 2.3, boot heaps 2.4, alias 2.5, alignment 2.6, PSRAM 2.7).
 *
 * Reference image: the ESP-IDF v5.0.1 "hello" app log of chips.md 2.4, whose
 * heap starts at 0x3FFC2ED0. The log does not give the IRAM/data split; this
 * model takes 40 KiB of IRAM text 0x40024000..0x4002E000 (IRAM origin
 * 0x40020000 + I-cache + D-cache), whose DRAM alias is 0x3FFB4000..0x3FFBE000,
 * and static data 0x3FFBE000..0x3FFC2ED0 (0x4ED0). Only the sum matters for
 * the heap list. No RTC data. Booting produces, in table order:
 *
 *   start       len      type    startup stack
 *   0x3FFC2ED0  0x39130  RAM     no    up to the startup-stack block
 *   0x3FFFC000  0x03A10  RAM     yes   up to the ROM data 0x3FFFFA10
 *   0x3FF9E000  0x01FE8  RTCRAM  no    top 24 B reserved (the v5.0.1 log
 *                                      predates that reserve and shows 0x2000)
 *
 * The v5.0.1 log names the RAM type "DRAM"; current ESP-IDF prints "RAM".
 */
#include "capheap/chip.h"
#include "esp_heap_caps.h"

#define S2_COMMON (MALLOC_CAP_DEFAULT | MALLOC_CAP_32BIT | MALLOC_CAP_8BIT)

/* D/IRAM alias, linear, IRAM = DRAM + 0x70000 (chips.md 2.5). */
#define S2_DIRAM_DRAM_LOW 0x3FFB0000
#define S2_DIRAM_DRAM_HIGH 0x40000000
#define S2_DIRAM_IRAM_LOW 0x40020000
#define S2_DIRAM_IRAM_HIGH 0x40070000
#define S2_IRAM_OFFSET (S2_DIRAM_IRAM_LOW - S2_DIRAM_DRAM_LOW)

/* RTC fast memory, linear alias (chips.md 2.5). */
#define S2_RTC_DRAM_LOW 0x3FF9E000
#define S2_RTC_DRAM_HIGH 0x3FFA0000
#define S2_RTC_IRAM_LOW 0x40070000
#define S2_RTC_IRAM_HIGH 0x40072000
#define S2_RTC_RESERVED_SIZE 24 /* RESERVE_RTC_MEM */

/* SRAM geometry: caches at the bottom of SRAM0, then 8 KB and 16 KB blocks. */
#define S2_ICACHE_SIZE 0x2000
#define S2_DCACHE_SIZE 0x2000
#define S2_HEAD_BLOCK 0x2000
#define S2_BLOCK 0x4000
#define S2_STARTUP_BLOCK 0x3FFFC000        /* block 21 */
#define S2_ROM_RTOS_RESERVED_START 0x3FFFFA10 /* _dram0_rtos_reserved_start (esp32s2.rom.ld) */

/* External RAM window (chips.md 2.7). */
#define S2_EXTRAM_LOW 0x3F500000
#define S2_EXTRAM_SIZE 0xA80000

enum { S2_RAM, S2_SPIRAM, S2_RTCRAM, S2_TYPE_COUNT };

/* Types in ESP-IDF's enum order. name | caps at prio 0, 1, 2 */
static const soc_memory_type_desc_t s2_types[S2_TYPE_COUNT] = {
    [S2_RAM] = {.name = "RAM", .caps = {S2_COMMON | MALLOC_CAP_INTERNAL | MALLOC_CAP_DMA, 0, 0}},
    [S2_SPIRAM] = {.name = "SPIRAM", .caps = {MALLOC_CAP_SPIRAM, 0, S2_COMMON}},
    [S2_RTCRAM] = {.name = "RTCRAM", .caps = {MALLOC_CAP_RTCRAM, 0, S2_COMMON | MALLOC_CAP_INTERNAL}},
};

#define S2_RAM_ROW(start_, size_, stack_)                                                          \
    {.start = (start_), .size = (size_), .type = S2_RAM, .iram_address = (start_) + S2_IRAM_OFFSET, \
     .startup_stack = (stack_)}
#define S2_BLOCK_ROW(k) S2_RAM_ROW(0x3FFB8000 + (k) * S2_BLOCK, S2_BLOCK, false)

/* Regions in ESP-IDF's table order. start | size | type | iram_address | startup_stack */
static const soc_memory_region_t s2_regions[] = {
    {.start = S2_EXTRAM_LOW, .size = S2_EXTRAM_SIZE, .type = S2_SPIRAM, .iram_address = 0,
     .startup_stack = false}, /* fully reserved below */
    /* SRAM0 0x3FFB0000..0x3FFB8000 minus the 8 KB I-cache and 8 KB D-cache */
    S2_RAM_ROW(S2_DIRAM_DRAM_LOW + S2_ICACHE_SIZE + S2_DCACHE_SIZE, S2_HEAD_BLOCK, false),
    S2_RAM_ROW(S2_DIRAM_DRAM_LOW + S2_ICACHE_SIZE + S2_DCACHE_SIZE + S2_HEAD_BLOCK, S2_HEAD_BLOCK, false),
    /* blocks 4-20 */
    S2_BLOCK_ROW(0), S2_BLOCK_ROW(1), S2_BLOCK_ROW(2), S2_BLOCK_ROW(3), S2_BLOCK_ROW(4),
    S2_BLOCK_ROW(5), S2_BLOCK_ROW(6), S2_BLOCK_ROW(7), S2_BLOCK_ROW(8), S2_BLOCK_ROW(9),
    S2_BLOCK_ROW(10), S2_BLOCK_ROW(11), S2_BLOCK_ROW(12), S2_BLOCK_ROW(13), S2_BLOCK_ROW(14),
    S2_BLOCK_ROW(15), S2_BLOCK_ROW(16),
    S2_RAM_ROW(S2_STARTUP_BLOCK, S2_BLOCK, true), /* block 21: startup stack */
    {.start = S2_RTC_DRAM_LOW, .size = S2_RTC_DRAM_HIGH - S2_RTC_DRAM_LOW, .type = S2_RTCRAM,
     .iram_address = S2_RTC_IRAM_LOW, .startup_stack = false},
};

/* Fixed reservations, sorted by start. start | end (exclusive) */
static const soc_reserved_region_t s2_reserved[] = {
    {.start = S2_EXTRAM_LOW, .end = S2_EXTRAM_LOW + S2_EXTRAM_SIZE},             /* extram_data_region */
    {.start = S2_RTC_DRAM_HIGH - S2_RTC_RESERVED_SIZE, .end = S2_RTC_DRAM_HIGH}, /* rtc_reserved_data */
    {.start = S2_ROM_RTOS_RESERVED_START, .end = S2_DIRAM_DRAM_HIGH},            /* rom_data_region */
};

const capheap_chip_t capheap_chip_esp32s2 = {
    .name = "esp32s2",
    .types = s2_types,
    .type_count = sizeof s2_types / sizeof s2_types[0],
    .regions = s2_regions,
    .region_count = sizeof s2_regions / sizeof s2_regions[0],
    .reserved = s2_reserved,
    .reserved_count = sizeof s2_reserved / sizeof s2_reserved[0],
#if CAPHEAP_CHIP_ALIASES
    .diram = {.kind = CAPHEAP_ALIAS_LINEAR,
              .dram_low = S2_DIRAM_DRAM_LOW, .dram_high = S2_DIRAM_DRAM_HIGH,
              .iram_low = S2_DIRAM_IRAM_LOW, .iram_high = S2_DIRAM_IRAM_HIGH},
    .rtc = {.kind = CAPHEAP_ALIAS_LINEAR,
            .dram_low = S2_RTC_DRAM_LOW, .dram_high = S2_RTC_DRAM_HIGH,
            .iram_low = S2_RTC_IRAM_LOW, .iram_high = S2_RTC_IRAM_HIGH},
#endif
    .heap_size_max = 0xA80000, /* EXTRAM_DATA_HIGH - EXTRAM_DATA_LOW (chips.md 0.1) */
    .heap_alignment = 4,
    .cache_line_internal = 0,
    .cache_line_external = 32, /* CONFIG_ESP32S2_DATA_CACHE_LINE default (chips.md 2.6) */
    .simd_alignment = 0,
    .dma_desc_axi_alignment = 0,
    .dma_encrypted_alignment = 0, /* no GDMA */
#if CAPHEAP_PORT_HOST /* the simulator's facts: host builds only (capheap/chip.h) */
    .title = "ESP32-S2 (default config: memprot, 8 KB I-cache, 8 KB D-cache, RTC heap, PSRAM window)",
    .image = {.iram_text_start = S2_DIRAM_IRAM_LOW + S2_ICACHE_SIZE + S2_DCACHE_SIZE, /* 0x40024000 */
              .iram_text_size = 0xA000,
              .data_start = 0, /* right after the IRAM text's DRAM alias (0x3FFBE000) */
              .data_size = 0x4ED0,
              .rtc_data_start = S2_RTC_DRAM_LOW,
              .rtc_data_size = 0},
    .extram = {.window_start = S2_EXTRAM_LOW,
               .window_size = S2_EXTRAM_SIZE,
               /* The mapping is dynamic and chips.md has no S2 log giving its
                * start: the window start stands in for it. */
               .heap_start = S2_EXTRAM_LOW,
               .max_size = S2_EXTRAM_SIZE, /* "10.5 MB" (external-ram.rst) */
               .caps = {MALLOC_CAP_SPIRAM | MALLOC_CAP_DEFAULT, 0,
                        MALLOC_CAP_8BIT | MALLOC_CAP_32BIT | MALLOC_CAP_SIMD}},
    /* Facts: SRAM 0x3FFB0000..0x40000000 = 320 KiB less 16 KiB of caches
     * (8 KB I + 8 KB D), plus 8 KiB RTC fast memory. */
    .internal_ram_bytes = (320 - 16 + 8) * 1024,
#endif
};
