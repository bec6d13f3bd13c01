/*
 * adapter_task.c - heap_caps on a simulated ESP32-S3 with per-task heap
 * accounting built in (CAPHEAP_TASK_TRACKING=ON), for the figure:
 * "W1-lite with task tracking on costs at most 1.3x the instructions per
 * operation of tracking off". The calls are exactly adapter_caps.c's caps-s3
 * (heap_caps_malloc(size, MALLOC_CAP_DEFAULT), heap_caps_free,
 * heap_caps_realloc with MALLOC_CAP_DEFAULT on the reference image, no PSRAM),
 * so the two programs differ only in the library's build option; the bench
 * thread is the one task every block is charged to.
 *
 * Compare with callgrind (Release builds, W1-lite, 2,000,000 calls):
 *   valgrind --tool=callgrind --toggle-collect=bench_malloc --toggle-collect=bench_free \
 *            --toggle-collect=bench_realloc <build>/bench/bench_caps_s3_task w1 --lite
 * against bench_caps_s3 of a build with tracking off.
 */
#include "bench_adapter.h"

#include "capheap/chip.h"
#include "capheap/config.h"
#include "capheap/sim.h"
#include "capheap/task_info.h"
#include "esp_heap_caps.h"

#if !CAPHEAP_TASK_TRACKING
#error "adapter_task.c measures task tracking: build with -DCAPHEAP_TASK_TRACKING=ON"
#endif

const char bench_alloc_name[] = "caps-s3-task";
const int bench_alloc_fixed_heap = 0;

int bench_alloc_init(void *region, size_t size)
{
    (void)region;
    (void)size;
    capheap_sim_options_t o = CAPHEAP_SIM_OPTIONS_DEFAULT;
    o.quiet = true;
    if (capheap_sim_chip() != NULL)
        (void)capheap_sim_shutdown();
    capheap_task_tracking_reset(); /* the blocks of the last run went with its heaps */
    return capheap_sim_boot(&capheap_chip_esp32s3, &o) == ESP_OK ? 0 : -1;
}

size_t bench_alloc_overhead(void)
{
    return 0;
}

const char *bench_alloc_describe(void)
{
    return "capheap heap_caps on a simulated ESP32-S3 (reference image), MALLOC_CAP_DEFAULT, per-heap locks, "
           "task tracking on";
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
