/*
 * adapter_caps.c - capheap's heap_caps layer as a bench allocator, and the
 * multi_heap baseline it is compared with.
 *
 *   BENCH_CAPS=1  "caps-s3": a simulated ESP32-S3 (capheap_sim_boot, reference
 *                 image, no PSRAM, start-up stack heap enabled) and
 *                 heap_caps_malloc(size, MALLOC_CAP_DEFAULT) / heap_caps_free /
 *                 heap_caps_realloc. Its heaps have locks, as on the chip.
 *                 With BENCH_CAPS_TRACE=1 (a CAPHEAP_TRACING build) heap tracing
 *                 records in LEAKS mode into 4096 records ("caps-s3-trace");
 *                 with BENCH_CAPS_TASK=1 (a CAPHEAP_TASK_TRACKING build) the
 *                 program is the same, the build tracks tasks ("caps-s3-task").
 *                 With BENCH_CAPS_ONE=1 the heap_caps layer has one heap, the
 *                 driver's 256 KiB region (heap_caps_add_region_with_caps, a
 *                 per-heap lock): "caps-one", the cost of routing per call
 *                 without the S3 map's choices, and the baseline of
 *                 "caps-one-trace" / "caps-one-task".
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
#include "capheap/caps.h"
#include "capheap/sim.h"
#include "esp_heap_caps.h"
#include "esp_heap_caps_init.h"

#ifndef BENCH_CAPS_ONE
#define BENCH_CAPS_ONE 0
#endif
#if BENCH_CAPS_ONE
#define BENCH_MAP "-one"
#define BENCH_MAP_TEXT "capheap heap_caps with one heap (the 256 KiB region, heap_caps_add_region_with_caps)"
#else
#define BENCH_MAP "-s3"
#define BENCH_MAP_TEXT "capheap heap_caps on a simulated ESP32-S3 (reference image)"
#endif

#if BENCH_CAPS_TRACE
#include "esp_heap_trace.h"
#if !CAPHEAP_TRACING
#error "BENCH_CAPS_TRACE measures heap tracing: build with -DCAPHEAP_TRACING=ON"
#endif
#define BENCH_TRACE_RECORDS 4096
#define BENCH_STR2(x) #x
#define BENCH_STR(x) BENCH_STR2(x)
static heap_trace_record_t bench_records[BENCH_TRACE_RECORDS];
const char bench_alloc_name[] = "caps" BENCH_MAP "-trace";
#elif BENCH_CAPS_TASK
#include "capheap/task_info.h"
#if !CAPHEAP_TASK_TRACKING
#error "BENCH_CAPS_TASK measures task tracking: build with -DCAPHEAP_TASK_TRACKING=ON"
#endif
const char bench_alloc_name[] = "caps" BENCH_MAP "-task";
#else
const char bench_alloc_name[] = "caps" BENCH_MAP;
#endif
const int bench_alloc_fixed_heap = BENCH_CAPS_ONE;

int bench_alloc_init(void *region, size_t size)
{
#if BENCH_CAPS_TRACE
    (void)heap_trace_stop(); /* a second init in the same process: stop the first trace */
#endif
    if (capheap_sim_chip() != NULL)
        (void)capheap_sim_shutdown();
#if BENCH_CAPS_ONE
    capheap_caps_reset();
#endif
#if BENCH_CAPS_TASK
    capheap_task_tracking_reset(); /* the blocks of the last run went with its heaps */
#endif
#if BENCH_CAPS_ONE
    const uint32_t caps[3] = {MALLOC_CAP_DEFAULT | MALLOC_CAP_8BIT | MALLOC_CAP_32BIT | MALLOC_CAP_INTERNAL, 0, 0};
    if (heap_caps_add_region_with_caps(caps, (intptr_t)region, (intptr_t)region + (intptr_t)size) != ESP_OK)
        return -1;
#else
    (void)region;
    (void)size;
    capheap_sim_options_t o = CAPHEAP_SIM_OPTIONS_DEFAULT;
    o.quiet = true;
    if (capheap_sim_boot(&capheap_chip_esp32s3, &o) != ESP_OK)
        return -1;
#endif
#if BENCH_CAPS_TRACE
    if (heap_trace_init_standalone(bench_records, BENCH_TRACE_RECORDS) != ESP_OK ||
        heap_trace_start(HEAP_TRACE_LEAKS) != ESP_OK)
        return -1;
#endif
    return 0;
}

size_t bench_alloc_overhead(void)
{
#if BENCH_CAPS_ONE
    capheap_heap_desc_t d;
    return capheap_heap_get(0, &d) ? capheap_heap_overhead(d.heap) : 0;
#else
    return 0;
#endif
}

const char *bench_alloc_describe(void)
{
#if BENCH_CAPS_TRACE
    return BENCH_MAP_TEXT ", MALLOC_CAP_DEFAULT, per-heap locks, heap tracing LEAKS (4096 records, stack depth " BENCH_STR(
        CONFIG_HEAP_TRACING_STACK_DEPTH) ")";
#elif BENCH_CAPS_TASK
    return BENCH_MAP_TEXT ", MALLOC_CAP_DEFAULT, per-heap locks, task tracking on";
#else
    return BENCH_MAP_TEXT ", MALLOC_CAP_DEFAULT, per-heap locks";
#endif
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
