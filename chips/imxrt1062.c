/*
 * chips/imxrt1062.c - NXP i.MX RT1062 (Cortex-M7, FlexRAM) memory map in
 * ESP-IDF's model.
 *
 * A PROPOSAL (shared/spec/chips.md section 10): ESP-IDF has no such table.
 * Describes the default fuse split of the 512 KiB FlexRAM: 128 KiB ITCM,
 * 128 KiB DTCM, 256 KiB OCRAM; plus the dedicated 512 KiB OCRAM2 and the
 * MIMXRT1060-EVK's 32 MiB SDRAM (registered at run time). With another
 * FlexRAM split (16 banks of 32 KiB) the three FlexRAM rows change size.
 *
 * Sources: chips.md 10.1 (memory map), 10.2 (reach and cacheability), 10.3
 * (types), 10.4 (reservations, address 0, alignment, HEAP_SIZE_MAX).
 *
 * Reference image (Judgement): an MCUXpresso SDK application whose .data,
 * .bss, NonCacheable sections and main stack take the first 32 KiB of DTCM
 * (0x20000000..0x20008000; the stock SDK script puts __StackTop at the top of
 * DTCM instead, which leaves no DTCM heap: boot it with static data = 128 KiB
 * to model that), and no .ram_function code in ITCM. Booting produces, in
 * table order:
 *
 *   start       len      type   startup stack
 *   0x00000400  0x1FC00  ITCM   no    above the 1 KiB null guard
 *   0x20008000  0x18000  DTCM   no
 *   0x20200000  0xC0000  OCRAM  no    OCRAM2 + FlexRAM OCRAM coalesced (768 KiB)
 */
#include "capheap/chip.h"
#include "esp_heap_caps.h"

#define RT_BYTE_WORD_INTERNAL (MALLOC_CAP_8BIT | MALLOC_CAP_32BIT | MALLOC_CAP_INTERNAL)

/* Memory map (chips.md 10.1). */
#define RT_ITCM_LOW 0x00000000
#define RT_ITCM_SIZE (128 * 1024)
#define RT_DTCM_LOW 0x20000000
#define RT_DTCM_SIZE (128 * 1024)
#define RT_OCRAM2_LOW 0x20200000
#define RT_OCRAM2_SIZE (512 * 1024)
#define RT_FLEXRAM_OCRAM_LOW 0x20280000
#define RT_FLEXRAM_OCRAM_SIZE (256 * 1024)

/* EVK SDRAM (SEMC). 0x80000000 does not fit a 32-bit intptr_t: store the
 * address's bit pattern (compare addresses as uintptr_t). */
#define RT_SDRAM_LOW ((intptr_t)(uintptr_t)0x80000000u)
#define RT_SDRAM_SIZE (32u * 1024 * 1024)

/* Judgement: the first 1 KiB of ITCM never becomes heap (address 0 must stay
 * invalid; heap_caps_add_region rejects start 0); an ITCM vector table goes there. */
#define RT_ITCM_NULL_GUARD 0x400

enum { RT_OCRAM, RT_DTCM, RT_ITCM, RT_SDRAM, RT_TYPE_COUNT };

/* Types (chips.md 10.3 order). name | caps at prio 0, 1, 2 */
static const soc_memory_type_desc_t rt_types[RT_TYPE_COUNT] = {
    /* largest RAM: malloc's first choice; DMA works but needs cache maintenance */
    [RT_OCRAM] = {.name = "OCRAM", .caps = {RT_BYTE_WORD_INTERNAL | MALLOC_CAP_DEFAULT, MALLOC_CAP_DMA, MALLOC_CAP_EXEC}},
    /* uncached: the best DMA target; fast data memory second */
    [RT_DTCM] = {.name = "DTCM", .caps = {MALLOC_CAP_SPM | MALLOC_CAP_DMA, RT_BYTE_WORD_INTERNAL | MALLOC_CAP_DEFAULT, 0}},
    /* code first; no DEFAULT */
    [RT_ITCM] = {.name = "ITCM",
                 .caps = {MALLOC_CAP_SPM | MALLOC_CAP_EXEC, MALLOC_CAP_32BIT | MALLOC_CAP_INTERNAL, MALLOC_CAP_8BIT}},
    /* runtime-registered external RAM (extram.caps); no region row */
    [RT_SDRAM] = {.name = "SDRAM", .caps = {MALLOC_CAP_SPIRAM | MALLOC_CAP_DEFAULT, 0, MALLOC_CAP_8BIT | MALLOC_CAP_32BIT}},
};

#define RT_ROW(start_, size_, type_)                                                               \
    {.start = (start_), .size = (size_), .type = (type_), .iram_address = 0, .startup_stack = false}

/* Regions in address order. start | size | type | iram_address | startup_stack */
static const soc_memory_region_t rt_regions[] = {
    RT_ROW(RT_ITCM_LOW, RT_ITCM_SIZE, RT_ITCM),
    RT_ROW(RT_DTCM_LOW, RT_DTCM_SIZE, RT_DTCM),
    RT_ROW(RT_OCRAM2_LOW, RT_OCRAM2_SIZE, RT_OCRAM),              /* dedicated OCRAM2 */
    RT_ROW(RT_FLEXRAM_OCRAM_LOW, RT_FLEXRAM_OCRAM_SIZE, RT_OCRAM), /* FlexRAM OCRAM: coalesces with OCRAM2 */
};

/* Fixed reservations, sorted by start. start | end (exclusive) */
static const soc_reserved_region_t rt_reserved[] = {
    {.start = RT_ITCM_LOW, .end = RT_ITCM_LOW + RT_ITCM_NULL_GUARD}, /* null guard / ITCM vectors */
};

const capheap_chip_t capheap_chip_imxrt1062 = {
    .name = "imxrt1062",
    .types = rt_types,
    .type_count = sizeof rt_types / sizeof rt_types[0],
    .regions = rt_regions,
    .region_count = sizeof rt_regions / sizeof rt_regions[0],
    .reserved = rt_reserved,
    .reserved_count = sizeof rt_reserved / sizeof rt_reserved[0],
#if CAPHEAP_CHIP_ALIASES
    .diram = {.kind = CAPHEAP_ALIAS_NONE},
    .rtc = {.kind = CAPHEAP_ALIAS_NONE},
    /* chips.md 10.4: 768 KiB without SDRAM, 32 MiB with the EVK SDRAM. The
     * table describes the EVK SDRAM (extram), so the larger figure. */
#endif
    .heap_size_max = RT_SDRAM_SIZE,
    .heap_alignment = 8, /* AAPCS: double / long long (see stm32h743.c) */
    /* OCRAM and SDRAM are behind the 32-B L1 D-cache; the TCMs are not (one
     * line per chip in chip.h: TCM DMA requests are over-aligned, never wrong). */
    .cache_line_internal = 32,
    .cache_line_external = 32,
    .simd_alignment = 0,
    .dma_desc_axi_alignment = 0,
    .dma_encrypted_alignment = 0,
#if CAPHEAP_PORT_HOST /* the simulator's facts: host builds only (capheap/chip.h) */
    .title = "i.MX RT1062 (proposal: default FlexRAM split 128K ITCM / 128K DTCM / 256K OCRAM, EVK SDRAM)",
    .image = {.iram_text_start = 0,
              .iram_text_size = 0,
              .data_start = RT_DTCM_LOW,
              .data_size = 0x8000,
              .rtc_data_start = 0,
              .rtc_data_size = 0},
    .extram = {.window_start = RT_SDRAM_LOW,
               .window_size = RT_SDRAM_SIZE, /* the EVK's MT48LC16M16A2 */
               .heap_start = RT_SDRAM_LOW,
               .max_size = RT_SDRAM_SIZE,
               .caps = {MALLOC_CAP_SPIRAM | MALLOC_CAP_DEFAULT, 0, MALLOC_CAP_8BIT | MALLOC_CAP_32BIT}},
    /* Facts: FlexRAM 512 KiB (128 ITCM + 128 DTCM + 256 OCRAM) + OCRAM2 512 KiB. */
    .internal_ram_bytes = (512 + 512) * 1024,
#endif
};
