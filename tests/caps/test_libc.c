/*
 * test_libc.c - the libc glue (src/caps/libc.c) that CAPHEAP_LIBC_MALLOC builds
 * into a firmware: malloc and friends through heap_caps' _default policy.
 *
 * The host keeps its own malloc: the file is compiled here once more with
 * CAPHEAP_LIBC_PREFIX, which renames every function (capheap_libc_malloc, ...).
 * The heaps come from a simulated ESP32-S3 with PSRAM, so the policy
 * (internal RAM up to 16 KiB, PSRAM above) is visible in the addresses.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#define CAPHEAP_LIBC_PREFIX capheap_libc_
#define CAPHEAP_LIBC_TEST_REENT 1 /* newlib's _malloc_r family too, with a stand-in struct _reent */
#include "../../src/caps/libc.c"

#include "capheap/caps.h"
#include "capheap/chip.h"
#include "capheap/sim.h"

static bool in_caps(const void *p, uint32_t caps)
{
    capheap_heap_desc_t d;
    int i = capheap_heap_find(p);
    if (i < 0 || !capheap_heap_get((size_t)i, &d))
        return false;
    return ((d.caps[0] | d.caps[1] | d.caps[2]) & caps) == caps;
}

static int boot(void **state)
{
    (void)state;
    capheap_sim_options_t o = CAPHEAP_SIM_OPTIONS_DEFAULT;
    o.quiet = true;
    o.psram_bytes = 4u << 20;
    return capheap_sim_boot(&capheap_chip_esp32s3, &o) == ESP_OK ? 0 : -1;
}

static int shutdown(void **state)
{
    (void)state;
    return capheap_sim_shutdown() == ESP_OK ? 0 : -1;
}

static void test_default_policy(void **state)
{
    (void)state;
    void *small = capheap_libc_malloc(100);
    void *big = capheap_libc_malloc(64 * 1024);
    assert_non_null(small);
    assert_non_null(big);
    assert_true(in_caps(small, MALLOC_CAP_INTERNAL));
    assert_true(in_caps(big, MALLOC_CAP_SPIRAM));
    assert_true(capheap_libc_malloc_usable_size(small) >= 100);
    assert_int_equal(capheap_libc_malloc_usable_size(NULL), 0);
    /* realloc across the limit moves to PSRAM and keeps the bytes */
    memset(small, 0x5A, 100);
    void *grown = capheap_libc_realloc(small, 32 * 1024);
    assert_non_null(grown);
    assert_true(in_caps(grown, MALLOC_CAP_SPIRAM));
    for (size_t i = 0; i < 100; i++)
        assert_int_equal(((unsigned char *)grown)[i], 0x5A);
    capheap_libc_free(grown);
    capheap_libc_free(big);
    capheap_libc_free(NULL);
    assert_null(capheap_libc_realloc(capheap_libc_malloc(8), 0));
    assert_true(heap_caps_check_integrity_all(true));
}

static unsigned failed_calls;
static size_t failed_size;
static const char *failed_fn;

static void on_failed(size_t size, uint32_t caps, const char *fn)
{
    (void)caps;
    failed_calls++;
    failed_size = size;
    failed_fn = fn;
}

static void test_zeroed(void **state)
{
    (void)state;
    unsigned char *p = capheap_libc_calloc(10, 100);
    assert_non_null(p);
    for (size_t i = 0; i < 1000; i++)
        assert_int_equal(p[i], 0);
    capheap_libc_free(p);
    errno = 0;
    assert_null(capheap_libc_calloc(SIZE_MAX / 2, 3));
    assert_int_equal(errno, ENOMEM);
    /* A product that does not overflow (SIZE_MAX itself) is a request like any
     * other, as in ESP-IDF's glue: heap_caps_malloc_default fails it and calls
     * the failure callback with that size; an overflowing one calls nothing. */
    failed_calls = 0;
    assert_int_equal(heap_caps_register_failed_alloc_callback(on_failed), ESP_OK);
    volatile size_t all = SIZE_MAX; /* not a constant: gcc would warn of the inlined memset's bound */
    assert_null(capheap_libc_calloc(all, 1));
    assert_int_equal(failed_calls, 1);
    assert_int_equal(failed_size, SIZE_MAX);
    assert_string_equal(failed_fn, "heap_caps_malloc_default");
    assert_null(capheap_libc_calloc(1, all));
    assert_int_equal(failed_calls, 2);
    assert_int_equal(failed_size, SIZE_MAX);
    assert_null(capheap_libc_calloc(SIZE_MAX / 2 + 1, 2));
    assert_int_equal(failed_calls, 2);
}

static void test_memalign(void **state)
{
    (void)state;
    void *p = capheap_libc_memalign(64, 100);
    void *q = capheap_libc_aligned_alloc(256, 512);
    assert_non_null(p);
    assert_non_null(q);
    assert_int_equal((uintptr_t)p % 64, 0);
    assert_int_equal((uintptr_t)q % 256, 0);
    capheap_libc_free(p);
    capheap_libc_free(q);
    assert_null(capheap_libc_memalign(24, 100)); /* not a power of two */

    void *out = (void *)1;
    assert_int_equal(capheap_libc_posix_memalign(&out, 3, 16), EINVAL);
    assert_ptr_equal(out, (void *)1); /* untouched on error */
    assert_int_equal(capheap_libc_posix_memalign(&out, 2, 16), EINVAL); /* below sizeof(void *) */
    assert_int_equal(capheap_libc_posix_memalign(&out, 32, 0), 0);
    assert_null(out);
    assert_int_equal(capheap_libc_posix_memalign(&out, 32, 40), 0);
    assert_non_null(out);
    assert_int_equal((uintptr_t)out % 32, 0);
    capheap_libc_free(out);
    assert_int_equal(capheap_libc_posix_memalign(&out, 32, SIZE_MAX / 2), ENOMEM);
    assert_true(heap_caps_check_integrity_all(true));
}

/* newlib's reentrant entry points (what strdup and stdio call) are the same
 * policy; scripts/check_libc_glue.sh checks that a newlib firmware links them. */
static void test_newlib_reentrant(void **state)
{
    (void)state;
    struct _reent *r = NULL; /* ignored, as in ESP-IDF's glue */
    unsigned char *p = capheap_libc__malloc_r(r, 100);
    assert_non_null(p);
    assert_true(in_caps(p, MALLOC_CAP_INTERNAL));
    assert_true(capheap_libc__malloc_usable_size_r(r, p) >= 100);
    memset(p, 0x5A, 100);
    unsigned char *q = capheap_libc__realloc_r(r, p, 64 * 1024); /* above the 16 KiB limit: PSRAM */
    assert_non_null(q);
    assert_true(in_caps(q, MALLOC_CAP_SPIRAM));
    for (size_t i = 0; i < 100; i++) {
        assert_int_equal(q[i], 0x5A);
    }
    capheap_libc__free_r(r, q);
    unsigned char *z = capheap_libc__calloc_r(r, 16, 16);
    assert_non_null(z);
    for (size_t i = 0; i < 256; i++) {
        assert_int_equal(z[i], 0);
    }
    capheap_libc__free_r(r, z);
    errno = 0;
    assert_null(capheap_libc__calloc_r(r, SIZE_MAX / 2u, 4));
    assert_int_equal(errno, ENOMEM);
    void *a = capheap_libc__memalign_r(r, 256, 10);
    assert_non_null(a);
    assert_int_equal((uintptr_t)a % 256u, 0);
    capheap_libc__free_r(r, a);
    capheap_libc__free_r(r, NULL);
    assert_true(heap_caps_check_integrity_all(true));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_default_policy, boot, shutdown),
        cmocka_unit_test_setup_teardown(test_zeroed, boot, shutdown),
        cmocka_unit_test_setup_teardown(test_memalign, boot, shutdown),
        cmocka_unit_test_setup_teardown(test_newlib_reentrant, boot, shutdown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
