/*
 * probe.c - the offending programs of the sanitizer death tests (tests/sanitize).
 *
 *   sanitize_probe <case>
 *
 * Each case prints "target <address>" (the byte it is about to touch) and
 * then makes one mistake in a capheap heap; under AddressSanitizer the
 * process must stop there with ASan's report naming that address
 * (run_probe.cmake checks both). Cases:
 *   uaf-sim       read a freed heap_caps block of a simulated ESP32-S3
 *   overflow-sim  write one byte past a 13-byte heap_caps block (into the rounding to 16)
 *   uaf-mh        read a freed block of a multi_heap over a static buffer
 *   overflow-mh   write one byte past a 5-byte multi_heap block
 *   free-mh       read the payload of never-allocated free space
 *   overcap-mh    (valgrind) write one byte past the usable size of a 5-byte block (12 bytes:
 *                 memcheck's chunk is the usable size, see src/debug/sanitize.h)
 *   leak-sim      (valgrind) leak a 777-byte heap_caps block: memcheck --leak-check=full reports it
 *   ok-sim        (valgrind) correct use: memcheck reports nothing
 * Exit status 0 means the mistake went unnoticed.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capheap/sim.h"
#include "esp_heap_caps.h"
#include "multi_heap.h"

static _Alignas(16) unsigned char region[8192];

static void boot(void)
{
    capheap_sim_options_t opts = CAPHEAP_SIM_OPTIONS_DEFAULT;
    opts.quiet = true;
    if (capheap_sim_boot(&capheap_chip_esp32s3, &opts) != ESP_OK) {
        fprintf(stderr, "probe: boot failed\n");
        exit(2);
    }
}

static void target(const volatile void *p)
{
    printf("target %p\n", (const void *)p);
    fflush(stdout);
}

static __attribute__((noinline)) void *leak_one(void)
{
    return heap_caps_malloc(777, MALLOC_CAP_8BIT);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: sanitize_probe <case>\n");
        return 2;
    }
    const char *c = argv[1];
    setvbuf(stdout, NULL, _IONBF, 0);
    if (strcmp(c, "uaf-sim") == 0) {
        boot();
        volatile char *p = heap_caps_malloc(40, MALLOC_CAP_8BIT);
        p[0] = 1;
        heap_caps_free((void *)p);
        target(p + 20);
        char v = p[20];
        printf("read %d: not stopped\n", v);
    } else if (strcmp(c, "overflow-sim") == 0) {
        boot();
        volatile char *p = heap_caps_malloc(13, MALLOC_CAP_8BIT);
        memset((void *)p, 1, 13);
        target(p + 13);
        p[13] = 2;
        printf("write: not stopped\n");
    } else if (strcmp(c, "uaf-mh") == 0) {
        multi_heap_handle_t h = multi_heap_register(region, sizeof region);
        volatile char *p = multi_heap_malloc(h, 100);
        multi_heap_free(h, (void *)p);
        target(p + 50);
        char v = p[50];
        printf("read %d: not stopped\n", v);
    } else if (strcmp(c, "overflow-mh") == 0) {
        multi_heap_handle_t h = multi_heap_register(region, sizeof region);
        volatile char *p = multi_heap_malloc(h, 5);
        memset((void *)p, 1, 5);
        target(p + 5);
        p[5] = 2;
        printf("write: not stopped\n");
    } else if (strcmp(c, "overcap-mh") == 0) {
        multi_heap_handle_t h = multi_heap_register(region, sizeof region);
        volatile char *p = multi_heap_malloc(h, 5);
        size_t usable = multi_heap_get_allocated_size(h, (void *)p);
        memset((void *)p, 1, usable);
        target(p + usable);
        p[usable] = 2;
        printf("write: not stopped\n");
    } else if (strcmp(c, "free-mh") == 0) {
        multi_heap_handle_t h = multi_heap_register(region, sizeof region);
        volatile char *p = multi_heap_malloc(h, 16);
        target(p + 1024);
        char v = p[1024];
        printf("read %d: not stopped\n", v);
    } else if (strcmp(c, "leak-sim") == 0) {
        boot();
        /* valgrind 3.19 skips the leak search when no malloc'd block is
         * left at exit, whatever its memory pools hold: keep one. */
        static void *keep;
        keep = malloc(1);
        void *p = leak_one();
        printf("leaked %p (777 bytes), kept %p\n", p, keep);
        p = NULL;
    } else if (strcmp(c, "ok-sim") == 0) {
        boot();
        char *p = heap_caps_malloc(64, MALLOC_CAP_8BIT);
        memset(p, 3, 64);
        p = heap_caps_realloc(p, 200, MALLOC_CAP_8BIT);
        int sum = p[0] + p[63];
        heap_caps_free(p);
        printf("ok %d\n", sum);
    } else {
        fprintf(stderr, "probe: unknown case %s\n", c);
        return 2;
    }
    return 0;
}
