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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_default_policy, boot, shutdown),
        cmocka_unit_test_setup_teardown(test_zeroed, boot, shutdown),
        cmocka_unit_test_setup_teardown(test_memalign, boot, shutdown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
