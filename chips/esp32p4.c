/*
 * chips/esp32p4.c - ESP32-P4 memory map, ESP-IDF's default configuration.
 *
 * Describes: chip revision >= 3 (CONFIG_ESP32P4_SELECTS_REV_LESS_V3 = n, minimum
 * revision v3.1, so no MSPI workaround reservation), 128 KB L2 cache at the
 * bottom of L2MEM, memory protection on through PMP (no EXEC), LP RAM as RTC
 * heap without ULP, PSRAM window row present and fully reserved. I and D
 * addresses are the same. The only chip here whose internal RAM sits behind
 * the L1 data cache (64-B lines).
 *
 * Sources: shared/spec/chips.md section 0 and section 7 (types 7.1, regions
 * 7.2, reservations 7.3, boot heaps 7.4, alias 7.5, alignment 7.6, PSRAM 7.7).
 *
 * Reference image (docs/en/security/esp32p4_log.inc, v6.0-dev, rev v3.0,
 * chips.md 7.4): IRAM text and static data fill 0x4FF20000..0x4FF33B20; the
 * log does not give the split, this model takes IRAM text
 * 0x4FF20000..0x4FF2E000 and static data 0x4FF2E000..0x4FF33B20. RTC data
 * 0x50108018..0x50108080 (after the 24-B rtc_reserved area, which the P4
 * linker script puts at the BOTTOM of LP RAM). SPM code/data
 * 0x30100000..0x30100044 (see the note at p4_reserved). Booting produces,
 * in table order:
 *
 *   start       len      type        startup stack
 *   0x4FF33B20  0x874A0  RETENT_RAM  no    (the v6.0-dev log prints "RAM")
 *   0x4FFBAFC0  0x04BF0  RAM         yes   up to the ROM layout 0x4FFBFBB0
 *   0x50108080  0x07F80  RTCRAM      no
 *   0x30100044  0x01FBC  SPM         no    (the log prints "TCM")
 */
#include "capheap/chip.h"
#include "esp_heap_caps.h"

#define P4_COMMON (MALLOC_CAP_DEFAULT | MALLOC_CAP_32BIT | MALLOC_CAP_8BIT)
#define P4_L2_BASE (P4_COMMON | MALLOC_CAP_INTERNAL | MALLOC_CAP_DMA)
#define P4_RTC_BASE (P4_COMMON | MALLOC_CAP_INTERNAL)

/* L2MEM 0x4FF00000..0x4FFC0000 (768 KiB); the L2 cache takes its bottom. */
#define P4_L2MEM_LOW 0x4FF00000
#define P4_L2MEM_HIGH 0x4FFC0000            /* SOC_DRAM_HIGH */
#define P4_L2_CACHE_SIZE 0x20000            /* CONFIG_CACHE_L2_CACHE_SIZE default 128 KB */
#define P4_ROM_STACK_LOW 0x4FFBAFC0         /* start of the startup-stack row */
#define P4_ROM_RTOS_RESERVED_START 0x4FFBFBB0 /* dram0_rtos_reserved_start, rev >= 3 */

#define P4_LP_RAM_LOW 0x50108000
#define P4_LP_RAM_SIZE 0x8000 /* 0x7A80 with the ULP (LP_ROM_DRAM_SIZE 0x580) */
#define P4_RTC_RESERVED_SIZE 24 /* RESERVE_RTC_MEM (inferred: the same 24 B as the other chips) */

#define P4_SPM_LOW 0x30100000
#define P4_SPM_SIZE 0x2000
#define P4_SPM_IMAGE_END 0x30100044 /* _spm_data_end of the reference image */

#define P4_EXTRAM_LOW 0x48000000
#define P4_EXTRAM_SIZE 0x4000000

enum { P4_RAM, P4_RETENT_RAM, P4_SPIRAM, P4_SPM, P4_RTCRAM, P4_TYPE_COUNT };

/* Types in ESP-IDF's enum order. name | caps at prio 0, 1, 2 */
static const soc_memory_type_desc_t p4_types[P4_TYPE_COUNT] = {
    [P4_RAM] = {.name = "RAM", .caps = {P4_L2_BASE | MALLOC_CAP_SIMD, 0, 0}},
    [P4_RETENT_RAM] = {.name = "RETENT_RAM", .caps = {MALLOC_CAP_RETENTION | MALLOC_CAP_SIMD, P4_L2_BASE, 0}},
    [P4_SPIRAM] = {.name = "SPIRAM", .caps = {MALLOC_CAP_SPIRAM, 0, P4_COMMON | MALLOC_CAP_SIMD}},
    /* SPM and RTCRAM cannot do 128-bit accesses: no SIMD */
    [P4_SPM] = {.name = "SPM", .caps = {MALLOC_CAP_SPM, 0, P4_COMMON | MALLOC_CAP_INTERNAL}},
    [P4_RTCRAM] = {.name = "RTCRAM", .caps = {MALLOC_CAP_RTCRAM, 0, P4_RTC_BASE}},
};

/* Regions in ESP-IDF's table order (SPM last). start | size | type | iram_address | startup_stack */
static const soc_memory_region_t p4_regions[] = {
    {.start = P4_EXTRAM_LOW, .size = P4_EXTRAM_SIZE, .type = P4_SPIRAM, .iram_address = 0,
     .startup_stack = false}, /* fully reserved below */
    {.start = P4_L2MEM_LOW + P4_L2_CACHE_SIZE, .size = P4_ROM_STACK_LOW - (P4_L2MEM_LOW + P4_L2_CACHE_SIZE),
     .type = P4_RETENT_RAM, .iram_address = P4_L2MEM_LOW + P4_L2_CACHE_SIZE, .startup_stack = false},
    {.start = P4_ROM_STACK_LOW, .size = P4_L2MEM_HIGH - P4_ROM_STACK_LOW, .type = P4_RAM,
     .iram_address = P4_ROM_STACK_LOW, .startup_stack = true},
    {.start = P4_LP_RAM_LOW, .size = P4_LP_RAM_SIZE, .type = P4_RTCRAM, .iram_address = 0,
     .startup_stack = false},
    {.start = P4_SPM_LOW, .size = P4_SPM_SIZE, .type = P4_SPM, .iram_address = 0, .startup_stack = false},
};

/*
 * Fixed reservations, sorted by start. start | end (exclusive)
 *
 * spm_code_data is really a firmware-image reservation (_spm_text_start ..
 * _spm_data_end), but capheap_image_t has no field for a second code/data
 * section, so the reference image's figure is kept here as a fixed one.
 */
static const soc_reserved_region_t p4_reserved[] = {
    {.start = P4_SPM_LOW, .end = P4_SPM_IMAGE_END},                        /* spm_code_data (image) */
    {.start = P4_EXTRAM_LOW, .end = P4_EXTRAM_LOW + P4_EXTRAM_SIZE},       /* extram_region */
    {.start = P4_ROM_RTOS_RESERVED_START, .end = P4_L2MEM_HIGH},           /* ROM layout table, rev >= 3 */
    {.start = P4_LP_RAM_LOW, .end = P4_LP_RAM_LOW + P4_RTC_RESERVED_SIZE}, /* rtc_reserved_data (bottom) */
};

const capheap_chip_t capheap_chip_esp32p4 = {
    .name = "esp32p4",
    .types = p4_types,
    .type_count = sizeof p4_types / sizeof p4_types[0],
    .regions = p4_regions,
    .region_count = sizeof p4_regions / sizeof p4_regions[0],
    .reserved = p4_reserved,
    .reserved_count = sizeof p4_reserved / sizeof p4_reserved[0],
#if CAPHEAP_CHIP_ALIASES
    .diram = {.kind = CAPHEAP_ALIAS_NONE}, /* I and D share 0x4FF00000..0x4FFC0000 */
    .rtc = {.kind = CAPHEAP_ALIAS_NONE},
#endif
    .heap_size_max = 0x4000000, /* EXTRAM_HIGH - EXTRAM_LOW (chips.md 0.1) */
    .heap_alignment = 4,
    .cache_line_internal = 64,  /* L1 D-cache line (chips.md 7.6) */
    .cache_line_external = 64,  /* L2 line with the 128 KB L2 (128 with 512 KB) */
    .simd_alignment = 16,
    .dma_desc_axi_alignment = 8, /* GDMA_LL_AXI_DESC_ALIGNMENT */
    .dma_encrypted_alignment = 16,
#if CAPHEAP_PORT_HOST /* the simulator's facts: host builds only (capheap/chip.h) */
    .title = "ESP32-P4 (default config: rev >= 3, 128 KB L2 cache, PMP memprot, LP RAM heap, PSRAM window)",
    .image = {.iram_text_start = P4_L2MEM_LOW + P4_L2_CACHE_SIZE, /* sram_seg origin */
              .iram_text_size = 0xE000,
              .data_start = 0x4FF2E000,
              .data_size = 0x5B20,
              .rtc_data_start = P4_LP_RAM_LOW + P4_RTC_RESERVED_SIZE, /* _rtc_reserved_end */
              .rtc_data_size = 0x68},
    .extram = {.window_start = P4_EXTRAM_LOW,
               .window_size = P4_EXTRAM_SIZE,
               /* Dynamic mapping; chips.md has no P4 log giving it. Without
                * XIP from PSRAM the first free page is the window start. */
               .heap_start = P4_EXTRAM_LOW,
               .max_size = P4_EXTRAM_SIZE,
               .caps = {MALLOC_CAP_SPIRAM | MALLOC_CAP_DEFAULT, 0,
                        MALLOC_CAP_8BIT | MALLOC_CAP_32BIT | MALLOC_CAP_SIMD}},
    /* Facts: L2MEM 768 KiB less the 128 KiB L2 cache, LP RAM 32 KiB, SPM 8 KiB. */
    .internal_ram_bytes = (768 - 128 + 32 + 8) * 1024,
#endif
};
