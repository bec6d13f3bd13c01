/*
 * test_trace_off.c - a build without CAPHEAP_TRACING: the tracing API still
 * links and every function answers ESP_ERR_NOT_SUPPORTED (0 records, silent
 * dumps), as ESP-IDF's header promises and its implementation does not keep.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "esp_heap_trace.h"
#include "support.h"

static void test_everything_not_supported(void **state)
{
    (void)state;
    static heap_trace_record_t records[4];
    heap_trace_record_t r;
    heap_trace_summary_t s;
    assert_int_equal(CAPHEAP_TRACING, 0);
    assert_int_equal(heap_trace_init_standalone(records, 4), ESP_ERR_NOT_SUPPORTED);
    assert_int_equal(heap_trace_init_tohost(), ESP_ERR_NOT_SUPPORTED);
    assert_int_equal(heap_trace_start(HEAP_TRACE_LEAKS), ESP_ERR_NOT_SUPPORTED);
    assert_int_equal(heap_trace_alloc_pause(), ESP_ERR_NOT_SUPPORTED);
    assert_int_equal(heap_trace_resume(), ESP_ERR_NOT_SUPPORTED);
    assert_int_equal(heap_trace_stop(), ESP_ERR_NOT_SUPPORTED);
    assert_int_equal(heap_trace_get_count(), 0);
    assert_int_equal(heap_trace_get(0, &r), ESP_ERR_NOT_SUPPORTED);
    assert_int_equal(heap_trace_summary(&s), ESP_ERR_NOT_SUPPORTED);
    ct_capture_begin();
    heap_trace_dump();
    heap_trace_dump_caps(0);
    ct_capture_end();
    assert_int_equal(ct_capture_len(), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_everything_not_supported),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
