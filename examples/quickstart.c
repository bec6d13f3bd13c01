/* quickstart.c - the README's example: heap_caps on a simulated ESP32-S3 with PSRAM. */
#include <stdio.h>
#include "capheap/sim.h"
#include "esp_heap_caps.h"

int main(void)
{
    capheap_sim_options_t opt = CAPHEAP_SIM_OPTIONS_DEFAULT;
    opt.psram_bytes = 8u << 20; /* an ESP32-S3 with 8 MiB of PSRAM */
    if (capheap_sim_boot(&capheap_chip_esp32s3, &opt) != ESP_OK)
        return 1;
    void *dma = heap_caps_malloc(4096, MALLOC_CAP_DMA);           /* internal, DMA-capable */
    void *frame = heap_caps_malloc(600 * 1024, MALLOC_CAP_SPIRAM); /* external PSRAM */
    printf("DMA buffer %p, frame %p, largest internal block %zu\n", dma, frame,
           heap_caps_get_largest_free_block(MALLOC_CAP_INTERNAL));
    heap_caps_free(frame);
    heap_caps_free(dma);
    return heap_caps_check_integrity_all(true) ? 0 : 1;
}
