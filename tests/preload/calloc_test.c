/*
 * calloc_test.c - calloc under libcapheap_malloc.so: zero bytes, and no
 * memory committed for pages the program does not touch.
 *
 *   LD_PRELOAD=build/preload/libcapheap_malloc.so build/tests/preload/preload_calloc_test
 *
 * A preload that wrote zeros over a whole calloc block committed every page
 * of it, for good (regions are never unmapped): calloc(1, 1 GiB) plus one
 * byte written cost 1 GiB of RSS where glibc's costs 1 MiB. So:
 *
 *   1. calloc(1, 256 MiB), one byte written: VmRSS grows by far less than
 *      256 MiB, and a byte of every page reads zero;
 *   2. the same memory partly dirtied first (malloc, memset 0xAB over runs
 *      of pages, free, calloc of the same size over the same bytes): every
 *      byte reads zero, and the untouched pages stay uncommitted;
 *   3. sizes around the threshold and unaligned ends (n * s not a page
 *      multiple, a block that does not start on a page): every byte zero
 *      after a dirty use of the same memory;
 *   4. pages in memory dirty only in their last byte: zeroed (the whole page
 *      is looked at), in place (they stay in memory, mincore).
 *
 * Under CAPHEAP_PRELOAD_POISONING=COMPREHENSIVE the engine fills all free
 * memory with 0xFE and checks it on malloc, which commits the pages whatever
 * calloc does: the RSS checks are skipped there (said on stdout), the zero
 * checks still run.
 *
 * Output is TAP-like, as api_test.c; the exit status is the number of
 * failures.
 */
#define _GNU_SOURCE

#include <dlfcn.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define MIB ((size_t)1 << 20)
#define BIG (256u * MIB)
/* RSS growth allowed for a 256 MiB calloc with one byte written: the engine's
 * headers, the region's first pages, stdio. The old calloc grew by 256 MiB. */
#define RSS_SLACK (16u * MIB)

#include "tap.h"

/* VmRSS in bytes; 0 if unreadable. */
static size_t rss(void)
{
    return proc_status_bytes("VmRSS");
}

/* Keep the compiler from folding calloc + reads (it knows calloc's bytes are 0). */
static unsigned char *volatile launder;
static unsigned char *laundered(void *p)
{
    launder = p;
    return launder;
}

/* Index of the first non-zero byte among n at p, or n. */
static size_t first_nonzero(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != 0)
            return i;
    return n;
}

/* One byte of each page (at an offset that moves from page to page), the
 * first and the last byte: zero? Reading an untouched page maps the shared
 * zero page, which commits nothing. */
static bool sampled_zero(const unsigned char *p, size_t n, size_t page, size_t *bad)
{
    for (size_t i = 0, off = 0; off < n; i++, off += page) {
        size_t at = off + (i * 97u) % page;
        if (at >= n)
            at = n - 1u;
        if (p[at] != 0) {
            *bad = at;
            return false;
        }
    }
    if (p[0] != 0 || p[n - 1u] != 0) {
        *bad = p[0] != 0 ? 0 : n - 1u;
        return false;
    }
    return true;
}

static void test_preloaded(void)
{
    (void)check_preloaded("calloc");
}

/* 1: a fresh 256 MiB calloc, one byte written. */
static void test_untouched(bool measure, size_t page)
{
    char detail[160];
    size_t before = rss();
    unsigned char *p = laundered(calloc(1, BIG));
    check(p != NULL, "calloc(1, 256 MiB)", NULL);
    if (p == NULL)
        return;
    p[12345] = 1;
    size_t after = rss();
    if (measure) {
        snprintf(detail, sizeof detail, "VmRSS %zu KiB -> %zu KiB", before / 1024u, after / 1024u);
        check(before != 0 && after < before + RSS_SLACK,
              "calloc(1, 256 MiB) + 1 byte written: VmRSS grows by less than 16 MiB", detail);
        printf("# calloc 256 MiB, 1 byte written: VmRSS %zu -> %zu KiB\n", before / 1024u, after / 1024u);
    }
    p[12345] = 0;
    size_t bad = 0;
    bool zero = sampled_zero(p, BIG, page, &bad);
    snprintf(detail, sizeof detail, "byte %zu is 0x%02x", bad, p[bad]);
    check(zero, "calloc(1, 256 MiB): a byte of every page reads zero", detail);
    free(p);
}

/* 2: the same memory, partly dirtied first: its first and last MiB and every
 * third page of the 4 MiB after the first, so that runs of dirty and of
 * untouched pages alternate. The rest was only read (test 1's samples), so
 * it maps the kernel's zero page: resident, but nothing to commit. base: VmRSS
 * before test 1. */
static void test_dirty(bool measure, size_t page, size_t base)
{
    char detail[160];
    unsigned char *q = laundered(malloc(BIG));
    check(q != NULL, "malloc(256 MiB)", NULL);
    if (q == NULL)
        return;
    memset(q, 0xAB, MIB);
    for (size_t off = MIB; off < 5u * MIB; off += 3u * page)
        memset(q + off, 0xAB, page);
    memset(q + BIG - MIB, 0xAB, MIB);
    free(q);
    size_t before = rss();
    unsigned char *p = laundered(calloc(BIG / 64u, 64u));
    check(p != NULL, "calloc(256 MiB / 64, 64) after a partly dirty use", NULL);
    if (p == NULL)
        return;
    size_t after = rss();
    /* The test is only worth something over the dirtied bytes. */
    check(p < q + BIG && q < p + BIG, "the calloc block overlaps the dirtied one", NULL);
    size_t at = first_nonzero(p, BIG);
    snprintf(detail, sizeof detail, "byte %zu of %zu is 0x%02x", at, (size_t)BIG, at < BIG ? p[at] : 0u);
    check(at == BIG, "calloc over partly dirtied memory: every byte reads zero", detail);
    if (measure) {
        snprintf(detail, sizeof detail, "VmRSS %zu KiB -> %zu KiB, %zu KiB at the start", before / 1024u,
                 after / 1024u, base / 1024u);
        check(base != 0 && after < base + RSS_SLACK,
              "calloc over partly dirtied memory commits none of the untouched pages", detail);
        printf("# calloc over 256 MiB, 3.3 MiB of it dirtied: VmRSS %zu -> %zu KiB\n", before / 1024u,
               after / 1024u);
    }
    free(p);
}

/* 3: sizes around the threshold, ends not on pages. Each size: malloc, fill
 * 0xAB, free, calloc the same (n, s): every byte zero. */
static void test_sizes(void)
{
    static const struct {
        size_t n, s;
    } cases[] = {
        {1, 100},           {1, 4096},          {1, 128u * 1024u - 1u}, {1, 128u * 1024u},
        {3, 43691},         {1, 128u * 1024u + 1u}, {7, 100003},    {1000, 1001},
        {1, 3u * MIB + 17u}, {5, 2u * MIB - 3u},
    };
    char what[128], detail[160];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = cases[i].n, s = cases[i].s, total = n * s;
        /* A small block first, so the big one need not start on a page. */
        void *shift = malloc(24u + 16u * i);
        unsigned char *q = laundered(malloc(total));
        if (q != NULL)
            memset(q, 0xAB, total);
        free(q);
        unsigned char *p = laundered(calloc(n, s));
        snprintf(what, sizeof what, "calloc(%zu, %zu) over dirtied memory: every byte zero", n, s);
        size_t at = p != NULL ? first_nonzero(p, total) : 0;
        snprintf(detail, sizeof detail, "%s; byte %zu (address %% 4096 = %zu)", p == NULL ? "NULL" : "non-zero", at,
                 p != NULL ? (size_t)(((uintptr_t)p + at) % 4096u) : 0u);
        check(p != NULL && q != NULL && at == total, what, detail);
        /* The neighbours are intact: free reports a damaged header. */
        free(p);
        free(shift);
    }
}

/* 4: a 2 MiB block whose pages are all in memory and dirty only in their last
 * byte (the rest written with zeros): calloc zeroes pages in memory in place,
 * skipping those already zero, and must look at the whole page to tell. Those
 * pages stay in memory (docs/preload.md: "the pages in memory it zeroes in
 * place"; dropping them would fault them in again on the next use). */
static void test_dirty_tails(size_t page)
{
    char detail[160];
    size_t total = 2u * MIB;
    unsigned char *q = laundered(malloc(total));
    check(q != NULL, "malloc(2 MiB)", NULL);
    if (q == NULL)
        return;
    memset(q, 0, total);
    uintptr_t first = ((uintptr_t)q + page - 1u) & ~(uintptr_t)(page - 1u);
    uintptr_t last = ((uintptr_t)q + total) & ~(uintptr_t)(page - 1u); /* end of the whole pages */
    for (uintptr_t a = first; a < last; a += page)
        ((unsigned char *)a)[page - 1u] = 0xAB;
    free(q);
    unsigned char *p = laundered(calloc(1, total));
    check(p == q, "calloc(1, 2 MiB) reuses the block just freed", NULL);
    if (p == NULL)
        return;
    if (p == q) {
        /* Before reading the block: a read maps a dropped page again (to the
         * kernel's zero page, which mincore counts as in memory). */
        static unsigned char vec[2u * MIB / 4096u + 1u];
        size_t n = (size_t)(last - first) / page;
        bool resident = n <= sizeof vec && mincore((void *)first, last - first, vec) == 0;
        for (size_t i = 0; resident && i < n; i++)
            if ((vec[i] & 1u) == 0)
                resident = false;
        check(resident, "calloc over a block in memory zeroes it in place: its pages stay in memory", NULL);
    }
    size_t at = first_nonzero(p, total);
    snprintf(detail, sizeof detail, "byte %zu (address %% %zu = %zu) is 0x%02x", at, page,
             (size_t)(((uintptr_t)p + at) % page), at < total ? p[at] : 0u);
    check(at == total, "calloc over pages dirty only in their last byte: every byte reads zero", detail);
    free(p);
}

int main(void)
{
    const char *poisoning = getenv("CAPHEAP_PRELOAD_POISONING");
    bool measure = poisoning == NULL || strcmp(poisoning, "COMPREHENSIVE") != 0;
    if (!measure)
        printf("# poisoning %s: the engine fills and checks free memory, RSS checks skipped\n", poisoning);
    long page = sysconf(_SC_PAGESIZE);
    size_t base = rss();

    test_preloaded();
    test_untouched(measure, page > 0 ? (size_t)page : 4096u);
    test_dirty(measure, page > 0 ? (size_t)page : 4096u, base);
    test_sizes();
    test_dirty_tails(page > 0 ? (size_t)page : 4096u);

    printf("1..%d\n", checks);
    if (failures != 0)
        printf("# %d of %d checks failed\n", failures, checks);
    return failures > 100 ? 100 : failures;
}
