/*
 * trim_test.c - malloc_trim under libcapheap_malloc.so: the memory of free
 * blocks goes back to the kernel, and nothing else changes.
 *
 *   LD_PRELOAD=build/preload/libcapheap_malloc.so build/tests/preload/preload_trim_test
 *
 * heap_caps cannot remove a heap, so before malloc_trim existed a program's
 * footprint stayed at its high-water mark for good (docs/preload.md). Here:
 *
 *   1. 48 MiB of 512 KiB blocks, each written, with a small stamped block
 *      between every two, then the big blocks freed: malloc_trim(0) returns
 *      1 and VmRSS falls by at least 40 MiB;
 *   2. every small block kept its stamp (live blocks, and the free blocks'
 *      engine words next to them, are not dropped);
 *   3. the memory is used again: the big blocks allocated and written once
 *      more read back what was written, calloc over trimmed memory reads
 *      zero, and a churn of mixed sizes with a check of every block's stamp
 *      runs over the trimmed heap; a second trim after it works as well;
 *   4. malloc_trim(pad) ignores pad (glibc's slack at the top of its main
 *      heap; capheap's regions have no top);
 *   5. mlock'd free pages, which madvise refuses, leave errno alone;
 *   6. with every free byte taken (RLIMIT_AS stopping growth) there is no
 *      page to give back: malloc_trim returns 0.
 *
 * Under CAPHEAP_PRELOAD_POISONING=COMPREHENSIVE the engine keeps every free
 * byte at 0xFE and checks it, so malloc_trim gives nothing back there: it
 * must return 0 and leave the free memory as it was (checked by the same
 * reuse steps, which the engine's fill checks would fail otherwise).
 *
 * Output is TAP-like, as api_test.c; the exit status is the number of
 * failures.
 */
#define _GNU_SOURCE

#include <errno.h>
#include <malloc.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#define MIB ((size_t)1 << 20)
#define BIG_BYTES (512u * 1024u)
#define BIG_COUNT 96u /* 48 MiB */
#define SMALL_BYTES 64u
/* What VmRSS must fall by once the 48 MiB are trimmed: all but a page or two
 * per block, and slack for the runtime's own pages. */
#define RSS_DROP_MIN (40u * MIB)

#include "tap.h"

static size_t rss(void)
{
    return proc_status_bytes("VmRSS");
}

/* A pattern that differs per block and per byte. */
static unsigned char stamp_byte(size_t block, size_t i)
{
    return (unsigned char)(block * 131u + i * 7u + 1u);
}

static void stamp(unsigned char *p, size_t n, size_t block)
{
    for (size_t i = 0; i < n; i++)
        p[i] = stamp_byte(block, i);
}

static bool stamp_ok(const unsigned char *p, size_t n, size_t block)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != stamp_byte(block, i))
            return false;
    return true;
}

static unsigned char *big[BIG_COUNT];
static char detail_text[160];
static unsigned char *small[BIG_COUNT];

/* 1 and 2: the freed big blocks' memory goes back; the small ones keep theirs. */
static void test_trim_returns_memory(bool trims)
{
    char detail[160];
    bool all = true;
    for (size_t i = 0; i < BIG_COUNT; i++) {
        big[i] = malloc(BIG_BYTES);
        small[i] = malloc(SMALL_BYTES);
        if (big[i] == NULL || small[i] == NULL) {
            all = false;
            break;
        }
        memset(big[i], 0x5A, BIG_BYTES);
        stamp(small[i], SMALL_BYTES, i);
    }
    check(all, "96 blocks of 512 KiB and 96 of 64 bytes, interleaved", NULL);
    if (!all)
        return;
    for (size_t i = 0; i < BIG_COUNT; i++)
        free(big[i]);
    size_t before = rss();
    int r = malloc_trim(0);
    size_t after = rss();
    snprintf(detail, sizeof detail, "returned %d", r);
    check(r == (trims ? 1 : 0), trims ? "malloc_trim(0) returns 1 (memory given back)"
                                      : "malloc_trim(0) returns 0 under comprehensive poisoning",
          detail);
    snprintf(detail, sizeof detail, "VmRSS %zu KiB -> %zu KiB", before / 1024u, after / 1024u);
    printf("# 48 MiB freed, then malloc_trim(0): VmRSS %zu -> %zu KiB\n", before / 1024u, after / 1024u);
    if (trims)
        check(before != 0 && after + RSS_DROP_MIN <= before, "malloc_trim(0): VmRSS falls by at least 40 MiB",
              detail);
    bool kept = true;
    for (size_t i = 0; i < BIG_COUNT; i++)
        kept = kept && stamp_ok(small[i], SMALL_BYTES, i);
    check(kept, "the live blocks between the trimmed ones kept every byte", NULL);
}

/* 3: the trimmed memory serves allocations as before. */
static void test_reuse_after_trim(void)
{
    bool ok = true;
    for (size_t i = 0; i < BIG_COUNT && ok; i++) {
        big[i] = malloc(BIG_BYTES);
        ok = big[i] != NULL;
        if (ok)
            stamp(big[i], BIG_BYTES, i + 1000u);
    }
    for (size_t i = 0; i < BIG_COUNT && ok; i++)
        ok = stamp_ok(big[i], BIG_BYTES, i + 1000u);
    check(ok, "the 96 big blocks again, over trimmed memory: written and read back", NULL);
    for (size_t i = 0; i < BIG_COUNT; i++)
        free(big[i]);
    (void)malloc_trim(0);

    /* calloc over trimmed memory, large (drops pages itself) and small */
    unsigned char *c = calloc(1, 4u * MIB);
    unsigned char *d = calloc(3, 1000);
    bool zero = c != NULL && d != NULL;
    for (size_t i = 0; zero && i < 4u * MIB; i++)
        zero = c[i] == 0;
    for (size_t i = 0; zero && i < 3000u; i++)
        zero = d[i] == 0;
    check(zero, "calloc over trimmed memory reads zero (4 MiB and 3000 bytes)", NULL);
    free(c);
    free(d);

    /* a churn of mixed sizes over the trimmed heap, every block stamped and checked before free */
    enum { SLOTS = 512, STEPS = 200000 };
    static unsigned char *slot[SLOTS];
    static size_t len[SLOTS];
    uint32_t x = 12345u;
    ok = true;
    for (unsigned step = 0; step < STEPS && ok; step++) {
        x = x * 1664525u + 1013904223u;
        unsigned k = (x >> 8) % SLOTS;
        if (slot[k] != NULL) {
            ok = stamp_ok(slot[k], len[k], k);
            free(slot[k]);
            slot[k] = NULL;
        } else {
            len[k] = (x >> 20) % 4u == 0 ? 1u + (x >> 4) % (256u * 1024u) : 1u + (x >> 4) % 512u;
            slot[k] = malloc(len[k]);
            ok = slot[k] != NULL;
            if (ok)
                stamp(slot[k], len[k], k);
        }
        if (step % 50000u == 49999u)
            (void)malloc_trim(0); /* trims between live blocks of every size */
    }
    for (unsigned k = 0; k < SLOTS; k++) {
        if (slot[k] != NULL) {
            ok = ok && stamp_ok(slot[k], len[k], k);
            free(slot[k]);
        }
    }
    check(ok, "200,000 mixed mallocs and frees with a trim every 50,000: every block kept its bytes", NULL);
    bool kept = true;
    for (size_t i = 0; i < BIG_COUNT; i++) {
        kept = kept && stamp_ok(small[i], SMALL_BYTES, i);
        free(small[i]);
    }
    check(kept, "the 64-byte blocks kept their bytes through all of it", NULL);
}

/* 4: pad changes nothing. */
static void test_pad_ignored(bool trims)
{
    unsigned char *p = malloc(8u * MIB);
    if (p != NULL)
        memset(p, 1, 8u * MIB);
    free(p);
    int r = malloc_trim((size_t)64 * MIB);
    check(p != NULL && r == (trims ? 1 : 0), "malloc_trim(64 MiB) trims as malloc_trim(0) does", NULL);
}

/* 5: pages the kernel refuses to drop (mlock'd) are no failure: malloc_trim
 * leaves errno as it was. */
static void test_locked_pages_leave_errno(void)
{
    unsigned char *p = malloc(MIB);
    if (p == NULL || mlock(p, MIB) != 0) {
        printf("# mlock refused: test 5 skipped\n");
        free(p);
        return;
    }
    memset(p, 0x5A, MIB);
    free(p); /* a free block with locked pages */
    errno = 0;
    (void)malloc_trim(0);
    int err = errno;
    check(err == 0, "malloc_trim over mlock'd free pages leaves errno alone", strerror(err));
    (void)munlock(p, MIB);
}

/* 6: with no whole free page anywhere there is nothing to give back:
 * malloc_trim returns 0. RLIMIT_AS keeps the heaps from growing while every
 * free block is taken, largest sizes first, down to 16 bytes; the blocks
 * are chained through their first word. */
static void test_nothing_to_give_back(bool trims)
{
    if (!trims)
        return;
    struct rlimit saved;
    size_t now = proc_status_bytes("VmSize");
    if (getrlimit(RLIMIT_AS, &saved) != 0 || now == 0) {
        check(false, "RLIMIT_AS and VmSize", strerror(errno));
        return;
    }
    struct rlimit lim = saved;
    lim.rlim_cur = (rlim_t)(now + MIB); /* less than any region */
    if ((saved.rlim_max != RLIM_INFINITY && lim.rlim_cur > saved.rlim_max) || setrlimit(RLIMIT_AS, &lim) != 0) {
        printf("# RLIMIT_AS not settable: test 6 skipped\n");
        return;
    }
    static const size_t sizes[] = {4u * MIB, 256u * 1024u, 16u * 1024u, 1024u, 64u, 16u};
    void *chain = NULL;
    size_t taken = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        for (void *p; (p = malloc(sizes[i])) != NULL; taken++) {
            ((void **)p)[0] = chain;
            ((size_t *)p)[1] = sizes[i];
            chain = p;
        }
    /* One free block across a page boundary but holding no whole page: still
     * nothing to give back (a 1 KiB block whose middle crosses a boundary) */
    const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    for (void **link = &chain; *link != NULL; link = (void **)*link) {
        uintptr_t b = (uintptr_t)*link;
        if (((size_t *)*link)[1] == 1024u && (b + 64u + page - 1u) / page * page + 64u <= b + 1024u) {
            void *crossing = *link;
            *link = *(void **)crossing;
            free(crossing);
            break;
        }
    }
    int r = malloc_trim(0);
    while (chain != NULL) {
        void *next = *(void **)chain;
        free(chain);
        chain = next;
    }
    if (setrlimit(RLIMIT_AS, &saved) != 0)
        check(false, "setrlimit(RLIMIT_AS) restored", strerror(errno));
    snprintf(detail_text, sizeof detail_text, "%zu blocks took every free byte; malloc_trim returned %d", taken, r);
    check(r == 0, "malloc_trim(0) with no free page anywhere returns 0", detail_text);
}

int main(void)
{
    const char *poisoning = getenv("CAPHEAP_PRELOAD_POISONING");
    bool trims = poisoning == NULL || strcmp(poisoning, "COMPREHENSIVE") != 0;
    if (!trims)
        printf("# poisoning %s: free memory stays filled and checked, malloc_trim gives nothing back\n", poisoning);
    (void)check_preloaded("malloc_trim");
    test_trim_returns_memory(trims);
    test_reuse_after_trim();
    test_pad_ignored(trims);
    test_locked_pages_leave_errno();
    test_nothing_to_give_back(trims);
    printf("1..%d\n", checks);
    if (failures != 0)
        printf("# %d of %d checks failed\n", failures, checks);
    return failures > 100 ? 100 : failures;
}
