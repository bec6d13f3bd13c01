/*
 * adapter_caps.c - capheap's heap_caps layer as a bench allocator, and the
 * multi_heap baseline it is compared with.
 *
 *   BENCH_CAPS=1  "caps-s3": a simulated ESP32-S3 (capheap_sim_boot, reference
 *                 image, no PSRAM, start-up stack heap enabled) and
 *                 heap_caps_malloc(size, MALLOC_CAP_DEFAULT) / heap_caps_free /
 *                 heap_caps_realloc. Its heaps have locks, as on the chip.
 *   BENCH_CAPS=0  "capheap-locked": multi_heap alone over the driver's region
 *                 with the same kind of lock attached (capheap_lock_t), so that
 *                 caps-s3 minus capheap-locked is the cost of routing alone.
 */
#include "bench_adapter.h"

#include <stdio.h>

#include "capheap/chip.h"
#include "capheap/heap.h"
#include "capheap/port.h"
#include "multi_heap.h"

#if BENCH_CAPS
#include "capheap/sim.h"
#include "esp_heap_caps.h"
#include "esp_heap_caps_init.h"

const char bench_alloc_name[] = "caps-s3";
const int bench_alloc_fixed_heap = 0;

int bench_alloc_init(void *region, size_t size)
{
    (void)region;
    (void)size;
    capheap_sim_options_t o = CAPHEAP_SIM_OPTIONS_DEFAULT;
    o.quiet = true;
    if (capheap_sim_chip() != NULL)
        (void)capheap_sim_shutdown();
    return capheap_sim_boot(&capheap_chip_esp32s3, &o) == ESP_OK ? 0 : -1;
}

size_t bench_alloc_overhead(void)
{
    return 0;
}

const char *bench_alloc_describe(void)
{
    return "capheap heap_caps on a simulated ESP32-S3 (reference image), MALLOC_CAP_DEFAULT, per-heap locks";
}

void *bench_malloc(size_t size)
{
    return heap_caps_malloc(size, MALLOC_CAP_DEFAULT);
}

void bench_free(void *p)
{
    heap_caps_free(p);
}

void *bench_realloc(void *p, size_t size)
{
    return heap_caps_realloc(p, size, MALLOC_CAP_DEFAULT);
}

#else

const char bench_alloc_name[] = "capheap-locked";
const int bench_alloc_fixed_heap = 1;

static multi_heap_handle_t bench_heap;
static capheap_lock_t bench_lock;
static int bench_lock_ready;

int bench_alloc_init(void *region, size_t size)
{
    if (!bench_lock_ready && capheap_lock_init(&bench_lock) == 0)
        bench_lock_ready = 1;
    bench_heap = multi_heap_register(region, size);
    if (bench_heap == NULL || !bench_lock_ready)
        return -1;
    multi_heap_set_lock(bench_heap, &bench_lock);
    return 0;
}

size_t bench_alloc_overhead(void)
{
    return capheap_heap_overhead(bench_heap);
}

const char *bench_alloc_describe(void)
{
    return "capheap multi_heap, multi_heap_register, alignment 4, host port lock attached";
}

void *bench_malloc(size_t size)
{
    return multi_heap_malloc(bench_heap, size);
}

void bench_free(void *p)
{
    multi_heap_free(bench_heap, p);
}

void *bench_realloc(void *p, size_t size)
{
    return multi_heap_realloc(bench_heap, p, size);
}
#endif
