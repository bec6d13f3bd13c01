/*
 * record_trace.c - records a workload on the simulated ESP32-S3 (2 MiB PSRAM)
 * as a trace for the capheap tool, through the three allocation hooks, the way
 * tools/README.md ("Recording a trace") shows; for the test tool_record_replay.
 *
 *   record_trace TRACE-FILE
 *
 * The workload (a fixed pseudo-random sequence over 64 slots: heap_caps malloc
 * and calloc with several caps, the libc policy's malloc, reallocs that stay,
 * move inside their heap or move out, frees) makes no aligned allocation: the
 * hooks do not see alignments, so with these calls the replay makes the same
 * heap operations in the same order and must end in the same state. The
 * program prints that state ("INTERNAL free N" ... "live N"), which the test
 * finds again in the tool's report.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "capheap/caps.h"
#include "capheap/chip.h"
#include "capheap/sim.h"
#include "esp_heap_caps.h"

static FILE *rec; /* opened before the boot: the host's stdio, never the chip's heap */

void esp_heap_trace_alloc_hook(void *ptr, size_t size, uint32_t caps)
{
    if (rec != NULL)
        fprintf(rec, "m %p %zu 0x%" PRIx32 "\n", ptr, size, caps);
}

void esp_heap_trace_free_hook(void *ptr)
{
    if (rec != NULL)
        fprintf(rec, "f %p\n", ptr);
}

void capheap_heap_trace_realloc_hook(void *old_ptr, void *new_ptr, size_t size, uint32_t caps)
{
    if (rec == NULL)
        return;
    if (new_ptr == old_ptr)
        fprintf(rec, "r %p %zu 0x%" PRIx32 "\n", old_ptr, size, caps);
    else
        fprintf(rec, "r %p %zu 0x%" PRIx32 " as %p\n", old_ptr, size, caps, new_ptr);
}

static uint32_t state = 2463534242u;
static uint32_t next(void)
{
    state ^= state << 13; /* xorshift32 */
    state ^= state >> 17;
    state ^= state << 5;
    return state;
}

static size_t some_size(void)
{
    uint32_t k = next() % 100u;
    return k < 70u ? 8u + next() % 121u : k < 95u ? 129u + next() % 896u : 1025u + next() % 7168u;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: record_trace TRACE-FILE\n");
        return 2;
    }
    FILE *f = fopen(argv[1], "w");
    capheap_sim_options_t o = CAPHEAP_SIM_OPTIONS_DEFAULT;
    o.quiet = true;
    o.psram_bytes = 2u << 20;
    if (f == NULL || capheap_sim_boot(&capheap_chip_esp32s3, &o) != ESP_OK) {
        fprintf(stderr, "record_trace: cannot open %s or boot\n", argv[1]);
        return 2;
    }
    fprintf(f, "# recorded by record_trace on an ESP32-S3 with 2 MiB PSRAM\n");
    rec = f;
    static const uint32_t caps[] = {MALLOC_CAP_DEFAULT, MALLOC_CAP_INTERNAL, MALLOC_CAP_DMA, MALLOC_CAP_SPIRAM,
                                    MALLOC_CAP_DMA | MALLOC_CAP_INTERNAL, MALLOC_CAP_32BIT};
    void *slot[64] = {0};
    for (int step = 0; step < 4000; step++) {
        unsigned i = next() % 64u, op = next() % 10u;
        uint32_t c = caps[next() % (sizeof caps / sizeof caps[0])];
        if (slot[i] == NULL) {
            size_t n = some_size();
            slot[i] = op < 5 ? heap_caps_malloc(n, c) : op < 7 ? heap_caps_calloc(2, n / 2u + 1u, c)
                                                               : heap_caps_malloc_default(n);
        } else if (op < 4) {
            void *q = heap_caps_realloc(slot[i], some_size(), c);
            /* (a failed realloc keeps the block, and leaves no line: the hooks see successes) */
            if (q != NULL)
                slot[i] = q;
        } else {
            heap_caps_free(slot[i]);
            slot[i] = NULL;
        }
    }
    rec = NULL;
    fclose(f);
    size_t live = 0;
    for (unsigned i = 0; i < 64u; i++)
        live += slot[i] != NULL;
    printf("INTERNAL free %zu\nDMA free %zu\nSPIRAM free %zu\nlive %zu\n",
           heap_caps_get_free_size(MALLOC_CAP_INTERNAL), heap_caps_get_free_size(MALLOC_CAP_DMA),
           heap_caps_get_free_size(MALLOC_CAP_SPIRAM), live);
    capheap_sim_shutdown();
    return 0;
}
