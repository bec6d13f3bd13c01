/*
 * chips/mpfs.c - Microchip PolarFire SoC (RISC-V: E51 + 4 x U54) memory map
 * in ESP-IDF's model, for an RTOS on U54 hart 1.
 *
 * A PROPOSAL (shared/spec/chips.md section 13): ESP-IDF has no such table.
 *
 * Sources: chips.md 13.1 (facts), 13.2 (types, HEAP_SIZE_MAX); the
 * mpfs-lim.ld addresses quoted in chips.md 13.
 *
 * Judgements:
 *  - L2 split: 1 way of cache, 4 scratchpad ways (512 KiB, as mpfs-lim.ld's
 *    example) and the other 11 ways as LIM (1408 KiB); 16 ways x 128 KiB.
 *  - Hart 1's ITIM (28 KiB) is listed but reserved: writing into it turns the
 *    I-cache into ITIM, which the firmware must choose to do; it then adds the
 *    range with heap_caps_add_region().
 *  - The E51's DTIM is not a region (E51-only memory); its type is kept for
 *    an E51 variant of this table.
 *  - DDR: no region row; the cached 32-bit window 0x80000000 runs up to the
 *    non-cached alias at 0xC0000000 (1 GiB, inferred) and is registered at
 *    run time with extram.caps.
 *  - heap_alignment 8: 64-bit harts (pointers, doubles); the RV64 psABI's
 *    16-byte long double is not worth doubling small-block overhead.
 *
 * Reference image (Judgement): text and rodata in LIM 0x08000000..0x08020000
 * (128 KiB, mpfs-lim.ld puts .text in LIM), data, bss and stacks
 * 0x08020000..0x08030000 (64 KiB). Booting produces, in table order:
 *
 *   start       len       type     startup stack
 *   0x08030000  0x130000  LIM      no
 *   0x0A000000  0x080000  SCRATCH  no
 */
#include "capheap/chip.h"
#include "esp_heap_caps.h"

#define MP_BYTE_WORD_INTERNAL (MALLOC_CAP_8BIT | MALLOC_CAP_32BIT | MALLOC_CAP_INTERNAL)

#define MP_L2_WAY_SIZE (128 * 1024)
#define MP_L2_CACHE_WAYS 1
#define MP_L2_SCRATCH_WAYS 4
#define MP_L2_LIM_WAYS (16 - MP_L2_CACHE_WAYS - MP_L2_SCRATCH_WAYS)

#define MP_ITIM_HART1 0x01808000
#define MP_ITIM_SIZE (28 * 1024)
#define MP_LIM_LOW 0x08000000
#define MP_LIM_SIZE (MP_L2_LIM_WAYS * MP_L2_WAY_SIZE)
#define MP_SCRATCH_LOW 0x0A000000
#define MP_SCRATCH_SIZE (MP_L2_SCRATCH_WAYS * MP_L2_WAY_SIZE)

/* DDR cached window (0x80000000 does not fit a 32-bit intptr_t: bit pattern). */
#define MP_DDR_LOW ((intptr_t)(uintptr_t)0x80000000u)
#define MP_DDR_WINDOW (1024u * 1024 * 1024)

#define MP_CACHE_LINE 64 /* L2 block; L1 line inferred equal */

enum { MP_LIM, MP_SCRATCH, MP_DTIM, MP_ITIM, MP_DDR, MP_TYPE_COUNT };

/* Types (chips.md 13.2 order). name | caps at prio 0, 1, 2 */
static const soc_memory_type_desc_t mp_types[MP_TYPE_COUNT] = {
    /* uncached: DMA needs no maintenance */
    [MP_LIM] = {.name = "LIM", .caps = {MP_BYTE_WORD_INTERNAL | MALLOC_CAP_DEFAULT, MALLOC_CAP_DMA, MALLOC_CAP_EXEC}},
    /* fast cached on-chip memory: kept for hot data */
    [MP_SCRATCH] = {.name = "SCRATCH", .caps = {MALLOC_CAP_SPM, MP_BYTE_WORD_INTERNAL | MALLOC_CAP_DEFAULT, MALLOC_CAP_EXEC}},
    [MP_DTIM] = {.name = "DTIM", .caps = {MALLOC_CAP_SPM, MP_BYTE_WORD_INTERNAL, 0}},
    [MP_ITIM] = {.name = "ITIM", .caps = {MALLOC_CAP_SPM | MALLOC_CAP_EXEC, MALLOC_CAP_32BIT | MALLOC_CAP_INTERNAL, 0}},
    [MP_DDR] = {.name = "DDR",
                .caps = {MALLOC_CAP_SPIRAM | MALLOC_CAP_DEFAULT, 0, MALLOC_CAP_8BIT | MALLOC_CAP_32BIT | MALLOC_CAP_EXEC}},
};

#define MP_ROW(start_, size_, type_)                                                               \
    {.start = (start_), .size = (size_), .type = (type_), .iram_address = 0, .startup_stack = false}

/* Regions in address order. start | size | type | iram_address | startup_stack */
static const soc_memory_region_t mp_regions[] = {
    MP_ROW(MP_ITIM_HART1, MP_ITIM_SIZE, MP_ITIM), /* reserved below */
    MP_ROW(MP_LIM_LOW, MP_LIM_SIZE, MP_LIM),
    MP_ROW(MP_SCRATCH_LOW, MP_SCRATCH_SIZE, MP_SCRATCH),
};

/* Fixed reservations, sorted by start. start | end (exclusive) */
static const soc_reserved_region_t mp_reserved[] = {
    {.start = MP_ITIM_HART1, .end = MP_ITIM_HART1 + MP_ITIM_SIZE}, /* still I-cache at boot */
};

const capheap_chip_t capheap_chip_mpfs = {
    .name = "mpfs",
    .types = mp_types,
    .type_count = sizeof mp_types / sizeof mp_types[0],
    .regions = mp_regions,
    .region_count = sizeof mp_regions / sizeof mp_regions[0],
    .reserved = mp_reserved,
    .reserved_count = sizeof mp_reserved / sizeof mp_reserved[0],
#if CAPHEAP_CHIP_ALIASES
    .diram = {.kind = CAPHEAP_ALIAS_NONE}, /* the DDR cached/uncached windows are not an I/D alias */
    .rtc = {.kind = CAPHEAP_ALIAS_NONE},
    /* chips.md 13.2: 1920 KiB without DDR, the DDR size with it; the table
     * describes the DDR window (extram), so its size. */
#endif
    .heap_size_max = MP_DDR_WINDOW,
    .heap_alignment = 8,
    /* The scratchpad is cached (64-B lines); LIM is not, but chip.h has one
     * internal line per chip: LIM DMA requests are over-aligned, never wrong. */
    .cache_line_internal = MP_CACHE_LINE,
    .cache_line_external = MP_CACHE_LINE,
    .simd_alignment = 0,
    .dma_desc_axi_alignment = 0,
    .dma_encrypted_alignment = 0,
#if CAPHEAP_PORT_HOST /* the simulator's facts: host builds only (capheap/chip.h) */
    .title = "PolarFire SoC (proposal: U54 hart 1, 11-way LIM + 4-way scratchpad, DDR at run time)",
    .image = {.iram_text_start = MP_LIM_LOW, /* code executes from LIM at its own address */
              .iram_text_size = 0x20000,
              .data_start = MP_LIM_LOW + 0x20000,
              .data_size = 0x10000,
              .rtc_data_start = 0,
              .rtc_data_size = 0},
    .extram = {.window_start = MP_DDR_LOW,
               .window_size = MP_DDR_WINDOW,
               .heap_start = MP_DDR_LOW,
               .max_size = MP_DDR_WINDOW,
               .caps = {MALLOC_CAP_SPIRAM | MALLOC_CAP_DEFAULT, 0,
                        MALLOC_CAP_8BIT | MALLOC_CAP_32BIT | MALLOC_CAP_EXEC}},
    /* Facts: L2 2 MiB less 1 cache way = 1920 KiB of LIM + scratchpad, plus
     * hart 1's 28 KiB ITIM. */
    .internal_ram_bytes = (1920 + 28) * 1024,
#endif
};
