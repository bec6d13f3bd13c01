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
 * capheap_sim_shutdown() unmaps it: one freed after is reported (and the
 * program aborted through the port) instead of crashing the host allocator.
 *
 * getline and getdelim grow the caller's buffer with realloc inside the C
 * library, which would hand a chip block to the host allocator: they are
 * wrapped too, and grow a chip buffer here (a host buffer stays the host's).
 * With optimisation glibc's <stdio.h> makes getline an inline call of
 * __getdelim: that name is wrapped as well.
 *
 * A C++ program that also links capheap_sim_cxx (sim/libcxx/new.cpp) has its
 * operator new and delete served through __wrap_malloc, __wrap_memalign and
 * capheap_sim_delete (wrap.h). Every function here, the policy's copy
 * included, is in the section CAPHEAP_SIM_TEXT names, so that heap tracing
 * knows their frames as the library's.
 */
#define _GNU_SOURCE /* getdelim, reallocarray's overflow rule */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>

#include "wrap.h"

#define CAPHEAP_LIBC_PREFIX capheap_simlibc_
#define CAPHEAP_LIBC_SECTION CAPHEAP_SIM_TEXT
#include "../../src/caps/libc.c"

#include "../sim_map.h"
#include "capheap/caps.h"
#include "capheap/chip.h"
#include "capheap/report.h"
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
void *__real_reallocarray(void *ptr, size_t n, size_t size);
ssize_t __real_getdelim(char **line, size_t *n, int delim, FILE *stream);

void __wrap_free(void *ptr);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *ptr, size_t size);
void *__wrap_aligned_alloc(size_t alignment, size_t size);
int __wrap_posix_memalign(void **out, size_t alignment, size_t size);
size_t __wrap_malloc_usable_size(void *ptr);
char *__wrap_strdup(const char *s);
char *__wrap_strndup(const char *s, size_t n);
void *__wrap_reallocarray(void *ptr, size_t n, size_t size);
ssize_t __wrap_getdelim(char **line, size_t *n, int delim, FILE *stream);
ssize_t __wrap_getline(char **line, size_t *n, FILE *stream);
ssize_t __wrap___getdelim(char **line, size_t *n, int delim, FILE *stream);

/* New blocks come from the simulated chip while one is booted. */
CAPHEAP_SIM_TEXT static bool booted(void)
{
    return capheap_sim_chip() != NULL;
}

CAPHEAP_SIM_TEXT static bool in_alias(const capheap_alias_t *a, uintptr_t p)
{
    return a->kind != CAPHEAP_ALIAS_NONE && p >= (uintptr_t)a->iram_low && p < (uintptr_t)a->iram_high;
}

/* Is ptr heap_caps' (a heap's address, or an EXEC block's IRAM alias)? */
CAPHEAP_SIM_TEXT static bool ours(const void *ptr)
{
    if (capheap_heap_find(ptr) >= 0)
        return true;
    const capheap_chip_t *chip = capheap_caps_chip(); /* host addresses, as heap_caps uses them */
    return chip != NULL && (in_alias(&chip->diram, (uintptr_t)ptr) || in_alias(&chip->rtc, (uintptr_t)ptr));
}

/* ptr is neither heap_caps' nor the host's: it lies in the chip a shutdown
 * unmapped. The host allocator would crash reading its header: say so, and
 * abort through the port (capheap/report.h). */
CAPHEAP_SIM_TEXT static bool after_shutdown(const void *ptr, const char *what)
{
    if (!capheap_sim_was_mapped(ptr))
        return false;
    capheap_report_t r = {what, ptr, 0, 0, 0};
    capheap_report_corruption(&r, true, true);
    return true; /* the abort handler returned (tests) */
}

CAPHEAP_SIM_TEXT void *__wrap_malloc(size_t size)
{
    return booted() ? capheap_simlibc_malloc(size) : __real_malloc(size);
}

/* free() and operator delete: ptr goes back to the allocator that made it;
 * what names the call in the report of a chip block freed after the shutdown. */
CAPHEAP_SIM_TEXT static void release(void *ptr, const char *what)
{
    if (ptr == NULL)
        return;
    if (ours(ptr))
        capheap_simlibc_free(ptr);
    else if (!after_shutdown(ptr, what))
        __real_free(ptr);
}

CAPHEAP_SIM_TEXT void __wrap_free(void *ptr)
{
    release(ptr, "free() of a block of the simulated chip after capheap_sim_shutdown()");
}

CAPHEAP_SIM_TEXT void capheap_sim_delete(void *ptr)
{
    release(ptr, "operator delete of a block of the simulated chip after capheap_sim_shutdown()");
}

CAPHEAP_SIM_TEXT void *__wrap_calloc(size_t n, size_t size)
{
    return booted() ? capheap_simlibc_calloc(n, size) : __real_calloc(n, size);
}

CAPHEAP_SIM_TEXT void *__wrap_realloc(void *ptr, size_t size)
{
    if (ptr == NULL)
        return __wrap_malloc(size);
    /* A block stays with the allocator that made it (realloc(p, 0) frees it
     * there: ESP-IDF's answer for a heap_caps block, NULL). */
    if (ours(ptr))
        return capheap_simlibc_realloc(ptr, size);
    if (after_shutdown(ptr, "realloc() of a block of the simulated chip after capheap_sim_shutdown()"))
        return NULL;
    return __real_realloc(ptr, size);
}

CAPHEAP_SIM_TEXT void *__wrap_reallocarray(void *ptr, size_t n, size_t size)
{
    if (size != 0 && n > SIZE_MAX / size) {
        errno = ENOMEM;
        return NULL;
    }
    return __wrap_realloc(ptr, n * size);
}

CAPHEAP_SIM_TEXT void *__wrap_memalign(size_t alignment, size_t size)
{
    return booted() ? capheap_simlibc_memalign(alignment, size) : __real_memalign(alignment, size);
}

CAPHEAP_SIM_TEXT void *__wrap_aligned_alloc(size_t alignment, size_t size)
{
    return booted() ? capheap_simlibc_aligned_alloc(alignment, size) : __real_aligned_alloc(alignment, size);
}

CAPHEAP_SIM_TEXT int __wrap_posix_memalign(void **out, size_t alignment, size_t size)
{
    return booted() ? capheap_simlibc_posix_memalign(out, alignment, size)
                    : __real_posix_memalign(out, alignment, size);
}

CAPHEAP_SIM_TEXT size_t __wrap_malloc_usable_size(void *ptr)
{
    if (ptr == NULL)
        return 0;
    if (ours(ptr))
        return capheap_simlibc_malloc_usable_size(ptr);
    if (after_shutdown(ptr, "malloc_usable_size() of a block of the simulated chip after capheap_sim_shutdown()"))
        return 0;
    return __real_malloc_usable_size(ptr);
}

/* newlib's strdup and strndup allocate through its malloc, so on ESP-IDF their
 * blocks come from heap_caps too; glibc's call its own, so they are made here. */
CAPHEAP_SIM_TEXT char *__wrap_strndup(const char *s, size_t n)
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

CAPHEAP_SIM_TEXT char *__wrap_strdup(const char *s)
{
    return __wrap_strndup(s, SIZE_MAX);
}

/* getdelim for a buffer of the chip (or a new one while booted): POSIX's
 * contract, the buffer grown through __wrap_realloc. A host buffer, or a new
 * one with no chip booted, is the C library's. */
CAPHEAP_SIM_TEXT ssize_t __wrap_getdelim(char **line, size_t *n, int delim, FILE *stream)
{
    if (line == NULL || n == NULL || stream == NULL) {
        errno = EINVAL;
        return -1;
    }
    if (*line != NULL ? !ours(*line) : !booted())
        return __real_getdelim(line, n, delim, stream);
    if (*line == NULL)
        *n = 0;
    size_t len = 0;
    int c = 0;
    flockfile(stream);
    while ((c = getc_unlocked(stream)) != EOF) {
        if (len + 2u > *n) { /* the character and the terminating NUL */
            size_t want = *n < 120u ? 120u : *n * 2u;
            char *grown = __wrap_realloc(*line, want);
            if (grown == NULL) {
                funlockfile(stream);
                errno = ENOMEM;
                return -1;
            }
            *line = grown;
            *n = want;
        }
        (*line)[len++] = (char)c;
        if (c == delim)
            break;
    }
    funlockfile(stream);
    if (len == 0) {
        if (*line == NULL && (*line = __wrap_malloc(1)) != NULL)
            *n = 1;
        if (*line != NULL)
            (*line)[0] = '\0';
        return -1; /* end of file (or an error: the stream says which) */
    }
    (*line)[len] = '\0';
    return (ssize_t)len;
}

CAPHEAP_SIM_TEXT ssize_t __wrap_getline(char **line, size_t *n, FILE *stream)
{
    return __wrap_getdelim(line, n, '\n', stream);
}

/* glibc's inline getline (<bits/stdio.h>, optimised builds) calls this name. */
CAPHEAP_SIM_TEXT ssize_t __wrap___getdelim(char **line, size_t *n, int delim, FILE *stream)
{
    return __wrap_getdelim(line, n, delim, stream);
}
