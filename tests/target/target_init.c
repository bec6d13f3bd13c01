/*
 * target_init.c - heap_caps_init() on a target, as a firmware boots it.
 *
 * The program describes the board's RAM the way an ESP-IDF port does
 * (soc_memory_types[], soc_memory_regions[]) and reserves what it occupies
 * itself with SOC_RESERVE_MEMORY_REGION records made of its linker symbols:
 * static data and bss, the first 64 KiB of the C library's own heap, and the
 * stack. heap_caps_init() must carve the heaps around exactly those ranges
 * (spec 2.2-2.4): if a heap overlapped any of them, filling the heaps would
 * overwrite this program's variables or its stack, which the canaries below
 * (in .data, in .bss and on the stack) and the stamps in every block detect,
 * if the program survives at all. The test then frees everything, enables
 * the deferred start-up-stack region, and checks that a second init is
 * refused through the firmware's abort hook.
 *
 * The memory map and the reservations are in board_map.h; the port's text
 * sink and abort are the firmware's (target_port.h), so
 * heap_caps_print_heap_info shows in the test log.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capheap/caps.h"
#include "capheap/check.h"
#include "capheap/port.h"
#include "esp_heap_caps.h"
#include "esp_heap_caps_init.h"
#include "heap_memory_layout.h"

#include "board_map.h"
#include "target_port.h"

/* ------------------------------------------------------------------ canaries and stamps */

#define CANARY_WORDS 64u
static uint32_t data_canary[CANARY_WORDS] = {0x0DA7A000u}; /* non-zero: .data */
static uint32_t bss_canary[CANARY_WORDS];                   /* .bss */

static uint32_t canary_word(uint32_t seed, uint32_t i)
{
    uint32_t x = seed ^ (i * 0x9E3779B1u);
    return x ^ (x >> 15);
}

static void canary_fill(uint32_t *w, uint32_t seed)
{
    for (uint32_t i = 0; i < CANARY_WORDS; i++)
        w[i] = canary_word(seed, i);
}

static bool canary_intact(const uint32_t *w, uint32_t seed)
{
    for (uint32_t i = 0; i < CANARY_WORDS; i++) {
        if (w[i] != canary_word(seed, i))
            return false;
    }
    return true;
}

static uint8_t stamp_byte(uintptr_t block, size_t i)
{
    uint32_t x = (uint32_t)block ^ (uint32_t)(i * 0x01000193u);
    return (uint8_t)(x ^ (x >> 11) ^ (x >> 22));
}

/* ------------------------------------------------------------------ helpers */

static bool overlaps(intptr_t a0, intptr_t a1, intptr_t b0, intptr_t b1)
{
    return a0 < b1 && b0 < a1;
}

/* The listed heap whose range starts at start, or -1. */
static int heap_at(intptr_t start, capheap_heap_desc_t *out)
{
    for (size_t i = 0; i < capheap_heap_count(); i++) {
        if (capheap_heap_get(i, out) && out->start == start)
            return (int)i;
    }
    return -1;
}

static intptr_t align_up4(intptr_t a)
{
    return (a + 3) & ~(intptr_t)3;
}

#define MAX_BLOCKS 8192u
static void *blocks[MAX_BLOCKS];
static size_t block_sizes[MAX_BLOCKS];

/* malloc blocks of sizes 1..4 KiB with caps until one fails, stamp them whole. */
static size_t fill(size_t n, uint32_t caps, uint32_t *rng)
{
    while (n < MAX_BLOCKS) {
        *rng = *rng * 1664525u + 1013904223u;
        size_t size = 1u + (*rng >> 8) % 4096u;
        void *p = heap_caps_malloc(size, caps);
        if (p == NULL)
            break;
        size_t usable = heap_caps_get_allocated_size(p);
        CHECK(usable >= size, "allocated size %zu < %zu", usable, size);
        int k = capheap_heap_find(p);
        capheap_heap_desc_t d;
        CHECK(k >= 0 && capheap_heap_get((size_t)k, &d) && (intptr_t)p >= d.start &&
                  (intptr_t)p + (intptr_t)usable <= d.end,
              "block %p (%zu bytes) outside its heap", p, usable);
        for (size_t i = 0; i < size; i++) /* the requested bytes: with poisoning the tail canary follows */
            ((uint8_t *)p)[i] = stamp_byte((uintptr_t)p, i);
        blocks[n] = p;
        block_sizes[n] = size;
        n++;
    }
    return n;
}

static bool stamps_intact(size_t n)
{
    for (size_t b = 0; b < n; b++) {
        for (size_t i = 0; i < block_sizes[b]; i++) {
            if (((const uint8_t *)blocks[b])[i] != stamp_byte((uintptr_t)blocks[b], i)) {
                printf("target_init: block %p byte %zu lost its stamp\n", blocks[b], i);
                return false;
            }
        }
    }
    return true;
}

/* ------------------------------------------------------------------ the boot */

static void check_layout(void)
{
    intptr_t data0 = (intptr_t)__data_start, bss1 = (intptr_t)__bss_end;
    intptr_t libc0 = (intptr_t)__heap_start, libc1 = libc0 + LIBC_HEAP;
    intptr_t stack0 = (intptr_t)__stack - CAPHEAP_TARGET_STACK_SIZE, stack1 = (intptr_t)__stack;
    printf("target_init: RAM %#lx..%#lx, data+bss %#lx..%#lx, libc heap %#lx.., stack %#lx..%#lx\n",
           (unsigned long)RAM, (unsigned long)RAM_END, (unsigned long)data0, (unsigned long)bss1,
           (unsigned long)libc0, (unsigned long)stack0, (unsigned long)stack1);
    CHECK(data0 == RAM && libc0 >= bss1 && libc1 < RAM + 512 * KIB && stack1 == RAM_END,
          "the linker put the program where this test's table does not expect it");

    /* Four heaps: rows 0 + 1 coalesced after the reservations, row 2 deferred, row 3, row 4
     * before the stack. None touches a reservation. */
    CHECK(capheap_heap_count() == 4, "%zu heaps listed, 4 expected", capheap_heap_count());
    for (size_t i = 0; i < capheap_heap_count(); i++) {
        capheap_heap_desc_t d;
        CHECK(capheap_heap_get(i, &d), "heap %zu unreadable", i);
        CHECK(!d.runtime, "heap %zu listed as added at run time", i);
        CHECK(!overlaps(d.start, d.end, data0, bss1) && !overlaps(d.start, d.end, libc0, libc1) &&
                  !overlaps(d.start, d.end, stack0, stack1),
              "heap %zu (%#lx..%#lx) overlaps a reservation", i, (unsigned long)d.start, (unsigned long)d.end);
    }
    capheap_heap_desc_t d;
    CHECK(heap_at(align_up4(libc1), &d) >= 0 && d.end == RAM + MIB && d.heap != NULL &&
              strcmp(d.name, "DRAM") == 0,
          "no DRAM heap from the end of the reservations to the end of row 1");
    CHECK(heap_at(RAM + MIB, &d) >= 0 && d.heap == NULL && d.end == RAM + MIB + 256 * KIB,
          "the start-up stack region is not listed as deferred");
    CHECK(heap_at(RAM + 2 * MIB, &d) >= 0 && d.heap != NULL && d.end == RAM + 3 * MIB &&
              strcmp(d.name, "SPIRAM") == 0,
          "no SPIRAM heap on row 3");
    CHECK(heap_at(RAM_END - 512 * KIB, &d) >= 0 && d.heap != NULL && d.end == stack0,
          "no DRAM heap from row 4's start to the stack");

    /* Sizes: the registered heaps, each its region. */
    size_t want = (size_t)((RAM + MIB) - align_up4(libc1)) + (size_t)MIB + (size_t)(stack0 - (RAM_END - 512 * KIB));
    CHECK(heap_caps_get_total_size(MALLOC_CAP_8BIT) == want, "total size %zu, expected %zu",
          heap_caps_get_total_size(MALLOC_CAP_8BIT), want);
    CHECK(heap_caps_get_total_size(MALLOC_CAP_SPIRAM) == (size_t)MIB, "SPIRAM total %zu",
          heap_caps_get_total_size(MALLOC_CAP_SPIRAM));
}

static void check_routing(void)
{
    capheap_heap_desc_t d;
    void *dma = heap_caps_malloc(100, MALLOC_CAP_DMA);
    int k = capheap_heap_find(dma);
    CHECK(dma != NULL && k >= 0 && capheap_heap_get((size_t)k, &d) && strcmp(d.name, "DRAM") == 0,
          "a DMA block is not in DRAM");
    void *ext = heap_caps_malloc(100, MALLOC_CAP_SPIRAM);
    k = capheap_heap_find(ext);
    CHECK(ext != NULL && k >= 0 && capheap_heap_get((size_t)k, &d) && strcmp(d.name, "SPIRAM") == 0,
          "a SPIRAM block is not in SPIRAM");
    void *dflt = heap_caps_malloc(100, MALLOC_CAP_DEFAULT); /* DRAM's priority 0 before SPIRAM's 2 */
    k = capheap_heap_find(dflt);
    CHECK(dflt != NULL && k >= 0 && capheap_heap_get((size_t)k, &d) && strcmp(d.name, "DRAM") == 0,
          "a default block is not in DRAM");
    CHECK(heap_caps_malloc(100, MALLOC_CAP_EXEC) == NULL, "an EXEC block from a map without EXEC memory");
    heap_caps_free(dma);
    heap_caps_free(ext);
    heap_caps_free(dflt);
}

static void check_fill_and_free(uint32_t stack_seed)
{
    uint32_t stack_canary[CANARY_WORDS];
    canary_fill(stack_canary, stack_seed);
    size_t free0 = heap_caps_get_free_size(MALLOC_CAP_8BIT);
    uint32_t rng = 12345u;
    size_t n = fill(0, MALLOC_CAP_DMA, &rng);
    size_t n_dma = n;
    n = fill(n, MALLOC_CAP_SPIRAM, &rng);
    n = fill(n, MALLOC_CAP_DEFAULT, &rng);
    printf("target_init: %zu blocks (%zu DMA) filled the heaps; %zu bytes free of %zu\n", n, n_dma,
           heap_caps_get_free_size(MALLOC_CAP_8BIT), free0);
    CHECK(n > 600 && n < MAX_BLOCKS, "%zu blocks: the heaps are not about 2.4 MiB", n);
    CHECK(heap_caps_get_free_size(MALLOC_CAP_8BIT) < 8 * KIB, "%zu bytes left after the fill",
          heap_caps_get_free_size(MALLOC_CAP_8BIT));
    /* The C library's own heap is in its reservation and still works: its block, written
     * whole, must not change a stamp. */
    char *libc_block = malloc(1000);
    CHECK(libc_block != NULL && (intptr_t)libc_block >= (intptr_t)__heap_start &&
              (intptr_t)libc_block + 1000 <= (intptr_t)__heap_start + LIBC_HEAP,
          "the C library's malloc left its reservation");
    if (libc_block != NULL)
        memset(libc_block, 0x5A, 1000);
    CHECK(canary_intact(data_canary, 0xDA7Au), ".data canary overwritten");
    CHECK(canary_intact(bss_canary, 0xB55u), ".bss canary overwritten");
    CHECK(canary_intact(stack_canary, stack_seed), "stack canary overwritten");
    CHECK(stamps_intact(n), "a block's stamp changed");
    CHECK(heap_caps_check_integrity_all(true), "integrity check failed after the fill");
    free(libc_block);

    for (size_t b = n; b-- > 0;)
        heap_caps_free(blocks[b]);
    CHECK(heap_caps_get_free_size(MALLOC_CAP_8BIT) == free0, "free size %zu after freeing all, %zu before",
          heap_caps_get_free_size(MALLOC_CAP_8BIT), free0);
    CHECK(heap_caps_check_integrity_all(true), "integrity check failed after freeing");
}

/* The interrupt mask as the weak critical section (port_baremetal.c) sees it. */
static uint32_t irq_mask_state(void)
{
    uint32_t v = 0;
#if defined(__ARM_ARCH_PROFILE) && __ARM_ARCH_PROFILE == 'M'
    __asm__ volatile("mrs %0, primask" : "=r"(v));
#elif defined(__riscv)
    __asm__ volatile("csrr %0, mstatus" : "=r"(v));
    v &= 8u;
#endif
    return v;
}

/* Incremental check passes over every heap. Each pass takes a token; on CPUs without an atomic
 * add (RV32IMC, Cortex-M0+) that runs the port's default critical section, which this program
 * does not override: it must leave the interrupt mask as it found it. */
static void check_passes(void)
{
#if defined(__riscv)
    __asm__ volatile("csrsi mstatus, 8"); /* MIE on (it resets to off; mie keeps every source off) */
#endif
    uint32_t mask = irq_mask_state();
    capheap_check_cursor_t cursor;
    capheap_check_cursor_init(&cursor);
    unsigned steps = 0;
    while (cursor.passes < 3u && steps++ < 10000u)
        CHECK(capheap_check_step(&cursor, 8, true), "an incremental check step failed");
    CHECK(cursor.passes >= 3u && cursor.errors == 0, "%u passes, %u errors after %u steps",
          (unsigned)cursor.passes, (unsigned)cursor.errors, steps);
    CHECK(irq_mask_state() == mask, "the interrupt mask changed from %#lx to %#lx", (unsigned long)mask,
          (unsigned long)irq_mask_state());
#if defined(__riscv)
    __asm__ volatile("csrci mstatus, 8");
#endif
}

static void check_stack_region_and_reinit(void)
{
    size_t before = heap_caps_get_total_size(MALLOC_CAP_8BIT);
    heap_caps_enable_nonos_stack_heaps();
    capheap_heap_desc_t d;
    CHECK(heap_at(RAM + MIB, &d) >= 0 && d.heap != NULL, "the start-up stack region was not registered");
    CHECK(heap_caps_get_total_size(MALLOC_CAP_8BIT) == before + 256 * KIB, "total %zu after enabling, %zu before",
          heap_caps_get_total_size(MALLOC_CAP_8BIT), before);
    void *big = heap_caps_malloc(200 * KIB, MALLOC_CAP_DMA);
    CHECK(big != NULL && (intptr_t)big >= RAM + MIB && (intptr_t)big < RAM + MIB + 256 * KIB,
          "200 KiB of DMA memory not from the enabled region (%p)", big);
    heap_caps_free(big);

    /* A second init is a firmware bug: reported, then the port's abort. */
    bool aborted;
    TP_EXPECT_ABORT(aborted, heap_caps_init());
    CHECK(aborted, "a second heap_caps_init() did not reach the abort hook");
    CHECK(strcmp(tp_last_write, "heap_caps_init: called twice (esp_err_t 0x103)\n") == 0,
          "a second heap_caps_init() printed \"%s\"", tp_last_write);
    CHECK(capheap_heap_count() == 4 && heap_caps_check_integrity_all(true), "the heaps changed");
}

int main(void)
{
    tp_program = "target_init";
    canary_fill(data_canary, 0xDA7Au);
    canary_fill(bss_canary, 0xB55u);
    heap_caps_init();
    heap_caps_print_heap_info(MALLOC_CAP_8BIT);
    check_layout();
    check_routing();
    check_fill_and_free(0x57ACu);
    check_passes();
    check_stack_region_and_reinit();
    return tp_finish();
}
