/*
 * consumer.c - a program built against an installed capheap, as a user's would be.
 *
 * Built three ways by cmake/check_install.cmake (the ctest install_consumer):
 * with find_package(capheap) against capheap::capheap (static) and
 * capheap::capheap_shared, and with the flags `pkg-config capheap` prints. It
 * uses only installed headers and the library: one multi_heap over a static
 * region, then a simulated ESP32-S3 with 2 MiB of PSRAM and an allocation by
 * capability in each kind of memory. Prints one line and exits 0 when every
 * step gave what the API promises, 1 otherwise. It is C99, so that it can be
 * built as the C standard the library was (a C99 build's headers must serve
 * a C99 program). EXPECT_POISONING (the build's
 * mode, a string) must be the mode the installed config.h describes.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "capheap/config.h"
#include "capheap/sim.h"
#include "esp_heap_caps.h"
#include "multi_heap.h"

/* The installed config.h's poisoning mode, by name. */
#if CAPHEAP_POISONING_COMPREHENSIVE
#define POISONING "COMPREHENSIVE"
#elif CAPHEAP_POISONING_LIGHT
#define POISONING "LIGHT"
#else
#define POISONING "NONE"
#endif

static uint32_t region[2048]; /* 8 KiB, word-aligned: C99 has no _Alignas */

static int failed;

static void expect(int ok, const char *what)
{
    if (!ok) {
        printf("capheap consumer: FAILED: %s\n", what);
        failed = 1;
    }
}

int main(void)
{
#ifdef EXPECT_POISONING
    expect(strcmp(POISONING, EXPECT_POISONING) == 0, "config.h's poisoning is the build's");
#endif
    multi_heap_handle_t h = multi_heap_register(region, sizeof region);
    expect(h != NULL, "multi_heap_register of 8 KiB");
    if (h != NULL) {
        void *p = multi_heap_malloc(h, 100);
        expect(p != NULL && multi_heap_get_allocated_size(h, p) >= 100, "multi_heap_malloc(100)");
        multi_heap_free(h, p);
        multi_heap_info_t info;
        multi_heap_get_info(h, &info);
        expect(info.allocated_blocks == 0 && info.total_free_bytes == multi_heap_free_size(h),
               "multi_heap_get_info after the free");
        expect(multi_heap_check(h, true), "multi_heap_check");
    }

    capheap_sim_options_t opt = CAPHEAP_SIM_OPTIONS_DEFAULT;
    opt.psram_bytes = 2u << 20;
    expect(capheap_sim_boot(&capheap_chip_esp32s3, &opt) == ESP_OK, "capheap_sim_boot(ESP32-S3)");
    void *dma = heap_caps_malloc(4096, MALLOC_CAP_DMA);
    void *ext = heap_caps_malloc(256u * 1024u, MALLOC_CAP_SPIRAM);
    expect(dma != NULL && heap_caps_get_allocated_size(dma) >= 4096, "heap_caps_malloc(4096, DMA)");
    expect(ext != NULL && heap_caps_get_allocated_size(ext) >= 256u * 1024u,
           "heap_caps_malloc(256 KiB, SPIRAM)");
    expect(heap_caps_malloc(64, MALLOC_CAP_INTERNAL | MALLOC_CAP_SPIRAM) == NULL,
           "no heap is both internal RAM and PSRAM");
    heap_caps_free(ext);
    heap_caps_free(dma);
    expect(heap_caps_check_integrity_all(true), "heap_caps_check_integrity_all");
    expect(capheap_sim_shutdown() == ESP_OK, "capheap_sim_shutdown");

    printf("capheap consumer: %s (poisoning %s)\n", failed ? "FAILED" : "ok", POISONING);
    return failed;
}
