/*
 * tap.h - the TAP-like output of the programs tests/preload runs under
 * LD_PRELOAD ("ok N - what" or "not ok N - what (detail)"), shared by
 * api_test.c, calloc_test.c and growth_test.c, the check that the loader
 * really bound the program to the preload, and two small helpers they share. Each program includes it once; its exit status
 * is the number of failures (capped by the program). No cmocka: these are plain
 * programs, so that the loader binds their malloc to the preload.
 */
#ifndef CAPHEAP_TESTS_PRELOAD_TAP_H
#define CAPHEAP_TESTS_PRELOAD_TAP_H

#include <dlfcn.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

static int failures;
static int checks;

/* One check: flushed at once, so that a crash after it leaves it on record. */
static void check(bool ok, const char *what, const char *detail)
{
    checks++;
    if (ok) {
        printf("ok %d - %s\n", checks, what);
    } else {
        failures++;
        printf("not ok %d - %s (%s)\n", checks, what, detail ? detail : "");
    }
    fflush(stdout);
}

/* Where the loader bound symbol: checked to be libcapheap_malloc, so that a
 * preload the loader silently ignored cannot pass. Returns the object's path
 * (NULL if unknown), for further comparisons. */
static const char *check_preloaded(const char *symbol)
{
    void *sym = dlsym(RTLD_DEFAULT, symbol);
    Dl_info info;
    memset(&info, 0, sizeof info);
    bool found = sym != NULL && dladdr(sym, &info) != 0 && info.dli_fname != NULL &&
                 strstr(info.dli_fname, "libcapheap_malloc") != NULL;
    char what[64], detail[512];
    snprintf(what, sizeof what, "%s is libcapheap_malloc's", symbol);
    snprintf(detail, sizeof detail, "%s resolves to %s; run with LD_PRELOAD=.../libcapheap_malloc.so", symbol,
             info.dli_fname ? info.dli_fname : "?");
    check(found, what, detail);
    return info.dli_fname;
}

/* Keep the compiler from reasoning about an allocator argument (it may
 * assume, for instance, that malloc(SIZE_MAX) never succeeds and fold a test). */
static inline size_t opaque(size_t x)
{
    volatile size_t v = x;
    return v;
}

/* A "Key: N kB" line of /proc/self/status (VmRSS, VmSize) in bytes; 0 if unreadable. */
static inline size_t proc_status_bytes(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (f == NULL)
        return 0;
    char line[256];
    size_t n = strlen(key);
    unsigned long kb = 0;
    while (fgets(line, sizeof line, f) != NULL)
        if (strncmp(line, key, n) == 0 && line[n] == ':' && sscanf(line + n + 1, "%lu", &kb) == 1)
            break;
    fclose(f);
    return (size_t)kb * 1024u;
}

#endif
