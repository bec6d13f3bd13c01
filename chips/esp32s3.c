/*
 * chips/esp32s3.c - ESP32-S3 memory map, ESP-IDF's default configuration.
 *
 * Describes: memory protection on (no EXEC heap, so no 0x40374000 IRAM row),
 * 16 KB I-cache, 32 KB D-cache (the 0x3FCF0000 DRAM row is present, the
 * 0x3C000000 16-KB-D-cache row is not), RTC fast memory as heap, PSRAM window
 * row present and fully reserved (PSRAM is added at run time with extram.caps).
 *
 * Sources: shared/spec/chips.md section 0 (HEAP_SIZE_MAX, alias, alignment,
 * PSRAM, ROM layout) and section 3 (types 3.1, regions 3.2, reservations 3.3,
 * boot heaps 3.4, alias 3.5, alignment 3.6, PSRAM 3.7); the reference image at
 * the top of chips.md; spec esp-idf-heap.md 2.12.
 *
 * Reference image (chips.md, top): IRAM text 0x40374000..0x4038B000, static
 * data from its DRAM alias 0x3FC9B000 to 0x3FC9D3A8, no RTC data. The image
 * reservations are then
 *   IRAM text alias  0x3FC84000..0x3FC9B000  (= _iram_start/_iram_end - 0x6F0000;
 *                    the text starts 16 KB below the alias window's IRAM low
 *                    0x40378000, and ESP-IDF translates the whole range
 *                    linearly, so the alias starts below 0x3FC88000 too)
 *   static data      0x3FC9B000..0x3FC9D3A8
 *   IRAM text itself 0x40374000..0x4038B000  (iram_code_2; outside every region)
 * and booting produces, in table order (spec 2.2 carving, 2.3 coalescing):
 *
 *   start       len      type    startup stack
 *   0x3FC9D3A8  0x4C368  RAM     no    levels 2-8 below the ROM stack, coalesced
 *   0x3FCE9710  0x05724  RAM     yes   cut at dram0_rtos_reserved_start 0x3FCEEE34
 *   0x3FCF0000  0x08000  DRAM    no
 *   0x600FE000  0x01FE8  RTCRAM  no    top 24 B reserved
 *
 * (The ota/partitions_ota log of chips.md 3.4 is the same layout with a larger
 * image: RAM 0x3FCA14A0 len 0x48270 and RTCRAM 0x600FE11C len 0x1ECC.)
 */
#include "capheap/chip.h"
#include "esp_heap_caps.h"

/* Capabilities: "COMMON" of chips.md 3.1. */
#define S3_COMMON (MALLOC_CAP_DEFAULT | MALLOC_CAP_32BIT | MALLOC_CAP_8BIT)

/* D/IRAM: one SRAM seen at two addresses, IRAM = DRAM + 0x6F0000 (chips.md 3.5). */
#define S3_DIRAM_DRAM_LOW 0x3FC88000
#define S3_DIRAM_DRAM_HIGH 0x3FCF0000
#define S3_DIRAM_IRAM_LOW 0x40378000
#define S3_DIRAM_IRAM_HIGH 0x403E0000
#define S3_IRAM_OFFSET (S3_DIRAM_IRAM_LOW - S3_DIRAM_DRAM_LOW) /* 0x6F0000 */

/* The ROM boot stack: SOC_ROM_STACK_START 0x3FCEB710 minus its 8 KB size. */
#define S3_ROM_STACK_LOW 0x3FCE9710
/* dram0_rtos_reserved_start of the ROM layout table (bootloader.memory.ld.in). */
#define S3_ROM_RTOS_RESERVED_START 0x3FCEEE34

/* D-cache-free DRAM above D/IRAM with the 32 KB D-cache default. */
#define S3_DRAM_LOW 0x3FCF0000
#define S3_DRAM_SIZE 0x8000

/* RTC fast memory and its reserved top (RESERVE_RTC_MEM, 24 B). */
#define S3_RTC_LOW 0x600FE000
#define S3_RTC_SIZE 0x2000
#define S3_RTC_RESERVED_SIZE 24

/* External RAM: EXTRAM_DATA_LOW..HIGH (chips.md 0.1, 3.7). */
#define S3_EXTRAM_LOW 0x3C000000
#define S3_EXTRAM_SIZE 0x2000000
#define S3_EXTRAM_TYPICAL_HEAP 0x3C110000 /* public log, chips.md 3.7 */

/* Firmware: IRAM origin is 0x40370000 + the 16 KB I-cache. */
#define S3_IRAM_TEXT_START 0x40374000

enum { S3_RAM, S3_DRAM, S3_IRAM, S3_SPIRAM, S3_RTCRAM, S3_TYPE_COUNT };

/* Types in ESP-IDF's enum order. name | caps at prio 0, 1, 2 */
static const soc_memory_type_desc_t s3_types[S3_TYPE_COUNT] = {
    [S3_RAM] = {.name = "RAM",
                .caps = {S3_COMMON | MALLOC_CAP_INTERNAL | MALLOC_CAP_DMA | MALLOC_CAP_RETENTION |
                             MALLOC_CAP_SIMD,
                         0, 0}},
    [S3_DRAM] = {.name = "DRAM",
                 .caps = {0, S3_COMMON | MALLOC_CAP_INTERNAL | MALLOC_CAP_DMA | MALLOC_CAP_SIMD, 0}},
    /* With memprot the IRAM type keeps only its prio-1 caps; no region uses it. */
    [S3_IRAM] = {.name = "IRAM", .caps = {0, MALLOC_CAP_32BIT | MALLOC_CAP_INTERNAL, 0}},
    [S3_SPIRAM] = {.name = "SPIRAM", .caps = {MALLOC_CAP_SPIRAM, 0, S3_COMMON | MALLOC_CAP_SIMD}},
    [S3_RTCRAM] = {.name = "RTCRAM", .caps = {MALLOC_CAP_RTCRAM, 0, S3_COMMON | MALLOC_CAP_INTERNAL}},
};

#define S3_DIRAM_ROW(start_, size_, stack_)                                                        \
    {.start = (start_), .size = (size_), .type = S3_RAM, .iram_address = (start_) + S3_IRAM_OFFSET, \
     .startup_stack = (stack_)}

/* Regions in ESP-IDF's table order. start | size | type | iram_address | startup_stack */
static const soc_memory_region_t s3_regions[] = {
    S3_DIRAM_ROW(0x3FC88000, 0x8000, false),  /* level 2 */
    S3_DIRAM_ROW(0x3FC90000, 0x10000, false), /* level 3 */
    S3_DIRAM_ROW(0x3FCA0000, 0x10000, false), /* level 4 */
    S3_DIRAM_ROW(0x3FCB0000, 0x10000, false), /* level 5 */
    S3_DIRAM_ROW(0x3FCC0000, 0x10000, false), /* level 6 */
    S3_DIRAM_ROW(0x3FCD0000, 0x10000, false), /* level 7 */
    S3_DIRAM_ROW(0x3FCE0000, S3_ROM_STACK_LOW - 0x3FCE0000, false), /* level 8 below the ROM stack */
    S3_DIRAM_ROW(S3_ROM_STACK_LOW, S3_DIRAM_DRAM_HIGH - S3_ROM_STACK_LOW, true), /* ROM stack */
    {.start = S3_DRAM_LOW, .size = S3_DRAM_SIZE, .type = S3_DRAM, .iram_address = 0,
     .startup_stack = false},
    {.start = S3_EXTRAM_LOW, .size = S3_EXTRAM_SIZE, .type = S3_SPIRAM, .iram_address = 0,
     .startup_stack = false}, /* fully reserved below */
    {.start = S3_RTC_LOW, .size = S3_RTC_SIZE, .type = S3_RTCRAM, .iram_address = 0,
     .startup_stack = false},
};

/* Fixed reservations, sorted by start. start | end (exclusive) */
static const soc_reserved_region_t s3_reserved[] = {
    {.start = S3_EXTRAM_LOW, .end = S3_EXTRAM_LOW + S3_EXTRAM_SIZE},          /* extram_data_region */
    {.start = S3_ROM_RTOS_RESERVED_START, .end = S3_DIRAM_DRAM_HIGH},          /* ROM layout table */
    {.start = S3_RTC_LOW + S3_RTC_SIZE - S3_RTC_RESERVED_SIZE, .end = S3_RTC_LOW + S3_RTC_SIZE}, /* rtc_reserved_data */
};

const capheap_chip_t capheap_chip_esp32s3 = {
    .name = "esp32s3",
    .types = s3_types,
    .type_count = sizeof s3_types / sizeof s3_types[0],
    .regions = s3_regions,
    .region_count = sizeof s3_regions / sizeof s3_regions[0],
    .reserved = s3_reserved,
    .reserved_count = sizeof s3_reserved / sizeof s3_reserved[0],
#if CAPHEAP_CHIP_ALIASES
    .diram = {.kind = CAPHEAP_ALIAS_LINEAR,
              .dram_low = S3_DIRAM_DRAM_LOW, .dram_high = S3_DIRAM_DRAM_HIGH,
              .iram_low = S3_DIRAM_IRAM_LOW, .iram_high = S3_DIRAM_IRAM_HIGH},
    .rtc = {.kind = CAPHEAP_ALIAS_NONE}, /* RTC fast memory: same address on both buses */
#endif
    .heap_size_max = 0x2000000,          /* EXTRAM_DATA_HIGH - EXTRAM_DATA_LOW (chips.md 0.1) */
    .heap_alignment = 4,
    .cache_line_internal = 0,
    .cache_line_external = 32, /* CONFIG_ESP32S3_DATA_CACHE_LINE default (chips.md 3.6) */
    .simd_alignment = 16,      /* SOC_SIMD_PREFERRED_DATA_ALIGNMENT */
    .dma_desc_axi_alignment = 0,
    .dma_encrypted_alignment = 16, /* SOC_MEMSPI_ENCRYPTION_ALIGNMENT (GDMA + PSRAM DMA) */
#if CAPHEAP_PORT_HOST /* the simulator's facts: host builds only (capheap/chip.h) */
    .title = "ESP32-S3 (default config: memprot, 16 KB I-cache, 32 KB D-cache, RTC heap, PSRAM window)",
    .image = {.iram_text_start = S3_IRAM_TEXT_START,
              .iram_text_size = 0x4038B000 - S3_IRAM_TEXT_START, /* 0x17000 */
              .data_start = 0,                  /* right after the IRAM text's DRAM alias */
              .data_size = 0x3FC9D3A8 - (0x4038B000 - S3_IRAM_OFFSET), /* 0x23A8 */
              .rtc_data_start = S3_RTC_LOW,
              .rtc_data_size = 0},
    .extram = {.window_start = S3_EXTRAM_LOW,
               .window_size = S3_EXTRAM_SIZE,
               .heap_start = S3_EXTRAM_TYPICAL_HEAP,
               .max_size = S3_EXTRAM_SIZE,
               .caps = {MALLOC_CAP_SPIRAM | MALLOC_CAP_DEFAULT, 0,
                        MALLOC_CAP_8BIT | MALLOC_CAP_32BIT | MALLOC_CAP_SIMD}},
    /* Facts: D/IRAM 0x3FC88000..0x3FCF0000 = 416 KiB, D-cache-free DRAM 32 KiB,
     * RTC fast 8 KiB (512 KiB SRAM less 16 KiB I-cache, the 16 KiB IRAM that
     * memprot withholds and the 32 KiB D-cache, plus RTC fast memory). */
    .internal_ram_bytes = (416 + 32 + 8) * 1024,
#endif
};
