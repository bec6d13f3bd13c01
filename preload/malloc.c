/*
 * malloc.c - the C allocation API of libcapheap_malloc.so, for LD_PRELOAD.
 *
 *   LD_PRELOAD=/path/to/libcapheap_malloc.so python3 script.py
 *
 * WHAT IT IS
 *
 * The whole glibc allocation family - malloc, free, calloc, realloc,
 * reallocarray, memalign, posix_memalign, aligned_alloc, valloc, pvalloc,
 * malloc_usable_size, and malloc_trim - on capheap's heap_caps, through the
 * same libc policy ESP-IDF's newlib glue uses on a chip (spec section 0):
 *
 *   malloc, calloc           heap_caps_malloc_default
 *   realloc, reallocarray    heap_caps_realloc_default
 *   memalign and friends     heap_caps_aligned_alloc_default (alignment > 16)
 *   free                     heap_caps_free
 *   malloc_usable_size       heap_caps_get_allocated_size
 *   malloc_trim              heap_caps_walk_all, madvise of free blocks' pages
 *
 * The heaps are regions mmap'd at run time and registered with
 * capheap_caps_add_region (region.c); when heap_caps cannot serve a request,
 * region.c adds a region and the call is tried again (the loop in alloc_grow
 * below). Only these twelve functions leave the shared object: everything else
 * is hidden (-fvisibility=hidden plus exports.map), so capheap's own
 * heap_caps_* symbols never interpose on a program that has its own.
 *
 * SEMANTICS: GLIBC'S, WHERE ESP-IDF'S DIFFER
 *
 * Host programs are written against glibc, so where ESP-IDF's libc glue and
 * glibc disagree, this file does what glibc does:
 *
 *   malloc(0)              a unique pointer (1 byte is allocated), not NULL
 *   realloc(p, 0)          frees p, returns NULL; realloc(NULL, n) = malloc(n)
 *   calloc(n, s) overflow  NULL, errno ENOMEM; calloc(0, s) = malloc(0)
 *   reallocarray overflow  NULL, errno ENOMEM, p untouched
 *   posix_memalign         EINVAL (alignment not a power of two or not a
 *                          multiple of sizeof(void *)), ENOMEM; never sets
 *                          errno, never writes *out on failure; size 0 gives
 *                          a unique pointer (ESP-IDF: NULL)
 *   aligned_alloc          alignment not a power of two: NULL, EINVAL (C17,
 *                          glibc >= 2.38)
 *   memalign               a non-power-of-two alignment is rounded up to the
 *                          next power of two, as glibc does; one above
 *                          SIZE_MAX / 2 + 1 is EINVAL
 *   valloc(n)              memalign(page, n); pvalloc rounds n up to pages
 *                          (pvalloc(0): one page)
 *   malloc_usable_size     the block's real capacity (ESP-IDF: stub 0);
 *                          NULL gives 0
 *   every failure          errno = ENOMEM (POSIX)
 *
 * free() of a pointer no heap owns (or a double free, an interior pointer)
 * is what heap_caps_free() does everywhere: a report on stderr and abort().
 * glibc's "free(): invalid pointer" is the same outcome.
 *
 * COST
 *
 * On the fast path, one load of the region generation and one direct call
 * (hidden symbols need no PLT) on top of heap_caps. Nothing here takes a lock;
 * heap_caps locks the one heap it uses.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memalign, pvalloc, valloc, reallocarray, malloc_usable_size, madvise, mincore */
#endif

#include <errno.h>
#include <malloc.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "capheap/config.h"
#include "esp_heap_caps.h"
#include "preload.h"

#define PRELOAD_API __attribute__((visibility("default")))

#if defined(__GNUC__)
#define LIKELY(x) __builtin_expect(!!(x), 1)
#else
#define LIKELY(x) (x)
#endif

/* Growth retries per call: each retry either follows a new region or the dry
 * run's "it fits now"; this only stops a livelock, it never bounds a working
 * program (a region is added at most once per call and the registry is finite). */
#define MAX_RETRIES (CAPHEAP_MAX_HEAPS + 4)

static bool is_pow2(size_t x)
{
    return x != 0 && (x & (x - 1u)) == 0;
}

/* size at alignment (alignments up to CAPHEAP_PRELOAD_ALIGN are the plain
 * path), growing the heaps until it fits or cannot. errno ENOMEM on failure. */
static void *alloc_grow(size_t size, size_t alignment)
{
    for (unsigned tries = 0; tries < MAX_RETRIES; tries++) {
        unsigned seen = capheap_preload_generation();
        if (LIKELY(seen != 0)) {
            void *p = alignment <= CAPHEAP_PRELOAD_ALIGN ? heap_caps_malloc_default(size)
                                                         : heap_caps_aligned_alloc_default(alignment, size);
            if (LIKELY(p != NULL))
                return p;
        }
        if (!capheap_preload_grow(size, alignment, seen))
            break;
    }
    errno = ENOMEM;
    return NULL;
}

static void *alloc_plain(size_t size)
{
    if (LIKELY(size != 0 && capheap_preload_generation() != 0)) {
        void *p = heap_caps_malloc_default(size);
        if (LIKELY(p != NULL))
            return p;
    }
    return alloc_grow(size == 0 ? 1 : size, 0);
}

/* memalign's core: alignment a power of two; size 0 is a unique pointer. */
static void *alloc_aligned(size_t alignment, size_t size)
{
    if (size == 0)
        size = 1;
    if (alignment <= CAPHEAP_PRELOAD_ALIGN)
        return alloc_plain(size);
    return alloc_grow(size, alignment);
}

PRELOAD_API void *malloc(size_t size)
{
    return alloc_plain(size);
}

PRELOAD_API void free(void *ptr)
{
    if (ptr != NULL)
        heap_caps_free(ptr);
}

/* n * size in *total; true if it does not fit in a size_t. */
static inline bool mul_overflows(size_t n, size_t size, size_t *total)
{
#if defined(__GNUC__)
    return __builtin_mul_overflow(n, size, total);
#else
    *total = n * size;
    return size != 0 && *total / size != n;
#endif
}

/* From this size on, calloc does not write zeros over the pages it finds
 * absent from memory (never touched, or swapped out): it drops them
 * (MADV_DONTNEED), and they read back as zeros, committing nothing until the
 * program touches them. Writing zeros committed every page of the block, for
 * good (regions are never unmapped): calloc(1, 1 GiB) plus one byte written
 * cost 1 GiB of RSS, where glibc's costs a few pages. Pages already in memory
 * (a block reused) are zeroed in place, as before: dropping them too made a
 * loop of calloc(1 MiB) + writing all of it + free ~10x slower, every page
 * faulting again. 128 KiB is glibc's default mmap threshold, the size from
 * which glibc's calloc also hands out untouched pages; below it the mincore
 * call costs more than it can save. */
#define CALLOC_DROP_MIN ((size_t)128u * 1024u)

/* Pages per mincore call: 4 MiB of 4 KiB pages for 1 KiB of stack. */
#define CALLOC_VEC 1024u

typedef unsigned long __attribute__((may_alias)) word_t;

/* Zero the page at p unless it is already zero: a page read but never
 * written maps the kernel's shared zero page, resident for mincore; writing
 * it would commit it. */
static void zero_page(void *p, size_t page)
{
    const word_t *w = p;
    for (size_t i = 0; i < page / sizeof(word_t); i++)
        if (w[i] != 0) {
            memset(p, 0, page);
            return;
        }
}

/* Zero the whole pages [lo, hi): absent ones dropped, run by run, present
 * ones through zero_page. False if the kernel refused mincore or madvise
 * (madvise refuses mlock'd pages): the caller then memsets it all. */
static bool zero_pages(uintptr_t lo, uintptr_t hi, uintptr_t page)
{
    unsigned char vec[CALLOC_VEC];
    uintptr_t drop = lo; /* start of the run of absent pages not yet dropped */
    for (uintptr_t at = lo; at < hi;) {
        size_t n = (size_t)((hi - at) / page);
        if (n > CALLOC_VEC)
            n = CALLOC_VEC;
        if (mincore((void *)at, n * page, vec) != 0)
            return false;
        for (size_t i = 0; i < n; i++, at += page) {
            if ((vec[i] & 1u) == 0)
                continue;
            if (drop < at && madvise((void *)drop, at - drop, MADV_DONTNEED) != 0)
                return false;
            zero_page((void *)at, page);
            drop = at + page;
        }
    }
    return drop == hi || madvise((void *)drop, hi - drop, MADV_DONTNEED) == 0;
}

/* Zero the total bytes at p, a block just allocated. Every region is a
 * private anonymous mapping (region.c), where a dropped page reads back as
 * zeros. Only whole pages inside [p, p + total) are dropped, so the engine's
 * header and the poisoning head before p and the tail canary at p + total
 * keep their bytes; the partial pages at the ends get memset. Dropping
 * the bytes of an allocated block is also safe under comprehensive
 * poisoning: nothing checks an allocated block's contents (the 0xCE fill is
 * for the program to see), and free refills the block with 0xFE. */
static void zero_block(void *p, size_t total)
{
    if (total >= CALLOC_DROP_MIN) {
        uintptr_t page = capheap_preload_page_size();
        uintptr_t start = (uintptr_t)p, end = start + total;
        uintptr_t lo = (start + page - 1u) & ~(page - 1u);
        uintptr_t hi = end & ~(page - 1u);
        if (lo < hi && zero_pages(lo, hi, page)) {
            memset(p, 0, lo - start);
            memset((void *)hi, 0, end - hi);
            return;
        }
    }
    memset(p, 0, total);
}

PRELOAD_API void *calloc(size_t n, size_t size)
{
    size_t total;
    if (mul_overflows(n, size, &total)) {
        errno = ENOMEM;
        return NULL;
    }
    void *p = alloc_plain(total);
    if (p != NULL) {
        int saved = errno; /* a refused mincore or madvise is no failure of calloc */
        zero_block(p, total);
        errno = saved;
    }
    return p;
}

PRELOAD_API void *realloc(void *ptr, size_t size)
{
    if (ptr == NULL)
        return alloc_plain(size);
    if (size == 0) {
        heap_caps_free(ptr);
        return NULL;
    }
    /* ptr non-NULL: a heap exists, so the generation is non-zero. */
    for (unsigned tries = 0; tries < MAX_RETRIES; tries++) {
        unsigned seen = capheap_preload_generation();
        void *p = heap_caps_realloc_default(ptr, size);
        if (LIKELY(p != NULL))
            return p;
        if (!capheap_preload_grow(size, 0, seen))
            break;
    }
    errno = ENOMEM; /* ptr is untouched */
    return NULL;
}

PRELOAD_API void *reallocarray(void *ptr, size_t n, size_t size)
{
    size_t total;
    if (mul_overflows(n, size, &total)) {
        errno = ENOMEM;
        return NULL;
    }
    return realloc(ptr, total);
}

PRELOAD_API void *memalign(size_t alignment, size_t size)
{
    if (!is_pow2(alignment)) {
        /* glibc rounds up to the next power of two; above the largest one, EINVAL. */
        const size_t top = ((size_t)SIZE_MAX >> 1) + 1u;
        if (alignment > top) {
            errno = EINVAL;
            return NULL;
        }
        size_t a = 1;
        while (a < alignment)
            a <<= 1;
        alignment = a;
    }
    return alloc_aligned(alignment, size);
}

PRELOAD_API void *aligned_alloc(size_t alignment, size_t size)
{
    if (!is_pow2(alignment)) {
        errno = EINVAL;
        return NULL;
    }
    return alloc_aligned(alignment, size);
}

PRELOAD_API int posix_memalign(void **out, size_t alignment, size_t size)
{
    if (!is_pow2(alignment) || alignment % sizeof(void *) != 0)
        return EINVAL;
    int saved = errno; /* posix_memalign reports through its result only */
    void *p = alloc_aligned(alignment, size);
    errno = saved;
    if (p == NULL)
        return ENOMEM;
    *out = p;
    return 0;
}

PRELOAD_API void *valloc(size_t size)
{
    return alloc_aligned(capheap_preload_page_size(), size);
}

PRELOAD_API void *pvalloc(size_t size)
{
    size_t page = capheap_preload_page_size();
    if (size > SIZE_MAX - (page - 1u)) {
        errno = ENOMEM;
        return NULL;
    }
    size_t rounded = (size + page - 1u) & ~(page - 1u);
    return alloc_aligned(page, rounded == 0 ? page : rounded);
}

PRELOAD_API size_t malloc_usable_size(void *ptr)
{
    return ptr == NULL ? 0 : heap_caps_get_allocated_size(ptr);
}

#if !CAPHEAP_POISONING_COMPREHENSIVE /* there malloc_trim gives nothing back (below) */
/* Bytes at each end of a free block's data that the engine uses: its two
 * list links at the start, its footer at the end (docs/design.md, block
 * layout); rounded up, the pages they lie in stay. */
#define TRIM_KEEP_HEAD 16u
#define TRIM_KEEP_TAIL 16u

typedef struct {
    uintptr_t page;
    int released; /* 1 once a page range was given back */
} trim_t;

/* heap_caps_walk_all's callback, under the lock of the block's heap: no
 * other thread can take the block while its pages are dropped. */
static bool trim_block(walker_heap_into_t heap, walker_block_info_t block, void *user)
{
    (void)heap;
    trim_t *t = user;
    if (block.used || block.size <= TRIM_KEEP_HEAD + TRIM_KEEP_TAIL)
        return true;
    uintptr_t start = (uintptr_t)block.ptr + TRIM_KEEP_HEAD;
    uintptr_t end = (uintptr_t)block.ptr + block.size - TRIM_KEEP_TAIL;
    uintptr_t lo = (start + t->page - 1u) & ~(t->page - 1u);
    uintptr_t hi = end & ~(t->page - 1u);
    if (lo < hi && madvise((void *)lo, hi - lo, MADV_DONTNEED) == 0)
        t->released = 1;
    return true;
}
#endif

/* glibc's malloc_trim: give the memory of free blocks back to the kernel.
 * Every whole page inside a free block is dropped (MADV_DONTNEED: it costs
 * no memory until it is written again, and reads as zeros, which nothing
 * reads: a block's bytes are the program's only once allocated, and calloc
 * zeroes its block whatever was there). pad is glibc's slack at the top of
 * its main heap; capheap's regions have no top, so it has no use. Returns 1
 * if any page range was given back, else 0. O(blocks), each heap locked
 * while it is walked. Comprehensive poisoning keeps every free byte at 0xFE
 * and checks it, so there it gives nothing back (0). */
PRELOAD_API int malloc_trim(size_t pad)
{
    (void)pad;
#if CAPHEAP_POISONING_COMPREHENSIVE
    return 0;
#else
    if (capheap_preload_generation() == 0)
        return 0;
    int saved = errno; /* a refused madvise (mlock'd pages) is no failure */
    trim_t t = {capheap_preload_page_size(), 0};
    heap_caps_walk_all(trim_block, &t);
    errno = saved;
    return t.released;
#endif
}
