/*
 * tap.h - the TAP-like output of the programs tests/preload runs under
 * LD_PRELOAD ("ok N - what" or "not ok N - what (detail)"), shared by
 * api_test.c and calloc_test.c, and the check that the loader really bound
 * the program to the preload. Each program includes it once; its exit status
 * is the number of failures (capped by the program). No cmocka: these are plain
 * programs, so that the loader binds their malloc to the preload.
 */
#ifndef CAPHEAP_TESTS_PRELOAD_TAP_H
#define CAPHEAP_TESTS_PRELOAD_TAP_H

#include <dlfcn.h>
#include <stdbool.h>
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

#endif
