/*
 * test_owner_report.c - corruption reports that name owners.
 *
 * A double free in a heap_caps heap is reported, and before the abort the
 * report names the damaged block and both physical neighbours (used or free,
 * capacity) and, in builds with heap tracing or task tracking, what those
 * know: the allocation's time stamp and callers, the owning task. A failing
 * heap_caps_check_integrity_all(true) names the block the same way.
 * (-Os builds without debugging features leave the automatic description
 * out; the test then calls capheap_describe_block() itself.)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "capheap/caps.h"
#include "capheap/report.h"
#include "esp_heap_caps.h"
#include "esp_heap_trace.h"
#include "support.h"

#if !defined(__OPTIMIZE_SIZE__) || CAPHEAP_TRACING || CAPHEAP_TASK_TRACKING
#define AUTOMATIC 1
#else
#define AUTOMATIC 0
#endif

static _Alignas(16) unsigned char region[8 * 1024];
#if CAPHEAP_TRACING
static heap_trace_record_t records[16];
#endif

static const char *addr_text(const void *p)
{
    static char text[4][32];
    static int k;
    k = (k + 1) % 4;
    snprintf(text[k], sizeof text[k], "%p", p);
    return text[k];
}

static void setup_heap(void)
{
    const uint32_t caps[3] = {MALLOC_CAP_DEFAULT | MALLOC_CAP_8BIT, 0, 0};
    assert_int_equal(capheap_caps_add_region(caps, (intptr_t)region, (intptr_t)(region + sizeof region), NULL),
                     ESP_OK);
#if CAPHEAP_TRACING
    assert_int_equal(heap_trace_init_standalone(records, 16), ESP_OK);
    assert_int_equal(heap_trace_start(HEAP_TRACE_ALL), ESP_OK);
#endif
}

static void teardown_heap(void)
{
#if CAPHEAP_TRACING
    (void)heap_trace_stop();
#endif
    capheap_caps_reset();
}

/* The line of the captured text that starts with "  <label> <block of p>". */
static bool has_line(const char *label, const void *user, const char *state)
{
    char want[96];
    const uint8_t *block = (const uint8_t *)user - ct_poison_head(4);
    snprintf(want, sizeof want, "  %s %s: %s, ", label, addr_text(block), state);
    return ct_capture_contains(want);
}

static void test_double_free_names_neighbours(void **state)
{
    (void)state;
    setup_heap();
    void *a = heap_caps_malloc(40, MALLOC_CAP_DEFAULT);
    void *b = heap_caps_malloc(100, MALLOC_CAP_DEFAULT);
    void *c = heap_caps_malloc(60, MALLOC_CAP_DEFAULT);
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(c);
    assert_true((uintptr_t)a < (uintptr_t)b && (uintptr_t)b < (uintptr_t)c); /* a fresh heap fills upwards */
    heap_caps_free(b);
    bool aborted;
    ct_capture_begin();
    CT_CATCH_ABORT(aborted, heap_caps_free(b));
    if (!AUTOMATIC)
        capheap_describe_block(b);
    ct_capture_end();
    assert_true(aborted);
    assert_true(ct_capture_contains("CORRUPT HEAP"));
    assert_true(has_line("block", b, "free"));
    assert_true(has_line("before", a, "used"));
    assert_true(has_line("after", c, "used"));
#if CAPHEAP_TASK_TRACKING
    assert_true(ct_capture_contains("task \""));
#endif
#if CAPHEAP_TRACING && CAPHEAP_TRACE_STACK_DEPTH > 0
    assert_true(ct_capture_contains("caller 0x"));
#endif
#if CAPHEAP_TRACING
    assert_true(ct_capture_contains("ccount 0x"));
#endif
    heap_caps_free(a);
    heap_caps_free(c);
    assert_true(heap_caps_check_integrity_all(true));
    teardown_heap();
}

static void test_check_names_the_block(void **state)
{
    (void)state;
    setup_heap();
    void *a = heap_caps_malloc(40, MALLOC_CAP_DEFAULT);
    void *b = heap_caps_malloc(100, MALLOC_CAP_DEFAULT);
    assert_non_null(a);
    assert_non_null(b);
    /* Smash b's header: its size field claims the block runs past the region. */
    unsigned char *header = (unsigned char *)b - ct_poison_head(4) - 4;
    uint32_t saved = ct_get32(header);
    ct_put32(header, 0x7ffffff0u);
    ct_capture_begin();
    bool ok = heap_caps_check_integrity_all(true);
    ct_capture_end();
    assert_false(ok);
    assert_true(ct_capture_contains("CORRUPT HEAP"));
    /* the walk cannot pass b's header: the block in front of it, a, is named
     * with what the trackers know of it (the block that ran over, most often) */
    assert_true(ct_capture_contains("  no block of heap"));
    assert_true(has_line("before", a, "used"));
#if CAPHEAP_TASK_TRACKING
    assert_true(ct_capture_contains("task \""));
#endif
#if CAPHEAP_TRACING
    assert_true(ct_capture_contains("ccount 0x"));
#endif
    /* heap_caps_check_integrity_addr() describes it the same way */
    ct_capture_begin();
    bool ok_addr = heap_caps_check_integrity_addr((intptr_t)a, true);
    ct_capture_end();
    assert_false(ok_addr);
    assert_true(has_line("before", a, "used"));
    /* Without print_errors the same checks answer false and print nothing, the
     * block's description included (a mutation test showed this unpinned). */
    ct_capture_begin();
    bool quiet_all = heap_caps_check_integrity_all(false);
    bool quiet_caps = heap_caps_check_integrity(MALLOC_CAP_DEFAULT, false);
    ct_capture_end();
    ct_put32(header, saved);
    assert_false(quiet_all);
    assert_false(quiet_caps);
    assert_int_equal(ct_capture_len(), 0);
    assert_true(heap_caps_check_integrity_all(true));
    heap_caps_free(a);
    heap_caps_free(b);
    teardown_heap();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_double_free_names_neighbours),
        cmocka_unit_test(test_check_names_the_block),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
