/*
 * caps_size_main.c - the heap_caps firmware `make size` measures (scripts/size.sh).
 *
 * What an application pays for the capabilities layer on top of multi_heap:
 * heap_caps_init() from the chip table the build selects (CAPHEAP_CHIP, the
 * ESP32-S3 here: its table's bytes count), then one call each of
 * heap_caps_malloc, heap_caps_aligned_alloc, heap_caps_realloc and
 * heap_caps_free, with sizes and caps read from volatile objects so nothing
 * folds away. Built like size_main.c: -Os, sections, --gc-sections, NDEBUG.
 */
#include <stddef.h>
#include <stdint.h>

#include "esp_heap_caps.h"
#include "esp_heap_caps_init.h"

static volatile size_t request_sizes[3] = {40, 24, 100};
static volatile size_t request_alignment = 32;
static volatile uint32_t request_caps[3] = {MALLOC_CAP_DEFAULT, MALLOC_CAP_DMA, MALLOC_CAP_8BIT};
volatile uintptr_t caps_size_main_sink;

int main(void)
{
    heap_caps_init();
    void *a = heap_caps_malloc(request_sizes[0], request_caps[0]);
    void *b = heap_caps_aligned_alloc(request_alignment, request_sizes[1], request_caps[1]);
    a = heap_caps_realloc(a, request_sizes[2], request_caps[2]);
    caps_size_main_sink = (uintptr_t)a ^ (uintptr_t)b;
    heap_caps_free(b);
    heap_caps_free(a);
    return (int)(caps_size_main_sink & 1u);
}
