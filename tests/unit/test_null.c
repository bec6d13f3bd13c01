/*
 * test_null.c - a NULL heap handle is never dereferenced: allocators return
 * NULL, free is a no-op, queries return 0 / false / zeroed info, walk and
 * dump do nothing harmful. A valid heap's blocks are not touched by calls
 * made with a NULL handle.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "capheap/check.h"
#include "support.h"

static _Alignas(16) unsigned char region[8192];

static int walk_calls;
static bool walk_cb(void *b, size_t s, int u, void *user)
{
    (void)b;
    (void)s;
    (void)u;
    (void)user;
    walk_calls++;
    return true;
}

static void test_allocators_return_null(void **state)
{
    (void)state;
    assert_null(multi_heap_malloc(NULL, 1));
    assert_null(multi_heap_malloc(NULL, 100));
    assert_null(multi_heap_malloc(NULL, 0));
    assert_null(multi_heap_malloc(NULL, SIZE_MAX));
    assert_null(multi_heap_aligned_alloc(NULL, 100, 16));
    assert_null(multi_heap_aligned_alloc(NULL, 100, 3));
    assert_null(multi_heap_aligned_alloc_offs(NULL, 100, 16, 4));
    assert_null(multi_heap_realloc(NULL, NULL, 100));
    assert_null(multi_heap_realloc(NULL, NULL, 0));
}

static void test_queries_return_zero(void **state)
{
    (void)state;
    assert_int_equal(multi_heap_free_size(NULL), 0);
    assert_int_equal(multi_heap_minimum_free_size(NULL), 0);
    assert_int_equal(multi_heap_reset_minimum_free_bytes(NULL), 0);
    multi_heap_restore_minimum_free_bytes(NULL, 1234);
    assert_false(multi_heap_check(NULL, false));
    ct_capture_begin();
    assert_false(multi_heap_check(NULL, true));
    ct_capture_end();
    assert_int_equal(multi_heap_get_allocated_size(NULL, NULL), 0);
    assert_int_equal(multi_heap_get_full_block_size(NULL, NULL), 0);
    assert_null(multi_heap_find_containing_block(NULL, region));
    assert_null(multi_heap_find_containing_block(NULL, NULL));
    assert_int_equal(capheap_heap_alignment(NULL), 0);
    assert_int_equal(capheap_heap_overhead(NULL), 0);
    assert_int_equal(capheap_heap_largest_request(NULL, 4), 0);
    capheap_check_cursor_t cur;
    capheap_check_cursor_init(&cur);
    bool done = true;
    assert_false(capheap_heap_check_step(NULL, &cur, 10, false, &done));
    assert_false(done); /* not a finished pass */

    multi_heap_info_t info;
    memset(&info, 0x5a, sizeof info);
    multi_heap_get_info(NULL, &info);
    assert_int_equal(info.total_free_bytes, 0);
    assert_int_equal(info.total_allocated_bytes, 0);
    assert_int_equal(info.largest_free_block, 0);
    assert_int_equal(info.minimum_free_bytes, 0);
    assert_int_equal(info.allocated_blocks, 0);
    assert_int_equal(info.free_blocks, 0);
    assert_int_equal(info.total_blocks, 0);
    multi_heap_get_info(NULL, NULL);
}

static void test_walk_dump_lock_do_nothing(void **state)
{
    (void)state;
    walk_calls = 0;
    multi_heap_walk(NULL, walk_cb, NULL);
    multi_heap_walk(NULL, NULL, NULL);
    assert_int_equal(walk_calls, 0);
    ct_capture_begin();
    multi_heap_dump(NULL);
    ct_capture_end();
    assert_int_equal(ct_capture_count("Block "), 0);
    static int token;
    multi_heap_set_lock(NULL, &token);
}

/* Calls with a NULL handle and a real block leave the block alone. */
static void test_null_heap_with_real_block(void **state)
{
    (void)state;
    multi_heap_handle_t h = multi_heap_register(region, sizeof region);
    assert_non_null(h);
    unsigned char *p = multi_heap_malloc(h, 100);
    assert_non_null(p);
    ct_stamp(p, 100);
    size_t before = multi_heap_free_size(h);
    multi_heap_free(NULL, p);
    multi_heap_aligned_free(NULL, p);
    assert_null(multi_heap_realloc(NULL, p, 200));
    assert_null(multi_heap_realloc(NULL, p, 0));
    assert_int_equal(multi_heap_get_allocated_size(NULL, p), 0);
    assert_int_equal(multi_heap_get_full_block_size(NULL, p), 0);
    assert_null(multi_heap_find_containing_block(NULL, p));
    assert_int_equal(multi_heap_free_size(h), before);
    assert_true(ct_stamp_ok(p, 100));
    assert_ptr_equal(multi_heap_find_containing_block(h, p), p);
    assert_true(multi_heap_check(h, false));
    multi_heap_free(h, p);
    assert_true(multi_heap_check(h, false));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_allocators_return_null),
        cmocka_unit_test(test_queries_return_zero),
        cmocka_unit_test(test_walk_dump_lock_do_nothing),
        cmocka_unit_test(test_null_heap_with_real_block),
    };
    return cmocka_run_group_tests_name("null", tests, NULL, NULL);
}
