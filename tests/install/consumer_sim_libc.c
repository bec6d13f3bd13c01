/*
 * consumer_sim_libc.c - a program linked with the installed capheap::capheap_sim_libc
 * (find_package), as a user's would be: with a simulated chip booted, its own malloc,
 * calloc, realloc and free are heap_caps' (docs/simulator.md, "malloc in the simulator").
 * Prints one line and exits 0 when every step gave what the docs promise, 1 otherwise.
 * C99, like consumer.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capheap/caps.h"
#include "capheap/sim.h"
#include "esp_heap_caps.h"

static int failed;

static void expect(int ok, const char *what)
{
    if (!ok) {
        printf("FAILED: %s\n", what);
        failed = 1;
    }
}

int main(void)
{
    char *host = malloc(32); /* no chip yet: the host's */
    if (host != NULL)
        strcpy(host, "host"); /* gcc 12 warns of a const void * argument to unwritten memory */
    expect(host != NULL && capheap_heap_find(host) < 0, "malloc before the boot is the host's");

    capheap_sim_options_t opt = CAPHEAP_SIM_OPTIONS_DEFAULT;
    opt.quiet = true;
    expect(capheap_sim_boot(&capheap_chip_esp32s3, &opt) == ESP_OK, "capheap_sim_boot(ESP32-S3)");
    size_t before = heap_caps_get_free_size(MALLOC_CAP_INTERNAL);
    char *p = malloc(100);
    expect(p != NULL && capheap_heap_find(p) >= 0, "malloc(100) in a heap of the chip");
    expect(heap_caps_get_free_size(MALLOC_CAP_INTERNAL) < before, "the chip's free size went down");
    p = realloc(p, 1000);
    expect(p != NULL && capheap_heap_find(p) >= 0, "realloc(p, 1000) in a heap of the chip");
    free(p);
    int *z = calloc(10, sizeof *z);
    expect(z != NULL && z[9] == 0 && capheap_heap_find(z) >= 0, "calloc in a heap of the chip");
    free(z);
    free(heap_caps_malloc(64, MALLOC_CAP_DMA)); /* free() takes heap_caps' blocks */
    expect(heap_caps_get_free_size(MALLOC_CAP_INTERNAL) == before, "every block went back");
    free(host); /* still the host's */
    expect(capheap_sim_shutdown() == ESP_OK, "capheap_sim_shutdown");

    printf("capheap consumer: %s (sim_libc)\n", failed ? "FAILED" : "ok");
    return failed;
}
