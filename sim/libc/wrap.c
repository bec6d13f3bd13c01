/*
 * sim/libc/wrap.c - the simulated firmware's C library allocator
 * (capheap_sim_libc; docs/simulator.md, "malloc in the simulator").
 *
 * On ESP-IDF, malloc, free, calloc, realloc and the aligned forms go through
 * heap_caps' _default policy (spec 0, 2.7): a leak hunt with heap tracing sees
 * them, and a block from heap_caps_malloc may be passed to free. On a Linux
 * host the C library keeps its own malloc, so code ported from a firmware would
 * allocate outside the simulated chip. This library puts the firmware's
 * policy back for the objects of one program, without replacing the process's
 * malloc: the program is linked with GNU ld's --wrap for each function below,
 * which sends the calls made from the program's own objects to __wrap_<name>
 * here; the C library's internal calls (stdio buffers, the dynamic linker,
 * glibc's own strdup, C++ operator new) keep the host allocator.
 *
 * While a simulated chip is booted, an allocation is served by the firmware's
 * policy (src/caps/libc.c, compiled in here under the prefix capheap_simlibc_:
 * the same code CAPHEAP_LIBC_MALLOC builds into a firmware); otherwise by the
 * host's. A free, realloc or size query goes by where the block lies: in a
 * heap_caps heap or one of the booted chip's IRAM alias windows, heap_caps;
 * anywhere else, the host allocator (a block the C library made, or one made
 * before the boot). So blocks of both kinds can be freed with free() at any
 * time, except that blocks in the simulated chip must be freed before
 * capheap_sim_shutdown() unmaps it.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define CAPHEAP_LIBC_PREFIX capheap_simlibc_
#include "../../src/caps/libc.c"

#include "capheap/caps.h"
#include "capheap/chip.h"
#include "capheap/sim.h"

/* The host allocator (GNU ld's --wrap names). */
void *__real_malloc(size_t size);
void __real_free(void *ptr);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *ptr, size_t size);
void *__real_memalign(size_t alignment, size_t size);
void *__real_aligned_alloc(size_t alignment, size_t size);
int __real_posix_memalign(void **out, size_t alignment, size_t size);
size_t __real_malloc_usable_size(void *ptr);

void *__wrap_malloc(size_t size);
void __wrap_free(void *ptr);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *ptr, size_t size);
void *__wrap_memalign(size_t alignment, size_t size);
void *__wrap_aligned_alloc(size_t alignment, size_t size);
int __wrap_posix_memalign(void **out, size_t alignment, size_t size);
size_t __wrap_malloc_usable_size(void *ptr);
char *__wrap_strdup(const char *s);
char *__wrap_strndup(const char *s, size_t n);

/* New blocks come from the simulated chip while one is booted. */
static bool booted(void)
{
    return capheap_sim_chip() != NULL;
}

static bool in_alias(const capheap_alias_t *a, uintptr_t p)
{
    return a->kind != CAPHEAP_ALIAS_NONE && p >= (uintptr_t)a->iram_low && p < (uintptr_t)a->iram_high;
}

/* Is ptr heap_caps' (a heap's address, or an EXEC block's IRAM alias)? */
static bool ours(const void *ptr)
{
    if (capheap_heap_find(ptr) >= 0)
        return true;
    const capheap_chip_t *chip = capheap_caps_chip(); /* host addresses, as heap_caps uses them */
    return chip != NULL && (in_alias(&chip->diram, (uintptr_t)ptr) || in_alias(&chip->rtc, (uintptr_t)ptr));
}

void *__wrap_malloc(size_t size)
{
    return booted() ? capheap_simlibc_malloc(size) : __real_malloc(size);
}

void __wrap_free(void *ptr)
{
    if (ptr == NULL)
        return;
    if (ours(ptr))
        capheap_simlibc_free(ptr);
    else
        __real_free(ptr);
}

void *__wrap_calloc(size_t n, size_t size)
{
    return booted() ? capheap_simlibc_calloc(n, size) : __real_calloc(n, size);
}

void *__wrap_realloc(void *ptr, size_t size)
{
    if (ptr == NULL)
        return __wrap_malloc(size);
    /* A block stays with the allocator that made it (realloc(p, 0) frees it
     * there: ESP-IDF's answer for a heap_caps block, NULL). */
    return ours(ptr) ? capheap_simlibc_realloc(ptr, size) : __real_realloc(ptr, size);
}

void *__wrap_memalign(size_t alignment, size_t size)
{
    return booted() ? capheap_simlibc_memalign(alignment, size) : __real_memalign(alignment, size);
}

void *__wrap_aligned_alloc(size_t alignment, size_t size)
{
    return booted() ? capheap_simlibc_aligned_alloc(alignment, size) : __real_aligned_alloc(alignment, size);
}

int __wrap_posix_memalign(void **out, size_t alignment, size_t size)
{
    return booted() ? capheap_simlibc_posix_memalign(out, alignment, size)
                    : __real_posix_memalign(out, alignment, size);
}

size_t __wrap_malloc_usable_size(void *ptr)
{
    if (ptr == NULL)
        return 0;
    return ours(ptr) ? capheap_simlibc_malloc_usable_size(ptr) : __real_malloc_usable_size(ptr);
}

/* newlib's strdup and strndup allocate through its malloc, so on ESP-IDF their
 * blocks come from heap_caps too; glibc's call its own, so they are made here. */
char *__wrap_strndup(const char *s, size_t n)
{
    size_t len = 0;
    while (len < n && s[len] != '\0')
        len++;
    char *d = __wrap_malloc(len + 1u);
    if (d != NULL) {
        memcpy(d, s, len);
        d[len] = '\0';
    }
    return d;
}

char *__wrap_strdup(const char *s)
{
    return __wrap_strndup(s, SIZE_MAX);
}
