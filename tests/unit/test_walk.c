/*
 * test_walk.c - multi_heap_walk(), multi_heap_find_containing_block() and
 * multi_heap_dump(): address order, raw sizes, early stop, and the dump's
 * text matching the walk line by line.
 */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "support.h"

#define REGION_BYTES (16u * 1024u)
static _Alignas(16) unsigned char region[REGION_BYTES];
static _Alignas(16) unsigned char elsewhere[256];

typedef struct {
    unsigned char *ptr;
    size_t size;
    int used;
} entry_t;

typedef struct {
    entry_t e[256];
    size_t n;
    size_t stop_after; /* 0: never stop */
    void *expect_user;
    bool user_ok;
} collect_t;

static bool collect_cb(void *block_ptr, size_t block_size, int block_used, void *user_data)
{
    collect_t *c = user_data;
    if (c->expect_user && user_data != c->expect_user) {
        c->user_ok = false;
    }
    assert_true(c->n < 256);
    c->e[c->n++] = (entry_t){block_ptr, block_size, block_used};
    return !(c->stop_after && c->n >= c->stop_after);
}

static multi_heap_handle_t fresh(void)
{
    multi_heap_handle_t h = multi_heap_register(region, REGION_BYTES);
    assert_non_null(h);
    return h;
}

static void test_walk_fresh(void **state)
{
    (void)state;
    multi_heap_handle_t h = fresh();
    static collect_t c;
    memset(&c, 0, sizeof c);
    multi_heap_walk(h, collect_cb, &c);
    assert_int_equal(c.n, 1);
    assert_false(c.e[0].used);
    assert_int_equal(c.e[0].size + CT_BLOCK_HEADER, REGION_BYTES - capheap_heap_overhead(h));
    assert_true(c.e[0].ptr > region && c.e[0].ptr + c.e[0].size <= region + REGION_BYTES);
}

/* Every block once, in address order, tiling the pool, with raw sizes. */
static void test_walk_order_and_sizes(void **state)
{
    (void)state;
    multi_heap_handle_t h = fresh();
    static const size_t lens[] = {10, 100, 33, 500, 1, 64, 7};
    void *p[7];
    for (int i = 0; i < 7; i++) {
        p[i] = multi_heap_malloc(h, lens[i]);
        assert_non_null(p[i]);
    }
    multi_heap_free(h, p[1]);
    multi_heap_free(h, p[3]);
    p[1] = p[3] = NULL;

    static collect_t c;
    memset(&c, 0, sizeof c);
    c.expect_user = &c;
    c.user_ok = true;
    multi_heap_walk(h, collect_cb, &c);
    assert_true(c.user_ok);
    size_t used = 0, freeb = 0, total = 0;
    for (size_t i = 0; i < c.n; i++) {
        if (i > 0) {
            /* next block starts right after the previous one's header + data */
            assert_ptr_equal(c.e[i].ptr, c.e[i - 1].ptr + c.e[i - 1].size + CT_BLOCK_HEADER);
            assert_false(!c.e[i].used && !c.e[i - 1].used);
        }
        assert_true(c.e[i].size >= CT_MIN_CAPACITY);
        total += c.e[i].size + CT_BLOCK_HEADER;
        if (c.e[i].used) {
            used++;
        } else {
            freeb++;
        }
    }
    assert_int_equal(total, REGION_BYTES - capheap_heap_overhead(h));
    assert_int_equal(used, 5);
    assert_int_equal(freeb, 3); /* two holes and the remainder */
    /* Each live block appears exactly once, with its raw pointer and size. */
    for (int i = 0; i < 7; i++) {
        if (!p[i]) {
            continue;
        }
        unsigned char *raw = (unsigned char *)p[i] - ct_poison_head(4);
        size_t seen = 0;
        for (size_t k = 0; k < c.n; k++) {
            if (c.e[k].ptr == raw) {
                seen++;
                assert_true(c.e[k].used);
                assert_int_equal(c.e[k].size, multi_heap_get_full_block_size(h, p[i]));
            }
        }
        assert_int_equal(seen, 1);
    }
}

static void test_walk_early_stop(void **state)
{
    (void)state;
    multi_heap_handle_t h = fresh();
    for (int i = 0; i < 6; i++) {
        assert_non_null(multi_heap_malloc(h, 20));
    }
    for (size_t stop = 1; stop <= 7; stop++) {
        static collect_t c;
        memset(&c, 0, sizeof c);
        c.stop_after = stop;
        multi_heap_walk(h, collect_cb, &c);
        assert_int_equal(c.n, stop);
    }
}

static void test_walk_null_callback(void **state)
{
    (void)state;
    multi_heap_handle_t h = fresh();
    assert_non_null(multi_heap_malloc(h, 20));
    multi_heap_walk(h, NULL, NULL);
    multi_heap_walk(h, NULL, region);
    assert_true(multi_heap_check(h, false));
}

/* find_containing_block: first, middle and last byte of used blocks. */
static void test_find_containing_block(void **state)
{
    (void)state;
    multi_heap_handle_t h = fresh();
    static const size_t lens[] = {1, 13, 100, 1000, 12, 16};
    unsigned char *p[6];
    for (int i = 0; i < 6; i++) {
        p[i] = multi_heap_malloc(h, lens[i]);
        assert_non_null(p[i]);
    }
    unsigned char *al = multi_heap_aligned_alloc(h, 300, 512);
    assert_non_null(al);
    for (int i = 0; i < 6; i++) {
        size_t usable = multi_heap_get_allocated_size(h, p[i]);
        assert_ptr_equal(multi_heap_find_containing_block(h, p[i]), p[i]);
        assert_ptr_equal(multi_heap_find_containing_block(h, p[i] + lens[i] / 2), p[i]);
        assert_ptr_equal(multi_heap_find_containing_block(h, p[i] + lens[i] - 1), p[i]);
        assert_ptr_equal(multi_heap_find_containing_block(h, p[i] + usable - 1), p[i]);
    }
    assert_ptr_equal(multi_heap_find_containing_block(h, al), al);
    assert_ptr_equal(multi_heap_find_containing_block(h, al + 299), al);

    /* A freed block contains nothing. */
    size_t usable3 = multi_heap_get_allocated_size(h, p[3]);
    multi_heap_free(h, p[3]);
    assert_null(multi_heap_find_containing_block(h, p[3]));
    assert_null(multi_heap_find_containing_block(h, p[3] + usable3 / 2));
    assert_null(multi_heap_find_containing_block(h, p[3] + usable3 - 1));

    /* Free blocks (the hole and the remainder), the handle, other memory, NULL. */
    static collect_t c;
    memset(&c, 0, sizeof c);
    multi_heap_walk(h, collect_cb, &c);
    size_t free_seen = 0;
    for (size_t k = 0; k < c.n; k++) {
        if (!c.e[k].used) {
            free_seen++;
            assert_null(multi_heap_find_containing_block(h, c.e[k].ptr));
            assert_null(multi_heap_find_containing_block(h, c.e[k].ptr + c.e[k].size / 2));
            assert_null(multi_heap_find_containing_block(h, c.e[k].ptr + c.e[k].size - 1));
        }
    }
    assert_true(free_seen >= 2);
    assert_null(multi_heap_find_containing_block(h, (void *)h));
    assert_null(multi_heap_find_containing_block(h, region));
    assert_null(multi_heap_find_containing_block(h, elsewhere));
    assert_null(multi_heap_find_containing_block(h, elsewhere + 100));
    assert_null(multi_heap_find_containing_block(h, NULL));
}

/*
 * A block's header belongs to no block's data: every byte of the header
 * after a used block (the next block's, or the end marker) and of the header
 * in front of it is in no used block, so find_containing_block says NULL;
 * the last byte of the block's data is the block's.
 */
static void test_find_containing_block_headers(void **state)
{
    (void)state;
    multi_heap_handle_t h = fresh();
    static const size_t lens[] = {1, 12, 13, 100, 64};
    unsigned char *p[5];
    for (int i = 0; i < 5; i++) {
        p[i] = multi_heap_malloc(h, lens[i]);
        assert_non_null(p[i]);
    }
    multi_heap_free(h, p[2]); /* a free block between used ones */
    static collect_t c;
    memset(&c, 0, sizeof c);
    multi_heap_walk(h, collect_cb, &c);
    size_t used_seen = 0;
    for (size_t k = 0; k < c.n; k++) {
        if (!c.e[k].used) {
            continue;
        }
        used_seen++;
        unsigned char *user = c.e[k].ptr + ct_poison_head(4);
        unsigned char *next_header = c.e[k].ptr + c.e[k].size; /* the next block's, or the end marker */
        assert_ptr_equal(multi_heap_find_containing_block(h, next_header - 1), user);
        for (size_t b = 0; b < CT_BLOCK_HEADER; b++) {
            assert_null(multi_heap_find_containing_block(h, next_header + b));
            assert_null(multi_heap_find_containing_block(h, c.e[k].ptr - CT_BLOCK_HEADER + b));
        }
    }
    assert_int_equal(used_seen, 4);
}

/* Parse a hex pointer as printed ("0x..." or bare hex). */
static uintptr_t parse_ptr(const char *s, const char **end)
{
    char *e = NULL;
    unsigned long long v = strtoull(s, &e, 16);
    *end = e;
    return (uintptr_t)v;
}

/* The dump: a header line naming the handle, then one line per block as walked. */
static void test_dump_format(void **state)
{
    (void)state;
    multi_heap_handle_t h = fresh();
    void *a = multi_heap_malloc(h, 40);
    void *b = multi_heap_malloc(h, 200);
    void *c = multi_heap_malloc(h, 3);
    assert_non_null(a);
    assert_non_null(c);
    multi_heap_free(h, b);

    static collect_t w;
    memset(&w, 0, sizeof w);
    multi_heap_walk(h, collect_cb, &w);

    ct_capture_begin();
    multi_heap_dump(h);
    ct_capture_end();
    assert_int_equal(ct_capture_lines(), 1 + w.n);

    char line[256];
    assert_true(ct_capture_line(0, line, sizeof line));
    static const char head[] = "Showing data for heap: ";
    assert_memory_equal(line, head, sizeof head - 1);
    const char *end;
    assert_int_equal(parse_ptr(line + sizeof head - 1, &end), (uintptr_t)h);

    for (size_t i = 0; i < w.n; i++) {
        assert_true(ct_capture_line(1 + i, line, sizeof line));
        static const char blk[] = "Block ";
        assert_memory_equal(line, blk, sizeof blk - 1);
        uintptr_t ptr = parse_ptr(line + sizeof blk - 1, &end);
        assert_int_equal(ptr, (uintptr_t)w.e[i].ptr);
        size_t size = 0;
        char yesno[8] = {0};
        assert_int_equal(sscanf(end, " data, size: %zu bytes, Free: %7s", &size, yesno), 2);
        assert_int_equal(size, w.e[i].size);
        assert_string_equal(yesno, w.e[i].used ? "No" : "Yes");
    }
    /* Dumping changes nothing. */
    assert_true(multi_heap_check(h, false));
}

/* The dump of a fresh heap is two lines. */
static void test_dump_fresh(void **state)
{
    (void)state;
    multi_heap_handle_t h = fresh();
    ct_capture_begin();
    multi_heap_dump(h);
    ct_capture_end();
    assert_int_equal(ct_capture_lines(), 2);
    assert_int_equal(ct_capture_count("Free: Yes"), 1);
    assert_int_equal(ct_capture_count("Free: No"), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_walk_fresh),
        cmocka_unit_test(test_walk_order_and_sizes),
        cmocka_unit_test(test_walk_early_stop),
        cmocka_unit_test(test_walk_null_callback),
        cmocka_unit_test(test_find_containing_block),
        cmocka_unit_test(test_find_containing_block_headers),
        cmocka_unit_test(test_dump_format),
        cmocka_unit_test(test_dump_fresh),
    };
    return cmocka_run_group_tests_name("walk", tests, NULL, NULL);
}
