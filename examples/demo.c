/*
 * demo.c - a tour of the multi_heap API (what `make demo` runs).
 *
 * Turns a static 64 KiB array into a heap, attaches the host port's lock,
 * allocates blocks of several sizes (one of them 64-byte aligned), frees some,
 * grows one with realloc, then prints the heap statistics, a dump of every
 * block, and the result of the integrity check. Exit status 0 iff every step
 * behaved and the check passed.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "capheap/config.h"
#include "capheap/heap.h"
#include "capheap/port.h"
#include "multi_heap.h"

#define REGION_SIZE (64u * 1024u)

/* The region is plain static memory: 4-byte alignment is all multi_heap_register() needs. */
static _Alignas(16) uint8_t region[REGION_SIZE];

static int failures;

static void expect(int ok, const char *what)
{
    if (!ok) {
        printf("FAILED: %s\n", what);
        failures++;
    }
}

static void write_stdout(const char *text, size_t len)
{
    fwrite(text, 1, len, stdout);
}

static void print_info(multi_heap_handle_t heap, const char *when)
{
    multi_heap_info_t info;
    multi_heap_get_info(heap, &info);
    printf("\n%s\n", when);
    printf("  %-22s %10s\n", "field", "value");
    printf("  %-22s %10zu\n", "total_free_bytes", info.total_free_bytes);
    printf("  %-22s %10zu\n", "total_allocated_bytes", info.total_allocated_bytes);
    printf("  %-22s %10zu\n", "largest_free_block", info.largest_free_block);
    printf("  %-22s %10zu\n", "minimum_free_bytes", info.minimum_free_bytes);
    printf("  %-22s %10zu\n", "allocated_blocks", info.allocated_blocks);
    printf("  %-22s %10zu\n", "free_blocks", info.free_blocks);
    printf("  %-22s %10zu\n", "total_blocks", info.total_blocks);
}

int main(void)
{
    const char *poisoning = CAPHEAP_POISONING_COMPREHENSIVE ? "comprehensive"
                            : CAPHEAP_POISONING_LIGHT        ? "light"
                                                             : "none";

    multi_heap_handle_t heap = multi_heap_register(region, sizeof region);
    if (heap == NULL) {
        printf("FAILED: multi_heap_register returned NULL\n");
        return 1;
    }

    capheap_lock_t lock;
    if (capheap_lock_init(&lock) != 0) {
        printf("FAILED: capheap_lock_init\n");
        return 1;
    }
    multi_heap_set_lock(heap, &lock);

    printf("capheap demo: %u-byte region at %p, poisoning %s\n", REGION_SIZE, (void *)region,
           poisoning);
    const size_t fresh_free = multi_heap_free_size(heap);
    printf("heap overhead %zu bytes, free after registration %zu bytes, block alignment %zu\n",
           capheap_heap_overhead(heap), fresh_free, capheap_heap_alignment(heap));

    /* A handful of blocks of different sizes. */
    static const size_t sizes[] = {1, 24, 100, 512, 3000, 10000};
    enum { N = sizeof sizes / sizeof sizes[0] };
    void *blocks[N];
    printf("\n  %-8s %-18s %10s %10s\n", "request", "pointer", "usable", "full");
    for (size_t i = 0; i < N; i++) {
        blocks[i] = multi_heap_malloc(heap, sizes[i]);
        expect(blocks[i] != NULL, "malloc");
        if (blocks[i] == NULL) {
            continue;
        }
        memset(blocks[i], (int)(0x10 + i), sizes[i]);
        printf("  %-8zu %-18p %10zu %10zu\n", sizes[i], blocks[i],
               multi_heap_get_allocated_size(heap, blocks[i]),
               multi_heap_get_full_block_size(heap, blocks[i]));
        expect(multi_heap_get_allocated_size(heap, blocks[i]) >= sizes[i], "usable size >= request");
    }

    /* One block aligned to 64 bytes. */
    void *aligned = multi_heap_aligned_alloc(heap, 200, 64);
    expect(aligned != NULL, "aligned_alloc");
    expect(((uintptr_t)aligned % 64u) == 0, "64-byte alignment");
    printf("  %-8s %-18p (aligned to 64)\n", "200", aligned);

    /* Free every other block, leaving holes. */
    for (size_t i = 0; i < N; i += 2) {
        multi_heap_free(heap, blocks[i]);
        blocks[i] = NULL;
    }

    /* Grow one survivor: its contents must move with it. */
    uint8_t *grown = multi_heap_realloc(heap, blocks[1], 2000);
    expect(grown != NULL, "realloc");
    if (grown != NULL) {
        int intact = 1;
        for (size_t k = 0; k < sizes[1]; k++) {
            intact &= grown[k] == 0x11;
        }
        expect(intact, "realloc keeps the contents");
        blocks[1] = grown;
        printf("\nrealloc(%zu -> 2000 bytes): %p, usable %zu\n", sizes[1], (void *)grown,
               multi_heap_get_allocated_size(heap, grown));
    }

    print_info(heap, "multi_heap_get_info after the allocations:");

    /* The dump and the check's reports go through the port's writer (stderr on the host);
     * send them to stdout so they come out in order with the rest. */
    capheap_write_fn previous_writer = capheap_set_writer(write_stdout);
    printf("\nmulti_heap_dump:\n");
    multi_heap_dump(heap);

    bool intact = multi_heap_check(heap, true);
    printf("\nmulti_heap_check: %s\n", intact ? "heap intact" : "CORRUPT");
    expect(intact, "multi_heap_check after the allocations");

    /* Give everything back: the heap returns to its fresh state. */
    for (size_t i = 0; i < N; i++) {
        multi_heap_free(heap, blocks[i]);
    }
    multi_heap_free(heap, aligned);
    print_info(heap, "multi_heap_get_info after freeing everything:");
    expect(multi_heap_free_size(heap) == fresh_free, "all memory back after freeing everything");
    expect(multi_heap_check(heap, true), "multi_heap_check at the end");
    capheap_set_writer(previous_writer);

    multi_heap_set_lock(heap, NULL);
    capheap_lock_destroy(&lock);

    printf("\n%s\n", failures == 0 ? "demo: OK" : "demo: FAILED");
    return failures == 0 ? 0 : 1;
}
