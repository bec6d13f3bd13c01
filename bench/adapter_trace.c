/*
 * adapter_trace.c - heap_caps on a simulated ESP32-S3 with heap tracing
 * recording in LEAKS mode: the cost of tracing (docs/tracing.md).
 *
 * The same allocator as adapter_caps.c with BENCH_CAPS=1 (capheap_sim_boot,
 * reference image, no PSRAM; heap_caps_malloc(size, MALLOC_CAP_DEFAULT),
 * heap_caps_free, heap_caps_realloc), plus heap_trace_init_standalone() over
 * 4096 static records and heap_trace_start(HEAP_TRACE_LEAKS). Built only with
 * CAPHEAP_TRACING; compare it with bench_caps_s3 of a build without tracing:
 *
 *   valgrind --tool=callgrind --toggle-collect=bench_malloc --toggle-collect=bench_free \
 *            --toggle-collect=bench_realloc bench_trace_s3 w1 --lite
 *
 * W1-lite never holds more than a few hundred blocks, so 4096 records never
 * overflow: every free finds its record through the hash map.
 */
#include "bench_adapter.h"

#include "capheap/chip.h"
#include "capheap/sim.h"
#include "esp_heap_caps.h"
#include "esp_heap_caps_init.h"
#include "esp_heap_trace.h"

#define BENCH_TRACE_RECORDS 4096
#define BENCH_TRACE_XSTR(x) #x
#define BENCH_TRACE_STR(x) BENCH_TRACE_XSTR(x)

const char bench_alloc_name[] = "caps-s3-trace";
const int bench_alloc_fixed_heap = 0;

static heap_trace_record_t bench_records[BENCH_TRACE_RECORDS];

int bench_alloc_init(void *region, size_t size)
{
    (void)region;
    (void)size;
    capheap_sim_options_t o = CAPHEAP_SIM_OPTIONS_DEFAULT;
    o.quiet = true;
    (void)heap_trace_stop(); /* a second init in the same process: stop the first trace */
    if (capheap_sim_chip() != NULL)
        (void)capheap_sim_shutdown();
    if (capheap_sim_boot(&capheap_chip_esp32s3, &o) != ESP_OK)
        return -1;
    if (heap_trace_init_standalone(bench_records, BENCH_TRACE_RECORDS) != ESP_OK)
        return -1;
    return heap_trace_start(HEAP_TRACE_LEAKS) == ESP_OK ? 0 : -1;
}

size_t bench_alloc_overhead(void)
{
    return 0;
}

const char *bench_alloc_describe(void)
{
    return "capheap heap_caps on a simulated ESP32-S3, MALLOC_CAP_DEFAULT, heap tracing LEAKS (4096 records, "
           "stack depth " BENCH_TRACE_STR(CONFIG_HEAP_TRACING_STACK_DEPTH) ")";
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
