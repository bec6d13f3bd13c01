/*
 * chips/rp2350.c - Raspberry Pi RP2350 memory map in ESP-IDF's model.
 *
 * A PROPOSAL (shared/spec/chips.md section 11): ESP-IDF has no such table.
 * Describes the pico-sdk default layout (memmap_default.ld): 512 KiB striped
 * SRAM0-7, SCRATCH_X/Y (SRAM8/9) holding the core stacks, the 16 KiB XIP
 * cache used as cache (so not RAM), and optional QMI PSRAM on chip select 1
 * registered at run time.
 *
 * Sources: chips.md 11.1 (memory map), 11.2 (reach and cacheability), 11.3
 * (types), 11.4 (HEAP_SIZE_MAX).
 *
 * Judgements:
 *  - SCRATCH_Y holds core 0's boot stack: flagged startup_stack, so it becomes
 *    a heap at heap_caps_enable_nonos_stack_heaps() once an RTOS runs tasks
 *    on their own stacks (ESP's ROM-stack model). SCRATCH_X holds core 1's
 *    stack (pico_multicore) and is reserved.
 *  - XIP_SRAM is listed (so heap_caps_add_region() knows its type after the
 *    cache is disabled) and fully reserved, like the PSRAM rows of ESP chips.
 *  - PSRAM has no region row (runtime registration with extram.caps).
 *
 * Reference image (Judgement: a small pico-sdk application): .data (with the
 * .time_critical code copied to RAM) and .bss in 0x20000000..0x20004000.
 * Booting produces, in table order:
 *
 *   start       len      type     startup stack
 *   0x20004000  0x7C000  SRAM     no    SRAM0-3 and SRAM4-7 coalesced
 *   0x20081000  0x01000  SCRATCH  yes   SCRATCH_Y (core 0 boot stack)
 */
#include "capheap/chip.h"
#include "esp_heap_caps.h"

#define RP_BYTE_WORD_INTERNAL (MALLOC_CAP_8BIT | MALLOC_CAP_32BIT | MALLOC_CAP_INTERNAL)

/* addressmap.h (chips.md 11.1) */
#define RP_SRAM_BASE 0x20000000
#define RP_SRAM4_BASE 0x20040000    /* splits the striped SRAM in two halves */
#define RP_SRAM_STRIPED_END 0x20080000
#define RP_SCRATCH_X_BASE 0x20080000 /* SRAM8 */
#define RP_SCRATCH_Y_BASE 0x20081000 /* SRAM9 */
#define RP_SRAM_END 0x20082000
#define RP_XIP_SRAM_BASE 0x13FFC000
#define RP_XIP_SRAM_END 0x14000000
#define RP_PSRAM_BASE 0x11000000     /* QMI chip select 1, cached window */
#define RP_PSRAM_MAX (16u * 1024 * 1024) /* inferred from the window spacing */

enum { RP_SRAM, RP_SCRATCH, RP_XIP_SRAM, RP_PSRAM, RP_TYPE_COUNT };

/* Types (chips.md 11.3 order). name | caps at prio 0, 1, 2 */
static const soc_memory_type_desc_t rp_types[RP_TYPE_COUNT] = {
    [RP_SRAM] = {.name = "SRAM", .caps = {RP_BYTE_WORD_INTERNAL | MALLOC_CAP_DEFAULT | MALLOC_CAP_DMA, 0, MALLOC_CAP_EXEC}},
    /* its own type so that it does not coalesce with SRAM (contiguous at 0x20080000) */
    [RP_SCRATCH] = {.name = "SCRATCH", .caps = {MALLOC_CAP_SPM, RP_BYTE_WORD_INTERNAL | MALLOC_CAP_DMA, 0}},
    [RP_XIP_SRAM] = {.name = "XIP_SRAM", .caps = {MALLOC_CAP_SPM, RP_BYTE_WORD_INTERNAL, 0}},
    [RP_PSRAM] = {.name = "PSRAM", .caps = {MALLOC_CAP_SPIRAM | MALLOC_CAP_DEFAULT, 0, MALLOC_CAP_8BIT | MALLOC_CAP_32BIT}},
};

#define RP_ROW(start_, size_, type_, stack_)                                                       \
    {.start = (start_), .size = (size_), .type = (type_), .iram_address = 0, .startup_stack = (stack_)}

/* Regions in address order (XIP_SRAM first). start | size | type | iram_address | startup_stack */
static const soc_memory_region_t rp_regions[] = {
    RP_ROW(RP_XIP_SRAM_BASE, RP_XIP_SRAM_END - RP_XIP_SRAM_BASE, RP_XIP_SRAM, false), /* reserved below */
    RP_ROW(RP_SRAM_BASE, RP_SRAM4_BASE - RP_SRAM_BASE, RP_SRAM, false),               /* SRAM0-3 */
    RP_ROW(RP_SRAM4_BASE, RP_SRAM_STRIPED_END - RP_SRAM4_BASE, RP_SRAM, false),       /* SRAM4-7 */
    RP_ROW(RP_SCRATCH_X_BASE, RP_SCRATCH_Y_BASE - RP_SCRATCH_X_BASE, RP_SCRATCH, false), /* core 1 stack */
    RP_ROW(RP_SCRATCH_Y_BASE, RP_SRAM_END - RP_SCRATCH_Y_BASE, RP_SCRATCH, true),        /* core 0 stack */
};

/* Fixed reservations, sorted by start. start | end (exclusive) */
static const soc_reserved_region_t rp_reserved[] = {
    {.start = RP_XIP_SRAM_BASE, .end = RP_XIP_SRAM_END},   /* in use as XIP cache */
    {.start = RP_SCRATCH_X_BASE, .end = RP_SCRATCH_Y_BASE}, /* core 1 stack */
};

const capheap_chip_t capheap_chip_rp2350 = {
    .name = "rp2350",
    .types = rp_types,
    .type_count = sizeof rp_types / sizeof rp_types[0],
    .regions = rp_regions,
    .region_count = sizeof rp_regions / sizeof rp_regions[0],
    .reserved = rp_reserved,
    .reserved_count = sizeof rp_reserved / sizeof rp_reserved[0],
#if CAPHEAP_CHIP_ALIASES
    .diram = {.kind = CAPHEAP_ALIAS_NONE}, /* SRAM executes at its own address */
    .rtc = {.kind = CAPHEAP_ALIAS_NONE},
    /* chips.md 11.4: 512 KiB internal, or the PSRAM size when present; the
     * table describes PSRAM (extram), so its maximum. */
#endif
    .heap_size_max = RP_PSRAM_MAX,
    .heap_alignment = 8, /* AAPCS (Cortex-M33) and RV32 double alignment */
    .cache_line_internal = 0, /* no data cache in front of SRAM */
    /* Judgement (inferred, not in chips.md): the XIP cache line is 8 B as on
     * the RP2040; CACHE_ALIGNED PSRAM blocks are then 8-aligned, i.e. no extra cost. */
    .cache_line_external = 8,
    .simd_alignment = 0,
    .dma_desc_axi_alignment = 0,
    .dma_encrypted_alignment = 0,
#if CAPHEAP_PORT_HOST /* the simulator's facts: host builds only (capheap/chip.h) */
    .title = "RP2350 (proposal: pico-sdk default layout, XIP cache on, optional QMI PSRAM)",
    .image = {.iram_text_start = 0, /* .time_critical code is part of .data */
              .iram_text_size = 0,
              .data_start = RP_SRAM_BASE,
              .data_size = 0x4000,
              .rtc_data_start = 0,
              .rtc_data_size = 0},
    .extram = {.window_start = RP_PSRAM_BASE,
               .window_size = RP_PSRAM_MAX,
               .heap_start = RP_PSRAM_BASE,
               .max_size = RP_PSRAM_MAX,
               .caps = {MALLOC_CAP_SPIRAM | MALLOC_CAP_DEFAULT, 0, MALLOC_CAP_8BIT | MALLOC_CAP_32BIT}},
    /* Facts: 520 KiB main SRAM (SRAM0-9) + 16 KiB XIP cache usable as SRAM. */
    .internal_ram_bytes = (520 + 16) * 1024,
#endif
};
