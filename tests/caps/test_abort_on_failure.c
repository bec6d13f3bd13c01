/*
 * test_abort_on_failure.c - CAPHEAP_ABORT_WHEN_ALLOCATION_FAILS (ESP-IDF's
 * CONFIG_HEAP_ABORT_WHEN_ALLOCATION_FAILS): after the failure callback, a
 * failed allocation aborts through the port with ESP-IDF's 47-character
 * message "Mem alloc fail. size 0x%08x caps 0x%08x". Without the option the
 * same failure returns NULL and only calls the callback.
 *
 * CI builds the option in a separate configuration and runs only this test
 * there (every other test expects failures to return NULL).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "capheap/caps.h"
#include "esp_heap_caps.h"
#include "support.h"

static _Alignas(16) unsigned char region[16 * 1024];
static int callback_calls;

static void on_failure(size_t size, uint32_t caps, const char *fn)
{
    (void)size;
    (void)caps;
    (void)fn;
    callback_calls++;
}

static void test_failure(void **state)
{
    (void)state;
    const uint32_t caps[3] = {MALLOC_CAP_DEFAULT | MALLOC_CAP_8BIT, 0, 0};
    assert_int_equal(capheap_caps_add_region(caps, (intptr_t)region, (intptr_t)(region + sizeof region), NULL),
                     ESP_OK);
    assert_int_equal(heap_caps_register_failed_alloc_callback(on_failure), ESP_OK);
    bool aborted;
    void *p = (void *)1;
    ct_capture_begin();
    CT_CATCH_ABORT(aborted, p = heap_caps_malloc(0x12345, MALLOC_CAP_DEFAULT));
    ct_capture_end();
    assert_int_equal(callback_calls, 1); /* the callback runs first */
#if CAPHEAP_ABORT_WHEN_ALLOCATION_FAILS
    assert_true(aborted);
    assert_true(ct_capture_contains("Mem alloc fail. size 0x00012345 caps 0x00001000"));
    assert_string_equal(ct_abort_reason(), "Mem alloc fail. size 0x00012345 caps 0x00001000");
#else
    assert_false(aborted);
    assert_null(p);
#endif
    /* Zero-size requests and bad alignments are not failures: no abort. */
    CT_CATCH_ABORT(aborted, p = heap_caps_malloc(0, MALLOC_CAP_DEFAULT));
    assert_false(aborted);
    assert_null(p);
    CT_CATCH_ABORT(aborted, p = heap_caps_aligned_alloc(3, 16, MALLOC_CAP_DEFAULT));
    assert_false(aborted);
    assert_null(p);
    assert_int_equal(callback_calls, 1);
    capheap_caps_reset();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_failure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
