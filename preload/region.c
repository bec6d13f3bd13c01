/*
 * region.c - the heaps behind libcapheap_malloc.so: created lazily from mmap,
 * grown geometrically, registered with heap_caps at run time, kept
 * consistent across fork.
 *
 * WHY THIS SHAPE
 *
 * A preloaded malloc is called before anything else in the process has run:
 * the dynamic loader and libc allocate while relocating, before constructors
 * and before main. So nothing here depends on a constructor (one registers
 * the fork handlers early, below), and there is no dlsym, no stdio, and no
 * allocation inside the allocator. The first call finds no heap (generation
 * 0), takes the growth mutex and maps the first region; every later call pays
 * one load of the generation counter on top of heap_caps.
 *
 * A REGION
 *
 *   mmap(PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS|MAP_NORESERVE)
 *
 *   start                                                           end
 *   | heap control (engine) | blocks ...                       | end mk |
 *
 * registered with capheap_caps_add_region(caps, start, end, {alignment 16}),
 * caps = {DEFAULT|8BIT|32BIT|INTERNAL|DMA, 0, 0}: every request the libc
 * policy makes (DEFAULT|INTERNAL) matches every region at priority 0, and
 * heap_caps tries the newest region first (runtime heaps, newest first: spec
 * 2.5). MAP_NORESERVE plus the engine touching only the pages it writes
 * headers into means a large region costs address space, not memory (except
 * under strict overcommit, which charges it in full: docs/preload.md). Regions
 * are never unmapped: heap_caps has no way to remove a heap (spec 2.5), so
 * freed memory returns to the region, not to the kernel.
 *
 * GROWTH
 *
 * When an allocation fails, the caller comes here with the request and the
 * generation it saw before trying. Under the growth mutex:
 *
 *   1. another thread grew since then      -> retry, map nothing;
 *   2. capheap_would_fit() says it fits now (a free in between) -> retry;
 *      it says growing cannot help (too large, bad alignment)   -> ENOMEM;
 *   3. need = size + alignment + slack: the slack covers the engine's control
 *      structure and its size-class rounding (16 second-level classes: a
 *      request can need up to 1/16 more than its size in one free block);
 *   4. region = the next geometric size (REGION_FIRST, doubling, capped at
 *      REGION_MAX), doubled further until it holds 2 x need, or exactly need
 *      (page-rounded) when need is above REGION_MAX: a very large request
 *      gets a region of its own;
 *   5. mmap it (if the kernel refuses, halve towards need), register it,
 *      publish generation + 1.
 *
 * Bounds: CAPHEAP_MAX_HEAPS descriptors (64 on host). Doubling from 32 MiB
 * reaches REGION_MAX (2 GiB) in 7 regions, ~4 GiB in all; the other 57 give
 * 2 GiB each, ~118 GiB of address space before the registry is full. After
 * that, and for a request above REGION_LIMIT (one heap region is at most
 * 4 GiB - 1), allocation fails with ENOMEM. On 32-bit builds the sizes are 4
 * MiB first, 256 MiB max: the whole address space fits in the registry.
 *
 * FORK
 *
 * pthread_atfork handlers, registered once: by this library's constructor,
 * or after the first region exists if a malloc comes first (never under our
 * mutex: pthread_atfork may allocate, and allocating takes the mutex when it
 * grows). Early, because handlers run in an order set by registration: a
 * program's handler registered before ours would have its prepare run after
 * ours took every lock, and its child handler before ours re-initialised
 * them, so one that allocates deadlocked fork (an audit found it; glibc's
 * malloc allows it). prepare takes the growth mutex, then every heap
 * lock and the registry lock (capheap_caps_lock_all), so no thread is inside
 * the allocator at the moment of the fork; the parent releases them in reverse
 * order; the child re-initialises them (capheap_caps_unlock_all_child, and a
 * fresh growth mutex): it cannot unlock them, as it is not the thread that
 * locked them.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* MAP_ANONYMOUS, MAP_NORESERVE under -std=c11 */
#endif

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#include "capheap/caps.h"
#include "esp_heap_caps.h"
#include "esp_heap_caps_init.h"
#include "preload.h"

#define MIB ((size_t)1 << 20)

#if SIZE_MAX > UINT32_MAX
#define REGION_FIRST (32u * MIB)             /* first region; doubling from here */
#define REGION_MAX ((size_t)2048u * MIB)     /* geometric growth stops here */
#define REGION_LIMIT ((size_t)0xFFFF0000u)   /* largest region: 4 GiB - 64 KiB, page-aligned, < 4 GiB */
#else
#define REGION_FIRST (4u * MIB)
#define REGION_MAX (256u * MIB)
#define REGION_LIMIT ((size_t)0xC0000000u)   /* 3 GiB: mmap refuses anything near it anyway */
#endif

/* Fixed part of the slack: the engine's control structure (27 rows of 68 bytes
 * at most), the end marker and alignment padding, rounded up generously. */
#define REGION_FIXED_SLACK (64u * 1024u)

static const uint32_t preload_caps[SOC_MEMORY_TYPE_NO_PRIOS] = {
    MALLOC_CAP_DEFAULT | MALLOC_CAP_8BIT | MALLOC_CAP_32BIT | MALLOC_CAP_INTERNAL | MALLOC_CAP_DMA, 0, 0};

static pthread_mutex_t grow_mutex = PTHREAD_MUTEX_INITIALIZER;
static atomic_uint generation;   /* regions registered (see preload.h) */
static size_t next_region;       /* next geometric size; under grow_mutex */
static atomic_flag atfork_registered = ATOMIC_FLAG_INIT;

unsigned capheap_preload_generation(void)
{
    return atomic_load_explicit(&generation, memory_order_acquire);
}

size_t capheap_preload_page_size(void)
{
    long page = sysconf(_SC_PAGESIZE);
    return page > 0 ? (size_t)page : 4096u;
}

/* ---- fork ---------------------------------------------------------------- */

/* The child cannot *release* the heap locks the parent's thread took: it is a
 * new thread (new thread id) and the heap locks are recursive mutexes, which
 * refuse an unlock from a non-owner (EPERM) and stay locked for ever. So the
 * child re-initialises them with capheap_caps_unlock_all_child(). See
 * docs/preload.md, "fork". */
static void fork_prepare(void)
{
    (void)pthread_mutex_lock(&grow_mutex);
    capheap_caps_lock_all();
}

static void fork_parent(void)
{
    capheap_caps_unlock_all();
    (void)pthread_mutex_unlock(&grow_mutex);
}

static void fork_child(void)
{
    capheap_caps_unlock_all_child();
    /* Same reason: re-initialise rather than unlock. */
    pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;
    grow_mutex = fresh;
}

/* ---- sizing -------------------------------------------------------------- */

/* a + b, or 0 on overflow (0 is never a valid region size here). */
static size_t add_sat0(size_t a, size_t b)
{
    return a > SIZE_MAX - b ? 0 : a + b;
}

/* Bytes a fresh region must have to serve size at alignment; 0 if none can. */
static size_t region_need(size_t size, size_t alignment)
{
    size_t need = add_sat0(size, size / 8u);  /* size-class rounding, with margin */
    if (need != 0 && alignment > CAPHEAP_PRELOAD_ALIGN)
        need = add_sat0(need, alignment);     /* worst-case padding in front */
    if (need != 0)
        need = add_sat0(need, REGION_FIXED_SLACK);
    if (need == 0 || need > REGION_LIMIT)
        return 0;
    return need;
}

static size_t round_up_pages(size_t n, size_t page)
{
    size_t r = add_sat0(n, page - 1u);
    return r == 0 ? 0 : r & ~(page - 1u);
}

/* Map and register one region of at least need bytes, preferring want.
 * Under grow_mutex. Returns true on success. */
static bool add_region(size_t need, size_t want)
{
    size_t page = capheap_preload_page_size();
    need = round_up_pages(need, page);
    want = round_up_pages(want, page);
    if (need == 0 || need > REGION_LIMIT)
        return false;
    if (want < need || want > REGION_LIMIT)
        want = need;
    int saved = errno; /* a refused larger mapping before one that works leaves no ENOMEM behind */
    for (;;) {
        void *mem = mmap(NULL, want, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (mem != MAP_FAILED) {
            errno = saved;
            capheap_region_options_t opts = {.alignment = CAPHEAP_PRELOAD_ALIGN, .name = "preload"};
            intptr_t start = (intptr_t)mem;
            esp_err_t err = capheap_caps_add_region(preload_caps, start, start + (intptr_t)want, &opts);
            if (err == ESP_OK) {
                if (want >= next_region)
                    next_region = want >= REGION_MAX / 2u ? REGION_MAX : want * 2u;
                return true;
            }
            (void)munmap(mem, want);
            return false; /* registry full (ESP_ERR_NO_MEM) or a size the engine refuses */
        }
        if (want <= need)
            return false;
        want = want / 2u < need ? need : round_up_pages(want / 2u, page);
    }
}

/* The geometric size for a request needing need bytes. */
static size_t region_want(size_t need)
{
    if (next_region == 0)
        next_region = REGION_FIRST;
    size_t want = next_region;
    while (want < REGION_MAX && want / 2u < need)
        want *= 2u;
    return want < need ? need : want;
}

/* ---- growth -------------------------------------------------------------- */

bool capheap_preload_grow(size_t size, size_t alignment, unsigned seen)
{
    size_t need = region_need(size, alignment);
    if (need == 0)
        return false;

    (void)pthread_mutex_lock(&grow_mutex);
    bool retry;
    if (atomic_load_explicit(&generation, memory_order_relaxed) != seen) {
        retry = true; /* another thread grew: try its region first */
    } else {
        bool fits = false, hopeless = false;
        if (seen != 0) {
            capheap_fit_t why;
            fits = capheap_would_fit(size, CAPHEAP_PRELOAD_REQUEST_CAPS,
                                     alignment > CAPHEAP_PRELOAD_ALIGN ? alignment : 0, &why);
            hopeless = !fits && why.reason != CAPHEAP_FIT_NO_ROOM && why.reason != CAPHEAP_FIT_ALIGNMENT_IMPOSSIBLE;
        }
        if (fits) {
            retry = true; /* memory was freed since the attempt */
        } else if (hopeless) {
            retry = false;
        } else {
            retry = add_region(need, region_want(need));
            if (retry)
                atomic_fetch_add_explicit(&generation, 1u, memory_order_release);
        }
    }
    (void)pthread_mutex_unlock(&grow_mutex);

    /* Once, outside the mutex, after the first region exists (unless the
     * constructor below came first): pthread_atfork may allocate (that
     * allocation then finds a heap). */
    if (retry && !atomic_flag_test_and_set(&atfork_registered))
        (void)pthread_atfork(fork_prepare, fork_parent, fork_child);
    return retry;
}

/* The fork handlers before any of the program's (FORK above): a preloaded
 * library's constructors run before the program's. pthread_atfork may
 * allocate; that allocation maps the first region and, the flag already
 * set, registers nothing. */
__attribute__((constructor)) static void register_fork_handlers_early(void)
{
    if (!atomic_flag_test_and_set(&atfork_registered))
        (void)pthread_atfork(fork_prepare, fork_parent, fork_child);
}
