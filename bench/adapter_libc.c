/*
 * adapter_libc.c - the process's malloc/free/realloc as a bench allocator.
 *
 * Built twice: as the system allocator (glibc on Debian), and with
 * BENCH_JEMALLOC linked against libjemalloc, whose unprefixed malloc, free and
 * realloc (Debian builds jemalloc without a prefix) replace glibc's for the
 * whole process. bench_alloc_init() checks that the replacement happened.
 */
#include "bench_adapter.h"

#include <stdio.h>
#include <stdlib.h>

#ifdef BENCH_JEMALLOC
#include <jemalloc/jemalloc.h>
#endif

#if defined(BENCH_JEMALLOC)
const char bench_alloc_name[] = "jemalloc";
#elif defined(__GLIBC__)
const char bench_alloc_name[] = "glibc";
#else
const char bench_alloc_name[] = "system";
#endif
const int bench_alloc_fixed_heap = 0;

int bench_alloc_init(void *region, size_t size)
{
    (void)region;
    (void)size;
#ifdef BENCH_JEMALLOC
    /* thread.allocated counts bytes jemalloc handed to this thread: it must
     * grow when plain malloc() is called, else glibc is still in charge. */
    unsigned long long before = 0, after = 0;
    size_t len = sizeof before;
    if (mallctl("thread.allocated", &before, &len, NULL, 0) != 0)
        return 0; /* statistics compiled out: cannot check, trust the link order */
    void *volatile p = malloc(100000);
    len = sizeof after;
    mallctl("thread.allocated", &after, &len, NULL, 0);
    free(p);
    if (after < before + 100000) {
        fprintf(stderr, "bench: malloc() is not jemalloc's in this process\n");
        return -1;
    }
#endif
    return 0;
}

size_t bench_alloc_overhead(void)
{
    return 0;
}

const char *bench_alloc_describe(void)
{
    static char text[160];
#if defined(BENCH_JEMALLOC)
    const char *version = "?";
    size_t len = sizeof version;
    mallctl("version", (void *)&version, &len, NULL, 0);
    snprintf(text, sizeof text, "jemalloc %s (malloc/free/realloc replaced)", version);
#elif defined(__GLIBC__)
    snprintf(text, sizeof text, "glibc %d.%d malloc", __GLIBC__, __GLIBC_MINOR__);
#else
    snprintf(text, sizeof text, "system malloc");
#endif
    return text;
}

void *bench_malloc(size_t size)
{
    return malloc(size);
}

void bench_free(void *p)
{
    free(p);
}

void *bench_realloc(void *p, size_t size)
{
    return realloc(p, size);
}
