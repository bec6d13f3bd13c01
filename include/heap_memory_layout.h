/*
 * heap_memory_layout.h - ESP-IDF's types for a chip's memory map.
 *
 * A chip is described by memory *types* (a name and capability masks at three
 * priorities), physical *regions* of those types, and *reserved* ranges that
 * must never become heap. heap_caps_init() turns regions minus reservations
 * into heaps (spec 2.2-2.3). An ESP-IDF-style table (port/<chip>/memory_layout.c)
 * written against these types compiles unchanged; capheap's own tables live in
 * chips/ and are wrapped in a capheap_chip_t (capheap/chip.h).
 */
#ifndef HEAP_MEMORY_LAYOUT_H
#define HEAP_MEMORY_LAYOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Number of capability priorities per memory type. */
#define SOC_MEMORY_TYPE_NO_PRIOS 3

/** One memory type: its boot-log name and its caps at each priority (0 first). */
typedef struct {
    const char *name;
    uint32_t caps[SOC_MEMORY_TYPE_NO_PRIOS];
} soc_memory_type_desc_t;

/** One physical region of a type. */
typedef struct {
    intptr_t start;       /**< first byte (may be 0: instruction TCM on Cortex-M7) */
    size_t size;          /**< bytes */
    size_t type;          /**< index into the chip's type table */
    intptr_t iram_address; /**< informational IRAM alias (0: none); not used for routing */
    bool startup_stack;   /**< the boot stack lives here: registered by heap_caps_enable_nonos_stack_heaps() */
} soc_memory_region_t;

/** A range that must never become heap; end is exclusive. */
typedef struct {
    intptr_t start;
    intptr_t end;
} soc_reserved_region_t;

/*
 * An ESP-IDF firmware's own table (port/<chip>/memory_layout.c) defines these;
 * heap_caps_init() uses them when the build selects no built-in chip
 * (CAPHEAP_CHIP empty) and they exist (docs/porting.md, "heap_caps on a target").
 */
extern const soc_memory_type_desc_t soc_memory_types[];
extern const size_t soc_memory_type_count;
extern const soc_memory_region_t soc_memory_regions[];
extern const size_t soc_memory_region_count;

/**
 * SOC_RESERVE_MEMORY_REGION(START, END, NAME): declare a reserved range in a
 * firmware source file. GCC-compatible toolchains place the record in the
 * section "capheap_reserved_regions", which GNU ld brackets by itself with
 * __start_ / __stop_capheap_reserved_regions (no linker-script change; a
 * script that keeps ESP-IDF's soc_reserved_memory_region_start / _end symbols
 * works too, see docs/porting.md).
 */
#if defined(__GNUC__)
#define SOC_RESERVE_MEMORY_REGION(START, END, NAME)                                                \
    __attribute__((section("capheap_reserved_regions"), used, aligned(sizeof(intptr_t))))         \
    static const soc_reserved_region_t reserved_region_##NAME = {(START), (END)}
#endif

/** Worst-case number of available regions: regions + reservations (every reservation splits one). */
size_t soc_get_available_memory_region_max_count(void);

/**
 * Fill out[] (room for soc_get_available_memory_region_max_count() entries)
 * with the selected chip's regions minus every reservation, in table order
 * (spec 2.2). Returns the count. Aborts through the port on overlapping
 * reservations, as ESP-IDF does, and on a reservation whose start lies above
 * its end.
 */
size_t soc_get_available_memory_regions(soc_memory_region_t *out);

#ifdef __cplusplus
}
#endif

#endif /* HEAP_MEMORY_LAYOUT_H */
