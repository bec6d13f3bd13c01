/*
 * chips/esp32.c - ESP32 memory map, ESP-IDF's default configuration.
 *
 * Describes: dual-core (so both CPU caches and the APP CPU's ROM data are
 * reserved, and RTC fast memory is not a heap: its Kconfig dependency is n on
 * dual-core), Bluetooth off, no TRAX, EXEC heaps (ESP32 has no memory
 * protection), PSRAM window row present and fully reserved.
 *
 * Sources: shared/spec/chips.md section 0 and section 1 (types 1.1, regions
 * 1.2, reservations 1.3, boot heaps 1.4, alias 1.5, alignment 1.6, PSRAM 1.7);
 * spec esp-idf-heap.md 2.12.
 *
 * Reference image (docs mem_alloc.rst, chips.md 1.4): IRAM text
 * 0x40080000..0x4008944C (0x944C), static data 0x3FFB0000..0x3FFB2EC8 (0x2EC8;
 * dram0_0_seg starts at 0x3FFB0000 without BT), no RTC data. Booting produces,
 * in table order:
 *
 *   start       len      type    startup stack
 *   0x3FFAE6E0  0x01920  DRAM    no    after the ROM data
 *   0x3FFB2EC8  0x2D138  DRAM    no    _heap_start..0x3FFE0000, 18 rows coalesced
 *   0x3FFE0440  0x03AE0  D/IRAM  yes   between ROM PRO data and ROM APP data
 *   0x3FFE4350  0x1BCB0  D/IRAM  yes   up to 0x40000000
 *   0x4008944C  0x16BB4  IRAM    no    _iram_end..0x400A0000
 *
 * Not in the table (no effect on any region): rtc_reserved, the top 24 B of RTC
 * slow memory 0x50001FE8..0x50002000, which lies outside every heap region.
 */
#include "capheap/chip.h"
#include "esp_heap_caps.h"

/* D/IRAM alias, inverted (SOC_DIRAM_INVERTED, chips.md 1.5). */
#define E32_DIRAM_DRAM_LOW 0x3FFE0000
#define E32_DIRAM_DRAM_HIGH 0x40000000
#define E32_DIRAM_IRAM_LOW 0x400A0000
#define E32_DIRAM_IRAM_HIGH 0x400C0000
/* iram_address of a D/IRAM row: the IRAM alias of its last word. */
#define E32_DIRAM_IRAM_OF_ROW(start, size) (E32_DIRAM_IRAM_LOW + (E32_DIRAM_DRAM_HIGH - (start) - (size)))

/* RTC fast memory alias, linear (single-core RTC heap only). */
#define E32_RTC_DRAM_LOW 0x3FF80000
#define E32_RTC_DRAM_HIGH 0x3FF82000
#define E32_RTC_IRAM_LOW 0x400C0000
#define E32_RTC_IRAM_HIGH 0x400C2000

/* SRAM pool geometry (chips.md 1.2). */
#define E32_DRAM_PAGE_LOW 0x3FFC0000 /* pools 10-13: 16 MMU pages of 8 KB */
#define E32_IRAM_PAGE_LOW 0x40080000 /* pools 2-5: 16 pages of 8 KB */
#define E32_PAGE_SIZE 0x2000
#define E32_CPU0_CACHE 0x40070000
#define E32_CPU1_CACHE 0x40078000
#define E32_CPU_CACHE_SIZE 0x8000

/* ROM data (chips.md 1.3). */
#define E32_ROM_DATA_LOW 0x3FFAE000
#define E32_ROM_DATA_END 0x3FFAE6E0
#define E32_ROM_PRO_DATA_END 0x3FFE0440
#define E32_ROM_APP_DATA_LOW 0x3FFE3F20
#define E32_ROM_APP_DATA_END 0x3FFE4350

/* PSRAM window SOC_EXTRAM_DATA_LOW..HIGH (chips.md 1.7). */
#define E32_EXTRAM_LOW 0x3F800000
#define E32_EXTRAM_SIZE 0x400000

enum { E32_DRAM, E32_DIRAM, E32_IRAM, E32_SPIRAM, E32_RTCRAM, E32_TYPE_COUNT };

/* Types in ESP-IDF's enum order. name | caps at prio 0, 1, 2 */
static const soc_memory_type_desc_t esp32_types[E32_TYPE_COUNT] = {
    [E32_DRAM] = {.name = "DRAM",
                  .caps = {MALLOC_CAP_8BIT | MALLOC_CAP_DEFAULT,
                           MALLOC_CAP_INTERNAL | MALLOC_CAP_DMA | MALLOC_CAP_32BIT, 0}},
    [E32_DIRAM] = {.name = "D/IRAM",
                   .caps = {0, MALLOC_CAP_DMA | MALLOC_CAP_8BIT | MALLOC_CAP_INTERNAL | MALLOC_CAP_DEFAULT,
                            MALLOC_CAP_32BIT | MALLOC_CAP_EXEC}},
    [E32_IRAM] = {.name = "IRAM", .caps = {MALLOC_CAP_INTERNAL | MALLOC_CAP_EXEC | MALLOC_CAP_32BIT, 0, 0}},
    [E32_SPIRAM] = {.name = "SPIRAM",
                    .caps = {MALLOC_CAP_SPIRAM | MALLOC_CAP_DEFAULT, 0, MALLOC_CAP_8BIT | MALLOC_CAP_32BIT}},
    /* No region in the dual-core default; kept so type indices match ESP-IDF. */
    [E32_RTCRAM] = {.name = "RTCRAM",
                    .caps = {MALLOC_CAP_RTCRAM, MALLOC_CAP_8BIT | MALLOC_CAP_DEFAULT,
                             MALLOC_CAP_INTERNAL | MALLOC_CAP_32BIT | MALLOC_CAP_EXEC}},
};

#define E32_ROW(start_, size_, type_)                                                              \
    {.start = (start_), .size = (size_), .type = (type_), .iram_address = 0, .startup_stack = false}
#define E32_DRAM_PAGE(k) E32_ROW(E32_DRAM_PAGE_LOW + (k) * E32_PAGE_SIZE, E32_PAGE_SIZE, E32_DRAM)
#define E32_IRAM_PAGE(k) E32_ROW(E32_IRAM_PAGE_LOW + (k) * E32_PAGE_SIZE, E32_PAGE_SIZE, E32_IRAM)
#define E32_DIRAM_ROW(start_, size_)                                                               \
    {.start = (start_), .size = (size_), .type = E32_DIRAM,                                       \
     .iram_address = E32_DIRAM_IRAM_OF_ROW(start_, size_), .startup_stack = true}

/* Regions in ESP-IDF's table order. start | size | type | iram_address | startup_stack */
static const soc_memory_region_t esp32_regions[] = {
    E32_ROW(E32_EXTRAM_LOW, E32_EXTRAM_SIZE, E32_SPIRAM), /* fully reserved below */
    E32_ROW(0x3FFAE000, 0x2000, E32_DRAM),                /* pool 16 (ROM data) */
    E32_ROW(0x3FFB0000, 0x8000, E32_DRAM),                /* pool 15 (BT shared memory when BT is on) */
    E32_ROW(0x3FFB8000, 0x8000, E32_DRAM),                /* pool 14 (BT ROM data when BT is on) */
    E32_DRAM_PAGE(0), E32_DRAM_PAGE(1), E32_DRAM_PAGE(2), E32_DRAM_PAGE(3),
    E32_DRAM_PAGE(4), E32_DRAM_PAGE(5), E32_DRAM_PAGE(6), E32_DRAM_PAGE(7),
    E32_DRAM_PAGE(8), E32_DRAM_PAGE(9), E32_DRAM_PAGE(10), E32_DRAM_PAGE(11),
    E32_DRAM_PAGE(12), E32_DRAM_PAGE(13), E32_DRAM_PAGE(14), E32_DRAM_PAGE(15),
    E32_DIRAM_ROW(0x3FFE0000, 0x4000), /* pool 9 block 1 */
    E32_DIRAM_ROW(0x3FFE4000, 0x4000), /* pool 9 block 0 */
    E32_DIRAM_ROW(0x3FFE8000, 0x8000), /* pool 8 */
    E32_DIRAM_ROW(0x3FFF0000, 0x8000), /* pool 7 */
    E32_DIRAM_ROW(0x3FFF8000, 0x4000), /* pool 6 block 1 (trace memory) */
    E32_DIRAM_ROW(0x3FFFC000, 0x4000), /* pool 6 block 0 (trace memory) */
    E32_ROW(E32_CPU0_CACHE, E32_CPU_CACHE_SIZE, E32_IRAM), /* pool 0 */
    E32_ROW(E32_CPU1_CACHE, E32_CPU_CACHE_SIZE, E32_IRAM), /* pool 1 */
    E32_IRAM_PAGE(0), E32_IRAM_PAGE(1), E32_IRAM_PAGE(2), E32_IRAM_PAGE(3),
    E32_IRAM_PAGE(4), E32_IRAM_PAGE(5), E32_IRAM_PAGE(6), E32_IRAM_PAGE(7),
    E32_IRAM_PAGE(8), E32_IRAM_PAGE(9), E32_IRAM_PAGE(10), E32_IRAM_PAGE(11),
    E32_IRAM_PAGE(12), E32_IRAM_PAGE(13), E32_IRAM_PAGE(14), E32_IRAM_PAGE(15),
    /* RTC fast memory row 0x3FF80000/0x2000 exists only in single-core builds. */
};

/* Fixed reservations, sorted by start. start | end (exclusive) */
static const soc_reserved_region_t esp32_reserved[] = {
    {.start = E32_EXTRAM_LOW, .end = E32_EXTRAM_LOW + E32_EXTRAM_SIZE},     /* spi_ram */
    {.start = E32_ROM_DATA_LOW, .end = E32_ROM_DATA_END},                   /* rom_data */
    {.start = E32_DIRAM_DRAM_LOW, .end = E32_ROM_PRO_DATA_END},             /* rom_pro_data */
    {.start = E32_ROM_APP_DATA_LOW, .end = E32_ROM_APP_DATA_END},           /* rom_app_data (dual-core) */
    {.start = E32_CPU0_CACHE, .end = E32_CPU0_CACHE + E32_CPU_CACHE_SIZE},  /* cpu0_cache */
    {.start = E32_CPU1_CACHE, .end = E32_CPU1_CACHE + E32_CPU_CACHE_SIZE},  /* cpu1_cache (dual-core) */
};

const capheap_chip_t capheap_chip_esp32 = {
    .name = "esp32",
    .types = esp32_types,
    .type_count = sizeof esp32_types / sizeof esp32_types[0],
    .regions = esp32_regions,
    .region_count = sizeof esp32_regions / sizeof esp32_regions[0],
    .reserved = esp32_reserved,
    .reserved_count = sizeof esp32_reserved / sizeof esp32_reserved[0],
#if CAPHEAP_CHIP_ALIASES
    .diram = {.kind = CAPHEAP_ALIAS_INVERTED,
              .dram_low = E32_DIRAM_DRAM_LOW, .dram_high = E32_DIRAM_DRAM_HIGH,
              .iram_low = E32_DIRAM_IRAM_LOW, .iram_high = E32_DIRAM_IRAM_HIGH},
    .rtc = {.kind = CAPHEAP_ALIAS_LINEAR,
            .dram_low = E32_RTC_DRAM_LOW, .dram_high = E32_RTC_DRAM_HIGH,
            .iram_low = E32_RTC_IRAM_LOW, .iram_high = E32_RTC_IRAM_HIGH},
#endif
    .heap_size_max = 0x400000, /* SOC_MAX_CONTIGUOUS_RAM_SIZE literal (chips.md 0.1) */
    .heap_alignment = 4,
    .cache_line_internal = 0,
    .cache_line_external = 4, /* what cache_hal_esp32.c reports for external memory (chips.md 1.6) */
    .simd_alignment = 0,
    .dma_desc_axi_alignment = 0,
    .dma_encrypted_alignment = 0, /* no GDMA */
#if CAPHEAP_PORT_HOST /* the simulator's facts: host builds only (capheap/chip.h) */
    .title = "ESP32 (default config: dual-core, BT off, EXEC heaps, no RTC heap, PSRAM window)",
    .image = {.iram_text_start = E32_IRAM_PAGE_LOW,
              .iram_text_size = 0x944C,
              .data_start = 0x3FFB0000, /* dram0_0_seg origin with BT off */
              .data_size = 0x2EC8,
              .rtc_data_start = 0,       /* no RTC heap on dual-core */
              .rtc_data_size = 0},
    .extram = {.window_start = E32_EXTRAM_LOW,
               .window_size = E32_EXTRAM_SIZE,
               .heap_start = E32_EXTRAM_LOW, /* the mapping starts at the window (chips.md 0.4) */
               .max_size = E32_EXTRAM_SIZE,  /* more only by himem bank switching */
               .caps = {MALLOC_CAP_SPIRAM | MALLOC_CAP_DEFAULT, 0,
                        MALLOC_CAP_8BIT | MALLOC_CAP_32BIT | MALLOC_CAP_SIMD}},
    /* Facts: 520 KiB SRAM = SRAM0 192 KiB (CPU caches 64 + IRAM 128) + SRAM1
     * 128 KiB (D/IRAM) + SRAM2 200 KiB (DRAM). RTC fast memory is not a heap
     * region in the dual-core default. */
    .internal_ram_bytes = (192 + 128 + 200) * 1024,
#endif
};
