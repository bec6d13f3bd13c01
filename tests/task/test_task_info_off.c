/*
 * tests/task/test_task_info_off.c - a build without CAPHEAP_TASK_TRACKING: the
 * per-task API (esp_heap_task_info.h, capheap/task_info.h) still links, and
 * every function says it is off as the header promises: ESP_ERR_NOT_SUPPORTED
 * (0 for heap_caps_get_per_task_info), one line from the print functions,
 * nothing written through the arguments, and the free functions empty
 * arrays the caller may hold.
 */
#define _GNU_SOURCE /* fmemopen */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "capheap/task_info.h"
#include "esp_heap_task_info.h"
#include "support.h"

#define OFF_LINE "heap task tracking is not built in (CAPHEAP_TASK_TRACKING=OFF)\n"

static void test_queries_not_supported(void **state)
{
    (void)state;
    assert_int_equal(CAPHEAP_TASK_TRACKING, 0);
    heap_task_totals_t totals[2];
    heap_task_block_t blocks[2];
    heap_task_info_params_t params;
    memset(&params, 0, sizeof params);
    params.totals = totals;
    params.max_totals = 2;
    params.blocks = blocks;
    params.max_blocks = 2;
    size_t num_totals = 77;
    params.num_totals = &num_totals;
    assert_int_equal(heap_caps_get_per_task_info(&params), 0);
    assert_int_equal(num_totals, 77); /* nothing written */
    assert_int_equal(heap_caps_get_per_task_info(NULL), 0);

    heap_single_task_stat_t one;
    memset(&one, 0x5a, sizeof one);
    assert_int_equal(heap_caps_get_single_task_stat(&one, NULL), ESP_ERR_NOT_SUPPORTED);
    assert_int_equal(heap_caps_alloc_single_task_stat_arrays(&one, NULL), ESP_ERR_NOT_SUPPORTED);
    heap_caps_free_single_task_stat_arrays(&one); /* arrays the caller may hold: none now */
    assert_int_equal(one.heap_count, 0);
    assert_int_equal(one.alloc_count, 0);
    assert_null(one.heap_stat_start);
    assert_null(one.alloc_stat_start);
    heap_caps_free_single_task_stat_arrays(NULL);

    heap_all_tasks_stat_t all;
    memset(&all, 0x5a, sizeof all);
    assert_int_equal(heap_caps_get_all_task_stat(&all), ESP_ERR_NOT_SUPPORTED);
    assert_int_equal(heap_caps_alloc_all_task_stat_arrays(&all), ESP_ERR_NOT_SUPPORTED);
    heap_caps_free_all_task_stat_arrays(&all);
    assert_int_equal(all.task_count, 0);
    assert_null(all.stat_arr);
    heap_caps_free_all_task_stat_arrays(NULL);

    capheap_task_tracking_stats_t st;
    memset(&st, 0x5a, sizeof st);
    assert_int_equal(capheap_task_tracking_get_stats(&st), ESP_ERR_NOT_SUPPORTED);
    assert_int_equal(st.tasks, 0);
    assert_int_equal(st.max_tasks, 0);
    assert_int_equal(capheap_task_tracking_get_stats(NULL), ESP_ERR_INVALID_ARG);
    capheap_task_deleted(NULL); /* nothing to do, nothing broken */
    capheap_task_tracking_reset();
}

static void test_prints_say_off(void **state)
{
    (void)state;
    void (*const to_stream[])(FILE *) = {heap_caps_print_all_task_stat, heap_caps_print_all_task_stat_overview};
    void (*const one_task[])(FILE *, TaskHandle_t) = {heap_caps_print_single_task_stat,
                                                      heap_caps_print_single_task_stat_overview};
    for (size_t i = 0; i < 4; i++) {
        static char buf[256];
        memset(buf, 0, sizeof buf);
        FILE *f = fmemopen(buf, sizeof buf, "w");
        assert_non_null(f);
        if (i < 2)
            to_stream[i](f);
        else
            one_task[i - 2](f, NULL);
        fclose(f);
        assert_string_equal(buf, OFF_LINE);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_queries_not_supported),
        cmocka_unit_test(test_prints_say_off),
    };
    return cmocka_run_group_tests_name("task_info_off", tests, NULL, NULL);
}
