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
#include "capheap/check.h"
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

/* heap_caps_free(p), expected to be reported: true if it was, its report
 * and the block's description captured (-Os builds without debugging
 * features describe nothing themselves: asked here). */
static bool free_reported(void *p)
{
    bool aborted;
    ct_capture_begin();
    CT_CATCH_ABORT(aborted, heap_caps_free(p));
    if (!AUTOMATIC)
        capheap_describe_block(p);
    ct_capture_end();
    return aborted;
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
    assert_true(free_reported(b));
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

/* Several findings in one check: the description names the block of the
 * first (the root cause, more often than the last), not of the last (it
 * followed the last report until an audit noted it). Two free blocks with
 * smashed footers: the walk finds the lower one first. */
static void test_check_names_the_first_finding(void **state)
{
    (void)state;
    setup_heap();
    void *blocks[5];
    for (size_t i = 0; i < 5; i++) {
        blocks[i] = heap_caps_malloc(48, MALLOC_CAP_DEFAULT);
        assert_non_null(blocks[i]);
    }
    void *f1 = blocks[1], *f2 = blocks[3];
    heap_caps_free(f2); /* in this order the list walk, after the physical one, */
    heap_caps_free(f1); /* finds f1's footer again first and f2's last */
    /* a free block's footer is the word before its successor's header */
    unsigned char *foot1 = (unsigned char *)blocks[2] - ct_poison_head(4) - 8;
    unsigned char *foot2 = (unsigned char *)blocks[4] - ct_poison_head(4) - 8;
    uint32_t saved1 = ct_get32(foot1), saved2 = ct_get32(foot2);
    ct_put32(foot1, saved1 ^ 0x5a5a0000u);
    ct_put32(foot2, saved2 ^ 0x5a5a0000u);
    capheap_clear_last_report();
    ct_capture_begin();
    bool ok = heap_caps_check_integrity_all(true);
    ct_capture_end();
    assert_false(ok);
    assert_true(capheap_last_report().address == foot2); /* found again by the list walk: f2 last */
    assert_int_equal(ct_capture_lines() >= 2, 1);
    assert_true(has_line("block", f1, "free"));
    assert_false(has_line("block", f2, "free"));
    /* heap_caps_check_integrity(caps) and _addr go through the same helper */
    ct_capture_begin();
    ok = heap_caps_check_integrity(MALLOC_CAP_DEFAULT, true);
    ct_capture_end();
    assert_false(ok);
    assert_true(has_line("block", f1, "free"));
    /* and the incremental check, one step over the whole heap (a review
     * found it still describing the last finding) */
    capheap_check_cursor_t cursor;
    capheap_check_cursor_init(&cursor);
    ct_capture_begin();
    ok = capheap_check_step(&cursor, 100000, true);
    ct_capture_end();
    assert_false(ok);
    assert_true(has_line("block", f1, "free"));
    assert_false(has_line("block", f2, "free"));
    ct_put32(foot1, saved1);
    ct_put32(foot2, saved2);
    assert_true(heap_caps_check_integrity_all(true));
    heap_caps_free(blocks[0]);
    heap_caps_free(blocks[2]);
    heap_caps_free(blocks[4]);
    teardown_heap();
}

#if CT_POISONING
/* An overflow found at free (poisoning's tail canary): the block is still
 * the program's, so its description names what the trackers know of it. Its
 * trace record was already released by then (the free is recorded first, in
 * ESP-IDF's order): the description names it all the same, from the copy the
 * tracer keeps of the record each thread's free released last (it printed no
 * time stamp and no caller before). */
static void test_overflow_found_at_free_names_the_allocation(void **state)
{
    (void)state;
    setup_heap();
    void *a = heap_caps_malloc(40, MALLOC_CAP_DEFAULT);
    unsigned char *b = heap_caps_malloc(100, MALLOC_CAP_DEFAULT);
    assert_non_null(a);
    assert_non_null(b);
    /* the tail canary, right past the request (an ASan build would stop a
     * plain store there: the canary is poisoned for it) */
    uint32_t tail = ct_get32(b + 100);
    ct_put32(b + 100, tail ^ 0x5a);
    assert_true(free_reported(b));
    assert_true(ct_capture_contains("CORRUPT HEAP: Bad tail"));
    assert_true(has_line("block", b, "used"));
#if CAPHEAP_TRACING
    char want[128];
    snprintf(want, sizeof want, "  block %s: used, ", addr_text(b - ct_poison_head(4)));
    const char *line = strstr(ct_capture_text(), want);
    assert_non_null(line);
    const char *end = strchr(line, '\n');
    assert_non_null(end);
    const char *cc = strstr(line, "ccount 0x");
    if (cc == NULL || cc > end) {
        fail_msg("the block's line names no allocation:\n%s", ct_capture_text());
    }
#if CAPHEAP_TRACE_STACK_DEPTH > 0
    const char *caller = strstr(line, "caller 0x");
    assert_true(caller != NULL && caller < end);
#endif
#endif
    ct_put32(b + 100, tail);
    heap_caps_free(b);
#if CAPHEAP_TRACING
    /* An accepted free leaves no copy behind: a block allocated at that
     * address untraced (tracing stopped) is described without a record, not
     * with the freed one's. */
    unsigned char *c = heap_caps_malloc(100, MALLOC_CAP_DEFAULT);
    assert_ptr_equal(c, b); /* the free block's own class head: the same address */
    heap_caps_free(c);
    assert_int_equal(heap_trace_stop(), ESP_OK);
    c = heap_caps_malloc(100, MALLOC_CAP_DEFAULT);
    assert_ptr_equal(c, b);
    ct_capture_begin();
    capheap_describe_block(c);
    ct_capture_end();
    assert_true(has_line("block", c, "used"));
    line = strstr(ct_capture_text(), want); /* the same block line as above */
    assert_non_null(line);
    end = strchr(line, '\n');
    cc = strstr(line, "ccount");
    if (cc != NULL && cc < end) {
        fail_msg("an untraced block described with a freed block's record:\n%s", ct_capture_text());
    }
    heap_caps_free(c);
    assert_int_equal(heap_trace_start(HEAP_TRACE_ALL), ESP_OK);
#endif
    heap_caps_free(a);
    assert_true(heap_caps_check_integrity_all(true));
    teardown_heap();
}
#endif

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_double_free_names_neighbours),
        cmocka_unit_test(test_check_names_the_block),
        cmocka_unit_test(test_check_names_the_first_finding),
#if CT_POISONING
        cmocka_unit_test(test_overflow_found_at_free_names_the_allocation),
#endif
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
