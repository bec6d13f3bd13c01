/*
 * chips/stm32h743.c - STM32H743 (Cortex-M7) memory map in ESP-IDF's model.
 *
 * A PROPOSAL (shared/spec/chips.md section 9): ESP-IDF has no such table. The
 * types follow chips.md 9.3; the judgement calls taken here are marked
 * "Judgement:".
 *
 * Capabilities: SPM marks TCM; DMA means "DMA1/DMA2 reach it" (not the TCMs);
 * STM32H7_MALLOC_CAP_BDMA (bit 22, unused by ESP-IDF) means "BDMA reaches it"
 * (SRAM4 and backup SRAM only).
 *
 * Sources: chips.md 9.1 (memory map), 9.2 (reach and cacheability), 9.3
 * (types), 9.4 (alignment, address 0, HEAP_SIZE_MAX).
 *
 * Reference image (Judgement: a CubeMX-style application): no code in ITCM;
 * .data, .bss and the main stack in DTCM 0x20000000..0x20006000 (24 KiB, a
 * linker script that puts the stack right after .bss). Booting produces, in
 * table order:
 *
 *   start       len      type   startup stack
 *   0x00000400  0x0FC00  ITCM   no    above the 1 KiB null guard
 *   0x20006000  0x1A000  DTCM   no
 *   0x24000000  0x80000  AXI    no
 *   0x30000000  0x48000  D2     no    SRAM1-3 coalesced
 *   0x38000000  0x10000  D3     no    SRAM4
 *   (backup SRAM is fully reserved: it needs its clock and the backup domain
 *    enabled first, so it is added at run time, like PSRAM on ESP chips)
 */
#include "capheap/chip.h"
#include "esp_heap_caps.h"

/** Chip-local capability: BDMA (D3 domain DMA) can reach this memory. */
#define STM32H7_MALLOC_CAP_BDMA (1u << 22)

#define H7_BYTE_WORD_INTERNAL (MALLOC_CAP_8BIT | MALLOC_CAP_32BIT | MALLOC_CAP_INTERNAL)

/* Memory map (chips.md 9.1). */
#define H7_ITCM_LOW 0x00000000
#define H7_ITCM_SIZE (64 * 1024)
#define H7_DTCM_LOW 0x20000000
#define H7_DTCM_SIZE (128 * 1024)
#define H7_AXI_LOW 0x24000000
#define H7_AXI_SIZE (512 * 1024)
#define H7_SRAM1_LOW 0x30000000
#define H7_SRAM1_SIZE (128 * 1024)
#define H7_SRAM2_LOW 0x30020000
#define H7_SRAM2_SIZE (128 * 1024)
#define H7_SRAM3_LOW 0x30040000
#define H7_SRAM3_SIZE (32 * 1024)
#define H7_SRAM4_LOW 0x38000000
#define H7_SRAM4_SIZE (64 * 1024)
#define H7_BKPSRAM_LOW 0x38800000
#define H7_BKPSRAM_SIZE (4 * 1024)

/*
 * Judgement: address 0 must never be a heap address (heap_caps_add_region
 * rejects start 0, and NULL must stay invalid). The first 1 KiB of ITCM is
 * reserved: it is also where a vector table relocated to ITCM goes (166
 * vectors = 0x298 B, VTOR alignment rounds it to 0x400).
 */
#define H7_ITCM_NULL_GUARD 0x400

enum { H7_DTCM, H7_AXI, H7_D2, H7_D3, H7_BKPSRAM, H7_ITCM, H7_SDRAM, H7_TYPE_COUNT };

/* Types (chips.md 9.3 order). name | caps at prio 0, 1, 2 */
static const soc_memory_type_desc_t h7_types[H7_TYPE_COUNT] = {
    /* fast, uncached, not DMA1/2-reachable: given away first to keep DMA RAM free */
    [H7_DTCM] = {.name = "DTCM", .caps = {MALLOC_CAP_SPM | H7_BYTE_WORD_INTERNAL | MALLOC_CAP_DEFAULT, 0, 0}},
    [H7_AXI] = {.name = "AXI",
                .caps = {0, H7_BYTE_WORD_INTERNAL | MALLOC_CAP_DEFAULT | MALLOC_CAP_DMA, MALLOC_CAP_EXEC}},
    /* preferred DMA target; malloc uses it last */
    [H7_D2] = {.name = "D2", .caps = {MALLOC_CAP_DMA, H7_BYTE_WORD_INTERNAL, MALLOC_CAP_DEFAULT | MALLOC_CAP_EXEC}},
    /* the only general RAM BDMA reaches */
    [H7_D3] = {.name = "D3",
               .caps = {STM32H7_MALLOC_CAP_BDMA, MALLOC_CAP_DMA | H7_BYTE_WORD_INTERNAL, MALLOC_CAP_DEFAULT}},
    /* retained domain: no DEFAULT */
    [H7_BKPSRAM] = {.name = "BKPSRAM", .caps = {MALLOC_CAP_RTCRAM, 0, H7_BYTE_WORD_INTERNAL}},
    /* code first, like ESP32 IRAM; no DEFAULT */
    [H7_ITCM] = {.name = "ITCM",
                 .caps = {MALLOC_CAP_SPM | MALLOC_CAP_EXEC, MALLOC_CAP_32BIT | MALLOC_CAP_INTERNAL, MALLOC_CAP_8BIT}},
    /* FMC SDRAM, board-dependent: registered at run time, no region row */
    [H7_SDRAM] = {.name = "SDRAM", .caps = {MALLOC_CAP_SPIRAM | MALLOC_CAP_DEFAULT, 0, MALLOC_CAP_8BIT | MALLOC_CAP_32BIT}},
};

#define H7_ROW(start_, size_, type_)                                                               \
    {.start = (start_), .size = (size_), .type = (type_), .iram_address = 0, .startup_stack = false}

/* Regions in address order. start | size | type | iram_address | startup_stack */
static const soc_memory_region_t h7_regions[] = {
    H7_ROW(H7_ITCM_LOW, H7_ITCM_SIZE, H7_ITCM),
    H7_ROW(H7_DTCM_LOW, H7_DTCM_SIZE, H7_DTCM),
    H7_ROW(H7_AXI_LOW, H7_AXI_SIZE, H7_AXI),
    H7_ROW(H7_SRAM1_LOW, H7_SRAM1_SIZE, H7_D2), /* SRAM1-3 are contiguous and coalesce */
    H7_ROW(H7_SRAM2_LOW, H7_SRAM2_SIZE, H7_D2),
    H7_ROW(H7_SRAM3_LOW, H7_SRAM3_SIZE, H7_D2),
    H7_ROW(H7_SRAM4_LOW, H7_SRAM4_SIZE, H7_D3),
    H7_ROW(H7_BKPSRAM_LOW, H7_BKPSRAM_SIZE, H7_BKPSRAM), /* fully reserved below */
};

/* Fixed reservations, sorted by start. start | end (exclusive) */
static const soc_reserved_region_t h7_reserved[] = {
    {.start = H7_ITCM_LOW, .end = H7_ITCM_LOW + H7_ITCM_NULL_GUARD},   /* null guard / ITCM vectors */
    {.start = H7_BKPSRAM_LOW, .end = H7_BKPSRAM_LOW + H7_BKPSRAM_SIZE}, /* needs enabling: add at run time */
};

const capheap_chip_t capheap_chip_stm32h743 = {
    .name = "stm32h743",
    .types = h7_types,
    .type_count = sizeof h7_types / sizeof h7_types[0],
    .regions = h7_regions,
    .region_count = sizeof h7_regions / sizeof h7_regions[0],
    .reserved = h7_reserved,
    .reserved_count = sizeof h7_reserved / sizeof h7_reserved[0],
#if CAPHEAP_CHIP_ALIASES
    .diram = {.kind = CAPHEAP_ALIAS_NONE}, /* TCMs are reachable from both I and D sides */
    .rtc = {.kind = CAPHEAP_ALIAS_NONE},
#endif
    .heap_size_max = 512 * 1024, /* chips.md 9.4: AXI SRAM, without SDRAM */
    /* Judgement: 8, the AAPCS alignment of double and long long (what newlib's
     * malloc returns); 4 would break LDRD/STRD and 8-byte atomics. */
    .heap_alignment = 8,
    /* AXI, D2, D3 are behind the 32-B L1 D-cache (__SCB_DCACHE_LINE_SIZE). The
     * TCMs are not, but chip.h has one internal line per chip: DMA and
     * CACHE_ALIGNED requests served by a TCM are over-aligned, never wrong. */
    .cache_line_internal = 32,
    .cache_line_external = 32,
    .simd_alignment = 0,
    .dma_desc_axi_alignment = 0,
    .dma_encrypted_alignment = 0,
#if CAPHEAP_PORT_HOST /* the simulator's facts: host builds only (capheap/chip.h) */
    .title = "STM32H743 (proposal: TCM, AXI, D2, D3, backup SRAM; SDRAM at run time)",
    .image = {.iram_text_start = 0, /* no ITCM code in the reference image */
              .iram_text_size = 0,
              .data_start = H7_DTCM_LOW,
              .data_size = 0x6000,
              .rtc_data_start = 0,
              .rtc_data_size = 0},
    /* Judgement: no extram. The FMC SDRAM bank addresses were not confirmed
     * (chips.md 9.4, 14.5); boards register SDRAM themselves with the SDRAM
     * type's caps {SPIRAM|DEFAULT, 0, 8BIT|32BIT}. */
    .extram = {.window_start = 0},
    /* Facts (chips.md 9.1): TCM 64 + 128 KiB, AXI 512 KiB, SRAM1-3 288 KiB,
     * SRAM4 64 KiB, backup SRAM 4 KiB = 1060 KiB ("1 MB": 192 KiB TCM +
     * 864 KiB user SRAM + 4 KiB backup). */
    .internal_ram_bytes = (64 + 128 + 512 + 288 + 64 + 4) * 1024,
#endif
};
