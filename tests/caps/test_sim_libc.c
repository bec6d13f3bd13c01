/*
 * test_sim_libc.c - capheap_sim_libc (sim/libc/wrap.c): with a simulated chip
 * booted, the malloc family called from this program's own code is served by
 * heap_caps' _default policy, as ESP-IDF's libc does; before the boot, and for
 * blocks the C library made, the host allocator keeps them. The program is
 * linked with capheap::capheap_sim_libc (GNU ld --wrap), so the plain names
 * below are the wrapped ones.
 */
#define _GNU_SOURCE /* strndup, memalign, malloc_usable_size, reallocarray, fmemopen */
#include <errno.h>
#include <malloc.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "capheap/caps.h"
#include "capheap/chip.h"
#include "capheap/config.h"
#include "capheap/report.h"
#include "capheap/sim.h"
#include "esp_heap_caps.h"
#include "support.h"
#if CAPHEAP_TRACING
#include "esp_heap_trace.h"
#endif

/* A result stored here escapes: clang may otherwise drop an allocation whose
 * result is only compared with NULL, and assume it succeeded. */
static void *volatile kept;

/* The heap's caps (all priorities), or 0 for a pointer in no heap. */
static uint32_t heap_caps_of(const void *p)
{
    capheap_heap_desc_t d;
    if (!capheap_heap_find_desc(p, &d))
        return 0;
    return d.caps[0] | d.caps[1] | d.caps[2];
}

static void boot(const char *chip, size_t psram)
{
    capheap_sim_options_t o = CAPHEAP_SIM_OPTIONS_DEFAULT;
    o.quiet = true;
    o.psram_bytes = psram;
    assert_int_equal(capheap_sim_boot(capheap_chip_find(chip), &o), ESP_OK);
}

static int shutdown_sim(void **state)
{
    (void)state;
    if (capheap_sim_chip() != NULL)
        assert_int_equal(capheap_sim_shutdown(), ESP_OK);
    return 0;
}

/* No chip booted: the host allocator, in every function. */
static void test_host_allocator_before_boot(void **state)
{
    (void)state;
    assert_null(capheap_sim_chip());
    void *p = malloc(100);
    assert_non_null(p);
    assert_int_equal(capheap_heap_find(p), -1);
    assert_true(malloc_usable_size(p) >= 100);
    p = realloc(p, 5000);
    assert_non_null(p);
    assert_int_equal(capheap_heap_find(p), -1);
    free(p);
    char *s = strdup("host");
    assert_string_equal(s, "host");
    assert_int_equal(capheap_heap_find(s), -1);
    free(s);
    void *a = NULL;
    assert_int_equal(posix_memalign(&a, 64, 10), 0);
    assert_int_equal((uintptr_t)a % 64, 0);
    assert_int_equal(capheap_heap_find(a), -1);
    free(a);
}

/* Booted: malloc is heap_caps_malloc_default (internal RAM up to the extmem
 * limit, PSRAM above), and the chip's statistics move with it. */
static void test_malloc_family_in_the_chip(void **state)
{
    (void)state;
    boot("esp32s3", 2 * 1024 * 1024);
    size_t internal = heap_caps_get_free_size(MALLOC_CAP_INTERNAL);
    void *small = malloc(200);
    assert_non_null(small);
    assert_true((heap_caps_of(small) & MALLOC_CAP_INTERNAL) != 0);
    assert_true(heap_caps_get_free_size(MALLOC_CAP_INTERNAL) < internal);
    assert_int_equal(malloc_usable_size(small), heap_caps_get_allocated_size(small));
    void *big = malloc(64 * 1024); /* above the S3's 16 KiB limit: PSRAM first */
    assert_non_null(big);
    assert_true((heap_caps_of(big) & MALLOC_CAP_SPIRAM) != 0);

    unsigned char *z = calloc(50, 4);
    assert_non_null(z);
    assert_true(heap_caps_of(z) != 0);
    for (size_t i = 0; i < 200; i++)
        assert_int_equal(z[i], 0);
    errno = 0;
    volatile size_t half = SIZE_MAX / 2; /* not a constant: no compile-time warning */
    kept = calloc(half, 3);              /* the product overflows */
    assert_null(kept);
    assert_int_equal(errno, ENOMEM);

    memset(small, 0x5a, 200);
    unsigned char *r = realloc(small, 3000);
    assert_non_null(r);
    assert_true(heap_caps_of(r) != 0);
    for (size_t i = 0; i < 200; i++)
        assert_int_equal(r[i], 0x5a);
    assert_null(realloc(r, 0)); /* ESP-IDF: frees, NULL */

    void *m = memalign(256, 100);
    assert_non_null(m);
    assert_int_equal((uintptr_t)m % 256, 0);
    assert_true(heap_caps_of(m) != 0);
    void *al = aligned_alloc(64, 128);
    assert_non_null(al);
    assert_true(heap_caps_of(al) != 0);
    void *pm = NULL;
    assert_int_equal(posix_memalign(&pm, 32, 40), 0);
    assert_true(heap_caps_of(pm) != 0);
    assert_int_equal(posix_memalign(&pm, 24, 40), EINVAL);

    char *s = strdup("firmware");
    assert_string_equal(s, "firmware");
    assert_true(heap_caps_of(s) != 0);
    char *n = strndup("firmware", 4);
    assert_string_equal(n, "firm");
    assert_true(heap_caps_of(n) != 0);

    free(big);
    free(z);
    free(m);
    free(al);
    free(pm);
    free(s);
    free(n);
    free(NULL);
    assert_int_equal(heap_caps_get_free_size(MALLOC_CAP_INTERNAL), internal);
    assert_true(heap_caps_check_integrity_all(true));
}

/* The chip's memory runs out where the firmware's would. */
static void test_out_of_memory_is_the_chips(void **state)
{
    (void)state;
    boot("esp32c3", 0);
    size_t largest = heap_caps_get_largest_free_block(MALLOC_CAP_DEFAULT);
    kept = malloc(heap_caps_get_total_size(MALLOC_CAP_DEFAULT) + 1);
    assert_null(kept);
    void *p = malloc(largest);
    assert_non_null(p);
    free(p);
}

/* Blocks cross: free() takes heap_caps blocks (ESP-IDF's own caps tests do
 * free(heap_caps_malloc(...))), heap_caps_free takes malloc's, and a block the
 * host allocator made before the boot is still the host's to free. */
static void test_blocks_cross_between_the_apis(void **state)
{
    (void)state;
    void *before = malloc(64);
    assert_non_null(before);
    boot("esp32s3", 0);
    size_t free0 = heap_caps_get_free_size(MALLOC_CAP_8BIT);
    void *dma = heap_caps_malloc(1600, MALLOC_CAP_DMA);
    assert_non_null(dma);
    free(dma);
    void *p32 = heap_caps_malloc(100, MALLOC_CAP_32BIT);
    p32 = realloc(p32, 400);
    assert_non_null(p32);
    free(p32);
    void *m = malloc(48);
    assert_non_null(m);
    heap_caps_free(m);
    assert_int_equal(heap_caps_get_free_size(MALLOC_CAP_8BIT), free0);
    before = realloc(before, 128); /* still the host's block */
    assert_non_null(before);
    assert_int_equal(capheap_heap_find(before), -1);
    free(before);
    char *host = NULL; /* made inside the C library: the host's */
    assert_true(asprintf(&host, "%d", 42) > 0);
    assert_int_equal(capheap_heap_find(host), -1);
    free(host);
}

static int failures;
static size_t failed_size;

static void count_failure(size_t size, uint32_t caps, const char *function_name)
{
    (void)caps;
    (void)function_name;
    failures++;
    failed_size = size;
}

/* reallocarray checks the product, then is realloc (a chip block stays in the chip). */
static void test_reallocarray(void **state)
{
    (void)state;
    boot("esp32s3", 0);
    unsigned char *p = reallocarray(NULL, 10, 8);
    assert_non_null(p);
    assert_true(heap_caps_of(p) != 0);
    memset(p, 0x33, 80);
    unsigned char *q = reallocarray(p, 100, 8);
    assert_non_null(q);
    assert_true(heap_caps_of(q) != 0);
    for (size_t i = 0; i < 80; i++)
        assert_int_equal(q[i], 0x33);
    errno = 0;
    volatile size_t huge = SIZE_MAX / 4;  /* not constants: no compile-time warnings */
    unsigned char *volatile still = q;
    kept = reallocarray(q, huge, 8); /* the product overflows: q stays */
    assert_null(kept);
    assert_int_equal(errno, ENOMEM);
    assert_int_equal(still[79], 0x33);
    /* The largest product that fits is realloc's to refuse: the policy's
     * failure callback sees that request (the overflow above it never). */
    assert_int_equal(heap_caps_register_failed_alloc_callback(count_failure), ESP_OK);
    failures = 0;
    failed_size = 0;
    volatile size_t most = SIZE_MAX / 8;
    kept = reallocarray(still, most, 8);
    assert_null(kept);
    assert_int_equal(failures, 1);
    assert_int_equal(failed_size, (size_t)most * 8u);
    kept = reallocarray(still, huge, 8);
    assert_null(kept);
    assert_int_equal(failures, 1);
    assert_int_equal(heap_caps_register_failed_alloc_callback(NULL), ESP_OK);
    assert_int_equal(still[79], 0x33);
    free(still);
}

/* getline and getdelim grow a chip buffer in the chip (in the C library they
 * would realloc it with the host allocator, which aborts); a host buffer
 * stays the host's. */
static void test_getline_and_getdelim(void **state)
{
    (void)state;
    static char text[6000];
    memset(text, 'x', sizeof text);
    memcpy(text, "first\n", 6);
    text[sizeof text - 2] = '\n';
    text[sizeof text - 1] = '\0';
    FILE *f = fmemopen(text, strlen(text), "r");
    assert_non_null(f);
    char *host = NULL;
    size_t host_n = 0;
    assert_int_equal(getline(&host, &host_n, f), 6); /* no chip: the C library's own */
    assert_int_equal(capheap_heap_find(host), -1);
    rewind(f);

    boot("esp32s3", 2 * 1024 * 1024);
    char *line = NULL;
    size_t n = 0;
    assert_int_equal(getline(&line, &n, f), 6);
    assert_string_equal(line, "first\n");
    assert_true(heap_caps_of(line) != 0);
    assert_true(n >= 7);
    ssize_t long_len = getline(&line, &n, f); /* grows past 5,000 bytes, in the chip */
    assert_int_equal(long_len, (ssize_t)sizeof text - 1 - 6);
    assert_int_equal(strlen(line), (size_t)long_len);
    assert_int_equal(line[long_len - 1], '\n');
    assert_true(heap_caps_of(line) != 0);
    assert_int_equal(getline(&line, &n, f), -1); /* end of file */
    /* Two small free blocks apart: the one the new buffer gets holds a link
     * to the other, not a NUL, in its first byte; the empty string must be
     * written, not found. */
    char *d1 = malloc(1), *sep = malloc(1), *d2 = malloc(1), *sep2 = malloc(1);
    uintptr_t reused = (uintptr_t)d2;
    free(d1);
    free(d2);
    char *fresh = NULL;
    size_t fresh_n = 0;
    assert_int_equal(getline(&fresh, &fresh_n, f), -1); /* at end of file, a new buffer */
    assert_int_equal((uintptr_t)fresh, reused);
    assert_non_null(fresh); /* an empty string in the chip, for the caller to free */
    assert_true(heap_caps_of(fresh) != 0);
    assert_int_equal(fresh[0], '\0');
    assert_true(fresh_n >= 1);
    free(fresh);
    free(sep);
    free(sep2);
    rewind(f);
    assert_int_equal(getdelim(&line, &n, 'x', f), 7); /* "first\nx" */
    assert_string_equal(line, "first\nx");
    rewind(f);
    assert_int_equal(getline(&host, &host_n, f), 6); /* a host buffer stays the host's */
    assert_int_equal(capheap_heap_find(host), -1);
    errno = 0;
    assert_int_equal(getline(NULL, &n, f), -1);
    assert_int_equal(errno, EINVAL);
    /* A NULL buffer ignores *n (POSIX): a stale size must not be trusted. */
    rewind(f);
    char *stale = NULL;
    size_t stale_n = 4096;
    assert_int_equal(getline(&stale, &stale_n, f), 6);
    assert_string_equal(stale, "first\n");
    assert_true(heap_caps_of(stale) != 0);
    free(stale);
    fclose(f);
    /* A line that fills a chip buffer to its last byte: the buffer grows
     * for the terminating NUL. */
    static char sixteen[] = "fifteen chars..\nmore";
    f = fmemopen(sixteen, strlen(sixteen), "r");
    assert_non_null(f);
    char *small = malloc(16);
    size_t small_n = 16;
    assert_true(heap_caps_of(small) != 0);
    assert_int_equal(getline(&small, &small_n, f), 16);
    assert_true(small_n >= 17);
    assert_int_equal(strlen(small), 16);
    assert_true(heap_caps_get_allocated_size(small) >= 17);
    free(small);
    fclose(f);
    free(line);
    free(host);
    assert_true(heap_caps_check_integrity_all(true));
}

/* A line longer than the chip can hold: -1 with ENOMEM, and the buffer grown
 * so far is still the caller's, in the chip, to free (POSIX). */
static void test_getline_out_of_memory(void **state)
{
    (void)state;
    static char text[1024 * 1024]; /* no newline: one line of 1 MiB - 1 */
    memset(text, 'y', sizeof text - 1);
    FILE *f = fmemopen(text, sizeof text - 1, "r");
    assert_non_null(f);
    boot("esp32c3", 0);
    size_t before = heap_caps_get_free_size(MALLOC_CAP_DEFAULT);
    char *line = NULL;
    size_t n = 0;
    errno = 0;
    assert_int_equal(getline(&line, &n, f), -1);
    assert_int_equal(errno, ENOMEM);
    assert_non_null(line);
    assert_true(heap_caps_of(line) != 0);
    assert_true(n >= 120 && n < sizeof text);
    assert_int_equal(heap_caps_get_allocated_size(line) >= n, true);
    free(line);
    fclose(f);
    assert_int_equal(heap_caps_get_free_size(MALLOC_CAP_DEFAULT), before);
    assert_true(heap_caps_check_integrity_all(true));
}

/* A chip block used after capheap_sim_shutdown() unmapped it: reported by
 * name and aborted through the port, where the host allocator would crash
 * reading its header. */
static void test_after_shutdown_is_reported(void **state)
{
    (void)state;
    boot("esp32c3", 0);
    void *p = malloc(64);
    assert_non_null(p);
    assert_int_equal(capheap_sim_shutdown(), ESP_OK);
    bool aborted = false;
    CT_CATCH_ABORT(aborted, free(p));
    assert_true(aborted);
    assert_ptr_equal(capheap_last_report().address, p);
    assert_non_null(strstr(capheap_last_report().what, "free() of a block of the simulated chip after"));
    CT_CATCH_ABORT(aborted, kept = realloc(p, 128));
    assert_true(aborted);
    assert_non_null(strstr(capheap_last_report().what, "realloc()"));
    CT_CATCH_ABORT(aborted, (void)malloc_usable_size(p));
    assert_true(aborted);
    /* a host block is still the host's */
    void *h = malloc(32);
    assert_int_equal(capheap_heap_find(h), -1);
    free(h);
    /* once a chip is mapped again, the old ranges are forgotten */
    boot("esp32c3", 0);
    void *q = malloc(64);
    assert_non_null(q);
    free(q);
}

/* After the shutdown the host's own large blocks (glibc mmaps them) must not
 * land where the chip was and be taken for its blocks: the STM32H743 always
 * runs at an offset in host memory (a region starts at address 0), where the
 * kernel would otherwise hand out the freed range next; a valid free of a
 * host block there was reported as a chip block's and aborted (7 of 8 such
 * frees, before the shutdown kept the chip's address ranges reserved). */
static void test_host_blocks_after_shutdown_are_the_hosts(void **state)
{
    (void)state;
    boot("stm32h743", 0);
    assert_int_equal(capheap_sim_shutdown(), ESP_OK);
    enum { N = 8 };
    char *b[N];
    for (int i = 0; i < N; i++) {
        b[i] = malloc((size_t)1 << 20); /* no chip: the host's, mmapped */
        assert_non_null(b[i]);
        assert_int_equal(capheap_heap_find(b[i]), -1);
        memset(b[i], 1, 64);
    }
    for (int i = 0; i < N; i++) {
        bool aborted = false;
        CT_CATCH_ABORT(aborted, free(b[i]));
        assert_false(aborted);
    }
    /* and the next boot may use the range again */
    boot("stm32h743", 0);
    void *q = malloc(64);
    assert_non_null(q);
    assert_true(capheap_heap_find(q) >= 0);
    free(q);
}

/* An EXEC block's IRAM alias pointer goes back through heap_caps too: on the
 * ESP32, once the IRAM heap is full, EXEC requests are served from D/IRAM
 * through its alias window (an address in no heap's range). */
static void test_free_takes_an_iram_alias(void **state)
{
    (void)state;
#if CAPHEAP_EXEC_HEAP
    boot("esp32", 0);
    size_t free0 = heap_caps_get_free_size(MALLOC_CAP_8BIT);
    size_t exec0 = heap_caps_get_free_size(MALLOC_CAP_EXEC);
    void *blocks[400];
    size_t n = 0;
    bool alias = false;
    while (n < sizeof blocks / sizeof blocks[0] && !alias) {
        void *p = heap_caps_malloc(2048, MALLOC_CAP_EXEC);
        if (p == NULL)
            break;
        blocks[n++] = p;
        alias = capheap_heap_find(p) < 0;
    }
    assert_true(alias);
    while (n > 0)
        free(blocks[--n]);
    assert_int_equal(heap_caps_get_free_size(MALLOC_CAP_EXEC), exec0);
    assert_int_equal(heap_caps_get_free_size(MALLOC_CAP_8BIT), free0);
    assert_int_equal(capheap_sim_shutdown(), ESP_OK);

    /* RTC fast memory has an alias window of its own: an ESP32 whose table
     * lists it as heap (ESP-IDF's option; its RTCRAM type has EXEC) serves
     * EXEC there at an address on its IRAM side, which free takes too. */
    static soc_memory_region_t rows[64];
    static capheap_chip_t chip;
    chip = capheap_chip_esp32;
    assert_true(chip.region_count < sizeof rows / sizeof rows[0]);
    memcpy(rows, chip.regions, chip.region_count * sizeof rows[0]);
    rows[chip.region_count] = (soc_memory_region_t){.start = chip.rtc.dram_low,
                                                   .size = (size_t)(chip.rtc.dram_high - chip.rtc.dram_low),
                                                   .type = 4 /* RTCRAM */,
                                                   .iram_address = chip.rtc.iram_low,
                                                   .startup_stack = false};
    assert_string_equal(chip.types[rows[chip.region_count].type].name, "RTCRAM");
    chip.regions = rows;
    chip.region_count++;
    capheap_sim_options_t o = CAPHEAP_SIM_OPTIONS_DEFAULT;
    o.quiet = true;
    assert_int_equal(capheap_sim_boot(&chip, &o), ESP_OK);
    const capheap_chip_t *host = capheap_caps_chip(); /* host addresses */
    exec0 = heap_caps_get_free_size(MALLOC_CAP_EXEC);
    free0 = heap_caps_get_free_size(MALLOC_CAP_8BIT);
    void *rtc = heap_caps_malloc(64, MALLOC_CAP_EXEC | MALLOC_CAP_RTCRAM);
    assert_non_null(rtc);
    assert_true((uintptr_t)rtc >= (uintptr_t)host->rtc.iram_low && (uintptr_t)rtc < (uintptr_t)host->rtc.iram_high);
    assert_true(malloc_usable_size(rtc) >= 64);
    free(rtc);
    assert_int_equal(heap_caps_get_free_size(MALLOC_CAP_EXEC), exec0);
    assert_int_equal(heap_caps_get_free_size(MALLOC_CAP_8BIT), free0);
#else
    skip();
#endif
}

#if CAPHEAP_TRACING
static void *volatile sink;

/* The program's own code calling malloc: the trace must name it as the caller. */
static CT_NOINLINE void *user_malloc(void)
{
    sink = ct_call_site();
    void *p = malloc(40);
    sink = ct_call_site();
    return p;
}

/* The same through calloc (each wrapper's frame must be known as the library's). */
static void *volatile calloc_sink;

static CT_NOINLINE void *user_calloc(void)
{
    calloc_sink = ct_call_site();
    void *p = calloc(6, 8);
    calloc_sink = ct_call_site();
    return p;
}
#endif

/* A leak hunt over code that calls malloc (or calloc) sees its blocks (spec 4.1), with
 * the caller in the program, not in the wrapper. */
static void test_tracing_sees_malloc(void **state)
{
    (void)state;
#if CAPHEAP_TRACING
    boot("esp32s3", 0);
    static heap_trace_record_t records[16];
    assert_int_equal(heap_trace_init_standalone(records, 16), ESP_OK);
    assert_int_equal(heap_trace_start(HEAP_TRACE_LEAKS), ESP_OK);
    void *kept = user_malloc();
    char *dup = strdup("leak");
    free(malloc(10));
    void *zeroed = user_calloc();
    assert_int_equal(heap_trace_stop(), ESP_OK);
    assert_int_equal(heap_trace_get_count(), 3);
    heap_trace_record_t r;
    assert_int_equal(heap_trace_get(0, &r), ESP_OK);
    assert_ptr_equal(r.address, kept);
    assert_int_equal(r.size, 40);
#if CAPHEAP_TRACE_STACK_DEPTH > 0
    if (!ct_site_within((uintptr_t)r.alloced_by[0], (uintptr_t)user_malloc, (uintptr_t)sink))
        fail_msg("alloced_by[0] = %p, expected in user_malloc from %p", r.alloced_by[0], (void *)(uintptr_t)user_malloc);
#endif
    assert_int_equal(heap_trace_get(1, &r), ESP_OK);
    assert_ptr_equal(r.address, dup);
    assert_int_equal(heap_trace_get(2, &r), ESP_OK);
    assert_ptr_equal(r.address, zeroed);
#if CAPHEAP_TRACE_STACK_DEPTH > 0
    if (!ct_site_within((uintptr_t)r.alloced_by[0], (uintptr_t)user_calloc, (uintptr_t)calloc_sink))
        fail_msg("calloc: alloced_by[0] = %p, expected in user_calloc from %p", r.alloced_by[0],
                 (void *)(uintptr_t)user_calloc);
#endif
    free(zeroed);
    free(kept);
    free(dup);
    assert_int_equal(heap_trace_init_standalone(NULL, 0), ESP_OK);
#else
    skip();
#endif
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_host_allocator_before_boot, shutdown_sim),
        cmocka_unit_test_teardown(test_malloc_family_in_the_chip, shutdown_sim),
        cmocka_unit_test_teardown(test_out_of_memory_is_the_chips, shutdown_sim),
        cmocka_unit_test_teardown(test_blocks_cross_between_the_apis, shutdown_sim),
        cmocka_unit_test_teardown(test_reallocarray, shutdown_sim),
        cmocka_unit_test_teardown(test_getline_and_getdelim, shutdown_sim),
        cmocka_unit_test_teardown(test_getline_out_of_memory, shutdown_sim),
        cmocka_unit_test_teardown(test_after_shutdown_is_reported, shutdown_sim),
        cmocka_unit_test_teardown(test_host_blocks_after_shutdown_are_the_hosts, shutdown_sim),
        cmocka_unit_test_teardown(test_free_takes_an_iram_alias, shutdown_sim),
        cmocka_unit_test_teardown(test_tracing_sees_malloc, shutdown_sim),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
