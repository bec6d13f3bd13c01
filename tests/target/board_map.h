/*
 * board_map.h - the memory map target_init.c and target_libc.c boot from: the
 * board's RAM in an ESP-IDF-style table (soc_memory_types[],
 * soc_memory_regions[]) and the program's own memory reserved with
 * SOC_RESERVE_MEMORY_REGION records made of picolibc's linker symbols, as a
 * firmware's port/<chip>/memory_layout.c writes them. Include it in one
 * source file of a program (it defines the tables).
 *
 * tests/target/CMakeLists.txt passes CAPHEAP_TARGET_RAM_START, _RAM_SIZE and
 * _STACK_SIZE; picolibc's picolibc.ld places .data and .bss at the start of
 * RAM, its own heap right after them and the stack at the top:
 *
 *   +0          .data .bss | libc heap (64 KiB reserved) | heap "DRAM"   +1 MiB   row 0 + row 1
 *   +1 MiB      deferred start-up stack region ("D/IRAM")                 +1.25 MiB row 2
 *   +2 MiB      "SPIRAM"                                                   +3 MiB   row 3
 *   end-512 KiB heap "DRAM" | stack (CAPHEAP_TARGET_STACK_SIZE)            end      row 4
 */
#ifndef CAPHEAP_TARGET_BOARD_MAP_H
#define CAPHEAP_TARGET_BOARD_MAP_H

#include <stdint.h>

#include "esp_heap_caps.h"
#include "heap_memory_layout.h"

#define RAM ((intptr_t)CAPHEAP_TARGET_RAM_START)
#define RAM_END ((intptr_t)(CAPHEAP_TARGET_RAM_START + CAPHEAP_TARGET_RAM_SIZE))
#define KIB 1024
#define MIB (1024 * 1024)
#define LIBC_HEAP (64 * KIB)

/* picolibc.ld's symbols */
extern char __data_start[], __bss_end[], __heap_start[], __stack[];

/* ------------------------------------------------------------------ the firmware's tables */

enum { TYPE_DRAM, TYPE_DIRAM, TYPE_SPIRAM };

const soc_memory_type_desc_t soc_memory_types[] = {
    [TYPE_DRAM] = {"DRAM", {MALLOC_CAP_8BIT | MALLOC_CAP_DEFAULT, MALLOC_CAP_INTERNAL | MALLOC_CAP_DMA | MALLOC_CAP_32BIT, 0}},
    [TYPE_DIRAM] = {"D/IRAM", {0, MALLOC_CAP_DMA | MALLOC_CAP_8BIT | MALLOC_CAP_INTERNAL | MALLOC_CAP_DEFAULT, MALLOC_CAP_32BIT}},
    [TYPE_SPIRAM] = {"SPIRAM", {MALLOC_CAP_SPIRAM, 0, MALLOC_CAP_8BIT | MALLOC_CAP_32BIT | MALLOC_CAP_DEFAULT}},
};
const size_t soc_memory_type_count = sizeof soc_memory_types / sizeof soc_memory_types[0];

/* start, size, type, iram_address, startup_stack */
const soc_memory_region_t soc_memory_regions[] = {
    {RAM, 512 * KIB, TYPE_DRAM, 0, false},
    {RAM + 512 * KIB, 512 * KIB, TYPE_DRAM, 0, false}, /* coalesces with row 0 */
    {RAM + MIB, 256 * KIB, TYPE_DIRAM, 0, true},       /* deferred until enable_nonos_stack_heaps */
    {RAM + 2 * MIB, MIB, TYPE_SPIRAM, 0, false},
    {RAM_END - 512 * KIB, 512 * KIB, TYPE_DRAM, 0, false},
};
const size_t soc_memory_region_count = sizeof soc_memory_regions / sizeof soc_memory_regions[0];

SOC_RESERVE_MEMORY_REGION((intptr_t)__data_start, (intptr_t)__bss_end, static_data);
SOC_RESERVE_MEMORY_REGION((intptr_t)__heap_start, (intptr_t)__heap_start + LIBC_HEAP, libc_heap);
SOC_RESERVE_MEMORY_REGION((intptr_t)__stack - CAPHEAP_TARGET_STACK_SIZE, (intptr_t)__stack, stack);

#endif
