/*
 * libc.c - the C allocation API on top of heap_caps, as ESP-IDF's libc glue
 * does it (spec 0): malloc -> heap_caps_malloc_default, realloc ->
 * heap_caps_realloc_default, free -> heap_caps_free, memalign and
 * aligned_alloc -> heap_caps_aligned_alloc_default, calloc checks the product
 * itself, posix_memalign returns codes without touching errno.
 *
 * Built into the library only with CAPHEAP_LIBC_MALLOC=ON (bare-metal
 * firmware that wants capheap as its malloc); with newlib also its reentrant
 * _malloc_r family, which newlib's own functions call. The tests compile this file
 * once more with CAPHEAP_LIBC_PREFIX defined, which renames every function
 * (capheap_libc_malloc, ...) so the host's own malloc stays in place. The
 * host's LD_PRELOAD library (preload/) is a separate, fuller implementation.
 */
#include "capheap/config.h"

#if CAPHEAP_LIBC_MALLOC || defined(CAPHEAP_LIBC_PREFIX)

#include <errno.h>
#include <string.h>

#include "esp_heap_caps.h"

/* An attribute for every function (the simulator's copy puts them in its
 * own section, sim/libc/wrap.h). */
#ifndef CAPHEAP_LIBC_SECTION
#define CAPHEAP_LIBC_SECTION
#endif

#ifdef CAPHEAP_LIBC_PREFIX
#define CH_PASTE2(a, b) a##b
#define CH_PASTE(a, b) CH_PASTE2(a, b)
#define LIBC(name) CH_PASTE(CAPHEAP_LIBC_PREFIX, name)
#else
#define LIBC(name) name
#endif

void *LIBC(malloc)(size_t size);
void LIBC(free)(void *ptr);
void *LIBC(calloc)(size_t n, size_t size);
void *LIBC(realloc)(void *ptr, size_t size);
void *LIBC(memalign)(size_t alignment, size_t size);
void *LIBC(aligned_alloc)(size_t alignment, size_t size);
int LIBC(posix_memalign)(void **out, size_t alignment, size_t size);
size_t LIBC(malloc_usable_size)(void *ptr);

CAPHEAP_LIBC_SECTION void *LIBC(malloc)(size_t size)
{
    return heap_caps_malloc_default(size);
}

CAPHEAP_LIBC_SECTION void LIBC(free)(void *ptr)
{
    heap_caps_free(ptr);
}

CAPHEAP_LIBC_SECTION void *LIBC(calloc)(size_t n, size_t size)
{
    if (size != 0 && n > SIZE_MAX / size) {
        errno = ENOMEM;
        return NULL;
    }
    void *p = heap_caps_malloc_default(n * size);
    if (p != NULL)
        memset(p, 0, n * size);
    return p;
}

CAPHEAP_LIBC_SECTION void *LIBC(realloc)(void *ptr, size_t size)
{
    return heap_caps_realloc_default(ptr, size);
}

CAPHEAP_LIBC_SECTION void *LIBC(memalign)(size_t alignment, size_t size)
{
    return heap_caps_aligned_alloc_default(alignment, size);
}

CAPHEAP_LIBC_SECTION void *LIBC(aligned_alloc)(size_t alignment, size_t size)
{
    return heap_caps_aligned_alloc_default(alignment, size);
}

CAPHEAP_LIBC_SECTION int LIBC(posix_memalign)(void **out, size_t alignment, size_t size)
{
    if (out == NULL || alignment == 0 || (alignment & (alignment - 1u)) != 0 ||
        alignment % sizeof(void *) != 0)
        return EINVAL;
    if (size == 0) {
        *out = NULL;
        return 0;
    }
    void *p = heap_caps_aligned_alloc_default(alignment, size);
    if (p == NULL)
        return ENOMEM;
    *out = p;
    return 0;
}

CAPHEAP_LIBC_SECTION size_t LIBC(malloc_usable_size)(void *ptr)
{
    return heap_caps_get_allocated_size(ptr);
}

/*
 * newlib's reentrant entry points. newlib's own code (strdup, stdio's
 * buffers, asprintf, ...) allocates through _malloc_r and frees through
 * _free_r, not through malloc and free: without these it would keep using
 * newlib's allocator, and a block it made, freed by heap_caps_free, would be
 * reported as a pointer in no heap. ESP-IDF's glue defines them the same way.
 * picolibc (newlib's descendant, also defines _NEWLIB_VERSION) has no _r
 * allocation functions. The tests build them on the host with a stand-in
 * reentrancy struct (CAPHEAP_LIBC_TEST_REENT).
 */
#if (defined(_NEWLIB_VERSION) && !defined(__PICOLIBC__)) || defined(CAPHEAP_LIBC_TEST_REENT)
#if defined(CAPHEAP_LIBC_TEST_REENT)
struct _reent;
#else
#include <reent.h>
#endif

void *LIBC(_malloc_r)(struct _reent *r, size_t size);
void LIBC(_free_r)(struct _reent *r, void *ptr);
void *LIBC(_calloc_r)(struct _reent *r, size_t n, size_t size);
void *LIBC(_realloc_r)(struct _reent *r, void *ptr, size_t size);
void *LIBC(_memalign_r)(struct _reent *r, size_t alignment, size_t size);
size_t LIBC(_malloc_usable_size_r)(struct _reent *r, void *ptr);

CAPHEAP_LIBC_SECTION void *LIBC(_malloc_r)(struct _reent *r, size_t size)
{
    (void)r;
    return LIBC(malloc)(size);
}

CAPHEAP_LIBC_SECTION void LIBC(_free_r)(struct _reent *r, void *ptr)
{
    (void)r;
    LIBC(free)(ptr);
}

CAPHEAP_LIBC_SECTION void *LIBC(_calloc_r)(struct _reent *r, size_t n, size_t size)
{
    (void)r;
    return LIBC(calloc)(n, size);
}

CAPHEAP_LIBC_SECTION void *LIBC(_realloc_r)(struct _reent *r, void *ptr, size_t size)
{
    (void)r;
    return LIBC(realloc)(ptr, size);
}

CAPHEAP_LIBC_SECTION void *LIBC(_memalign_r)(struct _reent *r, size_t alignment, size_t size)
{
    (void)r;
    return LIBC(memalign)(alignment, size);
}

CAPHEAP_LIBC_SECTION size_t LIBC(_malloc_usable_size_r)(struct _reent *r, void *ptr)
{
    (void)r;
    return LIBC(malloc_usable_size)(ptr);
}
#endif

#else
typedef int capheap_libc_malloc_disabled; /* ISO C: a translation unit is never empty */
#endif
